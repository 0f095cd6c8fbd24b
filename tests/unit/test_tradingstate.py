"""The host trading-state file, its reader (fail closed) and the order check."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from tradeops.brokers.base import Side
from tradeops.tradingstate import (
    RECORD_SIZE,
    Decision,
    InPlacePublisher,
    TradingState,
    TradingStateReader,
    check_cancel,
    check_order,
    decode,
    default_path,
    encode,
    publish_in_place,
    read_state,
    write_state,
)

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
BUY, SELL = Side.BUY, Side.SELL


def test_record_is_64_bytes_and_round_trips() -> None:
    raw = encode(R, 7, reason="limit breach", who="agent@h1", updated_ns=123)
    assert len(raw) == RECORD_SIZE == 64
    rec = decode(raw)
    assert (rec.state, rec.generation, rec.updated_ns) == (R, 7, 123)
    assert (rec.who, rec.reason, rec.error) == ("agent@h1", "limit breach", None)


def test_long_text_is_truncated_on_a_character_boundary() -> None:
    rec = decode(encode(A, 1, reason="é" * 30, who="w" * 40))
    assert rec.error is None
    assert rec.reason == "é" * 10
    assert rec.who == "w" * 16


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:10], "short file"),
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x09" + b[5:], "unknown format version"),
        (lambda b: b[:30] + bytes([b[30] ^ 0xFF]) + b[31:], "checksum mismatch"),
        (lambda b: b[:5] + b"\x01" + b[6:], "checksum mismatch"),  # state byte flipped
        (lambda b: b"", "short file"),
    ],
)
def test_corrupt_records_decode_as_halted(mutate, error) -> None:
    raw = mutate(encode(R, 3))
    rec = decode(raw)
    assert rec.state is H
    assert error in (rec.error or "")


def test_unknown_state_value_with_valid_checksum_is_halted() -> None:
    import struct
    import zlib

    raw = bytearray(encode(A, 1))
    raw[5] = 9
    raw[60:64] = struct.pack("<I", zlib.crc32(bytes(raw[:60])) & 0xFFFFFFFF)
    rec = decode(bytes(raw))
    assert rec.state is H
    assert "bad state" in (rec.error or "")


def test_superseded_flag_does_not_break_the_checksum() -> None:
    raw = bytearray(encode(A, 1))
    raw[6] = 1
    assert decode(bytes(raw)).error is None


def test_missing_file_reads_halted(tmp_path: Path) -> None:
    reader = TradingStateReader(tmp_path / "nope", recheck_s=0)
    assert reader.current() is H
    assert "unreadable" in (reader.record().error or "")
    assert read_state(tmp_path / "nope").state is H


def test_directory_instead_of_file_reads_halted(tmp_path: Path) -> None:
    (tmp_path / "trading_state").mkdir()
    assert TradingStateReader(tmp_path / "trading_state", recheck_s=0).current() is H


def test_corrupt_file_reads_halted(tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    path.write_bytes(b"\0" * 64)
    assert TradingStateReader(path, recheck_s=0).current() is H
    path.write_bytes(b"TOTS")
    assert TradingStateReader(path, recheck_s=0).current() is H


def test_write_then_read(tmp_path: Path) -> None:
    path = default_path(tmp_path)
    assert path == tmp_path / "state" / "trading_state"
    rec = write_state(path, "active", reason="open", who="test")
    assert (rec.state, rec.generation) == (A, 1)
    reader = TradingStateReader(path)
    assert reader.current() is A
    assert reader.record().who == "test"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_reader_sees_every_rewrite_at_once(tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    write_state(path, A)
    reader = TradingStateReader(path, recheck_s=3600)  # only the superseded flag can tell
    assert reader.current() is A
    for gen, state in enumerate([R, H, A, H], start=2):
        rec = write_state(path, state, reason=f"step {gen}", who="agent")
        assert rec.generation == gen
        assert reader.current() is state
        assert reader.record().generation == gen


def test_reader_notices_a_replaced_file_without_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    write_state(path, A)
    reader = TradingStateReader(path, recheck_s=0)
    assert reader.current() is A
    # A writer that died after the rename: no superseded flag in the old file.
    tmp = tmp_path / "other"
    tmp.write_bytes(encode(H, 99))
    os.replace(tmp, path)
    assert reader.current() is H


def test_reader_fails_closed_when_the_file_disappears_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    write_state(path, A)
    reader = TradingStateReader(path, recheck_s=0)
    assert reader.current() is A
    path.unlink()
    assert reader.current() is H
    write_state(path, A)
    assert reader.current() is A


def test_generation_restarts_after_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    path.write_bytes(b"garbage")
    assert write_state(path, R).generation == 1


def test_write_state_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        write_state(tmp_path / "s", "PAUSED")


# check_order: (state, position, side, qty, working_buy, working_sell, limit) -> decision
CASES = [
    # HALTED refuses everything, even reducing orders.
    (H, 0, BUY, 1, 0, 0, None, False, "HALTED"),
    (H, 10, SELL, 1, 0, 0, None, False, "HALTED"),
    (H, -10, BUY, 1, 0, 0, 100, False, "HALTED"),
    # REDUCING: only toward zero, working orders counted, never past zero.
    (R, 10, SELL, 5, 0, 0, None, True, "OK"),
    (R, 10, SELL, 10, 0, 0, None, True, "OK"),
    (R, 10, SELL, 11, 0, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, 10, SELL, 5, 0, 6, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, 10, SELL, 5, 0, 5, None, True, "OK"),
    (R, 10, BUY, 1, 0, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, -10, BUY, 4, 6, 0, None, True, "OK"),
    (R, -10, BUY, 5, 6, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, -10, SELL, 1, 0, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, 0, BUY, 1, 0, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    (R, 0, SELL, 1, 0, 0, None, False, "REDUCE_ONLY_WOULD_INCREASE_POSITION"),
    # ACTIVE: only the position limit, counting working orders on the same side.
    (A, 0, BUY, 10, 0, 0, None, True, "OK"),
    (A, 90, BUY, 10, 0, 0, 100, True, "OK"),
    (A, 90, BUY, 11, 0, 0, 100, False, "POSITION_LIMIT"),
    (A, 80, BUY, 10, 11, 0, 100, False, "POSITION_LIMIT"),
    (A, 80, BUY, 10, 10, 50, 100, True, "OK"),  # sells do not make room
    (A, -90, SELL, 10, 0, 0, 100, True, "OK"),
    (A, -90, SELL, 10, 0, 1, 100, False, "POSITION_LIMIT"),
    (A, 100, SELL, 10, 0, 0, 100, True, "OK"),
    (A, 0, BUY, 0, 0, 0, 100, False, "INVALID_QTY"),
    (R, 10, SELL, -1, 0, 0, None, False, "INVALID_QTY"),
]


@pytest.mark.parametrize(("state", "pos", "side", "qty", "wb", "ws", "limit", "ok", "code"), CASES)
def test_check_order(state, pos, side, qty, wb, ws, limit, ok, code) -> None:
    decision = check_order(
        state,
        Decimal(pos),
        side,
        Decimal(qty),
        working_buy=Decimal(wb),
        working_sell=Decimal(ws),
        max_position=None if limit is None else Decimal(limit),
    )
    assert decision == Decision(ok, code)


@pytest.mark.parametrize("state", list(TradingState))
def test_cancels_are_always_allowed(state) -> None:
    assert check_cancel(state).allowed


def test_a_record_published_in_place_is_seen_by_a_reader_that_maps_the_file(tmp_path):
    path = tmp_path / "trading_state"
    write_state(path, TradingState.ACTIVE, reason="", who="alice")
    reader = TradingStateReader(path)
    assert reader.current() is TradingState.ACTIVE
    inode = path.stat().st_ino

    assert publish_in_place(path, TradingState.HALTED, reason="MSG_RATE", who="breaker")
    assert path.stat().st_ino == inode  # no rename: the page the reader maps changed
    assert reader.current() is TradingState.HALTED
    assert (reader.record().reason, reader.record().error) == ("MSG_RATE", None)

    write_state(path, TradingState.HALTED, reason="MSG_RATE", who="breaker")  # then durably
    assert reader.current() is TradingState.HALTED
    assert reader.record().generation == 3  # the in-place record, then the durable file
    reader.close()


def test_publish_in_place_needs_a_valid_file(tmp_path):
    assert not publish_in_place(tmp_path / "missing", TradingState.HALTED)
    (tmp_path / "corrupt").write_bytes(b"\0" * 64)
    assert not publish_in_place(tmp_path / "corrupt", TradingState.HALTED)


def test_a_publisher_keeps_its_files_open_and_follows_a_file_replaced_by_write_state(tmp_path):
    path = tmp_path / "trading_state"
    write_state(path, TradingState.ACTIVE, who="alice")
    publisher = InPlacePublisher(path)
    replaced = publisher.publish(TradingState.HALTED, "MANUAL", "ops")
    assert replaced is not None
    assert replaced.state is TradingState.ACTIVE
    assert read_state(path).state is TradingState.HALTED
    write_state(path, TradingState.ACTIVE, who="carol")  # a new inode; the old one superseded
    replaced = publisher.publish(TradingState.HALTED, "DRAWDOWN", "breaker")
    assert replaced is not None
    assert replaced.who == "carol"
    record = read_state(path)
    assert (record.state, record.reason, record.generation) == (TradingState.HALTED, "DRAWDOWN", 4)
    publisher.close()
    assert publisher.publish(TradingState.REDUCING) is not None  # opened again after close
    publisher.close()


def test_a_publisher_writes_again_in_a_file_replaced_without_the_superseded_mark(tmp_path):
    """A restore (a snapshot renamed over the file) does not mark the old file superseded."""
    path = tmp_path / "trading_state"
    write_state(path, TradingState.ACTIVE, who="alice")
    publisher = InPlacePublisher(path)
    assert publisher.publish(TradingState.REDUCING, "MSG_RATE", "breaker") is not None
    restored = tmp_path / "restored"
    restored.write_bytes(encode(TradingState.ACTIVE, 9, who="restore"))
    os.replace(restored, path)
    replaced = publisher.publish(TradingState.HALTED, "MANUAL", "ops")
    assert replaced is not None
    assert replaced.who == "restore"
    record = read_state(path)
    assert (record.state, record.generation) == (TradingState.HALTED, 10)
    publisher.close()


def test_a_publisher_needs_a_valid_file_and_recovers_when_there_is_one(tmp_path):
    path = tmp_path / "trading_state"
    publisher = InPlacePublisher(path)
    assert publisher.publish(TradingState.HALTED) is None  # missing
    path.write_bytes(b"\0" * 64)
    assert publisher.publish(TradingState.HALTED) is None  # invalid: only write_state may write
    write_state(path, TradingState.ACTIVE, who="alice")
    assert publisher.publish(TradingState.HALTED) is not None
    assert read_state(path).state is TradingState.HALTED
    publisher.close()
