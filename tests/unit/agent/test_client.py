"""The synchronous client: one request, one response, clear errors."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.unit.agent.agentkit import running_agent
from tradeops.agent.client import (
    AgentClient,
    AgentPermissionDenied,
    AgentRefused,
    AgentUnreachable,
    checked,
)
from tradeops.agent.protocol import Command, ErrorCode
from tradeops_client.liveness import AgentLiveness


def test_no_agent_is_unreachable_and_says_so(tmp_path: Path) -> None:
    client = AgentClient(socket_path=tmp_path / "agent.sock", timeout_s=1.0)
    with pytest.raises(AgentUnreachable, match="not running"):
        client.request(Command.STATUS, who="ops")


def test_an_agent_that_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(path))
    silent.listen(1)  # accepts into the backlog, never answers
    try:
        client = AgentClient(socket_path=path, timeout_s=0.2)
        with pytest.raises(AgentUnreachable, match="did not answer"):
            client.request(Command.STATUS, who="ops")
    finally:
        silent.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root passes the socket's file permissions")
def test_a_socket_the_user_may_not_open_is_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(1)
    os.chmod(path, 0)
    try:
        with pytest.raises(AgentPermissionDenied):
            AgentClient(socket_path=path, timeout_s=1.0).request(Command.STATUS, who="ops")
    finally:
        sock.close()


def test_a_refusal_is_a_response_and_checked_raises_it(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        response = run.unix.request(Command.CANCEL_ALL, who="ops", reason="kill")
        assert response.error is not None
        with pytest.raises(AgentRefused, match="no risk session"):
            checked(response)
        assert checked(run.tcp.request(Command.STATUS, who="ops")).ok


def test_a_forbidden_peer_is_permission_denied(tmp_path: Path) -> None:
    with running_agent(tmp_path, unix={"allowed_uids": [os.getuid() + 1]}) as run:
        response = run.unix.request(Command.STATUS, who="ops")
        assert response.error is not None
        assert response.error.code is ErrorCode.FORBIDDEN
        with pytest.raises(AgentPermissionDenied):
            checked(response)


def test_the_tcp_client_needs_a_key() -> None:
    with pytest.raises(ValueError, match="signing key"):
        AgentClient(tcp=("127.0.0.1", 1))


def test_a_running_agent_publishes_its_liveness(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        liveness = AgentLiveness(run.config.liveness.path, max_age_s=3600)
        assert liveness.alive()
        assert liveness.beat().pid == os.getpid()
    assert not liveness.alive()  # the agent stopped: readers treat the host as HALTED
