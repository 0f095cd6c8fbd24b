"""The host's trading state: the writer, and the format and reader from the strategy client.

The format, its compatibility rules and the reader live in
``tradeops_client.tradingstate`` (one truth, shipped inside every release);
this module adds what only the host does: write the file atomically, and name
its path under the tradeops root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from tradeops_client.tradingstate import (
    DEFAULT_RELATIVE_PATH,
    FORMAT_MINOR,
    FORMAT_VERSION,
    MAGIC,
    MINOR_OFFSET,
    RECORD_SIZE,
    STATE_OFFSET,
    SUPERSEDED_OFFSET,
    Decision,
    StateRecord,
    TradingState,
    TradingStateReader,
    check_cancel,
    check_order,
    decode,
    encode,
    read_state,
)

__all__ = [
    "DEFAULT_RELATIVE_PATH",
    "FORMAT_MINOR",
    "FORMAT_VERSION",
    "MAGIC",
    "MINOR_OFFSET",
    "RECORD_SIZE",
    "STATE_OFFSET",
    "SUPERSEDED_OFFSET",
    "Decision",
    "StateRecord",
    "TradingState",
    "TradingStateReader",
    "check_cancel",
    "check_order",
    "decode",
    "default_path",
    "encode",
    "publish_in_place",
    "read_state",
    "write_state",
]


def default_path(tradeops_root: str | os.PathLike[str]) -> Path:
    """Return ``<tradeops_root>/state/trading_state``."""
    return Path(tradeops_root) / DEFAULT_RELATIVE_PATH


def write_state(
    path: str | os.PathLike[str],
    state: TradingState | str,
    reason: str = "",
    who: str = "",
    keep_stricter: bool = False,
) -> StateRecord:
    """Atomically replace the state file and return the record written.

    Writers are serialised by a lock file next to it; the generation is one more
    than the current file's (1 for a new or invalid file). ``keep_stricter``:
    when the current file says something stricter than ``state`` (a halt
    published in place meanwhile), write that record's state, reason and who
    instead: a trip's late durable write must never loosen a newer halt.
    """
    if isinstance(state, str):
        state = TradingState[state.upper()]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        old_fd: int | None = None
        with contextlib.suppress(OSError):
            old_fd = os.open(target, os.O_RDWR)
        try:
            previous = decode(os.pread(old_fd, RECORD_SIZE, 0)) if old_fd is not None else None
            valid = previous is not None and not previous.error
            generation = (previous.generation if previous and valid else 0) + 1
            if keep_stricter and previous is not None and valid and previous.state > state:
                state, reason, who = previous.state, previous.reason, previous.who
            data = encode(state, generation, reason, who)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            if old_fd is not None:
                # Tell readers that still map the old file to reopen the path.
                with contextlib.suppress(OSError):
                    os.pwrite(old_fd, b"\x01", SUPERSEDED_OFFSET)
        finally:
            if old_fd is not None:
                os.close(old_fd)
    return decode(data)


def publish_in_place(
    path: str | os.PathLike[str],
    state: TradingState,
    reason: str = "",
    who: str = "",
    lock_fd: int | None = None,
) -> StateRecord | None:
    """Overwrite the live file's record in place, so that a trip is seen at once.

    Every strategy maps the file: the new record is in the page they read, at
    their next check, with no rename to wait for. It survives the writer's
    crash (it is in the page cache) but not a power cut: follow it with
    :func:`write_state` (so a trip advances the generation by two). A reader
    that catches the 64 bytes half written fails the CRC and reads HALTED,
    which is where a trip goes anyway. Returns the record it replaced, or None
    when there is no valid file to write in (then only :func:`write_state`
    can publish). ``lock_fd``: the lock file, already open (a writer on the
    halt's path keeps it open; the lock file is never replaced).
    """
    target = os.fspath(path)
    try:
        # Plain descriptors, no file objects: this is on the halt's path.
        lock = (
            os.open(target + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if lock_fd is None
            else lock_fd
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = os.open(target, os.O_RDWR | os.O_CLOEXEC)
            try:
                current = decode(os.pread(fd, RECORD_SIZE, 0))
                if current.error:
                    return None
                os.pwrite(fd, encode(state, current.generation + 1, reason, who), 0)
            finally:
                os.close(fd)
        finally:
            if lock_fd is None:
                os.close(lock)  # releases the lock
            else:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError:
        return None
    return current
