"""Cut a host over: swap ``current`` to a staged release, then restart the strategy on it.

This is the deploy's cutover phase in one call, so one SSH round trip per host.
First comes the activation of ``releases.service`` (with its prune). Then the
restart of ``process.service`` waits until the new process reports the
release. A later issue replaces the plain restart with the blue/green
warm-standby handover, here.

A host that already runs the release (``current`` unchanged and the process
reporting it, and the config digest the controller rendered when one is given)
is not restarted, unless its program definition changed: a deploy that
converges a partly updated fleet leaves the good hosts trading. A process that
runs another config, or does not report its config, is restarted: code and
config move, and are checked, together.

When the restart or the wait fails, ``current`` stays on the new release. The
failure carries the activation's result (``previous``, and ``changed`` when
``current`` moved), so that the caller can switch the host back. So does a
failure of the activation itself after its swap (the prune, or the release-log
append), read from ``current`` before and after: a host that moved is never
reported as untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tradeops.process.running import read_running
from tradeops.process.service import StrategyError, StrategyRequest, run_strategy
from tradeops.releases.layout import Layout
from tradeops.releases.service import (
    Outcome,
    ReleaseRequest,
    ReleaseServiceError,
    diff_list,
    run_release,
)


class CutoverError(RuntimeError):
    """The cutover failed; ``result`` and ``changed`` say what it did before that."""

    def __init__(self, message: str, result: dict[str, Any], changed: bool) -> None:
        super().__init__(message)
        self.result = result
        self.changed = changed


@dataclass
class CutoverOutcome:
    """What the cutover did (or would do, in check mode)."""

    changed: bool
    result: dict[str, Any]
    diff: list[dict[str, Any]] = field(default_factory=list)


def run_cutover(
    release: ReleaseRequest,
    strategy: StrategyRequest | None,
    check_mode: bool = False,
    config_sha256: str | None = None,
) -> CutoverOutcome:
    """Activate ``release``, then bring ``strategy`` (if any) up on it; see the module docs.

    Raises ``ReleaseServiceError`` when the activation fails before its swap
    (nothing moved) and ``CutoverError`` when anything fails after it.
    """
    if release.state != "active":
        raise ValueError(f"a cutover activates a release, not state={release.state!r}")
    before = _current(release.root)
    try:
        activated: Outcome = run_release(release, check_mode=check_mode)
    except ReleaseServiceError as exc:
        after = _current(release.root)
        if check_mode or after == before:
            raise
        moved = {"release_id": release.release_id, "previous": before, "current": after}
        raise CutoverError(
            f"{exc}; current had already moved from {before} to {after}, and the strategy "
            "was not restarted",
            moved,
            True,
        ) from exc
    result = dict(activated.result)
    if strategy is None:
        return CutoverOutcome(activated.changed, result, diff_list(activated))
    # A host that already runs the release and its config restarts only for a
    # changed definition.
    runs_it = False
    if not activated.changed and strategy.status_url and strategy.release_id:
        running = read_running(str(strategy.status_url))
        runs_it = running.release_id == strategy.release_id and (
            config_sha256 is None or running.config_sha256 == config_sha256
        )
    state = "started" if runs_it else "restarted"
    try:
        restarted = run_strategy(replace(strategy, state=state), check_mode=check_mode)
    except StrategyError as exc:
        raise CutoverError(str(exc), result, activated.changed) from exc
    result["strategy"] = restarted.result
    changed = activated.changed or restarted.changed
    return CutoverOutcome(changed, result, diff_list(activated) + list(restarted.diff))


def _current(root: str) -> str | None:
    """The release ``current`` points at under ``root`` (None when unreadable)."""
    try:
        return Layout.at(root).current_release()
    except (OSError, ValueError, RuntimeError):
        return None
