"""MANIFEST building, parsing and tree verification."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tradeops.releases.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    build_manifest,
    sha256_file,
    verify_hashes,
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


def test_names_only_verification_ignores_content(tmp_path: Path) -> None:
    make_tree(tmp_path)
    manifest = build_manifest(tmp_path, "refapp", "1.0", {})
    (tmp_path / "a.txt").write_text("tampered")
    assert verify_tree(tmp_path, manifest, contents=False).ok
    assert verify_tree(tmp_path, manifest).mismatched == ["a.txt"]
    (tmp_path / "extra.txt").write_text("x")
    (tmp_path / "bin" / "run").unlink()
    result = verify_tree(tmp_path, manifest, contents=False)
    assert (result.missing, result.extra, result.mismatched) == (["bin/run"], ["extra.txt"], [])
    os.symlink("a.txt", tmp_path / "link")
    with pytest.raises(ManifestError, match="no symlinks"):
        verify_tree(tmp_path, manifest, contents=False)


def test_verify_hashes_compares_digests_computed_elsewhere(tmp_path: Path) -> None:
    make_tree(tmp_path)
    manifest = build_manifest(tmp_path, "refapp", "1.0", {})
    hashes = {rel: sha256_file(tmp_path / rel) for rel in manifest.files}
    assert verify_hashes(manifest, {**hashes, MANIFEST_NAME: "0" * 64}).ok
    result = verify_hashes(manifest, {"a.txt": "0" * 64, "new.txt": hashes["a.txt"]})
    assert (result.missing, result.extra, result.mismatched) == (
        ["bin/run"],
        ["new.txt"],
        ["a.txt"],
    )
    assert result.describe() == "missing: bin/run; extra: new.txt; sha256 mismatch: a.txt"


def test_special_files_and_unreadable_directories_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    manifest = build_manifest(tmp_path, "refapp", "1.0", {})
    os.mkfifo(tmp_path / "bin" / "pipe")
    with pytest.raises(ManifestError, match="not a regular file: bin/pipe"):
        verify_tree(tmp_path, manifest, contents=False)
    (tmp_path / "bin" / "pipe").unlink()
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        if path.endswith("bin"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ManifestError, match="cannot list bin: Permission denied"):
        verify_tree(tmp_path, manifest)


def test_shared_links_are_skipped_and_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "release"
    make_tree(root)
    manifest = build_manifest(root, "refapp", "1.0", {})
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "app.log").write_text("s")
    os.symlink("../shared", root / "log")
    assert verify_tree(root, manifest, frozenset({"log"})).ok
    with pytest.raises(ManifestError, match="no symlinks: log"):
        verify_tree(root, manifest)
