from __future__ import annotations

from decimal import Decimal as D  # noqa: N817

import pytest

from tradeops.sim.config import FillConfig
from tradeops.sim.engine import CancelRejectInfo, CancelReq, Engine, NewOrderReq, ReplaceReq
from tradeops.sim.prices import Tick

from .conftest import make_config


def tick(bid, ask, last=None):
    return Tick(D(str(bid)), D(str(ask)), D(str(last if last is not None else bid)), D(10), D(10))


def engine(**overrides) -> Engine:
    eng = Engine(make_config(**overrides), run_tag="T", clock=lambda: "20250101-00:00:00.000")
    eng.on_tick("ESZ5", tick(100, "100.25"))
    eng.on_tick("CLZ5", tick(75, "75.01"))
    return eng


def nos(cl, side="1", qty=1, price=None, ord_type="2", symbol="ESZ5", account="ACC1"):
    return NewOrderReq(cl, account, symbol, side, ord_type, D(str(qty)),
                       None if price is None else D(str(price)))  # fmt: skip


def test_limit_order_rests_then_fills_at_its_price_when_crossed():
    eng = engine()
    [ack] = eng.new_order(nos("a", price=99), "S1")
    assert (ack.exec_type, ack.ord_status, ack.leaves_qty) == ("0", "0", 1)
    assert ack.recipients == frozenset({"S1"})
    assert eng.on_tick("ESZ5", tick("99.25", "99.5")) == []
    [fill] = eng.on_tick("ESZ5", tick("98.5", "98.75"))
    assert (fill.exec_type, fill.ord_status, fill.last_px, fill.last_qty) == ("F", "2", 99, 1)
    assert eng.working_orders("ACC1") == []


def test_marketable_orders_fill_at_the_touch_and_market_with_slippage():
    eng = engine(fill={"market_slippage_ticks": 2})
    reps = eng.new_order(nos("b", price=101, qty=3), "S1")
    assert [r.exec_type for r in reps] == ["0", "F"]
    assert reps[1].last_px == D("100.25")
    assert reps[1].avg_px == D("100.25")
    sell = eng.new_order(nos("s", side="2", ord_type="1", qty=1), "S1")
    assert sell[1].last_px == D("99.5")  # bid - 2 ticks
    assert sell[0].price is None
    pos = {v.symbol: v for v in eng.position_views("ACC1")}["ESZ5"]
    assert pos.qty == 2
    assert pos.realized_pnl == (D("99.5") - D("100.25")) * 50


def test_partial_fills_by_max_qty_and_ratio():
    eng = engine(fill={"max_qty_per_tick": 4})
    reps = eng.new_order(nos("p", price=101, qty=10), "S1")
    assert [(r.exec_type, r.ord_status, r.last_qty, r.leaves_qty) for r in reps] == [
        ("0", "0", 0, 10), ("F", "1", 4, 6)]  # fmt: skip
    assert [r.last_qty for r in eng.on_tick("ESZ5", tick(100, "100.25"))] == [4]
    last = eng.on_tick("ESZ5", tick(100, "100.25"))
    assert (last[0].last_qty, last[0].ord_status, last[0].cum_qty) == (2, "2", 10)

    eng2 = engine(fill={"ratio": 0.5})
    reps = eng2.new_order(nos("r", price=101, qty=5), "S1")
    assert reps[1].last_qty == 2  # floor(2.5) lots
    assert eng2.on_tick("ESZ5", tick(100, "100.25"))[0].last_qty == 1  # at least one lot
    assert FillConfig().ratio == 1


