"""The host's trading state (ACTIVE, REDUCING, HALTED): the file format and its reader.

This module is the trading-state half of the strategy client: a release ships
it (``site/tradeops_client``), so a strategy reads the state with the reader it
was built and tested with, whatever library the host's venv holds. The host
library (``tradeops.tradingstate``) writes the file with the same format code.

The kill-switch agent owns the state and rewrites ``<tradeops_root>/state/trading_state``
atomically (write a temporary file, fsync, rename). Every strategy maps the file
read-only and looks at it before every order: a couple of memory reads, no system
call in the common case, and it keeps working when the agent dies. A missing,
short, corrupt or unreadable file reads as HALTED (fail closed).

File format (major version 1): 64 bytes, little-endian::

    offset size  field
     0      4    magic b"TOTS"
     4      1    major format version (1)
     5      1    state: 1 ACTIVE, 2 REDUCING, 3 HALTED (anything else: HALTED)
     6      1    superseded flag: 0 current, 1 replaced by a newer file
     7      1    minor format version (0; was "reserved, 0" before minors existed)
     8      8    generation, u64, +1 on every write
    16      8    updated_at, u64, Unix time in nanoseconds
    24     16    who, UTF-8, NUL padded (truncated)
    40     20    reason, UTF-8, NUL padded (truncated)
    60      4    CRC-32 of bytes 0..59 with byte 6 read as 0

Compatibility rules (docs/host-contract.md; tests/unit/test_tradingstate_compat.py
checks them against a release built with the oldest supported reader):

* A reader accepts every minor version of its major version. A newer minor may
  only give meaning to byte 7 and to bytes after offset 64 (a file may be longer
  than 64 bytes); it never changes the meaning of bytes 0..63, so an older
  reader still reads the state, generation, who and reason right.
* Anything else is a new major version, which every older reader reads as
  HALTED (fail closed), as it does a missing, short or corrupt file.

A rename does not reach a reader that mapped the old file, so after the rename the
writer sets the superseded flag in the old file (the same page the readers map);
a reader that sees it reopens the path. As a backstop against a writer dying
between the two steps, a reader also checks the path's inode every
``recheck_s`` seconds.
"""

from __future__ import annotations

import contextlib
import enum
import mmap
import os
import struct
import time
import zlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

MAGIC = b"TOTS"
FORMAT_VERSION = 1  # the major version: readers refuse any other
FORMAT_MINOR = 0  # written by this library; readers accept any minor of their major
MINOR_OFFSET = 7
RECORD_SIZE = 64
SUPERSEDED_OFFSET = 6
STATE_OFFSET = 5
_HEAD = struct.Struct("<4sBBBBQQ16s20s")  # 60 bytes, then the CRC
_CRC = struct.Struct("<I")
DEFAULT_RELATIVE_PATH = "state/trading_state"
# FIX Side(54) values: an order's side compares equal to one of these (a str enum
# such as tradeops.brokers.base.Side, or the plain string).
BUY = "1"
SELL = "2"


