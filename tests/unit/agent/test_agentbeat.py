"""The strategy client's heartbeat request, against the agent's own parser and a real agent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.unit.agent.agentkit import running_agent
from tradeops.agent.protocol import (
    Command,
    ErrorCode,
    HeartbeatArgs,
    ProtocolError,
    Response,
    encode_response,
    parse_request,
    refusal,
)
from tradeops_client.agentbeat import heartbeat_frame, read_answer, send_heartbeat


def test_the_clients_frame_is_a_valid_version_1_heartbeat_for_the_agent():
    now = time.time()
    request = parse_request(heartbeat_frame("refapp-blue", "refapp", now), now)
    assert request.cmd is Command.HEARTBEAT
    assert request.args == HeartbeatArgs(strategy="refapp-blue")
    assert (request.v, request.who) == (1, "refapp")


def test_a_name_the_agent_would_refuse_is_refused_here():
    with pytest.raises(ValueError, match="strategy name"):
        heartbeat_frame("no spaces", "refapp")


def test_the_client_reads_the_agents_answers():
    ok = encode_response(Response(1, "a", result={"strategy": "x", "state": "HALTED"}))
    assert read_answer(ok).state == "HALTED"
    no = encode_response(refusal(ProtocolError(ErrorCode.FORBIDDEN, "not you")))
    answer = read_answer(no)
    assert not answer.ok
    assert answer.error == "forbidden: not you"
    assert not read_answer(b"garbage\n").ok


def test_a_heartbeat_reaches_a_real_agent_and_a_missing_agent_is_said(tmp_path: Path):
    with running_agent(tmp_path) as run:
        answer = send_heartbeat(str(run.config.unix.path), "refapp", "refapp:refapp")
        assert answer.ok
        assert answer.state == "HALTED"  # a new host starts HALTED
        assert run.agent.heartbeat_ns("refapp") is not None
    gone = send_heartbeat(str(run.config.unix.path), "refapp", "refapp:refapp")
    assert not gone.ok
    assert "unreachable" in (gone.error or "")
