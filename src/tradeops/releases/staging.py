"""Stage a release: unpack, verify every sha256, link shared paths, fsync, rename.

A crash at any moment leaves either no release or a complete one: the tree is
built in ``releases/.staging/<id>.partial`` and becomes ``releases/<id>`` only
by one rename(2) after everything in it is verified and fsync'd. Re-running
converges: a leftover ``.partial`` is removed, an existing identical release is
a no-op, and an existing release with another digest is refused.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeops.releases.fsutil import fsync_dir, fsync_tree
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
    import re

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
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StageError(f"{artifact}: cannot read the artifact: {exc}") from exc
    except ManifestError as exc:
        raise StageError(f"{artifact}: {exc}") from exc


def _check_existing(
    release_dir: Path, manifest: Manifest, links: dict[str, str], verify: bool
) -> None:
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
        result = verify_tree(release_dir, existing, ignore=frozenset(links))
        if not result.ok:
            raise StageError(
                f"existing release {release_dir.name} fails verification: {result.describe()}"
            )


def plan_stage(
    layout: Layout,
    artifact: Path,
    release_id: str,
    links: dict[str, str] | None = None,
) -> StagePlan:
    """Decide what staging ``artifact`` as ``release_id`` needs, changing nothing."""
    validate_release_id(release_id)
    links = DEFAULT_SHARED_LINKS if links is None else links
    if not artifact.is_file():
        raise StageError(f"artifact not found: {artifact}")
    manifest = read_artifact_manifest(artifact)
    release_dir = layout.releases / release_id
    log = ReleaseLog(layout.release_log)
    if release_dir.exists():
        _check_existing(release_dir, manifest, links, verify=True)
        logged = log.status_of(release_id) is not None
        return StagePlan(
            release_id,
            manifest.version,
            manifest.digest,
            changed=not logged,
            action="none" if logged else "log-only",
            path=str(release_dir),
        )
    return StagePlan(
        release_id, manifest.version, manifest.digest, True, "create", str(release_dir)
    )


def _extract(artifact: Path, dest: Path) -> None:
    with tarfile.open(artifact, "r:gz") as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()):
                raise StageError(f"artifact holds a link or special file: {member.name}")
        # The 'data' filter refuses absolute paths, '..' and device files.
        tar.extractall(dest, filter="data")


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
        return plan

    layout.staging.mkdir(parents=True, exist_ok=True)
    partial = layout.staging / f"{release_id}.partial"
    if partial.exists():
        shutil.rmtree(partial)  # left by a crash: never trusted, always rebuilt
    partial.mkdir(mode=0o755)
    try:
        _extract(artifact, partial)
        manifest = Manifest.load(partial)
        if manifest.digest != plan.digest:
            raise StageError("the artifact changed while it was being staged")
        result = verify_tree(partial, manifest)
        if not result.ok:
            raise StageError(f"artifact fails verification: {result.describe()}")
        for name, shared_sub in links.items():
            if (partial / name).exists():
                raise StageError(f"shared link {name} collides with a file of the release")
            target = layout.shared / shared_sub
            os.symlink(os.path.relpath(target, partial.parent.parent / release_id), partial / name)
        fsync_tree(partial)
        os.rename(partial, layout.releases / release_id)
        fsync_dir(layout.releases)
        fsync_dir(layout.staging)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.append(release_id, "staged", version=plan.version, digest=plan.digest)
    return plan
