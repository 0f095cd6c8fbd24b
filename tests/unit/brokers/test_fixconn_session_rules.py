"""FIX 4.4 session rules of the adapter (FixSession's TradeopsConnection) against the raw peer.

Received Reject (35=3), garbled frames, header faults, MsgSeqNum rules,
SequenceReset and ResetSeqNumFlag. The simulator's side of the same rules
is in ``tests/unit/sim/test_sim_session_rules.py``.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.brokers.rawfix import (
    TRADER,
    VENUE,
    WAIT_S,
    Events,
    RawFixPeer,
    build_frame,
    checksum,
    er_fields,
    log_on,
    make_session,
    run,
    venue,
)
from tests.unit.brokers.sessionkit import GARBLED_CASES, HEADER_FAULTS, logged, wait_until
from tradeops.brokers.base import Execution, NewOrder, Reject, Side
from tradeops.log import EventLog

ORIG_TIME = "20250102-03:04:05.000"


def order(cl_ord_id: str) -> NewOrder:
    return NewOrder(cl_ord_id, "ESZ5", Side.BUY, Decimal(1), price=Decimal(100))


def with_begin_string(frame: bytes, begin: bytes) -> bytes:
    head = frame[: frame.rindex(b"10=")].replace(b"FIX.4.4", begin, 1)
    return head + f"10={checksum(head):03d}\x01".encode()


# ----------------------------------------------------------- Reject (35=3)
def test_a_session_reject_is_logged_counted_reported_and_never_answered():
    async def scenario():
        stream = io.StringIO()
        async with venue(log=EventLog("adapter", stream)) as (session, conn, events, _peer):
            assert conn is not None
            await session.send_order(order("c1"))
            sent = await conn.expect("D")
            await conn.send(
                "3", [(45, sent.seq), (371, 44), (372, "D"), (373, 5), (58, "bad price")]
            )
            await conn.send("1", [(112, "after")])
            # Nothing (no Reject, no BusinessMessageReject) before the Heartbeat.
            assert (await conn.expect("0", skip=()))["112"] == "after"
            assert events.of(Reject) == [Reject("D", "bad price", sent.seq)]
            assert session.connection.stats["session_rejects_received"] == 1
            assert session.next_seq_in == 4  # the Reject was counted
            (record,) = logged(stream, "session_reject_received")
            assert {k: record[k] for k in ("ref_seq_num", "ref_tag_id", "ref_msg_type")} == {
                "ref_seq_num": str(sent.seq),
                "ref_tag_id": "44",
                "ref_msg_type": "D",
            }
            assert (record["reason"], record["text"]) == ("5", "bad price")

    run(scenario())


# ---------------------------------------------------------- garbled frames
@pytest.mark.parametrize("split", [False, True], ids=["same segment", "separate writes"])
@pytest.mark.parametrize("case", list(GARBLED_CASES))
def test_a_garbled_frame_is_discarded_logged_and_not_counted(case, split):
    build, reason = GARBLED_CASES[case]

    async def scenario():
        stream = io.StringIO()
        async with venue(log=EventLog("adapter", stream)) as (session, conn, _events, _peer):
            assert conn is not None
            seq = conn.next_out
            garbled = build(seq, VENUE, TRADER)  # carries the MsgSeqNum the adapter expects
            probe = conn.frame("1", [(112, "after")])  # the same MsgSeqNum
            if split:
                await conn.send_bytes(garbled)
                if reason not in ("truncated", "body_length_mismatch"):  # known once read
                    await wait_until(lambda: session.connection.stats["garbled_frames"] == 1)
                await conn.send_bytes(probe)
            else:
                await conn.send_bytes(garbled + probe)
            assert (await conn.expect("0", skip=()))["112"] == "after"
            assert session.next_seq_in == seq + 1
            (record,) = logged(stream, "garbled_frame")
            assert record["reason"] == reason
            assert record["excerpt"]
            assert record["next_seq_in"] == seq
            assert session.connection.stats["garbled_frames"] == 1
            assert session.is_logged_on

    run(scenario())


def test_a_bad_checksum_frame_is_asked_for_again_when_the_next_arrives_in_the_same_read():
    # The Python 3.13 failure of test_fix_inbound's bad-CheckSum test, made deterministic:
    # asyncfix 1.0.1 left the frame after a discarded one unread until more bytes came.
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            good = conn.frame("8", er_fields("c1", "E1", "0", "0"))  # 34=2
            corrupt = good[:-4] + f"{(int(good[-4:-1]) + 1) % 256:03d}\x01".encode()
            await conn.send_bytes(corrupt + conn.frame("8", er_fields("c1", "E2", "0", "0")))
            resend = await conn.expect("2", skip=())
            assert (resend["7"], resend["16"]) == ("2", "0")
            await conn.send(
                "8", er_fields("c1", "E1", "0", "0"), seq=2, header=[(43, "Y"), (122, ORIG_TIME)]
            )
            await conn.send(
                "8", er_fields("c1", "E2", "0", "0"), seq=3, header=[(43, "Y"), (122, ORIG_TIME)]
            )
            await events.wait_for(lambda e: isinstance(e, Execution) and e.exec_id == "E2")
            assert [e.exec_id for e in events.of(Execution)] == ["E1", "E2"]
            assert session.next_seq_in == 4

    run(scenario())


# ----------------------------------------------------------- header faults
@pytest.mark.parametrize("case", list(HEADER_FAULTS))
def test_a_header_fault_is_a_session_reject_and_the_message_is_counted(case):
    build, reason, tag = HEADER_FAULTS[case]

    async def scenario():
        stream = io.StringIO()
        async with venue(log=EventLog("adapter", stream)) as (session, conn, _events, _peer):
            assert conn is not None
            seq = conn.next_out
            conn.next_out += 1
            await conn.send_bytes(build(seq, VENUE, TRADER))
            reject = await conn.expect("3", skip=())
            assert (reject["45"], reject["372"], reject["373"]) == (str(seq), "1", reason)
            assert reject.get("371") == tag
            await conn.send("1", [(112, "after")])
            assert (await conn.expect("0", skip=()))["112"] == "after"
            assert session.next_seq_in == seq + 2
            assert session.connection.stats["session_rejects_sent"] == 1
            (record,) = logged(stream, "session_reject_sent")
            assert (record["ref_seq_num"], record["reason"]) == (seq, int(reason))
            assert session.is_logged_on

    run(scenario())


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("missing", "MsgSeqNum(34) tag is missing or not a positive integer"),
        ("not a number", "MsgSeqNum(34) tag is missing or not a positive integer"),
        ("zero", "MsgSeqNum(34) tag is missing or not a positive integer"),
        ("FIX.4.2", "Protocol BeginString(8) mismatch, expected FIX.4.4, got FIX.4.2"),
    ],
)
def test_a_missing_msgseqnum_or_a_foreign_beginstring_is_a_logout(case, text):
    frames = {
        "missing": build_frame("0", seq=None),
        "not a number": build_frame("0", seq="x7"),
        "zero": build_frame("0", seq=0),
        "FIX.4.2": with_begin_string(build_frame("0", seq=2), b"FIX.4.2"),
    }

    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send_bytes(frames[case])
            logout = await conn.expect("5", skip=())
            assert logout["58"] == text
            status = await events.wait_status("disconnected")
            assert status.detail == text
            assert not session.is_logged_on

    run(scenario())


# ----------------------------------------------------------- SequenceReset
def test_a_sequence_reset_that_would_lower_the_sequence_is_rejected():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            for _n in range(3):
                await conn.send("0")  # 34=2,3,4
            await wait_until(lambda: session.next_seq_in == 5)
            await conn.send("4", [(123, "N"), (36, 3)])  # Reset mode, 34=5
            reject = await conn.expect("3", skip=())
            assert (reject["373"], reject["371"], reject["372"]) == ("5", "36", "4")
            assert session.next_seq_in == 5  # neither lowered nor counted (Reset mode)
            await conn.send("4", [(123, "Y"), (36, 5)], seq=5)  # GapFill to itself
            reject = await conn.expect("3", skip=())
            assert (reject["45"], reject["373"]) == ("5", "5")
            assert session.next_seq_in == 6  # a GapFill in sequence is counted
            conn.next_out = 6
            await conn.send("1", [(112, "alive")])
            assert (await conn.expect("0", skip=()))["112"] == "alive"

    run(scenario())


def test_a_gap_fill_beyond_the_expected_msgseqnum_is_a_gap_not_a_jump():
    # asyncfix 1.0.1 moved straight to NewSeqNo, losing messages 2..4 without a word.
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            await conn.send("4", [(123, "Y"), (36, 8)], seq=5, header=[(43, "Y")])
            resend = await conn.expect("2", skip=())
            assert (resend["7"], resend["16"]) == ("2", "0")
            assert session.next_seq_in == 2
            for seq in (2, 3, 4):
                await conn.send(
                    "8",
                    er_fields("c1", f"E{seq}", "0", "0"),
                    seq=seq,
                    header=[(43, "Y"), (122, ORIG_TIME)],
                )
            await conn.send("4", [(123, "Y"), (36, 8)], seq=5, header=[(43, "Y")])
            await wait_until(lambda: session.next_seq_in == 8)
            assert [e.exec_id for e in events.of(Execution)] == ["E2", "E3", "E4"]

    run(scenario())


def test_a_resent_gap_fill_below_the_expected_msgseqnum_is_ignored():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await conn.send("4", [(123, "Y"), (36, 6)], header=[(43, "Y")])  # 34=2 -> 6
            await wait_until(lambda: session.next_seq_in == 6)
            await conn.send("4", [(123, "Y"), (36, 6)], seq=2, header=[(43, "Y")])  # again
            conn.next_out = 6
            await conn.send("1", [(112, "alive")])
            assert (await conn.expect("0", skip=()))["112"] == "alive"
            assert session.connection.stats["possdup_ignored"] == 1
            assert session.is_logged_on

    run(scenario())


def test_the_adapter_sends_a_sequence_reset_in_reset_mode():
    async def scenario():
        async with venue() as (session, conn, _events, _peer):
            assert conn is not None
            await session.connection.send_sequence_reset(10)
            reset = await conn.expect("4", skip=())
            assert (reset.seq, reset["123"], reset["36"], reset.possdup) == (2, "N", "10", False)
            conn.last_in = 9  # the peer applies the reset
            await session.send_order(order("after-reset"))
            assert (await conn.expect("D")).seq == 10
            with pytest.raises(ValueError, match="must exceed"):
                await session.connection.send_sequence_reset(5)

    run(scenario())


# --------------------------------------------------------- ResetSeqNumFlag
def test_reset_on_logon_restarts_both_sequences_and_the_journal(tmp_path: Path):
    async def scenario():
        peer = RawFixPeer()
        stream = io.StringIO()
        session = make_session(
            peer,
            Events(),
            store_dir=str(tmp_path),
            log=EventLog("adapter", stream),
            reset_on_logon=True,
        )
        try:
            conn, logon = await log_on(session, peer, extra=[(141, "Y")])
            assert (logon.seq, logon["141"]) == (1, "Y")
            await session.send_order(order("old"))  # 34=2
            await conn.expect("D")
            await conn.send("0")  # 34=2
            await wait_until(lambda: session.next_seq_in == 3)
            conn.close()
            await wait_until(lambda: not session.is_logged_on)
            conn2, logon2 = await log_on(session, peer, extra=[(141, "Y")])
            assert (logon2.seq, logon2["141"]) == (1, "Y")
            assert (session.next_seq_in, session.next_seq_out) == (2, 2)
            # The old order went with the reset: a resend from 1 is one gap fill.
            await conn2.send("2", [(7, 1), (16, 0)])
            fill = await conn2.expect("4", skip=())
            assert (fill.seq, fill["123"], fill["36"]) == (1, "Y", "2")
            resets = [r["by"] for r in logged(stream, "sequence_reset")]
            assert resets == ["our_logon", "our_logon"]
        finally:
            peer.close()
            await asyncio.wait_for(session.close(), WAIT_S)
        (journal,) = tmp_path.glob("*.journal.sqlite")
        db = sqlite3.connect(journal)
        try:
            outbound = db.execute("SELECT seqNo FROM message WHERE direction = 1").fetchall()
            inbound = db.execute("SELECT seqNo FROM message WHERE direction = 0").fetchall()
        finally:
            db.close()
        assert sorted(outbound) == [(1,), (2,)]  # the new Logon and the closing Logout
        assert sorted(inbound) == [(1,), (2,)]  # the venue's new Logon and ResendRequest
        restarted = make_session(peer, Events(), store_dir=str(tmp_path))
        try:
            assert (restarted.next_seq_in, restarted.next_seq_out) == (3, 3)
        finally:
            await asyncio.wait_for(restarted.close(), WAIT_S)

    run(scenario())


def test_a_value_that_looks_like_a_frame_start_is_never_misread():
    # asyncfix's decoder splits a frame at any "8=FIX." (here inside Text(58)); the
    # session layer hands it exactly one checked frame, so the message is either read
    # whole (FastCodec's path) or rejected with 373=99 (asyncfix's), never cut short.
    async def scenario():
        async with venue() as (session, conn, events, _peer):
            assert conn is not None
            seq = conn.next_out
            await conn.send("8", er_fields("c1", "E1", "0", "0", extra=[(58, "FIX.4.4 rocks")]))
            await conn.send("1", [(112, "after")])
            frames = []
            while not frames or frames[-1].msg_type != "0":
                frames.append(await conn.recv())
            rejects = [f for f in frames if f.msg_type == "3"]
            executions = events.of(Execution)
            if rejects:
                assert [(f["45"], f["373"]) for f in rejects] == [(str(seq), "99")]
                assert executions == []
            else:
                assert [e.text for e in executions] == ["FIX.4.4 rocks"]
            assert session.next_seq_in == seq + 2

    run(scenario())
