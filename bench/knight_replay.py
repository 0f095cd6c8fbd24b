"""The Knight replay and the breaker's detection time (parts of make bench).

``knight_replay``: the simulator subprocess (``RiskSim``: two symbols at 100,
orders filled one lot per 100 ms tick, so that they stay working), a real
agent process (``tradeops agent run``: warm risk session, drop copy, the
breakers below, ``enforcement.on_halt: stop`` with the strategy's pid file),
then the real reference strategy (``python -m tradeops_refapp run``) on the
simulator's order-entry session in ``runaway`` mode with
``ignore_trading_state: true``: Knight's revived dead code, which checks
nothing, so only the agent can stop it. Each run measures, from the
simulator's first execution report of the strategy's first order (its log's
``exec`` line, which is written as the report leaves the simulator):

* ``ms_to_halted``: the agent's ``breaker_trip`` log line (written on the
  synchronous path right before HALTED is published in place);
* ``ms_to_frozen``: the agent's ``freeze`` step (SIGSTOP sent);
* ``ms_to_cancel_confirmed``: the ``cancel_all`` step (the venue said clean);
* ``ms_to_process_stopped``: this process reaps the strategy (SIGKILLed by the
  agent ``kill_after_s`` after its SIGTERM, which a frozen process never runs);
* ``ms_to_zero_working``: the first ``GET /state`` of the simulator's admin API
  (polled throughout) from which on the account has no working order;
* ``orders_at_venue``: the strategy's orders the simulator accepted or
  rejected (its ``exec`` lines), ``orders_after_halted`` those after HALTED.

``breaker_detect_ms``: a strategy stand-in in this process (an order-entry
``FixSession``) sends one marketable buy of 10 at ~100 against an exposure
breaker of 500 notional per symbol; from the simulator's first execution
report of that order (its log line) to the agent's ``breaker_trip`` line.
Between trials the stand-in sells the position back, and an unforced
operator reset re-arms the breaker.

Time is the wall clock of each log line (``CLOCK_REALTIME``, one clock for
every process of the host, microseconds). Every wait is bounded; every
process started here is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from tradeops.agent.protocol import Command  # noqa: E402
from tradeops.brokers.base import NewOrder, OrdType, SessionRole, Side  # noqa: E402
from tradeops.testing.agentproc import AgentProcess, cleanup, short_root, until  # noqa: E402
from tradeops.testing.faultrig import read_events  # noqa: E402
from tradeops.testing.riskbook import (  # noqa: E402
    ACCOUNT,
    DC,
    OE,
    PRICE,
    RISK,
    OrderEntry,
    RiskSim,
    symbols,
)

RUNS = 5
TRIALS = 25
RUNAWAY_RATE_PER_S = 200
RUN_TIMEOUT_S = 60.0

# What an operator would set for this strategy: it quotes 10 lots a side and never
# holds more than 100 per symbol, nor sends more than a few orders a second.
KNIGHT_BREAKERS: dict[str, Any] = {
    "version": 1,
    "child_qty": {"action": "halt", "default_intended_qty": 100},
    "exposure": {"action": "halt", "max_symbol_notional": 20_000, "max_total_notional": 30_000},
    "msg_rate": {"window_s": 1.0, "max_new_orders": 50, "max_messages": 200},
    "feed_stale": {"enabled": False},  # no market data section: exposure marks at last trade
    "error_burst": {"enabled": False},
}
DETECT_BREAKERS: dict[str, Any] = {
    "version": 1,
    "exposure": {"action": "halt", "max_symbol_notional": 500},
    "feed_stale": {"enabled": False},
    "error_burst": {"enabled": False},
}


def ts(record: dict[str, Any]) -> float:
    """A log line's ``ts`` (RFC 3339, UTC) as seconds since the epoch."""
    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()


def summary_ms(values_s: list[float]) -> dict[str, Any]:
    """{p50, p99, max, n} in milliseconds."""
    ordered = sorted(values_s)
    n = len(ordered)

    def pct(p: float) -> float:
        return round(ordered[min(n - 1, int(p * n))] * 1000, 3)

    return {"p50": pct(0.50), "p99": pct(0.99), "max": round(ordered[-1] * 1000, 3), "n": n}


