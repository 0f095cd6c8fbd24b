"""Hand-built venue messages, decoded by FixSession into the events of ``brokers.base``."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.brokers.rawfix import er_fields, run, venue
from tradeops.brokers.base import (
    CancelReject,
    Execution,
    MassCancelReport,
    Position,
    PositionsAck,
    Quote,
    Reject,
    SessionStatus,
    Side,
)

ORIG_TIME = "20250102-03:04:05.000"


def execution(**kw) -> Execution:
    base = {
        "exec_id": "E1",
        "order_id": "O1",
        "cl_ord_id": "c1",
        "orig_cl_ord_id": None,
        "symbol": "ESZ5",
        "side": Side.BUY,
        "exec_type": "0",
        "ord_status": "0",
        "order_qty": Decimal(10),
        "last_qty": Decimal(0),
        "last_px": Decimal(0),
        "cum_qty": Decimal(0),
        "leaves_qty": Decimal(10),
        "price": Decimal("100.25"),
        "account": "ACC1",
        "text": None,
        "transact_time": "20250102-03:04:05.678",
    }
    return Execution(**{**base, **kw})


CASES = {
    "new": (er_fields("c1", "E1", "0", "0"), execution()),
    "partial fill": (
        er_fields(
            "c1", "E1", "F", "1", cum_qty="4", last_qty="4", last_px="100.25", leaves_qty="6"
        ),
        execution(
            exec_type="F",
            ord_status="1",
            cum_qty=Decimal(4),
            last_qty=Decimal(4),
            last_px=Decimal("100.25"),
            leaves_qty=Decimal(6),
        ),
    ),
    "fill": (
        er_fields(
            "c1",
            "E1",
            "F",
            "2",
            cum_qty="10",
            last_qty="6",
            last_px="100.5",
            leaves_qty="0",
            side="2",
        ),
        execution(
            exec_type="F",
            ord_status="2",
            side=Side.SELL,
            cum_qty=Decimal(10),
            last_qty=Decimal(6),
            last_px=Decimal("100.5"),
            leaves_qty=Decimal(0),
        ),
    ),
    "reject": (
        er_fields(
            "c1", "E1", "8", "8", order_id="NONE", leaves_qty="0", extra=[(58, "unknown symbol")]
        ),
        execution(
            exec_type="8",
            ord_status="8",
            order_id="NONE",
            leaves_qty=Decimal(0),
            text="unknown symbol",
        ),
    ),
    "cancel": (
        er_fields("k1", "E1", "4", "4", cum_qty="4", leaves_qty="0", extra=[(41, "c1")]),
        execution(
            cl_ord_id="k1",
            orig_cl_ord_id="c1",
            exec_type="4",
            ord_status="4",
            cum_qty=Decimal(4),
            leaves_qty=Decimal(0),
        ),
    ),
    "replaced": (
        er_fields("r1", "E1", "5", "0", price="99.75", extra=[(41, "c1")]),
        execution(cl_ord_id="r1", orig_cl_ord_id="c1", exec_type="5", price=Decimal("99.75")),
    ),
    "leaves absent": (
        er_fields("c1", "E1", "F", "1", cum_qty="3", last_qty="3", last_px="1", leaves_qty=None),
        execution(
            exec_type="F",
            ord_status="1",
            cum_qty=Decimal(3),
            last_qty=Decimal(3),
            last_px=Decimal(1),
            leaves_qty=Decimal(7),
        ),
    ),
    "market order without price": (
        er_fields("c1", "E1", "0", "0", price=None),
        execution(price=None),
    ),
    "mass status": (
        er_fields(
            "c1",
            "E1",
            "I",
            "1",
            cum_qty="2",
            leaves_qty="8",
            extra=[(584, "s1"), (911, "3"), (912, "Y")],
        ),
        execution(
            exec_type="I",
            ord_status="1",
            cum_qty=Decimal(2),
            leaves_qty=Decimal(8),
            mass_status_req_id="s1",
            tot_num_reports=3,
            last_rpt_requested=True,
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_execution_reports_are_decoded(case):
    fields, expected = CASES[case]

    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", fields)
            assert await events.wait_kind(Execution) == expected

    run(scenario())


def test_a_possdup_execution_already_seen_is_dropped_and_a_new_one_is_kept():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            dup = [(43, "Y"), (122, ORIG_TIME)]
            await conn.send("8", er_fields("c1", "E1", "0", "0"))
            await conn.send("8", er_fields("c1", "E1", "0", "0"), header=dup)
            await conn.send(
                "8",
                er_fields(
                    "c1", "E2", "F", "1", cum_qty="1", last_qty="1", last_px="100", leaves_qty="9"
                ),
                header=dup,
            )
            await conn.send("8", er_fields("c1", "E3", "4", "4", cum_qty="1", leaves_qty="0"))
            await events.wait_for(lambda e: isinstance(e, Execution) and e.exec_id == "E3")
            assert [e.exec_id for e in events.of(Execution)] == ["E1", "E2", "E3"]
            assert session.next_seq_in == 6

    run(scenario())


def test_a_resent_message_already_received_is_ignored_not_a_logout():
    # FIX session rules: a message with MsgSeqNum below the expected one and
    # PossDupFlag=Y has already been received and is ignored; only without PossDupFlag
    # is it a fatal error. asyncfix 1.0.1 logs out on both (fixconn asyncfix-fix 8).
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E1", "0", "0"), seq=2)
            conn.next_out = 3
            await conn.send(
                "8", er_fields("c1", "E1", "0", "0"), seq=2, header=[(43, "Y"), (122, ORIG_TIME)]
            )
            await conn.send("8", er_fields("c1", "E2", "4", "4", leaves_qty="0"))
            await events.wait_for(
                lambda e: (
                    (isinstance(e, Execution) and e.exec_id == "E2")
                    or (isinstance(e, SessionStatus) and e.state != "logged_on")
                )
            )
            assert events.statuses() == ["logged_on"]
            assert [e.exec_id for e in events.of(Execution)] == ["E1", "E2"]
            assert session.is_logged_on

    run(scenario())


def test_a_message_below_the_expected_msgseqnum_without_possdup_logs_out():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E1", "0", "0"))  # 34=2
            await conn.send("8", er_fields("c1", "E9", "0", "0"), seq=2)
            logout = await conn.expect("5", skip=())
            assert logout["58"] == "MsgSeqNum is too low, expected 3, got 2"
            status = await events.wait_status("disconnected")
            assert status.detail == "MsgSeqNum is too low, expected 3, got 2"
            assert [e.exec_id for e in events.of(Execution)] == ["E1"]
            assert not session.is_logged_on

    run(scenario())


def test_an_unreadable_execution_is_dropped_and_the_session_goes_on():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E1", "0", "0", side="Z"))
            await conn.send("8", er_fields("c1", "E2", "0", "0"))
            ex = await events.wait_kind(Execution)
            assert ex.exec_id == "E2"
            assert len(events.of(Execution)) == 1
            assert session.is_logged_on
            assert session.next_seq_in == 4  # the dropped one was still counted

    run(scenario())


def test_a_frame_with_a_bad_checksum_is_discarded_and_asked_for_again():
    # The bad frame and the next one may arrive in one read (they did on Python 3.13):
    # asyncfix 1.0.1 then left the next one unread until more bytes came (fixconn
    # asyncfix-fix 7), so no ResendRequest followed.
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            good = conn.frame(
                "8",
                er_fields(
                    "c1", "E1", "F", "2", cum_qty="10", last_qty="10", last_px="100", leaves_qty="0"
                ),
            )
            corrupt = good.replace(b"32=10", b"32=99")  # same length, CheckSum now wrong
            await conn.send_bytes(corrupt)
            await conn.send("8", er_fields("c1", "E2", "0", "0"))  # 34=3: a gap at 2
            resend = await conn.expect("2", skip=())
            assert (resend["7"], resend["16"]) == ("2", "0")
            await conn.send(
                "8",
                er_fields(
                    "c1", "E1", "F", "2", cum_qty="10", last_qty="10", last_px="100", leaves_qty="0"
                ),
                seq=2,
                header=[(43, "Y"), (122, ORIG_TIME)],
            )
            await conn.send(
                "8", er_fields("c1", "E2", "0", "0"), seq=3, header=[(43, "Y"), (122, ORIG_TIME)]
            )
            await events.wait_for(lambda e: isinstance(e, Execution) and e.exec_id == "E2")
            fills = events.of(Execution)
            assert [(e.exec_id, e.last_qty) for e in fills] == [("E1", 10), ("E2", 0)]
            assert session.next_seq_in == 4

    run(scenario())


def test_a_gap_is_filled_by_resend_and_every_report_arrives_once_in_order():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            reports = {
                2: er_fields("c1", "E1", "0", "0"),
                3: er_fields(
                    "c1", "E2", "F", "1", cum_qty="4", last_qty="4", last_px="100", leaves_qty="6"
                ),
                4: er_fields(
                    "c1", "E3", "F", "2", cum_qty="10", last_qty="6", last_px="100", leaves_qty="0"
                ),
            }
            await conn.send("8", reports[4], seq=4)  # 2 and 3 lost on the way
            conn.next_out = 5
            resend = await conn.expect("2", skip=())
            assert (resend["7"], resend["16"]) == ("2", "0")
            for seq in (2, 3, 4):
                await conn.send("8", reports[seq], seq=seq, header=[(43, "Y"), (122, ORIG_TIME)])
            await conn.send("8", er_fields("c2", "E4", "0", "0"))  # 34=5, live again
            await events.wait_for(lambda e: isinstance(e, Execution) and e.exec_id == "E4")
            assert [e.exec_id for e in events.of(Execution)] == ["E1", "E2", "E3", "E4"]
            assert sum(e.last_qty for e in events.of(Execution)) == 10
            assert session.next_seq_in == 6

    run(scenario())


def test_a_gap_fill_from_the_venue_moves_the_expected_msgseqnum():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E9", "0", "0"), seq=5)
            conn.next_out = 6
            await conn.expect("2", skip=())
            await conn.send("4", [(123, "Y"), (36, 5)], seq=2, header=[(43, "Y")])
            await conn.send(
                "8", er_fields("c1", "E9", "0", "0"), seq=5, header=[(43, "Y"), (122, ORIG_TIME)]
            )
            await events.wait_kind(Execution)
            assert session.next_seq_in == 6
            assert [e.exec_id for e in events.of(Execution)] == ["E9"]

    run(scenario())


def test_order_cancel_reject():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send(
                "9",
                [
                    (37, "NONE"),
                    (11, "k1"),
                    (41, "c1"),
                    (39, "8"),
                    (434, "1"),
                    (102, "1"),
                    (58, "too late to cancel"),
                ],
            )
            await conn.send(
                "9", [(37, "O7"), (11, "k2"), (41, "c2"), (39, "0"), (434, "1"), (102, "3")]
            )
            await events.wait_for(lambda e: isinstance(e, CancelReject) and e.cl_ord_id == "k2")
            assert events.of(CancelReject) == [
                CancelReject("k1", "c1", None, "too late to cancel"),
                CancelReject("k2", "c2", "O7", "CxlRejReason=3"),
            ]

    run(scenario())


def test_order_mass_cancel_report():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send("r", [(11, "m1"), (37, "X1"), (530, "7"), (531, "7"), (533, "3")])
            await conn.send(
                "r", [(11, "m2"), (37, "X2"), (530, "1"), (531, "0"), (532, "1"), (55, "ZZZ")]
            )
            await events.wait_for(lambda e: isinstance(e, MassCancelReport) and e.cl_ord_id == "m2")
            assert events.of(MassCancelReport) == [
                MassCancelReport("m1", "7", "7", 3, None),
                MassCancelReport("m2", "1", "0", 0, "1"),
            ]

    run(scenario())


def test_positions_ack_and_reports():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send(
                "AO",
                [
                    (721, "M1"),
                    (710, "p1"),
                    (727, "2"),
                    (728, "0"),
                    (729, "0"),
                    (1, "ACC1"),
                    (581, "1"),
                ],
            )
            for symbol, long_qty, short_qty, avg in (("ESZ5", "3", "0", "100.5"),
                                                     ("CLZ5", "0", "2.5", "75")):  # fmt: skip
                await conn.send("AP", [
                    (721, "M1"), (710, "p1"), (728, "0"), (1, "ACC1"), (581, "1"),
                    (55, symbol), (702, "1"), (703, "TOT"), (704, long_qty), (705, short_qty),
                    (730, "0"), (734, "0"), (9101, avg), (9102, "12.5"), (9103, "-3"),
                ])  # fmt: skip
            await events.wait_for(lambda e: isinstance(e, Position) and e.symbol == "CLZ5")
            assert events.of(PositionsAck) == [PositionsAck("p1", 2, "0", "0", "ACC1", None)]
            assert events.of(Position) == [
                Position("ACC1", "ESZ5", Decimal(3), Decimal("100.5"), Decimal("12.5"),
                         Decimal(-3), "p1", Decimal(0)),
                Position("ACC1", "CLZ5", Decimal("-2.5"), Decimal(75), Decimal("12.5"),
                         Decimal(-3), "p1", Decimal(0)),
            ]  # fmt: skip

    run(scenario())


def test_a_rejected_positions_request_is_an_ack_and_a_reject():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send(
                "AO",
                [
                    (721, "M1"),
                    (710, "p1"),
                    (728, "2"),
                    (729, "2"),
                    (1, "ACC9"),
                    (581, "1"),
                    (58, "unknown account"),
                ],
            )
            await events.wait_kind(Reject)
            assert events.items[1:] == [
                PositionsAck("p1", 0, "2", "2", "ACC9", "unknown account"),
                Reject("AN", "unknown account"),
            ]

    run(scenario())


def test_session_and_business_rejects():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send(
                "3",
                [
                    (45, "2"),
                    (371, "44"),
                    (372, "D"),
                    (373, "5"),
                    (58, "Value is incorrect for tag 44"),
                ],
            )
            await conn.send("3", [(45, "3"), (372, "F"), (373, "1")])
            await conn.send("j", [(45, "4"), (372, "AN"), (380, "3")])
            await conn.send("Y", [(262, "md1"), (281, "0")])
            await events.wait_for(lambda e: isinstance(e, Reject) and e.ref_msg_type == "V")
            assert events.of(Reject) == [
                Reject("D", "Value is incorrect for tag 44", 2),
                Reject("F", "SessionRejectReason=1", 3),
                Reject("AN", "BusinessRejectReason=3", 4),
                Reject("V", "MDReqRejReason=0", None),
            ]

    run(scenario())


def test_market_data_snapshot_and_incremental_refresh():
    async def scenario():
        async with venue() as (_session, conn, events, _peer):
            assert conn is not None
            await conn.send("W", [(262, "md1"), (55, "ESZ5"), (268, "3"),
                                  (269, "0"), (270, "100.25"), (271, "5"),
                                  (269, "1"), (270, "100.5"), (271, "7"),
                                  (269, "2"), (270, "100.25"), (271, "1")])  # fmt: skip
            await conn.send("X", [(262, "md1"), (268, "2"),
                                  (279, "1"), (269, "0"), (55, "ESZ5"), (270, "100.5"),
                                  (279, "2"), (269, "1"), (55, "ESZ5")])  # fmt: skip
            await events.wait_for(lambda e: isinstance(e, Quote) and e.ask is None)
            quotes = [(q.symbol, q.bid, q.ask, q.last) for q in events.of(Quote)]
            assert quotes == [
                ("ESZ5", Decimal("100.25"), Decimal("100.5"), Decimal("100.25")),
                ("ESZ5", Decimal("100.5"), None, Decimal("100.25")),
            ]

    run(scenario())


def test_a_message_with_the_wrong_comp_ids_ends_the_session():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E1", "0", "0"), sender="OTHER")  # 34=2
            reject = await conn.expect("3", skip=())  # FIX 4.4: Reject 373=9, then Logout
            assert (reject["45"], reject["372"], reject["373"], reject["371"]) == (
                "2",
                "8",
                "9",
                "49",
            )
            logout = await conn.expect("5", skip=())
            assert logout["58"] == "TargetCompID / SenderCompID mismatch"
            assert session.next_seq_in == 3  # the rejected message was counted
            await events.wait_status("disconnected")
            assert events.of(Execution) == []
            assert not session.is_logged_on

    run(scenario())
