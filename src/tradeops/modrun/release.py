"""The ``release`` module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradeops.modrun import module_result
from tradeops.releases.service import ReleaseRequest, ReleaseServiceError, run_release


@dataclass
class ReleaseParams(ReleaseRequest):
    """The module's parameters: the release service's request, and ``src``.

    ``src`` is the controller's: the action plugin transfers it and sends
    ``artifact`` instead; it is declared so that the module file can pass its
    parameters as they are, and refused here when set.
    """

    src: str | None = None


PARAMS = ReleaseParams


def run(params: ReleaseParams, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Bring a release to ``params.state``."""
    if params.src:
        return {
            "failed": True,
            "msg": "src is copied by the tradeops.algo.release action plugin; call the module "
            "by its name, or copy the artifact and give artifact",
        }
    try:
        outcome = run_release(params, check_mode=check_mode)
    except ReleaseServiceError as exc:
        return {"failed": True, "msg": str(exc), "release_id": params.release_id}
    return module_result(outcome, diff)
