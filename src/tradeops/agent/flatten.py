"""Flatten the account on the risk session: reduce-only orders inside price collars.

``flatten`` does, in order:

1. ``cancel_all`` and require it clean: nothing may stay working (a working
   order could fill after the position was read and turn a reducing order
   into an opening one);
2. RequestForPositions; wait for the ack and every PositionReport it announces;
3. for each symbol the venue reports not flat, one limit order on the opposite
   side for exactly the reported quantity (reduce-only: it can at most bring
   the position to zero), priced at the reference price moved by the collar
   towards the market (a sell at most ``collar`` below the bid, a buy at most
   ``collar`` above the ask), rounded to the tick inside the collar;
4. wait for those orders to end (bounded), cancel what is left, and go back to 2.

"Flat" is reported only from a fresh, complete set of PositionReports showing
zero for every symbol, read after the last flattening orders. The attempts and
the total time are bounded by the policy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from tradeops.agent.risk import CancelPolicy, RiskSession, RiskSessionError
from tradeops.agent.riskreport import FlattenReport, PositionsAnswer
from tradeops.brokers.base import Execution, NewOrder, OrdType, Position, Quote, Side


@dataclass(frozen=True, slots=True)
class FlattenPolicy:
    """Collars, tick sizes and the retry budget of ``flatten``."""

    tick_sizes: Mapping[str, Decimal] = field(default_factory=dict)
    default_tick: Decimal = Decimal("0.01")
    collar_ticks: int = 10  # the collar is the wider of collar_ticks and collar_bps
    collar_bps: Decimal = Decimal(0)
    max_attempts: int = 3  # rounds of flattening orders
    timeout_s: float = 15.0  # the whole flatten, cancels included
    order_wait_s: float = 2.0  # per round, for the orders to fill
    cancel_timeout_s: float = 5.0
    cancel: CancelPolicy = field(default_factory=CancelPolicy)

    def tick(self, symbol: str) -> Decimal:
        """Tick size of ``symbol``."""
        return Decimal(str(self.tick_sizes.get(symbol, self.default_tick)))


def reference_price(side: Side, quote: Quote | None, position: Position) -> Decimal | None:
    """The price the collar is around: the touch we trade against, else last, else SettlPrice."""
    if quote is not None:
        touch = quote.bid if side == Side.SELL else quote.ask
        for px in (touch, quote.last):
            if px is not None and px > 0:
                return px
    if position.settl_px is not None and position.settl_px > 0:
        return position.settl_px
    return None


def collar_price(
    side: Side, reference: Decimal, tick: Decimal, collar_ticks: int, collar_bps: Decimal
) -> Decimal:
    """Limit price ``reference`` -/+ the collar (sell/buy), on the tick grid, inside the collar.

    The collar is the wider of ``collar_ticks`` ticks and ``collar_bps`` of the
    reference; the price is never below one tick.
    """
    if tick <= 0:
        raise ValueError(f"tick size must be > 0, got {tick}")
    width = max(tick * collar_ticks, reference * collar_bps / Decimal(10_000))
    if side == Side.SELL:
        raw = reference - width
        px = (raw / tick).to_integral_value(ROUND_CEILING) * tick
        return max(px, tick)
    raw = reference + width
    return (raw / tick).to_integral_value(ROUND_FLOOR) * tick


def reduce_only_orders(
    answer: PositionsAnswer,
    quotes: Mapping[str, Quote],
    policy: FlattenPolicy,
    next_id: Callable[[], str],
    account: str | None = None,
) -> tuple[list[NewOrder], dict[str, str]]:
    """One closing order per open position; and the symbols that cannot be priced, with why."""
    orders: list[NewOrder] = []
    problems: dict[str, str] = {}
    for symbol, pos in sorted(answer.by_symbol().items()):
        if pos.qty == 0:
            continue
        side = Side.SELL if pos.qty > 0 else Side.BUY
        ref = reference_price(side, quotes.get(symbol), pos)
        if ref is None:
            problems[symbol] = "no reference price (no quote, no SettlPrice)"
            continue
        px = collar_price(side, ref, policy.tick(symbol), policy.collar_ticks, policy.collar_bps)
        orders.append(
            NewOrder(next_id(), symbol, side, abs(pos.qty), OrdType.LIMIT, px, account=account)
        )
    return orders, problems


async def flatten(
    risk: RiskSession, who: str, why: str, policy: FlattenPolicy | None = None
) -> FlattenReport:
    """Cancel everything, then close every position the venue reports; see the module doc."""
    policy = policy or FlattenPolicy()
    t0 = time.monotonic()
    deadline = t0 + policy.timeout_s
    report = FlattenReport(who=who, why=why, account=risk.account)
    risk.log.event("flatten_start", who=who, why=why)
    try:
        await _flatten_steps(risk, report, policy, deadline)
    except Exception as exc:  # the report must come back whatever happened
        report.errors.append(f"{type(exc).__name__}: {exc}")
        report.flat = False
    report.total_ms = round((time.monotonic() - t0) * 1000.0, 3)
    risk.log.event("flatten_done", **report.to_dict())
    return report


async def _flatten_steps(
    risk: RiskSession, report: FlattenReport, policy: FlattenPolicy, deadline: float
) -> None:
    step = time.monotonic()
    report.cancel = await risk.cancel_all(
        report.who, report.why, _budget(policy.cancel_timeout_s, deadline), policy.cancel
    )
    report.step("cancel", time.monotonic() - step)
    if not report.cancel.clean:
        report.errors.append("orders still working at the venue: not flattening")
        return
    for attempt in range(policy.max_attempts + 1):
        step = time.monotonic()
        try:
            answer = await risk.retrying(
                "positions", risk.request_positions, deadline, policy.cancel
            )
        except RiskSessionError as exc:
            report.errors.append(str(exc))
            return
        report.step("positions", time.monotonic() - step)
        report.observe(answer)
        if answer.flat:
            return
        if not answer.complete:
            report.errors.append(f"incomplete position answer {answer.req_id}")
            continue
        if attempt == policy.max_attempts or time.monotonic() >= deadline:
            report.errors.append("retry budget exhausted")
            return
        report.attempts += 1
        step = time.monotonic()
        await _send_round(risk, report, policy, answer, deadline)
        report.step("orders", time.monotonic() - step)
        step = time.monotonic()
        left = await risk.cancel_all(
            report.who,
            f"{report.why} (flatten leftovers)",
            _budget(policy.cancel_timeout_s, deadline),
            policy.cancel,
        )
        report.step("cancel", time.monotonic() - step)
        if not left.clean:
            report.errors.append("flattening orders still working after cancel: stopping")
            return


def _budget(limit_s: float, deadline: float) -> float:
    return max(0.1, min(limit_s, deadline - time.monotonic()))


async def _send_round(
    risk: RiskSession,
    report: FlattenReport,
    policy: FlattenPolicy,
    answer: PositionsAnswer,
    deadline: float,
) -> None:
    """Send one round of reduce-only orders and wait (bounded) for them to end."""
    orders, problems = reduce_only_orders(
        answer, risk.quotes, policy, lambda: risk.next_id("FL"), risk.account or None
    )
    for symbol, why in problems.items():
        report.errors.append(f"{symbol}: {why}")
    watches = {o.cl_ord_id: (o, risk.watch(o.cl_ord_id)) for o in orders}
    try:
        for order in orders:
            entry = report.symbols[order.symbol]
            entry.orders += 1
            entry.last_price = order.price
            await risk.send_order(order)
        pending = [w.done for _unused, w in watches.values()]
        wait_s = min(policy.order_wait_s, deadline - time.monotonic())
        if pending and wait_s > 0:
            await asyncio.wait(pending, timeout=wait_s)
    except ConnectionError as exc:
        report.errors.append(f"flattening orders: {exc}")
    finally:
        for cl_ord_id in watches:
            risk.unwatch(cl_ord_id)
    for order, watch in watches.values():
        entry = report.symbols[order.symbol]
        entry.filled_qty += watch.filled
        last = watch.last
        if isinstance(last, Execution) and last.exec_type == "8":
            entry.rejects.append(last.text or f"rejected ({last.cl_ord_id})")


class RiskEnforcer:
    """``cancel-all`` and ``flatten`` of the agent's server, carried out by a RiskSession."""

    def __init__(
        self,
        risk: RiskSession,
        cancel_timeout_s: float = 5.0,
        cancel_policy: CancelPolicy | None = None,
        flatten_policy: FlattenPolicy | None = None,
    ) -> None:
        self.risk = risk
        self.cancel_timeout_s = cancel_timeout_s
        self.cancel_policy = cancel_policy or CancelPolicy()
        self.flatten_policy = flatten_policy or FlattenPolicy()

    async def cancel_all(self, who: str, why: str) -> dict[str, Any]:
        """Cancel everything and confirm at the venue; the report as a dict."""
        report = await self.risk.cancel_all(who, why, self.cancel_timeout_s, self.cancel_policy)
        return report.to_dict()

    async def flatten(self, who: str, why: str) -> dict[str, Any]:
        """Cancel, then flatten; the report as a dict."""
        return (await flatten(self.risk, who, why, self.flatten_policy)).to_dict()
