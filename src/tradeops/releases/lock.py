"""The per-host deploy lock: who holds it, since when, for which release.

The lock is a JSON file created with O_EXCL. It is never taken over silently:
a lock older than its TTL, or held by a process that is gone on this same
machine, is reported as stale with its owner, and only an explicit unlock
(with an operator and a reason, audited) removes it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.auditlog import append_audit
from tradeops.releases.fsutil import fsync_dir, write_all

DEFAULT_TTL_S = 3600


class LockHeldError(RuntimeError):
    """The lock is held by someone else."""

    def __init__(self, info: LockInfo) -> None:
        super().__init__(info.describe())
        self.info = info


@dataclass(frozen=True)
class LockInfo:
    """The content of a lock file, and whether it looks stale."""

    owner: str
    pid: int
    host: str
    since: float
    release_id: str
    run_id: str
    stale: bool
    stale_reason: str

    def describe(self) -> str:
        """One line naming the holder, for an operator."""
        age = int(time.time() - self.since)
        text = (
            f"deploy lock held by {self.owner} (pid {self.pid} on {self.host}, run {self.run_id}) "
            f"for release {self.release_id} since {age}s ago"
        )
        return text + (f"; STALE: {self.stale_reason}" if self.stale else "")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "owner": self.owner,
            "pid": self.pid,
            "host": self.host,
            "since": self.since,
            "release_id": self.release_id,
            "run_id": self.run_id,
            "stale": self.stale,
            "stale_reason": self.stale_reason,
        }


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class DeployLock:
    """The lock file of one host."""

    def __init__(self, path: Path, audit_path: Path | None = None, ttl_s: int = DEFAULT_TTL_S):
        self.path = path
        self.audit_path = audit_path
        self.ttl_s = ttl_s

    def read(self) -> LockInfo | None:
        """Return the current holder, or None when unlocked."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        since = _number(data.get("since"))
        host = str(data.get("host", "?"))
        pid = int(_number(data.get("pid")))
        stale_reason = ""
        if not data:
            stale_reason = "unreadable lock file"
        elif time.time() - since > self.ttl_s:
            stale_reason = f"older than {self.ttl_s}s"
        elif host == socket.gethostname() and pid > 0 and not _pid_alive(pid):
            stale_reason = f"pid {pid} is gone"
        return LockInfo(
            owner=str(data.get("owner", "?")),
            pid=pid,
            host=host,
            since=since,
            release_id=str(data.get("release_id", "?")),
            run_id=str(data.get("run_id", "?")),
            stale=bool(stale_reason),
            stale_reason=stale_reason,
        )

    def acquire(self, owner: str, release_id: str, run_id: str, pid: int, host: str) -> bool:
        """Take the lock; True if newly taken, False if this run already holds it.

        Raises LockHeldError when anyone else holds it, stale or not. The lock
        file appears complete or not at all: it is written and fsync'd under a
        temporary name, then hard-linked into place (link(2) fails if it exists).
        """
        record = {
            "owner": owner,
            "pid": pid,
            "host": host,
            "since": time.time(),
            "release_id": release_id,
            "run_id": run_id,
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                write_all(fd, json.dumps(record, sort_keys=True).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            for _attempt in range(3):
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    info = self.read()
                    if info is None:  # released between our link and read: try again
                        continue
                    if info.run_id == run_id and not info.stale:
                        return False
                    raise LockHeldError(info) from None
                break
            else:
                raise RuntimeError(f"{self.path}: the lock keeps changing hands; try again")
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self._audit(
            "lock", owner=owner, release_id=release_id, run_id=run_id, pid=pid, holder_host=host
        )
        return True

    def release(self, run_id: str, operator: str, reason: str = "", force: bool = False) -> bool:
        """Remove the lock; True if removed. Only its run may, unless ``force``.

        A forced unlock needs a reason and an audit log; it is always audited.
        """
        info = self.read()
        if info is None:
            return False
        if info.run_id != run_id and not force:
            raise LockHeldError(info)
        if force and not reason.strip():
            raise ValueError("a forced unlock needs a reason")
        if force and self.audit_path is None:
            raise ValueError("a forced unlock must be audited: no audit log is configured")
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self._audit(
            "unlock",
            owner=operator,
            reason=reason,
            forced=force,
            previous_holder=info.as_dict(),
        )
        return True

    def _audit(self, event: str, **fields: Any) -> None:
        if self.audit_path is None:
            return
        append_audit(self.audit_path, "release", event, **fields)
