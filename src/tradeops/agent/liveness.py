"""The agent's side of the liveness heartbeat: rewrite the record in place, every interval.

The format and the reader are in ``tradeops_client.liveness`` (one truth,
shipped inside every release). The writer keeps one file, the same inode
across restarts, and rewrites its 36 bytes through a shared mapping, so a
strategy that mapped it once sees every beat with no system call. On a
graceful stop it writes a beat of time 0, so readers see the agent gone at
once rather than after their limit.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

from tradeops_client.liveness import DEFAULT_RELATIVE_PATH, RECORD_SIZE, encode

__all__ = ["DEFAULT_RELATIVE_PATH", "LivenessWriter"]


class LivenessWriter:
    """Owns ``path`` (mode 0644) and writes one beat per ``beat()`` call."""

    def __init__(self, path: str | os.PathLike[str], interval_s: float) -> None:
        self.path = Path(path)
        self.interval_us = max(1, int(interval_s * 1e6))
        self.pid = os.getpid()
        self.sequence = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            os.fchmod(fd, 0o644)  # strategies of another user read it
            # Keep the inode (readers of a previous agent keep their mapping); drop any
            # bytes of another writer's format beyond ours.
            os.ftruncate(fd, RECORD_SIZE)
            self._mm: mmap.mmap | None = mmap.mmap(fd, RECORD_SIZE, mmap.MAP_SHARED)
        finally:
            os.close(fd)

    def beat(self) -> int:
        """Publish a beat of now (``time.monotonic_ns``); return its sequence."""
        return self._write(time.monotonic_ns())

    def _write(self, monotonic_ns: int) -> int:
        if self._mm is None:
            raise ValueError("the liveness writer is closed")
        self.sequence += 1
        self._mm[:RECORD_SIZE] = encode(self.pid, self.interval_us, monotonic_ns, self.sequence)
        return self.sequence

    def close(self, stopped: bool = True) -> None:
        """Unmap; with ``stopped``, first publish "gone" (time 0) so readers halt at once."""
        if self._mm is None:
            return
        if stopped:
            self._write(0)
            self._mm.flush()
        self._mm.close()
        self._mm = None
