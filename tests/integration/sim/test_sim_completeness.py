"""A client can tell when a status or positions answer is complete (real FIX sessions).

Mass status: every ExecType=I report carries MassStatusReqID, TotNumReports and
LastRptRequested (Y on the last); with no working order the answer is a single
report with TotNumReports=0. Positions: the RequestForPositionsAck reaches the
``FixSession`` user as ``PositionsAck`` with the number of PositionReports that follow.

"Nothing else arrives" is checked without sleeping: a second request is sent
after the first answer, and a session delivers in order, so once the second
answer is in, anything belonging to the first would have been seen.
"""

from __future__ import annotations

from decimal import Decimal

from asyncfix import FIXMessage, FMsg, FTag

from tradeops.brokers.base import (
    Execution,
    NewOrder,
    Position,
    PositionsAck,
    Reject,
    Side,
)

from .conftest import Client, connected, run, start_sim


def _status(client: Client, req_id: str) -> list[Execution]:
    return [e for e in client.of(Execution) if e.mass_status_req_id == req_id]


async def _mass_status_answer(client: Client, req_id: str) -> list[Execution]:
    """Send a mass status request and wait for the report flagged last."""
    await client.session.mass_status(req_id)
    await client.wait_for(
        lambda: any(e.last_rpt_requested for e in _status(client, req_id)),
        what=f"last report of mass status {req_id}",
    )
    return _status(client, req_id)


def _raw_status(client: Client, req_id: str) -> list[FIXMessage]:
    return [
        m
        for m in client.raw_of("8")
        if m.get(FTag.ExecType, None) == "I" and m.get(FTag.MassStatusReqID, None) == req_id
    ]


def test_mass_status_with_working_orders_counts_and_flags_the_last(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_OE") as oe,
            connected(sim, "ACC1_RISK") as risk,
        ):
            n = 4
            for i in range(n):
                await oe.session.send_order(
                    NewOrder(f"w{i}", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90 + i))
                )
            await oe.wait_for(
                lambda: len([e for e in oe.of(Execution) if e.exec_type == "0"]) >= n,
                what="acks",
            )
            await _mass_status_answer(risk, "msN")
            await _mass_status_answer(risk, "msN-sentinel")  # everything of msN is in by now

            reports = _status(risk, "msN")
            assert len(reports) == n
            assert sorted(e.cl_ord_id for e in reports) == [f"w{i}" for i in range(n)]
            assert all(e.exec_type == "I" and e.ord_status == "0" for e in reports)
            assert [e.tot_num_reports for e in reports] == [n] * n
            assert [e.last_rpt_requested for e in reports] == [False] * (n - 1) + [True]
            raw = _raw_status(risk, "msN")
            assert [m[FTag.TotNumReports] for m in raw] == [str(n)] * n
            assert [m[FTag.LastRptRequested] for m in raw] == ["N"] * (n - 1) + ["Y"]

            # Per symbol (585=1): no order in NQZ5 -> the single "none" report, for NQZ5.
            req = FIXMessage(FMsg.ORDERMASSSTATUSREQUEST)
            req[FTag.MassStatusReqID] = "msNQ"
            req[FTag.MassStatusReqType] = "1"
            req[FTag.Symbol] = "NQZ5"
            await risk.session.send_raw(req)
            await risk.wait_for(
                lambda: any(e.last_rpt_requested for e in _status(risk, "msNQ")),
                what="answer for NQZ5",
            )
            [none] = _status(risk, "msNQ")
            assert (none.order_id, none.symbol, none.tot_num_reports) == ("NONE", "NQZ5", 0)
            # Executions of ordinary reports carry no mass-status fields.
            ack = next(e for e in oe.of(Execution) if e.cl_ord_id == "w0")
            assert (ack.mass_status_req_id, ack.tot_num_reports, ack.last_rpt_requested) == (
                None,
                None,
                None,
            )

    run(scenario())


def test_mass_status_without_working_orders_is_answered_once(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_DC") as dc,
            connected(sim, "ACC1_OE") as oe,
            connected(sim, "ACC1_RISK") as risk,
        ):
            await _mass_status_answer(risk, "ms0")
            await _mass_status_answer(risk, "ms0-sentinel")

            [rep] = _status(risk, "ms0")
            assert rep.exec_type == "I"
            assert rep.tot_num_reports == 0
            assert rep.last_rpt_requested is True
            assert rep.order_id == "NONE"
            assert rep.text == "no working orders"
            assert rep.account == "ACC1"
            [raw] = _raw_status(risk, "ms0")
            assert raw[FTag.OrderID] == "NONE"
            assert raw[FTag.TotNumReports] == "0"
            assert raw[FTag.LastRptRequested] == "Y"
            assert raw[FTag.MassStatusReqID] == "ms0"
            assert raw[FTag.Text] == "no working orders"

            # The drop copy does not get mass-status answers: an order placed after
            # them reaches it, nothing of ExecType=I before it.
            await oe.session.send_order(
                NewOrder("after", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await dc.wait_for(
                lambda: any(e.cl_ord_id == "after" for e in dc.of(Execution)),
                what="drop copy of the later order",
            )
            assert not [e for e in dc.of(Execution) if e.exec_type == "I"]
            # The order is working now: the next answer has it and total 1.
            [one] = await _mass_status_answer(risk, "ms1")
            assert (one.cl_ord_id, one.tot_num_reports, one.last_rpt_requested) == (
                "after",
                1,
                True,
            )

    run(scenario())


def test_positions_ack_total_matches_the_position_reports(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_RISK") as c:

            def acks(req_id: str) -> list[PositionsAck]:
                return [a for a in c.of(PositionsAck) if a.pos_req_id == req_id]

            def positions(req_id: str) -> list[Position]:
                return [p for p in c.of(Position) if p.pos_req_id == req_id]

            async def answer(req_id: str) -> PositionsAck:
                await c.session.request_positions(req_id)
                ack = await c.wait_for(lambda: acks(req_id) and acks(req_id)[0], what="ack")
                await c.wait_for(
                    lambda: len(positions(req_id)) >= ack.total,
                    what=f"{ack.total} position reports",
                )
                return ack

            ack = await answer("pos1")
            await answer("pos1-sentinel")  # everything of pos1 is in by now

            assert [a.pos_req_id for a in c.of(PositionsAck)] == ["pos1", "pos1-sentinel"]
            assert (ack.status, ack.result, ack.account) == ("0", "0", "ACC1")
            assert ack.total == len(sim.config.symbols) == 2  # one per symbol, flat ones too
            got = positions("pos1")
            assert len(got) == ack.total
            assert sorted(p.symbol for p in got) == ["ESZ5", "NQZ5"]
            # The ack comes before the reports it announces.
            kinds = [
                type(e).__name__
                for e in c.events
                if isinstance(e, PositionsAck | Position) and e.pos_req_id == "pos1"
            ]
            assert kinds == ["PositionsAck", "Position", "Position"]

            # An unsupported PosReqType: an ack with total 0, status rejected, and a Reject.
            bad = FIXMessage(FMsg.REQUESTFORPOSITIONS)
            bad[FTag.PosReqID] = "pos-bad"
            bad[FTag.PosReqType] = "1"
            await c.session.send_raw(bad)
            [nak] = await c.wait_for(lambda: acks("pos-bad"), what="rejected ack")
            assert (nak.total, nak.status, nak.result) == (0, "2", "4")
            await c.wait_for(
                lambda: [r for r in c.of(Reject) if r.ref_msg_type == "AN"], what="reject"
            )

    run(scenario())
