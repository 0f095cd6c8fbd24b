"""The kill-switch agent's control protocol, version 1: framing, requests, responses.

Both listeners speak it: the local Unix socket (the peer is authorised by its
credentials, ``tradeops.agent.auth.peer_allowed``) and the TCP listener for the
controller's fleet-wide kill (each request wrapped in an HMAC-signed frame,
``tradeops.agent.auth``). docs/agent-protocol.md is the operator's page.

Framing: one JSON object per line, UTF-8, ending in a newline, at most
``MAX_FRAME`` bytes with the newline. ``FrameReader`` cuts a byte stream into
frames with bounded memory; a longer line is reported as ``oversized`` and
skipped up to its newline, never buffered.

Request::

    {"v": 1, "id": "<client request id>", "cmd": "halt", "args": {...},
     "who": "<operator or component>", "reason": "<text>", "ts": <unix seconds>,
     "nonce": "<16-64 lowercase hex digits>"}

Response: ``{"v": 1, "id": ..., "ok": true, "result": {...}}`` or
``{"v": 1, "id": ..., "ok": false, "error": {"code": "...", "text": "..."}}``;
``id`` is null when the agent could not read one from the request.

Parsing is strict and fails closed: a key nobody declared, a wrong type, a
string too long or not printable, a missing ``who`` or a missing ``reason``
where the command needs one is refused with a typed ``ProtocolError``, never
dropped or guessed. Each command's arguments are its dataclass's fields (one
home: the parser, the encoder and the docs' table read them from there).

Compatibility (the same rules as the controller-to-host request,
docs/host-contract.md):

* ``v`` is one integer. A new version may only add: commands, optional
  arguments whose default keeps the old behaviour, result keys, error codes.
  Anything else (removing, renaming, changing a meaning, making an argument
  required) is a break, and a break raises ``OLDEST_PROTOCOL_VERSION`` too.
* The agent accepts every ``v`` from ``OLDEST_PROTOCOL_VERSION`` to
  ``PROTOCOL_VERSION`` and reads each request by the rules of the version it
  says. A newer or older ``v`` is refused as ``unsupported_version``, naming
  both versions, before anything else about the request is read.
* A client may send any version it knows; every command of version 1 stays
  expressible at version 1, so a newer controller can always halt an older
  agent at the older version (the refusal's ``v`` is the agent's newest).
* The agent answers in the request's version: a response to a version-N
  request uses only the result keys and error codes version N defines.
  Refusals that could not read a supported ``v`` are answered in the agent's
  nearest version.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import secrets
import time
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tradeops.agent.reasons import Reason

PROTOCOL_VERSION = 1
OLDEST_PROTOCOL_VERSION = 1
MAX_FRAME = 8192  # bytes of one frame, the newline included
DEFAULT_WINDOW_S = 5.0  # a request's ts may differ from the agent's clock by this much
MAX_WHO = 64
MAX_REASON = 512
MAX_ERROR_TEXT = 1024
MAX_JSON_INT_DIGITS = 19  # larger integers are refused while parsing (no 4300-digit ints)

ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
NONCE_RE = re.compile(r"[0-9a-f]{16,64}")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Command(enum.StrEnum):
    """What a client can ask the agent."""

    HALT = "halt"  # trip to HALTED
    REDUCE = "reduce"  # trip to REDUCING
    RESET = "reset"  # loosen, with who and why; refused while a condition holds
    STATUS = "status"  # read the state; changes nothing
    CANCEL_ALL = "cancel-all"  # mass cancel on the risk session
    FLATTEN = "flatten"  # reduce-only orders to flat
    HEARTBEAT = "heartbeat"  # a strategy's dead man's switch


class ErrorCode(enum.StrEnum):
    """Why a request was refused (``error.code`` of a response)."""

    MALFORMED = "malformed"  # not a request: not UTF-8 JSON, or the envelope is wrong
    OVERSIZED = "oversized"  # a frame over MAX_FRAME
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"  # args, who or reason do not fit the command
    UNAUTHENTICATED = "unauthenticated"  # unknown key id, or the MAC does not match
    REPLAYED = "replayed"  # the nonce was seen inside the replay window
    EXPIRED = "expired"  # ts outside the replay window (past or future)
    FORBIDDEN = "forbidden"  # the peer may not use this listener or command
    REFUSED = "refused"  # a valid command the agent declines (e.g. reset while tripped)
    INTERNAL = "internal"  # the agent failed; the request may not have been applied


class ProtocolError(Exception):
    """A refusal: ``code`` and a human ``text``, plus what is known of the request.

    ``request_id`` and ``version`` (the version to answer in) are set once they
    have been read; ``refusal(error)`` turns the error into the response.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        text: str,
        *,
        request_id: str | None = None,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        self.code = ErrorCode(code)
        self.text = text[:MAX_ERROR_TEXT]
        self.request_id = request_id
        self.version = version
        super().__init__(f"{self.code.value}: {self.text}")

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.text!r})"

    def about(self, request_id: str | None, version: int) -> ProtocolError:
        """The same refusal, answered to ``request_id`` in ``version``."""
        return ProtocolError(self.code, self.text, request_id=request_id, version=version)


