"""``tradeops reset``: through the agent where one is installed, never around it."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.agentkit import running_agent
from tradeops.agent.reasons import Reason
from tradeops.cli.main import main
from tradeops.tradingstate import TradingState, read_state


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else out), err


def test_a_reset_goes_through_the_agent_and_says_what_it_does_not_reset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_agent(tmp_path) as run:
        root = str(run.config.root)
        code, data, _err = _run(
            capsys, "reset", "--root", root, "--who", "alice", "--reason", "INC-1", "--json"
        )
        assert code == 0
        assert data["via"] == "agent"
        assert data["after"]["state"] == "ACTIVE"
        assert "positions are not reopened" in data["not_reset"]
        assert run.agent.machine.snapshot.state is TradingState.ACTIVE
    resets = [r for r in run.audit() if r.get("event") == "reset"]
    assert resets
    assert resets[-1]["who"] == "alice"


def test_a_reset_refused_by_the_agent_is_refused_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holding = [Reason.DAILY_LOSS]
    with running_agent(tmp_path) as run:
        run.agent.holding = lambda: holding
        run.agent.machine.trip(TradingState.HALTED, Reason.DAILY_LOSS, "agent:breaker", "loss")
        root = str(run.config.root)
        code, _data, err = _run(capsys, "reset", "--root", root, "--who", "a", "--reason", "b")
        assert code == 1
        assert "DAILY_LOSS still holds" in err
        assert run.agent.machine.snapshot.state is TradingState.HALTED
        code, _data, _err = _run(
            capsys, "reset", "--root", root, "--who", "a", "--reason", "b", "--force"
        )
        assert code == 0
        assert run.agent.machine.snapshot.state is TradingState.ACTIVE


def test_an_installed_agent_that_does_not_answer_refuses_the_reset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A socket nobody accepts on (the agent crashed): the reset never goes around it.
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(root / "run" / "agent.sock"))
    dead.close()
    state_file = root / "state" / "trading_state"
    code, _data, err = _run(capsys, "reset", "--root", str(root), "--who", "a", "--reason", "b")
    assert code == 3
    assert "never goes around the agent" in err
    assert not state_file.exists()


def test_without_an_agent_the_reset_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    code, _data, _err = _run(capsys, "reset", "--root", str(root), "--who", "a", "--reason", "b")
    assert code == 0
    assert read_state(root / "state" / "trading_state").state is TradingState.ACTIVE
    code, _data, err = _run(
        capsys, "reset", "--root", str(root), "--who", "a", "--reason", "b", "--force"
    )
    assert code == 2
    assert "none runs here" in err
