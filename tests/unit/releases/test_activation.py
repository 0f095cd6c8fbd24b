"""Activation: atomic swap of ``current``, refusals, idempotence, log repair after a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tradeops.releases.activation import (
    ActivationError,
    activate,
    plan_activate,
    verified_manifest,
)
from tradeops.releases.fsutil import swap_symlink
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.manifest import MANIFEST_NAME
from tradeops.releases.prune import prune, remove_release
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import StageError, stage
from tradeops.testing.artifacts import craft_artifact


def make_layout(tmp_path: Path) -> Layout:
    root = tmp_path / "root"
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return Layout.at(root)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A host with releases A, B and C staged and nothing active."""
    host = make_layout(tmp_path)
    for rid in ("A", "B", "C"):
        stage(host, craft_artifact(tmp_path / f"{rid}.tar.gz", f"{rid}-1.0"), rid)
    return host


def statuses(layout: Layout) -> dict[str, str]:
    return {rid: rec.status for rid, rec in ReleaseLog(layout.release_log).releases().items()}


def log_lines(layout: Layout) -> list[tuple[str, str]]:
    return [(e["release_id"], e["status"]) for e in ReleaseLog(layout.release_log).entries()]


def test_first_activation(layout: Layout) -> None:
    plan = activate(layout, "A")
    assert (plan.previous, plan.changed, plan.log_repair, plan.swap) == (None, True, False, True)
    assert plan.version == "A-1.0"
    assert os.readlink(layout.current) == "releases/A"
    assert layout.current.resolve() == (layout.releases / "A").resolve()
    assert statuses(layout) == {"A": "active", "B": "staged", "C": "staged"}
    assert plan.diff(layout)["before"] == ""
    assert plan.diff(layout)["after"].endswith("current -> releases/A\n")


def test_plan_activate_changes_nothing(layout: Layout) -> None:
    activate(layout, "A")
    before = layout.release_log.read_bytes()
    plan = plan_activate(layout, "B")
    assert (plan.previous, plan.changed, plan.swap) == ("A", True, True)
    assert os.readlink(layout.current) == "releases/A"
    assert layout.release_log.read_bytes() == before
    assert plan.diff(layout)["before"].endswith("current -> releases/A\n")


def test_activation_is_idempotent(layout: Layout) -> None:
    activate(layout, "A")
    inode = os.lstat(layout.current).st_ino
    lines = log_lines(layout)
    plan = activate(layout, "A")
    assert (plan.changed, plan.swap, plan.log_repair, plan.previous) == (False, False, False, None)
    assert os.lstat(layout.current).st_ino == inode  # the link was not recreated
    assert log_lines(layout) == lines


def test_switching_records_previous_and_rollback_target(layout: Layout) -> None:
    activate(layout, "A")
    plan = activate(layout, "B")
    assert plan.previous == "A"
    assert os.readlink(layout.current) == "releases/B"
    assert statuses(layout) == {"A": "previous", "B": "active", "C": "staged"}
    assert ReleaseLog(layout.release_log).rollback_target("B") == "A"
    activate(layout, "C")
    assert ReleaseLog(layout.release_log).rollback_target("C") == "B"
    # Going back to A: C becomes the rollback target, exactly one release is active.
    activate(layout, "A")
    view = statuses(layout)
    assert view == {"A": "active", "B": "previous", "C": "previous"}
    assert ReleaseLog(layout.release_log).rollback_target("A") == "C"
    assert [s for s in view.values() if s == "active"] == ["active"]
    # No temp link is left next to current.
    assert sorted(p.name for p in layout.root.iterdir() if p.name.startswith(".")) == []


def test_switch_back_logs_the_failed_release_rolled_back(layout: Layout) -> None:
    # A ran, B was deployed after it, B failed its post-verify: switch back to A.
    activate(layout, "C")
    activate(layout, "A")
    activate(layout, "B")
    plan = activate(layout, "A", replaced="rolled-back")
    assert (plan.previous, plan.changed) == ("B", True)
    assert os.readlink(layout.current) == "releases/A"
    assert statuses(layout) == {"A": "active", "B": "rolled-back", "C": "previous"}
    # A later rollback goes to the release before A, never to the one that failed.
    assert ReleaseLog(layout.release_log).rollback_target("A") == "C"
    # B can still be deployed again on purpose.
    activate(layout, "B")
    assert statuses(layout)["B"] == "active"


def test_switch_back_repairs_the_log_with_rolled_back(layout: Layout) -> None:
    activate(layout, "A")
    activate(layout, "B")
    swap_symlink(layout.current, "releases/A")  # the crash: switched back, log not appended
    activate(layout, "A", replaced="rolled-back")
    assert statuses(layout) == {"A": "active", "B": "rolled-back", "C": "staged"}
    assert ReleaseLog(layout.release_log).rollback_target("A") is None


def test_replaced_status_is_checked(layout: Layout) -> None:
    activate(layout, "A")
    with pytest.raises(ActivationError, match="replaced must be previous or rolled-back"):
        activate(layout, "B", replaced="bad")
    assert os.readlink(layout.current) == "releases/A"


