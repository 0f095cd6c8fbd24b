"""The agent's protocol: each command both ways, every refusal code, versioning, responses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.protokit import NOW, frame, request_dict
from tradeops.agent.protocol import (
    COMMANDS,
    MAX_ERROR_TEXT,
    MAX_FRAME,
    MAX_REASON,
    MAX_WHO,
    OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    CancelAllArgs,
    Command,
    ErrorCode,
    ErrorInfo,
    FlattenArgs,
    HaltArgs,
    HeartbeatArgs,
    ProtocolError,
    ReduceArgs,
    Request,
    ResetArgs,
    Response,
    StatusArgs,
    answer,
    encode_request,
    encode_response,
    parse_request,
    parse_response,
    refusal,
)
from tradeops.agent.reasons import Reason


def _refused(data: bytes, now: float = NOW) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_request(data, now)
    return info.value


# ------------------------------------------------------------------ happy paths
ALL_ARGS = [
    (Command.HALT, HaltArgs(reason_code=Reason.DAILY_LOSS)),
    (Command.HALT, HaltArgs()),
    (Command.REDUCE, ReduceArgs(reason_code=Reason.FEED_STALE)),
    (Command.RESET, ResetArgs(scope="fleet", force=True, target="REDUCING")),
    (Command.RESET, ResetArgs()),
    (Command.STATUS, StatusArgs()),
    (Command.CANCEL_ALL, CancelAllArgs()),
    (Command.FLATTEN, FlattenArgs()),
    (Command.HEARTBEAT, HeartbeatArgs(strategy="mm.eu-1")),
]


@pytest.mark.parametrize(("cmd", "args"), ALL_ARGS)
def test_every_command_encoded_by_a_client_is_parsed_by_the_agent(cmd: Command, args: Any) -> None:
    data = encode_request(
        cmd, args, who="alice", reason="drill 42", request_id="r-1", ts=NOW - 1.25, nonce="ab" * 8
    )
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    request = parse_request(data, NOW)
    assert request == Request(1, "r-1", cmd, args, "alice", "drill 42", NOW - 1.25, "ab" * 8)
    assert json.loads(data) == request.as_dict()


def test_arguments_left_out_take_their_defaults() -> None:
    assert parse_request(frame(request_dict("halt", args={})), NOW).args == HaltArgs(
        reason_code=Reason.MANUAL
    )
    reset = parse_request(frame(request_dict("reset", args={})), NOW).args
    assert reset == ResetArgs(scope="host", force=False, target="ACTIVE")


@pytest.mark.parametrize("cmd", ["status", "heartbeat"])
def test_status_and_heartbeat_need_no_reason(cmd: str) -> None:
    obj = request_dict(cmd)
    del obj["reason"]
    assert parse_request(frame(obj), NOW).reason == ""
    assert parse_request(frame({**obj, "reason": ""}), NOW).reason == ""


def test_strings_at_their_limits_and_non_ascii_text_are_accepted() -> None:
    obj = request_dict(
        "halt", who="é" * MAX_WHO, reason="€" * MAX_REASON, id="x" * 64, nonce="f" * 64
    )
    request = parse_request(frame(obj), NOW)
    assert (request.who, request.reason) == ("é" * MAX_WHO, "€" * MAX_REASON)


@pytest.mark.parametrize("skew", [-5.0, 5.0, 0.0])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew: float) -> None:
    assert parse_request(frame(request_dict(ts=NOW + skew)), NOW).ts == NOW + skew


def test_an_integer_timestamp_is_read_as_a_float() -> None:
    request = parse_request(frame(request_dict(ts=int(NOW))), NOW)
    assert request.ts == NOW
    assert isinstance(request.ts, float)


def test_a_frame_of_exactly_max_frame_bytes_is_accepted_one_more_is_oversized() -> None:
    body = frame(request_dict())[:-1]
    exact = body + b" " * (MAX_FRAME - 1 - len(body)) + b"\n"  # JSON allows trailing blanks
    assert len(exact) == MAX_FRAME
    assert parse_request(exact, NOW).id == "req-1"
    assert parse_request(exact[:-1], NOW).id == "req-1"  # the newline is optional
    over = exact[:-1] + b" \n"
    assert _refused(over).code is ErrorCode.OVERSIZED
    assert str(MAX_FRAME) in _refused(over).text


def test_encode_request_fills_id_time_and_a_fresh_nonce() -> None:
    one = parse_request(encode_request("status", who="ops"), NOW, window_s=1e12)
    two = parse_request(encode_request("status", who="ops"), NOW, window_s=1e12)
    assert one.nonce != two.nonce
    assert one.id != two.id
    assert len(one.nonce) == 32


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"cmd": "halt", "who": "x" * (MAX_WHO + 1), "reason": "r"}, ErrorCode.BAD_ARGS),
        ({"cmd": "halt", "who": "alice"}, ErrorCode.BAD_ARGS),  # halt needs a reason
        ({"cmd": "teleport", "who": "alice"}, ErrorCode.UNKNOWN_COMMAND),
        ({"cmd": "heartbeat", "who": "s", "args": {"strategy": "a b"}}, ErrorCode.BAD_ARGS),
        ({"cmd": "status", "who": "s", "args": {"x": object()}}, ErrorCode.BAD_ARGS),
        ({"cmd": "status", "who": "s", "v": 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({"cmd": "status", "who": "\ud800"}, ErrorCode.BAD_ARGS),
        ({"cmd": "status", "who": "s", "nonce": "short"}, ErrorCode.MALFORMED),
    ],
)
def test_encode_request_refuses_what_the_agent_would_refuse(
    kwargs: dict[str, Any], code: ErrorCode
) -> None:
    with pytest.raises(ProtocolError) as info:
        encode_request(**kwargs)
    assert info.value.code is code


# ------------------------------------------------------------------- refusals
def _without(key: str, cmd: str = "halt") -> dict[str, Any]:
    obj = request_dict(cmd)
    del obj[key]
    return obj


MALFORMED_FRAMES = {
    "empty": b"",
    "blank line": b"\n",
    "not UTF-8": b'{"v":1,"who":"\xff"}',
    "a UTF-16 frame": json.dumps(request_dict()).encode("utf-16"),
    "not JSON": b"halt now",
    "a JSON array": b"[1,2]",
    "a JSON string": b'"halt"',
    "a byte order mark": "\ufeff".encode() + frame(request_dict()),
    "NaN": frame(request_dict()).replace(b'"ts":1700000000.0', b'"ts":NaN'),
    "Infinity": frame(request_dict()).replace(b'"ts":1700000000.0', b'"ts":-Infinity'),
    "a float beyond a double": frame(request_dict()).replace(b'"ts":1700000000.0', b'"ts":1e999'),
    "a 20-digit integer": frame(request_dict()).replace(b'"v":1', b'"v":10000000000000000000'),
    "a 4000-digit integer": frame(request_dict()).replace(b'"v":1', b'"v":1' + b"0" * 4000),
    "a duplicate key": frame(request_dict())[:-2] + b',"who":"mallory"}\n',
    "nested 5000 deep": b'{"v":1,"x":' + b"[" * 4000 + b"]" * 4000 + b"}",
    "a newline inside": frame(request_dict()).replace(b",", b",\n", 1),
    "no v": frame(_without("v")),
    "v a string": frame(request_dict(v="1")),
    "v a bool": frame(request_dict(v=True)),
    "v a float": frame(request_dict(v=1.0)),
    "an unknown top-level key": frame({**request_dict(), "priority": 1}),
    "no id": frame(_without("id")),
    "no cmd": frame(_without("cmd")),
    "no args": frame(_without("args")),
    "no ts": frame(_without("ts")),
    "no nonce": frame(_without("nonce")),
    "id empty": frame(request_dict(id="")),
    "id with a space": frame(request_dict(id="a b")),
    "id too long": frame(request_dict(id="x" * 65)),
    "id a number": frame(request_dict(id=7)),
    "cmd a number": frame(request_dict(cmd=1)),
    "ts a string": frame(request_dict(ts="1700000000")),
    "ts a bool": frame(request_dict(ts=True)),
    "ts null": frame(request_dict(ts=None)),
    "nonce too short": frame(request_dict(nonce="0123456789abcde")),
    "nonce too long": frame(request_dict(nonce="0" * 65)),
    "nonce upper case": frame(request_dict(nonce="0123456789ABCDEF")),
    "nonce not hex": frame(request_dict(nonce="0123456789abcdeg")),
    "nonce a number": frame(request_dict(nonce=1234567890123456)),
}


@pytest.mark.parametrize("data", MALFORMED_FRAMES.values(), ids=MALFORMED_FRAMES.keys())
def test_what_is_not_a_request_is_refused_as_malformed(data: bytes) -> None:
    assert _refused(data).code is ErrorCode.MALFORMED


BAD_ARGS = {
    "no who": _without("who"),
    "who empty": request_dict(who=""),
    "who blank": request_dict(who="   "),
    "who too long": request_dict(who="x" * (MAX_WHO + 1)),
    "who with a newline": request_dict(who="al\nice"),
    "who a number": request_dict(who=7),
    "who a lone surrogate": request_dict(who="\ud800"),
    "halt without a reason": _without("reason", "halt"),
    "reduce without a reason": _without("reason", "reduce"),
    "reset without a reason": _without("reason", "reset"),
    "cancel-all without a reason": _without("reason", "cancel-all"),
    "flatten without a reason": _without("reason", "flatten"),
    "halt with a blank reason": request_dict("halt", reason=" "),
    "reason too long": request_dict("status", reason="x" * (MAX_REASON + 1)),
    "reason with a control character": request_dict("status", reason="a\x00b"),
    "reason a list": request_dict("status", reason=["a"]),
    "args a list": request_dict("status", args=[]),
    "args null": request_dict("status", args=None),
    "status with an argument": request_dict("status", args={"verbose": True}),
    "cancel-all with an argument": request_dict("cancel-all", args={"symbol": "X"}),
    "halt with an unknown argument": request_dict("halt", args={"reason": "x"}),
    "halt with an unknown reason code": request_dict("halt", args={"reason_code": "BORED"}),
    "halt with a lower-case reason code": request_dict("halt", args={"reason_code": "manual"}),
    "halt with a null reason code": request_dict("halt", args={"reason_code": None}),
    "reset scope unknown": request_dict("reset", args={"scope": "planet"}),
    "reset force a string": request_dict("reset", args={"force": "yes"}),
    "reset force an integer": request_dict("reset", args={"force": 1}),
    "reset target HALTED": request_dict("reset", args={"target": "HALTED"}),
    "heartbeat without a strategy": request_dict("heartbeat", args={}),
    "heartbeat strategy with a space": request_dict("heartbeat", args={"strategy": "a b"}),
    "heartbeat strategy too long": request_dict("heartbeat", args={"strategy": "s" * 65}),
    "heartbeat strategy a number": request_dict("heartbeat", args={"strategy": 3}),
}


@pytest.mark.parametrize("obj", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_arguments_who_and_reason_that_do_not_fit_the_command_are_bad_args(
    obj: dict[str, Any],
) -> None:
    error = _refused(frame(obj))
    assert error.code is ErrorCode.BAD_ARGS
    assert error.request_id == "req-1"  # the agent can answer the client's id
    assert error.text.startswith(f"{obj['cmd']}: ")


@pytest.mark.parametrize("cmd", ["HALT", "kill", "", "cancel_all", "\ud800" * 100])
def test_an_unknown_command_is_refused_naming_the_known_ones(cmd: str) -> None:
    error = _refused(frame(request_dict(cmd=cmd)))
    assert error.code is ErrorCode.UNKNOWN_COMMAND
    assert all(c.value in error.text for c in Command)
    assert error.text.isascii()
    assert len(error.text) < 300


@pytest.mark.parametrize(("skew", "word"), [(-5.001, "old"), (5.001, "future"), (-1e9, "old")])
def test_a_timestamp_outside_the_window_is_expired(skew: float, word: str) -> None:
    error = _refused(frame(request_dict(ts=NOW + skew)))
    assert error.code is ErrorCode.EXPIRED
    assert word in error.text
    assert "5 s" in error.text


def test_the_window_is_checked_last_so_a_stale_bad_request_says_what_is_wrong() -> None:
    assert _refused(frame(request_dict(ts=0.0, who=""))).code is ErrorCode.BAD_ARGS


def test_refusals_never_repeat_long_untrusted_values() -> None:
    error = _refused(frame({**request_dict(), "k" * 5000: 1}))
    assert error.code is ErrorCode.MALFORMED
    assert len(error.text) <= MAX_ERROR_TEXT
    assert "k" * 50 not in error.text


# ----------------------------------------------------------------- versioning
def test_a_newer_request_is_refused_naming_both_versions_and_answered_in_ours() -> None:
    # Version 2 may add commands, arguments and keys: none of them is read.
    obj = {**request_dict(v=2, cmd="teleport"), "priority": "high"}
    error = _refused(frame(obj))
    assert error.code is ErrorCode.UNSUPPORTED_VERSION
    assert "version 2" in error.text
    assert f"speaks version {PROTOCOL_VERSION}" in error.text
    assert error.request_id == "req-1"
    response = parse_response(encode_response(refusal(error)))
    assert response.v == PROTOCOL_VERSION
    assert response.id == "req-1"


@pytest.mark.parametrize("v", [0, -1, OLDEST_PROTOCOL_VERSION - 1])
def test_an_older_request_than_the_oldest_is_refused(v: int) -> None:
    error = _refused(frame(request_dict(v=v)))
    assert error.code is ErrorCode.UNSUPPORTED_VERSION
    assert error.version == OLDEST_PROTOCOL_VERSION


def test_the_agent_answers_in_the_requests_version() -> None:
    request = parse_request(frame(request_dict("status")), NOW)
    assert answer(request, {"state": "HALTED"}).v == request.v
    # A later agent speaking several versions answers each request in its own.
    older = dataclasses.replace(request, v=7)
    assert answer(older, {}).v == 7
    error = _refused(frame(request_dict("status", who="")))
    assert refusal(error).v == request.v


def test_every_command_has_a_spec_and_every_spec_a_command() -> None:
    assert set(COMMANDS) == set(Command)
    assert {c.value for c in Command} == {
        "halt", "reduce", "reset", "status", "cancel-all", "flatten", "heartbeat",
    }  # fmt: skip


# ------------------------------------------------------------------ responses
def test_a_success_encoded_by_the_agent_is_parsed_by_the_client() -> None:
    request = parse_request(frame(request_dict("status")), NOW)
    result = {"state": "HALTED", "reasons": ["MANUAL"], "who": "é", "n": 1, "x": None}
    data = encode_response(answer(request, result))
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    response = parse_response(data)
    assert response == Response(1, "req-1", result=result)
    assert response.ok


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_encoded_by_the_agent_is_parsed_by_the_client(code: ErrorCode) -> None:
    error = ProtocolError(code, f"because {code}", request_id="r9")
    response = parse_response(encode_response(refusal(error)))
    assert not response.ok
    assert response == Response(1, "r9", error=ErrorInfo(code, f"because {code}"))


def test_a_refusal_before_the_id_was_read_has_a_null_id() -> None:
    data = encode_response(refusal(_refused(b"garbage")))
    assert json.loads(data)["id"] is None
    assert parse_response(data).id is None


def test_an_answer_that_cannot_be_sent_is_an_internal_error() -> None:
    request = parse_request(frame(request_dict("status")), NOW)
    for result in ({"x": object()}, {"x": float("nan")}, {"x": "y" * MAX_FRAME}):
        with pytest.raises(ProtocolError) as info:
            encode_response(answer(request, result))
        assert info.value.code is ErrorCode.INTERNAL
        assert info.value.request_id == "req-1"
        assert parse_response(encode_response(refusal(info.value))).error is not None


def test_error_texts_are_cut_to_fit_a_frame() -> None:
    error = ProtocolError(ErrorCode.REFUSED, "€" * 5000, request_id="x" * 64)
    assert len(error.text) == MAX_ERROR_TEXT
    assert len(encode_response(refusal(error))) <= MAX_FRAME


def test_a_response_has_a_result_or_an_error_never_both_or_neither() -> None:
    with pytest.raises(ValueError, match="either"):
        Response(1, "a")
    with pytest.raises(ValueError, match="either"):
        Response(1, "a", result={}, error=ErrorInfo(ErrorCode.INTERNAL, "x"))


BAD_RESPONSES = {
    "not JSON": (b"ok", ErrorCode.MALFORMED),
    "oversized": (b'{"v":1}' + b" " * MAX_FRAME, ErrorCode.OVERSIZED),
    "a newer version": (b'{"v":2,"id":null,"ok":true,"result":{}}', ErrorCode.UNSUPPORTED_VERSION),
    "no version": (b'{"id":null,"ok":true,"result":{}}', ErrorCode.MALFORMED),
    "ok a string": (b'{"v":1,"id":null,"ok":"yes","result":{}}', ErrorCode.MALFORMED),
    "ok without a result": (b'{"v":1,"id":null,"ok":true}', ErrorCode.MALFORMED),
    "ok with an error": (
        b'{"v":1,"id":null,"ok":true,"result":{},"error":{"code":"internal","text":""}}',
        ErrorCode.MALFORMED,
    ),
    "result a list": (b'{"v":1,"id":null,"ok":true,"result":[]}', ErrorCode.MALFORMED),
    "a bad id": (b'{"v":1,"id":"a b","ok":true,"result":{}}', ErrorCode.MALFORMED),
    "an unknown key": (b'{"v":1,"id":null,"ok":true,"result":{},"x":1}', ErrorCode.MALFORMED),
    "an unknown error code": (
        b'{"v":1,"id":null,"ok":false,"error":{"code":"boom","text":""}}',
        ErrorCode.MALFORMED,
    ),
    "an error without text": (
        b'{"v":1,"id":null,"ok":false,"error":{"code":"internal"}}',
        ErrorCode.MALFORMED,
    ),
    "an error text a number": (
        b'{"v":1,"id":null,"ok":false,"error":{"code":"internal","text":1}}',
        ErrorCode.MALFORMED,
    ),
}


@pytest.mark.parametrize(("data", "code"), BAD_RESPONSES.values(), ids=BAD_RESPONSES.keys())
def test_the_client_refuses_a_response_that_is_not_one(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_response(data)
    assert info.value.code is code


def test_the_protocol_page_names_every_command_argument_and_error_code() -> None:
    page = (Path(__file__).parents[3] / "docs" / "agent-protocol.md").read_text(encoding="utf-8")
    names = [c.value for c in Command] + [e.value for e in ErrorCode]
    names += [rule.name for spec in COMMANDS.values() for rule in spec.rules]
    missing = [name for name in names if f"`{name}`" not in page]
    assert not missing, f"docs/agent-protocol.md does not name {missing}"
    for spec in COMMANDS.values():
        for rule in spec.rules:
            for choice in rule.choices if not issubclass(rule.kind, Reason) else ():
                assert f"`{choice}`" in page