# --------------------------------------------------------------------- commands
Scope = Literal["host", "fleet"]
ResetTarget = Literal["ACTIVE", "REDUCING"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltArgs:
    """``halt``: trip the host to HALTED."""

    reason_code: Reason = Reason.MANUAL


@dataclass(frozen=True, slots=True, kw_only=True)
class ReduceArgs:
    """``reduce``: trip the host to REDUCING (only risk-reducing orders)."""

    reason_code: Reason = Reason.MANUAL


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetArgs:
    """``reset``: loosen to ``target``; ``force`` overrides a condition that still holds."""

    scope: Scope = "host"
    force: bool = False
    target: ResetTarget = "ACTIVE"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusArgs:
    """``status``: no arguments."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAllArgs:
    """``cancel-all``: no arguments."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenArgs:
    """``flatten``: no arguments."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatArgs:
    """``heartbeat``: the strategy whose dead man's switch this is."""

    strategy: str = field(metadata={"pattern": NAME_RE})


CommandArgs = (
    HaltArgs | ReduceArgs | ResetArgs | StatusArgs | CancelAllArgs | FlattenArgs | HeartbeatArgs
)


@dataclass(frozen=True, slots=True)
class ArgRule:
    """One argument as the wire sees it, read from its dataclass field."""

    name: str
    kind: type  # bool, int, str, or a str enum
    choices: tuple[str, ...]  # for a Literal or an enum; () when any matching value
    pattern: re.Pattern[str] | None
    required: bool


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command's arguments and whether it needs a reason besides ``who``."""

    args: type[CommandArgs]
    needs_reason: bool
    rules: tuple[ArgRule, ...] = ()


def _rules(kind: type[CommandArgs]) -> tuple[ArgRule, ...]:
    hints = typing.get_type_hints(kind)
    rules = []
    for f in dataclasses.fields(kind):
        hint = hints[f.name]
        pattern = f.metadata.get("pattern")
        choices: tuple[str, ...] = ()
        if typing.get_origin(hint) is Literal:
            arg_kind: type = str
            choices = typing.get_args(hint)
        elif isinstance(hint, type) and issubclass(hint, enum.StrEnum):
            arg_kind, choices = hint, tuple(m.value for m in hint)
        elif hint in (bool, int) or (hint is str and pattern is not None):
            arg_kind = hint
        else:  # a programming error, caught by the import of this module
            raise TypeError(f"{kind.__name__}.{f.name}: unsupported argument type {hint!r}")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        rules.append(ArgRule(f.name, arg_kind, choices, pattern, required))
    return tuple(rules)


def _spec(args: type[CommandArgs], needs_reason: bool) -> CommandSpec:
    return CommandSpec(args, needs_reason, _rules(args))


# Every command needs ``who``; the ones that change trading need a reason too.
COMMANDS: Mapping[Command, CommandSpec] = {
    Command.HALT: _spec(HaltArgs, needs_reason=True),
    Command.REDUCE: _spec(ReduceArgs, needs_reason=True),
    Command.RESET: _spec(ResetArgs, needs_reason=True),
    Command.STATUS: _spec(StatusArgs, needs_reason=False),
    Command.CANCEL_ALL: _spec(CancelAllArgs, needs_reason=True),
    Command.FLATTEN: _spec(FlattenArgs, needs_reason=True),
    Command.HEARTBEAT: _spec(HeartbeatArgs, needs_reason=False),
}


def args_to_json(args: CommandArgs) -> dict[str, Any]:
    """The JSON form of a command's arguments (every field, defaults included)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(args):
        value = getattr(args, f.name)
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


# -------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class Request:
    """One parsed, validated request. Its fields are the wire's top-level keys."""

    v: int
    id: str
    cmd: Command
    args: CommandArgs
    who: str
    reason: str
    ts: float
    nonce: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the request (what ``encode_request`` writes)."""
        return {
            "v": self.v,
            "id": self.id,
            "cmd": self.cmd.value,
            "args": args_to_json(self.args),
            "who": self.who,
            "reason": self.reason,
            "ts": self.ts,
            "nonce": self.nonce,
        }


_ENVELOPE = frozenset(f.name for f in dataclasses.fields(Request))
_REQUIRED_ENVELOPE = _ENVELOPE - {"who", "reason"}  # those two are checked per command


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` of a refusal."""

    code: ErrorCode
    text: str


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: ``result`` when ok, ``error`` otherwise (exactly one of them is set)."""

    v: int
    id: str | None
    result: Mapping[str, Any] | None = None
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("a response has either a result or an error")

    @property
    def ok(self) -> bool:
        """Whether the request was carried out."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the response."""
        out: dict[str, Any] = {"v": self.v, "id": self.id, "ok": self.ok}
        if self.error is not None:
            out["error"] = {"code": self.error.code.value, "text": self.error.text}
        else:
            out["result"] = dict(self.result or {})
        return out


def answer(request: Request, result: Mapping[str, Any]) -> Response:
    """The success response to ``request``, in the request's version."""
    return Response(request.v, request.id, result=result)


def refusal(error: ProtocolError) -> Response:
    """The error response for ``error``, to its request id and in its version."""
    return Response(error.version, error.request_id, error=ErrorInfo(error.code, error.text))


# ---------------------------------------------------------------------- framing
class FrameReader:
    """Cut a byte stream into frames of at most ``max_frame`` bytes (with the newline).

    ``feed`` returns, in order, each complete frame (its bytes without the
    newline) or a ``ProtocolError`` with code ``oversized`` for a line that
    does not fit. An oversized line is reported as soon as it is known to be
    too long, and the rest of it, up to its newline, is skipped without being
    kept: the reader never holds more than ``max_frame - 1`` bytes. The list
    returned is as long as the number of newlines fed (plus one), so the
    caller bounds it by the size of what it reads at once.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if max_frame < 2:
            raise ValueError("max_frame must leave room for at least one byte and the newline")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held (always < ``max_frame``)."""
        return len(self._buf)

    @property
    def skipping(self) -> bool:
        """Whether the reader is discarding the rest of an oversized line."""
        return self._skipping

    def _oversized(self) -> ProtocolError:
        return ProtocolError(
            ErrorCode.OVERSIZED,
            f"a frame is at most {self.max_frame} bytes with its newline; this line is longer "
            "and was skipped up to its newline",
        )

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes | ProtocolError]:
        """Add ``data``; return the frames and oversized lines it completes."""
        raw = data if isinstance(data, bytes | bytearray) else bytes(data)
        view = memoryview(raw)
        out: list[bytes | ProtocolError] = []
        start, end = 0, len(raw)
        while start < end:
            newline = raw.find(b"\n", start, end)
            stop = end if newline < 0 else newline
            if self._skipping:
                pass
            elif len(self._buf) + (stop - start) >= self.max_frame:
                # Too long even before its newline: report it now, keep nothing of it.
                out.append(self._oversized())
                self._buf.clear()
                self._skipping = True
            else:
                self._buf += view[start:stop]
            if newline < 0:
                break
            if not self._skipping:
                out.append(bytes(self._buf))
            self._buf.clear()
            self._skipping = False
            start = newline + 1
        return out

    def finish(self) -> ProtocolError | None:
        """At the end of the stream: a ``malformed`` error if a frame was cut off."""
        cut = bool(self._buf)
        self._buf.clear()
        self._skipping = False
        if cut:
            return ProtocolError(
                ErrorCode.MALFORMED, "the stream ended in the middle of a frame (no newline)"
            )
        return None


