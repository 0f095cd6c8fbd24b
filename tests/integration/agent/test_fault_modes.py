"""The reference strategy in each fault mode, guarded by a real agent, against the simulator.

One simulator subprocess serves the module, with one account per test (its own
order entry for the refapp, drop copy and risk session for the agent), so the
tests never see each other's orders or positions. Each test runs a real
``tradeops agent run`` (risk session, drop copy, market data, the breakers an
operator would set for this strategy, ``enforcement.processes`` naming the
refapp through a pid file) and the real refapp (``tradeops refapp run``), which
reads the agent's trading-state and liveness files. The refapp sends no agent
heartbeat itself: a sidecar (:class:`tradeops.testing.faultrig.HeartbeatBridge`)
beats for it while its ``/healthz`` answers.

Every verdict about the book is the venue's (``GET /state``), never the agent's
report alone. The venue fills one lot per tick, so marketable orders stay
working a moment and a cancel has work to do. Processes are the tests' own,
stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tradeops.testing.agentproc import AgentProcess, cleanup, short_root, until
from tradeops.testing.faultrig import (
    SYMBOLS,
    Account,
    CpuHog,
    HeartbeatBridge,
    RefAppProcess,
    Venue,
)
from tradeops.tradingstate import TradingState, read_state

pytestmark = pytest.mark.slow

N_ACCOUNTS = 12  # at least one per test of this module
# The breakers that can stop a runaway from the drop copy.
RUNAWAY_REASONS = {"MSG_RATE", "WORKING_EXPOSURE", "CHILD_EXCEEDS_PARENT"}


def _missing() -> str | None:
    for module in ("asyncfix", "yaml"):
        if importlib.util.find_spec(module) is None:
            return f"the Python module {module} is not installed"
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        return f"cannot bind a loopback port: {exc}"
    return None


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    """One simulator for the module; stopped by its PID."""
    reason = _missing()
    if reason:
        unavailable(reason)
    sim = Venue.start(tmp_path_factory.mktemp("venue"), N_ACCOUNTS)
    yield sim
    sim.stop()


def operator_breakers(**over: dict[str, Any]) -> dict[str, Any]:
    """The breakers an operator sets for the refapp (2 symbols, quotes of 5, limit 40).

    Normal quoting sends a few orders a second and never holds more than 40
    (position and working orders) per symbol; the thresholds sit above that.
    ``error_burst`` is off: the refapp writes no separate error log.
    """
    config: dict[str, Any] = {
        "version": 1,
        "msg_rate": {"window_s": 1.0, "max_new_orders": 30, "max_messages": 300},
        "reject_rate": {"window_s": 5.0, "min_orders": 10, "max_ratio": 0.5},
        "exposure": {"action": "halt", "max_symbol_qty": 60,
                     "max_symbol_notional": 100_000, "max_total_notional": 200_000},
        "heartbeat": {"max_age_s": 1.5},
        "feed_stale": {"max_age_s": 3.0},
        "error_burst": {"enabled": False},
    }  # fmt: skip
    for name, values in over.items():
        config[name] = {**config.get(name, {}), **values}
    return config


@dataclass
class Rig:
    """One test's account, agent, refapp and heartbeat sidecar."""

    venue: Venue
    account: Account
    work: Path
    root: Path = field(default_factory=short_root)
    agent: AgentProcess | None = None
    refapp: RefAppProcess | None = None
    bridge: HeartbeatBridge | None = None

    def fix(self, session: str, **extra: Any) -> dict[str, Any]:
        """The agent config of one of the account's sessions."""
        return {"host": "127.0.0.1", "port": self.venue.port(session), "sender_comp_id": session,
                "target_comp_id": "SIM", "account": self.account.name, **extra}  # fmt: skip

    def start_agent(
        self, breakers: dict[str, Any] | None = None, **enforcement: Any
    ) -> AgentProcess:
        """Start the agent, wait for its sessions, reset it to ACTIVE."""
        program = {"program": "refapp", "manager": "pidfile",
                   "pidfile": str(self.root / "run" / "refapp.pid")}  # fmt: skip
        self.agent = AgentProcess.write(
            self.root,
            risk=self.fix(self.account.risk, heartbeat_s=30, reconnect_s=0.2, cancel_timeout_s=10),
            drop_copy=self.fix(self.account.dc, heartbeat_s=1, reconnect_s=0.2),
            market_data={"symbols": list(SYMBOLS)},
            breakers={"config": breakers or operator_breakers()},
            enforcement={"processes": [program], "on_halt": "stop", "kill_after_s": 1.0,
                         **enforcement},
        )  # fmt: skip
        agent = self.agent.start()
        until(lambda: bool(agent.status()["risk"]["logged_on"]), "the risk session to log on")
        until(lambda: self.venue.session(self.account.dc)["logged_on"], "the drop copy")
        until(
            lambda: bool(self.venue.session(self.account.risk)["md_subscriptions"]),
            "the market data subscription",
        )
        assert agent.reset().ok, agent.status()
        assert agent.state() == "ACTIVE"
        return agent

    def start_refapp(self, beat: bool = True, **over: Any) -> RefAppProcess:
        """Start the refapp (and its heartbeat sidecar); wait until it quotes at the venue."""
        self.refapp = RefAppProcess.write(self.work, self.venue, self.account, self.root, **over)
        self.refapp.start()
        if beat:
            assert self.agent is not None
            sock = self.root / "run" / "agent.sock"
            self.bridge = HeartbeatBridge(self.refapp.url, sock).start()
        return self.refapp

    def wait_quoting(self) -> None:
        """Wait until the refapp's four quotes (two symbols, two sides) work at the venue."""
        until(lambda: len(self.venue.working(self.account)) >= 4, "the refapp's quotes")

    def close(self) -> None:
        """Stop what the test started, by PID; remove the short root."""
        if self.bridge is not None:
            self.bridge.stop()
        if self.refapp is not None:
            self.refapp.stop()
        if self.agent is not None:
            self.agent.stop()
        cleanup(self.root)


