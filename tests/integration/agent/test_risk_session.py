"""The risk session against a real simulator: cancel_all and flatten, confirmed at the venue.

Every verdict is checked twice: in the report (from the venue's FIX answers)
and independently through the simulator's admin API (``GET /state``).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from decimal import Decimal

from tests.integration.agent.conftest import run
from tradeops.agent.flatten import FlattenPolicy, RiskEnforcer, flatten
from tradeops.agent.risk import CancelPolicy, RiskSession
from tradeops.brokers.base import SessionRole
from tradeops.log import EventLog
from tradeops.testing.riskbook import (
    ACCOUNT,
    MANUAL,
    OE,
    RISK,
    OrderEntry,
    RiskSim,
    admin_kill_switch,
    symbols,
)

SimFactory = Callable[..., RiskSim]


def risk_session(sim: RiskSim, **kwargs: object) -> tuple[RiskSession, io.StringIO]:
    stream = io.StringIO()
    session = RiskSession(
        sim.session_config(RISK, SessionRole.RISK),
        log=EventLog("agent", stream),
        reconnect_s=0.2,
        connect_timeout_s=3.0,
        **kwargs,  # type: ignore[arg-type]
    )
    return session, stream


def oe(sim: RiskSim, name: str = OE) -> OrderEntry:
    return OrderEntry(sim.session_config(name, SessionRole.ORDER_ENTRY))


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``cond`` (bounded in count and time)."""
    for _attempt in range(int(timeout_s / 0.05) + 1):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_all_cancels_1000_resting_orders_over_50_symbols(risk_sim: SimFactory) -> None:
    sim = risk_sim(50)

    async def scenario() -> None:
        risk, log = risk_session(sim)
        await risk.start()
        try:
            async with oe(sim) as strategy:
                await strategy.rest(1000, symbols(50))
                assert len(sim.working_orders()) == 1000
                assert len({o["symbol"] for o in sim.working_orders()}) == 50
                report = await risk.cancel_all("oncall", "test halt", timeout_s=30)
        finally:
            await risk.close()
        assert report.clean, report
        assert report.cancelled_by_mass == 1000
        assert report.cancelled_by_order == 0
        assert report.still_working == []
        assert not report.exchange_kill_switch_needed
        assert list(report.steps_ms) == ["mass_cancel", "confirm"]
        assert report.confirm_ms is not None
        assert sim.working_orders() == []
        done = [json.loads(line) for line in log.getvalue().splitlines()]
        assert any(r["event"] == "cancel_all_done" and r["who"] == "oncall" for r in done)

    run(scenario())


def test_cancel_all_cancels_a_manual_order_placed_on_another_session(
    risk_sim: SimFactory,
) -> None:
    sim = risk_sim(5)

    async def scenario() -> None:
        risk, _unused = risk_session(sim)
        await risk.start()
        try:
            async with oe(sim) as strategy, oe(sim, MANUAL) as manual:
                await strategy.rest(10, symbols(5))
                (manual_id,) = await manual.rest(1, ["S03"])
                assert {o["session"] for o in sim.working_orders()} == {OE, MANUAL}
                report = await risk.cancel_all("oncall", "manual order too", timeout_s=20)
                await until(
                    lambda: any(e.exec_type == "4" for e in manual.execs),
                    "the manual session to hear of its cancel",
                )
                cancelled = [e for e in manual.execs if e.exec_type == "4"]
        finally:
            await risk.close()
        assert report.clean, report
        assert report.cancelled_by_mass == 11
        assert sim.working_orders() == []
        assert [e.orig_cl_ord_id or e.cl_ord_id for e in cancelled] == [manual_id]

    run(scenario())


def test_cancel_all_reconnects_a_dropped_risk_session_and_still_cancels(
    risk_sim: SimFactory,
) -> None:
    sim = risk_sim(5)

    async def scenario() -> None:
        risk, _unused = risk_session(sim)
        await risk.start(keep_warm=False)  # the reconnect must come from cancel_all itself
        try:
            async with oe(sim) as strategy:
                await strategy.rest(40, symbols(5))
                await asyncio.to_thread(sim.post, "/faults/drop", {"session": RISK})
                await until(lambda: not risk.logged_on, "the risk session to drop")
                report = await risk.cancel_all("breaker", "session dropped", timeout_s=20)
        finally:
            await risk.close()
        assert report.clean, report
        assert report.reconnects >= 1
        assert report.cancelled_by_mass == 40
        assert "connect" in report.steps_ms
        assert sim.working_orders() == []

    run(scenario())


def test_keep_warm_logs_the_risk_session_back_on_after_a_drop(risk_sim: SimFactory) -> None:
    sim = risk_sim(2)

    async def scenario() -> None:
        risk, _unused = risk_session(sim)
        await risk.start()
        try:
            assert risk.status()["logons"] == 1
            await asyncio.to_thread(sim.post, "/faults/drop", {"session": RISK})
            await until(lambda: risk.status()["disconnects"] >= 1, "the drop to be seen")
            await until(lambda: risk.logged_on and risk.status()["logons"] >= 2, "a re-logon")
            status = risk.status()
        finally:
            await risk.close()
        assert status["keep_warm"] is True
        assert status["logged_on"] is True

    run(scenario())