def test_bad_release_is_refused(layout: Layout) -> None:
    activate(layout, "A")
    ReleaseLog(layout.release_log).append("B", "bad", reason="drill")
    for action in (plan_activate, activate):
        with pytest.raises(ActivationError, match="marked bad"):
            action(layout, "B")
    assert os.readlink(layout.current) == "releases/A"
    assert statuses(layout)["A"] == "active"


def test_missing_release_is_refused(layout: Layout) -> None:
    with pytest.raises(ActivationError, match="unverified: the release log has no staging"):
        activate(layout, "Z")
    # Logged but its directory is gone.
    shutil.rmtree(layout.releases / "C")
    with pytest.raises(ActivationError, match="not staged"):
        activate(layout, "C")
    assert not layout.current.is_symlink()


def test_pruned_release_is_refused(layout: Layout) -> None:
    ReleaseLog(layout.release_log).append("C", "pruned")
    with pytest.raises(ActivationError, match="unverified"):
        activate(layout, "C")


def test_release_never_logged_is_refused(layout: Layout) -> None:
    shutil.copytree(layout.releases / "A", layout.releases / "X", symlinks=True)
    with pytest.raises(ActivationError, match="no staging of it"):
        activate(layout, "X")
    assert not layout.current.is_symlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "REVISION").write_text("edited\n"), "sha256 mismatch: REVISION"),
        (lambda r: (r / "site" / "extra.py").write_text("x\n"), "extra: site/extra.py"),
        (lambda r: (r / "bin" / "refapp").unlink(), "missing: bin/refapp"),
        (lambda r: (r / MANIFEST_NAME).unlink(), "unverified: no MANIFEST"),
        (lambda r: (r / MANIFEST_NAME).write_text("{}"), "unverified: MANIFEST format"),
        (lambda r: os.symlink("/etc/passwd", r / "site" / "x"), "unverified: .*no symlinks"),
    ],
)
def test_unverified_release_is_refused(layout: Layout, damage, message: str) -> None:
    activate(layout, "A")
    damage(layout.releases / "B")
    with pytest.raises(ActivationError, match=message):
        activate(layout, "B")
    assert os.readlink(layout.current) == "releases/A"
    assert statuses(layout) == {"A": "active", "B": "staged", "C": "staged"}


def test_release_replaced_by_other_content_is_refused(layout: Layout) -> None:
    # releases/B now holds C's (self-consistent) tree: it verifies, but is not what was staged.
    shutil.rmtree(layout.releases / "B")
    shutil.copytree(layout.releases / "C", layout.releases / "B", symlinks=True)
    assert verified_manifest(layout.releases / "B").version == "C-1.0"
    with pytest.raises(ActivationError, match="is not the one staged"):
        activate(layout, "B")


def test_current_that_is_not_a_symlink_is_not_replaced(layout: Layout) -> None:
    layout.current.mkdir()
    (layout.current / "keep").write_text("x")
    with pytest.raises(ActivationError, match="refusing to replace"):
        activate(layout, "A")
    assert (layout.current / "keep").read_text() == "x"


def test_log_repair_after_crash_between_swap_and_log(layout: Layout) -> None:
    activate(layout, "A")
    swap_symlink(layout.current, "releases/B")  # the crash: swapped, log not appended
    inode = os.lstat(layout.current).st_ino
    plan = plan_activate(layout, "B")
    assert (plan.changed, plan.log_repair, plan.swap, plan.previous) == (True, True, False, None)
    activate(layout, "B")
    assert os.lstat(layout.current).st_ino == inode
    assert statuses(layout) == {"A": "previous", "B": "active", "C": "staged"}
    assert ReleaseLog(layout.release_log).rollback_target("B") == "A"
    assert activate(layout, "B").changed is False


def test_log_repair_after_crash_between_the_two_log_appends(layout: Layout) -> None:
    activate(layout, "A")
    swap_symlink(layout.current, "releases/B")
    ReleaseLog(layout.release_log).append("A", "previous")  # then the crash
    activate(layout, "B")
    assert log_lines(layout)[-3:] == [("A", "active"), ("A", "previous"), ("B", "active")]
    assert statuses(layout) == {"A": "previous", "B": "active", "C": "staged"}


def test_current_pointing_at_an_unlogged_active_release_becomes_rollback_target(
    layout: Layout,
) -> None:
    activate(layout, "A")
    swap_symlink(layout.current, "releases/B")  # crash after swapping to B ...
    activate(layout, "C")  # ... and the operator moves on to C instead
    assert statuses(layout) == {"A": "previous", "B": "previous", "C": "active"}
    assert ReleaseLog(layout.release_log).rollback_target("C") == "B"


def test_dangling_current_is_replaced(layout: Layout) -> None:
    os.symlink("releases/gone", layout.current)
    plan = activate(layout, "A")
    assert plan.previous == "gone"
    assert os.readlink(layout.current) == "releases/A"
    assert statuses(layout)["A"] == "active"


def test_leftover_temp_link_from_a_crash_is_cleaned(layout: Layout) -> None:
    os.symlink("releases/B", layout.root / ".current.new.424242")
    activate(layout, "A")
    assert not (layout.root / ".current.new.424242").is_symlink()
    assert os.readlink(layout.current) == "releases/A"


