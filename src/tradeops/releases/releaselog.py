"""The release log: an append-only, fsync'd JSON-lines record of release order and status.

All ordering comes from this log (the position of a release's first record, or
of its ``staged`` record after it was pruned), never from mtimes or clocks.
Statuses: ``staged``, ``active``, ``previous``, ``bad``, ``rolled-back``,
``pruned``. The latest record of a release wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.log import utc_now_iso
from tradeops.releases.fsutil import append_line

STATUSES = ("staged", "active", "previous", "bad", "rolled-back", "pruned")


@dataclass(frozen=True)
class ReleaseRecord:
    """The current view of one release, folded from the log."""

    release_id: str
    version: str
    digest: str
    status: str
    order: int  # position of the first record (or re-staging after a prune): release order
    updated: str
    seq: int = -1  # position of the latest record: recency, independent of clocks


class ReleaseLog:
    """Read and append the release log of one host."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        """Every well-formed record, in order; a torn or malformed line is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a crash mid-append leaves at most one torn line
            if (
                isinstance(record, dict)
                and record.get("status") in STATUSES
                and isinstance(record.get("release_id"), str)
                and record["release_id"]
            ):
                out.append(record)
        return out

    def append(self, release_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Record ``status`` for ``release_id``."""
        if status not in STATUSES:
            raise ValueError(f"unknown release status {status!r}")
        record = {"ts": utc_now_iso(), "release_id": release_id, "status": status, **fields}
        append_line(self.path, json.dumps(record, sort_keys=True, separators=(",", ":")))
        return record

    def releases(self) -> dict[str, ReleaseRecord]:
        """Fold the log into the latest view of each release, keyed by id.

        ``bad`` is final: a later record (staged again, pruned, removed) does not
        clear it, so a release marked bad is never activated again on this host.
        """
        view: dict[str, ReleaseRecord] = {}
        for index, entry in enumerate(self.entries()):
            rid = entry["release_id"]
            old = view.get(rid)
            status = str(entry["status"])
            if old is not None and old.status == "bad":
                status = "bad"
            restaged = old is not None and old.status == "pruned" and status == "staged"
            view[rid] = ReleaseRecord(
                release_id=rid,
                version=str(entry.get("version") or (old.version if old else "")),
                digest=str(entry.get("digest") or (old.digest if old else "")),
                status=status,
                order=old.order if old and not restaged else index,
                updated=str(entry.get("ts", "")),
                seq=index,
            )
        return view

    def ordered(self) -> list[ReleaseRecord]:
        """Releases in the order they were first staged, oldest first."""
        return sorted(self.releases().values(), key=lambda r: r.order)

    def status_of(self, release_id: str) -> str | None:
        """The latest status of ``release_id``, or None when never logged."""
        record = self.releases().get(release_id)
        return record.status if record else None

    def rollback_target(self, active_id: str | None) -> str | None:
        """The release to go back to: the one most recently made ``previous`` (not bad).

        Recency is the position in the log, not the timestamps (clocks can step back).
        """
        candidates = [
            r
            for r in self.releases().values()
            if r.status == "previous" and r.release_id != active_id
        ]
        return max(candidates, key=lambda r: r.seq).release_id if candidates else None
