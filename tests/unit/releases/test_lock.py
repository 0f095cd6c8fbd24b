"""The per-host deploy lock: holder record, re-acquire, refusal, staleness, audited unlock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tradeops.releases.lock import DeployLock, LockHeldError

HOST = socket.gethostname()


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def dead_pid() -> int:
    """The pid of a child process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(child.stdout)


@pytest.fixture
def lock(tmp_path: Path) -> DeployLock:
    return DeployLock(tmp_path / "deploy.lock", audit_path=tmp_path / "audit.jsonl")


def take(lock: DeployLock, run_id: str = "run-1", **overrides: Any) -> bool:
    args: dict[str, Any] = {
        "owner": "alice",
        "release_id": "r1",
        "run_id": run_id,
        "pid": os.getpid(),
        "host": HOST,
    }
    args.update(overrides)
    return lock.acquire(**args)


def rewrite(lock: DeployLock, **changes: Any) -> None:
    data = json.loads(lock.path.read_text())
    data.update(changes)
    lock.path.write_text(json.dumps(data))


def test_acquire_records_the_holder(lock: DeployLock) -> None:
    before = time.time()
    assert take(lock) is True
    data = json.loads(lock.path.read_text())
    assert data["owner"] == "alice"
    assert data["pid"] == os.getpid()
    assert data["host"] == HOST
    assert data["release_id"] == "r1"
    assert data["run_id"] == "run-1"
    assert before <= data["since"] <= time.time()
    info = lock.read()
    assert info is not None
    assert (info.owner, info.release_id, info.run_id, info.stale) == ("alice", "r1", "run-1", False)
    # Only the lock file (and the audit log) are left: no temp file.
    assert sorted(p.name for p in lock.path.parent.iterdir()) == ["audit.jsonl", "deploy.lock"]
    (event,) = audit_lines(lock.audit_path)  # type: ignore[arg-type]
    assert (event["event"], event["owner"], event["run_id"], event["release_id"]) == (
        "lock",
        "alice",
        "run-1",
        "r1",
    )
    assert event["host"] == HOST
    assert event["component"] == "release"


def test_same_run_reacquires_without_change(lock: DeployLock) -> None:
    take(lock)
    content = lock.path.read_bytes()
    assert take(lock, owner="alice-again") is False
    assert lock.path.read_bytes() == content
    assert len(audit_lines(lock.audit_path)) == 1  # type: ignore[arg-type]


def test_another_run_is_refused_with_the_holder_named(lock: DeployLock) -> None:
    take(lock)
    with pytest.raises(LockHeldError) as caught:
        take(lock, run_id="run-2", owner="bob", release_id="r2")
    assert caught.value.info.owner == "alice"
    assert caught.value.info.release_id == "r1"
    message = str(caught.value)
    assert "alice" in message
    assert "run-1" in message
    assert "release r1" in message
    assert "STALE" not in message
    assert json.loads(lock.path.read_text())["run_id"] == "run-1"


def test_stale_by_ttl_is_reported_never_taken_over(lock: DeployLock) -> None:
    take(lock)
    rewrite(lock, since=time.time() - 2 * lock.ttl_s)
    info = lock.read()
    assert info is not None
    assert info.stale
    assert info.stale_reason == f"older than {lock.ttl_s}s"
    for run_id in ("run-2", "run-1"):
        with pytest.raises(LockHeldError, match="STALE: older than"):
            take(lock, run_id=run_id)
    assert json.loads(lock.path.read_text())["run_id"] == "run-1"


def test_stale_by_dead_pid_on_this_host(lock: DeployLock) -> None:
    pid = dead_pid()
    take(lock, pid=pid)
    info = lock.read()
    assert info is not None
    assert info.stale
    assert info.stale_reason == f"pid {pid} is gone"
    with pytest.raises(LockHeldError, match=f"STALE: pid {pid} is gone"):
        take(lock, run_id="run-2")


def test_dead_pid_on_another_host_is_not_judged(lock: DeployLock) -> None:
    take(lock, pid=dead_pid(), host="some-other-host.invalid")
    info = lock.read()
    assert info is not None
    assert not info.stale


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2, 3]", '"text"', "\udcff"])
def test_unreadable_lock_file_is_stale_and_still_blocks(lock: DeployLock, content: str) -> None:
    lock.path.write_bytes(content.encode("utf-8", "surrogateescape"))
    info = lock.read()
    assert info is not None
    assert info.stale
    assert info.stale_reason == "unreadable lock file"
    with pytest.raises(LockHeldError):
        take(lock)


def test_garbage_fields_do_not_crash_read(lock: DeployLock) -> None:
    lock.path.write_text(json.dumps({"owner": "x", "pid": "abc", "since": "yesterday"}))
    info = lock.read()
    assert info is not None
    assert info.pid == 0
    assert info.stale  # since=0: older than any TTL


def test_release_by_the_holder(lock: DeployLock) -> None:
    take(lock)
    assert lock.release("run-1", operator="alice") is True
    assert not lock.path.exists()
    assert lock.read() is None
    event = audit_lines(lock.audit_path)[-1]  # type: ignore[arg-type]
    assert (event["event"], event["forced"], event["owner"]) == ("unlock", False, "alice")
    assert event["previous_holder"]["run_id"] == "run-1"
    assert take(lock, run_id="run-2") is True
    assert lock.release("nobody", operator="x", force=True, reason="cleanup") is True
    assert lock.release("run-2", operator="alice") is False  # nothing to release


def test_release_by_another_run_needs_force_and_a_reason(lock: DeployLock) -> None:
    take(lock)
    with pytest.raises(LockHeldError):
        lock.release("run-2", operator="bob")
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="needs a reason"):
            lock.release("run-2", operator="bob", force=True, reason=reason)
    assert json.loads(lock.path.read_text())["run_id"] == "run-1"
    assert [e["event"] for e in audit_lines(lock.audit_path)] == ["lock"]  # type: ignore[arg-type]
    assert lock.release("run-2", operator="bob", force=True, reason="alice's run died") is True
    assert not lock.path.exists()
    event = audit_lines(lock.audit_path)[-1]  # type: ignore[arg-type]
    assert event["event"] == "unlock"
    assert event["forced"] is True
    assert event["owner"] == "bob"
    assert event["reason"] == "alice's run died"
    assert event["previous_holder"]["owner"] == "alice"
    assert event["previous_holder"]["run_id"] == "run-1"


def test_forced_unlock_of_a_stale_lock(lock: DeployLock) -> None:
    take(lock, pid=dead_pid())
    assert lock.release("run-9", operator="ops", force=True, reason="holder crashed") is True
    event = audit_lines(lock.audit_path)[-1]  # type: ignore[arg-type]
    assert event["previous_holder"]["stale"] is True
    assert event["previous_holder"]["stale_reason"].startswith("pid ")


def test_forced_unlock_without_an_audit_log_is_refused(tmp_path: Path) -> None:
    lock = DeployLock(tmp_path / "deploy.lock")
    take(lock)
    with pytest.raises(ValueError, match="must be audited"):
        lock.release("run-2", operator="bob", force=True, reason="why not")
    assert lock.path.exists()
    assert lock.release("run-1", operator="alice") is True
