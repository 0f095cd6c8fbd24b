"""The agent, live: both listeners, the shared dispatch, refusals audited, state unchanged."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.agentkit import KEY_ID, Running, running_agent
from tradeops.agent.auth import SigningKey, load_key
from tradeops.agent.protocol import MAX_FRAME, Command, ErrorCode, encode_request, parse_response
from tradeops.agent.state import Refused
from tradeops.tradingstate import read_state

HALTED, REDUCING, ACTIVE = "HALTED", "REDUCING", "ACTIVE"


def _state(run: Running) -> str:
    """The state as strategies see it (the file), checked against the agent's own."""
    record = read_state(run.config.root / "state" / "trading_state")
    assert record.state.name == run.agent.machine.snapshot.state.name
    return record.state.name


def _fingerprint(run: Running) -> tuple[Any, ...]:
    # A trip's durable writes run on the loop's turn after its answer: wait for them, so
    # that they are not mistaken for a change made by a refused frame.
    for _unused in range(500):  # bounded: 5 s
        if run.agent.machine.durable:
            break
        time.sleep(0.01)
    assert run.agent.machine.durable
    record = read_state(run.config.root / "state" / "trading_state")
    return record.state, record.generation, run.agent.machine.snapshot


def _reset(run: Running) -> None:
    response = run.unix.request(Command.RESET, {}, who="alice", reason="first day")
    assert response.ok, response
    assert _state(run) == ACTIVE


def _leaks(key: bytes, text: str) -> bool:
    return any(form in text for form in (key.hex(), key.hex().upper(), repr(key)))


@pytest.mark.parametrize("listener", ["unix", "tcp"])
def test_halt_reduce_reset_and_status_over_each_listener(tmp_path: Path, listener: str) -> None:
    with running_agent(tmp_path) as run:
        client = run.unix if listener == "unix" else run.tcp
        status = client.request(Command.STATUS, who="ops")
        assert status.ok
        assert status.result is not None
        assert status.result["state"]["state"] == HALTED  # a new host starts HALTED
        assert client.request(Command.RESET, {}, who="alice", reason="first day").ok
        assert _state(run) == ACTIVE
        reduced = client.request(
            Command.REDUCE, {"reason_code": "REJECT_RATE"}, who="bob", reason="rejects"
        )
        assert reduced.ok
        assert _state(run) == REDUCING
        assert client.request(Command.HALT, {}, who="bob", reason="drill").ok
        assert _state(run) == HALTED
        assert client.request(Command.STATUS, who="ops").result["state"]["reasons"] == [  # type: ignore[index]
            "REJECT_RATE",
            "MANUAL",
        ]
        events = [(r["event"], r.get("cmd")) for r in run.audit()]
        for cmd in ("reset", "reduce", "halt"):
            assert ("command", cmd) in events
        assert ("command", "status") not in events  # status changes nothing: not audited
        assert all(r["listener"] == listener for r in run.audit() if r["event"] == "command")