def test_new_order_rejects():
    eng = engine()
    cases = {
        "sym": (nos("x", symbol="NOPE", price=1), "1", "unknown symbol"),
        "qty": (nos("x", qty=0, price=100), "13", "quantity must be > 0"),
        "lot": (nos("x", qty="1.5", price=100), "13", "lot size"),
        "grid": (nos("x", price="100.1"), "99", "tick size"),
        "nopx": (nos("x"), "99", "without price"),
        "side": (nos("x", side="5", price=100), "11", "Side"),
        "type": (nos("x", ord_type="3", price=100), "11", "OrdType"),
        "acct": (nos("x", price=100, account="ZZZ"), "99", "unknown account"),
    }
    for name, (req, reason, text) in cases.items():
        [rej] = eng.new_order(req, "S1")
        assert (rej.exec_type, rej.ord_status, rej.order_id) == ("8", "8", "NONE"), name
        assert rej.ord_rej_reason == reason, name
        assert text in (rej.text or ""), name
    eng.new_order(nos("dup", price=90), "S1")
    [rej] = eng.new_order(nos("dup", price=90), "S1")
    assert rej.ord_rej_reason == "6"
    tif = NewOrderReq("t", "ACC1", "ESZ5", "1", "2", D(1), D(90), time_in_force="3")
    assert "TimeInForce" in (eng.new_order(tif, "S1")[0].text or "")


def test_cancel_and_cancel_rejects():
    eng = engine()
    eng.new_order(nos("c1", price=90), "OE")
    [rep] = eng.cancel(CancelReq("c1-x", "c1", "ACC1", "ESZ5", "1"), "RISK")
    assert (rep.exec_type, rep.ord_status, rep.orig_cl_ord_id, rep.cl_ord_id) == (
        "4",
        "4",
        "c1",
        "c1-x",
    )
    assert rep.recipients == frozenset({"OE", "RISK"})  # owner and requester
    again = eng.cancel(CancelReq("c1-y", "c1", "ACC1", "ESZ5", "1"), "OE")
    assert isinstance(again, CancelRejectInfo)
    assert (again.reason, again.ord_status, again.response_to) == ("0", "4", "1")
    unknown = eng.cancel(CancelReq("u", "nope", "ACC1", "ESZ5", "1"), "OE")
    assert isinstance(unknown, CancelRejectInfo)
    assert (unknown.reason, unknown.order_id, unknown.ord_status) == ("1", None, "8")
    other = eng.cancel(CancelReq("u2", "c1", "ACC2", "ESZ5", "1"), "X")
    assert isinstance(other, CancelRejectInfo)  # orders of another account are invisible


def test_replace():
    eng = engine()
    eng.new_order(nos("r1", side="2", price=105, qty=2), "OE")
    [rep] = eng.replace(ReplaceReq("r2", "r1", "ACC1", "ESZ5", "2", D(3), "2", D(104)), "OE")
    assert (rep.exec_type, rep.order_qty, rep.price, rep.orig_cl_ord_id) == ("5", 3, 104, "r1")
    reps = eng.replace(ReplaceReq("r3", "r2", "ACC1", "ESZ5", "2", D(3), "2", D(99)), "OE")
    assert [r.exec_type for r in reps] == ["5", "F"]
    assert reps[1].last_px == 100
    eng.new_order(nos("q1", price=90, qty=5, ord_type="2"), "OE")
    eng.on_tick("ESZ5", tick(89, "89.25"))  # fills q1 fully at 90
    bad = eng.replace(ReplaceReq("q2", "q1", "ACC1", "ESZ5", "1", D(5), "2", D(90)), "OE")
    assert isinstance(bad, CancelRejectInfo)
    assert bad.response_to == "2"


def test_replace_below_filled_qty_is_rejected():
    eng = engine(fill={"max_qty_per_tick": 1})
    eng.new_order(nos("p1", price=101, qty=3), "OE")  # 1 filled on arrival
    bad = eng.replace(ReplaceReq("p2", "p1", "ACC1", "ESZ5", "1", D(1), "2", D(101)), "OE")
    assert isinstance(bad, CancelRejectInfo)
    assert "not above the filled" in bad.text


