"""Order tracking: acks, fills by exec_id (idempotent), positions and P&L."""

from __future__ import annotations

from decimal import Decimal

from tradeops.brokers.base import Execution, Side
from tradeops_refapp.orders import OrderRecord, OrderStatus, OrderTracker, PositionState

D = Decimal


def er(cl, exec_type, ord_status, *, exec_id="E", last_qty=0, last_px=0, cum=0, leaves=0,
       side=Side.BUY, qty=10, orig=None, symbol="AAA"):  # fmt: skip
    return Execution(
        exec_id=exec_id, order_id="X" + cl, cl_ord_id=cl, orig_cl_ord_id=orig, symbol=symbol,
        side=side, exec_type=exec_type, ord_status=ord_status, order_qty=D(qty),
        last_qty=D(last_qty), last_px=D(str(last_px)), cum_qty=D(cum), leaves_qty=D(leaves),
    )  # fmt: skip


def tracker_with(cl="O1", side=Side.BUY, qty=10, price="100") -> OrderTracker:
    t = OrderTracker()
    t.add(OrderRecord(cl, "AAA", side, D(qty), D(price)))
    return t


def test_ack_then_fills_then_done() -> None:
    t = tracker_with()
    assert t.working_qty("AAA", Side.BUY) == 10
    out = t.on_execution(er("O1", "0", "0", exec_id="E0", leaves=10))
    assert out.acked
    assert not out.fill
    assert not out.done
    assert t.orders["O1"].status is OrderStatus.NEW
    assert t.orders["O1"].order_id == "XO1"
    out = t.on_execution(er("O1", "F", "1", exec_id="E1", last_qty=4, last_px=100, cum=4))
    assert out.fill
    assert out.fill.qty == 4
    assert not out.acked
    assert t.working_qty("AAA", Side.BUY) == 6
    out = t.on_execution(er("O1", "F", "2", exec_id="E2", last_qty=6, last_px=101, cum=10))
    assert out.done
    assert t.working("AAA") == []
    pos = t.position("AAA")
    assert pos.qty == 10
    assert pos.avg_px == D("100.6")


def test_the_same_exec_id_is_applied_once() -> None:
    t = tracker_with()
    fill = er("O1", "F", "1", exec_id="E1", last_qty=4, last_px=100, cum=4)
    assert t.on_execution(fill).fill is not None
    again = t.on_execution(fill)
    assert again.duplicate
    assert again.fill is None
    assert t.position("AAA").qty == 4


def test_restored_exec_ids_are_not_applied_again() -> None:
    t = OrderTracker()
    t.load([], [PositionState("AAA", D(4), D(100))], ["E1"])
    out = t.on_execution(er("O1", "F", "1", exec_id="E1", last_qty=4, last_px=100, cum=4))
    assert out.duplicate
    assert t.position("AAA").qty == 4


def test_first_report_of_any_kind_is_the_ack() -> None:
    t = tracker_with()
    out = t.on_execution(er("O1", "F", "2", exec_id="E1", last_qty=10, last_px=100, cum=10))
    assert out.acked
    assert out.fill
    assert out.done
    t2 = tracker_with()
    out = t2.on_execution(er("O1", "8", "8", exec_id="R1"))
    assert out.acked
    assert out.rejected
    assert out.done
    assert t2.working() == []


def test_cancel_flow_and_cancel_reject() -> None:
    t = tracker_with()
    t.on_execution(er("O1", "0", "0", exec_id="E0", leaves=10))
    order = t.orders["O1"]
    t.mark_cancel(order, "C1")
    assert order.status is OrderStatus.PENDING_CANCEL
    assert t.working_qty("AAA", Side.BUY) == 10  # still counts until it is gone
    assert t.on_cancel_reject("C1", "O1") is order
    assert order.status is OrderStatus.NEW
    t.mark_cancel(order, "C2")
    out = t.on_execution(er("C2", "4", "4", exec_id="E9", orig="O1"))
    assert out.order is order
    assert out.done
    assert order.status is OrderStatus.CANCELED


def test_status_report_does_not_undo_a_pending_cancel() -> None:
    t = tracker_with()
    t.on_execution(er("O1", "0", "0", exec_id="E0", leaves=10))
    t.mark_cancel(t.orders["O1"], "C1")
    t.on_execution(er("O1", "I", "0", exec_id="S1", leaves=10))
    assert t.orders["O1"].status is OrderStatus.PENDING_CANCEL
    # ... but a fill that completes it ends it.
    t.on_execution(er("O1", "F", "2", exec_id="E1", last_qty=10, last_px=100, cum=10))
    assert t.orders["O1"].status is OrderStatus.FILLED


