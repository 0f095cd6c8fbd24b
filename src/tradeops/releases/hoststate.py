"""What a host really runs, read from the host: ``current``, the release log, the lock.

The deploy's plan and ``tradeops.algo.status`` read it on every targeted host
before anything changes (docs/deploy.md, "What the deploy trusts"). A host
whose ``current`` the release log cannot explain is *drift*: a release
directory the log never staged, or a log that says another release is active.
Drift is reported, never adopted: a rollback target is only ever a logged
release. With ``verify_current`` the active release is also re-hashed against
its MANIFEST and the digest the log recorded: a live release whose files
changed since staging is *altered*.
"""

from __future__ import annotations

from typing import Any

from tradeops.releases.layout import Layout
from tradeops.releases.lock import DeployLock
from tradeops.releases.manifest import Manifest, ManifestError, verify_tree
from tradeops.releases.releaselog import ReleaseLog, ReleaseRecord
from tradeops.releases.staging import DEFAULT_SHARED_LINKS


def drift_of(layout: Layout, current: str | None, logged: str | None) -> str | None:
    """Why the release log cannot explain ``current`` (logged as ``logged``); None if it can."""
    if current is None:
        return None
    if not (layout.releases / current).is_dir() or layout.current.resolve().parent != (
        layout.releases.resolve()
    ):
        return f"current -> {current}, which is not a release directory under releases/"
    if logged is None:
        return f"current -> {current}, a release directory the release log has never staged"
    if logged == "pruned":
        return f"current -> {current}, which the release log says was pruned"
    return None


def pending_of(current: str | None, log_active: list[str]) -> str | None:
    """An activation a crash interrupted (swapped, not yet logged): the next one completes it."""
    others = [rid for rid in log_active if rid != current]
    if current is not None and others:
        return f"current -> {current}, while the release log still says {others[-1]} is active"
    return None


def altered_of(layout: Layout, current: str, record: ReleaseRecord) -> str | None:
    """Why the active release no longer is what was staged (None if it verifies)."""
    release = layout.releases / current
    try:
        manifest = Manifest.load(release)
    except (ManifestError, OSError) as exc:
        return f"{current}: its MANIFEST cannot be read: {exc}"
    if record.digest and manifest.digest != record.digest:
        return (
            f"{current}: its MANIFEST has sha256 {manifest.digest[:12]}, "
            f"the release log staged {record.digest[:12]}"
        )
    found = verify_tree(release, manifest, ignore=frozenset(DEFAULT_SHARED_LINKS))
    if not found.ok:
        return f"{current}: changed on disk since it was staged ({found.describe()})"
    return None


def read_host_state(
    layout: Layout, lock_ttl_s: int | None = None, verify_current: bool = False
) -> dict[str, Any]:
    """The release state and the lock of one host, read-only (``altered`` when verified)."""
    try:
        current = layout.current_release()
        broken = None
    except RuntimeError as exc:
        current, broken = None, str(exc)
    log = ReleaseLog(layout.release_log)
    view = log.releases()
    log_active = [r.release_id for r in sorted(view.values(), key=lambda r: r.seq)]
    log_active = [rid for rid in log_active if view[rid].status == "active"]
    logged = view[current].status if current in view else None
    drift = broken or drift_of(layout, current, logged)
    altered = None
    if verify_current and current is not None and not drift:
        altered = altered_of(layout, current, view[current])
    lock = (
        DeployLock(layout.deploy_lock)
        if lock_ttl_s is None
        else DeployLock(layout.deploy_lock, ttl_s=lock_ttl_s)
    ).read()
    return {
        "current": current,
        "current_status": logged,
        "log_active": log_active,
        "rollback_target": log.rollback_target(current) if not drift else None,
        "drift": drift,
        "altered": altered,
        "verified": bool(verify_current and current is not None and not drift and not altered),
        "pending": None if drift else pending_of(current, log_active),
        "lock": lock.as_dict() if lock else None,
    }