def test_a_reset_refused_by_the_state_machine_is_a_refusal(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        response = run.unix.request(Command.RESET, {"target": "REDUCING"}, who="a", reason="r")
        assert response.error is not None
        assert response.error.code is ErrorCode.REFUSED  # REDUCING from ACTIVE is a trip
        assert _state(run) == ACTIVE
        assert run.audit()[-1]["event"] == "refused"


def test_a_wrong_key_is_refused_audited_and_changes_nothing(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        before = _fingerprint(run)
        forged = SigningKey(KEY_ID, os.urandom(32))
        frame = forged.sign(encode_request(Command.HALT, who="mallory", reason="x"))
        (line,) = run.raw("tcp", frame)
        response = parse_response(line)
        assert response.error is not None
        assert response.error.code is ErrorCode.UNAUTHENTICATED
        assert _fingerprint(run) == before
        record = run.audit()[-1]
        assert (record["event"], record["code"], record["listener"]) == (
            "refused",
            "unauthenticated",
            "tcp",
        )
        assert len(record["excerpt"]) <= 32 * 4 + 3
        assert "mallory" not in json.dumps(record)  # nothing of the unauthenticated payload


def _signed_reset(run: Running, **kw: Any) -> bytes:
    return run.key.sign(encode_request(Command.RESET, {}, who="alice", reason="go", **kw))


def test_a_replayed_reset_is_refused_audited_and_changes_nothing(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        frame = _signed_reset(run)
        assert parse_response(run.raw("tcp", frame)[0]).ok  # HALTED -> ACTIVE
        assert run.unix.request(Command.HALT, {}, who="bob", reason="drill").ok
        before = _fingerprint(run)
        response = parse_response(run.raw("tcp", frame)[0])  # the same signed reset again
        assert response.error is not None
        assert response.error.code is ErrorCode.REPLAYED
        assert _fingerprint(run) == before
        assert _state(run) == HALTED
        assert (run.audit()[-1]["event"], run.audit()[-1]["code"]) == ("refused", "replayed")


def test_a_strategy_peer_may_beat_read_and_halt_but_never_reset(tmp_path: Path) -> None:
    other = os.getuid() + 4242
    unix = {"allowed_uids": [other], "strategy_uids": [os.getuid()]}
    with running_agent(tmp_path, unix=unix) as run:
        client = run.unix
        assert client.request(Command.HEARTBEAT, {"strategy": "blue"}, who="refapp").ok
        assert client.request(Command.STATUS, who="refapp").ok
        assert client.request(Command.HALT, {}, who="refapp", reason="my own fault").ok
        assert _state(run) == HALTED
        before = _fingerprint(run)
        response = client.request(Command.RESET, {}, who="refapp", reason="let me trade")
        assert response.error is not None
        assert response.error.code is ErrorCode.FORBIDDEN
        assert "needs an operator" in response.error.text
        assert _fingerprint(run) == before
        record = run.audit()[-1]
        assert (record["event"], record["code"], record["cmd"]) == ("refused", "forbidden", "reset")


@pytest.mark.parametrize("listener", ["unix", "tcp"])
def test_an_expired_reset_is_refused_audited_and_changes_nothing(
    tmp_path: Path, listener: str
) -> None:
    with running_agent(tmp_path) as run:
        before = _fingerprint(run)
        frame = encode_request(Command.RESET, {}, who="a", reason="r", ts=time.time() - 3600)
        if listener == "tcp":
            frame = run.key.sign(frame)
        response = parse_response(run.raw(listener, frame)[0])
        assert response.error is not None
        assert response.error.code is ErrorCode.EXPIRED
        assert _fingerprint(run) == before
        assert (run.audit()[-1]["event"], run.audit()[-1]["code"]) == ("refused", "expired")


@pytest.mark.parametrize("listener", ["unix", "tcp"])
@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_an_authenticated_halt_with_a_skewed_clock_is_carried_out_and_audited(
    tmp_path: Path, listener: str, skew: float
) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        frame = encode_request(Command.HALT, {}, who="ops", reason="kill", ts=time.time() + skew)
        if listener == "tcp":
            frame = run.key.sign(frame)
        assert parse_response(run.raw(listener, frame)[0]).ok
        assert _state(run) == HALTED
        (record,) = [r for r in run.audit() if r["event"] == "accepted_expired"]
        assert (record["cmd"], record["ok"]) == ("halt", True)


def test_a_replayed_halt_only_halts_again_and_is_audited(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        frame = run.key.sign(encode_request(Command.HALT, {}, who="ops", reason="kill"))
        assert parse_response(run.raw("tcp", frame)[0]).ok
        _reset(run)
        assert parse_response(run.raw("tcp", frame)[0]).ok
        assert _state(run) == HALTED
        assert [r["cmd"] for r in run.audit() if r["event"] == "accepted_replay"] == ["halt"]


def test_a_unix_peer_whose_uid_is_not_allowed_is_refused_audited_and_changes_nothing(
    tmp_path: Path,
) -> None:
    other = os.getuid() + 4242
    with running_agent(tmp_path, unix={"allowed_uids": [other], "allowed_gids": []}) as run:
        before = _fingerprint(run)
        frame = encode_request(Command.RESET, {}, who="alice", reason="let me in")
        response = parse_response(run.raw("unix", frame)[0])
        assert response.error is not None
        assert response.error.code is ErrorCode.FORBIDDEN
        assert _fingerprint(run) == before
        record = run.audit()[-1]
        assert (record["event"], record["code"]) == ("refused", "forbidden")
        assert f"uid={os.getuid()}" in record["peer"]


@pytest.mark.parametrize("listener", ["unix", "tcp"])
@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"x" * (MAX_FRAME + 10) + b"\n", ErrorCode.OVERSIZED),
        (b"{not json\n", ErrorCode.MALFORMED),
        (b"\xff\xfe\n", ErrorCode.MALFORMED),
        (b'{"v":1}', ErrorCode.MALFORMED),  # cut off: no newline before EOF
    ],
)
def test_oversized_and_malformed_frames_are_refused_audited_and_change_nothing(
    tmp_path: Path, listener: str, data: bytes, code: ErrorCode
) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        before = _fingerprint(run)
        lines = run.raw(listener, data)
        assert [parse_response(line).error.code for line in lines] == [code]  # type: ignore[union-attr]
        assert _fingerprint(run) == before
        record = run.audit()[-1]
        assert (record["event"], record["code"], record["listener"]) == ("refused", code, listener)
        assert run.unix.request(Command.STATUS, who="ops").ok  # still serving


def test_a_connection_is_closed_after_too_many_refusals(tmp_path: Path) -> None:
    with running_agent(tmp_path, limits={"max_errors_per_connection": 3}) as run:
        lines = run.raw("unix", b"junk\n" * 50)
        assert len(lines) == 3
        assert "closing it" in run.audit()[-1]["text"]


def test_the_key_appears_in_no_audit_record_or_log_line(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        key = load_key(tmp_path / "ctl.key")
        forged = SigningKey("nobody", os.urandom(32))
        run.raw("tcp", forged.sign(encode_request(Command.HALT, who="m", reason="x")))
        run.raw("tcp", _signed_reset(run, ts=time.time() - 100))
        assert run.tcp.request(Command.STATUS, who="ops").ok
        audit = (run.config.root / "state" / "audit.jsonl").read_text(encoding="utf-8")
        log = run.log.getvalue()
        assert "unauthenticated" in audit
        assert '"start"' in log
        assert not _leaks(key, audit)
        assert not _leaks(key, log)
        assert not _leaks(key, repr(run.agent.keys))


class FakeEnforcer:
    """Records calls; answers like a risk session that cancelled everything."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def cancel_all(self, who: str, why: str) -> Mapping[str, Any]:
        self.calls.append(("cancel_all", who, why))
        return {"working_orders": 0}

    async def flatten(self, who: str, why: str) -> Mapping[str, Any]:
        raise Refused("flatten is not allowed by policy")


def test_cancel_all_and_flatten_go_to_the_enforcer(tmp_path: Path) -> None:
    enforcer = FakeEnforcer()
    with running_agent(tmp_path, enforcer=enforcer) as run:
        old = run.key.sign(
            encode_request(Command.CANCEL_ALL, who="ops", reason="kill", ts=time.time() - 60)
        )
        response = parse_response(run.raw("tcp", old)[0])
        assert response.ok
        assert response.result == {"working_orders": 0}
        assert enforcer.calls == [("cancel_all", "ops", "kill")]
        assert run.audit()[-1]["event"] == "accepted_expired"
        flat = run.unix.request(Command.FLATTEN, who="ops", reason="flat")
        assert flat.error is not None
        assert (flat.error.code, flat.error.text) == (
            ErrorCode.REFUSED,
            "flatten is not allowed by policy",
        )


def test_without_a_risk_session_cancel_all_is_refused(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        response = run.unix.request(Command.CANCEL_ALL, who="ops", reason="kill")
        assert response.error is not None
        assert response.error.code is ErrorCode.REFUSED
        assert "no risk session configured" in response.error.text


def test_a_heartbeat_is_recorded_for_the_breakers(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        assert run.agent.heartbeat_ns("mm-1") is None
        response = run.unix.request(Command.HEARTBEAT, {"strategy": "mm-1"}, who="mm-1")
        assert response.ok
        assert response.result == {"strategy": "mm-1", "state": HALTED}
        first = run.agent.heartbeat_ns("mm-1")
        assert first is not None
        assert run.unix.request(Command.HEARTBEAT, {"strategy": "mm-1"}, who="mm-1").ok
        assert run.agent.heartbeat_ns("mm-1") >= first  # type: ignore[operator]
        assert "mm-1" in run.unix.request(Command.STATUS, who="ops").result["heartbeats"]  # type: ignore[index]


def test_the_socket_has_its_mode_and_a_second_agent_refuses_to_start(tmp_path: Path) -> None:
    from tradeops.agent.server import StartupError

    with running_agent(tmp_path) as run:
        path = run.config.unix.path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        second = running_agent(tmp_path, liveness={"path": str(tmp_path / "l2")})
        with pytest.raises(StartupError, match="another agent answers"), second:
            pass  # pragma: no cover
        assert run.unix.request(Command.STATUS, who="ops").ok  # the first one still serves
    assert not path.exists()  # removed on a clean stop


def test_a_stale_socket_is_replaced_but_another_file_is_not(tmp_path: Path) -> None:
    from tradeops.agent.server import StartupError

    sock_path = tmp_path / "root" / "run" / "agent.sock"
    sock_path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # a socket file nobody listens on: a crashed agent's
    with running_agent(tmp_path) as run:
        assert run.unix.request(Command.STATUS, who="ops").ok
    sock_path.write_text("not a socket")
    with pytest.raises(StartupError, match="not a socket"), running_agent(tmp_path):
        pass  # pragma: no cover
    assert sock_path.read_text() == "not a socket"
