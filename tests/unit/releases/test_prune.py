"""Pruning: keep N in log order, never the active release or the rollback target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tradeops.releases.activation import activate
from tradeops.releases.fsutil import swap_symlink
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.prune import plan_prune, prune
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import stage
from tradeops.testing.artifacts import craft_artifact

IDS = ("r1", "r2", "r3", "r4", "r5")
ANCIENT = 86_400  # 1970-01-02
FUTURE = 4_102_444_800  # 2100-01-01


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """Five releases staged in order r1..r5; r2 was active, then r1 (a rollback)."""
    root = tmp_path / "root"
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    host = Layout.at(root)
    for rid in IDS:
        stage(host, craft_artifact(tmp_path / f"{rid}.tar.gz", rid), rid)
    activate(host, "r2")
    activate(host, "r1")
    return host


def present(layout: Layout) -> list[str]:
    return sorted(p.name for p in layout.releases.iterdir() if not p.name.startswith("."))


def set_mtimes(layout: Layout, times: dict[str, int]) -> None:
    for rid, when in times.items():
        release = layout.releases / rid
        for path in [release, *release.rglob("*")]:
            os.utime(path, (when, when), follow_symlinks=False)


def test_fixture_state(layout: Layout) -> None:
    log = ReleaseLog(layout.release_log)
    assert layout.current_release() == "r1"
    assert log.rollback_target("r1") == "r2"
    assert [r.release_id for r in log.ordered()] == list(IDS)


@pytest.mark.parametrize(
    "mtimes",
    [
        # Active and rollback target look the oldest on disk ...
        {"r1": ANCIENT, "r2": ANCIENT + 1, "r3": FUTURE, "r4": FUTURE, "r5": FUTURE},
        # ... or the newest, with the truly newest looking ancient.
        {"r1": FUTURE, "r2": FUTURE, "r3": FUTURE, "r4": FUTURE, "r5": ANCIENT},
    ],
)
def test_prune_ignores_mtimes_and_protects_active_and_rollback(
    layout: Layout, mtimes: dict[str, int]
) -> None:
    set_mtimes(layout, mtimes)
    plan = prune(layout, keep=1)
    assert plan.remove == ["r3", "r4"]
    assert plan.keep == {"r1": "active", "r2": "rollback target", "r5": "among the newest 1"}
    assert plan.unknown == []
    assert present(layout) == ["r1", "r2", "r5"]
    log = ReleaseLog(layout.release_log)
    assert {rid: log.status_of(rid) for rid in IDS} == {
        "r1": "active",
        "r2": "previous",
        "r3": "pruned",
        "r4": "pruned",
        "r5": "staged",
    }
    assert sorted(p.name for p in layout.staging.iterdir()) == []
    assert os.readlink(layout.current) == "releases/r1"


def test_keep_more_than_present_removes_nothing(layout: Layout) -> None:
    plan = prune(layout, keep=5)
    assert plan.remove == []
    assert not plan.changed
    assert present(layout) == list(IDS)


def test_plan_prune_changes_nothing(layout: Layout) -> None:
    before = layout.release_log.read_bytes()
    plan = plan_prune(layout, keep=1)
    assert plan.changed
    assert plan.remove == ["r3", "r4"]
    assert present(layout) == list(IDS)
    assert layout.release_log.read_bytes() == before


def test_prune_is_idempotent(layout: Layout) -> None:
    prune(layout, keep=2)
    after_first = present(layout)
    assert after_first == ["r1", "r2", "r4", "r5"]
    lines = layout.release_log.read_text().count("\n")
    plan = prune(layout, keep=2)
    assert plan.remove == []
    assert present(layout) == after_first
    assert layout.release_log.read_text().count("\n") == lines


def test_unknown_directories_are_reported_and_left_alone(layout: Layout) -> None:
    handmade = layout.releases / "handmade"
    handmade.mkdir()
    (handmade / "notes.txt").write_text("not a release")
    os.utime(handmade, (ANCIENT, ANCIENT))
    (layout.staging / "r9.partial").mkdir()
    plan = prune(layout, keep=1)
    assert plan.unknown == ["handmade"]
    assert "handmade" not in plan.remove
    assert "handmade" not in plan.keep
    assert (handmade / "notes.txt").read_text() == "not a release"
    assert (layout.staging / "r9.partial").is_dir()  # staging's business, not prune's
    assert present(layout) == ["handmade", "r1", "r2", "r5"]


def test_release_logged_as_pruned_but_present_is_left_alone(layout: Layout) -> None:
    ReleaseLog(layout.release_log).append("r3", "pruned")
    plan = prune(layout, keep=1)
    assert plan.unknown == ["r3"]
    assert plan.remove == ["r4"]
    assert (layout.releases / "r3").is_dir()


def test_release_active_in_the_log_is_kept_after_a_swap_crash(layout: Layout) -> None:
    # Crash between swap and log: current -> r5 but the log still says r1 is active.
    swap_symlink(layout.current, "releases/r5")
    plan = prune(layout, keep=1)
    assert plan.keep["r5"] == "active"
    assert plan.keep["r1"] == "active in the release log"
    assert plan.keep["r2"] == "rollback target"
    assert plan.remove == ["r3", "r4"]
    assert present(layout) == ["r1", "r2", "r5"]


def test_bad_and_rolled_back_releases_can_be_pruned(layout: Layout) -> None:
    activate(layout, "r5")  # r1 becomes the rollback target
    log = ReleaseLog(layout.release_log)
    log.append("r3", "bad")
    log.append("r2", "rolled-back")
    assert log.rollback_target("r5") == "r1"
    plan = prune(layout, keep=1)
    assert plan.remove == ["r2", "r3", "r4"]
    assert plan.keep == {"r1": "rollback target", "r5": "active"}


def test_interrupted_prune_is_finished(layout: Layout) -> None:
    # A crash after r3 was renamed out of releases/, before the log said so.
    (layout.releases / "r3").rename(layout.staging / "r3.prune")
    plan = prune(layout, keep=1)
    assert plan.remove == ["r4"]
    assert not (layout.staging / "r3.prune").exists()
    assert ReleaseLog(layout.release_log).status_of("r3") == "pruned"
    assert sorted(p.name for p in layout.staging.iterdir()) == []
    assert present(layout) == ["r1", "r2", "r5"]


def test_an_interrupted_prune_is_work_even_when_nothing_else_is_due(layout: Layout) -> None:
    # The same request re-run after the crash: keep is large, so no release is due.
    (layout.releases / "r3").rename(layout.staging / "r3.prune")
    plan = plan_prune(layout, keep=50)
    assert (plan.remove, plan.unfinished, plan.changed) == ([], ["r3"], True)
    assert (layout.staging / "r3.prune").is_dir()  # the plan changes nothing
    prune(layout, keep=50)
    assert not (layout.staging / "r3.prune").exists()
    assert ReleaseLog(layout.release_log).status_of("r3") == "pruned"
    assert plan_prune(layout, keep=50).changed is False


def test_a_pruned_release_can_be_staged_again(layout: Layout, tmp_path: Path) -> None:
    prune(layout, keep=1)
    stage(layout, craft_artifact(tmp_path / "again.tar.gz", "r3"), "r3")
    log = ReleaseLog(layout.release_log)
    assert log.status_of("r3") == "staged"
    assert [r.release_id for r in log.ordered() if r.status != "pruned"][-1] == "r3"
    # Now the newest by the log: kept, while r5 (staged before it) goes.
    plan = plan_prune(layout, keep=1)
    assert plan.keep.get("r3") == "among the newest 1"
    assert plan.remove == ["r5"]


def test_an_interrupted_prune_of_a_release_staged_again_leaves_its_log_alone(
    layout: Layout, tmp_path: Path
) -> None:
    """Crash mid-prune of r3; r3 is then staged again and activated (a rollback by
    redeploy). Finishing the old removal must not log the live r3 as pruned."""
    (layout.releases / "r3").rename(layout.staging / "r3.prune")
    ReleaseLog(layout.release_log).append("r3", "pruned")
    stage(layout, craft_artifact(tmp_path / "again.tar.gz", "r3"), "r3")
    activate(layout, "r3")
    prune(layout, keep=1)
    assert not (layout.staging / "r3.prune").exists()
    assert (layout.releases / "r3").is_dir()
    assert ReleaseLog(layout.release_log).status_of("r3") == "active"


def test_keep_must_be_positive(layout: Layout) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_prune(layout, keep=0)


def test_empty_host(tmp_path: Path) -> None:
    host = Layout.at(tmp_path / "nothing-here")
    plan = prune(host, keep=1)
    assert (plan.remove, plan.keep, plan.unknown) == ([], {}, [])
