"""The assembled agent: a real ``tradeops agent run`` process against a simulator subprocess.

Each verdict about the book is read from the simulator's admin API
(``GET /state``), never from the agent's own report alone. Processes are the
tests' own (simulator, agent, strategy stand-ins), stopped by PID.
"""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent.conftest import run
from tradeops.brokers.base import NewOrder, OrdType, SessionRole, Side
from tradeops.testing.agentproc import AgentProcess, Strategy, cleanup, short_root, until
from tradeops.testing.riskbook import ACCOUNT, DC, MANUAL, OE, RISK, OrderEntry, RiskSim, symbols
from tradeops.tradingstate import TradingState, read_state

SimFactory = Callable[..., RiskSim]


@pytest.fixture
def root() -> Iterator[Path]:
    """A short root under /tmp (Unix socket paths), removed afterwards."""
    path = short_root()
    yield path
    cleanup(path)


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """Agents started by the test; each stopped by its PID at teardown."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def strategies() -> Iterator[list[Strategy]]:
    """Strategy stand-ins started by the test; each stopped by its PID at teardown."""
    started: list[Strategy] = []
    yield started
    for strategy in started:
        strategy.stop()


def fix(sim: RiskSim, name: str, **extra: Any) -> dict[str, Any]:
    """The agent config of one of the simulator's sessions."""
    port = int(sim.ready["sessions"][name]["port"])
    return {"host": "127.0.0.1", "port": port, "sender_comp_id": name,
            "target_comp_id": "SIM", "account": ACCOUNT, **extra}  # fmt: skip


def risk(sim: RiskSim) -> dict[str, Any]:
    """The risk section: fast reconnects, generous cancel timeout."""
    return fix(sim, RISK, heartbeat_s=30, reconnect_s=0.2, cancel_timeout_s=10)


def working(sim: RiskSim) -> list[dict[str, Any]]:
    """The account's working orders at the venue."""
    return [o for o in sim.working_orders() if o["account"] == ACCOUNT]


def session(sim: RiskSim, name: str) -> dict[str, Any]:
    """The simulator's view of one session."""
    return next(s for s in sim.get("/state")["sessions"] if s["name"] == name)


async def place(sim: RiskSim, name: str, count: int, qty: int = 1) -> None:
    """Rest ``count`` buy orders far below the market on session ``name``."""
    async with OrderEntry(sim.session_config(name, SessionRole.ORDER_ENTRY)) as entry:
        ids = []
        for i in range(count):
            cl = f"{name}-{i}-{id(entry) % 10_000}"
            price = Decimal(50) + Decimal("0.01") * i
            order = NewOrder(cl, symbols(2)[i % 2], Side.BUY, Decimal(qty), OrdType.LIMIT, price)
            await entry.session.send_order(order)
            ids.append(cl)
        await entry.wait_acks(set(ids))


def start_agent(root: Path, agents: list[AgentProcess], **sections: Any) -> AgentProcess:
    agent = AgentProcess.write(root, **sections)
    agents.append(agent)
    return agent.start()


def risk_up(agent: AgentProcess) -> bool:
    return bool(agent.status().get("risk", {}).get("logged_on"))


