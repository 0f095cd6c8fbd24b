"""One protocol-level test per message type, with real FIX sessions against the simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asyncfix import FIXMessage, FMsg, FTag

from tradeops.brokers.base import (
    CancelReject,
    Execution,
    MassCancelReport,
    NewOrder,
    OrdType,
    Position,
    Quote,
    Reject,
    Side,
)

from .conftest import connected, run, sim_log, start_sim


def _execs(client, cl_ord_id: str, exec_type: str | None = None) -> list[Execution]:
    return [
        e
        for e in client.of(Execution)
        if e.cl_ord_id == cl_ord_id and (exec_type is None or e.exec_type == exec_type)
    ]


def test_new_order_single_acked_rests_and_fills_when_marketable(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            s = c.session
            # ESZ5 is constant: bid 100, ask 100.25.
            await s.send_order(NewOrder("rest1", "ESZ5", Side.BUY, Decimal(3), price=Decimal(99)))
            await s.send_order(NewOrder("take1", "ESZ5", Side.BUY, Decimal(2), price=Decimal(101)))
            await c.wait_for(lambda: _execs(c, "take1", "F"), what="fill of take1")
            ack = _execs(c, "rest1", "0")[0]
            assert ack.ord_status == "0"
            assert ack.leaves_qty == 3
            assert ack.order_id != "NONE"
            assert ack.account == "ACC1"
            fill = _execs(c, "take1", "F")[0]
            assert fill.last_px == Decimal("100.25")  # filled at the touch, not the limit
            assert fill.last_qty == 2
            assert fill.ord_status == "2"
            raw = next(m for m in c.raw_of("8") if m.get(FTag.ClOrdID) == "rest1")
            assert raw[FTag.ExecType] == "0"
            assert raw[FTag.OrdStatus] == "0"
            assert raw[FTag.ExecID]
            assert raw[FTag.TransactTime]
            assert not _execs(c, "rest1", "F")
            # a market order fills at the touch plus one tick of slippage
            await s.send_order(NewOrder("mkt1", "ESZ5", Side.SELL, Decimal(1), OrdType.MARKET))
            await c.wait_for(lambda: _execs(c, "mkt1", "F"), what="market fill")
            assert _execs(c, "mkt1", "F")[0].last_px == Decimal("99.75")

    run(scenario())


def test_order_cancel_request_and_cancel_reject(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            s = c.session
            await s.send_order(NewOrder("o1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(98)))
            await c.wait_for(lambda: _execs(c, "o1", "0"), what="ack")
            await s.cancel_order("o1-c", "o1", "ESZ5", Side.BUY)
            await c.wait_for(lambda: _execs(c, "o1-c", "4"), what="cancel")
            cancel = _execs(c, "o1-c", "4")[0]
            assert cancel.orig_cl_ord_id == "o1"
            assert cancel.ord_status == "4"
            assert cancel.leaves_qty == 0
            await s.cancel_order("nope-c", "nope", "ESZ5", Side.BUY)
            rej = await c.wait_for(lambda: c.of(CancelReject), what="cancel reject")
            assert rej[0].cl_ord_id == "nope-c"
            assert rej[0].orig_cl_ord_id == "nope"
            assert rej[0].order_id is None
            assert "unknown order" in rej[0].reason
            raw = c.raw_of("9")[0]
            assert raw[FTag.CxlRejResponseTo] == "1"
            assert raw[FTag.CxlRejReason] == "1"

    run(scenario())


def test_order_cancel_replace_request(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            s = c.session
            await s.send_order(NewOrder("r1", "ESZ5", Side.SELL, Decimal(4), price=Decimal(103)))
            await c.wait_for(lambda: _execs(c, "r1", "0"), what="ack")
            await s.replace_order("r2", "r1", "ESZ5", Side.SELL, Decimal(5), Decimal(102))
            rep = (await c.wait_for(lambda: _execs(c, "r2", "5"), what="replaced"))[0]
            assert rep.orig_cl_ord_id == "r1"
            assert rep.order_qty == 5
            assert rep.price == Decimal(102)
            assert rep.ord_status == "0"
            # replace into the market: fills at the bid
            await s.replace_order("r3", "r2", "ESZ5", Side.SELL, Decimal(5), Decimal(99))
            fill = (await c.wait_for(lambda: _execs(c, "r3", "F"), what="fill"))[0]
            assert fill.last_px == Decimal(100)
            await s.replace_order("r4", "zzz", "ESZ5", Side.SELL, Decimal(5), Decimal(99))
            rej = (await c.wait_for(lambda: c.of(CancelReject), what="replace reject"))[0]
            assert rej.cl_ord_id == "r4"
            assert c.raw_of("9")[0][FTag.CxlRejResponseTo] == "2"

    run(scenario())


def test_order_mass_cancel_by_security_and_all(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_RISK") as risk,
            connected(sim, "ACC1_OE") as c,
        ):
            s = c.session
            for i, sym in enumerate(["ESZ5", "ESZ5", "NQZ5"]):
                px = Decimal(90) if sym == "ESZ5" else Decimal(150)
                await s.send_order(NewOrder(f"m{i}", sym, Side.BUY, Decimal(1), price=px))
            await c.wait_for(lambda: len(c.of(Execution)) >= 3, what="3 acks")
            await risk.session.mass_cancel("mc1", "ESZ5")
            rep = (await risk.wait_for(lambda: risk.of(MassCancelReport), what="r"))[0]
            assert rep.request_type == "1"
            assert rep.response == "1"
            assert rep.total_affected == 2
            assert risk.raw_of("r")[0][FTag.TotalAffectedOrders] == "2"
            # the owner session gets the cancels
            await c.wait_for(
                lambda: len([e for e in c.of(Execution) if e.exec_type == "4"]) == 2,
                what="2 cancels",
            )
            await risk.session.mass_cancel("mc2")
            reps = await risk.wait_for(
                lambda: len(risk.of(MassCancelReport)) >= 2 and risk.of(MassCancelReport),
                what="second r",
            )
            assert reps[1].request_type == "7"
            assert reps[1].total_affected == 1
            # an unsupported type is answered with MassCancelResponse 0
            msg = FIXMessage(FMsg.ORDERMASSCANCELREQUEST)
            msg[FTag.ClOrdID] = "mc3"
            msg[FTag.MassCancelRequestType] = "3"
            await risk.session.send_raw(msg)
            reps = await risk.wait_for(
                lambda: len(risk.of(MassCancelReport)) >= 3 and risk.of(MassCancelReport),
                what="third r",
            )
            assert reps[2].response == "0"
            assert reps[2].reject_reason == "0"

    run(scenario())


def test_mass_cancel_reports_keep_each_sessions_order_and_are_logged_once(sim_config_file):
    """A mass cancel's reports go out from each session's writer task (a burst).

    The risk session's status request, sent right behind the mass cancel, sees
    the book after it; the owner session gets every cancel before the ack of an
    order it sends later; the drop copy gets each cancel once, in the same
    order; the simulator logs each once.
    """
    n = 150

    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_OE") as c,
            connected(sim, "ACC1_DC") as dc,
            connected(sim, "ACC1_RISK") as risk,
        ):
            for i in range(n):
                await c.session.send_order(
                    NewOrder(f"b{i}", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
            await c.wait_for(lambda: len(c.of(Execution)) >= n, what=f"{n} acks")
            await risk.session.mass_cancel("mcb")
            await risk.session.mass_status("msb")
            await risk.wait_for(lambda: risk.of(MassCancelReport), what="r")
            await c.session.send_order(
                NewOrder("after", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            status = await risk.wait_for(
                lambda: [e for e in risk.of(Execution) if e.exec_type == "I"], what="status"
            )
            await c.wait_for(lambda: _execs(c, "after"), what="the later order's ack")
            await dc.wait_for(
                lambda: len([e for e in dc.of(Execution) if e.exec_type == "4"]) >= n,
                what=f"{n} cancels on the drop copy",
            )
            owner = c.of(Execution)[n:]
            copied = [e for e in dc.of(Execution) if e.exec_type == "4"]
            logged = [e for e in sim_log(sim) if e["event"] == "exec" and e["exec_type"] == "4"]
        assert [(e.exec_type, e.cl_ord_id) for e in owner] == [
            *(("4", f"b{i}") for i in range(n)),
            ("0", "after"),
        ]
        assert [e.exec_id for e in copied] == [e.exec_id for e in owner[:n]]
        assert sorted(e["cl_ord_id"] for e in logged) == sorted(f"b{i}" for i in range(n))
        assert [(e.tot_num_reports, e.order_id) for e in status] == [(0, "NONE")]

    run(scenario())


def test_order_mass_status_answers_exec_type_i(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_OE") as c,
            connected(sim, "ACC1_RISK") as risk,
        ):
            for i in range(3):
                await c.session.send_order(
                    NewOrder(f"s{i}", "ESZ5", Side.BUY, Decimal(1), price=Decimal(95))
                )
            await c.wait_for(lambda: len(c.of(Execution)) >= 3, what="acks")
            await risk.session.mass_status("ms1")
            status = await risk.wait_for(
                lambda: (
                    len([e for e in risk.of(Execution) if e.exec_type == "I"]) >= 3
                    and [e for e in risk.of(Execution) if e.exec_type == "I"]
                ),
                what="3 status reports",
            )
            assert sorted(e.cl_ord_id for e in status) == ["s0", "s1", "s2"]
            assert all(e.ord_status == "0" for e in status)
            raw = risk.raw_of("8")
            assert [m[FTag.MassStatusReqID] for m in raw] == ["ms1"] * 3
            assert [m[FTag.TotNumReports] for m in raw] == ["3"] * 3
            assert [m[FTag.LastRptRequested] for m in raw] == ["N", "N", "Y"]

    run(scenario())


@pytest.mark.parametrize("extensions", [False, True], ids=["standard", "venue-extensions"])
def test_request_for_positions_ack_and_reports(sim_config_file, extensions):
    if extensions:
        with sim_config_file.open("a", encoding="utf-8") as f:
            f.write("fix: {venue_extensions: true}\n")

    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            s = c.session
            await s.send_order(NewOrder("b1", "ESZ5", Side.BUY, Decimal(4), OrdType.MARKET))
            await s.send_order(NewOrder("s1", "ESZ5", Side.SELL, Decimal(1), OrdType.MARKET))
            await c.wait_for(lambda: _execs(c, "s1", "F"), what="fills")
            await s.request_positions("pos1")
            positions = await c.wait_for(lambda: len(c.of(Position)) >= 2 and c.of(Position))
            ack = c.raw_of("AO")[0]
            assert ack[FTag.PosReqID] == "pos1"
            assert ack[FTag.PosReqResult] == "0"
            assert ack[FTag.TotalNumPosReports] == "2"  # one per symbol, flat ones included
            es = next(p for p in positions if p.symbol == "ESZ5")
            # bought 4 @ 100.5 (ask + 1 tick), sold 1 @ 99.75 (bid - 1 tick)
            assert es.account == "ACC1"
            assert es.qty == 3
            assert es.settl_px == Decimal("100.125")  # valued at the mid
            report = next(m for m in c.raw_of("AP") if m[FTag.Symbol] == "ESZ5")
            assert report[FTag.PriorSettlPrice] == "100"  # the configured reference price
            if extensions:
                assert es.avg_px == Decimal("100.5")
                assert es.realized_pnl == Decimal("-0.75")
                assert es.unrealized_pnl == (Decimal("100.125") - Decimal("100.5")) * 3
            else:  # standard FIX 4.4 has no average price nor P&L in a PositionReport
                assert (es.avg_px, es.realized_pnl, es.unrealized_pnl) == (None, None, None)
            nq = next(p for p in positions if p.symbol == "NQZ5")
            assert nq.qty == 0
            assert next(str(m.msg_type) for m in c.raw if str(m.msg_type) in ("AO", "AP")) == "AO"

    run(scenario())


def test_market_data_snapshot_incrementals_and_reject(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            await c.session.subscribe_market_data("md1", ["ESZ5", "NQZ5"])
            snaps = await c.wait_raw("W", 2)
            assert {m[FTag.Symbol] for m in snaps} == {"ESZ5", "NQZ5"}
            await c.wait_raw("X", 4)
            x = c.raw_of("X")[0]
            assert x[FTag.MDReqID] == "md1"
            entries = x.get_group_list(FTag.NoMDEntries)
            assert {e[FTag.MDEntryType] for e in entries} == {"0", "1", "2"}
            quotes = [q for q in c.of(Quote) if q.symbol == "ESZ5"]
            assert quotes[-1].bid == Decimal(100)
            assert quotes[-1].ask == Decimal("100.25")
            await c.session.subscribe_market_data("md2", ["NOPE"])
            rej = await c.wait_for(lambda: c.of(Reject), what="market data reject")
            assert rej[0].ref_msg_type == "V"
            assert "NOPE" in rej[0].reason
            assert c.raw_of("Y")[0][FTag.MDReqRejReason] == "0"
            state = sim.state()
            oe = next(x for x in state["sessions"] if x["name"] == "ACC1_OE")
            assert oe["md_subscriptions"] == {"md1": ["ESZ5", "NQZ5"]}

    run(scenario())


def test_session_reject_for_malformed_messages(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            good = {"11": "a", "55": "ESZ5", "54": "1", "38": "1", "40": "1"}
            no_symbol = {k: v for k, v in good.items() if k != "55"}
            cases = [
                (no_symbol, "1", "55"),  # required tag missing
                ({**good, "54": "Z"}, "5", "54"),  # value out of range
                ({**good, "38": "x1"}, "6", "38"),  # bad format
                ({**good, "40": "2"}, "1", "44"),  # limit order without Price
            ]
            for tags, _reason, _tag in cases:
                await c.session.send_raw(FIXMessage(FMsg.NEWORDERSINGLE, tags))
            await c.session.send_raw(FIXMessage("ZZ", {FTag.Text: "what"}))
            rejects = await c.wait_raw("3", len(cases) + 1)
            for raw, (_tags, reason, tag) in zip(rejects, cases, strict=False):
                assert raw[FTag.RefMsgType] == "D"
                assert raw[FTag.SessionRejectReason] == reason
                assert raw[FTag.RefTagID] == tag
                assert int(raw[FTag.RefSeqNum]) > 1
            assert rejects[-1][FTag.SessionRejectReason] == "11"
            assert rejects[-1][FTag.RefMsgType] == "ZZ"
            events = c.of(Reject)
            assert len(events) == len(cases) + 1
            assert events[0].ref_seq_num is not None
            # the session is still fine
            await c.session.send_order(
                NewOrder("ok", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c.wait_for(lambda: _execs(c, "ok", "0"), what="ack after rejects")

    run(scenario())


def test_business_message_reject_for_unsupported_messages(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            # OrderStatusRequest (H) is valid FIX but not supported
            await c.session.send_raw(
                FIXMessage(FMsg.ORDERSTATUSREQUEST, {FTag.ClOrdID: "x", FTag.Symbol: "ESZ5",
                                                     FTag.Side: "1"})
            )  # fmt: skip
            j = (await c.wait_raw("j"))[0]
            assert j[FTag.RefMsgType] == "H"
            assert j[FTag.BusinessRejectReason] == "3"
            ev = c.of(Reject)[0]
            assert ev.ref_msg_type == "H"
            assert "unsupported" in ev.reason
            # an order for another account
            await c.session.send_order(
                NewOrder("acc2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90), account="ACC2")
            )
            rej = await c.wait_for(lambda: _execs(c, "acc2", "8"), what="account reject")
            assert "not permitted" in (rej[0].text or "")
            # the drop copy session is receive-only
            async with connected(sim, "ACC1_DC") as dc:
                await dc.session.send_order(NewOrder("dc1", "ESZ5", Side.BUY, Decimal(1)))
                j2 = (await dc.wait_raw("j"))[0]
                assert j2[FTag.RefMsgType] == "D"
                assert "receive-only" in j2[FTag.Text]

    run(scenario())
