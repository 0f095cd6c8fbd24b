"""Stage a release: unpack, verify every sha256, link shared paths, sync, rename.

A crash at any moment leaves either no release or a complete one: the tree is
built in ``releases/.staging/<id>.partial`` and becomes ``releases/<id>`` only
by one rename(2) after everything in it is verified and flushed to disk.
Re-running converges: a leftover ``.partial`` is removed, an existing identical
release is a no-op, and a release id already used (on disk or in the release
log) with another digest is refused.

The artifact is read in one streaming pass: each member is checked, written
and hashed in the same loop, and the hashes are compared with the MANIFEST
found in that pass; the tree is not read back.

Every file is written from the artifact: a release shares no inode with any
other release, so a write into a staged release can never change the live one
(docs/decisions.md, "Releases share no inode"). Hard links from the active
release saved about 10% of an 8-host deploy; they made one flipped byte in a
staged file a change to the live release as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tradeops.releases.fsutil import crashpoint, fsync_dir, sync_tree, write_all
from tradeops.releases.layout import Layout
from tradeops.releases.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    verify_hashes,
    verify_tree,
)
from tradeops.releases.releaselog import ReleaseLog

RELEASE_ID_RE_TEXT = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"

# Link name inside the release -> directory under tradeops_root/shared; ``{release_id}``
# is replaced by the release's id, so that each release sees its own config through
# ``etc`` and code and config switch together. The modules' default
# (plugins/module_utils/specs.py) is the same; tests/unit/modrun/test_api.py checks it.
DEFAULT_SHARED_LINKS: dict[str, str] = {
    "log": "log",
    "secrets": "secrets",
    "etc": "config/{release_id}",
}


def resolve_links(links: dict[str, str] | None, release_id: str) -> dict[str, str]:
    """``links`` (default ``DEFAULT_SHARED_LINKS``) with ``{release_id}`` filled in."""
    chosen = DEFAULT_SHARED_LINKS if links is None else links
    return {name: str(sub).replace("{release_id}", release_id) for name, sub in chosen.items()}


class StageError(RuntimeError):
    """The release cannot be staged; the message says why."""


@dataclass
class StagePlan:
    """What staging would do (check mode) or did."""

    release_id: str
    version: str
    digest: str
    changed: bool
    action: str  # "create", "none", "log-only"
    path: str
    details: dict[str, Any] = field(default_factory=dict)


def validate_release_id(release_id: str) -> str:
    """Return ``release_id`` or raise with the rule it breaks."""
    if not re.match(RELEASE_ID_RE_TEXT, release_id):
        raise StageError(
            f"invalid release id {release_id!r}: letters, digits and . _ + -, "
            "at most 128, starting with a letter or digit"
        )
    return release_id


_CHUNK = 1 << 20  # bytes of a member read, hashed and written at a time
_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def _open_stream(artifact: Path) -> tarfile.TarFile:
    """Open ``artifact`` for one forward pass (no seeks, no member index).

    tarfile's default step (10 KiB of compressed data) is kept on purpose: its
    stream re-slices the decompressed buffer on each read, so a 1 MiB step made
    unpacking a 2,000-file artifact 3x slower (10 to 256 KiB measured alike).
    """
    return tarfile.open(artifact, "r|gz")


def _member_path(name: str) -> str:
    """The member's path relative to the release: no ``.`` or empty components."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _parse_manifest(artifact: Path, data: bytes) -> Manifest:
    try:
        return Manifest.from_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StageError(f"{artifact}: MANIFEST is not UTF-8: {exc}") from exc
    except ManifestError as exc:
        raise StageError(f"{artifact}: {exc}") from exc


def read_artifact_manifest(artifact: Path) -> Manifest:
    """Read the MANIFEST from inside an artifact without unpacking it.

    The archive is streamed and reading stops at the MANIFEST member, which
    artifacts put near the start (after the directories).
    """
    data: bytes | None = None
    try:
        with _open_stream(artifact) as tar:
            for member in tar:
                if _member_path(member.name) != MANIFEST_NAME:
                    continue
                source = tar.extractfile(member) if member.isfile() else None
                if source is None:
                    raise StageError(f"{artifact}: MANIFEST is not a regular file")
                data = source.read()
                break
    except _READ_ERRORS as exc:
        raise StageError(f"{artifact}: cannot read the artifact: {exc}") from exc
    if data is None:
        raise StageError(f"{artifact}: no MANIFEST in the artifact")
    return _parse_manifest(artifact, data)


