"""MANIFEST building, parsing and tree verification."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tradeops.releases.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    build_manifest,
    verify_tree,
)


def make_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "run").write_text("#!/bin/sh\n")
    (root / "a.txt").write_text("alpha\n")


def test_round_trip_and_verify(tmp_path: Path) -> None:
    make_tree(tmp_path)
    manifest = build_manifest(tmp_path, "refapp", "1.0", {"built_at": "x"})
    (tmp_path / MANIFEST_NAME).write_text(manifest.to_json())
    loaded = Manifest.load(tmp_path)
    assert loaded.files == manifest.files
    assert sorted(loaded.files) == ["a.txt", "bin/run"]
    assert verify_tree(tmp_path, loaded).ok


def test_digest_ignores_build_info(tmp_path: Path) -> None:
    make_tree(tmp_path)
    one = build_manifest(tmp_path, "refapp", "1.0", {"built_at": "monday"})
    two = build_manifest(tmp_path, "refapp", "1.0", {"built_at": "tuesday"})
    assert one.digest == two.digest
    (tmp_path / "a.txt").write_text("changed\n")
    assert build_manifest(tmp_path, "refapp", "1.0", {}).digest != one.digest


@pytest.mark.parametrize(
    ("change", "field", "path"),
    [
        (lambda r: (r / "extra.txt").write_text("x"), "extra", "extra.txt"),
        (lambda r: (r / "a.txt").unlink(), "missing", "a.txt"),
        (lambda r: (r / "a.txt").write_text("tampered"), "mismatched", "a.txt"),
    ],
)
def test_every_difference_is_reported(tmp_path: Path, change, field: str, path: str) -> None:
    make_tree(tmp_path)
    manifest = build_manifest(tmp_path, "refapp", "1.0", {})
    change(tmp_path)
    result = verify_tree(tmp_path, manifest)
    assert not result.ok
    assert getattr(result, field) == [path]
    assert path in result.describe()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    make_tree(tmp_path)
    os.symlink("a.txt", tmp_path / "link")
    with pytest.raises(ManifestError, match="no symlinks"):
        build_manifest(tmp_path, "refapp", "1.0", {})


def test_tampered_file_table_is_detected(tmp_path: Path) -> None:
    make_tree(tmp_path)
    data = json.loads(build_manifest(tmp_path, "refapp", "1.0", {}).to_json())
    data["files"]["a.txt"] = "0" * 64
    with pytest.raises(ManifestError, match="digest does not match"):
        Manifest.from_json(json.dumps(data))


@pytest.mark.parametrize("bad", ["/etc/passwd", "../escape", "MANIFEST"])
def test_unsafe_paths_are_refused(bad: str) -> None:
    files = {bad: "0" * 64}
    text = Manifest("refapp", "1.0", files).to_json()
    with pytest.raises(ManifestError, match="unsafe path"):
        Manifest.from_json(text)


def test_not_json_is_a_clear_error() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.from_json("sha256 a.txt")
