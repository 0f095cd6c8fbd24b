"""The ``release`` module."""

from __future__ import annotations

from typing import Any

from tradeops.modrun import module_result
from tradeops.releases.service import ReleaseRequest, ReleaseServiceError, run_release

FIELDS = (
    "root",
    "state",
    "release_id",
    "artifact",
    "shared_links",
    "keep",
    "reason",
    "verify",
    "manifest_digest",
    "version",
    "config_files",
    "prune",
    "replaced",
)


def run(params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """Bring a release to ``params['state']``."""
    if params.get("src"):
        return {
            "failed": True,
            "msg": "src is copied by the tradeops.algo.release action plugin; call the module "
            "by its name, or copy the artifact and give artifact",
        }
    request = ReleaseRequest(**{name: params[name] for name in FIELDS if name in params})
    try:
        outcome = run_release(request, check_mode=check_mode)
    except ReleaseServiceError as exc:
        return {"failed": True, "msg": str(exc), "release_id": params.get("release_id")}
    return module_result(outcome, diff)