def test_custom_links_are_ignored_by_verification(tmp_path: Path) -> None:
    host = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz", "1.0")
    stage(host, artifact, "A", links={"data": "log"})
    with pytest.raises(ActivationError, match="no symlinks: data"):
        activate(host, "A")
    activate(host, "A", links=frozenset({"data"}))
    assert os.readlink(host.current) == "releases/A"


def _change_a_byte(release: Path) -> None:
    data = bytearray((release / "REVISION").read_bytes())
    data[0] ^= 0x01
    (release / "REVISION").write_bytes(bytes(data))


def test_unhashed_activation_refuses_missing_and_extra_files(layout: Layout) -> None:
    activate(layout, "A", verify=False)
    (layout.releases / "B" / "site" / "extra.py").write_text("x\n")
    (layout.releases / "C" / "bin" / "refapp").unlink()
    with pytest.raises(ActivationError, match=r"extra: site/extra\.py"):
        activate(layout, "B", verify=False)
    with pytest.raises(ActivationError, match="missing: bin/refapp"):
        plan_activate(layout, "C", verify=False)
    assert os.readlink(layout.current) == "releases/A"
    assert statuses(layout) == {"A": "active", "B": "staged", "C": "staged"}


def test_unhashed_activation_does_not_see_a_changed_byte_but_full_does(layout: Layout) -> None:
    activate(layout, "A")
    _change_a_byte(layout.releases / "B")
    with pytest.raises(ActivationError, match="sha256 mismatch: REVISION"):
        plan_activate(layout, "B")  # verify=True is the default
    with pytest.raises(ActivationError, match="sha256 mismatch: REVISION"):
        activate(layout, "B", verify=True)
    assert os.readlink(layout.current) == "releases/A"
    plan = activate(layout, "B", verify=False)
    assert (plan.previous, plan.changed) == ("A", True)
    assert os.readlink(layout.current) == "releases/B"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda h: ReleaseLog(h.release_log).append("B", "bad"), "marked bad"),
        (lambda h: ReleaseLog(h.release_log).append("B", "pruned"), "no staging of it"),
        (lambda h: (h.releases / "B" / MANIFEST_NAME).unlink(), "unverified: no MANIFEST"),
        (
            lambda h: os.symlink("/etc/passwd", h.releases / "B" / "site" / "x"),
            "unverified: .*no symlinks",
        ),
        (
            lambda h: (
                shutil.rmtree(h.releases / "B"),
                shutil.copytree(h.releases / "C", h.releases / "B", symlinks=True),
            ),
            "is not the one staged",
        ),
    ],
)
def test_unhashed_activation_keeps_every_other_refusal(
    layout: Layout, damage, message: str
) -> None:
    damage(layout)
    with pytest.raises(ActivationError, match=message):
        activate(layout, "B", verify=False)
    assert not layout.current.is_symlink()
    with pytest.raises(ActivationError, match="no staging of it"):
        activate(layout, "Z", verify=False)


def test_verified_manifest_without_hashing(layout: Layout) -> None:
    release = layout.releases / "A"
    _change_a_byte(release)
    assert verified_manifest(release, verify=False).version == "A-1.0"
    with pytest.raises(ActivationError, match="sha256 mismatch"):
        verified_manifest(release)


def test_a_bad_release_is_never_staged_or_activated_again(tmp_path: Path, layout: Layout) -> None:
    """Marked bad, then removed: the same artifact cannot bring it back on this host."""
    log = ReleaseLog(layout.release_log)
    log.append("B", "bad", reason="drill")
    remove_release(layout, log, "B")
    with pytest.raises(StageError, match="B is marked bad on this host"):
        stage(layout, craft_artifact(tmp_path / "B2.tar.gz", "B-1.0"), "B")
    assert not (layout.releases / "B").exists()
    assert log.status_of("B") == "bad"


def test_a_release_marked_bad_before_it_was_staged_is_refused(
    tmp_path: Path, layout: Layout
) -> None:
    """The operator marks D bad fleet-wide, before this host ever staged it."""
    log = ReleaseLog(layout.release_log)
    log.append("D", "bad", reason="found bad on another host")
    with pytest.raises(StageError, match="D is marked bad on this host"):
        stage(layout, craft_artifact(tmp_path / "D.tar.gz", "D-1.0"), "D")
    with pytest.raises(ActivationError):
        activate(layout, "D")


def test_after_a_crash_in_a_rollback_the_release_it_ran_stays_the_rollback_target(
    layout: Layout,
) -> None:
    """A rollback to A swapped current and died before its log line; the next
    activation must make A (what ran) the rollback target, and prune must keep it."""
    activate(layout, "A")
    activate(layout, "B")  # A previous, B active
    swap_symlink(layout.current, "releases/A")  # the rollback's swap; then SIGKILL
    activate(layout, "C")
    log = ReleaseLog(layout.release_log)
    assert log.rollback_target("C") == "A"
    plan = prune(layout, keep=1)
    assert "A" not in plan.remove
    assert (layout.releases / "A").is_dir()
