"""Staging shares the active release's unchanged files by hard link, and still verifies them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tradeops.releases import staging
from tradeops.releases.activation import activate
from tradeops.releases.layout import Layout
from tradeops.releases.manifest import MANIFEST_NAME, Manifest, verify_tree
from tradeops.releases.prune import prune
from tradeops.releases.staging import DEFAULT_SHARED_LINKS, stage

from .test_staging import FILES, craft_artifact, make_layout

LINKS = frozenset(DEFAULT_SHARED_LINKS)
CHANGED = {**FILES, "REVISION": b"2.0\ndef\n", "site/pkg/new.py": b"NEW = 1\n"}


def active_a(tmp_path: Path) -> Layout:
    """A host with release A (FILES) staged and active."""
    layout = make_layout(tmp_path)
    stage(layout, craft_artifact(tmp_path / "a.tar.gz"), "A")
    activate(layout, "A")
    return layout


def inode(layout: Layout, rid: str, rel: str) -> int:
    return os.stat(layout.releases / rid / rel).st_ino


def assert_verified(layout: Layout, rid: str) -> None:
    release = layout.releases / rid
    assert verify_tree(release, Manifest.load(release), ignore=LINKS).ok


def test_unchanged_files_are_linked_and_changed_ones_written(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    plan = stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    same = sorted(set(FILES) - {"REVISION"})
    assert plan.details == {"linked_files": len(same), "written_files": 2}
    for rel in same:
        assert inode(layout, "B", rel) == inode(layout, "A", rel)
    assert inode(layout, "B", "REVISION") != inode(layout, "A", "REVISION")
    assert inode(layout, "B", MANIFEST_NAME) != inode(layout, "A", MANIFEST_NAME)
    assert (layout.releases / "B" / "REVISION").read_bytes() == b"2.0\ndef\n"
    assert_verified(layout, "A")
    assert_verified(layout, "B")


def test_a_file_changed_in_place_in_the_active_release_is_written_fresh(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    tampered = layout.releases / "A" / "site/pkg/__init__.py"
    tampered.write_bytes(b"VALUE = 666\n")
    plan = stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    assert plan.details["written_files"] == 3
    assert (layout.releases / "B" / "site/pkg/__init__.py").read_bytes() == b"VALUE = 1\n"
    assert inode(layout, "B", "site/pkg/__init__.py") != tampered.stat().st_ino
    assert tampered.read_bytes() == b"VALUE = 666\n"  # A is left as found
    assert_verified(layout, "B")


def test_a_file_whose_mode_changed_is_written_with_the_new_mode(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    artifact = craft_artifact(
        tmp_path / "b.tar.gz", CHANGED, version="2.0", modes={"config/defaults.yml": 0o755}
    )
    stage(layout, artifact, "B")
    copy = layout.releases / "B" / "config/defaults.yml"
    assert copy.stat().st_mode & 0o777 == 0o755
    assert (layout.releases / "A" / "config/defaults.yml").stat().st_mode & 0o777 == 0o644
    assert_verified(layout, "B")


@pytest.mark.parametrize("damage", ["no-manifest", "bad-manifest", "no-current"])
def test_nothing_is_linked_without_a_readable_active_release(tmp_path: Path, damage: str) -> None:
    layout = active_a(tmp_path)
    if damage == "no-manifest":
        (layout.releases / "A" / MANIFEST_NAME).unlink()
    elif damage == "bad-manifest":
        (layout.releases / "A" / MANIFEST_NAME).write_text("{")
    else:
        layout.current.unlink()
    plan = stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    assert plan.details == {"linked_files": 0, "written_files": len(CHANGED)}
    assert_verified(layout, "B")


def test_a_link_the_filesystem_refuses_falls_back_to_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = active_a(tmp_path)

    def cross_device(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(staging.os, "link", cross_device)
    plan = stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    assert plan.details["linked_files"] == 0
    assert_verified(layout, "B")


def test_files_before_the_manifest_are_written(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    artifact = craft_artifact(
        tmp_path / "b.tar.gz", CHANGED, version="2.0", files_before_manifest=2
    )
    plan = stage(layout, artifact, "B")
    # REVISION (changed) and bin/refapp (unchanged) come before the MANIFEST: both written.
    assert plan.details == {"linked_files": 2, "written_files": 3}
    assert inode(layout, "B", "bin/refapp") != inode(layout, "A", "bin/refapp")
    assert_verified(layout, "B")


def test_pruning_the_release_linked_from_leaves_the_new_one_whole(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    activate(layout, "B")
    stage(layout, craft_artifact(tmp_path / "c.tar.gz", CHANGED, version="3.0"), "C")
    activate(layout, "C")
    assert prune(layout, keep=2).remove == ["A"]
    assert not (layout.releases / "A").exists()
    assert_verified(layout, "B")
    assert_verified(layout, "C")