def fix_section(sim: RiskSim, name: str, **extra: Any) -> dict[str, Any]:
    """The agent config of one of the simulator's sessions."""
    port = int(sim.ready["sessions"][name]["port"])
    return {"host": "127.0.0.1", "port": port, "sender_comp_id": name,
            "target_comp_id": "SIM", "account": ACCOUNT, **extra}  # fmt: skip


def sim_session(sim: RiskSim, name: str) -> dict[str, Any]:
    """The simulator's view of one session."""
    return dict(next(s for s in sim.get("/state")["sessions"] if s["name"] == name))


def account_working(sim: RiskSim) -> int:
    """Working orders of the account at the venue (``GET /state``)."""
    return sum(1 for o in sim.working_orders() if o["account"] == ACCOUNT)


@contextlib.contextmanager
def simulator(tmp: Path, **config: Any) -> Iterator[RiskSim]:
    """A simulator subprocess; stopped by its PID on exit."""
    sim = RiskSim.start(tmp, n_symbols=2, **config)
    try:
        yield sim
    finally:
        sim.stop()


@contextlib.contextmanager
def armed_agent(sim: RiskSim, breakers: dict[str, Any], **sections: Any) -> Iterator[AgentProcess]:
    """A real agent with risk session, drop copy and ``breakers``, reset to ACTIVE."""
    root = short_root()
    agent = AgentProcess.write(
        root,
        risk=fix_section(sim, RISK, heartbeat_s=30, reconnect_s=0.2, cancel_timeout_s=10),
        drop_copy=fix_section(sim, DC, heartbeat_s=1, reconnect_s=0.2),
        breakers={"config": breakers},
        **sections,
    )
    try:
        agent.start()
        until(lambda: bool(agent.status().get("risk", {}).get("logged_on")), "the risk session")
        until(lambda: bool(sim_session(sim, DC)["logged_on"]), "the drop copy to log on")
        reset = agent.reset(force=True)
        if not reset.ok:
            raise RuntimeError(f"the agent refused the first reset: {reset}")
        yield agent
    finally:
        agent.stop()
        cleanup(root)


# ---------------------------------------------------------------- knight_replay
def refapp_config(tmp: Path, sim: RiskSim, agent_root: Path) -> Path:
    """The real strategy's config: the order-entry session, runaway, no state check."""
    data = {
        "instance": "knight",
        "venue": {
            "host": "127.0.0.1",
            "port": int(sim.ready["sessions"][OE]["port"]),
            "sender_comp_id": OE,
            "target_comp_id": "SIM",
            "store_dir": str(tmp / "refapp-fix"),
            "reconnect_delay_s": 0.5,
        },
        "account": ACCOUNT,
        "symbols": symbols(2),
        "quoting": {"size": 10, "interval_s": 0.2},
        "limits": {"max_position": 100, "max_order_qty": 100},
        "db": f"sqlite:///{tmp / 'refapp.db'}",
        "http": {"bind": "127.0.0.1", "port": 0},
        "trading_state_path": str(agent_root / "state" / "trading_state"),
        "agent_liveness": {"path": str(agent_root / "run" / "agent-liveness"), "max_age_s": 0.5},
        "log_file": str(tmp / "refapp.jsonl"),
        "fault_mode": "runaway",
        "fault": {"rate_per_s": RUNAWAY_RATE_PER_S, "ignore_trading_state": True},
    }
    path = tmp / "refapp.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class VenuePoller:
    """Polls the simulator's ``GET /state`` in a thread: (time, working orders) samples."""

    def __init__(self, sim: RiskSim) -> None:
        self.sim = sim
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        for _attempt in range(200_000):  # bounded in count and time
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            with contextlib.suppress(OSError, ValueError):
                working = account_working(self.sim)
                self.samples.append((time.time(), working))
            time.sleep(0.002)

    def zero_for_good(self, after: float) -> float | None:
        """The time of the first sample after ``after`` from which on none is working."""
        found: float | None = None
        for at, working in self.samples:
            if at < after:
                continue
            if working == 0 and found is None:
                found = at
            elif working:
                found = None
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def knight_run(index: int) -> dict[str, Any]:
    """One replay: a fresh simulator, agent and runaway strategy."""
    with tempfile.TemporaryDirectory(prefix="bench-knight-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "run").mkdir()
        pidfile = tmp / "run" / "refapp.pid"
        program = {"program": "refapp", "manager": "pidfile", "pidfile": str(pidfile)}
        enforcement = {"processes": [program], "on_halt": "stop", "kill_after_s": 0.5}
        fill = {"max_qty_per_tick": 1}
        with (
            simulator(tmp, fill=fill) as sim,
            armed_agent(sim, KNIGHT_BREAKERS, enforcement=enforcement) as agent,
        ):
            poller = VenuePoller(sim)
            cfg = refapp_config(tmp, sim, agent.root)
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            with (tmp / "refapp.out").open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tradeops_refapp", "run", "--config", str(cfg)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            pidfile.write_text(str(proc.pid))
            gone: dict[str, float] = {}

            def reap() -> None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(RUN_TIMEOUT_S)
                    gone["at"] = time.time()

            reaper = threading.Thread(target=reap, daemon=True)
            reaper.start()
            try:
                reaper.join(RUN_TIMEOUT_S)
                if "at" not in gone:
                    raise RuntimeError(f"run {index}: the strategy was not stopped")
                report = agent.enforcement()
                until(lambda: account_working(sim) == 0, "zero working orders", 15)
                time.sleep(0.2)  # a few more venue samples past the end
            finally:
                poller.close()
                if proc.poll() is None:  # never past a failure: stop it by its PID
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGCONT)
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            state = agent.status()["state"]
            return measure(index, sim, agent, poller, gone["at"], report, state, proc.returncode)


