"""Staging: unpack into .partial, verify every sha256, link shared paths, fsync, rename."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from pathlib import Path

import pytest

from tradeops.releases import fsutil, staging
from tradeops.releases.artifact import BuiltArtifact, build_artifact
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.manifest import MANIFEST_NAME, Manifest, verify_tree
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import (
    DEFAULT_SHARED_LINKS,
    StageError,
    plan_stage,
    read_artifact_manifest,
    resolve_links,
    stage,
)

MTIME = 1_700_000_000
FILES: dict[str, bytes] = {
    "REVISION": b"1.0\nabc\n",
    "bin/refapp": b"#!/bin/sh\necho run\n",
    "site/pkg/__init__.py": b"VALUE = 1\n",
    "config/defaults.yml": b"refapp_fault_mode: none\n",
}


def make_layout(tmp_path: Path) -> Layout:
    root = tmp_path / "root"
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return Layout.at(root)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode if mode is not None else 0o755 if name.startswith("bin/") else 0o644
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))


def craft_artifact(
    path: Path,
    files: dict[str, bytes] | None = None,
    *,
    listed: dict[str, bytes] | None = None,
    manifest_text: str | bytes | None = None,
    with_manifest: bool = True,
    members: tuple[tarfile.TarInfo, ...] = (),
    version: str = "1.0",
    files_before_manifest: int = 0,
    modes: dict[str, int] | None = None,
    dir_members: bool = True,
) -> Path:
    """Write a tar.gz holding ``files``, with a MANIFEST describing ``listed``.

    ``listed`` defaults to ``files``; giving both makes an artifact whose content
    disagrees with its MANIFEST. The MANIFEST comes right after the directories,
    or after the first ``files_before_manifest`` files. ``modes`` sets the mode of
    some files; ``dir_members=False`` leaves the directories implicit.
    """
    modes = modes or {}
    files = FILES if files is None else files
    listed = files if listed is None else listed
    manifest = Manifest(
        "refapp", version, {rel: hashlib.sha256(data).hexdigest() for rel, data in listed.items()}
    )
    text = manifest.to_json() if manifest_text is None else manifest_text
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        dirs = sorted({str(Path(rel).parent) for rel in files} - {"."}) if dir_members else []
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        ordered = sorted(files.items())
        for rel, data in ordered[:files_before_manifest]:
            _add(tar, rel, data, modes.get(rel))
        if with_manifest:
            _add(tar, MANIFEST_NAME, text if isinstance(text, bytes) else text.encode())
        for rel, data in ordered[files_before_manifest:]:
            _add(tar, rel, data, modes.get(rel))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    path.write_bytes(buf.getvalue())
    return path


def log_statuses(layout: Layout) -> list[tuple[str, str]]:
    return [(e["release_id"], e["status"]) for e in ReleaseLog(layout.release_log).entries()]


def staging_leftovers(layout: Layout) -> list[str]:
    return sorted(p.name for p in layout.staging.iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltArtifact:
    return build_artifact("1.0", tmp_path_factory.mktemp("build"))


def test_stage_a_real_artifact(tmp_path: Path, built: BuiltArtifact) -> None:
    layout = make_layout(tmp_path)
    plan = stage(layout, built.path, "r1")
    assert (plan.action, plan.changed, plan.digest) == ("create", True, built.digest)
    release = layout.releases / "r1"
    manifest = Manifest.load(release)
    assert manifest.digest == built.digest
    assert verify_tree(release, manifest, ignore=frozenset(DEFAULT_SHARED_LINKS)).ok
    # The shared links are relative and resolve into shared/ from the final place.
    for name, sub in resolve_links(DEFAULT_SHARED_LINKS, "r1").items():
        assert os.readlink(release / name) == f"../../shared/{sub}"
        assert (release / name).resolve() == (layout.shared / sub).resolve()
    assert os.access(release / "bin" / "refapp", os.X_OK)
    assert staging_leftovers(layout) == []
    entries = ReleaseLog(layout.release_log).entries()
    assert [(e["release_id"], e["status"], e["digest"]) for e in entries] == [
        ("r1", "staged", built.digest)
    ]
    assert entries[0]["version"] == "1.0"


def test_plan_stage_changes_nothing(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    plan = plan_stage(layout, artifact, "r1")
    assert (plan.action, plan.changed) == ("create", True)
    assert not (layout.releases / "r1").exists()
    assert not layout.release_log.exists()
    assert staging_leftovers(layout) == []


def test_rerun_converges_without_touching_the_release(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    stage(layout, artifact, "r1")
    inode = (layout.releases / "r1" / "REVISION").stat().st_ino
    again = stage(layout, artifact, "r1")
    assert (again.action, again.changed) == ("none", False)
    assert (layout.releases / "r1" / "REVISION").stat().st_ino == inode
    assert log_statuses(layout) == [("r1", "staged")]


def test_crash_after_rename_before_log_is_completed(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    stage(layout, artifact, "r1")
    layout.release_log.unlink()  # as if the process died between rename and log append
    plan = plan_stage(layout, artifact, "r1")
    assert (plan.action, plan.changed) == ("log-only", True)
    assert stage(layout, artifact, "r1").action == "log-only"
    assert log_statuses(layout) == [("r1", "staged")]
    assert stage(layout, artifact, "r1").action == "none"


@pytest.mark.parametrize("as_file", [False, True])
def test_leftover_partial_is_removed_and_rebuilt(tmp_path: Path, as_file: bool) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    partial = layout.staging / "r1.partial"
    if as_file:
        partial.write_text("garbage")
    else:
        (partial / "bin").mkdir(parents=True)
        (partial / "bin" / "refapp").write_text("half written")
        (partial / "junk").write_text("not in the manifest")
    assert stage(layout, artifact, "r1").action == "create"
    release = layout.releases / "r1"
    assert verify_tree(release, Manifest.load(release), frozenset(DEFAULT_SHARED_LINKS)).ok
    assert not (release / "junk").exists()
    assert staging_leftovers(layout) == []


def test_duplicate_id_with_a_different_digest_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    one = craft_artifact(tmp_path / "one.tar.gz")
    other = craft_artifact(tmp_path / "two.tar.gz", {**FILES, "REVISION": b"2.0\n"})
    stage(layout, one, "r1")
    with pytest.raises(StageError, match="reuse a release id"):
        plan_stage(layout, other, "r1")
    with pytest.raises(StageError, match="reuse a release id"):
        stage(layout, other, "r1")
    assert (layout.releases / "r1" / "REVISION").read_bytes() == FILES["REVISION"]
    assert log_statuses(layout) == [("r1", "staged")]
    assert staging_leftovers(layout) == []


def test_duplicate_id_is_refused_even_after_the_release_was_pruned(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    one = craft_artifact(tmp_path / "one.tar.gz")
    other = craft_artifact(tmp_path / "two.tar.gz", {**FILES, "REVISION": b"2.0\n"})
    stage(layout, one, "r1")
    # The directory is gone, but the log remembers what r1 was.
    for path in sorted((layout.releases / "r1").rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    (layout.releases / "r1").rmdir()
    ReleaseLog(layout.release_log).append("r1", "pruned")
    with pytest.raises(StageError, match="in the release log with manifest digest"):
        stage(layout, other, "r1")
    assert not (layout.releases / "r1").exists()
    # The same content may come back under its old id.
    assert stage(layout, one, "r1").action == "create"
    assert ReleaseLog(layout.release_log).status_of("r1") == "staged"


def _symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


BAD_ARTIFACTS = {
    "tampered": (
        {"files": {**FILES, "site/pkg/__init__.py": b"VALUE = 666\n"}, "listed": FILES},
        r"sha256 mismatch: site/pkg/__init__\.py",
    ),
    "extra file": (
        {"files": {**FILES, "site/pkg/backdoor.py": b"import os\n"}, "listed": FILES},
        r"extra: site/pkg/backdoor\.py",
    ),
    "missing file": (
        {"files": {k: v for k, v in FILES.items() if k != "bin/refapp"}, "listed": FILES},
        r"missing: bin/refapp",
    ),
    "symlink member": (
        {"members": (_symlink("site/evil", "/etc/passwd"),)},
        r"link or special file: site/evil",
    ),
    "hardlink member": (
        {"members": (_symlink("site/hard", "REVISION", tarfile.LNKTYPE),)},
        r"link or special file: site/hard",
    ),
    "fifo member": ({"members": (_fifo("site/pipe"),)}, r"link or special file: site/pipe"),
    "duplicate member": ({"members": (_regular("REVISION"),)}, r"holds REVISION twice"),
    "duplicate member spelt differently": (
        {"members": (_regular("./site//pkg/__init__.py"),)},
        r"holds site/pkg/__init__\.py twice",
    ),
    "duplicate directory": ({"members": (_directory("site/pkg/"),)}, r"holds site/pkg twice"),
    "file under a file": ({"members": (_regular("REVISION/x"),)}, r"cannot unpack"),
    "file over a directory": (
        {"files": {**FILES, "site": b"x"}, "files_before_manifest": 4},
        r"cannot unpack",
    ),
    "MANIFEST is a directory": (
        {"with_manifest": False, "members": (_directory(MANIFEST_NAME),)},
        r"MANIFEST is not a regular file",
    ),
    "MANIFEST twice": (
        {"members": (_regular(f"./{MANIFEST_NAME}"),)},
        r"holds MANIFEST twice",
    ),
    "dotdot member": ({"members": (_regular("../escape.txt"),)}, r"escapes the release"),
    "nested dotdot member": (
        {"members": (_regular("site/../../escape.txt"),)},
        r"escapes the release",
    ),
    "absolute member": ({"members": (_regular("/tmp/abs.txt"),)}, r"escapes the release"),
    "no MANIFEST": ({"with_manifest": False}, r"no MANIFEST"),
    "MANIFEST not JSON": ({"manifest_text": "sha256 a.txt\n"}, r"MANIFEST is not JSON"),
    "file collides with a shared link": (
        {"files": {**FILES, "log": b"not a link\n"}},
        r"shared link log collides",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARTIFACTS))
def test_bad_artifacts_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    kwargs, message = BAD_ARTIFACTS[case]
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "bad.tar.gz", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(StageError, match=message):
        stage(layout, artifact, "r1")
    assert not (layout.releases / "r1").exists()
    assert staging_leftovers(layout) == []
    assert log_statuses(layout) == []
    assert not (tmp_path / "escape.txt").exists()
    assert not (layout.root / "escape.txt").exists()
    assert not (layout.releases / "escape.txt").exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not gzip", "empty"])
def test_corrupt_archives_are_refused_cleanly(tmp_path: Path, damage: str) -> None:
    layout = make_layout(tmp_path)
    rng = random.Random(20240601)  # incompressible but reproducible content
    files = {f"site/pkg/mod{i}.py": rng.randbytes(2000) for i in range(8)}
    artifact = craft_artifact(tmp_path / "a.tar.gz", files)
    data = bytearray(artifact.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        for offset in range(len(data) // 3, len(data) - 16, 97):
            data[offset] ^= 0xFF
    elif damage == "not gzip":
        data = bytearray(b"this is not an archive" * 10)
    else:
        data = bytearray()
    artifact.write_bytes(bytes(data))
    with pytest.raises(StageError):
        stage(layout, artifact, "r1")
    assert not (layout.releases / "r1").exists()
    assert staging_leftovers(layout) == []
    assert log_statuses(layout) == []


def test_read_artifact_manifest_reports_a_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="cannot read the artifact"):
        read_artifact_manifest(tmp_path / "nope.tar.gz")
    layout = make_layout(tmp_path)
    with pytest.raises(StageError, match="artifact not found"):
        stage(layout, tmp_path / "nope.tar.gz", "r1")


@pytest.mark.parametrize("release_id", ["", "../r1", "r1/x", ".hidden", "a" * 129, "r 1"])
def test_invalid_release_ids_are_refused(tmp_path: Path, release_id: str) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    with pytest.raises(StageError, match="invalid release id"):
        stage(layout, artifact, release_id)
    assert sorted(p.name for p in layout.releases.iterdir()) == [".staging"]


def test_existing_release_that_was_tampered_with_is_not_trusted(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    stage(layout, artifact, "r1")
    (layout.releases / "r1" / "REVISION").write_text("edited on the host\n")
    with pytest.raises(StageError, match="fails verification: sha256 mismatch: REVISION"):
        stage(layout, artifact, "r1")


def test_existing_release_whose_shared_link_became_a_file_fails(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    stage(layout, artifact, "r1")
    (layout.releases / "r1" / "log").unlink()
    (layout.releases / "r1" / "log").write_text("a file where the shared link was\n")
    with pytest.raises(StageError, match="extra: log"):
        stage(layout, artifact, "r1")


def test_existing_non_release_directory_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    (layout.releases / "r1").mkdir()
    (layout.releases / "r1" / "notes.txt").write_text("someone's files")
    with pytest.raises(StageError, match="exists but is not a release"):
        stage(layout, artifact, "r1")
    assert (layout.releases / "r1" / "notes.txt").read_text() == "someone's files"


def test_custom_links(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    stage(layout, artifact, "r1", links={"state": "../state"})
    release = layout.releases / "r1"
    assert sorted(p.name for p in release.iterdir() if p.is_symlink()) == ["state"]
    assert (release / "state").resolve() == layout.state.resolve()
    assert json.loads((release / MANIFEST_NAME).read_text())["version"] == "1.0"


@pytest.mark.parametrize("files_before_manifest", [1, 2, len(FILES)])
def test_manifest_need_not_come_first(tmp_path: Path, files_before_manifest: int) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz", files_before_manifest=files_before_manifest)
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert names.index(MANIFEST_NAME) > names.index("REVISION")
    assert read_artifact_manifest(artifact).files.keys() == FILES.keys()
    assert stage(layout, artifact, "r1").action == "create"
    release = layout.releases / "r1"
    assert verify_tree(release, Manifest.load(release), frozenset(DEFAULT_SHARED_LINKS)).ok
    assert (release / MANIFEST_NAME).read_text() == Manifest.load(release).to_json()


def test_read_artifact_manifest_stops_at_the_manifest(tmp_path: Path) -> None:
    """Only the archive up to the MANIFEST is read: a damaged tail does not matter to it."""
    rng = random.Random(7)
    files = {f"payload/blob{i}.bin": rng.randbytes(50_000) for i in range(8)}
    artifact = craft_artifact(tmp_path / "a.tar.gz", files)
    expected = read_artifact_manifest(artifact)
    data = artifact.read_bytes()
    artifact.write_bytes(data[: len(data) // 2])
    assert read_artifact_manifest(artifact) == expected
    layout = make_layout(tmp_path)
    with pytest.raises(StageError):  # staging reads it all, and refuses
        stage(layout, artifact, "r1")
    assert staging_leftovers(layout) == []
    assert not (layout.releases / "r1").exists()


def test_read_artifact_manifest_without_a_manifest(tmp_path: Path) -> None:
    artifact = craft_artifact(tmp_path / "a.tar.gz", with_manifest=False)
    with pytest.raises(StageError, match=r"no MANIFEST in the artifact"):
        read_artifact_manifest(artifact)
    bad = craft_artifact(tmp_path / "b.tar.gz", manifest_text=b"\xff\xfe{}")
    with pytest.raises(StageError, match=r"MANIFEST is not UTF-8"):
        read_artifact_manifest(bad)
    layout = make_layout(tmp_path)
    with pytest.raises(StageError, match=r"MANIFEST is not UTF-8"):
        stage(layout, bad, "r1")


def test_an_artifact_replaced_after_the_plan_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = make_layout(tmp_path)
    artifact = craft_artifact(tmp_path / "a.tar.gz")
    planned = read_artifact_manifest(craft_artifact(tmp_path / "b.tar.gz", {"REVISION": b"2\n"}))
    monkeypatch.setattr(staging, "read_artifact_manifest", lambda path: planned)
    with pytest.raises(StageError, match="the artifact changed while it was being staged"):
        stage(layout, artifact, "r1")
    assert staging_leftovers(layout) == []
    assert not (layout.releases / "r1").exists()
    assert log_statuses(layout) == []


def test_modes_are_0755_or_0644_whatever_the_archive_and_umask(tmp_path: Path) -> None:
    files = {
        "bin/owner-only": b"#!/bin/sh\n",
        "bin/setuid": b"#!/bin/sh\n",
        "bin/other-x": b"#!/bin/sh\n",
        "data/world-writable": b"w\n",
        "data/private": b"p\n",
        "data/sub/deep.txt": b"d\n",
    }
    modes = {
        "bin/owner-only": 0o700,
        "bin/setuid": 0o4777,
        "bin/other-x": 0o001,
        "data/world-writable": 0o666,
        "data/private": 0o600,
        "data/sub/deep.txt": 0o2644,
    }
    artifact = craft_artifact(tmp_path / "a.tar.gz", files, modes=modes, dir_members=False)
    layout = make_layout(tmp_path)
    old_umask = os.umask(0o077)
    try:
        stage(layout, artifact, "r1")
    finally:
        os.umask(old_umask)
    release = layout.releases / "r1"
    found = {rel: (release / rel).stat().st_mode & 0o7777 for rel in files}
    assert found == {
        "bin/owner-only": 0o755,
        "bin/setuid": 0o755,
        "bin/other-x": 0o755,
        "data/world-writable": 0o644,
        "data/private": 0o644,
        "data/sub/deep.txt": 0o644,
    }
    # Directories the archive does not list are created, 0755 too.
    for rel in ("bin", "data", "data/sub"):
        assert (release / rel).stat().st_mode & 0o7777 == 0o755
    assert (release / "data/private").stat().st_mtime == MTIME  # mtimes are the archive's


def test_dot_slash_member_names_and_a_root_member(tmp_path: Path) -> None:
    """Archives made with ``tar -C dir .`` name members ``./x`` and hold ``.`` itself."""
    manifest = Manifest(
        "refapp", "1.0", {k: hashlib.sha256(v).hexdigest() for k, v in FILES.items()}
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(_directory("."))
        _add(tar, f"./{MANIFEST_NAME}", manifest.to_json().encode())
        for rel, data in sorted(FILES.items()):
            _add(tar, f"./{rel}", data)
    artifact = tmp_path / "dot.tar.gz"
    artifact.write_bytes(buf.getvalue())
    layout = make_layout(tmp_path)
    assert stage(layout, artifact, "r1").digest == manifest.digest
    release = layout.releases / "r1"
    assert verify_tree(release, Manifest.load(release), frozenset(DEFAULT_SHARED_LINKS)).ok


@pytest.mark.parametrize("has_syncfs", [True, False])
def test_the_tree_is_made_durable_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_syncfs: bool
) -> None:
    """One syncfs then a fsync per directory, or (without syncfs) a fsync per file too."""
    if not has_syncfs:
        monkeypatch.setattr(fsutil, "_libc_syncfs", lambda: None)
    monkeypatch.setenv(fsutil.CRASH_ENV, "0")
    before = len(fsutil.crashpoint_labels())
    layout = make_layout(tmp_path)
    stage(layout, craft_artifact(tmp_path / "a.tar.gz"), "r1")
    labels = fsutil.crashpoint_labels()[before:]
    rename = labels.index("stage:before-rename")
    durable = [i for i, label in enumerate(labels) if label.startswith(("sync_tree", "fsync_tree"))]
    assert durable
    assert max(durable) < rename
    assert labels.count("sync_tree:syncfs") == (1 if has_syncfs else 0)
    assert labels.count("fsync_tree:file") == (0 if has_syncfs else len(FILES) + 1)
    assert labels.count("fsync_tree:dir") == 5  # r1.partial, bin, config, site, site/pkg
