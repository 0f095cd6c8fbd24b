"""The killswitch module against a real agent in a thread, and with the agent down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.agent.agentkit import Running, running_agent, write_config
from tradeops.agent.state import StateMachine
from tradeops.modrun import api
from tradeops.modrun.killswitch import check_config
from tradeops.tradingstate import TradingState, read_state

from .conftest import REPO, handle


def ks_params(root: Path, state: str = "status", **over: Any) -> dict[str, Any]:
    """The killswitch module's params as the action plugin sends them (defaults in)."""
    params: dict[str, Any] = {
        "root": str(root),
        "state": state,
        "who": None,
        "reason": None,
        "reason_code": "MANUAL",
        "force": False,
        "socket": None,
        "timeout": 2.0,
        "liveness_max_age": 1.0,
    }
    params.update(over)
    return params


def ks(
    root: Path, state: str = "status", check: bool = False, diff: bool = False, **over: Any
) -> dict[str, Any]:
    """Run the module through the versioned host API, as both module paths do."""
    return handle(
        {
            "api": api.API_VERSION,
            "module": "killswitch",
            "params": ks_params(root, state, **over),
            "check_mode": check,
            "diff": diff,
        }
    )


def file_state(root: Path) -> TradingState:
    """What strategies read: the trading-state file."""
    return read_state(root / "state" / "trading_state").state


def agent_state(run: Running) -> str:
    """What the agent says, asked directly."""
    response = run.unix.request("status", who="test")
    assert response.result is not None
    return str(response.result["state"]["state"])


WHO = {"who": "alice", "reason": "drill"}


def test_status_reads_the_agent_and_its_liveness_and_changes_nothing(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        out = ks(root)
        assert out["changed"] is False
        assert (out["state"], out["via"], out["agent_reachable"]) == ("HALTED", "agent", True)
        assert out["trading_state"]["reasons"] == ["STARTUP"]
        assert out["liveness"]["alive"] is True
        assert out["agent"]["version"] == api.host_library()["version"]
        assert [r for r in run.audit() if r.get("event") == "command"] == []


def test_reset_then_halt_change_the_state_once_each(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        out = ks(root, "active", diff=True, **WHO)
        assert (out["changed"], out["action"], out["previous_state"]) == (True, "reset", "HALTED")
        assert out["state"] == "ACTIVE"
        assert out["diff"]["before"] == "HALTED\n"
        assert out["diff"]["after"] == "ACTIVE\n"
        assert out["transition"]["not_reset"]  # says what it does not reset
        assert file_state(root) is TradingState.ACTIVE
        assert ks(root, "active", **WHO)["changed"] is False  # idempotent

        out = ks(root, "halted", reason_code="DRAWDOWN", **WHO)
        assert (out["changed"], out["action"], out["state"]) == (True, "halt", "HALTED")
        assert out["trading_state"]["reasons"] == ["DRAWDOWN"]
        again = ks(root, "halted", **WHO)
        assert (again["changed"], again["action"]) == (False, "none")
        assert agent_state(run) == "HALTED"
        commands = [r for r in run.audit() if r.get("event") == "command"]
        assert [(r["cmd"], r["who"], r["why"]) for r in commands] == [
            ("reset", "alice", "drill"),
            ("halt", "alice", "drill"),
        ]


def test_reducing_trips_from_active_and_resets_from_halted(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        assert ks(root, "reducing", **WHO)["action"] == "reset"  # HALTED -> REDUCING loosens
        assert agent_state(run) == "REDUCING"
        ks(root, "active", **WHO)
        out = ks(root, "reducing", **WHO)
        assert (out["action"], out["state"]) == ("reduce", "REDUCING")
        assert file_state(root) is TradingState.REDUCING


def test_check_mode_reports_the_change_and_sends_nothing(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        out = ks(root, "active", check=True, diff=True, **WHO)
        assert (out["changed"], out["action"], out["state"]) == (True, "reset", "ACTIVE")
        assert out["diff"]["after"] == "ACTIVE\n"
        assert agent_state(run) == "HALTED"
        assert file_state(root) is TradingState.HALTED
        assert [r for r in run.audit() if r.get("event") == "command"] == []


@pytest.mark.parametrize(
    "missing", [{"who": "alice"}, {"reason": "go"}, {"who": " ", "reason": "x"}]
)
def test_a_change_without_who_and_reason_is_refused_and_changes_nothing(
    tmp_path: Path, missing: dict[str, str]
) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        out = ks(root, "active", **missing)
        assert out["failed"] is True
        assert "needs who and reason" in out["msg"]
        assert agent_state(run) == "HALTED"
        assert file_state(root) is TradingState.HALTED


def test_a_reset_the_agent_refuses_fails_and_is_not_a_change(tmp_path: Path) -> None:
    with running_agent(tmp_path) as run:
        root = run.config.root
        # The condition that tripped the host still holds: the agent refuses the reset.
        run.agent.holding = lambda: [run.agent.machine.snapshot.reasons[0]]
        out = ks(root, "active", **WHO)
        assert out["failed"] is True
        assert out["changed"] is False
        assert "still holds" in out["msg"]
        assert agent_state(run) == "HALTED"
        forced = ks(root, "active", force=True, **WHO)
        assert (forced["changed"], forced["state"]) == (True, "ACTIVE")
        assert forced["transition"]["forced"] is True


def test_halt_with_the_agent_down_writes_halted_itself_and_warns(tmp_path: Path) -> None:
    root = tmp_path / "root"
    StateMachine(root).reset(TradingState.ACTIVE, "alice", "trading")  # then the agent died
    status = ks(root)
    assert (status["state"], status["via"], status["agent_reachable"]) == (
        "ACTIVE",
        "state-file",
        False,
    )
    assert status["liveness"]["alive"] is False

    check = ks(root, "halted", check=True, **WHO)
    assert (check["changed"], check["via"]) == (True, "module-fallback")
    assert file_state(root) is TradingState.ACTIVE

    out = ks(root, "halted", **WHO)
    assert (out["changed"], out["state"], out["via"]) == (True, "HALTED", "module-fallback")
    assert "nothing was cancelled" in out["warnings"][0]
    assert file_state(root) is TradingState.HALTED
    assert read_state(root / "state" / "trading_state").reason.startswith("AGENT_DOWN")
    audit = [json.loads(line) for line in (root / "state/audit.jsonl").read_text().splitlines()]
    assert any(r.get("via") == "module-fallback" and r.get("who") == "alice" for r in audit)
    assert ks(root, "halted", **WHO)["changed"] is False


def test_reset_and_reduce_with_the_agent_down_fail_and_change_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    StateMachine(root)  # a new host: HALTED
    for state in ("active", "reducing"):
        out = ks(root, state, **WHO)
        assert out["failed"] is True
        assert "through the agent only" in out["msg"]
        assert file_state(root) is TradingState.HALTED


def test_an_unknown_reason_code_is_refused(tmp_path: Path) -> None:
    out = ks(tmp_path, "halted", reason_code="BECAUSE", **WHO)
    assert out["failed"] is True
    assert "BECAUSE" in out["msg"]


def test_check_config_uses_the_agents_loader(tmp_path: Path) -> None:
    good = tmp_path / "agent.yml"
    good.write_text(yaml.safe_dump(write_config(tmp_path)))
    assert "a valid agent config" in check_config(str(good))
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({**write_config(tmp_path), "limitz": {}}))
    cmd = [sys.executable, "-m", "tradeops.modrun.killswitch", "--check-config"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True, cwd=REPO, check=False)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(
        [*cmd, str(bad)], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert refused.returncode == 2
    assert "unknown key(s) limitz" in refused.stderr
