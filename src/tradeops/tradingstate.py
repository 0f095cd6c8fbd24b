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
import threading
import weakref
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
    "InPlacePublisher",
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
    path: str | os.PathLike[str], state: TradingState, reason: str = "", who: str = ""
) -> StateRecord | None:
    """Overwrite the live file's record in place, so that a trip is seen at once.

    Every strategy maps the file: the new record is in the page they read, at
    their next check, with no rename to wait for. It survives the writer's
    crash (it is in the page cache) but not a power cut: follow it with
    :func:`write_state` (so a trip advances the generation by two). A reader
    that catches the 64 bytes half written fails the CRC and reads HALTED,
    which is where a trip goes anyway. Returns the record it replaced, or None
    when there is no valid file to write in (then only :func:`write_state`
    can publish). A writer on the halt's path keeps an :class:`InPlacePublisher`
    instead, whose files stay open.
    """
    publisher = InPlacePublisher(path)
    try:
        return publisher.publish(state, reason, who)
    finally:
        publisher.close()


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class InPlacePublisher:
    """Publish records in place (see :func:`publish_in_place`), the files kept open.

    The lock file and the live file are opened once, not per publish (two
    opens and two closes less on the path). The live file's descriptor is
    used while it still is the file at ``path``: :func:`write_state`, which
    replaces the file under the same lock, marks the old one superseded, and
    that byte is read with the record; a file replaced by anything else (a
    restore) is caught after the write by comparing the path's inode, and the
    record is written again in the new file. A writer that replaces the file
    itself calls :meth:`reopen` after: the last close of a replaced file frees
    it (100 µs and more), which belongs off the halt's path; a replaced file
    found on the path is closed only after the write. Thread-safe; the
    descriptors are closed by :meth:`close` or when the publisher is collected.
    """

    ATTEMPTS = 2  # the cached file, then the path opened again

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._mutex = threading.Lock()
        self._fds: dict[str, int] = {}  # "lock", "live"
        self._closer = weakref.finalize(self, _close_all, self._fds)

    def publish(self, state: TradingState, reason: str = "", who: str = "") -> StateRecord | None:
        """Write ``state`` in place; the record it replaced, or None (see publish_in_place)."""
        stale: list[int] = []
        try:
            with self._mutex:
                try:
                    lock = self._fds.get("lock")
                    if lock is None:
                        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                        lock = self._fds["lock"] = os.open(self.path + ".lock", flags, 0o644)
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        return self._publish_locked(state, reason, who, stale)
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
                except OSError:
                    stale.extend(self._fds.values())  # opened afresh next time
                    self._fds.clear()
                    return None
        finally:
            for fd in stale:  # after the write: closing a replaced file frees it
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _publish_locked(
        self, state: TradingState, reason: str, who: str, stale: list[int]
    ) -> StateRecord | None:
        for _attempt in range(self.ATTEMPTS):
            live = self._fds.get("live")
            if live is None:
                live = self._fds["live"] = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            raw = os.pread(live, RECORD_SIZE, 0)
            if len(raw) > SUPERSEDED_OFFSET and raw[SUPERSEDED_OFFSET]:
                stale.append(self._fds.pop("live"))  # replaced by write_state: open the path
                continue
            current = decode(raw)
            if current.error:
                return None
            os.pwrite(live, encode(state, current.generation + 1, reason, who), 0)
            mine, named = os.fstat(live), os.stat(self.path)
            if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino):
                return current
            stale.append(self._fds.pop("live"))  # replaced behind the lock: write in the new one
        return None

    def reopen(self) -> None:
        """Open the file now at ``path`` (the caller just replaced it); close the old one here."""
        with self._mutex:
            old = self._fds.pop("live", None)
            with contextlib.suppress(OSError):
                self._fds["live"] = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            if old is not None:
                os.close(old)

    def close(self) -> None:
        """Close the files (a later publish opens them again)."""
        with self._mutex:
            _close_all(self._fds)
