"""Prune old releases: keep N, never the active one or the rollback target.

Which releases are old comes from the release log's order, never from mtimes.
Directories that the log does not know (or records as pruned) are reported and
left alone.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeops.releases.fsutil import crashpoint, fsync_dir
from tradeops.releases.layout import Layout
from tradeops.releases.releaselog import ReleaseLog

PRUNE_SUFFIX = ".prune"


@dataclass
class PrunePlan:
    """Releases to remove and to keep, with the reason each is kept."""

    remove: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # removals a crash interrupted

    @property
    def changed(self) -> bool:
        """True when something would be removed, or a crash left a removal to finish."""
        return bool(self.remove or self.unfinished)


def _present(layout: Layout) -> set[str]:
    if not layout.releases.is_dir():
        return set()
    return {
        p.name
        for p in layout.releases.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    }


def plan_prune(layout: Layout, keep: int) -> PrunePlan:
    """Decide which releases to remove, changing nothing.

    Kept whatever their age: the release ``current`` points to, any release the
    log says is active (after a crash between the swap and the log they differ),
    and the rollback target. Unknown directories are reported, never removed.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    log = ReleaseLog(layout.release_log)
    current = layout.current_release()
    rollback = log.rollback_target(current)
    present = _present(layout)
    ordered = [r for r in log.ordered() if r.release_id in present and r.status != "pruned"]
    plan = PrunePlan(
        unknown=sorted(present - {r.release_id for r in ordered}),
        unfinished=[d.name[: -len(PRUNE_SUFFIX)] for d in _leftovers(layout)],
    )
    newest = {r.release_id for r in ordered[-keep:]}
    for record in ordered:
        rid = record.release_id
        if rid == current:
            plan.keep[rid] = "active"
        elif record.status == "active":
            plan.keep[rid] = "active in the release log"
        elif rid == rollback:
            plan.keep[rid] = "rollback target"
        elif rid in newest:
            plan.keep[rid] = f"among the newest {keep}"
        else:
            plan.remove.append(rid)
    return plan


def _leftovers(layout: Layout) -> list[Path]:
    """``.staging/<id>.prune`` directories: removals a crash interrupted."""
    if not layout.staging.is_dir():
        return []
    return sorted(
        d
        for d in layout.staging.iterdir()
        if d.name.endswith(PRUNE_SUFFIX) and d.is_dir() and not d.is_symlink()
    )


def _finish_leftovers(layout: Layout, log: ReleaseLog) -> None:
    """Complete removals a crash interrupted: ``.staging/<id>.prune`` directories."""
    for doomed in _leftovers(layout):
        rid = doomed.name[: -len(PRUNE_SUFFIX)]
        # A release staged again under that id since the crash is not the one pruned.
        restaged = (layout.releases / rid).exists()
        if not restaged and log.status_of(rid) not in (None, "pruned"):
            log.append(rid, "pruned")
        shutil.rmtree(doomed)


def prune(layout: Layout, keep: int) -> PrunePlan:
    """Remove the releases ``plan_prune`` selects and record them as pruned.

    Each release is renamed out of ``releases/`` first (atomic), then logged as
    pruned, then deleted; a crash part-way is completed by the next run.
    """
    plan = plan_prune(layout, keep)
    log = ReleaseLog(layout.release_log)
    _finish_leftovers(layout, log)
    for rid in plan.remove:
        remove_release(layout, log, rid)
    return plan


def remove_release(layout: Layout, log: ReleaseLog, rid: str, **fields: Any) -> None:
    """Remove ``releases/<rid>`` crash-safely and log it as pruned (``fields`` go in the log).

    The release is renamed out of ``releases/`` first (atomic), then logged, then
    deleted; ``prune`` completes a removal that a crash interrupted.
    """
    layout.staging.mkdir(parents=True, exist_ok=True)
    doomed = layout.staging / f"{rid}{PRUNE_SUFFIX}"
    (layout.releases / rid).rename(doomed)
    fsync_dir(layout.releases)
    fsync_dir(layout.staging)
    crashpoint("prune:renamed")
    log.append(rid, "pruned", **fields)
    crashpoint("prune:logged")
    shutil.rmtree(doomed)
