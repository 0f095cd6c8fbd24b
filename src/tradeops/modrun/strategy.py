"""The ``strategy`` module."""

from __future__ import annotations

from typing import Any

from tradeops.modrun import module_result
from tradeops.process.service import StrategyError, StrategyRequest, run_strategy

PARAMS = StrategyRequest


def run(params: StrategyRequest, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Bring the strategy process to ``params.state``."""
    try:
        outcome = run_strategy(params, check_mode=check_mode)
    except StrategyError as exc:
        return {"failed": True, "msg": str(exc), "name": params.name}
    return module_result(outcome, diff)
