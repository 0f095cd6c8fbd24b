"""The agent's liveness heartbeat: the file format and a cheap, fail-closed reader.

The kill-switch agent rewrites ``<tradeops_root>/run/agent-liveness`` in place
(through a shared mapping) every ``liveness_interval`` (50 ms by default). A
strategy maps it read-only and, before every order, asks ``alive()``: the
sequence number and the time of the last beat are a couple of memory reads;
the full record (magic, version, CRC) is validated only when the sequence
changed. A strategy that sees the agent silent for longer than its limit
treats the host as HALTED (``effective_state``): if the agent dies, nothing
trades unprotected.

The time is ``CLOCK_MONOTONIC`` in nanoseconds (``time.monotonic_ns``): on
Linux one clock for every process of the host, never stepped by NTP or an
operator, so the age a reader computes is real elapsed time.

File format (major version 1): 36 bytes, little-endian::

    offset size  field
     0      4    magic b"TOLV"
     4      1    major format version (1)
     5      1    minor format version (0)
     6      2    reserved, 0
     8      4    pid of the agent, u32
    12      4    the writer's interval in microseconds, u32
    16      8    monotonic_ns of the last beat, u64 (0: the agent stopped)
    24      8    sequence, u64, +1 on every beat
    32      4    CRC-32 of bytes 0..31

Compatibility rules (the same as the trading-state file, docs/host-contract.md):

* A reader accepts every minor version of its major. A newer minor may only
  give meaning to the reserved bytes and to bytes after offset 36 (the file
  may be longer, with its own check for what it adds); it never changes
  bytes 0..35, so an older reader still reads the beat right.
* Anything else is a new major version, which every older reader reads as
  "not alive" (fail closed), as it does a missing, short or corrupt file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from tradeops_client.tradingstate import TradingState, TradingStateReader

MAGIC = b"TOLV"
FORMAT_VERSION = 1  # the major version: readers refuse any other
FORMAT_MINOR = 0
RECORD_SIZE = 36
DEFAULT_RELATIVE_PATH = "run/agent-liveness"
DEFAULT_MAX_AGE_S = 0.5  # ten beats of the default interval
_HEAD = struct.Struct("<4sBBHIIQQ")  # 32 bytes, then the CRC
_CRC = struct.Struct("<I")
_SEQ = struct.Struct("<Q")
SEQUENCE_OFFSET = 24
_TORN_RETRIES = 3  # a read that races the writer's 36-byte copy is retried this often


@dataclass(frozen=True, slots=True)
class Beat:
    """One decoded liveness record; ``error`` is set when it cannot be trusted."""

    pid: int = 0
    interval_us: int = 0
    monotonic_ns: int = 0
    sequence: int = 0
    format_minor: int = 0
    error: str | None = None


def encode(pid: int, interval_us: int, monotonic_ns: int, sequence: int) -> bytes:
    """Return the 36-byte record of one beat."""
    head = _HEAD.pack(
        MAGIC,
        FORMAT_VERSION,
        FORMAT_MINOR,
        0,
        pid & 0xFFFFFFFF,
        min(interval_us, 0xFFFFFFFF),
        monotonic_ns,
        sequence & 0xFFFFFFFFFFFFFFFF,
    )
    return head + _CRC.pack(zlib.crc32(head) & 0xFFFFFFFF)


def decode(buf: bytes | bytearray | mmap.mmap) -> Beat:
    """Decode a record; anything invalid decodes with ``error`` set (not alive)."""
    if len(buf) < RECORD_SIZE:
        return Beat(error=f"short file ({len(buf)} bytes)")
    head = bytes(buf[:32])
    magic, major, minor, _res, pid, interval_us, mono, seq = _HEAD.unpack(head)
    if magic != MAGIC:
        return Beat(error="bad magic")
    if major != FORMAT_VERSION:
        return Beat(error=f"unknown format version {major}")
    (crc,) = _CRC.unpack(bytes(buf[32:36]))
    if crc != zlib.crc32(head) & 0xFFFFFFFF:
        return Beat(error="checksum mismatch")
    return Beat(pid, interval_us, mono, seq, minor)


def read_beat(path: str | os.PathLike[str]) -> Beat:
    """Read the file once (no mapping); fails closed like the reader."""
    try:
        with open(path, "rb") as fh:
            return decode(fh.read(RECORD_SIZE))
    except OSError as exc:
        return Beat(error=f"unreadable: {exc.strerror or exc}")


class AgentLiveness:
    """Whether the agent beat within ``max_age_s``, from a read-only mapping of its file.

    ``alive()`` is the hot path. When the agent looks dead (missing file,
    invalid record, stale beat), the path is reopened at most every
    ``recheck_s``, so a restarted agent's new file is found.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_age_s: float = DEFAULT_MAX_AGE_S,
        recheck_s: float = 0.25,
    ) -> None:
        self.path = Path(path)
        self.max_age_ns = int(max_age_s * 1e9)
        self._recheck_ns = int(recheck_s * 1e9)
        self._mm: mmap.mmap | None = None
        self._seq = -1
        self._beat = Beat(error="not read yet")
        self._next_open = 0
        self._open()

    def _close_map(self) -> None:
        if self._mm is not None:
            with contextlib.suppress(Exception):
                self._mm.close()
        self._mm = None
        self._seq = -1

    def _open(self) -> None:
        self._close_map()
        self._next_open = time.monotonic_ns() + self._recheck_ns
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            self._beat = Beat(error=f"unreadable: {exc.strerror or exc}")
            return
        try:
            size = os.fstat(fd).st_size
            if size < RECORD_SIZE:
                self._beat = Beat(error=f"short file ({size} bytes)")
                return
            self._mm = mmap.mmap(fd, RECORD_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            self._beat = Beat(error=f"cannot map: {exc}")
            self._close_map()
            return
        finally:
            os.close(fd)
        self._validate()

    def _validate(self) -> None:
        assert self._mm is not None
        for _unused in range(_TORN_RETRIES):
            beat = decode(self._mm)
            if beat.error != "checksum mismatch":
                break
        self._beat = beat
        self._seq = beat.sequence if beat.error is None else -1

    def _fresh(self) -> bool:
        beat = self._beat
        if beat.error is not None or beat.monotonic_ns == 0:
            return False
        return 0 <= time.monotonic_ns() - beat.monotonic_ns <= self.max_age_ns

    def alive(self) -> bool:
        """True when the agent's last valid beat is at most ``max_age_s`` old."""
        mm = self._mm
        if mm is not None:
            (seq,) = _SEQ.unpack_from(mm, SEQUENCE_OFFSET)
            if seq != self._seq:
                self._validate()
            if self._fresh():
                return True
        if time.monotonic_ns() >= self._next_open:
            self._open()
            return self._fresh()
        return False

    def beat(self) -> Beat:
        """The last beat read (its ``error`` says why the agent is not alive)."""
        return self._beat

    def close(self) -> None:
        """Unmap the file."""
        self._close_map()


def effective_state(state_reader: TradingStateReader, liveness: AgentLiveness) -> TradingState:
    """The state a strategy must act on: HALTED when the agent is not alive."""
    if not liveness.alive():
        return TradingState.HALTED
    return state_reader.current()