def _check_existing(release_dir: Path, digest: str, links: dict[str, str], verify: bool) -> str:
    """Check an existing release against ``digest`` (and its files, with ``verify``).

    Returns the release's version, from its own MANIFEST.
    """
    if release_dir.is_symlink() or not release_dir.is_dir():
        raise StageError(f"{release_dir} exists but is not a release directory")
    try:
        existing = Manifest.load(release_dir)
    except ManifestError as exc:
        raise StageError(f"{release_dir} exists but is not a release: {exc}") from exc
    if existing.digest != digest:
        raise StageError(
            f"release id {release_dir.name} already exists with manifest digest "
            f"{existing.digest[:12]}, the artifact has {digest[:12]}: refusing to "
            "reuse a release id for different content"
        )
    if verify:
        try:
            result = verify_tree(release_dir, existing, ignore=frozenset(links))
        except ManifestError as exc:
            raise StageError(
                f"existing release {release_dir.name} fails verification: {exc}"
            ) from exc
        if not result.ok:
            raise StageError(
                f"existing release {release_dir.name} fails verification: {result.describe()}"
            )
    return existing.version


def plan_stage(
    layout: Layout,
    artifact: Path,
    release_id: str,
    links: dict[str, str] | None = None,
    verify: bool = True,
) -> StagePlan:
    """Decide what staging ``artifact`` as ``release_id`` needs, changing nothing.

    With ``verify=False`` an existing release is checked by its MANIFEST digest
    only, not re-hashed file by file (a quick live check; see also
    ``activation.plan_activate(verify=...)``).
    """
    validate_release_id(release_id)
    if not artifact.is_file():
        raise StageError(f"artifact not found: {artifact}")
    manifest = read_artifact_manifest(artifact)
    return plan_by_digest(
        layout, release_id, manifest.digest, manifest.version, links, verify=verify
    )


def plan_by_digest(
    layout: Layout,
    release_id: str,
    digest: str,
    version: str,
    links: dict[str, str] | None = None,
    verify: bool = True,
) -> StagePlan:
    """Decide what staging a release of MANIFEST ``digest`` needs, without its artifact.

    An existing ``releases/<release_id>`` must have that digest and, with
    ``verify``, every file must match its MANIFEST (re-hashed from disk): this is
    the deploy gate's live check. ``version`` is only reported for a release that
    does not exist yet.
    """
    validate_release_id(release_id)
    links = resolve_links(links, release_id)
    release_dir = layout.releases / release_id
    log = ReleaseLog(layout.release_log)
    logged = log.releases().get(release_id)
    if logged is not None and logged.status == "bad":
        raise StageError(
            f"release {release_id} is marked bad on this host: it is never staged or "
            "activated again; build and deploy a new release"
        )
    if logged is not None and logged.digest and logged.digest != digest:
        raise StageError(
            f"release id {release_id} is in the release log with manifest digest "
            f"{logged.digest[:12]}, the artifact has {digest[:12]}: refusing to "
            "reuse a release id for different content"
        )
    if release_dir.exists() or release_dir.is_symlink():
        found = _check_existing(release_dir, digest, links, verify=verify)
        known = logged is not None and logged.status != "pruned"
        return StagePlan(
            release_id,
            found,
            digest,
            changed=not known,
            action="none" if known else "log-only",
            path=str(release_dir),
        )
    return StagePlan(release_id, version, digest, True, "create", str(release_dir))


def _check_member(member: tarfile.TarInfo) -> None:
    if not (member.isfile() or member.isdir()):
        raise StageError(f"artifact holds a link or special file: {member.name}")
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts:
        raise StageError(f"artifact member escapes the release directory: {member.name}")


@dataclass
class _Unpacked:
    """What the pass over the artifact wrote into the ``.partial`` tree."""

    hashes: dict[str, str] = field(default_factory=dict)  # file -> sha256 of what was written
    members: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=lambda: {""})
    manifest: Manifest | None = None


def _make_dirs(dest: str, rel: str, unpacked: _Unpacked) -> None:
    """Create ``dest/rel`` and its missing parents, mode 0755 (whatever the umask)."""
    parts = rel.split("/") if rel else []
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        if sub in unpacked.dirs:
            continue
        os.mkdir(f"{dest}/{sub}", 0o755)
        os.chmod(f"{dest}/{sub}", 0o755)  # noqa: S103 -- release trees are world-readable, as before
        unpacked.dirs.add(sub)


def _file_mode(member: tarfile.TarInfo) -> int:
    return 0o755 if member.mode & 0o111 else 0o644


