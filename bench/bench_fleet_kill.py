"""Benchmark of ``tradeops kill`` on the 8-host loopback fleet, over TCP and over warm SSH.

Brings up an 8-host loopback SSH fleet, starts a real ``tradeops agent run`` on
each host (``tradeops.testing.agentfleet``), then ``RUNS`` trials per
transport. Each trial resets every agent to ACTIVE through the same transport
(a signed ``reset`` with who and reason), checks it, then times one fan-out
of ``halt`` from its start until the last host's answer confirmed HALTED:

* ``fleet_kill_8_hosts_ms``: signed TCP, one asyncio connection per host
  (keys read once, one event loop kept; a connection per command);
* ``fleet_kill_8_hosts_ssh_ms``: a warm paramiko pool (logged in once, one
  relay channel per host kept open); the SSH handshake is timed apart
  (``ssh_pool_connect_ms``, once) and is not part of the figure.

Also ``host_ms``: every host's own answer time, pooled over the trials; and
``fleet_status_8_hosts_ms``: a ``status`` fan-out after each halt, the same
round trips without the agents' durable writes (each halt fsyncs the trading
state file, the agent's state file and the audit log: on this machine's one
shared virtual disk, 8 agents' fsyncs queue behind each other).
Targets (issue 13): p99 <= 20 ms over TCP, <= 100 ms over SSH. Prints the
figures and writes ``bench/results/fleet_kill.json``. The agents are stopped
by their PIDs and the fleet torn down at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import write_result  # noqa: E402

from tradeops.agent.fleetkill import FleetResult, Order, fan_out_tcp, prepare_tcp  # noqa: E402
from tradeops.agent.sshpool import SshPool  # noqa: E402
from tradeops.testing.agentfleet import start_agents  # noqa: E402
from tradeops.testing.fleet import DEFAULT_PORT, Fleet, find_free_first_address  # noqa: E402

SIZE = 8
RUNS = 100
WARMUP = 5
TIMEOUT_S = 5.0
WHO = "bench"


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
    }


def check(result: FleetResult, what: str) -> None:
    if not result.confirmed:
        raise SystemExit(f"bench: {what} not confirmed: {json.dumps(result.as_dict())}")


def trials(run: Any, label: str) -> dict[str, list[float]]:
    """WARMUP + RUNS trials of reset-then-halt with ``run(order)``; the halts' times."""
    totals: list[float] = []
    hosts: list[float] = []
    statuses: list[float] = []
    reset = Order.reset(WHO, f"bench {label}: reset between trials")
    halt = Order.of("halt", WHO, f"bench {label}: fleet kill trial")
    status = Order.of("status", WHO)
    for i in range(WARMUP + RUNS):
        check(run(reset), f"{label} reset {i}")
        result = run(halt)
        check(result, f"{label} halt {i}")
        asked = run(status)  # the same round trip without the agents' durable writes
        check(asked, f"{label} status {i}")
        if i >= WARMUP:
            totals.append(result.total_ms)
            hosts.extend(h.ms for h in result.hosts)
            statuses.append(asked.total_ms)
    return {"total": totals, "hosts": hosts, "status": statuses}


def run() -> dict[str, Any]:
    """The figures of a fleet kill on the 8-host loopback fleet (started and stopped here)."""
    state = Path(tempfile.mkdtemp(prefix="tob-fk-", dir="/tmp"))
    first = find_free_first_address(SIZE, DEFAULT_PORT)
    fleet = Fleet(state, SIZE, name="fk", first_address=first)
    agents = None
    try:
        started = time.monotonic()
        fleet.up()
        agents = start_agents(fleet)
        took = time.monotonic() - started
        print(f"bench: {SIZE} hosts with agents up in {took:.1f}s", flush=True)
        hosts = agents.hosts

        loop = asyncio.new_event_loop()
        targets = prepare_tcp(hosts)
        try:
            tcp = trials(
                lambda order: loop.run_until_complete(fan_out_tcp(targets, order, TIMEOUT_S)),
                "tcp",
            )
        finally:
            loop.close()
        print(f"bench: tcp p50 {statistics.median(tcp['total']):.2f} ms", flush=True)

        with SshPool(hosts) as pool:
            t0 = time.perf_counter()
            errors = pool.connect()
            connect_ms = (time.perf_counter() - t0) * 1000
            if any(errors.values()):
                raise SystemExit(f"bench: ssh pool: {errors}")
            ssh = trials(lambda order: pool.run(order, TIMEOUT_S), "ssh")
        print(f"bench: ssh p50 {statistics.median(ssh['total']):.2f} ms", flush=True)

        figures = {
            "fleet_kill_8_hosts_ms": summary(tcp["total"]),
            "fleet_kill_8_hosts_ssh_ms": summary(ssh["total"]),
            "host_ms": {"tcp": summary(tcp["hosts"]), "ssh": summary(ssh["hosts"])},
            "fleet_status_8_hosts_ms": {
                "tcp": summary(tcp["status"]),
                "ssh": summary(ssh["status"]),
            },
            "ssh_pool_connect_ms": round(connect_ms, 3),
            "targets_p99_ms": {"tcp": 20, "ssh": 100},
            "hosts": SIZE,
            "warmup": WARMUP,
        }
    finally:
        if agents is not None:
            agents.stop()
        fleet.down()
        shutil.rmtree(state, ignore_errors=True)
    return figures


def main() -> int:
    figures = run()
    path = write_result("fleet_kill", figures)
    print(json.dumps(figures, indent=2))
    print(f"bench: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