@pytest.fixture
def rig(venue: Venue, tmp_path: Path) -> Iterator[Rig]:
    """A rig on a fresh account of the module's venue."""
    setup = Rig(venue, venue.take_account(), tmp_path)
    try:
        yield setup
    finally:
        setup.close()


def tripped(rig: Rig, reasons: set[str]) -> dict[str, Any]:
    """Wait for HALTED; check its first reason is one of ``reasons``, the book is empty.

    Returns the halt sequence's report. The venue, not the agent, says "empty".
    """
    agent = rig.agent
    assert agent is not None
    until(lambda: agent.state() == "HALTED", f"the agent to halt ({reasons})", 30)
    snap = agent.status()["state"]
    assert snap["reasons"][0] in reasons, snap
    assert read_state(rig.root / "state" / "trading_state").state is TradingState.HALTED
    report = agent.enforcement()
    steps = report["steps"]
    for step in ("freeze", "cancel_all", "stop", "confirm"):
        assert steps[step]["ok"], (step, report)
    assert rig.venue.working(rig.account) == []
    assert agent.status()["venue_working_orders"] == 0
    return report


def stopped_by_the_agent(refapp: RefAppProcess, report: dict[str, Any]) -> None:
    """The halt froze the refapp, then killed it: SIGKILL, never its SIGTERM handler."""
    assert refapp.proc is not None
    assert f"SIGSTOP {refapp.proc.pid}" in report["steps"]["freeze"]["detail"], report
    assert refapp.proc.wait(15) == -signal.SIGKILL
    assert not refapp.events("shutdown_begin"), "the refapp ran again after the freeze"


def cancelled(report: dict[str, Any]) -> int:
    """Orders the halt's first cancel took off the venue (mass and per order)."""
    detail = report["steps"]["cancel_all"]["detail"]
    found = re.search(r"mass=(\d+) per_order=(\d+)", detail)
    assert found, detail
    return int(found[1]) + int(found[2])


# ------------------------------------------------------------------ hung
@pytest.mark.parametrize("how", ["hang", "sigstop"])
def test_a_hung_strategy_stops_beating_and_heartbeat_lost_empties_its_book(
    rig: Rig, how: str
) -> None:
    rig.start_agent()
    fault = {"fault_mode": "hang", "fault": {"after_s": 3.0}} if how == "hang" else {}
    refapp = rig.start_refapp(**fault)
    rig.wait_quoting()
    assert refapp.proc is not None
    if how == "hang":
        until(lambda: bool(refapp.events("fault_hang")), "the refapp to hang")
    else:
        os.kill(refapp.proc.pid, signal.SIGSTOP)  # our own child

    report = tripped(rig, {"HEARTBEAT_LOST"})

    assert cancelled(report) >= 1  # the quotes it left working
    stopped_by_the_agent(refapp, report)
    assert rig.bridge is not None
    assert rig.bridge.beats > 0


# -------------------------------------------------------------- CPU hog
def test_under_a_cpu_hog_on_every_core_a_manual_halt_still_empties_the_book(rig: Rig) -> None:
    agent = rig.start_agent()
    refapp = rig.start_refapp(beat=False)  # no heartbeat under load: the halt is the operator's
    rig.wait_quoting()
    hog = CpuHog.start()
    try:
        assert hog.running()
        answer = agent.halt("cpu hog drill")
        assert answer.ok, answer
        assert answer.result["after"]["state"] == "HALTED"
        report = tripped(rig, {"MANUAL"})
        assert hog.running()  # the halt ran with every core busy
    finally:
        hog.stop()
    assert cancelled(report) >= 1
    stopped_by_the_agent(refapp, report)