def _write_file(
    path: str, source: IO[bytes], member: tarfile.TarInfo, keep: bool
) -> tuple[str, bytes]:
    """Create ``path`` (never over an existing file or a symlink) from ``source``.

    Returns its sha256 and, when ``keep``, its content (else empty bytes). The
    mode is 0755 when the member has any execute bit, else 0644: no setuid,
    setgid, sticky or group/other write, whatever the umask.
    """
    mode = _file_mode(member)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    digest = hashlib.sha256()
    kept: list[bytes] = []
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
        crashpoint("stage:file-created")  # an empty file in .partial
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            write_all(fd, chunk)
            if keep:
                kept.append(chunk)
        # Keep the archive's mtime; one out of range is not worth refusing (as tarfile).
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)
    return digest.hexdigest(), b"".join(kept)


def _unpack_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    dest: str,
    unpacked: _Unpacked,
) -> bytes | None:
    """Check and write one member; return the MANIFEST's content when it is the MANIFEST."""
    _check_member(member)
    rel = _member_path(member.name)
    if rel in unpacked.members:
        raise StageError(f"artifact holds {rel or member.name} twice")
    unpacked.members.add(rel)
    if rel == MANIFEST_NAME and not member.isfile():
        raise StageError("MANIFEST in the artifact is not a regular file")
    if member.isdir():
        _make_dirs(dest, rel, unpacked)
        return None
    if not rel:
        raise StageError(f"artifact member has no file name: {member.name!r}")
    _make_dirs(dest, rel.rpartition("/")[0], unpacked)
    source = tar.extractfile(member)
    if source is None:  # not reached: members are regular files or directories
        raise StageError(f"artifact member is not a regular file: {member.name}")
    digest, content = _write_file(f"{dest}/{rel}", source, member, keep=rel == MANIFEST_NAME)
    if rel == MANIFEST_NAME:
        return content
    unpacked.hashes[rel] = digest
    return None


def _unpack(artifact: Path, dest: Path, digest: str) -> _Unpacked:
    """One streaming pass: check, write and hash every member.

    The MANIFEST (written too) must have ``digest``, the one the plan read.
    """
    unpacked = _Unpacked()
    try:
        with _open_stream(artifact) as tar:
            for member in tar:
                content = _unpack_member(tar, member, os.fspath(dest), unpacked)
                if content is not None:
                    unpacked.manifest = _parse_manifest(artifact, content)
                    if unpacked.manifest.digest != digest:
                        raise StageError("the artifact changed while it was being staged")
                crashpoint("stage:extract")
    except _READ_ERRORS as exc:
        raise StageError(f"{artifact}: cannot unpack the artifact: {exc}") from exc
    return unpacked


def _verify_unpacked(artifact: Path, unpacked: _Unpacked) -> None:
    """Compare what was written with the MANIFEST found in the same pass."""
    if unpacked.manifest is None:
        raise StageError(f"{artifact}: no MANIFEST in the artifact")
    result = verify_hashes(unpacked.manifest, unpacked.hashes)
    if not result.ok:
        raise StageError(f"artifact fails verification: {result.describe()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def stage(
    layout: Layout,
    artifact: Path,
    release_id: str,
    links: dict[str, str] | None = None,
) -> StagePlan:
    """Stage ``artifact`` as ``releases/<release_id>``; see the module docstring."""
    links = resolve_links(links, release_id)
    plan = plan_stage(layout, artifact, release_id, links)
    log = ReleaseLog(layout.release_log)
    if plan.action == "none":
        return plan
    if plan.action == "log-only":
        log.append(release_id, "staged", version=plan.version, digest=plan.digest)
        crashpoint("stage:logged")
        return plan

    layout.staging.mkdir(parents=True, exist_ok=True)
    partial = layout.staging / f"{release_id}.partial"
    final = layout.releases / release_id
    if partial.exists() or partial.is_symlink():
        _remove(partial)  # left by a crash: never trusted, always rebuilt
        crashpoint("stage:leftover-removed")
    partial.mkdir(mode=0o755)
    crashpoint("stage:partial-created")
    try:
        unpacked = _unpack(artifact, partial, plan.digest)
        crashpoint("stage:before-verify")
        _verify_unpacked(artifact, unpacked)
        plan.details["written_files"] = len(unpacked.hashes)
        crashpoint("stage:verified")
        for name, shared_sub in links.items():
            if (partial / name).exists() or (partial / name).is_symlink():
                raise StageError(f"shared link {name} collides with a file of the release")
            target = layout.shared / shared_sub
            os.symlink(os.path.relpath(target, final), partial / name)
            crashpoint("stage:link")
        sync_tree(partial)
        crashpoint("stage:before-rename")
        os.rename(partial, final)
        crashpoint("stage:renamed")
        fsync_dir(layout.releases)
        crashpoint("stage:releases-fsynced")
        fsync_dir(layout.staging)
        crashpoint("stage:staging-fsynced")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.append(release_id, "staged", version=plan.version, digest=plan.digest)
    crashpoint("stage:logged")
    return plan
