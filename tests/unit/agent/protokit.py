"""Test helpers for the agent's protocol: valid requests, their frames, and mutations.

The mutations feed the fuzz tests. Each returns the mutated frame and what is
certain about the outcome: ``VALID`` (it must be accepted), an ``ErrorCode``
(it must be refused with that code), or ``None`` (either, the generic checks
apply). Certainty is claimed only where it holds for every valid base request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tradeops.agent.protocol import (
    COMMANDS,
    ID_RE,
    MAX_FRAME,
    MAX_REASON,
    MAX_WHO,
    NAME_RE,
    Command,
    ErrorCode,
)
from tradeops.agent.reasons import Reason

NOW = 1_700_000_000.0
WINDOW = 5.0
# Distinctive, so that a leak is found by a plain substring search.
KEY = b"KEYMATERIAL-do-not-leak-0123456789-abcdef"
KEY_ID = "ctl"
OTHER_KEY = b"OTHERKEY-also-secret-9876543210-zyxwvu"
VALID = "valid"

Expect = ErrorCode | str | None  # str: VALID


def request_dict(cmd: str = "halt", /, **over: Any) -> dict[str, Any]:
    """A valid request as a dict; ``over`` replaces fields."""
    args: dict[str, Any] = {
        "halt": {"reason_code": "DAILY_LOSS"},
        "reduce": {},
        "reset": {"scope": "host", "force": False, "target": "ACTIVE"},
        "status": {},
        "cancel-all": {},
        "flatten": {},
        "heartbeat": {"strategy": "mm-1"},
    }[cmd]
    obj: dict[str, Any] = {
        "v": 1,
        "id": "req-1",
        "cmd": cmd,
        "args": args,
        "who": "alice",
        "reason": "drill",
        "ts": NOW,
        "nonce": "0123456789abcdef0123456789abcdef",
    }
    obj.update(over)
    return obj


def frame(obj: Any) -> bytes:
    """One compact JSON line: non-ASCII as UTF-8, or all escaped if a lone surrogate needs it."""
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return text + b"\n"


def key_leaks(text: str | bytes) -> bool:
    """Whether ``text`` contains either test key, raw, hex or as a Python repr."""
    blob = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    for key in (KEY, OTHER_KEY):
        for form in (key, key.hex().encode(), repr(key).encode(), key[:16], key[-16:]):
            if form in blob:
                return True
    return False


# ------------------------------------------------------------------ strategies
# str.isprintable: letters, marks, numbers, punctuation, symbols, and the ASCII space only.
_PRINTABLE = st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" ")
_HEX = "0123456789abcdef"


@st.composite
def valid_request_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request of any command, with drawn values at and inside every limit."""
    cmd = draw(st.sampled_from([c.value for c in Command]))
    args: dict[str, Any] = {}
    if cmd in ("halt", "reduce") and draw(st.booleans()):
        args["reason_code"] = draw(st.sampled_from([r.value for r in Reason]))
    if cmd == "reset":
        if draw(st.booleans()):
            args["scope"] = draw(st.sampled_from(["host", "fleet"]))
        if draw(st.booleans()):
            args["force"] = draw(st.booleans())
        if draw(st.booleans()):
            args["target"] = draw(st.sampled_from(["ACTIVE", "REDUCING"]))
    if cmd == "heartbeat":
        args["strategy"] = draw(st.from_regex(NAME_RE, fullmatch=True))
    who = draw(st.text(_PRINTABLE, min_size=1, max_size=MAX_WHO).filter(str.strip))
    needs_reason = COMMANDS[Command(cmd)].needs_reason
    reason = draw(st.text(_PRINTABLE, min_size=1 if needs_reason else 0, max_size=MAX_REASON))
    if needs_reason and not reason.strip():
        reason = "r" + reason[1:]
    obj = {
        "v": 1,
        "id": draw(st.from_regex(ID_RE, fullmatch=True)),
        "cmd": cmd,
        "args": args,
        "who": who,
        "ts": NOW + draw(st.floats(-WINDOW, WINDOW, allow_nan=False)),
        "nonce": draw(st.text(_HEX, min_size=16, max_size=64)),
    }
    if reason or draw(st.booleans()):
        obj["reason"] = reason
    return obj


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)

