"""Positions reconciled with the venue's: collecting one answer, then applying it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeops.brokers.base import Position, PositionsAck, Side
from tradeops_refapp.orders import OrderTracker
from tradeops_refapp.reconcile import PositionsRefused, PositionsRequest, reconcile

D = Decimal


def report(symbol: str, qty: str, req: str = "p1", **kw: Decimal) -> Position:
    return Position("ACC1", symbol, D(qty), pos_req_id=req, **kw)


def test_the_answer_is_complete_at_the_acks_total_and_ignores_other_requests() -> None:
    request = PositionsRequest("p1")
    assert not request.add(report("AAA", "5"))  # before the ack: not complete
    assert not request.add(PositionsAck("p1", 2, "0"))
    assert not request.add(report("BBB", "1", req="p0"))  # another request's
    assert not request.add(PositionsAck("p0", 0, "0"))
    assert request.add(report("BBB", "-3"))
    assert {s: p.qty for s, p in request.reports.items()} == {"AAA": 5, "BBB": -3}


def test_an_empty_book_is_complete_at_its_ack() -> None:
    assert PositionsRequest("p1").add(PositionsAck("p1", 0, "0"))


@pytest.mark.parametrize(("status", "result"), [("2", "0"), ("0", "2")])
def test_a_refused_request_raises(status: str, result: str) -> None:
    with pytest.raises(PositionsRefused, match="p1"):
        PositionsRequest("p1").add(PositionsAck("p1", 0, status, result, text="unknown account"))


def tracker_with(**qty: str) -> OrderTracker:
    tracker = OrderTracker(multipliers={"AAA": D(50)})
    for symbol, q in qty.items():
        pos = tracker.position(symbol)
        pos.apply_fill(Side.BUY if D(q) > 0 else Side.SELL, abs(D(q)), D(100))
    return tracker


def test_the_venues_figures_replace_ours_where_they_differ() -> None:
    tracker = tracker_with(AAA="10", BBB="4", CCC="-2")
    reports = {
        "AAA": report("AAA", "0"),  # flattened by the agent
        "BBB": report("BBB", "4"),  # the same: untouched
        "DDD": report("DDD", "7", avg_px=D("99.5"), realized_pnl=D("12")),  # by hand
    }
    changed = reconcile(tracker, reports, ["AAA", "BBB"])
    assert [(a.symbol, a.ours, a.venue) for a in changed] == [
        ("AAA", 10, 0),
        ("CCC", -2, 0),  # held by us, not reported: flat at the venue
        ("DDD", 0, 7),
    ]
    assert (tracker.position("AAA").qty, tracker.position("AAA").avg_px) == (0, 0)
    assert tracker.position("BBB").qty == 4
    assert tracker.position("DDD").avg_px == D("99.5")
    assert tracker.position("DDD").realized_points == 12


def test_the_realized_pnl_is_taken_before_the_multiplier() -> None:
    tracker = tracker_with(AAA="3")
    reconcile(tracker, {"AAA": report("AAA", "1", realized_pnl=D("500"))}, ["AAA"])
    assert tracker.position("AAA").realized_points == 10  # 500 / multiplier 50
    assert tracker.position("AAA").avg_px == 100  # no venue price: ours is kept


def test_nothing_changes_when_the_venue_agrees() -> None:
    tracker = tracker_with(AAA="10")
    assert reconcile(tracker, {"AAA": report("AAA", "10")}, ["AAA"]) == []
