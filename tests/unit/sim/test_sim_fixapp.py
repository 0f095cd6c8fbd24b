"""Parsing of inbound requests (bad input -> the right reject) and the wire format of replies."""

from __future__ import annotations

from decimal import Decimal as D  # noqa: N817

import pytest
from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.codec import Codec
from asyncfix.session import FIXSession

from tradeops.brokers.base import (
    CancelReject,
    Execution,
    MassCancelReport,
    Position,
    PositionsAck,
    Quote,
    Reject,
    SessionConfig,
)
from tradeops.brokers.fix import FixSession
from tradeops.brokers.fixproto import TradeopsFIX44, fmt_decimal, make_protocol, parse_decimal
from tradeops.sim import fixapp
from tradeops.sim.engine import CancelRejectInfo, PositionView, Report
from tradeops.sim.fixapp import BusinessRejectError, SessionRejectError
from tradeops.sim.prices import Tick

GOOD = {FTag.ClOrdID: "c", FTag.Symbol: "ESZ5", FTag.Side: "1", FTag.OrderQty: "2",
        FTag.OrdType: "2", FTag.Price: "100.25"}  # fmt: skip


def d(tags):
    return FIXMessage(FMsg.NEWORDERSINGLE, tags)


def test_parse_new_order():
    req = fixapp.parse_new_order(d(GOOD), "ACC1")
    assert (req.cl_ord_id, req.account, req.qty, req.price) == ("c", "ACC1", 2, D("100.25"))


@pytest.mark.parametrize(
    ("drop", "change", "reason", "tag"),
    [
        ("55", {}, 1, "55"),
        ("44", {}, 1, "44"),
        (None, {"54": "Z"}, 5, "54"),
        (None, {"54": "12"}, 5, "54"),
        (None, {"38": "two"}, 6, "38"),
        (None, {"38": "NaN"}, 6, "38"),
        (None, {"44": "1e999999"}, 6, "44"),
        (None, {"11": ""}, 4, "11"),
        (None, {"59": "X"}, 5, "59"),
    ],
)
def test_malformed_new_orders_are_session_rejects(drop, change, reason, tag):
    tags = {str(k): v for k, v in GOOD.items()}
    if drop:
        del tags[drop]
    tags.update(change)
    with pytest.raises(SessionRejectError) as exc:
        fixapp.parse_new_order(d(tags), "ACC1")
    assert exc.value.reason == reason
    assert exc.value.tag == tag


def test_repeated_tag_is_reason_13():
    codec = Codec(TradeopsFIX44())
    raw = codec.encode(d(GOOD), _session()).replace("55=ESZ5\x01", "55=ESZ5\x0155=NQZ5\x01")
    raw = _fix_checksum(raw)
    msg, _consumed, _raw_msg = codec.decode(raw.encode())
    assert msg is not None
    with pytest.raises(SessionRejectError) as exc:
        fixapp.parse_new_order(msg, "ACC1")
    assert exc.value.reason == 13


def test_foreign_account_is_not_authorized():
    msg = FIXMessage(FMsg.ORDERCANCELREQUEST, {FTag.OrigClOrdID: "a", FTag.ClOrdID: "b",
                     FTag.Symbol: "ESZ5", FTag.Side: "1", FTag.Account: "ACC2"})  # fmt: skip
    with pytest.raises(BusinessRejectError) as exc:
        fixapp.parse_cancel(msg, "ACC1")
    assert exc.value.reason == fixapp.BR_NOT_AUTHORIZED


def test_group_values():
    msg = FIXMessage(FMsg.MARKETDATAREQUEST)
    msg.set_group(FTag.NoRelatedSym, [{FTag.Symbol: "A"}, {FTag.Symbol: "B"}])
    assert fixapp.group_values(msg, FTag.NoRelatedSym, FTag.Symbol) == ["A", "B"]
    with pytest.raises(SessionRejectError):
        fixapp.group_values(FIXMessage(FMsg.MARKETDATAREQUEST), FTag.NoRelatedSym, FTag.Symbol)
    flat = FIXMessage(FMsg.MARKETDATAREQUEST, {FTag.NoRelatedSym: "1"})
    with pytest.raises(SessionRejectError) as exc:
        fixapp.group_values(flat, FTag.NoRelatedSym, FTag.Symbol)
    assert exc.value.reason == 6


