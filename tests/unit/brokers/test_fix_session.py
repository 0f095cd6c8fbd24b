"""FixSession's session life against the raw peer: heartbeats, logout, drops, restarts."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.brokers.rawfix import (
    WAIT_S,
    Events,
    RawFixPeer,
    er_fields,
    log_on,
    make_session,
    run,
    venue,
)
from tradeops.brokers.base import Execution, NewOrder, SessionConfig, SessionStatus, Side
from tradeops.brokers.fix import FixSession


def order(cl_ord_id: str) -> NewOrder:
    return NewOrder(cl_ord_id, "ESZ5", Side.BUY, Decimal(1), price=Decimal(100))


# ------------------------------------------------------------------ heartbeat
def test_a_test_request_is_answered_with_its_id():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await conn.send("1", [(112, "TR-42")])
            hb = await conn.expect("0", skip=())
            assert hb["112"] == "TR-42"
            assert hb.seq == 2
            assert session.next_seq_in == 3

    run(scenario())


def test_a_silent_venue_is_probed_and_then_dropped():
    async def scenario():
        async with venue(heartbeat_s=1) as (session, conn, events, _peer):
            assert conn is not None
            # The adapter's own Heartbeats (one per HeartBtInt without a write) are skipped.
            probe = await conn.expect("1")  # TestRequest after a quiet interval
            await conn.send("0", [(112, probe["112"])])
            again = await conn.expect("1")  # answered: still logged on, probed again
            assert session.is_logged_on
            assert again.seq > probe.seq
            # Now the venue goes silent: the adapter must give up on it by itself.
            status = await events.wait_status("disconnected", timeout=8.0)
            assert status.detail == ""
            assert not session.is_logged_on
            assert {f.msg_type for f in await conn.read_until_eof()} <= {"0"}

    run(scenario())


def test_a_heartbeat_with_the_wrong_test_request_id_ends_the_session():
    async def scenario():
        async with venue(heartbeat_s=1) as (session, conn, events, _peer):
            assert conn is not None
            probe = await conn.expect("1", skip=())
            await conn.send("0", [(112, probe["112"] + "0")])
            logout = await conn.expect("5", skip=())
            assert logout["58"] == "Invalid TestRequest(TestReqID) received"
            await events.wait_status("disconnected")
            assert not session.is_logged_on

    run(scenario())


def test_an_idle_adapter_heartbeats_while_the_venue_talks():
    # asyncfix-fix 11: asyncfix 1.0.1 alone stays silent here.
    # HeartBtInt 2 s; the venue talks every 0.4 s, the adapter has nothing to send. Within
    # 2.5 s (more than one interval) it owes the venue a Heartbeat.
    async def scenario():
        async with venue(heartbeat_s=2) as (_session, conn, _events, _peer):
            assert conn is not None
            got = []
            for _attempt in range(6):
                await conn.send("0")
                try:
                    got.append(await conn.recv(timeout=0.4))
                except TimeoutError:
                    continue
            assert [f.msg_type for f in got] == ["0"]

    run(scenario())


# ---------------------------------------------------------------------- logout
def test_close_logs_out_waits_for_the_answer_and_closes_the_socket():
    async def scenario():
        peer = RawFixPeer()
        events = Events()
        session = make_session(peer, events)
        try:
            conn, _logon = await log_on(session, peer)
            closing = asyncio.create_task(session.close())
            logout = await conn.expect("5", skip=())
            assert (logout.seq, logout.get("58")) == (2, None)
            await asyncio.sleep(0.05)
            assert not closing.done()  # waits for the venue's Logout
            await conn.send("5")
            assert await conn.read_until_eof() == []
            await asyncio.wait_for(closing, WAIT_S)
            assert events.statuses() == ["logged_on", "logged_out"]
            assert not session.is_logged_on
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())


def test_close_returns_when_the_venue_never_answers_the_logout():
    async def scenario():
        peer = RawFixPeer()
        events = Events()
        session = make_session(peer, events)
        try:
            conn, _logon = await log_on(session, peer)
            await asyncio.wait_for(session.close(), WAIT_S)  # bounded by its own 2 s wait
            assert [f.msg_type for f in await conn.read_until_eof()] == ["5"]
            assert events.statuses() == ["logged_on", "disconnected"]
            assert not session.is_logged_on
        finally:
            peer.close()

    run(scenario())


# ------------------------------------------------------------------------ drop
def test_a_dropped_connection_is_reported_and_stops_sending():
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("8", er_fields("c1", "E1", "0", "0"))
            await events.wait_kind(Execution)
            conn.close()
            status = await events.wait_status("disconnected")
            assert status == SessionStatus("disconnected", "")
            assert session.last_disconnect_reason is None
            assert not session.is_logged_on
            with pytest.raises(ConnectionError):
                await session.send_order(order("c2"))

    run(scenario())


def test_after_a_drop_the_session_reconnects_by_itself_and_does_not_resend_old_orders():
    async def scenario():
        async with venue(reconnect_s="0.05") as (session, conn, events, peer):
            assert conn is not None
            await session.send_order(order("old"))
            assert (await conn.expect("D")).seq == 2
            conn.close()
            await events.wait_status("disconnected")
            conn2 = await peer.accept(next_out=2)
            logon = await conn2.answer_logon()
            assert logon.seq == 3
            await events.wait_status("logged_on", start=2)
            # The venue lost the order in the drop and asks for everything from 2.
            await conn2.send("2", [(7, 2), (16, 0)])
            fill = await conn2.expect("4", skip=())
            assert (fill.seq, fill["123"], fill["36"]) == (2, "Y", "4")
            await session.send_order(order("new"))
            new = await conn2.expect("D", skip=())
            assert (new["11"], new.seq, new.possdup) == ("new", 4, False)
            assert events.statuses() == ["logged_on", "disconnected", "logged_on"]

    run(scenario())


def test_resend_app_messages_resends_orders_of_an_earlier_connection():
    async def scenario():
        async with venue(resend_app_messages="true") as (session, conn, events, peer):
            assert conn is not None
            await session.send_order(order("old"))
            sent = await conn.expect("D")
            conn.close()
            await events.wait_status("disconnected")
            conn2, logon = await log_on(session, peer, next_out=2)
            await conn2.send("2", [(7, 2), (16, 0)])
            again = await conn2.expect("D", skip=())
            assert (again.seq, again.possdup, again["122"]) == (2, True, sent["52"])
            assert again.body() == sent.body()
            fill = await conn2.expect("4", skip=())  # the Logon (3) is gap-filled
            assert (fill.seq, fill["36"]) == (logon.seq, str(logon.seq + 1))

    run(scenario())


# --------------------------------------------------------------------- restart
def test_a_restarted_session_continues_both_sequences_from_its_store(tmp_path: Path):
    async def scenario():
        peer = RawFixPeer()
        try:
            first = make_session(peer, Events(), store_dir=str(tmp_path))
            try:
                conn, _logon = await log_on(first, peer)
                await first.send_order(order("c1"))  # 34=2
                await conn.expect("D")
                await conn.send("8", er_fields("c1", "E1", "0", "0"))  # 34=2
                closing = asyncio.create_task(first.close())
                logout = await conn.expect("5", skip=())  # 34=3
                await conn.send("5")  # 34=3
                await asyncio.wait_for(closing, WAIT_S)
            finally:
                await asyncio.wait_for(first.close(), WAIT_S)
            second = make_session(peer, Events(), store_dir=str(tmp_path))
            try:
                assert (second.next_seq_out, second.next_seq_in) == (logout.seq + 1, 4)
                conn2, logon = await log_on(second, peer, next_out=4)
                assert logon.seq == logout.seq + 1
                await conn2.send("1", [(112, "probe")])
                assert (await conn2.expect("0", skip=()))["112"] == "probe"  # no resend asked
            finally:
                peer.close()  # the venue does not answer the Logout: no 2 s wait
                await asyncio.wait_for(second.close(), WAIT_S)
        finally:
            peer.close()

    run(scenario())


# ---------------------------------------------------------------------- events
def test_a_failing_event_callback_does_not_stop_the_session():
    async def scenario():
        peer = RawFixPeer()
        seen: list[str] = []

        async def on_event(event):
            if isinstance(event, Execution):
                seen.append(event.exec_id)
                if event.exec_id == "E1":
                    raise RuntimeError("strategy bug")

        config = SessionConfig("127.0.0.1", peer.port, "TRADER", "VENUE")
        session = FixSession(config, on_event)
        try:
            conn, _logon = await log_on(session, peer)
            await conn.send("8", er_fields("c1", "E1", "0", "0"))
            await conn.send("8", er_fields("c1", "E2", "4", "4", leaves_qty="0"))
            await conn.send("1", [(112, "sync")])
            await conn.expect("0", skip=())
            assert seen == ["E1", "E2"]
            assert session.is_logged_on
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())
