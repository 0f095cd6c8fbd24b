"""Benchmark of ``flatten``: the kill-switch agent closes 50 positions at the simulator.

Starts ``tradeops sim run`` as a subprocess (50 constant-price symbols, fills in
full on arrival, journals in memory) and keeps one risk session logged on. Then
``RUNS`` times:

1. a strategy session opens 50 positions, one per symbol (``OrderEntry.take``:
   marketable limit orders, alternately long and short, 1 to 5 lots), and
   leaves ``RESTING`` buy orders resting far below the market; both are checked
   against the simulator's admin API (``GET /state``);
2. the strategy's session is logged out, as after step 2 of a halt;
3. ``flatten`` runs on the risk session (cancel all, RequestForPositions,
   one collared reduce-only order per open position, positions again) and is
   timed from its start until the venue's complete set of PositionReports shows
   every symbol flat (``FlattenReport.total_ms``, set right after that answer);
4. the report must say ``flat`` and the simulator's own state must show zero
   positions and zero working orders for the account; otherwise the benchmark
   stops with the reason.

Figure: ``flatten_50_ms`` (target p50 <= 250 ms), with the step breakdown of
the last run. Prints the figures and writes ``bench/results/flatten.json``.
Bounded: every wait has a time limit; the simulator is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from bench_risk_session import summary  # noqa: E402
from common import write_result  # noqa: E402

from tradeops.agent.flatten import FlattenPolicy, flatten  # noqa: E402
from tradeops.agent.risk import RiskSession  # noqa: E402
from tradeops.brokers.base import SessionRole  # noqa: E402
from tradeops.log import EventLog  # noqa: E402
from tradeops.testing.riskbook import (  # noqa: E402
    OE,
    RISK,
    TICK,
    OrderEntry,
    RiskSim,
    symbols,
)

RUNS = 20
SYMBOLS = 50
RESTING = 100  # the strategy's resting orders, cancelled by flatten's first step
TARGET_P50_MS = 250.0


def wanted_positions() -> dict[str, Decimal]:
    """One position per symbol: alternately long and short, 1 to 5 lots."""
    return {
        s: Decimal(1 + i % 5) * (1 if i % 2 == 0 else -1) for i, s in enumerate(symbols(SYMBOLS))
    }


async def open_book(sim: RiskSim, wanted: dict[str, Decimal]) -> None:
    """Open ``wanted`` and leave ``RESTING`` orders with a strategy session, then log it out."""
    async with OrderEntry(sim.session_config(OE, SessionRole.ORDER_ENTRY)) as strategy:
        await strategy.take(wanted)
        await strategy.rest(RESTING, symbols(SYMBOLS))
    have = sim.positions()
    if have != wanted:
        diff = {s: (have.get(s), q) for s, q in wanted.items() if have.get(s) != q}
        raise SystemExit(f"positions not opened at the simulator (have, wanted): {diff}")
    working = len(sim.working_orders())
    if working != RESTING:
        raise SystemExit(f"expected {RESTING} working orders, the simulator has {working}")


async def one_run(sim: RiskSim, risk: RiskSession, policy: FlattenPolicy) -> dict[str, Any]:
    wanted = wanted_positions()
    await open_book(sim, wanted)
    t0 = time.perf_counter()
    report = await flatten(risk, "bench", "flatten_50", policy)
    call_ms = (time.perf_counter() - t0) * 1000.0
    left = sim.positions()
    working = sim.working_orders()
    if not report.flat or left or working:
        raise SystemExit(
            f"not flat: report flat={report.flat} errors={report.errors}"
            f" still_open={report.still_open}; the simulator has {len(left)} open positions"
            f" {dict(list(left.items())[:5])} and {len(working)} working orders"
        )
    closed = {s: e.start_qty for s, e in report.symbols.items()}
    if closed != wanted:
        raise SystemExit(f"flatten closed {len(closed)} positions, expected {len(wanted)}")
    return {
        "total_ms": report.total_ms,
        "call_ms": call_ms,
        "attempts": report.attempts,
        "steps_ms": report.steps_ms,
        "cancel_steps_ms": report.cancel.steps_ms if report.cancel else {},
        "cancelled_by_mass": report.cancel.cancelled_by_mass if report.cancel else 0,
    }


async def measure(sim: RiskSim) -> dict[str, Any]:
    risk = RiskSession(
        sim.session_config(RISK, SessionRole.RISK), log=EventLog("agent", io.StringIO())
    )
    policy = FlattenPolicy(tick_sizes={s: TICK for s in symbols(SYMBOLS)})
    await risk.start()
    try:
        runs = [await one_run(sim, risk, policy) for _unused in range(RUNS)]
    finally:
        await risk.close()
    figure = summary([r["total_ms"] for r in runs])
    figure["call_ms"] = summary([r["call_ms"] for r in runs])
    figure["attempts_per_run"] = [r["attempts"] for r in runs]
    figure["steps_ms_last_run"] = runs[-1]["steps_ms"]
    figure["cancel_steps_ms_last_run"] = runs[-1]["cancel_steps_ms"]
    figure["cancelled_by_mass_last_run"] = runs[-1]["cancelled_by_mass"]
    figure["target_p50_ms"] = TARGET_P50_MS
    figure["target_met"] = figure["p50"] <= TARGET_P50_MS
    return {"flatten_50_ms": figure}


def run() -> dict[str, Any]:
    """Every run against one simulator subprocess; the figures of ``flatten.json``."""
    with tempfile.TemporaryDirectory(prefix="bench-flatten-") as tmp:
        sim = RiskSim.start(Path(tmp), SYMBOLS)
        try:
            figures = asyncio.run(asyncio.wait_for(measure(sim), 900))
        finally:
            sim.stop()
    figures["setup"] = (
        f"{RUNS} runs against one `tradeops sim run` subprocess on loopback ({SYMBOLS}"
        " constant-price symbols, fills in full on arrival, journals in memory). Each run: a"
        f" strategy session opens {SYMBOLS} positions (one per symbol, alternately long and"
        f" short, 1-5 lots, marketable limits) and leaves {RESTING} resting orders, then logs"
        " out; flatten() on the already logged-on risk session (cancel all, RequestForPositions,"
        " one collared reduce-only limit per position, positions again) is timed from its start"
        " until the venue's complete set of PositionReports shows all flat"
        " (FlattenReport.total_ms); each run is checked flat by the report and by the"
        " simulator's GET /state (zero positions, zero working orders)."
    )
    return figures


def main() -> int:
    figures = run()
    path = write_result("flatten", figures)
    f = figures["flatten_50_ms"]
    print(
        f"flatten_50_ms: p50 {f['p50']} p99 {f['p99']} max {f['max']} ms over {f['n']} runs"
        f" (target p50 <= {TARGET_P50_MS}: {'met' if f['target_met'] else 'NOT met'})"
    )
    print(f"  runs_ms {f['runs_ms']}")
    print(f"  steps of the last run {f['steps_ms_last_run']}")
    print(f"  cancel steps of the last run {f['cancel_steps_ms_last_run']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