def _session() -> FIXSession:
    s = FIXSession(1, "CLIENT", "SIM")
    s.next_num_out = 1
    s.next_num_in = 1
    return s


def _fix_checksum(raw: str) -> str:
    body = raw[: raw.rindex("10=")]
    return body + f"10={sum(body.encode()) % 256:03d}\x01"


def _roundtrip(msg: FIXMessage) -> FIXMessage:
    codec = Codec(TradeopsFIX44())
    decoded, _consumed, _raw_msg = codec.decode(codec.encode(msg, _session()).encode())
    assert decoded is not None
    return decoded


def _client() -> FixSession:
    return FixSession(SessionConfig("127.0.0.1", 1, "CLIENT", "SIM"), lambda e: None)


def _report(**kw) -> Report:
    base = dict(exec_id="E1", order_id="O1", cl_ord_id="c", orig_cl_ord_id=None, account="ACC1",
                symbol="ESZ5", side="2", ord_type="2", order_qty=D(5), price=D("100.5"),
                exec_type="F", ord_status="1", last_qty=D(2), last_px=D("100.5"),
                leaves_qty=D(3), cum_qty=D(2), avg_px=D("100.5"),
                transact_time="20250101-00:00:00.000", recipients=frozenset({"S"}))  # fmt: skip
    base.update(kw)
    return Report(**base)


def test_both_ends_agree_on_the_wire_format():
    client = _client()
    [ex] = client._convert(_roundtrip(fixapp.exec_report(_report())))
    assert isinstance(ex, Execution)
    assert (ex.exec_type, ex.last_qty, ex.leaves_qty, ex.price, ex.side) == (
        "F",
        2,
        3,
        D("100.5"),
        "2",
    )

    info = CancelRejectInfo("S", "c2", "c1", None, "8", "1", "1", "unknown order", "ACC1")
    [cr] = client._convert(_roundtrip(fixapp.cancel_reject(info)))
    assert isinstance(cr, CancelReject)
    assert (cr.order_id, cr.reason) == (None, "unknown order")

    r = fixapp.mass_cancel_report("MC1", "mc", "7", "7", [_report(), _report(order_id="O2")])
    rt = _roundtrip(r)
    assert [g[FTag.AffectedOrderID] for g in rt.get_group_list(FTag.NoAffectedOrders)] == [
        "O1",
        "O2",
    ]
    [mc] = client._convert(rt)
    assert isinstance(mc, MassCancelReport)
    assert mc.total_affected == 2

    view = PositionView("ACC1", "ESZ5", D(-3), D("101"), D("12.5"), D("-7.5"), D("100.125"))
    [pos] = client._convert(_roundtrip(fixapp.position_report("P1", "p", 1, view, True)))
    assert isinstance(pos, Position)
    assert (pos.qty, pos.avg_px, pos.realized_pnl, pos.unrealized_pnl) == (
        -3,
        101,
        D("12.5"),
        D("-7.5"),
    )
    assert pos.pos_req_id == "p"
    assert client._convert(_roundtrip(fixapp.positions_ack("A", "p", "ACC1", 1))) == [
        PositionsAck(pos_req_id="p", total=1, status="0", result="0", account="ACC1")
    ]
    [nak, rej] = client._convert(_roundtrip(fixapp.positions_ack("A", "p", "ACC1", 0, "4", "no")))
    assert nak == PositionsAck("p", 0, "2", "4", "ACC1", "no")
    assert isinstance(rej, Reject)
    assert rej.ref_msg_type == "AN"

    t = Tick(D(100), D("100.25"), D("100.25"), D(7), D(8))
    [q] = client._convert(_roundtrip(fixapp.md_snapshot("md", "ESZ5", t, 1)))
    assert isinstance(q, Quote)
    assert (q.bid, q.ask, q.last) == (D(100), D("100.25"), D("100.25"))
    t2 = Tick(D(101), D("101.25"), D(101), D(7), D(8))
    x = _roundtrip(fixapp.md_incremental("md", "ESZ5", t2, 2))
    assert len(x.get_group_list(FTag.NoMDEntries)) == 3
    [q2] = client._convert(x)
    assert (q2.bid, q2.ask, q2.last) == (D(101), D("101.25"), D(101))

    [sr] = client._convert(_roundtrip(fixapp.session_reject(7, "D", 1, "missing", "55")))
    assert (sr.ref_msg_type, sr.ref_seq_num, sr.reason) == ("D", 7, "missing")
    [br] = client._convert(_roundtrip(fixapp.business_reject(8, "H", 3, "unsupported")))
    assert (br.ref_msg_type, br.ref_seq_num) == ("H", 8)


