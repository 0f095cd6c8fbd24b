"""Fixtures of the risk-session tests: a real simulator subprocess on loopback.

``risk_sim(n_symbols, **config)`` starts ``tradeops sim run``
(:class:`tradeops.testing.riskbook.RiskSim`) and stops every one it started, by
PID, at teardown. Without a usable loopback or the FIX library the test is
skipped with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tradeops.testing.riskbook import RiskSim


def _missing() -> str | None:
    for module in ("asyncfix", "yaml"):
        if importlib.util.find_spec(module) is None:
            return f"the Python module {module} is not installed"
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        return f"cannot bind a loopback port: {exc}"
    return None


def run(coro: Any, timeout_s: float = 120.0) -> Any:
    """Run ``coro`` to completion with an overall time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture
def risk_sim(tmp_path: Path) -> Iterator[Callable[..., RiskSim]]:
    """Factory of simulator subprocesses; each is stopped by its PID at teardown."""
    reason = _missing()
    if reason:
        unavailable(reason)
    started: list[RiskSim] = []

    def factory(n_symbols: int = 50, **config: Any) -> RiskSim:
        sub = tmp_path / f"sim{len(started)}"
        sub.mkdir()
        sim = RiskSim.start(sub, n_symbols, **config)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()
