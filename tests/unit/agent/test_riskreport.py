"""Verdicts of the risk session: "clean" and "flat" only from complete venue answers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeops.agent.flatten import (
    FlattenPolicy,
    collar_price,
    reduce_only_orders,
    reference_price,
)
from tradeops.agent.riskreport import (
    CancelReport,
    FlattenReport,
    PositionsAnswer,
    status_answer,
)
from tradeops.brokers.base import Execution, Position, PositionsAck, Quote, Side

D = Decimal


def status(req: str, order_id: str, total: int, last: bool, status_: str = "0") -> Execution:
    none = order_id == "NONE"
    return Execution(
        exec_id=f"E-{order_id}",
        order_id=order_id,
        cl_ord_id=order_id if none else f"c-{order_id}",
        orig_cl_ord_id=None,
        symbol="NA" if none else "S01",
        side=Side.BUY,
        exec_type="I",
        ord_status="8" if none else status_,
        order_qty=D(0 if none else 5),
        last_qty=D(0),
        last_px=D(0),
        cum_qty=D(0),
        leaves_qty=D(0 if none else 5),
        mass_status_req_id=req,
        tot_num_reports=total,
        last_rpt_requested=last,
    )


def test_the_no_orders_answer_is_clean() -> None:
    answer = status_answer("ms1", [status("ms1", "NONE", 0, True)])
    assert answer.complete
    assert answer.clean
    assert answer.working == ()


def test_working_orders_are_listed_and_not_clean() -> None:
    answer = status_answer(
        "ms1", [status("ms1", "O1", 2, False), status("ms1", "O2", 2, True, status_="1")]
    )
    assert answer.complete
    assert not answer.clean
    assert [o.order_id for o in answer.working] == ["O1", "O2"]


def test_an_answer_without_its_last_report_is_not_clean() -> None:
    answer = status_answer("ms1", [status("ms1", "O1", 2, False)])
    assert not answer.complete
    assert not answer.clean


def test_a_count_that_does_not_match_tot_num_reports_is_incomplete() -> None:
    answer = status_answer("ms1", [status("ms1", "O2", 3, True)])
    assert not answer.complete


def test_reports_of_another_request_are_ignored() -> None:
    answer = status_answer("ms2", [status("ms1", "NONE", 0, True)])
    assert answer.received == 0
    assert not answer.clean


def test_cancel_report_clean_only_from_a_complete_zero_answer() -> None:
    report = CancelReport("op", "why", "ACC1")
    report.settle(status_answer("m", [status("m", "O1", 1, True)]), 0.01)
    assert not report.clean
    assert report.still_working == ["O1"]
    report.settle(None, 0.02)
    assert not report.clean
    report.settle(status_answer("m", [status("m", "NONE", 0, True)]), 0.03)
    assert report.clean
    assert report.still_working == []
    assert report.confirm_ms == 30.0


def test_repeated_steps_keep_their_order() -> None:
    report = CancelReport("op", "why", "ACC1")
    for name in ("confirm", "per_order", "confirm"):
        report.step(name, 0.001)
    assert list(report.steps_ms) == ["confirm", "per_order", "confirm_2"]


def pos(symbol: str, qty: str, settl: str | None = "100", req: str = "p1") -> Position:
    return Position("ACC1", symbol, D(qty), pos_req_id=req, settl_px=D(settl) if settl else None)


def answer(*positions: Position, total: int | None = None, status_: str = "0") -> PositionsAnswer:
    n = len(positions) if total is None else total
    return PositionsAnswer("p1", PositionsAck("p1", n, status_), positions)


def test_flat_needs_every_report_and_zero_everywhere() -> None:
    assert answer(pos("A", "0"), pos("B", "0")).flat
    assert not answer(pos("A", "0"), pos("B", "2")).flat
    assert not answer(pos("A", "0"), total=2).flat  # one report missing
    assert not answer(status_="2", total=0).flat  # rejected request
    assert not PositionsAnswer("p1", None, (pos("A", "0"),)).flat  # no ack


def test_flatten_report_observes_start_and_final_quantities() -> None:
    report = FlattenReport("op", "why", "ACC1")
    report.observe(answer(pos("A", "5"), pos("B", "-2"), pos("C", "0")))
    assert not report.flat
    assert report.still_open == {"A": D(5), "B": D(-2)}
    report.observe(answer(pos("A", "0"), pos("B", "0"), pos("C", "0")))
    assert report.flat
    assert report.still_open == {}
    assert {s: (e.start_qty, e.final_qty) for s, e in report.symbols.items()} == {
        "A": (D(5), D(0)),
        "B": (D(-2), D(0)),
    }


@pytest.mark.parametrize(
    ("side", "ref", "tick", "ticks", "bps", "expected"),
    [
        (Side.SELL, "100", "0.01", 10, "0", "99.90"),
        (Side.BUY, "100", "0.01", 10, "0", "100.10"),
        (Side.SELL, "100", "0.25", 1, "30", "99.75"),  # 30 bps = 0.30, ceil to the grid: 99.75
        (Side.BUY, "100", "0.25", 1, "30", "100.25"),  # floor to the grid, inside the collar
        (Side.SELL, "0.05", "0.01", 10, "0", "0.01"),  # never below one tick
    ],
)
def test_collar_price(side: Side, ref: str, tick: str, ticks: int, bps: str, expected: str) -> None:
    assert collar_price(side, D(ref), D(tick), ticks, D(bps)) == D(expected)


def test_reference_price_prefers_the_touch_then_last_then_settlement() -> None:
    p = pos("A", "5", settl="99")
    quote = Quote("A", bid=D("100.5"), ask=D("101"), last=D("100.7"))
    assert reference_price(Side.SELL, quote, p) == D("100.5")
    assert reference_price(Side.BUY, quote, p) == D("101")
    assert reference_price(Side.SELL, Quote("A", None, None, D("100.7")), p) == D("100.7")
    assert reference_price(Side.SELL, None, p) == D("99")
    assert reference_price(Side.SELL, None, pos("A", "5", settl=None)) is None


def test_reduce_only_orders_close_exactly_the_reported_quantity() -> None:
    ids = iter(f"F{i}" for i in range(10))
    orders, problems = reduce_only_orders(
        answer(pos("A", "5"), pos("B", "-3"), pos("C", "0"), pos("D", "2", settl=None)),
        {},
        FlattenPolicy(collar_ticks=4),
        lambda: next(ids),
    )
    assert [(o.symbol, o.side, o.qty, o.price) for o in orders] == [
        ("A", Side.SELL, D(5), D("99.96")),
        ("B", Side.BUY, D(3), D("100.04")),
    ]
    assert list(problems) == ["D"]
