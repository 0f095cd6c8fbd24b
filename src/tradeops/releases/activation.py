"""Activate a release: swap ``current`` atomically, record it in the release log.

``current`` is replaced by rename(2) of a new symlink created under a
temporary name, then the directory is fsync'd: every reader sees either the
old target or the new one. Activation refuses a release that is missing,
was never staged (not in the release log), fails verification, does not have
the digest the log recorded when it was staged, or is marked bad.

Verification re-hashes every file by default. With ``verify=False`` (for a
release the deploy gate has just verified in full) it checks that exactly the
MANIFEST's files are there, plain files only, and the logged digest, without
hashing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tradeops.releases.fsutil import crashpoint, swap_symlink
from tradeops.releases.layout import Layout
from tradeops.releases.manifest import Manifest, ManifestError, verify_tree
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import DEFAULT_SHARED_LINKS


class ActivationError(RuntimeError):
    """The release cannot be activated; the message says why."""


@dataclass(frozen=True)
class ActivationPlan:
    """What activation would do (check mode) or did."""

    release_id: str
    previous: str | None
    changed: bool
    log_repair: bool
    version: str
    digest: str
    swap: bool = True  # whether ``current`` must be (re)pointed

    def diff(self, layout: Layout) -> dict[str, str]:
        """Ansible-style before/after of the ``current`` symlink."""
        before = f"{layout.current} -> releases/{self.previous}\n" if self.previous else ""
        return {
            "before_header": str(layout.current),
            "after_header": str(layout.current),
            "before": before,
            "after": f"{layout.current} -> releases/{self.release_id}\n",
        }


def verified_manifest(
    release_dir: Path,
    links: frozenset[str] = frozenset(DEFAULT_SHARED_LINKS),
    verify: bool = True,
) -> Manifest:
    """Load and verify a staged release, or raise ActivationError.

    ``verify=True`` re-hashes every file; ``verify=False`` checks only that the
    files present are exactly those the MANIFEST lists (no symlinks but ``links``).
    """
    if release_dir.is_symlink() or not release_dir.is_dir():
        raise ActivationError(f"release {release_dir.name} is not staged ({release_dir} missing)")
    try:
        manifest = Manifest.load(release_dir)
        result = verify_tree(release_dir, manifest, ignore=links, contents=verify)
    except ManifestError as exc:
        raise ActivationError(f"release {release_dir.name} is unverified: {exc}") from exc
    if not result.ok:
        raise ActivationError(f"release {release_dir.name} fails verification: {result.describe()}")
    return manifest


def _points_at(layout: Layout, release_id: str) -> bool:
    """True when ``current`` is a symlink that resolves to ``releases/<release_id>``."""
    if not layout.current.is_symlink():
        return False
    return os.path.realpath(layout.current) == os.path.realpath(layout.releases / release_id)


def plan_activate(
    layout: Layout,
    release_id: str,
    links: frozenset[str] | None = None,
    verify: bool = True,
) -> ActivationPlan:
    """Decide what activating ``release_id`` needs, changing nothing.

    ``links`` are the shared-link names staging added (default: ``DEFAULT_SHARED_LINKS``).
    ``verify=False`` skips re-hashing the files (see ``verified_manifest``); the
    log, bad/pruned status and MANIFEST digest checks are the same.
    """
    log = ReleaseLog(layout.release_log)
    record = log.releases().get(release_id)
    if record is not None and record.status == "bad":
        raise ActivationError(f"release {release_id} is marked bad: refusing to activate it")
    if record is None or record.status == "pruned":
        raise ActivationError(
            f"release {release_id} is unverified: the release log has no staging of it "
            "(stage it first)"
        )
    links = frozenset(DEFAULT_SHARED_LINKS) if links is None else links
    manifest = verified_manifest(layout.releases / release_id, links, verify=verify)
    if record.digest and record.digest != manifest.digest:
        raise ActivationError(
            f"release {release_id} is unverified: its MANIFEST digest {manifest.digest[:12]} "
            f"is not the one staged ({record.digest[:12]})"
        )
    try:
        current = layout.current_release()
    except RuntimeError as exc:
        raise ActivationError(f"refusing to replace {layout.current}: {exc}") from exc
    swap = not _points_at(layout, release_id)
    logged_active = record.status == "active"
    return ActivationPlan(
        release_id=release_id,
        previous=current if current != release_id else None,
        changed=swap or not logged_active,
        log_repair=not swap and not logged_active,
        version=manifest.version,
        digest=manifest.digest,
        swap=swap,
    )


def activate(
    layout: Layout,
    release_id: str,
    links: frozenset[str] | None = None,
    verify: bool = True,
    replaced: str = "previous",
) -> ActivationPlan:
    """Make ``release_id`` the active release (idempotent; repairs the log after a crash).

    Order: swap ``current`` first, then log the other active release(s) as
    ``replaced`` and this one as ``active``. A crash between the swap and the
    log leaves ``current`` right and the log behind; the next run repairs the log.
    ``replaced`` is ``previous`` (the rollback target) or, for a switch-back from
    a release that failed, ``rolled-back`` (never the rollback target). A
    replaced release the log never staged is always ``rolled-back``.
    ``verify`` is passed to ``plan_activate``.
    """
    if replaced not in ("previous", "rolled-back"):
        raise ActivationError(f"replaced must be previous or rolled-back, not {replaced!r}")
    plan = plan_activate(layout, release_id, links, verify=verify)
    log = ReleaseLog(layout.release_log)
    crashpoint("activate:planned")
    if plan.swap:
        swap_symlink(layout.current, os.path.join("releases", release_id))
    if plan.changed:
        view = log.releases()
        demote = [
            r.release_id
            for r in sorted(view.values(), key=lambda rec: rec.seq)
            if r.status == "active" and r.release_id != release_id
        ]
        # The release ``current`` pointed at goes last: it is the rollback target.
        # "previous" too: after a crash between a rollback's swap and its log, the
        # release it ran is still logged previous, behind a newer one.
        if plan.previous is not None:
            before = view.get(plan.previous)
            if before is None or before.status in ("staged", "active", "previous"):
                demote = [rid for rid in demote if rid != plan.previous] + [plan.previous]
        for rid in demote:
            # A release the log never staged (drift a repair run replaced) is never
            # a rollback target.
            log.append(rid, replaced if rid in view else "rolled-back")
            crashpoint("activate:logged-previous")
        log.append(release_id, "active", version=plan.version, digest=plan.digest)
        crashpoint("activate:logged-active")
    return plan