def measure(
    index: int,
    sim: RiskSim,
    agent: AgentProcess,
    poller: VenuePoller,
    gone_at: float,
    report: dict[str, Any],
    state: dict[str, Any],
    returncode: int | None,
) -> dict[str, Any]:
    """One run's figures, from the simulator's and the agent's logs."""
    execs = [e for e in read_events(sim.log_file, "exec") if e.get("account") == ACCOUNT]
    new = {}
    for e in execs:
        if e["exec_type"] in ("0", "8", "F") and e["cl_ord_id"] not in new:
            new[e["cl_ord_id"]] = ts(e)
    if not new:
        raise RuntimeError(f"run {index}: no order of the strategy reached the venue")
    first = min(new.values())
    trips = agent.log_events("breaker_trip")
    if not trips:
        raise RuntimeError(f"run {index}: no breaker tripped: {state}")
    halted = ts(trips[0])
    steps = {s["step"]: ts(s) for s in reversed(agent.log_events("enforce_step"))}
    zero = poller.zero_for_good(halted)

    def ms(at: float | None) -> float | None:
        return None if at is None else round((at - first) * 1000, 3)

    return {
        "ms_to_halted": ms(halted),
        "ms_to_frozen": ms(steps.get("freeze")),
        "ms_to_cancel_confirmed": ms(steps.get("cancel_all")),
        "ms_to_process_stopped": ms(gone_at),
        "ms_to_zero_working": ms(zero),
        "orders_at_venue": len(new),
        "orders_after_halted": sum(1 for at in new.values() if at > halted),
        "tripped_by": trips[0].get("breaker"),
        "reason": trips[0].get("reason"),
        "why": str(trips[0].get("text", ""))[:160],
        "state": state["state"],
        "strategy_exit": returncode,
        "enforcement_ok": report["ok"],
        "steps": {k: v["ms"] for k, v in report["steps"].items()},
    }


def knight_replay(runs: int = RUNS) -> dict[str, Any]:
    """``runs`` replays; the median of each figure, and every run."""
    each = [knight_run(i) for i in range(runs)]
    out: dict[str, Any] = {}
    for key in ("ms_to_halted", "ms_to_process_stopped", "ms_to_zero_working", "orders_at_venue"):
        values = [r[key] for r in each if r[key] is not None]
        out[key] = statistics.median(values) if len(values) == runs else None
    for key in ("ms_to_frozen", "ms_to_cancel_confirmed", "orders_after_halted"):
        values = [r[key] for r in each if r[key] is not None]
        out[f"median_{key}"] = statistics.median(values) if values else None
    out["runs"] = each
    out["n"] = runs
    return out