# Values of every JSON type, for "a field of the wrong type or value".
WEIRD: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2,
    2**62,
    1.5,
    -0.0,
    "",
    " ",
    "x" * (MAX_WHO + 1),
    "y" * (MAX_REASON + 1),
    "\x00",
    "a\nb",
    "\ud800",
    "HALT",
    "kill",
    "é" * 3,
    [],
    [1, "a"],
    {},
    {"a": 1},
    [[[]]],
)

# -------------------------------------------------------------------- mutations
Mutation = Callable[[random.Random, dict[str, Any]], tuple[bytes, Expect]]
ENVELOPE = ("v", "id", "cmd", "args", "who", "reason", "ts", "nonce")


def _drop_key(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    key = r.choice([k for k in ENVELOPE if k in obj])
    out = {k: v for k, v in obj.items() if k != key}
    if key in ("v", "id", "cmd", "args", "ts", "nonce"):
        return frame(out), ErrorCode.MALFORMED
    if key == "who":
        return frame(out), ErrorCode.BAD_ARGS
    needs = COMMANDS[Command(obj["cmd"])].needs_reason
    return frame(out), ErrorCode.BAD_ARGS if needs else VALID


def _unknown_key(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    name = r.choice(["x", "V", "args ", "Who", "extra", "\u00e9", "\ud800", ""])
    return frame({**obj, name: r.choice(WEIRD)}), ErrorCode.MALFORMED


def _weird_field(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    """One envelope field set to a value of another type or out of range."""
    key = r.choice(ENVELOPE)
    value = r.choice(WEIRD)
    out = {**obj, key: value}
    cmd = Command(obj["cmd"])
    is_int = isinstance(value, int) and not isinstance(value, bool)
    expect: Expect = None
    if key == "v":
        expect = (
            (VALID if value == 1 else ErrorCode.UNSUPPORTED_VERSION)
            if is_int
            else ErrorCode.MALFORMED
        )
    elif key == "id":
        ok = isinstance(value, str) and ID_RE.fullmatch(value)
        expect = VALID if ok else ErrorCode.MALFORMED
    elif key == "cmd":
        if not isinstance(value, str):
            expect = ErrorCode.MALFORMED
        elif value not in {c.value for c in Command}:
            expect = ErrorCode.UNKNOWN_COMMAND
    elif key == "args":
        expect = ErrorCode.BAD_ARGS if not isinstance(value, dict) else None
    elif key in ("who", "reason"):
        limit = MAX_WHO if key == "who" else MAX_REASON
        blank_ok = key == "reason" and not COMMANDS[cmd].needs_reason
        ok = (
            isinstance(value, str)
            and value.isprintable()
            and len(value) <= limit
            and (blank_ok or bool(value.strip()))
        )
        expect = VALID if ok else ErrorCode.BAD_ARGS
    elif key == "ts":
        if not isinstance(value, int | float) or isinstance(value, bool):
            expect = ErrorCode.MALFORMED
        else:
            expect = ErrorCode.EXPIRED  # every number in WEIRD is far from NOW
    elif key == "nonce":
        expect = ErrorCode.MALFORMED  # nothing in WEIRD is 16-64 lowercase hex digits
    return frame(out), expect


def _weird_arg(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    """An unknown argument, a missing required one, or one of a wrong type or value."""
    args = dict(obj["args"])
    spec = COMMANDS[Command(obj["cmd"])]
    names = [rule.name for rule in spec.rules]
    choice = r.random()
    if choice < 0.3 or not names:
        # None of these is an argument of any command ("force" must be a bool, not 1).
        args[r.choice(["x", "reason", "scope ", "Strategy", "force"])] = 1
        return frame({**obj, "args": args}), ErrorCode.BAD_ARGS
    rule = r.choice(spec.rules)
    if choice < 0.45:
        args.pop(rule.name, None)
        return frame({**obj, "args": args}), ErrorCode.BAD_ARGS if rule.required else VALID
    value = r.choice(WEIRD)
    args[rule.name] = value
    if rule.kind is bool:
        ok = isinstance(value, bool)
    elif rule.choices:
        ok = value in rule.choices
    else:
        ok = isinstance(value, str) and bool(rule.pattern and rule.pattern.fullmatch(value))
    return frame({**obj, "args": args}), VALID if ok else ErrorCode.BAD_ARGS


def _shift_ts(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    if r.random() < 0.5:
        return frame({**obj, "ts": NOW + r.uniform(-WINDOW, WINDOW)}), VALID
    skew = WINDOW + r.choice([1e-3, 0.5, 60.0, 3600.0, 1e9])
    return frame({**obj, "ts": NOW + r.choice([-1, 1]) * skew}), ErrorCode.EXPIRED


def _future_version(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    # A newer version with keys, commands and args this agent does not know: the version
    # is refused before any of them is read.
    out = {**obj, "v": r.choice([0, 2, 3, 99, -1]), "cmd": r.choice(["halt", "teleport"])}
    if r.random() < 0.5:
        out["priority"] = "high"
    return frame(out), ErrorCode.UNSUPPORTED_VERSION


def _flip_byte(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    data = bytearray(frame(obj)[:-1])
    i = r.randrange(len(data))
    data[i] ^= 1 << r.randrange(8)
    return bytes(data), None


def _insert_delete(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    data = bytearray(frame(obj)[:-1])
    i = r.randrange(len(data) + 1)
    if r.random() < 0.5 and data:
        del data[min(i, len(data) - 1)]
    else:
        data[i:i] = bytes([r.randrange(256)])
    return bytes(data), None


def _truncate(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    data = frame(obj)[:-1]
    return data[: r.randrange(len(data))], ErrorCode.MALFORMED  # an object cut short


def _bad_utf8(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    data = bytearray(frame(obj)[:-1])
    bad = r.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
    i = r.randrange(len(data) + 1)
    data[i:i] = bad
    return bytes(data), ErrorCode.MALFORMED


def _json_trap(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    """Valid-looking JSON that the parser must refuse: NaN, huge numbers, duplicates, depth."""
    text = frame(obj)[:-1].decode("utf-8")
    kind = r.randrange(7)
    if kind == 0:
        bad = r.choice(["NaN", "Infinity", "-Infinity"])
        text = text.replace(f'"ts":{json.dumps(obj["ts"])}', f'"ts":{bad}')
    elif kind == 1:
        text = text.replace(f'"ts":{json.dumps(obj["ts"])}', '"ts":1e999')
    elif kind == 2:
        text = text.replace('"v":1', '"v":1' + "0" * r.randrange(20, 5000))
    elif kind == 3:
        text = text[:-1] + ',"who":"mallory"}'  # a duplicate key
    elif kind == 4:
        depth = r.randrange(500, 4000)
        text = text[:-1] + ',"args2":' + "[" * depth + "]" * depth + "}"
    elif kind == 5:
        text = "\ufeff" + text  # a BOM
    else:
        return frame([obj])[:-1], ErrorCode.MALFORMED  # not an object
    data = text.encode("utf-8")
    if len(data) >= MAX_FRAME:
        return data, ErrorCode.OVERSIZED
    return data, ErrorCode.MALFORMED


def _oversize(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    data = frame(obj)[:-1]
    pad = MAX_FRAME - len(data) + r.randrange(0, 3 * MAX_FRAME)
    # Trailing whitespace keeps it valid JSON: only the size is wrong.
    return data + b" " * pad + (b"\n" if r.random() < 0.5 else b""), ErrorCode.OVERSIZED


def _newline_inside(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    text = frame(obj)[:-1]
    i = r.randrange(1, len(text))
    return text[:i] + b"\n" + text[i:], ErrorCode.MALFORMED


def _random_bytes(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    return r.randbytes(r.randrange(0, 200)), None


def _stacked(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    """Several dict-level mutations at once: no single expectation holds."""
    out = dict(obj)
    for _unused in range(r.randrange(2, 5)):
        key = r.choice([*ENVELOPE, "extra"])
        if r.random() < 0.3:
            out.pop(key, None)
        else:
            out[key] = r.choice(WEIRD)
    return frame(out), None


MUTATIONS: tuple[Mutation, ...] = (
    _drop_key,
    _unknown_key,
    _weird_field,
    _weird_field,
    _weird_arg,
    _weird_arg,
    _shift_ts,
    _future_version,
    _flip_byte,
    _flip_byte,
    _insert_delete,
    _truncate,
    _bad_utf8,
    _json_trap,
    _oversize,
    _newline_inside,
    _random_bytes,
    _stacked,
)


def mutate(r: random.Random, obj: dict[str, Any]) -> tuple[bytes, Expect]:
    """One mutation of the valid request ``obj``, chosen by ``r``."""
    return r.choice(MUTATIONS)(r, obj)
