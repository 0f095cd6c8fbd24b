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


def staged_host(tmp_path: Path) -> Layout:
    """A host whose release A was really staged and activated (MANIFEST and log digest)."""
    from tests.unit.releases.test_staging import craft_artifact, make_layout
    from tradeops.releases.activation import activate
    from tradeops.releases.staging import stage

    lay = make_layout(tmp_path / "host")
    stage(lay, craft_artifact(tmp_path / "a.tar.gz"), "A")
    activate(lay, "A")
    return lay


def test_verify_current_passes_on_the_release_as_staged(tmp_path: Path) -> None:
    state = read_host_state(staged_host(tmp_path), verify_current=True)
    assert (state["current"], state["altered"], state["verified"]) == ("A", None, True)


def test_without_verify_current_nothing_is_hashed(tmp_path: Path) -> None:
    state = read_host_state(staged_host(tmp_path))
    assert (state["altered"], state["verified"]) == (None, False)


def test_a_byte_flipped_in_the_live_release_is_altered(tmp_path: Path) -> None:
    lay = staged_host(tmp_path)
    target = lay.releases / "A" / "site/pkg/__init__.py"
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    with open(target, "r+b") as handle:  # in place, the inode the release has
        handle.write(bytes(data))
    state = read_host_state(lay, verify_current=True)
    assert state["altered"] == (
        "A: changed on disk since it was staged (sha256 mismatch: site/pkg/__init__.py)"
    )
    assert state["verified"] is False
    assert state["drift"] is None


def test_a_manifest_rewritten_to_match_the_change_is_still_altered(tmp_path: Path) -> None:
    import dataclasses
    import hashlib

    from tradeops.releases.manifest import MANIFEST_NAME, Manifest

    lay = staged_host(tmp_path)
    release = lay.releases / "A"
    changed = b"VALUE = 666\n"
    (release / "site/pkg/__init__.py").write_bytes(changed)
    old = Manifest.load(release)
    files = {**old.files, "site/pkg/__init__.py": hashlib.sha256(changed).hexdigest()}
    (release / MANIFEST_NAME).write_text(dataclasses.replace(old, files=files).to_json())
    state = read_host_state(lay, verify_current=True)
    assert "its MANIFEST has sha256" in str(state["altered"])
    assert "the release log staged" in str(state["altered"])


def test_a_repair_that_replaces_drift_never_makes_the_unlogged_copy_a_rollback_target(
    tmp_path: Path,
) -> None:
    """Issue 10, finding 1: the cutover used to log the hand-made copy as ``previous``."""
    import shutil

    from tests.unit.releases.test_staging import FILES, craft_artifact
    from tradeops.releases.activation import activate
    from tradeops.releases.staging import stage

    lay = staged_host(tmp_path)
    shutil.copytree(lay.releases / "A", lay.releases / "A-copy", symlinks=True)
    point(lay, "A-copy")
    assert read_host_state(lay)["drift"] is not None
    changed = {**FILES, "REVISION": b"2.0\n"}
    stage(lay, craft_artifact(tmp_path / "b.tar.gz", changed, version="2.0"), "B")
    activate(lay, "B")
    view = ReleaseLog(lay.release_log).releases()
    assert (view["A-copy"].status, view["A"].status, view["B"].status) == (
        "rolled-back",
        "previous",
        "active",
    )
    state = read_host_state(lay, verify_current=True)
    assert (state["rollback_target"], state["drift"], state["verified"]) == ("A", None, True)