def test_mass_status_fields_on_the_wire_and_in_executions():
    client = _client()
    rep = _report(exec_type="I", ord_status="0", mass_status_req_id="ms",
                  tot_num_reports=2, last_rpt_requested=False)  # fmt: skip
    msg = _roundtrip(fixapp.exec_report(rep))
    assert (msg[FTag.MassStatusReqID], msg[FTag.TotNumReports], msg[FTag.LastRptRequested]) == (
        "ms",
        "2",
        "N",
    )
    [ex] = client._convert(msg)
    assert (ex.mass_status_req_id, ex.tot_num_reports, ex.last_rpt_requested) == ("ms", 2, False)
    last = _report(exec_id="E2", exec_type="I", mass_status_req_id="ms", tot_num_reports=2,
                   last_rpt_requested=True)  # fmt: skip
    [ex2] = client._convert(_roundtrip(fixapp.exec_report(last)))
    assert ex2.last_rpt_requested is True
    [plain] = client._convert(_roundtrip(fixapp.exec_report(_report(exec_id="E3"))))
    assert (plain.mass_status_req_id, plain.tot_num_reports, plain.last_rpt_requested) == (
        None,
        None,
        None,
    )
    garbled = _roundtrip(fixapp.exec_report(_report(exec_id="E4")))
    garbled.tags[str(FTag.TotNumReports)] = "x"
    [lenient] = client._convert(garbled)  # an order's report is never dropped for that
    assert lenient.tot_num_reports is None


def test_no_orders_status_report_on_the_wire():
    client = _client()
    none = _report(order_id="NONE", cl_ord_id="NONE", symbol="NA", side="1", ord_type="",
                   order_qty=D(0), price=None, exec_type="I", ord_status="8", last_qty=D(0),
                   last_px=D(0), leaves_qty=D(0), cum_qty=D(0), avg_px=D(0),
                   text="no working orders", status_only=True, mass_status_req_id="ms0",
                   tot_num_reports=0, last_rpt_requested=True)  # fmt: skip
    msg = _roundtrip(fixapp.exec_report(none))
    assert str(FTag.OrdType) not in msg
    assert (msg[FTag.OrderID], msg[FTag.TotNumReports], msg[FTag.LastRptRequested]) == (
        "NONE",
        "0",
        "Y",
    )
    [ex] = client._convert(msg)
    assert (ex.order_id, ex.tot_num_reports, ex.last_rpt_requested, ex.text) == (
        "NONE",
        0,
        True,
        "no working orders",
    )


def test_possdup_executions_are_delivered_once():
    client = _client()
    msg = _roundtrip(fixapp.exec_report(_report()))
    assert len(client._convert(msg)) == 1
    dup = _roundtrip(fixapp.exec_report(_report()))
    dup.tags["43"] = "Y"
    assert client._convert(dup) == []
    fresh = _roundtrip(fixapp.exec_report(_report(exec_id="E2")))
    fresh.tags["43"] = "Y"
    assert len(client._convert(fresh)) == 1


def test_protocol_helpers():
    assert fmt_decimal(D("100.500")) == "100.5"
    assert fmt_decimal(D("1E+2")) == "100"
    assert fmt_decimal(D(0)) == "0"
    assert parse_decimal("") is None
    with pytest.raises(ValueError, match="finite"):
        parse_decimal("Infinity")
    proto = make_protocol({"9000": ["9001", "9002"]})
    assert proto.repeating_groups["9000"] == ["9001", "9002"]
    assert "268" in proto.repeating_groups
    with pytest.raises(ValueError, match=r"FIX\.4\.4"):
        make_protocol(begin_string="FIX.4.2")
