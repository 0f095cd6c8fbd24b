"""Kill-switch agents on a loopback test fleet, and the fleet-kill inventory that reaches them.

``start_agents(fleet)`` writes, on each host (through ``fleet.host_dir``), a
key (mode 0600) and an agent config with a TCP listener on the host's own
loopback address; starts ``tradeops agent run`` on the host as a background
process over SSH; waits (bounded) until it answers; records its PID (from its
own ``status`` answer) and writes ``<state>/kill.yml`` for ``tradeops kill``
(both transports). ``AgentFleet.stop()`` stops exactly those PIDs. Used by
tests/integration/agent/test_fleet_kill.py and bench/bench_fleet_kill.py.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tradeops.agent.auth import SigningKey, generate_key
from tradeops.agent.client import AgentClient, AgentError
from tradeops.agent.fleetkill import Order, run_tcp
from tradeops.agent.killinventory import KillHost, load_inventory
from tradeops.testing.fleet import Fleet, FleetHost

AGENT_PORT = 7301
KEY_ID = "kill"
START_WAIT_S = 30.0
STOP_WAIT_S = 10.0
POLL_S = 0.05


class AgentFleetError(RuntimeError):
    """An agent did not start, or did not stop."""


@dataclass
class AgentFleet:
    """The agents started on a fleet: their PIDs and the kill inventory."""

    fleet: Fleet
    inventory_path: Path
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def hosts(self) -> list[KillHost]:
        """The kill inventory's hosts."""
        return load_inventory(self.inventory_path)

    def stop(self) -> None:
        """SIGTERM each recorded agent PID (checked to be that agent), then SIGKILL; bounded."""
        left: list[str] = []
        for name, pid in list(self.pids.items()):
            if _is_agent(pid, self._config(name)):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for name, pid in list(self.pids.items()):
            while _is_agent(pid, self._config(name)) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if _is_agent(pid, self._config(name)):
                os.kill(pid, signal.SIGKILL)
                left.append(f"{name} (pid {pid}) needed SIGKILL")
            self.pids.pop(name)
        if left:
            raise AgentFleetError("; ".join(left))

    def _config(self, name: str) -> str:
        """The config path every host's agent runs with (the same path in each namespace)."""
        return f"{self.fleet.data_root}/shared/agent.yml"


def _is_agent(pid: int, config: str) -> bool:
    """Whether ``pid`` is alive (not a zombie) and runs ``tradeops agent run`` on ``config``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat[stat.rindex(")") + 2] == "Z":
        return False
    return b"agent" in argv and b"run" in argv and config.encode() in argv


def _prepare(fleet: Fleet, host: FleetHost, port: int) -> dict[str, object]:
    base = fleet.host_dir(host)
    root = str(fleet.data_root)
    (base / "shared" / "secrets").mkdir(parents=True, exist_ok=True)
    (base / "shared" / "log").mkdir(parents=True, exist_ok=True)
    key = base / "shared" / "secrets" / "kill.key"
    if key.exists():
        key.unlink()
    generate_key(key)
    keys = {KEY_ID: f"{root}/shared/secrets/kill.key"}
    config = {
        "format": 1,
        "root": root,
        "unix": {"allowed_uids": [0]},
        "tcp": {"listen": f"{host.address}:{port}", "keys": keys},
        "log": f"{root}/shared/log/agent.jsonl",
    }
    (base / "shared" / "agent.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return {
        "name": host.name,
        "tcp": f"{host.address}:{port}",
        "key_file": str(key),
        "ssh": {"host": host.address, "port": host.port},
    }


def _launch(fleet: Fleet, host: FleetHost, venv: Path) -> None:
    root = fleet.data_root
    command = (
        f"setsid {shlex.quote(str(venv / 'bin' / 'tradeops'))} agent run "
        f"--config {root}/shared/agent.yml </dev/null >>{root}/shared/log/agent.out 2>&1 &"
    )
    done = fleet.ssh(host, command, timeout=30)
    if done.returncode != 0:
        raise AgentFleetError(f"{host.name}: cannot start the agent: {done.stderr.strip()}")


def start_agents(fleet: Fleet, port: int = AGENT_PORT, venv: Path | None = None) -> AgentFleet:
    """Start an agent on every host of ``fleet``; return them once each answers ``status``."""
    venv = venv or Path(sys.prefix)
    hosts = [_prepare(fleet, h, port) for h in fleet.hosts]
    doc = {
        "format": 1,
        "defaults": {
            "key_id": KEY_ID,
            "root": str(fleet.data_root),
            "venv": str(venv),
            "ssh": {
                "user": "root",
                "key_file": str(fleet.private_key_path),
                "known_hosts": str(fleet.known_hosts_path),
            },
        },
        "hosts": hosts,
    }
    inventory = fleet.state_dir / "kill.yml"
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    agents = AgentFleet(fleet, inventory)
    with ThreadPoolExecutor(max_workers=max(1, len(fleet.hosts))) as pool:
        list(pool.map(lambda h: _launch(fleet, h, venv), fleet.hosts))
    status = Order.of("status", "agentfleet")
    result = None
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:  # bounded in time; each pass bounded by its timeout
        result = run_tcp(agents.hosts, status, timeout_s=1.0, retries=0)
        if all(h.state is not None for h in result.hosts):
            break
        time.sleep(0.1)
    if result is None or not all(h.state is not None for h in result.hosts):
        errors = [f"{h.host}: {h.error}" for h in (result.hosts if result else [])]
        agents.pids.update(_pids_from_status(agents))
        agents.stop()
        raise AgentFleetError("agents did not answer: " + "; ".join(errors))
    agents.pids.update(_pids_from_status(agents))
    return agents


def _pids_from_status(agents: AgentFleet) -> dict[str, int]:
    """Each agent's PID, from its own ``status`` answer (one PID namespace: the fleet's too)."""
    out: dict[str, int] = {}
    for host in agents.hosts:
        if host.tcp is None or host.key_id is None or host.key_file is None:
            continue
        client = AgentClient(tcp=host.tcp, key=SigningKey.load(host.key_id, host.key_file))
        try:
            response = client.request("status", who="agentfleet")
        except AgentError:
            continue
        pid = (response.result or {}).get("agent", {}).get("pid")
        if isinstance(pid, int):
            out[host.name] = pid
    return out