def test_per_order_cancels_when_mass_cancel_is_off(risk_sim: SimFactory) -> None:
    sim = risk_sim(10)

    async def scenario() -> None:
        risk, _unused = risk_session(sim)
        await risk.start()
        try:
            async with oe(sim) as strategy, oe(sim, MANUAL) as manual:
                await strategy.rest(60, symbols(10))
                await manual.rest(2, ["S01"])
                policy = CancelPolicy(mass_cancel=False, per_order_rounds=2)
                report = await risk.cancel_all("oncall", "per order", timeout_s=30, policy=policy)
        finally:
            await risk.close()
        assert report.clean, report
        assert report.cancelled_by_mass == 0
        assert report.cancelled_by_order == 62
        assert list(report.steps_ms) == ["confirm", "per_order", "confirm_2"]
        assert sim.working_orders() == []

    run(scenario())


def test_exchange_kill_switch_is_the_last_resort(risk_sim: SimFactory) -> None:
    sim = risk_sim(5)

    async def scenario() -> None:
        risk, _unused = risk_session(sim, kill_switch=admin_kill_switch(sim.admin_url))
        await risk.start()
        try:
            async with oe(sim) as strategy:
                await strategy.rest(25, symbols(5))
                # No mass cancel, no per-order round: only the venue's switch is left.
                policy = CancelPolicy(mass_cancel=False, per_order_rounds=0)
                report = await risk.cancel_all("oncall", "last resort", timeout_s=20, policy=policy)
        finally:
            await risk.close()
        assert report.exchange_kill_switch_needed
        assert report.exchange_kill_switch_used
        assert report.clean, report  # confirmed by a mass status after the switch
        assert list(report.steps_ms) == ["confirm", "kill_switch", "confirm_2"]
        assert sim.get("/state")["kill_switch"][ACCOUNT] is True
        assert sim.working_orders() == []

    run(scenario())


def test_not_clean_when_the_venue_cannot_confirm(risk_sim: SimFactory) -> None:
    """Session refused: the kill switch empties the book, but nothing confirms it over FIX."""
    sim = risk_sim(3)

    async def scenario() -> None:
        risk, _unused = risk_session(sim, kill_switch=admin_kill_switch(sim.admin_url))
        await risk.start(keep_warm=False)
        try:
            async with oe(sim) as strategy:
                await strategy.rest(9, symbols(3))
                await asyncio.to_thread(sim.post, "/faults/refuse", {"session": RISK})
                await until(lambda: not risk.logged_on, "the risk session to be refused")
                policy = CancelPolicy(connect_attempts=2, request_attempts=2)
                report = await risk.cancel_all("oncall", "venue down", timeout_s=3, policy=policy)
        finally:
            await risk.close()
        assert not report.clean
        assert report.exchange_kill_switch_needed
        assert report.exchange_kill_switch_used
        assert report.errors
        assert sim.working_orders() == []  # emptied, but the report does not claim it

    run(scenario())


def test_flatten_closes_positions_in_several_symbols(risk_sim: SimFactory) -> None:
    sim = risk_sim(8)
    wanted = {
        "S00": Decimal(5),
        "S01": Decimal(-3),
        "S02": Decimal(12),
        "S05": Decimal(-7),
        "S07": Decimal(1),
    }

    async def scenario() -> None:
        risk, _unused = risk_session(sim)
        await risk.start()
        try:
            async with oe(sim) as strategy:
                await strategy.take(wanted)
                assert sim.positions() == wanted
                await strategy.rest(20, symbols(8))  # the strategy's orders must go first
                policy = FlattenPolicy(tick_sizes={s: Decimal("0.01") for s in symbols(8)})
                report = await flatten(risk, "oncall", "rollback", policy)
        finally:
            await risk.close()
        assert report.flat, report
        assert report.cancel is not None
        assert report.cancel.clean
        assert report.cancel.cancelled_by_mass == 20
        assert report.still_open == {}
        assert {s: e.start_qty for s, e in report.symbols.items()} == wanted
        assert all(e.final_qty == 0 for e in report.symbols.values())
        assert {s: e.filled_qty for s, e in report.symbols.items()} == {
            s: abs(q) for s, q in wanted.items()
        }
        # Collared: a sell at most 10 ticks under the reference (100), a buy at most above.
        for symbol, entry in report.symbols.items():
            assert entry.last_price is not None
            assert abs(entry.last_price - Decimal(100)) <= Decimal("0.11"), symbol
        assert sim.positions() == {}
        assert sim.working_orders() == []

    run(scenario())


def test_risk_enforcer_returns_the_reports_as_json(risk_sim: SimFactory) -> None:
    sim = risk_sim(3)

    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        risk, _unused = risk_session(sim)
        await risk.start()
        try:
            async with oe(sim) as strategy:
                await strategy.rest(6, symbols(3))
                await strategy.take({"S02": Decimal(4)})
                enforcer = RiskEnforcer(risk, cancel_timeout_s=10)
                cancelled = await enforcer.cancel_all("oncall", "via the server")
                flattened = await enforcer.flatten("oncall", "via the server")
        finally:
            await risk.close()
        return cancelled, flattened

    cancelled, flattened = run(scenario())
    assert json.loads(json.dumps(cancelled))["clean"] is True
    assert json.loads(json.dumps(flattened))["flat"] is True
    assert sim.positions() == {}
