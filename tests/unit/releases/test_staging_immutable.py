"""A release shares no inode with another: a write into one never changes the live one."""

from __future__ import annotations

import os
from pathlib import Path

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


def verifies(layout: Layout, rid: str) -> bool:
    release = layout.releases / rid
    return verify_tree(release, Manifest.load(release), ignore=LINKS).ok


def test_every_file_of_a_new_release_is_written_even_when_unchanged(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    plan = stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    assert plan.details == {"written_files": len(CHANGED)}
    for rel in [*CHANGED, MANIFEST_NAME]:
        if rel in FILES or rel == MANIFEST_NAME:
            assert inode(layout, "B", rel) != inode(layout, "A", rel), rel
    assert verifies(layout, "A")
    assert verifies(layout, "B")


def test_a_byte_flipped_in_a_staged_release_leaves_the_live_release_whole(
    tmp_path: Path,
) -> None:
    """Issue 10, finding 3: with hard links, this write changed the live release too."""
    layout = active_a(tmp_path)
    stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    for rel in sorted(set(FILES) - {"REVISION"}):
        staged = layout.releases / "B" / rel
        with open(staged, "r+b") as handle:  # in place, as a stray editor or tool would
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0x01]))
    assert not verifies(layout, "B")
    assert verifies(layout, "A")
    assert (layout.releases / "A" / "site/pkg/__init__.py").read_bytes() == FILES[
        "site/pkg/__init__.py"
    ]


def test_a_file_changed_in_place_in_the_active_release_does_not_reach_the_new_one(
    tmp_path: Path,
) -> None:
    layout = active_a(tmp_path)
    tampered = layout.releases / "A" / "site/pkg/__init__.py"
    tampered.write_bytes(b"VALUE = 666\n")
    stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    assert (layout.releases / "B" / "site/pkg/__init__.py").read_bytes() == b"VALUE = 1\n"
    assert tampered.read_bytes() == b"VALUE = 666\n"  # A is left as found
    assert verifies(layout, "B")


def test_a_mode_change_is_written_with_the_new_mode(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    artifact = craft_artifact(
        tmp_path / "b.tar.gz", CHANGED, version="2.0", modes={"config/defaults.yml": 0o755}
    )
    stage(layout, artifact, "B")
    assert (layout.releases / "B" / "config/defaults.yml").stat().st_mode & 0o777 == 0o755
    assert (layout.releases / "A" / "config/defaults.yml").stat().st_mode & 0o777 == 0o644
    assert verifies(layout, "B")


def test_pruning_the_previous_release_leaves_the_newer_ones_whole(tmp_path: Path) -> None:
    layout = active_a(tmp_path)
    stage(layout, craft_artifact(tmp_path / "b.tar.gz", CHANGED, version="2.0"), "B")
    activate(layout, "B")
    stage(layout, craft_artifact(tmp_path / "c.tar.gz", CHANGED, version="3.0"), "C")
    activate(layout, "C")
    assert prune(layout, keep=2).remove == ["A"]
    assert not (layout.releases / "A").exists()
    assert verifies(layout, "B")
    assert verifies(layout, "C")
