"""Quote placement: pure functions from market, position and working orders to actions.

The market maker keeps at most one live quote per side. A side is quoted with
``size``, clipped so that the position plus every working order on that side
(including orders being cancelled) cannot pass the symbol's limit; at zero
capacity the side is not quoted. A quote that drifted from its target by
``requote_bps`` (or is larger than the side may now carry) is cancelled, and its
replacement is placed on a later pass, once the cancel is acknowledged, so that
the old and the new quote never count against the limit at the same time.

The host trading state shapes the targets too: nothing in HALTED, only the side
that reduces the position (by at most the position) in REDUCING. The order gate
(:func:`tradeops.tradingstate.check_order`) still checks every order that goes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradeops.brokers.base import Quote, Side
from tradeops_client.tradingstate import TradingState
from tradeops_refapp.orders import ZERO, OrderRecord, OrderStatus

BPS = Decimal(10_000)
TWO = Decimal(2)


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """Quoting parameters of one symbol."""

    spread_bps: Decimal
    size: Decimal
    requote_bps: Decimal
    tick_size: Decimal
    max_position: Decimal


@dataclass(frozen=True, slots=True)
class Target:
    """The quote one side should have."""

    side: Side
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class Place:
    """Send a new quote."""

    symbol: str
    side: Side
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel one of our orders."""

    cl_ord_id: str
    reason: str


Action = Place | Cancel


def mid_price(quote: Quote | None) -> Decimal | None:
    """Mid of the top of book; the last trade when one side is missing; else None."""
    if quote is None:
        return None
    if quote.bid is not None and quote.ask is not None and quote.bid > 0 and quote.ask > 0:
        return (quote.bid + quote.ask) / TWO
    if quote.last is not None and quote.last > 0:
        return quote.last
    return None


def to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    """Round ``price`` to a multiple of ``tick``, up or down."""
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * tick).quantize(tick)


def quote_prices(mid: Decimal, params: QuoteParams) -> tuple[Decimal, Decimal] | None:
    """Bid and ask around ``mid``, on the tick grid and at least one tick apart."""
    half = mid * params.spread_bps / BPS / TWO
    bid = to_tick(mid - half, params.tick_size, up=False)
    ask = to_tick(mid + half, params.tick_size, up=True)
    if ask <= bid:
        ask = bid + params.tick_size
    if bid <= 0:
        return None
    return bid, ask


def side_capacity(
    side: Side,
    position: Decimal,
    pending_qty: Decimal,
    max_position: Decimal,
    state: TradingState,
) -> Decimal:
    """Largest new order on ``side`` allowed by the limit and the trading state.

    ``pending_qty`` is the open quantity on that side that will remain working
    (orders being cancelled); the quote being replaced is not counted.
    """
    if state is TradingState.HALTED:
        return ZERO
    if state is TradingState.REDUCING:
        room = -position if side is Side.BUY else position
        return max(room - pending_qty, ZERO)
    room = max_position - position if side is Side.BUY else max_position + position
    return max(room - pending_qty, ZERO)


def targets(
    mid: Decimal | None,
    position: Decimal,
    pending: dict[Side, Decimal],
    params: QuoteParams,
    state: TradingState,
) -> dict[Side, Target | None]:
    """Return the quote each side should carry (None: no quote on that side)."""
    out: dict[Side, Target | None] = {Side.BUY: None, Side.SELL: None}
    if mid is None or mid <= 0:
        return out
    prices = quote_prices(mid, params)
    if prices is None:
        return out
    for side, price in zip((Side.BUY, Side.SELL), prices, strict=True):
        cap = side_capacity(side, position, pending.get(side, ZERO), params.max_position, state)
        qty = min(params.size, cap)
        if qty > 0:
            out[side] = Target(side, price, qty)
    return out


def _drifted(order: OrderRecord, target: Target, mid: Decimal, requote_bps: Decimal) -> bool:
    if order.price is None:
        return True
    moved_bps = abs(order.price - target.price) / mid * BPS
    if requote_bps == 0:
        return moved_bps > 0
    return moved_bps >= requote_bps


def plan(
    symbol: str,
    mid: Decimal | None,
    position: Decimal,
    working: Iterable[OrderRecord],
    params: QuoteParams,
    state: TradingState,
) -> list[Action]:
    """Actions that bring our quotes in ``symbol`` to their targets."""
    live: dict[Side, list[OrderRecord]] = {Side.BUY: [], Side.SELL: []}
    pending: dict[Side, Decimal] = {Side.BUY: ZERO, Side.SELL: ZERO}
    for order in working:
        if order.symbol != symbol or not order.status.is_live:
            continue
        if order.status is OrderStatus.PENDING_CANCEL:
            pending[order.side] += order.leaves
        else:
            live[order.side].append(order)
    goal = targets(mid, position, pending, params, state)
    actions: list[Action] = []
    for side in (Side.BUY, Side.SELL):
        target = goal[side]
        orders = live[side]
        if target is None:
            actions.extend(Cancel(o.cl_ord_id, "no_target") for o in orders)
            continue
        if not orders:
            if pending[side] == 0:
                actions.append(Place(symbol, side, target.price, target.qty))
            continue
        keep = orders[0] if len(orders) == 1 else None
        if keep is not None and mid is not None:
            if keep.leaves > target.qty:
                actions.append(Cancel(keep.cl_ord_id, "over_limit"))
            elif _drifted(keep, target, mid, params.requote_bps):
                actions.append(Cancel(keep.cl_ord_id, "requote"))
            continue
        actions.extend(Cancel(o.cl_ord_id, "duplicate_quote") for o in orders)
    return actions