class TradingState(enum.IntEnum):
    """What the host allows strategies to do."""

    ACTIVE = 1
    REDUCING = 2
    HALTED = 3


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One decoded state file; ``error`` is set (and state is HALTED) when invalid."""

    state: TradingState
    generation: int = 0
    updated_ns: int = 0
    who: str = ""
    reason: str = ""
    error: str | None = None
    format_minor: int = 0

    def as_dict(self) -> dict[str, object]:
        """Return the record as plain JSON-able data."""
        return {
            "state": self.state.name,
            "format": f"{FORMAT_VERSION}.{self.format_minor}",
            "generation": self.generation,
            "updated_ns": self.updated_ns,
            "who": self.who,
            "reason": self.reason,
            "error": self.error,
        }


def _crc(buf: bytes | bytearray | mmap.mmap) -> int:
    head = bytearray(buf[:60])
    head[SUPERSEDED_OFFSET] = 0
    return zlib.crc32(head) & 0xFFFFFFFF


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", errors="replace")


def _fit(text: str, size: int) -> bytes:
    raw = text.encode("utf-8")[:size]
    # Do not cut a multi-byte character in half.
    return raw.decode("utf-8", errors="ignore").encode("utf-8")


def encode(
    state: TradingState, generation: int, reason: str = "", who: str = "", updated_ns: int = 0
) -> bytes:
    """Return the 64-byte record for ``state``."""
    head = _HEAD.pack(
        MAGIC,
        FORMAT_VERSION,
        int(state),
        0,
        FORMAT_MINOR,
        generation,
        updated_ns or time.time_ns(),
        _fit(who, 16),
        _fit(reason, 20),
    )
    return head + _CRC.pack(_crc(head))


def decode(buf: bytes | bytearray | mmap.mmap) -> StateRecord:
    """Decode a record; anything invalid decodes as HALTED with ``error`` set."""
    if len(buf) < RECORD_SIZE:
        return StateRecord(TradingState.HALTED, error=f"short file ({len(buf)} bytes)")
    magic, version, state, _sup, minor, generation, updated, who, reason = _HEAD.unpack(buf[:60])
    if magic != MAGIC:
        return StateRecord(TradingState.HALTED, error="bad magic")
    if version != FORMAT_VERSION:
        return StateRecord(TradingState.HALTED, error=f"unknown format version {version}")
    (crc,) = _CRC.unpack(buf[60:64])
    if crc != _crc(buf):
        return StateRecord(TradingState.HALTED, error="checksum mismatch")
    try:
        value = TradingState(state)
    except ValueError:
        return StateRecord(TradingState.HALTED, generation, updated, error=f"bad state {state}")
    return StateRecord(value, generation, updated, _text(who), _text(reason), format_minor=minor)


def read_state(path: str | os.PathLike[str]) -> StateRecord:
    """Read the state file once (no mapping); fails closed like the reader."""
    try:
        with open(path, "rb") as fh:
            return decode(fh.read(RECORD_SIZE))
    except OSError as exc:
        return StateRecord(TradingState.HALTED, error=f"unreadable: {exc.strerror or exc}")


class TradingStateReader:
    """Read the host trading state from a read-only mapping of the state file.

    ``current()`` is the hot path, called before every order: it reads the
    superseded flag and the state byte from the mapping and returns the cached,
    validated state. The file is reopened when superseded, when the state byte
    differs from the validated one, when it was missing or invalid (at most every
    ``recheck_s``), and every ``recheck_s`` it compares the path's inode.
    """

    def __init__(self, path: str | os.PathLike[str], recheck_s: float = 0.25) -> None:
        self.path = Path(path)
        self._recheck_ns = int(recheck_s * 1e9)
        self._mm: mmap.mmap | None = None
        self._ino: tuple[int, int] | None = None
        self._record = StateRecord(TradingState.HALTED, error="not read yet")
        self._state_byte = -1
        self._next_check = 0
        self._open()

    def _close_map(self) -> None:
        if self._mm is not None:
            with contextlib.suppress(Exception):
                self._mm.close()
        self._mm = None
        self._ino = None

    def _open(self) -> None:
        self._close_map()
        self._next_check = time.monotonic_ns() + self._recheck_ns
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            self._record = StateRecord(
                TradingState.HALTED, error=f"unreadable: {exc.strerror or exc}"
            )
            self._state_byte = -1
            return
        try:
            st = os.fstat(fd)
            if st.st_size < RECORD_SIZE:
                self._record = StateRecord(
                    TradingState.HALTED, error=f"short file ({st.st_size} bytes)"
                )
                self._state_byte = -1
                return
            self._mm = mmap.mmap(fd, RECORD_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            self._ino = (st.st_dev, st.st_ino)
        except (OSError, ValueError) as exc:
            self._record = StateRecord(TradingState.HALTED, error=f"cannot map: {exc}")
            self._state_byte = -1
            self._close_map()
            return
        finally:
            os.close(fd)
        self._validate()

    def _validate(self) -> None:
        assert self._mm is not None
        self._state_byte = self._mm[STATE_OFFSET]
        self._record = decode(self._mm)

    def _path_changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ino

    def current(self) -> TradingState:
        """Return the state now in force; HALTED when the file is missing or invalid."""
        mm = self._mm
        if mm is None:
            if time.monotonic_ns() >= self._next_check:
                self._open()
            return self._record.state
        if mm[SUPERSEDED_OFFSET]:
            self._open()
        elif mm[STATE_OFFSET] != self._state_byte:
            self._validate()
        elif time.monotonic_ns() >= self._next_check:
            self._next_check = time.monotonic_ns() + self._recheck_ns
            if self._path_changed():
                self._open()
        return self._record.state

    def record(self) -> StateRecord:
        """Return the full record behind ``current()`` (refreshing it first)."""
        self.current()
        return self._record

    def close(self) -> None:
        """Unmap the file."""
        self._close_map()


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an order may go out, and why not."""

    allowed: bool
    reason_code: str


ALLOWED = Decision(True, "OK")


def check_order(
    state: TradingState,
    position: Decimal | int,
    side: str,
    qty: Decimal | int,
    *,
    working_buy: Decimal | int = 0,
    working_sell: Decimal | int = 0,
    max_position: Decimal | int | None = None,
) -> Decision:
    """Decide whether a new order of ``qty`` on ``side`` may be sent.

    ``working_buy``/``working_sell`` are the open quantities of the strategy's
    working orders in the symbol; they count as if filled (worst case).

    - HALTED: nothing (cancels are never checked here: they are always allowed).
    - REDUCING: only an order on the side opposite the position whose quantity,
      plus the working orders on that side, does not exceed the absolute
      position: the worst-case position moves toward zero without crossing it.
    - ACTIVE: allowed unless the worst-case position would pass ``max_position``.
    """
    if state is TradingState.HALTED:
        return Decision(False, "HALTED")
    if qty <= 0:
        return Decision(False, "INVALID_QTY")
    if state is TradingState.REDUCING:
        if side == SELL and position > 0 and working_sell + qty <= position:
            return ALLOWED
        if side == BUY and position < 0 and working_buy + qty <= -position:
            return ALLOWED
        return Decision(False, "REDUCE_ONLY_WOULD_INCREASE_POSITION")
    if state is not TradingState.ACTIVE:  # pragma: no cover - enum is closed
        return Decision(False, "HALTED")
    if max_position is not None:
        if side == BUY and position + working_buy + qty > max_position:
            return Decision(False, "POSITION_LIMIT")
        if side == SELL and position - working_sell - qty < -max_position:
            return Decision(False, "POSITION_LIMIT")
    return ALLOWED


def check_cancel(state: TradingState) -> Decision:
    """Allow a cancel: cancels are allowed in every state."""
    return ALLOWED
