"""The ``cutover`` module."""

from __future__ import annotations

from typing import Any

from tradeops.modrun import module_result
from tradeops.process.service import StrategyRequest
from tradeops.releases.cutover import CutoverError, run_cutover
from tradeops.releases.service import ReleaseRequest, ReleaseServiceError

RELEASE_FIELDS = (
    "root",
    "release_id",
    "manifest_digest",
    "shared_links",
    "verify",
    "keep",
    "prune",
    "replaced",
)
STRATEGY_FIELDS = ("root", "name", "manager", "definition", "status_url", "timeout")


def run(params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """Activate ``params['release_id']``, then restart the strategy on it."""
    release = ReleaseRequest(
        state="active", **{name: params[name] for name in RELEASE_FIELDS if name in params}
    )
    strategy = None
    if params.get("name"):
        strategy = StrategyRequest(
            state="restarted",
            release_id=params["release_id"] if params.get("status_url") else None,
            **{name: params[name] for name in STRATEGY_FIELDS if params.get(name) is not None},
        )
    try:
        outcome = run_cutover(release, strategy, check_mode=check_mode)
    except ReleaseServiceError as exc:
        return {"failed": True, "msg": str(exc), "release_id": params.get("release_id")}
    except CutoverError as exc:
        return {**exc.result, "failed": True, "changed": exc.changed, "msg": str(exc)}
    return module_result(outcome, diff)
