from __future__ import annotations

from decimal import Decimal as D  # noqa: N817

from tradeops.sim.engine import PositionState, apply_fill, unrealized_pnl


def test_open_add_reduce_close():
    pos = PositionState()
    assert apply_fill(pos, D(2), D(100)) == 0
    assert apply_fill(pos, D(2), D(102)) == 0
    assert pos.qty == 4
    assert pos.avg_px == D(101)
    assert apply_fill(pos, D(-1), D(105)) == D(4)  # sold 1 at 105 against 101
    assert pos.qty == 3
    assert pos.avg_px == D(101)
    assert apply_fill(pos, D(-3), D(100)) == D(-3)
    assert pos.qty == 0
    assert pos.avg_px == 0
    assert pos.realized == D(1)


def test_flip_opens_the_rest_at_the_fill_price():
    pos = PositionState()
    apply_fill(pos, D(-2), D(50))
    assert pos.qty == -2
    realized = apply_fill(pos, D(5), D(48))
    assert realized == D(4)  # short 2 from 50, covered at 48
    assert pos.qty == 3
    assert pos.avg_px == D(48)


def test_multiplier_and_unrealized():
    pos = PositionState()
    apply_fill(pos, D(2), D("100.25"), D(50))
    assert unrealized_pnl(pos, D("100.5"), D(50)) == D("25.00")
    assert apply_fill(pos, D(-2), D("100.75"), D(50)) == D("50.00")
    assert unrealized_pnl(pos, D(1), D(50)) == 0
    short = PositionState()
    apply_fill(short, D(-1), D(10))
    assert unrealized_pnl(short, D(9)) == D(1)
