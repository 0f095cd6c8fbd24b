"""Quote targets and actions: spread, tick rounding, limits counting working orders."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeops.brokers.base import Quote, Side
from tradeops.tradingstate import TradingState
from tradeops_refapp.orders import OrderRecord, OrderStatus
from tradeops_refapp.quoting import (
    Cancel,
    Place,
    QuoteParams,
    mid_price,
    plan,
    quote_prices,
    side_capacity,
    targets,
    to_tick,
)

D = Decimal
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
P = QuoteParams(
    spread_bps=D(20), size=D(10), requote_bps=D(5), tick_size=D("0.01"), max_position=D(100)
)


def order(side, price, qty=10, status=OrderStatus.NEW, cum=0, cl="O1", symbol="AAA"):
    return OrderRecord(cl, symbol, side, D(qty), D(str(price)), status, cum_qty=D(cum))


def test_mid_price() -> None:
    assert mid_price(Quote("A", D("99"), D("101"))) == D(100)
    assert mid_price(Quote("A", None, D("101"), last=D("100.5"))) == D("100.5")
    assert mid_price(Quote("A", None, None)) is None
    assert mid_price(None) is None


def test_prices_straddle_the_mid_on_the_tick_grid() -> None:
    assert quote_prices(D(100), P) == (D("99.90"), D("100.10"))
    bid, ask = quote_prices(D("100.003"), P)
    assert (bid, ask) == (D("99.90"), D("100.11"))
    assert to_tick(D("1.005"), D("0.01"), up=True) == D("1.01")
    # A spread below one tick still leaves bid < ask on the grid.
    tight = QuoteParams(D("0.01"), D(1), D(0), D("0.01"), D(10))
    assert quote_prices(D(100), tight) == (D("99.99"), D("100.01"))
    assert quote_prices(D("100.005"), tight) == (D("100.00"), D("100.01"))


def test_capacity_counts_position_and_pending_orders() -> None:
    assert side_capacity(Side.BUY, D(95), D(0), D(100), A) == 5
    assert side_capacity(Side.BUY, D(90), D(7), D(100), A) == 3
    assert side_capacity(Side.SELL, D(90), D(0), D(100), A) == 190
    assert side_capacity(Side.BUY, D(120), D(0), D(100), A) == 0
    assert side_capacity(Side.SELL, D(10), D(0), D(100), R) == 10
    assert side_capacity(Side.SELL, D(10), D(4), D(100), R) == 6
    assert side_capacity(Side.BUY, D(10), D(0), D(100), R) == 0
    assert side_capacity(Side.SELL, D(10), D(0), D(100), H) == 0


def test_targets_clip_and_drop_sides() -> None:
    t = targets(D(100), D(95), {}, P, A)
    assert t[Side.BUY].qty == 5
    assert t[Side.SELL].qty == 10
    t = targets(D(100), D(100), {}, P, A)
    assert t[Side.BUY] is None
    assert t[Side.SELL].qty == 10
    t = targets(D(100), D(-100), {}, P, A)
    assert t[Side.SELL] is None
    assert t[Side.BUY].qty == 10
    assert targets(None, D(0), {}, P, A) == {Side.BUY: None, Side.SELL: None}
    assert targets(D(100), D(5), {}, P, H) == {Side.BUY: None, Side.SELL: None}
    t = targets(D(100), D(5), {}, P, R)
    assert t[Side.BUY] is None
    assert t[Side.SELL].qty == 5


def test_plan_places_both_sides_when_flat() -> None:
    actions = plan("AAA", D(100), D(0), [], P, A)
    assert actions == [
        Place("AAA", Side.BUY, D("99.90"), D(10)),
        Place("AAA", Side.SELL, D("100.10"), D(10)),
    ]


def test_plan_keeps_quotes_within_the_requote_threshold() -> None:
    working = [order(Side.BUY, "99.90", cl="B"), order(Side.SELL, "100.10", cl="S")]
    assert plan("AAA", D("100.02"), D(0), working, P, A) == []


def test_plan_requotes_a_drifted_quote() -> None:
    working = [order(Side.BUY, "99.90", cl="B"), order(Side.SELL, "100.10", cl="S")]
    actions = plan("AAA", D("100.20"), D(0), working, P, A)
    assert actions == [Cancel("B", "requote"), Cancel("S", "requote")]


def test_working_orders_count_toward_the_limit() -> None:
    # Position 85 and a buy of 10 being cancelled: only 5 more may be bought.
    working = [order(Side.BUY, "99.00", qty=10, status=OrderStatus.PENDING_CANCEL, cl="B0")]
    actions = plan("AAA", D(100), D(85), working, P, A)
    # No new buy while the old one is still being cancelled; the sell is placed.
    assert actions == [Place("AAA", Side.SELL, D("100.10"), D(10))]
    # Once the cancel is done, the new buy is clipped to the room left.
    assert plan("AAA", D(100), D(85), [], P, A)[0] == Place("AAA", Side.BUY, D("99.90"), D(10))
    assert plan("AAA", D(100), D(95), [], P, A)[0] == Place("AAA", Side.BUY, D("99.90"), D(5))


def test_a_quote_larger_than_the_room_left_is_cancelled() -> None:
    working = [order(Side.BUY, "99.90", qty=10, cl="B")]
    actions = plan("AAA", D(100), D(95), working, P, A)
    assert Cancel("B", "over_limit") in actions


def test_partially_filled_quote_is_kept() -> None:
    working = [order(Side.BUY, "99.90", qty=10, cum=4, status=OrderStatus.PARTIALLY_FILLED)]
    actions = plan("AAA", D(100), D(4), working, P, A)
    assert [a for a in actions if isinstance(a, Cancel)] == []


@pytest.mark.parametrize("state", [H])
def test_halted_cancels_every_quote(state) -> None:
    working = [order(Side.BUY, "99.90", cl="B"), order(Side.SELL, "100.10", cl="S")]
    assert plan("AAA", D(100), D(0), working, P, state) == [
        Cancel("B", "no_target"),
        Cancel("S", "no_target"),
    ]


def test_reducing_quotes_only_the_reducing_side() -> None:
    working = [order(Side.BUY, "99.90", cl="B"), order(Side.SELL, "100.10", cl="S")]
    actions = plan("AAA", D(100), D(30), working, P, R)
    assert actions == [Cancel("B", "no_target")]
    actions = plan("AAA", D(100), D(-3), [], P, R)
    assert actions == [Place("AAA", Side.BUY, D("99.90"), D(3))]


def test_duplicate_quotes_are_cancelled() -> None:
    working = [order(Side.BUY, "99.90", cl="B1"), order(Side.BUY, "99.90", cl="B2")]
    actions = plan("AAA", D(100), D(0), working, P, A)
    assert Cancel("B1", "duplicate_quote") in actions
    assert Cancel("B2", "duplicate_quote") in actions


def test_other_symbols_are_ignored() -> None:
    working = [order(Side.BUY, "5.00", cl="X", symbol="BBB")]
    actions = plan("AAA", D(100), D(0), working, P, A)
    assert all(isinstance(a, Place) for a in actions)
