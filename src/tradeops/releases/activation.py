"""Activate a release: swap ``current`` atomically, record it in the release log.

``current`` is replaced by rename(2) of a new symlink created under a
temporary name, then the directory is fsync'd: every reader sees either the
old target or the new one. Activation refuses a release that is missing,
fails verification, or is marked bad.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tradeops.releases.fsutil import swap_symlink
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
    release_dir: Path, links: frozenset[str] = frozenset(DEFAULT_SHARED_LINKS)
) -> Manifest:
    """Load and fully verify a staged release, or raise ActivationError."""
    if not release_dir.is_dir():
        raise ActivationError(f"release {release_dir.name} is not staged ({release_dir} missing)")
    try:
        manifest = Manifest.load(release_dir)
    except ManifestError as exc:
        raise ActivationError(f"release {release_dir.name} is unverified: {exc}") from exc
    result = verify_tree(release_dir, manifest, ignore=links)
    if not result.ok:
        raise ActivationError(f"release {release_dir.name} fails verification: {result.describe()}")
    return manifest


def plan_activate(layout: Layout, release_id: str) -> ActivationPlan:
    """Decide what activating ``release_id`` needs, changing nothing."""
    log = ReleaseLog(layout.release_log)
    if log.status_of(release_id) == "bad":
        raise ActivationError(f"release {release_id} is marked bad: refusing to activate it")
    manifest = verified_manifest(layout.releases / release_id)
    current = layout.current_release()
    logged_active = log.status_of(release_id) == "active"
    return ActivationPlan(
        release_id=release_id,
        previous=current if current != release_id else None,
        changed=current != release_id or not logged_active,
        log_repair=current == release_id and not logged_active,
        version=manifest.version,
        digest=manifest.digest,
    )


def activate(layout: Layout, release_id: str) -> ActivationPlan:
    """Make ``release_id`` the active release (idempotent; repairs the log after a crash)."""
    plan = plan_activate(layout, release_id)
    log = ReleaseLog(layout.release_log)
    if plan.previous is not None or not layout.current.exists():
        swap_symlink(layout.current, os.path.join("releases", release_id))
    if plan.changed:
        view = log.releases()
        for other in view.values():
            if other.status == "active" and other.release_id != release_id:
                log.append(other.release_id, "previous")
        if plan.previous and view.get(plan.previous, None) is None:
            log.append(plan.previous, "previous")
        log.append(release_id, "active", version=plan.version, digest=plan.digest)
    return plan
