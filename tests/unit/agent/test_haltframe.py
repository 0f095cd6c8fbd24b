"""The accept thread's halt recogniser never accepts what ``parse_request`` refuses.

``haltframe.match`` is a second reader of the halt frame, on the halt's path.
Two sides are checked: every frame it accepts (valid requests of every
command, their mutations from ``protokit``, and byte-level edits of halt
frames) parses to the same halt with ``parse_request``; and the halts the
tradeops clients write (``encode_request``) are the frames it accepts, so the
fast path is the one they take.
"""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.agent.protokit import NOW, WINDOW, frame, mutate, valid_request_dicts
from tradeops.agent import haltframe
from tradeops.agent.protocol import (
    MAX_REASON,
    MAX_WHO,
    Command,
    HaltArgs,
    ProtocolError,
    encode_request,
    parse_request,
)
from tradeops.agent.reasons import Reason

pytestmark = pytest.mark.volume  # run once, not again on the newest core

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EDITS_PER_EXAMPLE = 60
# Text the recogniser takes: printable ASCII without the quote and the backslash.
PLAIN = "".join(c for c in string.printable if c.isprintable() and c not in '"\\')
reason_codes = st.sampled_from(list(Reason))


GOOD = encode_request(
    Command.HALT, who="ops", reason="drill", ts=NOW, request_id="r1", nonce="ab" * 16
)[:-1].decode()


def _agrees(line: bytes) -> bool:
    """Assert that a frame ``match`` accepts is the same halt for ``parse_request``."""
    found = haltframe.match(line)
    if found is None:
        return False
    try:
        request = parse_request(line, NOW, WINDOW, lenient=frozenset({Command.HALT}))
    except ProtocolError as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"match accepted a frame parse_request refuses ({exc.code}): {line!r}")
    assert request.cmd is Command.HALT
    assert isinstance(request.args, HaltArgs)
    assert found == (request.args.reason_code, request.who), line
    return True


def _edit(r: random.Random, line: bytes) -> bytes:
    """One byte-level edit: replace, insert or delete a byte, or swap two."""
    data = bytearray(line)
    at = r.randrange(len(data))
    kind = r.randrange(4)
    if kind == 0:
        data[at] = r.choice(b'{}[]",:\\ 0123456789-.eE+aAzZ\x00\x7f\xff')
    elif kind == 1:
        data.insert(at, r.randrange(256))
    elif kind == 2:
        del data[at]
    else:
        other = r.randrange(len(data))
        data[at], data[other] = data[other], data[at]
    return bytes(data)


@PROPERTY
@given(request=valid_request_dicts(), seed=st.integers(0, 2**32 - 1))
def test_what_match_accepts_parses_to_the_same_halt(request: dict, seed: int) -> None:
    r = random.Random(seed)
    line = frame(request)[:-1]
    _agrees(line)
    halt = line if request["cmd"] == "halt" else GOOD.encode()
    for _unused in range(EDITS_PER_EXAMPLE):
        _agrees(_edit(r, halt))
        mutated, _expect = mutate(r, request)
        _agrees(mutated.rstrip(b"\n"))


@PROPERTY
@given(
    who=st.text(PLAIN, min_size=1, max_size=MAX_WHO).filter(str.strip),
    reason=st.text(PLAIN, min_size=1, max_size=MAX_REASON).filter(str.strip),
    code=st.none() | reason_codes,
    ts=st.floats(1e6, 4e9) | st.integers(0, 4_000_000_000),  # Unix times, as time.time()
)
def test_the_halts_tradeops_clients_write_take_the_fast_path(
    who: str, reason: str, code: Reason | None, ts: float
) -> None:
    args = HaltArgs() if code is None else HaltArgs(reason_code=code)
    line = encode_request(Command.HALT, args, who=who, reason=reason, ts=ts)[:-1]
    assert _agrees(line), line


@pytest.mark.parametrize(
    ("who", "reason"),
    [("zoë", "drill"), ('o"brien', "drill"), ("ops", "a\\b"), ("ops", "10\u00b5s late")],
    ids=["non-ascii", "quote", "backslash", "micro-sign"],
)
def test_escaped_or_non_ascii_halts_fall_back_to_the_full_parse(who: str, reason: str) -> None:
    line = encode_request(Command.HALT, who=who, reason=reason)[:-1]
    assert haltframe.match(line) is None
    request = parse_request(line, NOW, WINDOW, lenient=frozenset({Command.HALT}))
    assert request.cmd is Command.HALT  # still a halt, taken by the full parse


@pytest.mark.parametrize(
    "line",
    [
        GOOD.replace('"v":1', '"v":2'),
        GOOD.replace('"v":1', '"v":0'),
        GOOD.replace('"cmd":"halt"', '"cmd":"reset"'),
        GOOD.replace('"who":"ops"', '"who":"   "'),
        GOOD.replace('"reason":"drill"', '"reason":" "'),
        GOOD.replace('"args":{}', '"args":{"reason_code":"NOPE"}'),
        GOOD.replace('"args":{}', '"args":{"x":1}'),
        GOOD.replace(f'"ts":{NOW}', '"ts":1e999'),
        GOOD.replace(f'"ts":{NOW}', '"ts":NaN'),
        GOOD.replace('"nonce":"' + "ab" * 16, '"nonce":"' + "AB" * 16),
        GOOD[:-1] + ',"extra":1}',
        GOOD + "\n",
        "",
    ],
    ids=[
        "newer-v",
        "v0",
        "reset",
        "blank-who",
        "blank-reason",
        "unknown-code",
        "unknown-arg",
        "huge-ts",
        "nan-ts",
        "upper-nonce",
        "extra-key",
        "newline",
        "empty",
    ],
)
def test_match_refuses(line: str) -> None:
    assert haltframe.match(line.encode()) is None


def test_match_reads_the_reason_code_and_who() -> None:
    assert haltframe.match(GOOD.encode()) == (Reason.MANUAL, "ops")
    line = encode_request(Command.HALT, HaltArgs(reason_code=Reason.DEPLOY), who="ci", reason="x")
    assert haltframe.match(line[:-1]) == (Reason.DEPLOY, "ci")