# --------------------------------------------------------------- crashed
def test_a_crashed_strategys_orders_are_cancelled_by_the_heartbeat_lost_halt(rig: Rig) -> None:
    rig.start_agent()
    refapp = rig.start_refapp(fault_mode="crash", fault={"after_s": 3.0, "exit_code": 3})
    rig.wait_quoting()
    assert refapp.proc is not None
    assert refapp.proc.wait(30) == 3
    assert refapp.events("fault_crash")

    report = tripped(rig, {"HEARTBEAT_LOST"})

    assert cancelled(report) >= 1  # what the crash left working at the venue


# --------------------------------------------------------------- runaway
@pytest.mark.parametrize("ignore_trading_state", [False, True], ids=["checked", "knight"])
def test_a_runaway_is_tripped_from_the_drop_copy_stopped_and_its_book_emptied(
    rig: Rig, ignore_trading_state: bool
) -> None:
    rig.start_agent()
    refapp = rig.start_refapp(
        fault_mode="runaway",
        fault={"rate_per_s": 60, "ignore_trading_state": ignore_trading_state},
    )

    report = tripped(rig, RUNAWAY_REASONS)

    stopped_by_the_agent(refapp, report)
    sent = refapp.events("order_sent")
    assert len(sent) >= 2
    assert all(s.get("purpose") in (None, "runaway") for s in sent), sent[:3]
    # Knight's dead code checks nothing; the checked runaway sees HALTED (if it ran
    # again before the freeze, it was refused), and never bypassed the check.
    if ignore_trading_state:
        assert not refapp.events("state_refused")


# ------------------------------------------------------------ fat finger
def test_a_fat_finger_trips_the_exposure_breaker_and_the_halt_flattens(rig: Rig) -> None:
    rig.start_agent(flatten_on_halt=True)
    refapp = rig.start_refapp(fault_mode="fat_finger", fault={"after_s": 1.0, "multiplier": 20})

    report = tripped(rig, {"WORKING_EXPOSURE"})

    assert refapp.events("fault_fat_finger")
    assert report["steps"]["flatten"]["ok"], report
    assert rig.venue.positions(rig.account) == {}  # flat at the venue
    assert rig.agent is not None
    (done,) = rig.agent.log_events("flatten_done")
    closed = {s: e["filled_qty"] for s, e in done["symbols"].items() if float(e["filled_qty"])}
    assert closed, done  # there was a position to close, and the flatten closed it
    assert rig.venue.working(rig.account) == []
    stopped_by_the_agent(refapp, report)


# ---------------------------------------------------------- reject storm
def test_a_reject_storm_trips_reject_rate(rig: Rig) -> None:
    rig.start_agent()
    refapp = rig.start_refapp(fault_mode="reject_storm", fault={"rate_per_s": 20})

    report = tripped(rig, {"REJECT_RATE"})

    assert len(refapp.events("reject")) >= 5
    assert rig.agent is not None
    breaker = rig.agent.status()["breakers"]["reject_rate"]
    assert breaker[0] == "tripped", breaker
    stopped_by_the_agent(refapp, report)


# ------------------------------------------------------ agent killed
def test_the_agent_killed_while_active_the_refapp_stops_sending_on_its_liveness(
    rig: Rig,
) -> None:
    agent = rig.start_agent()
    refapp = rig.start_refapp(beat=False)
    rig.wait_quoting()
    assert any(e["state"] == "ACTIVE" for e in refapp.events("trading_state_change"))

    agent.kill()  # SIGKILL by PID: the state file still says ACTIVE

    def halted_index() -> int | None:
        for i, rec in enumerate(refapp.events()):
            if rec.get("event") == "trading_state_change" and rec.get("state") == "HALTED":
                return i
        return None

    until(lambda: halted_index() is not None, "the refapp to act as HALTED", 15)
    records = refapp.events()
    index = halted_index()
    assert index is not None
    change = records[index]
    assert str(change.get("agent", "")).startswith("not alive"), change
    assert read_state(rig.root / "state" / "trading_state").state is TradingState.ACTIVE
    # Its quotes are cancelled by itself, and nothing new reaches the venue.
    until(lambda: rig.venue.working(rig.account) == [], "the refapp's quotes to be cancelled")
    for _poll in range(10):  # a bounded look: still nothing working, nothing sent
        assert rig.venue.working(rig.account) == []
        assert refapp.proc is not None
        assert refapp.proc.poll() is None  # it did not crash: it chose not to trade
        time.sleep(0.15)
    after = [r for r in refapp.events()[index:] if r.get("event") == "order_sent"]
    assert after == [], after[:3]
