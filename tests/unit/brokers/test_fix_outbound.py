"""What FixSession puts on the wire: Logon and every request, read back by the raw peer.

Every frame read by the peer has already been checked for BeginString,
BodyLength, MsgType position, CheckSum, CompIDs, SendingTime and a MsgSeqNum
one above the previous one (see ``rawfix.PeerConn._check``).
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest

from tests.unit.brokers.rawfix import (
    WAIT_S,
    Events,
    RawFixPeer,
    make_session,
    run,
    venue,
)
from tradeops.brokers.base import NewOrder, OrdType, SessionStatus, Side

TIMESTAMP = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{3}$")


def body(frame) -> dict[str, str]:
    pairs = frame.body()
    tags = [t for t, _value in pairs]
    # Outside repeating groups no tag may appear twice.
    assert len(tags) == len(set(tags)) or frame.msg_type == "V", frame
    return dict(pairs)


def test_logon_carries_the_session_parameters_and_connect_waits_for_the_answer():
    async def scenario():
        peer = RawFixPeer()
        events = Events()
        session = make_session(peer, events, heartbeat_s=7, username="u1", password="p1")
        try:
            task = asyncio.create_task(session.connect(timeout_s=WAIT_S))
            conn = await peer.accept()
            logon = await conn.recv()
            assert logon.tags[:7] == ["8", "9", "35", "49", "56", "34", "52"]
            assert (logon.msg_type, logon.seq) == ("A", 1)
            assert body(logon) == {"98": "0", "108": "7", "553": "u1", "554": "p1"}
            assert "141" not in logon.tags  # the adapter never asks for a sequence reset
            await asyncio.sleep(0.05)
            assert not task.done()  # not logged on before the venue answers
            assert not session.is_logged_on
            await conn.send("A", [(98, 0), (108, 7)])
            await asyncio.wait_for(task, WAIT_S)
            assert session.is_logged_on
            assert (session.next_seq_out, session.next_seq_in) == (2, 2)
            assert [type(e) for e in events.items] == [SessionStatus]
            assert events.statuses() == ["logged_on"]
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())


def test_connect_times_out_when_the_venue_never_answers_and_drops_the_socket():
    async def scenario():
        peer = RawFixPeer()
        session = make_session(peer, Events())
        try:
            task = asyncio.create_task(session.connect(timeout_s=0.3))
            conn = await peer.accept()
            await conn.expect("A", skip=())
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(task, WAIT_S)
            assert not session.is_logged_on
            assert await conn.read_until_eof() == []
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())


def test_connect_to_a_closed_port_raises_connection_error():
    async def scenario():
        peer = RawFixPeer()
        peer.close()
        session = make_session(peer, Events())
        with pytest.raises(ConnectionError, match=r"cannot connect to 127\.0\.0\.1"):
            await session.connect(timeout_s=WAIT_S)
        await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())


def test_a_logon_answered_by_logout_fails_connect_with_the_venues_text():
    async def scenario():
        peer = RawFixPeer()
        events = Events()
        session = make_session(peer, events)
        try:
            task = asyncio.create_task(session.connect(timeout_s=WAIT_S))
            conn = await peer.accept()
            await conn.expect("A", skip=())
            await conn.send("5", [(58, "bad password")])
            with pytest.raises(ConnectionError, match="logon failed: bad password"):
                await asyncio.wait_for(task, WAIT_S)
            assert (await conn.expect("5", skip=())).get("58") is None  # answered
            assert not session.is_logged_on
            assert events.items == [SessionStatus("logged_out", "bad password")]
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())


def test_a_logon_reply_that_resets_sequence_numbers_restarts_both_sequences():
    # A venue that answers a Logon with ResetSeqNumFlag(141)=Y and MsgSeqNum 1, though the
    # adapter did not ask for a reset, has restarted its numbering: the adapter follows (FIX
    # session rules), its own Logon becoming number 1, and says so in its log. asyncfix
    # 1.0.1 logged out with "MsgSeqNum is too low" (fixconn asyncfix-fix 9).
    async def scenario():
        async with venue() as (session, conn, events, peer):
            assert conn is not None
            await session.send_order(
                NewOrder("old", "ESZ5", Side.BUY, Decimal(1), price=Decimal(1))
            )
            await conn.expect("D")
            conn.close()
            await events.wait_status("disconnected")
            task = asyncio.create_task(session.connect(timeout_s=WAIT_S))
            conn2 = await peer.accept()
            assert (await conn2.expect("A", skip=())).seq == 3
            await conn2.send("A", [(98, 0), (108, 30), (141, "Y")], seq=1)
            conn2.next_out = 2
            conn2.last_in = 1  # the adapter's Logon is number 1 of the new numbering
            await asyncio.wait_for(task, WAIT_S)
            assert (session.next_seq_in, session.next_seq_out) == (2, 2)
            assert session.connection.stats["sequence_resets"] == 1
            await conn2.send("1", [(112, "after-reset")])
            heartbeat = await conn2.expect("0", skip=())
            assert (heartbeat.seq, heartbeat["112"]) == (2, "after-reset")
            # The old order is not in the journal any more: a resend of 1.. is a gap fill.
            await conn2.send("2", [(7, 1), (16, 0)])
            fill = await conn2.expect("4", skip=())
            assert (fill.seq, fill["123"], fill["36"]) == (1, "Y", "3")
            assert session.is_logged_on

    run(scenario())


def test_new_order_single_limit():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.send_order(
                NewOrder("c1", "ESZ5", Side.BUY, Decimal("2"), OrdType.LIMIT, Decimal("100.2500"))
            )
            d = await conn.expect("D")
            fields = body(d)
            assert TIMESTAMP.match(fields.pop("60"))
            assert fields == {
                "11": "c1",
                "1": "ACC1",
                "55": "ESZ5",
                "54": "1",
                "38": "2",
                "40": "2",
                "44": "100.25",
                "59": "0",
            }
            assert d.seq == 2

    run(scenario())


def test_new_order_single_market_has_no_price_and_its_own_account():
    async def scenario():
        async with venue(account=None) as (session, conn, _events, _peer):
            assert conn is not None
            await session.send_order(
                NewOrder("c2", "CLZ5", Side.SELL, Decimal("1E+1"), OrdType.MARKET, Decimal(5))
            )
            fields = body(await conn.expect("D"))
            assert "44" not in fields
            assert "1" not in fields  # no account configured, none on the order
            assert (fields["54"], fields["38"], fields["40"]) == ("2", "10", "1")
            await session.send_order(
                NewOrder("c3", "CLZ5", Side.SELL, Decimal("0.001"), account="ACC9")
            )
            fields = body(await conn.expect("D"))
            assert (fields["1"], fields["38"], fields["40"]) == ("ACC9", "0.001", "2")
            assert "44" not in fields  # a limit order without a price is sent without one

    run(scenario())


def test_order_cancel_request():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.cancel_order("k1", "c1", "ESZ5", Side.SELL)
            f = await conn.expect("F")
            fields = body(f)
            assert TIMESTAMP.match(fields.pop("60"))
            assert fields == {"41": "c1", "11": "k1", "1": "ACC1", "55": "ESZ5", "54": "2"}

    run(scenario())


@pytest.mark.parametrize(
    ("price", "expected"),
    [(Decimal("99.50"), {"40": "2", "44": "99.5"}), (None, {"40": "1"})],
)
def test_order_cancel_replace_request(price, expected):
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.replace_order("r1", "c1", "ESZ5", Side.BUY, Decimal("3.0"), price)
            fields = body(await conn.expect("G"))
            assert TIMESTAMP.match(fields.pop("60"))
            assert fields == {
                "41": "c1",
                "11": "r1",
                "1": "ACC1",
                "55": "ESZ5",
                "54": "1",
                "38": "3",
                **expected,
            }

    run(scenario())


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [(None, {"530": "7"}), ("ESZ5", {"530": "1", "55": "ESZ5"})],
)
def test_order_mass_cancel_request(symbol, expected):
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.mass_cancel("m1", symbol)
            fields = body(await conn.expect("q"))
            assert TIMESTAMP.match(fields.pop("60"))
            assert fields == {"11": "m1", **expected}

    run(scenario())


def test_order_mass_status_request():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.mass_status("s1")
            assert body(await conn.expect("AF")) == {"584": "s1", "585": "7", "1": "ACC1"}

    run(scenario())


def test_request_for_positions():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.request_positions("p1")
            fields = body(await conn.expect("AN"))
            transact = fields.pop("60")
            assert TIMESTAMP.match(transact)
            assert fields.pop("715") == transact[:8]
            assert fields == {"710": "p1", "724": "0", "1": "ACC1", "581": "1"}

    run(scenario())


def test_market_data_request_groups():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.subscribe_market_data("md1", ["ESZ5", "CLZ5"])
            v = await conn.expect("V")
            assert v.body() == [
                ("262", "md1"),
                ("263", "1"),
                ("264", "1"),
                ("265", "1"),
                ("267", "3"),
                ("269", "0"),
                ("269", "1"),
                ("269", "2"),
                ("146", "2"),
                ("55", "ESZ5"),
                ("55", "CLZ5"),
            ]

    run(scenario())


def test_every_request_takes_the_next_msgseqnum():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            o = NewOrder("c1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(1))
            calls = [
                (session.send_order(o), "D"),
                (session.cancel_order("k1", "c1", "ESZ5", Side.BUY), "F"),
                (session.replace_order("r1", "c1", "ESZ5", Side.BUY, Decimal(2), None), "G"),
                (session.mass_cancel("m1"), "q"),
                (session.mass_status("s1"), "AF"),
                (session.request_positions("p1"), "AN"),
                (session.subscribe_market_data("md1", ["ESZ5"]), "V"),
            ]
            seen = []
            for call, msg_type in calls:
                await call
                frame = await conn.expect(msg_type, skip=())
                seen.append(frame.seq)
            assert seen == list(range(2, 2 + len(calls)))
            assert session.next_seq_out == 2 + len(calls)

    run(scenario())


def test_requests_while_not_logged_on_raise_and_consume_no_msgseqnum():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            conn.close()
            await events.wait_status("disconnected")
            before = session.next_seq_out
            o = NewOrder("c1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(1))
            for call in (
                session.send_order(o),
                session.cancel_order("k1", "c1", "ESZ5", Side.BUY),
                session.mass_cancel("m1"),
                session.mass_status("s1"),
                session.request_positions("p1"),
            ):
                with pytest.raises(ConnectionError, match="TRADER->VENUE is not logged on"):
                    await call
            assert session.next_seq_out == before

    run(scenario())