def test_order_status_reports_are_not_fills() -> None:
    t = tracker_with()
    out = t.on_execution(er("O1", "I", "1", exec_id="S1", last_qty=5, last_px=100, cum=5))
    assert out.fill is None
    assert t.position("AAA").qty == 0


def test_fill_of_an_unknown_order_still_moves_the_position() -> None:
    t = OrderTracker()
    out = t.on_execution(er("GONE", "F", "2", exec_id="E1", last_qty=3, last_px=50, side=Side.SELL))
    assert out.order is None
    assert out.fill is not None
    assert t.position("AAA").qty == -3


def test_position_average_cost_and_realized_pnl() -> None:
    p = PositionState("AAA")
    p.apply_fill(Side.BUY, D(10), D(100))
    p.apply_fill(Side.BUY, D(10), D(110))
    assert (p.qty, p.avg_px) == (20, 105)
    p.apply_fill(Side.SELL, D(5), D(115))
    assert (p.qty, p.avg_px, p.realized_pnl) == (15, 105, 50)
    assert p.unrealized(D(100)) == -75
    p.apply_fill(Side.SELL, D(25), D(100))  # closes 15 at a loss, opens -10 at 100
    assert (p.qty, p.avg_px, p.realized_pnl) == (-10, 100, 50 - 75)
    p.apply_fill(Side.BUY, D(10), D(90))
    assert (p.qty, p.avg_px, p.realized_pnl) == (0, 0, -25 + 100)
    assert p.unrealized(None) == 0


def test_pnl_applies_the_contract_multiplier_through_a_flip() -> None:
    p = PositionState("ESZ5", multiplier=D(50))
    p.apply_fill(Side.BUY, D(2), D("5000"))
    p.apply_fill(Side.BUY, D(2), D("5001"))
    assert (p.qty, p.avg_px, p.realized_pnl) == (4, D("5000.5"), 0)
    assert p.unrealized(D("5002")) == D("1.5") * 4 * 50
    p.apply_fill(Side.SELL, D(1), D("5002"))  # closes 1: +1.5 points
    assert (p.qty, p.avg_px) == (3, D("5000.5"))  # quantities and prices are unchanged
    assert p.realized_points == D("1.5")
    assert p.realized_pnl == D("1.5") * 50
    # Sell 5 at 4999: closes 3 at -1.5 points each, then opens -2 at 4999.
    p.apply_fill(Side.SELL, D(5), D("4999"))
    assert (p.qty, p.avg_px) == (-2, D("4999"))
    assert p.realized_pnl == (D("1.5") - D("4.5")) * 50
    assert p.unrealized(D("4998")) == D(1) * 2 * 50  # short 2, one point in our favour
    p.apply_fill(Side.BUY, D(2), D("5000"))  # closes the short at a loss of 2 points
    assert (p.qty, p.avg_px, p.unrealized(D("5000"))) == (0, 0, 0)
    assert p.realized_pnl == (D("1.5") - D("4.5") - D(2)) * 50 == -250
    assert p.as_dict() == {
        "symbol": "ESZ5",
        "qty": "0",
        "avg_px": "0",
        "realized_pnl": str(D("-5.0") * 50),
        "multiplier": "50",
    }


def test_tracker_gives_positions_their_multiplier_new_and_restored() -> None:
    t = OrderTracker(multipliers={"CLZ5": D(1000)})
    # Restored from the store: realized P&L is stored before the multiplier.
    t.load([], [PositionState("CLZ5", D(3), D("75.10"), D("0.25"))], [])
    clz5 = t.position("CLZ5")
    assert (clz5.qty, clz5.avg_px, clz5.multiplier) == (3, D("75.10"), 1000)
    assert clz5.realized_pnl == 250
    assert clz5.unrealized(D("75.12")) == D("0.02") * 3 * 1000
    t.on_execution(
        er("GONE", "F", "2", exec_id="E1", last_qty=3, last_px="75.00", side=Side.SELL,
           symbol="CLZ5")
    )  # fmt: skip
    assert clz5.qty == 0
    assert clz5.realized_points == D("0.25") - D("0.30")
    assert clz5.realized_pnl == -50
    # A symbol without a configured multiplier counts 1.
    t.on_execution(er("GONE", "F", "2", exec_id="E2", last_qty=2, last_px=10))
    assert t.position("AAA").multiplier == 1
    assert t.position("AAA").unrealized(D(11)) == 2