def test_mass_cancel_and_status_reports():
    eng = engine()
    eng.new_order(nos("m1", price=90), "OE")
    eng.new_order(nos("m2", price=91), "RISK")
    eng.new_order(nos("m3", price=70, symbol="CLZ5"), "OE")
    eng.new_order(nos("o1", price=90, account="ACC2"), "OE2")
    status = eng.status_reports("ACC1", "RISK", "ms")
    assert [(r.cl_ord_id, r.exec_type, r.status_only) for r in status] == [
        ("m1", "I", True), ("m2", "I", True), ("m3", "I", True)]  # fmt: skip
    assert [r.last_rpt_requested for r in status] == [False, False, True]
    assert {r.recipients for r in status} == {frozenset({"RISK"})}
    reps = eng.mass_cancel("ACC1", "RISK", "ESZ5")
    assert [r.cl_ord_id for r in reps] == ["m1", "m2"]
    assert [o.cl_ord_id for o in eng.working_orders("ACC1")] == ["m3"]
    assert [r.cl_ord_id for r in eng.mass_cancel("ACC1", "RISK")] == ["m3"]
    assert [o.cl_ord_id for o in eng.working_orders("ACC2")] == ["o1"]


def test_status_reports_count_and_flag_the_last():
    eng = engine()
    for i in range(3):
        eng.new_order(nos(f"w{i}", price=90), "OE")
    status = eng.status_reports("ACC1", "RISK", "ms")
    assert [(r.mass_status_req_id, r.tot_num_reports) for r in status] == [("ms", 3)] * 3
    assert [r.order_id for r in status] == [o.order_id for o in eng.working_orders("ACC1")]


def test_status_reports_without_working_orders_answer_once():
    eng = engine()
    eng.new_order(nos("w", price=90, account="ACC2"), "OE2")  # another account's order
    [none] = eng.status_reports("ACC1", "RISK", "ms0")
    assert (none.exec_type, none.order_id, none.cl_ord_id) == ("I", "NONE", "NONE")
    assert (none.mass_status_req_id, none.tot_num_reports, none.last_rpt_requested) == (
        "ms0",
        0,
        True,
    )
    assert (none.account, none.symbol, none.ord_status, none.text) == (
        "ACC1",
        "NA",
        "8",
        "no working orders",
    )
    assert none.status_only
    assert none.recipients == frozenset({"RISK"})
    assert (none.order_qty, none.leaves_qty, none.cum_qty) == (0, 0, 0)
    eng.new_order(nos("c", price=70, symbol="CLZ5"), "OE")
    [sym] = eng.status_reports("ACC1", "RISK", "ms1", "ESZ5")
    assert (sym.order_id, sym.symbol, sym.text) == ("NONE", "ESZ5", "no working orders in ESZ5")
    second = eng.status_reports("ACC1", "RISK", "ms2", "ESZ5")[0]
    assert second.exec_id != sym.exec_id  # unique ExecIDs: a resend is recognised as such


def test_kill_switch():
    eng = engine()
    eng.new_order(nos("k1", price=90), "OE")
    eng.new_order(nos("k2", price=90, account="ACC2"), "OE2")
    cancelled = eng.set_kill_switch("ACC1", True)
    assert [(r.cl_ord_id, r.exec_type, r.text) for r in cancelled] == [("k1", "4", "kill switch")]
    [rej] = eng.new_order(nos("k3", price=90), "OE")
    assert rej.exec_type == "8"
    assert "kill switch" in (rej.text or "")
    assert eng.set_kill_switch("ACC2", True) == []  # cancel_on_kill: false
    assert len(eng.cancel(CancelReq("k2-c", "k2", "ACC2", "ESZ5", "1"), "OE2")) == 1
    eng.set_kill_switch("ACC1", False)
    assert eng.new_order(nos("k4", price=90), "OE")[0].exec_type == "0"
    with pytest.raises(KeyError):
        eng.set_kill_switch("NOPE", True)


def test_state_is_json_friendly():
    import json

    eng = engine()
    eng.new_order(nos("s1", price=101), "OE")
    eng.new_order(nos("s2", price=90), "OE")
    state = eng.state()
    json.dumps(state)
    assert [o["cl_ord_id"] for o in state["orders"]] == ["s2"]
    assert state["positions"][0]["qty"] == "1"
    assert state["kill_switch"] == {"ACC1": False, "ACC2": False}