def test_a_halt_freezes_then_kills_the_strategy_and_empties_the_book_manual_order_too(
    risk_sim: SimFactory, root: Path, agents: list[AgentProcess], strategies: list[Strategy]
) -> None:
    sim = risk_sim(2)
    program = {"program": "strat", "manager": "pidfile", "pidfile": str(root / "run/strat.pid")}
    agent = start_agent(
        root, agents, risk=risk(sim), metrics={"listen": "127.0.0.1:0"},
        enforcement={"processes": [program], "on_halt": "stop", "kill_after_s": 1.0},
    )  # fmt: skip
    until(lambda: risk_up(agent), "the risk session to log on")
    assert agent.reset().ok
    strategy = Strategy.start(root)
    strategies.append(strategy)
    run(place(sim, OE, 5))
    run(place(sim, MANUAL, 1))  # a "manual" order from a second order-entry session
    assert len(working(sim)) == 6
    assert {o["session"] for o in working(sim)} == {OE, MANUAL}

    answer = agent.halt()

    assert answer.ok, answer
    assert answer.result["after"]["state"] == "HALTED"
    assert read_state(root / "state" / "trading_state").state is TradingState.HALTED
    report = agent.enforcement()
    steps = report["steps"]
    assert list(steps) == ["freeze", "cancel_all", "stop", "confirm", "notify"]
    assert f"SIGSTOP {strategy.proc.pid}" in steps["freeze"]["detail"]
    assert steps["cancel_all"]["ok"], steps["cancel_all"]
    assert steps["stop"]["ok"], steps["stop"]
    assert report["ok"], report
    # Frozen, then gone: killed by SIGKILL without ever running its SIGTERM handler.
    assert strategy.proc.wait(10) == -signal.SIGKILL
    assert not strategy.handled_sigterm
    assert working(sim) == []
    status = agent.status()
    assert status["venue_working_orders"] == 0
    assert status["state"]["state"] == "HALTED"
    with urllib.request.urlopen(f"http://{status['metrics']}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert "tradeops_agent_trading_state 3.0" in metrics
    assert "tradeops_agent_venue_working_orders 0.0" in metrics
    assert 'tradeops_agent_trips_total{reason="MANUAL"} 1.0' in metrics
    assert 'tradeops_agent_enforcement_steps_total{ok="true",step="cancel_all"} 1.0' in metrics


def breakers(**overrides: Any) -> dict[str, Any]:
    """Inline breakers: error_burst off (no error log here), the rest as given."""
    return {"config": {"version": 1, "error_burst": {"enabled": False}, **overrides}}


def test_a_breaker_on_the_drop_copy_halts_the_agent_by_itself_and_empties_the_book(
    risk_sim: SimFactory, root: Path, agents: list[AgentProcess]
) -> None:
    sim = risk_sim(2)
    agent = start_agent(
        root, agents, risk=risk(sim), drop_copy=fix(sim, DC, heartbeat_s=1, reconnect_s=0.2),
        market_data={"symbols": symbols(2)},
        breakers=breakers(exposure={"action": "halt", "max_symbol_notional": 500}),
    )  # fmt: skip
    until(lambda: risk_up(agent), "the risk session to log on")
    until(lambda: session(sim, DC)["logged_on"], "the drop copy to log on")
    until(lambda: bool(session(sim, RISK)["md_subscriptions"]), "the market data subscription")
    assert agent.reset().ok, agent.status()
    assert agent.state() == "ACTIVE"

    run(place(sim, OE, 1, qty=10))  # 10 x ~100 = 1,000 of notional, over 500

    until(lambda: agent.state() == "HALTED", "the breaker to halt the agent")
    state = agent.status()["state"]
    assert state["reasons"] == ["WORKING_EXPOSURE"]
    assert state["who"] == "agent:breaker"
    assert "exposure" in state["why"]
    report = agent.enforcement()
    assert report["steps"]["cancel_all"]["ok"], report
    assert "drop copy: 0 working" in report["steps"]["cancel_all"]["detail"], report
    assert working(sim) == []
    assert agent.status()["breakers"]["exposure"][0] == "tripped"
    # The order was cancelled, so the condition no longer holds: an unforced reset re-arms.
    reset = agent.reset(force=False)
    assert reset.ok, reset
    assert "exposure" in reset.result["breakers"]["rearmed"]
    # Judged on the venue's positions, read before the reset (none: nothing filled).
    assert reset.result["resynced"] == {"positions": {"S00": "0", "S01": "0"}}


def test_a_breaker_fed_no_data_trips_with_breaker_fault(
    risk_sim: SimFactory, root: Path, agents: list[AgentProcess]
) -> None:
    sim = risk_sim(2)
    # A quiet account and a drop-copy HeartBtInt of 30 s: silence past a 3 s input timeout.
    agent = start_agent(
        root, agents, risk=risk(sim), drop_copy=fix(sim, DC, heartbeat_s=30),
        breakers=breakers(msg_rate={"input_timeout_s": 3}, feed_stale={"enabled": False}),
    )  # fmt: skip
    until(lambda: session(sim, DC)["logged_on"], "the drop copy to log on")
    assert agent.reset().ok, agent.status()

    until(lambda: agent.state() == "HALTED", "the silent drop copy to trip the agent")
    state = agent.status()["state"]
    assert state["reasons"] == ["BREAKER_FAULT"]
    assert "no drop_copy" in state["why"]
    assert agent.enforcement()["steps"]["cancel_all"]["ok"]


def test_the_agent_sigkilled_while_halted_restarts_halted(
    root: Path, agents: list[AgentProcess]
) -> None:
    agent = start_agent(root, agents)
    assert agent.reset().ok
    assert agent.halt("before the crash").ok
    agent.kill()

    again = AgentProcess(root, agent.config_path)
    agents.append(again)
    again.start()

    state = again.status()["state"]
    assert state["state"] == "HALTED"
    assert state["reasons"] == ["MANUAL"]
    assert read_state(root / "state" / "trading_state").state is TradingState.HALTED


def test_the_risk_session_dropped_by_the_venue_reconnects_and_a_halt_still_cancels(
    risk_sim: SimFactory, root: Path, agents: list[AgentProcess]
) -> None:
    sim = risk_sim(2)
    agent = start_agent(root, agents, risk=risk(sim))
    until(lambda: risk_up(agent), "the risk session to log on")
    assert agent.reset().ok
    logons = agent.status()["risk"]["logons"]

    sim.post("/faults/drop", {"session": RISK})

    until(lambda: agent.status()["risk"]["logons"] > logons and risk_up(agent), "a reconnect")
    assert agent.status()["risk"]["disconnects"] >= 1
    run(place(sim, OE, 3))
    run(place(sim, MANUAL, 1))
    assert len(working(sim)) == 4
    assert agent.halt().ok
    assert agent.enforcement()["steps"]["cancel_all"]["ok"]
    assert working(sim) == []
