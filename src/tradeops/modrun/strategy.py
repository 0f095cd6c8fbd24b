"""The ``strategy`` module."""

from __future__ import annotations

from typing import Any

from tradeops.modrun import module_result
from tradeops.process.service import StrategyError, StrategyRequest, run_strategy

FIELDS = ("root", "name", "state", "manager", "definition", "status_url", "release_id", "timeout")


def run(params: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """Bring the strategy process to ``params['state']``."""
    request = StrategyRequest(**{name: params[name] for name in FIELDS if name in params})
    try:
        outcome = run_strategy(request, check_mode=check_mode)
    except StrategyError as exc:
        return {"failed": True, "msg": str(exc), "name": params.get("name")}
    return module_result(outcome, diff)
