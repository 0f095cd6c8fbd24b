"""``tradeops kill`` on the 8-host loopback fleet: real agents, real sshd, TCP and warm SSH.

Skipped without root/unshare/sshd, failed instead under ``CI=true`` (like the
other fleet tests). Each host runs ``tradeops agent run`` started over SSH as
a background process; the agents are stopped by their PIDs at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeops.agent.fleetkill import Order, run_tcp
from tradeops.agent.sshpool import SshPool
from tradeops.testing.agentfleet import AgentFleet, start_agents
from tradeops.tradingstate import read_state

TRADEOPS = Path(sys.executable).parent / "tradeops"
SIZE = 8


@pytest.fixture(scope="module")
def agents(module_fleet_factory) -> Iterator[AgentFleet]:
    fleet = module_fleet_factory(SIZE, name="fk")
    started = start_agents(fleet)
    try:
        yield started
    finally:
        started.stop()


def _reset(agents: AgentFleet) -> None:
    result = run_tcp(agents.hosts, Order.reset("test", "fleet kill test setup"), timeout_s=5)
    assert result.confirmed, result.as_dict()


def _states(agents: AgentFleet) -> list[str]:
    """Each host's trading state as its strategies read it (not through the agent).

    The trading-state file, not the agent's own file: a halt is confirmed once
    published there; the agent's file follows on its loop's next turn.
    """
    return [
        read_state(agents.fleet.host_dir(host) / "state" / "trading_state").state.name
        for host in agents.fleet.hosts
    ]


def _kill(agents: AgentFleet, *extra: str) -> tuple[int, dict]:
    argv = [str(TRADEOPS), "kill", "-i", str(agents.inventory_path), "--json", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.fleet
def test_every_agent_runs_on_its_own_host(agents):
    assert len(agents.pids) == SIZE
    assert len(set(agents.pids.values())) == SIZE
    _reset(agents)
    assert _states(agents) == ["ACTIVE"] * SIZE


@pytest.mark.fleet
def test_kill_over_tcp_halts_every_host(agents):
    _reset(agents)
    code, doc = _kill(agents, "--who", "oncall", "--reason", "fleet test tcp")
    assert code == 0, doc
    assert doc["transport"] == "tcp"
    assert [h["halted"] for h in doc["hosts"]] == [True] * SIZE
    assert _states(agents) == ["HALTED"] * SIZE
    key = (agents.fleet.host_dir(1) / "shared" / "secrets" / "kill.key").read_text().strip()
    assert key not in json.dumps(doc)


@pytest.mark.fleet
def test_kill_over_ssh_halts_every_host(agents):
    _reset(agents)
    code, doc = _kill(agents, "--transport", "ssh", "--who", "oncall", "--reason", "fleet ssh")
    assert code == 0, doc
    assert doc["transport"] == "ssh"
    assert [h["halted"] for h in doc["hosts"]] == [True] * SIZE
    assert {h["via"] for h in doc["hosts"]} == {"agent"}
    assert _states(agents) == ["HALTED"] * SIZE


@pytest.mark.fleet
def test_a_warm_pool_serves_many_commands(agents):
    with SshPool(agents.hosts) as pool:
        assert set(pool.connect().values()) == {None}
        for _unused in range(3):
            reset = pool.run(Order.reset("test", "warm pool drill"), timeout_s=5)
            assert reset.confirmed, reset.as_dict()
            assert _states(agents) == ["ACTIVE"] * SIZE
            halt = pool.run(Order.of("halt", "oncall", "warm pool drill"), timeout_s=5)
            assert halt.confirmed, halt.as_dict()
            assert _states(agents) == ["HALTED"] * SIZE


@pytest.mark.fleet
def test_ssh_exec_mode_runs_the_hosts_own_cli(agents):
    _reset(agents)
    code, doc = _kill(
        agents, "--transport", "ssh", "--ssh-mode", "exec", "--timeout", "20",
        "--who", "oncall", "--reason", "exec mode", "--host", "fk-1", "--host", "fk-2",
    )  # fmt: skip
    assert code == 0, doc
    assert [h["host"] for h in doc["hosts"]] == ["fk-1", "fk-2"]
    assert _states(agents)[:2] == ["HALTED", "HALTED"]
    assert _states(agents)[2:] == ["ACTIVE"] * (SIZE - 2)
