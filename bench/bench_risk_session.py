"""Benchmark of ``RiskSession.cancel_all``: 1,000 resting orders over 50 symbols.

Starts ``tradeops sim run`` as a subprocess (50 constant-price symbols, journals
in memory), then ``RUNS`` times: places 1,000 resting buy orders on the
order-entry session, waits until the simulator acknowledged them all, and
times ``cancel_all`` from its start until the venue's mass status confirmed
zero working orders (``CancelReport.confirm_ms``), checked again with the
admin API's ``GET /state``. Two cases:

* ``cancel_all_1000_ms``: the strategy's session is logged out before the
  trip, as after step 2 of a halt (strategy stopped): only the agent reads;
* ``cancel_all_1000_strategy_connected_ms``: the strategy's session stays
  logged on in this process and reads its 1,000 cancels meanwhile.

Prints the figures and writes ``bench/results/risk_session.json``. Bounded:
every wait has a time limit; the simulator is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import write_result  # noqa: E402

from tradeops.agent.risk import RiskSession  # noqa: E402
from tradeops.brokers.base import SessionRole  # noqa: E402
from tradeops.log import EventLog  # noqa: E402
from tradeops.testing.riskbook import OE, RISK, OrderEntry, RiskSim, symbols  # noqa: E402

RUNS = 100  # each places 1,000 orders first (about half a second)
ORDERS = 1000
SYMBOLS = 50


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
        "runs_ms": [round(v, 3) for v in values],
    }


async def one_run(sim: RiskSim, risk: RiskSession, keep_strategy: bool) -> dict[str, Any]:
    strategy = OrderEntry(sim.session_config(OE, SessionRole.ORDER_ENTRY))
    await strategy.session.connect(timeout_s=10)
    try:
        await strategy.rest(ORDERS, symbols(SYMBOLS))
        working = len(sim.working_orders())
        if working != ORDERS:
            raise SystemExit(f"expected {ORDERS} working orders, the simulator has {working}")
        if not keep_strategy:
            await strategy.session.close()
        report = await risk.cancel_all("bench", "cancel_all_1000", timeout_s=30)
    finally:
        if keep_strategy:
            await strategy.session.close()
    left = len(sim.working_orders())
    if not report.clean or left or report.confirm_ms is None:
        raise SystemExit(f"not clean: {report.to_dict()} ({left} working at the venue)")
    return {"confirm_ms": report.confirm_ms, "steps_ms": report.steps_ms}


async def measure(sim: RiskSim) -> dict[str, Any]:
    risk = RiskSession(
        sim.session_config(RISK, SessionRole.RISK), log=EventLog("agent", io.StringIO())
    )
    await risk.start()
    out: dict[str, Any] = {}
    try:
        for name, keep in (
            ("cancel_all_1000_ms", False),
            ("cancel_all_1000_strategy_connected_ms", True),
        ):
            runs = [await one_run(sim, risk, keep) for _unused in range(RUNS)]
            out[name] = summary([r["confirm_ms"] for r in runs])
            out[name]["steps_ms_last_run"] = runs[-1]["steps_ms"]
    finally:
        await risk.close()
    return out


def run() -> dict[str, Any]:
    """Both cases against one simulator subprocess; the figures of ``risk_session.json``."""
    with tempfile.TemporaryDirectory(prefix="bench-risk-") as tmp:
        sim = RiskSim.start(Path(tmp), SYMBOLS)
        try:
            figures = asyncio.run(asyncio.wait_for(measure(sim), 900))
        finally:
            sim.stop()
    figures["setup"] = {
        "orders": ORDERS,
        "symbols": SYMBOLS,
        "runs": RUNS,
        "measured": "cancel_all start -> the venue's mass status confirms zero working orders",
        "simulator": "tradeops sim run subprocess, journals in memory, loopback",
    }
    return figures


def main() -> int:
    figures = run()
    path = write_result("risk_session", figures)
    for name in ("cancel_all_1000_ms", "cancel_all_1000_strategy_connected_ms"):
        f = figures[name]
        print(f"{name}: median {f['p50']} ms over {f['n']} runs {f['runs_ms']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
