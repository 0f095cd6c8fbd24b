"""FIX 4.4 session rules of the simulator's acceptor, against a raw client on 127.0.0.1.

The same rules as ``tests/unit/brokers/test_fixconn_session_rules.py`` (the
adapter's side), here with the in-process simulator as the receiver and the
sender: received Reject (35=3), ResetSeqNumFlag, garbled frames, header
faults, SequenceReset and ResendRequest. The last tests put the adapter
(FixSession) and the simulator face to face.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.brokers.rawfix import WAIT_S, build_frame, checksum, run, utc_stamp
from tests.unit.brokers.sessionkit import (
    CLIENT,
    GARBLED_CASES,
    HEADER_FAULTS,
    SIM,
    logged,
    sim_peer,
    wait_until,
)
from tradeops.brokers.base import NewOrder, Reject, SessionConfig, Side
from tradeops.brokers.fix import FixSession

ORIG_TIME = "20250102-03:04:05.000"


def new_order(cl_ord_id: str) -> list[tuple[int | str, object]]:
    return [(11, cl_ord_id), (55, "ESZ5"), (54, "1"), (60, utc_stamp()), (38, "1"), (40, "2"),
            (44, "90")]  # fmt: skip


# ----------------------------------------------------------- Reject (35=3)
def test_a_session_reject_from_the_client_is_logged_counted_and_never_answered():
    # The simulator used to answer it with a BusinessMessageReject "unsupported MsgType 3":
    # a reject for every reject, a ping-pong with a strict peer.
    async def scenario():
        async with sim_peer() as p:
            seq = p.conn.next_out
            await p.conn.send(
                "3", [(45, 1), (371, 108), (372, "A"), (373, 5), (58, "HeartBtInt too short")]
            )
            await p.conn.send("1", [(112, "after")])
            assert (await p.conn.expect("0", skip=()))["112"] == "after"  # no 'j' before it
            assert p.acceptor.next_seq_in == seq + 2
            assert p.acceptor.stats["session_rejects_received"] == 1
            (record,) = logged(p.stream, "session_reject_received")
            assert record["session"] == CLIENT
            assert {
                k: record[k]
                for k in ("ref_seq_num", "ref_tag_id", "ref_msg_type", "reason", "text")
            } == {
                "ref_seq_num": "1",
                "ref_tag_id": "108",
                "ref_msg_type": "A",
                "reason": "5",
                "text": "HeartBtInt too short",
            }
            assert not logged(p.stream, "bad_message")

    run(scenario())


# --------------------------------------------------------- ResetSeqNumFlag
def test_a_logon_with_reset_seq_num_flag_restarts_both_sequences(tmp_path: Path):
    # A client restarted from scratch logs on with 34=1 and 141=Y. asyncfix 1.0.1 logged
    # it out with "MsgSeqNum is too low"; now both sides restart and the journal follows.
    async def scenario():
        async with sim_peer(store_dir=str(tmp_path)) as p:
            await p.conn.send("D", new_order("old"))  # answered by an ExecutionReport
            await p.conn.expect("8", skip=())
            for _n in range(3):
                await p.conn.send("0")
            await wait_until(lambda: p.acceptor.next_seq_in == 6)
            assert p.acceptor.next_seq_out == 3
            await p.reconnect(next_out=1, logon=False)
            await p.conn.send("A", [(98, 0), (108, 30), (141, "Y")])
            answer = await p.conn.expect("A", skip=())
            assert (answer.seq, answer["141"]) == (1, "Y")
            await p.conn.send("1", [(112, "fresh")])
            heartbeat = await p.conn.expect("0", skip=())
            assert (heartbeat.seq, heartbeat["112"]) == (2, "fresh")
            assert (p.acceptor.next_seq_in, p.acceptor.next_seq_out) == (3, 3)
            # The ExecutionReport of the old session is not resent: it is gone.
            await p.conn.send("2", [(7, 1), (16, 0)])
            fill = await p.conn.expect("4", skip=())
            assert (fill.seq, fill["123"], fill["36"]) == (1, "Y", "3")
            (reset,) = logged(p.stream, "sequence_reset")
            assert (reset["by"], reset["before_in"], reset["before_out"]) == ("peer_logon", 6, 3)
            assert (reset["session"], reset["next_seq_out"]) == (CLIENT, 1)
        (journal,) = tmp_path.glob("*.journal.sqlite")
        db = sqlite3.connect(journal)
        try:
            row = db.execute("SELECT inboundSeqNo, outboundSeqNo FROM session").fetchone()
            outbound = db.execute("SELECT seqNo FROM message WHERE direction = 1").fetchall()
        finally:
            db.close()
        assert row[0] >= 3  # the new session's numbers, whatever the shutdown added
        assert row[1] >= 2
        assert all(seq <= row[1] for (seq,) in outbound)
        assert (1,) in outbound

    run(scenario())


def test_a_low_logon_without_reset_seq_num_flag_is_still_refused():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("0")
            await p.conn.send("0")
            await wait_until(lambda: p.acceptor.next_seq_in == 4)
            await p.reconnect(next_out=1, logon=False)
            await p.conn.send("A", [(98, 0), (108, 30)])
            logout = await p.conn.expect("5", skip=())
            assert logout["58"] == "MsgSeqNum is too low, expected 4, got 1"
            assert p.acceptor.stats["sequence_resets"] == 0

    run(scenario())


# ---------------------------------------------------------- garbled frames
@pytest.mark.parametrize("split", [False, True], ids=["same segment", "separate writes"])
@pytest.mark.parametrize("case", list(GARBLED_CASES))
def test_a_garbled_frame_is_discarded_logged_and_not_counted(case, split):
    build, reason = GARBLED_CASES[case]

    async def scenario():
        async with sim_peer() as p:
            seq = p.conn.next_out
            garbled = build(seq, CLIENT, SIM)
            probe = p.conn.frame("1", [(112, "after")])
            if split:
                await p.conn.send_bytes(garbled)
                if reason not in ("truncated", "body_length_mismatch"):  # known once read
                    await wait_until(lambda: p.acceptor.stats["garbled_frames"] == 1)
                await p.conn.send_bytes(probe)
            else:
                await p.conn.send_bytes(garbled + probe)
            assert (await p.conn.expect("0", skip=()))["112"] == "after"
            assert p.acceptor.next_seq_in == seq + 1
            (record,) = logged(p.stream, "garbled_frame")
            assert (record["reason"], record["session"]) == (reason, CLIENT)
            assert record["excerpt"]
            assert p.acceptor.is_live

    run(scenario())


@pytest.mark.parametrize("limit", [None, 2048])
def test_the_frame_size_limit_comes_from_the_configuration(limit):
    async def scenario():
        async with sim_peer(fix={} if limit is None else {"max_frame_bytes": limit}) as p:
            seq = p.conn.next_out
            await p.conn.send_bytes(p.conn.frame("1", [(112, "x" * 3000)]))
            await p.conn.send_bytes(p.conn.frame("1", [(112, "after")]))
            if limit is None:  # 1 MiB by default: both TestRequests are answered
                assert (await p.conn.expect("0", skip=()))["112"] == "x" * 3000
                assert (await p.conn.expect("0", skip=()))["112"] == "after"
                assert not logged(p.stream, "garbled_frame")
            else:  # discarded unread, so the next one shows a gap: asked for again
                resend = await p.conn.expect("2", skip=())
                assert resend["7"] == str(seq)
                (record,) = logged(p.stream, "garbled_frame")
                assert record["reason"] == "frame_too_large"

    run(scenario())


def test_garbage_before_the_logon_is_discarded_and_the_logon_still_works():
    async def scenario():
        async with sim_peer(logon=False) as p:
            await p.conn.send_bytes(b"GET / HTTP/1.1\r\n\r\n")
            await p.conn.send("A", [(98, 0), (108, 30)])
            assert (await p.conn.expect("A", skip=())).seq == 1
            assert [r["reason"] for r in logged(p.stream, "garbled_frame")] == ["garbage"]

    run(scenario())


# ----------------------------------------------------------- header faults
@pytest.mark.parametrize("case", list(HEADER_FAULTS))
def test_a_header_fault_is_a_session_reject_and_the_message_is_counted(case):
    build, reason, tag = HEADER_FAULTS[case]

    async def scenario():
        async with sim_peer() as p:
            seq = p.conn.next_out
            p.conn.next_out += 1
            await p.conn.send_bytes(build(seq, CLIENT, SIM))
            reject = await p.conn.expect("3", skip=())
            assert (reject["45"], reject["372"], reject["373"]) == (str(seq), "1", reason)
            assert reject.get("371") == tag
            await p.conn.send("1", [(112, "after")])
            assert (await p.conn.expect("0", skip=()))["112"] == "after"
            assert p.acceptor.next_seq_in == seq + 2
            (record,) = logged(p.stream, "session_reject_sent")
            assert (record["session"], record["reason"]) == (CLIENT, int(reason))

    run(scenario())


def test_wrong_comp_ids_after_logon_are_a_reject_and_a_logout():
    async def scenario():
        async with sim_peer() as p:
            seq = p.conn.next_out
            await p.conn.send("0", sender="INTRUDER")
            reject = await p.conn.expect("3", skip=())
            assert (reject["45"], reject["373"], reject["371"]) == (str(seq), "9", "49")
            logout = await p.conn.expect("5", skip=())
            assert logout["58"] == "TargetCompID / SenderCompID mismatch"
            assert await p.conn.read_until_eof() == []
            assert p.acceptor.next_seq_in == seq + 1

    run(scenario())


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("missing", "MsgSeqNum(34) tag is missing or not a positive integer"),
        ("not a number", "MsgSeqNum(34) tag is missing or not a positive integer"),
        ("FIX.4.2", "Protocol BeginString(8) mismatch, expected FIX.4.4, got FIX.4.2"),
    ],
)
def test_a_missing_msgseqnum_or_a_foreign_beginstring_is_a_logout(case, text):
    def frame() -> bytes:
        if case == "missing":
            return build_frame("0", sender=CLIENT, target=SIM, seq=None)
        if case == "not a number":
            return build_frame("0", sender=CLIENT, target=SIM, seq="x2")
        good = build_frame("0", sender=CLIENT, target=SIM, seq=2)
        head = good[: good.rindex(b"10=")].replace(b"FIX.4.4", b"FIX.4.2", 1)
        return head + f"10={checksum(head):03d}\x01".encode()

    async def scenario():
        async with sim_peer() as p:
            await p.conn.send_bytes(frame())
            logout = await p.conn.expect("5", skip=())
            assert logout["58"] == text
            assert await p.conn.read_until_eof() == []
            assert p.acceptor.last_disconnect_reason == text

    run(scenario())


def test_a_resent_message_already_received_is_ignored():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("0")  # 34=2
            await p.conn.send("0", seq=2, header=[(43, "Y"), (122, ORIG_TIME)])
            await p.conn.send("1", [(112, "alive")])  # 34=3
            assert (await p.conn.expect("0", skip=()))["112"] == "alive"
            assert p.acceptor.stats["possdup_ignored"] == 1
            assert p.acceptor.next_seq_in == 4

    run(scenario())


# ------------------------------------------- SequenceReset: sim as receiver
def test_the_simulator_applies_gap_fills_and_resets_and_rejects_a_lowering_reset():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("4", [(123, "Y"), (36, 5)])  # 34=2, GapFill in order: 2..4
            await wait_until(lambda: p.acceptor.next_seq_in == 5)
            assert p.acceptor.stats["gap_fills_received"] == 1
            await p.conn.send("4", [(123, "N"), (36, 20)], seq=5)  # Reset mode
            await wait_until(lambda: p.acceptor.next_seq_in == 20)
            await p.conn.send("4", [(36, 10)], seq=20)  # Reset mode lowering: Reject 5
            reject = await p.conn.expect("3", skip=())
            assert (reject["373"], reject["371"], reject["372"]) == ("5", "36", "4")
            assert p.acceptor.next_seq_in == 20
            p.conn.next_out = 20
            await p.conn.send("1", [(112, "alive")])
            assert (await p.conn.expect("0", skip=()))["112"] == "alive"
            assert p.acceptor.next_seq_in == 21

    run(scenario())


def test_a_gap_fill_beyond_the_expected_msgseqnum_makes_the_simulator_ask_for_a_resend():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("4", [(123, "Y"), (36, 9)], seq=6, header=[(43, "Y")])
            resend = await p.conn.expect("2", skip=())
            assert (resend["7"], resend["16"]) == ("2", "0")
            assert p.acceptor.next_seq_in == 2
            await p.conn.send("4", [(123, "Y"), (36, 9)], seq=2, header=[(43, "Y")])
            await wait_until(lambda: p.acceptor.next_seq_in == 9)
            assert p.acceptor.state_name == "ACTIVE"

    run(scenario())


# ---------------------------------------------- ResendRequest and SequenceReset: sim sends
def test_the_simulator_asks_for_a_resend_when_the_client_skips_numbers():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("1", [(112, "gap")], seq=4)  # 2 and 3 never sent
            resend = await p.conn.expect("2", skip=("0",))
            assert (resend["7"], resend["16"]) == ("2", "0")
            assert p.acceptor.stats["resend_requests_sent"] == 1
            await p.conn.send("4", [(123, "Y"), (36, 4)], seq=2, header=[(43, "Y")])
            await p.conn.send("1", [(112, "gap")], seq=4, header=[(43, "Y"), (122, ORIG_TIME)])
            await wait_until(lambda: p.acceptor.next_seq_in == 5)
            assert p.acceptor.state_name == "ACTIVE"

    run(scenario())


def test_the_simulator_resends_executions_and_gap_fills_session_messages():
    async def scenario():
        async with sim_peer() as p:
            await p.conn.send("D", new_order("c1"))
            first = await p.conn.expect("8", skip=())
            assert first.seq == 2
            await p.conn.send("2", [(7, 1), (16, 0)])
            fill = await p.conn.expect("4", skip=())  # the Logon (1)
            assert (fill.seq, fill["123"], fill["36"], fill.possdup) == (1, "Y", "2", True)
            again = await p.conn.expect("8", skip=())
            assert (again.seq, again.possdup, again["122"]) == (2, True, first["52"])
            assert again.body() == first.body()
            assert p.acceptor.stats["possdup_sent"] == 1

    run(scenario())


def test_the_simulator_sends_a_sequence_reset_in_reset_mode():
    async def scenario():
        async with sim_peer() as p:
            await p.acceptor.send_sequence_reset(50)
            reset = await p.conn.expect("4", skip=())
            assert (reset.seq, reset["123"], reset["36"]) == (2, "N", "50")
            p.conn.last_in = 49
            await p.conn.send("1", [(112, "after-reset")])
            heartbeat = await p.conn.expect("0", skip=())
            assert (heartbeat.seq, heartbeat["112"]) == (50, "after-reset")

    run(scenario())


# ------------------------------------------------- the adapter and the simulator
def test_the_adapter_resets_on_logon_against_the_simulator(tmp_path: Path):
    async def scenario():
        async with sim_peer(store_dir=str(tmp_path / "sim"), logon=False) as p:
            p.conn.close()
            await wait_until(lambda: not p.acceptor.is_connected)
            config = SessionConfig(
                "127.0.0.1", p.port, CLIENT, SIM, account="ACC1", store_dir=str(tmp_path / "a")
            )
            events: list[object] = []
            first = FixSession(config, events.append)
            try:
                await first.connect(WAIT_S)
                await first.send_order(
                    NewOrder("c1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await wait_until(lambda: first.next_seq_in >= 3)
            finally:
                await asyncio.wait_for(first.close(), WAIT_S)
            assert p.acceptor.next_seq_in > 2
            again = FixSession(config, events.append, reset_on_logon=True)
            try:
                await again.connect(WAIT_S)
                assert (again.next_seq_in, again.next_seq_out) == (2, 2)
                assert (p.acceptor.next_seq_in, p.acceptor.next_seq_out) == (2, 2)
                await again.send_order(
                    NewOrder("c2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await wait_until(lambda: again.next_seq_in >= 3)
                assert again.is_logged_on
            finally:
                await asyncio.wait_for(again.close(), WAIT_S)
            assert not [r for r in logged(p.stream, "fix_engine") if r["level"] == "error"]

    run(scenario())


def test_a_session_reject_between_adapter_and_simulator_is_not_ping_ponged():
    # The simulator rejects a malformed order with 35=3; the adapter reports it and stays
    # silent. The simulator then receives a 35=3 from a raw client and stays silent too.
    async def scenario():
        async with sim_peer(logon=False) as p:
            p.conn.close()
            await wait_until(lambda: not p.acceptor.is_connected)
            events: list[object] = []
            config = SessionConfig("127.0.0.1", p.port, CLIENT, SIM, account="ACC1")
            session = FixSession(config, events.append)
            try:
                await session.connect(WAIT_S)
                from asyncfix import FIXMessage, FMsg

                await session.send_raw(FIXMessage(FMsg.NEWORDERSINGLE, {"11": "x", "54": "1"}))
                await wait_until(lambda: any(isinstance(e, Reject) for e in events))
                in_before = p.acceptor.next_seq_in
                await session.send_order(
                    NewOrder("ok", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await wait_until(lambda: p.acceptor.next_seq_in == in_before + 1)
                assert session.connection.stats["session_rejects_received"] == 1
                assert session.connection.stats["session_rejects_sent"] == 0
            finally:
                await asyncio.wait_for(session.close(), WAIT_S)

    run(scenario())
