"""Prune old releases: keep N, never the active one or the rollback target.

Which releases are old comes from the release log's order, never from mtimes.
Directories that the log does not know are reported and left alone.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from tradeops.releases.fsutil import fsync_dir
from tradeops.releases.layout import Layout
from tradeops.releases.releaselog import ReleaseLog


@dataclass
class PrunePlan:
    """Releases to remove and to keep, with the reason each is kept."""

    remove: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when something would be removed."""
        return bool(self.remove)


def plan_prune(layout: Layout, keep: int) -> PrunePlan:
    """Decide which releases to remove, changing nothing."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    log = ReleaseLog(layout.release_log)
    active = layout.current_release()
    rollback = log.rollback_target(active)
    present = {
        p.name for p in layout.releases.iterdir() if p.is_dir() and not p.name.startswith(".")
    }
    ordered = [r for r in log.ordered() if r.release_id in present and r.status != "pruned"]
    plan = PrunePlan(unknown=sorted(present - {r.release_id for r in log.ordered()}))
    newest = {r.release_id for r in ordered[-keep:]}
    for record in ordered:
        rid = record.release_id
        if rid == active:
            plan.keep[rid] = "active"
        elif rid == rollback:
            plan.keep[rid] = "rollback target"
        elif rid in newest:
            plan.keep[rid] = f"among the newest {keep}"
        else:
            plan.remove.append(rid)
    return plan


def prune(layout: Layout, keep: int) -> PrunePlan:
    """Remove the releases ``plan_prune`` selects and record them as pruned."""
    plan = plan_prune(layout, keep)
    log = ReleaseLog(layout.release_log)
    for rid in plan.remove:
        # Rename out of releases/ first so a crash never leaves half a release there.
        doomed = layout.staging / f"{rid}.prune"
        (layout.releases / rid).rename(doomed)
        fsync_dir(layout.releases)
        shutil.rmtree(doomed)
        log.append(rid, "pruned")
    return plan
