"""The strategy module through ``tradeops.modrun``: params in, result out, errors answered.

The process management itself is tested against a real supervisord in tests/unit/process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tradeops.modrun.strategy
from tests.unit.modrun.conftest import handle
from tradeops.modrun.api import API_VERSION
from tradeops.process.service import StrategyError, StrategyOutcome, StrategyRequest

from .conftest import modrun_answer


def strategy_params(root: Path, **over: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "root": str(root),
        "name": "strat",
        "state": "started",
        "manager": "supervisord",
        "definition": None,
        "status_url": None,
        "release_id": None,
        "timeout": 30.0,
    }
    params.update(over)
    return params


def strategy(
    root: Path, check_mode: bool = False, diff: bool = False, **over: Any
) -> dict[str, Any]:
    request = {"api": API_VERSION, "module": "strategy", "params": strategy_params(root, **over)}
    return handle({**request, "check_mode": check_mode, "diff": diff})


def test_params_become_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[StrategyRequest, bool]] = []

    def fake(request: StrategyRequest, check_mode: bool = False) -> StrategyOutcome:
        seen.append((request, check_mode))
        return StrategyOutcome(True, {"action": "restart"}, [{"before": "a", "after": "b"}])

    monkeypatch.setattr(tradeops.modrun.strategy, "run_strategy", fake)
    params = strategy_params(
        tmp_path,
        state="restarted",
        definition="[program:strat]\n",
        status_url="http://127.0.0.1:1/status",
        release_id="r2",
        timeout=5.0,
    )
    result = handle(
        {
            "api": API_VERSION,
            "module": "strategy",
            "params": params,
            "check_mode": True,
            "diff": True,
        }
    )
    assert result == {
        "action": "restart",
        "changed": True,
        "diff": [{"before": "a", "after": "b"}],
    }
    assert seen == [
        (
            StrategyRequest(
                str(tmp_path),
                "strat",
                "restarted",
                "supervisord",
                "[program:strat]\n",
                "http://127.0.0.1:1/status",
                "r2",
                5.0,
            ),
            True,
        )
    ]
    no_diff = handle({"api": API_VERSION, "module": "strategy", "params": params})
    assert "diff" not in no_diff


def test_a_strategy_error_is_a_failed_result_naming_the_program(tmp_path: Path) -> None:
    result = strategy(tmp_path)
    assert result["failed"] is True
    assert result["name"] == "strat"
    assert "supervisord is not running" in result["msg"]
    assert "exception" not in result


def test_release_id_without_status_url_fails(tmp_path: Path) -> None:
    result = strategy(tmp_path, release_id="r2")
    assert result == {
        "failed": True,
        "msg": "release_id needs status_url: the release is read from the process",
        "name": "strat",
    }


def test_an_unexpected_error_is_answered_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: StrategyRequest, check_mode: bool = False) -> StrategyOutcome:
        raise RuntimeError("socket vanished")

    monkeypatch.setattr(tradeops.modrun.strategy, "run_strategy", broken)
    result = strategy(tmp_path)
    assert result["failed"] is True
    assert result["msg"] == "strategy: unexpected RuntimeError: socket vanished"
    assert "RuntimeError: socket vanished" in result["exception"]


def test_a_strategy_error_from_the_service_keeps_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuses(request: StrategyRequest, check_mode: bool = False) -> StrategyOutcome:
        raise StrategyError("strat reports release r1 (pid 7), expected r2 within 30s")

    monkeypatch.setattr(tradeops.modrun.strategy, "run_strategy", refuses)
    result = strategy(tmp_path, status_url="http://x/status", release_id="r2")
    assert result["failed"] is True
    assert result["msg"] == "strat reports release r1 (pid 7), expected r2 within 30s"


def test_process_without_supervisord(tmp_path: Path) -> None:
    answer = modrun_answer(
        {"api": API_VERSION, "module": "strategy", "params": strategy_params(tmp_path)}
    )
    assert answer["failed"] is True
    assert "supervisord" in answer["msg"]
