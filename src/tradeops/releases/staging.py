"""Stage a release: unpack, verify every sha256, link shared paths, fsync, rename.

A crash at any moment leaves either no release or a complete one: the tree is
built in ``releases/.staging/<id>.partial`` and becomes ``releases/<id>`` only
by one rename(2) after everything in it is verified and fsync'd. Re-running
converges: a leftover ``.partial`` is removed, an existing identical release is
a no-op, and a release id already used (on disk or in the release log) with
another digest is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeops.releases.fsutil import crashpoint, fsync_dir, fsync_tree
from tradeops.releases.layout import Layout
from tradeops.releases.manifest import MANIFEST_NAME, Manifest, ManifestError, verify_tree
from tradeops.releases.releaselog import ReleaseLog

RELEASE_ID_RE_TEXT = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"

# Link name inside the release -> directory under tradeops_root/shared.
DEFAULT_SHARED_LINKS: dict[str, str] = {"log": "log", "secrets": "secrets", "local": "config"}


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


def read_artifact_manifest(artifact: Path) -> Manifest:
    """Read the MANIFEST from inside an artifact without unpacking it."""
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            member = tar.extractfile(MANIFEST_NAME)
            if member is None:
                raise StageError(f"{artifact}: MANIFEST is not a regular file")
            return Manifest.from_json(member.read().decode("utf-8"))
    except KeyError as exc:
        raise StageError(f"{artifact}: no MANIFEST in the artifact") from exc
    except UnicodeDecodeError as exc:
        raise StageError(f"{artifact}: MANIFEST is not UTF-8: {exc}") from exc
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise StageError(f"{artifact}: cannot read the artifact: {exc}") from exc
    except ManifestError as exc:
        raise StageError(f"{artifact}: {exc}") from exc


def _check_existing(
    release_dir: Path, manifest: Manifest, links: dict[str, str], verify: bool
) -> None:
    if release_dir.is_symlink() or not release_dir.is_dir():
        raise StageError(f"{release_dir} exists but is not a release directory")
    try:
        existing = Manifest.load(release_dir)
    except ManifestError as exc:
        raise StageError(f"{release_dir} exists but is not a release: {exc}") from exc
    if existing.digest != manifest.digest:
        raise StageError(
            f"release id {release_dir.name} already exists with manifest digest "
            f"{existing.digest[:12]}, the artifact has {manifest.digest[:12]}: refusing to "
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


def plan_stage(
    layout: Layout,
    artifact: Path,
    release_id: str,
    links: dict[str, str] | None = None,
    verify: bool = True,
) -> StagePlan:
    """Decide what staging ``artifact`` as ``release_id`` needs, changing nothing.

    With ``verify=False`` an existing release is checked by its MANIFEST digest
    only, not re-hashed file by file (the deploy gate's quick live check;
    activation always verifies in full).
    """
    validate_release_id(release_id)
    links = DEFAULT_SHARED_LINKS if links is None else links
    if not artifact.is_file():
        raise StageError(f"artifact not found: {artifact}")
    manifest = read_artifact_manifest(artifact)
    release_dir = layout.releases / release_id
    log = ReleaseLog(layout.release_log)
    logged = log.releases().get(release_id)
    if logged is not None and logged.digest and logged.digest != manifest.digest:
        raise StageError(
            f"release id {release_id} is in the release log with manifest digest "
            f"{logged.digest[:12]}, the artifact has {manifest.digest[:12]}: refusing to "
            "reuse a release id for different content"
        )
    if release_dir.exists() or release_dir.is_symlink():
        _check_existing(release_dir, manifest, links, verify=verify)
        known = logged is not None and logged.status != "pruned"
        return StagePlan(
            release_id,
            manifest.version,
            manifest.digest,
            changed=not known,
            action="none" if known else "log-only",
            path=str(release_dir),
        )
    return StagePlan(
        release_id, manifest.version, manifest.digest, True, "create", str(release_dir)
    )


# Extraction filters (PEP 706) exist from Python 3.11.4 on.
HAS_TAR_FILTERS = hasattr(tarfile, "data_filter")


def _check_member(member: tarfile.TarInfo) -> None:
    if not (member.isfile() or member.isdir()):
        raise StageError(f"artifact holds a link or special file: {member.name}")
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts:
        raise StageError(f"artifact member escapes the release directory: {member.name}")


def _extract(artifact: Path, dest: Path) -> None:
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            for member in members:
                if HAS_TAR_FILTERS:
                    # The 'data' filter also refuses absolute paths, '..' and device files.
                    tar.extract(member, dest, filter="data")
                else:
                    # Python < 3.11.4 (Debian 12's 3.11.2) has no extraction filters:
                    # _check_member above already refused links, devices, '..' and '/'.
                    tar.extract(member, dest)
                crashpoint("stage:extract")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise StageError(f"{artifact}: cannot unpack the artifact: {exc}") from exc


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
    links = DEFAULT_SHARED_LINKS if links is None else links
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
        _extract(artifact, partial)
        try:
            manifest = Manifest.load(partial)
        except ManifestError as exc:
            raise StageError(f"{artifact}: {exc}") from exc
        if manifest.digest != plan.digest:
            raise StageError("the artifact changed while it was being staged")
        crashpoint("stage:before-verify")
        try:
            result = verify_tree(partial, manifest)
        except ManifestError as exc:
            raise StageError(f"artifact fails verification: {exc}") from exc
        if not result.ok:
            raise StageError(f"artifact fails verification: {result.describe()}")
        crashpoint("stage:verified")
        for name, shared_sub in links.items():
            if (partial / name).exists() or (partial / name).is_symlink():
                raise StageError(f"shared link {name} collides with a file of the release")
            target = layout.shared / shared_sub
            os.symlink(os.path.relpath(target, final), partial / name)
            crashpoint("stage:link")
        fsync_tree(partial)
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