# ------------------------------------------------------------------------ JSON
class _BadJson(ValueError):
    """Valid JSON syntax that this protocol refuses (duplicate keys, NaN, huge numbers)."""


def show(value: object, limit: int = 40) -> str:
    """A short, ASCII-only rendering of an untrusted value for an error text."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadJson(f"duplicate key {show(key)}")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _BadJson(f"an integer of more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson("a number out of the range of a double")
    return value


def _json_constant(text: str) -> Any:
    raise _BadJson(f"{text} is not JSON")


def load_object(frame: bytes, what: str, quiet: bool = False) -> dict[str, Any]:
    """Decode one frame (one trailing newline allowed) to a JSON object, strictly.

    ``quiet``: the error texts say what is wrong but repeat nothing of the
    frame (for frames not yet authenticated).
    """
    body = frame[:-1] if frame.endswith(b"\n") else frame
    if len(body) >= MAX_FRAME:
        raise ProtocolError(
            ErrorCode.OVERSIZED,
            f"the {what} is {len(body) + 1} bytes with its newline; the limit is {MAX_FRAME}",
        )
    if b"\n" in body:
        raise ProtocolError(ErrorCode.MALFORMED, f"a {what} is one line: it contains a newline")
    try:
        text = bytes(body).decode("utf-8")
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
        )
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.MALFORMED, f"the {what} is not UTF-8") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.MALFORMED, f"the {what} is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError and _BadJson
        detail = "" if quiet and isinstance(exc, _BadJson) else f": {exc}"
        raise ProtocolError(ErrorCode.MALFORMED, f"the {what} is not valid JSON{detail}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.MALFORMED, f"the {what} must be a JSON object")
    return obj


def dumps(obj: Mapping[str, Any]) -> bytes:
    """One compact JSON line in UTF-8 (raises TypeError/ValueError/UnicodeEncodeError)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def check_version(v: object, what: str, request_id: str | None = None) -> int:
    """Return ``v`` if this side speaks it; refuse it naming both versions otherwise.

    ``what`` is ``"request"`` (checked by the agent) or ``"response"`` (by a client).
    """
    if not isinstance(v, int) or isinstance(v, bool):
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"the {what} needs an integer protocol version v, got {show(v)}",
            request_id=request_id,
        )
    if OLDEST_PROTOCOL_VERSION <= v <= PROTOCOL_VERSION:
        return v
    me = "agent" if what == "request" else "client"
    span = (
        f"{PROTOCOL_VERSION}"
        if OLDEST_PROTOCOL_VERSION == PROTOCOL_VERSION
        else f"{OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
    )
    if v > PROTOCOL_VERSION:
        nearest, hint = PROTOCOL_VERSION, f"upgrade the {me}, or send version {PROTOCOL_VERSION}"
    else:
        nearest, hint = OLDEST_PROTOCOL_VERSION, f"send version {OLDEST_PROTOCOL_VERSION} or newer"
    raise ProtocolError(
        ErrorCode.UNSUPPORTED_VERSION,
        f"the {what} is protocol version {show(v)}; this {me} speaks version {span}: {hint}",
        request_id=request_id,
        version=nearest,
    )