# ----------------------------------------------------------- breaker_detect_ms
async def _detect_trials(sim: RiskSim, agent: AgentProcess, trials: int) -> list[float]:
    samples: list[float] = []
    cfg = sim.session_config(OE, SessionRole.ORDER_ENTRY)
    async with OrderEntry(cfg) as entry:
        for i in range(trials):
            symbol = symbols(2)[i % 2]
            cl = f"detect-{os.getpid()}-{i}"
            order = NewOrder(cl, symbol, Side.BUY, Decimal(10), OrdType.LIMIT, PRICE + 1)
            before = len(agent.log_events("breaker_trip"))
            await entry.session.send_order(order)
            await asyncio.to_thread(until, partial(_tripped, agent, before), f"trial {i}: a trip")
            await asyncio.to_thread(agent.enforcement)
            trip = agent.log_events("breaker_trip")[before]
            if trip.get("reason") != "WORKING_EXPOSURE":
                raise RuntimeError(f"trial {i}: tripped {trip}")
            execs = [e for e in read_events(sim.log_file, "exec") if e.get("cl_ord_id") == cl]
            samples.append(ts(trip) - ts(execs[0]))
            # Close the position (a reducing order), then an unforced operator reset.
            await entry.take({symbol: Decimal(-10)})
            await asyncio.to_thread(_reset_rearmed, agent, i)
    return samples


def _tripped(agent: AgentProcess, before: int) -> bool:
    return len(agent.log_events("breaker_trip")) > before


def _reset_rearmed(agent: AgentProcess, trial: int) -> None:
    box: dict[str, Any] = {}

    def rearmed() -> bool:
        answer = agent.reset(force=False)
        box["answer"] = answer
        result = dict(answer.result or {})
        return bool(answer.ok and "exposure" in result.get("breakers", {}).get("rearmed", []))

    try:
        until(rearmed, f"trial {trial}: an unforced reset re-arming exposure", 15)
    except AssertionError as exc:
        raise RuntimeError(f"{exc}: {box.get('answer')}") from None


def breaker_detect(trials: int = TRIALS) -> dict[str, Any]:
    """``trials`` breaching orders; the simulator's execution to the agent's trip."""
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmpdir:
        tmp = Path(tmpdir)
        with simulator(tmp) as sim, armed_agent(sim, DETECT_BREAKERS) as agent:
            samples = asyncio.run(asyncio.wait_for(_detect_trials(sim, agent, trials), 600))
            assert agent.request(Command.STATUS).ok
    return summary_ms(samples)


def run() -> dict[str, Any]:
    """Both figures and how they were measured."""
    figures: dict[str, Any] = {"knight_replay": knight_replay()}
    print("knight_replay", {k: v for k, v in figures["knight_replay"].items() if k != "runs"})
    figures["breaker_detect_ms"] = breaker_detect()
    print("breaker_detect_ms", figures["breaker_detect_ms"], flush=True)
    figures["setup"] = {
        "knight_replay": "simulator subprocess (2 symbols at 100, one lot filled per 100 ms"
        " tick); tradeops agent run with risk session, drop copy and breakers "
        f"{json.dumps(KNIGHT_BREAKERS, sort_keys=True)}, enforcement on_halt stop,"
        " kill_after_s 0.5; python -m tradeops_refapp run, fault_mode runaway at"
        f" {RUNAWAY_RATE_PER_S}/s, ignore_trading_state true. From the simulator's log line of"
        " the first execution report of the strategy's first order to: the agent's"
        " breaker_trip log line (HALTED is published right after it), this process reaping"
        " the strategy, the first GET /state with zero working orders for good. Median of"
        f" {RUNS} runs, each fresh.",
        "breaker_detect": "one marketable buy of 10 at ~100 from an order-entry FixSession"
        " against exposure max_symbol_notional 500 (halt); from the simulator's log line of"
        " the order's first execution report to the agent's breaker_trip log line; sell back,"
        " unforced reset re-arms between trials.",
    }
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
    raise SystemExit(0)
