"""The liveness heartbeat: the agent's writer, the strategy's reader, fail closed."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from tradeops.agent.liveness import LivenessWriter
from tradeops.tradingstate import TradingState, TradingStateReader, write_state
from tradeops_client.liveness import (
    RECORD_SIZE,
    AgentLiveness,
    decode,
    effective_state,
    encode,
    read_beat,
)

HOUR = 3600.0
SRC = str(Path(__file__).resolve().parents[3] / "src")


def _record(major: int = 1, minor: int = 0, mono: int | None = None, extra: bytes = b"") -> bytes:
    mono = time.monotonic_ns() if mono is None else mono
    head = struct.pack("<4sBBHIIQQ", b"TOLV", major, minor, 0, 42, 50_000, mono, 7)
    return head + struct.pack("<I", zlib.crc32(head)) + extra


def test_a_beat_round_trips_and_the_reader_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    writer = LivenessWriter(path, 0.05)
    try:
        seq = writer.beat()
        beat = read_beat(path)
        assert (beat.error, beat.pid, beat.sequence, beat.interval_us) == (
            None,
            os.getpid(),
            seq,
            50_000,
        )
        reader = AgentLiveness(path, max_age_s=HOUR)
        assert reader.alive()
        writer.beat()
        assert reader.alive()
        assert reader.beat().sequence == seq + 1  # the mapping sees the new beat in place
    finally:
        writer.close()
    assert not reader.alive()  # a clean stop writes "gone": readers halt at once
    assert read_beat(path).monotonic_ns == 0


def test_a_reader_in_another_process_sees_the_agent_alive_then_gone(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    script = (
        "import sys\n"
        "from tradeops_client.liveness import AgentLiveness\n"
        "r = AgentLiveness(sys.argv[1], max_age_s=3600)\n"
        "print('alive' if r.alive() else 'dead')\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}

    def ask() -> str:
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )  # fmt: skip
        return out.stdout.strip()

    writer = LivenessWriter(path, 0.05)
    writer.beat()
    assert ask() == "alive"
    writer.close()
    assert ask() == "dead"


def test_a_stale_beat_is_not_alive(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    path.write_bytes(_record(mono=time.monotonic_ns() - int(10e9)))
    assert not AgentLiveness(path, max_age_s=1.0).alive()
    assert AgentLiveness(path, max_age_s=HOUR).alive()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "unreadable"),
        (b"", "short file"),
        (_record()[:20], "short file"),
        (b"XXXX" + _record()[4:], "bad magic"),
        (_record()[:-1] + bytes([_record()[-1] ^ 1]), "checksum mismatch"),
        (_record(major=2), "unknown format version 2"),
    ],
    ids=["missing", "empty", "short", "bad-magic", "checksum", "major-2"],  # stable: xdist
)
def test_missing_short_corrupt_or_future_major_files_fail_closed(
    tmp_path: Path, content: bytes | None, error: str
) -> None:
    path = tmp_path / "agent-liveness"
    if content is not None:
        path.write_bytes(content)
    reader = AgentLiveness(path, max_age_s=HOUR)
    assert not reader.alive()
    assert error in (reader.beat().error or "")


def test_a_future_minor_with_extra_bytes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    path.write_bytes(_record(minor=3, extra=b"\x99" * 40))
    reader = AgentLiveness(path, max_age_s=HOUR)
    assert reader.alive()
    assert (reader.beat().format_minor, reader.beat().pid) == (3, 42)


def test_the_writer_keeps_the_inode_and_overwrites_a_longer_file(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    path.write_bytes(_record(major=9, extra=b"\0" * 100))
    inode = path.stat().st_ino
    writer = LivenessWriter(path, 0.05)
    writer.beat()
    writer.close(stopped=False)
    assert path.stat().st_ino == inode
    assert path.stat().st_size == RECORD_SIZE
    assert decode(path.read_bytes()).error is None


def test_a_reader_finds_a_restarted_agents_new_file(tmp_path: Path) -> None:
    path = tmp_path / "agent-liveness"
    first = LivenessWriter(path, 0.05)
    first.beat()
    reader = AgentLiveness(path, max_age_s=HOUR, recheck_s=0.0)
    assert reader.alive()
    first.close()
    path.unlink()
    assert not reader.alive()
    second = LivenessWriter(path, 0.05)
    second.beat()
    try:
        assert reader.alive()  # reopened: recheck_s is 0
    finally:
        second.close()


def test_effective_state_is_halted_when_the_agent_is_not_alive(tmp_path: Path) -> None:
    state_path = tmp_path / "trading_state"
    write_state(state_path, TradingState.ACTIVE)
    state = TradingStateReader(state_path)
    path = tmp_path / "agent-liveness"
    writer = LivenessWriter(path, 0.05)
    writer.beat()
    liveness = AgentLiveness(path, max_age_s=HOUR)
    assert effective_state(state, liveness) is TradingState.ACTIVE
    writer.close()
    assert effective_state(state, liveness) is TradingState.HALTED


def test_encode_and_decode_agree() -> None:
    beat = decode(encode(123, 50_000, 987654321, 5))
    assert (beat.pid, beat.interval_us, beat.monotonic_ns, beat.sequence, beat.error) == (
        123,
        50_000,
        987654321,
        5,
        None,
    )