# ---------------------------------------------------------------------- requests
def _text(value: object, name: str, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters; at most {limit}")
    if not value.isprintable():
        raise ValueError(f"{name} must be printable text (no control characters or newlines)")
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _parse_args(cmd: Command, spec: CommandSpec, raw: object) -> CommandArgs:
    if not isinstance(raw, dict):
        raise ValueError(f"args must be a JSON object, got {type(raw).__name__}")
    known = {rule.name for rule in spec.rules}
    unknown = sorted(set(raw) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no arguments"
        names = ", ".join(show(k) for k in unknown[:5])
        raise ValueError(f"{cmd.value} takes {takes}; unknown: {names}")
    values: dict[str, Any] = {}
    for rule in spec.rules:
        if rule.name not in raw:
            if rule.required:
                raise ValueError(f"{cmd.value} needs the argument {rule.name}")
            continue
        value = raw[rule.name]
        if rule.kind is bool or rule.kind is int:
            if type(value) is not rule.kind:  # pylint: disable=unidiomatic-typecheck # bool is an int
                raise ValueError(f"{rule.name} must be a {rule.kind.__name__}, got {show(value)}")
        elif not isinstance(value, str):
            raise ValueError(f"{rule.name} must be a string, got {type(value).__name__}")
        elif rule.choices and value not in rule.choices:
            raise ValueError(
                f"{rule.name} must be one of {', '.join(rule.choices)}, got {show(value)}"
            )
        elif rule.pattern is not None and not rule.pattern.fullmatch(value):
            raise ValueError(f"{rule.name} must match {rule.pattern.pattern}, got {show(value)}")
        values[rule.name] = rule.kind(value) if issubclass(rule.kind, enum.Enum) else value
    return spec.args(**values)


def parse_request(
    frame: bytes,
    now: float,
    window_s: float = DEFAULT_WINDOW_S,
    *,
    lenient: Collection[Command] = (),
) -> Request:
    """Parse and validate one request frame; raise ``ProtocolError`` on anything wrong.

    The checks, in order: size, UTF-8 JSON object, ``v`` (before anything a
    newer version may have added), the envelope's keys and types, the command,
    ``who`` and ``reason``, the command's arguments, and last ``ts`` within
    ``window_s`` of ``now`` (``expired``, past or future). Every error after
    ``id`` was read carries it. A command in ``lenient`` skips only the last
    check (the agent's policy for tightening commands; ``is_expired`` tells).
    """
    obj = load_object(frame, "request")
    rid = obj.get("id")
    request_id = rid if isinstance(rid, str) and ID_RE.fullmatch(rid) else None
    v = check_version(obj.get("v"), "request", request_id)

    def malformed(text: str) -> ProtocolError:
        return ProtocolError(ErrorCode.MALFORMED, text, request_id=request_id, version=v)

    unknown = sorted(set(obj) - _ENVELOPE)
    if unknown:
        names = ", ".join(show(k) for k in unknown[:5])
        raise malformed(f"unknown key(s) {names}; a version {v} request has {sorted(_ENVELOPE)}")
    missing = sorted(_REQUIRED_ENVELOPE - set(obj))
    if missing:
        raise malformed(f"the request lacks {', '.join(missing)}")
    if request_id is None:
        raise malformed(f"id must be a string matching {ID_RE.pattern}, got {show(rid)}")
    cmd_raw = obj["cmd"]
    if not isinstance(cmd_raw, str):
        raise malformed(f"cmd must be a string, got {type(cmd_raw).__name__}")
    try:
        cmd = Command(cmd_raw)
    except ValueError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown command {show(cmd_raw)}; version {v} has "
            + ", ".join(c.value for c in Command),
            request_id=request_id,
            version=v,
        ) from None
    ts = obj["ts"]
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise malformed(f"ts must be a number (Unix seconds), got {type(ts).__name__}")
    nonce = obj["nonce"]
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        raise malformed(f"nonce must be 16 to 64 lowercase hex digits, got {show(nonce)}")

    spec = COMMANDS[cmd]
    try:
        if "who" not in obj:
            raise ValueError("who (the operator or component asking) is required")
        who = _text(obj["who"], "who", MAX_WHO, required=True)
        reason = _text(obj.get("reason", ""), "reason", MAX_REASON, required=spec.needs_reason)
        args = _parse_args(cmd, spec, obj["args"])
    except ValueError as exc:
        raise ProtocolError(
            ErrorCode.BAD_ARGS, f"{cmd.value}: {exc}", request_id=request_id, version=v
        ) from None

    skew = float(ts) - now
    if cmd not in lenient and not -window_s <= skew <= window_s:
        when = "in the future" if skew > 0 else "old"
        raise ProtocolError(
            ErrorCode.EXPIRED,
            f"the request is {abs(skew):.1f} s {when}; the agent accepts {window_s:g} s either "
            "way: check both clocks (NTP) and send a fresh request",
            request_id=request_id,
            version=v,
        )
    return Request(v, request_id, cmd, args, who, reason, float(ts), nonce)


def is_expired(request: Request, now: float, window_s: float = DEFAULT_WINDOW_S) -> bool:
    """Whether ``request``'s ``ts`` is outside ``window_s`` of ``now`` (past or future)."""
    return not -window_s <= request.ts - now <= window_s


def encode_request(
    cmd: Command | str,
    args: CommandArgs | Mapping[str, Any] | None = None,
    *,
    who: str,
    reason: str = "",
    request_id: str | None = None,
    ts: float | None = None,
    nonce: str | None = None,
    v: int = PROTOCOL_VERSION,
) -> bytes:
    """One request frame; raise ``ProtocolError`` if the agent would refuse its content.

    ``request_id``, ``ts`` and ``nonce`` default to a random id, the current
    time and 16 random bytes. The frame is checked with ``parse_request``
    itself, so a client never sends what the agent's parser refuses.
    """
    ts = time.time() if ts is None else ts
    if args is None:
        args_json: Any = {}
    elif isinstance(args, Mapping):
        args_json = dict(args)
    else:
        args_json = args_to_json(args)
    obj = {
        "v": v,
        "id": request_id if request_id is not None else secrets.token_hex(8),
        "cmd": cmd.value if isinstance(cmd, Command) else cmd,
        "args": args_json,
        "who": who,
        "reason": reason,
        "ts": ts,
        "nonce": nonce if nonce is not None else secrets.token_hex(16),
    }
    try:
        frame = dumps(obj)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise ProtocolError(
            ErrorCode.BAD_ARGS, f"the request cannot be encoded: {type(exc).__name__}"
        ) from None
    parse_request(frame, now=float(ts) if isinstance(ts, int | float) else 0.0)
    return frame


# --------------------------------------------------------------------- responses
def encode_response(response: Response) -> bytes:
    """One response frame; ``internal`` if the result cannot be sent (not JSON, too big)."""
    try:
        frame = dumps(response.as_dict())
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            ErrorCode.INTERNAL,
            f"the agent's answer cannot be encoded as JSON ({type(exc).__name__})",
            request_id=response.id,
            version=response.v,
        ) from None
    if len(frame) > MAX_FRAME:
        raise ProtocolError(
            ErrorCode.INTERNAL,
            f"the agent's answer is {len(frame)} bytes, over the frame limit {MAX_FRAME}",
            request_id=response.id,
            version=response.v,
        )
    return frame


