"""What a host really runs: drift from the release log, an interrupted activation, the lock."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tradeops.releases.hoststate import read_host_state
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.lock import DeployLock
from tradeops.releases.releaselog import ReleaseLog


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    for rel in LAYOUT_DIRS:
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
    lay = Layout.at(tmp_path)
    log = ReleaseLog(lay.release_log)
    for rid in ("r1", "r2"):
        (lay.releases / rid).mkdir()
        log.append(rid, "staged", version=rid, digest="d" * 64)
    log.append("r1", "previous")
    log.append("r2", "active")
    point(lay, "r2")
    return lay


def point(layout: Layout, rid: str) -> None:
    tmp = layout.root / "current.tmp"
    tmp.symlink_to(f"releases/{rid}")
    os.replace(tmp, layout.current)


def test_a_host_the_log_explains_has_no_drift(layout: Layout) -> None:
    state = read_host_state(layout)
    assert state["current"] == "r2"
    assert state["current_status"] == "active"
    assert state["log_active"] == ["r2"]
    assert state["rollback_target"] == "r1"
    assert (state["drift"], state["pending"], state["lock"]) == (None, None, None)


def test_a_hand_made_copy_swapped_in_is_drift_and_never_a_rollback_target(layout: Layout) -> None:
    # Finding 1 of issue 10: a copy of the active release under another name.
    (layout.releases / "r2-copy").mkdir()
    point(layout, "r2-copy")
    state = read_host_state(layout)
    assert state["drift"] == (
        "current -> r2-copy, a release directory the release log has never staged"
    )
    assert state["rollback_target"] is None
    assert state["pending"] is None


def test_a_link_outside_releases_is_drift(layout: Layout, tmp_path: Path) -> None:
    os.unlink(layout.current)
    layout.current.symlink_to(tmp_path / "shared")
    assert "not a release directory under releases/" in read_host_state(layout)["drift"]


def test_a_pruned_release_under_current_is_drift(layout: Layout) -> None:
    ReleaseLog(layout.release_log).append("r2", "pruned")
    assert (
        read_host_state(layout)["drift"] == "current -> r2, which the release log says was pruned"
    )


def test_an_activation_a_crash_interrupted_is_pending_not_drift(layout: Layout) -> None:
    (layout.releases / "r3").mkdir()
    ReleaseLog(layout.release_log).append("r3", "staged", version="r3", digest="e" * 64)
    point(layout, "r3")  # swapped; the crash came before the log line
    state = read_host_state(layout)
    assert state["drift"] is None
    assert state["pending"] == "current -> r3, while the release log still says r2 is active"


def test_the_lock_holder_is_read(layout: Layout) -> None:
    DeployLock(layout.deploy_lock).acquire("alice", "r3", "run-9", 4242, socket.gethostname())
    lock = read_host_state(layout)["lock"]
    assert (lock["owner"], lock["run_id"], lock["pid"]) == ("alice", "run-9", 4242)


def test_a_host_with_no_release_yet(tmp_path: Path) -> None:
    for rel in LAYOUT_DIRS:
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
    state = read_host_state(Layout.at(tmp_path))
    assert (state["current"], state["drift"], state["log_active"]) == (None, None, [])