def parse_response(frame: bytes) -> Response:
    """Parse one response frame; raise ``ProtocolError`` if it is not a valid response."""
    obj = load_object(frame, "response")
    v = check_version(obj.get("v"), "response")
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError(ErrorCode.MALFORMED, "ok must be true or false")
    expected = {"v", "id", "ok", "result" if ok else "error"}
    if set(obj) != expected:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"a response with ok={str(ok).lower()} has {sorted(expected)}"
        )
    rid = obj["id"]
    if rid is not None and not (isinstance(rid, str) and ID_RE.fullmatch(rid)):
        raise ProtocolError(ErrorCode.MALFORMED, "id must be null or a request id")
    if ok:
        result = obj["result"]
        if not isinstance(result, dict):
            raise ProtocolError(ErrorCode.MALFORMED, "result must be a JSON object")
        return Response(v, rid, result=result)
    error = obj["error"]
    if not isinstance(error, dict) or set(error) != {"code", "text"}:
        raise ProtocolError(ErrorCode.MALFORMED, "error must be an object with code and text")
    code, text = error["code"], error["text"]
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.MALFORMED, "error.text must be a string")
    try:
        return Response(v, rid, error=ErrorInfo(ErrorCode(code), text))
    except ValueError:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"unknown error code {show(code)} in a version {v} response"
        ) from None
