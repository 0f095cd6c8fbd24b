"""Benchmark of the simulator and the FIX adapter on loopback.

Starts ``tradeops sim run`` as a subprocess (JSON log to a file), connects a
:class:`FixSession` from this process and measures, with the journals of both
ends in memory (the simulator's default), then again on disk
(``journal_on_disk``, SQLite WAL as the sessions of a trading host keep them):

* ``nos_ack_rtt_us``: NewOrderSingle -> ack ExecutionReport round trip, one
  order at a time, measured by the adapter ({p50, p99, max, n});
* ``adapter_orders_per_s``: the adapter's sustained rate with up to ``WINDOW``
  orders in flight;
* ``quickfix``: the same two figures from a QuickFIX (C++) initiator on its
  own session, in the same run: the reference client, which spends little time
  per message, so its ``orders_per_s`` is the simulator's sustained rate
  (the top-level ``orders_per_s``);
* ``sim_capacity``: the simulator's own measure (``GET /state``): new orders
  handled per second of its busy time.

Bounded: ``RTT_ORDERS`` + ``RATE_ORDERS`` orders per client, at most ``CAP_S``
seconds per phase. The simulator is stopped by its PID at the end. Writes
``bench/results/sim.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import quickfix_load  # noqa: E402
from common import write_result  # noqa: E402

from tradeops.brokers.base import (  # noqa: E402
    BrokerEvent,
    Execution,
    NewOrder,
    SessionConfig,
    Side,
)
from tradeops.brokers.fix import FixSession  # noqa: E402

RTT_ORDERS = 1000
RATE_ORDERS = 5000
WINDOW = 50
CAP_S = 20.0

CONFIG = """
host: 127.0.0.1
port_base: 0
admin: {port: 0}
seed: 1
tick_interval_ms: 250
throttle: {window_ms: 1000, reject_limit: 0, disconnect_limit: 0}
symbols:
  - {symbol: ESZ5, price: 5000, tick_size: 0.25, spread_ticks: 1, volatility_ticks: 1}
accounts:
  - account: ACC1
    sessions:
      - {role: order_entry, comp_id: ACC1_OE}
      - {role: drop_copy, comp_id: ACC1_DC}
      - {role: risk, comp_id: ACC1_RISK}
      - {role: order_entry, comp_id: ACC1_QF}
"""


def start_sim(tmp: Path, journal_on_disk: bool = True) -> tuple[subprocess.Popen[str], dict]:
    cfg = tmp / "sim.yml"
    cfg.write_text(CONFIG, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "tradeops.cli.main", "sim", "run", "--config", str(cfg),
           "--log-file", str(tmp / "sim.log")]  # fmt: skip
    if journal_on_disk:
        cmd += ["--store-dir", str(tmp / "sim-store")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    box: dict[str, str] = {}
    reader = threading.Thread(target=lambda: box.update(line=proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    if not box.get("line"):
        stop_sim(proc)
        raise SystemExit("simulator did not start")
    return proc, json.loads(box["line"])


def stop_sim(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(15)
    if proc.stdout:
        proc.stdout.close()


def percentile(sorted_values: list[float], pct: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def measure(port: int, store: str | None) -> dict:
    acks: dict[str, asyncio.Future[int]] = {}

    def on_event(event: BrokerEvent) -> None:
        if isinstance(event, Execution) and event.exec_type in ("0", "8"):
            fut = acks.pop(event.cl_ord_id, None)
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter_ns())

    cfg = SessionConfig("127.0.0.1", port, "ACC1_OE", "SIM", account="ACC1", store_dir=store)
    session = FixSession(cfg, on_event)
    await session.connect(10)
    loop = asyncio.get_running_loop()
    price = Decimal(4000)  # far below the market: every order rests
    try:
        rtts: list[float] = []
        deadline = time.monotonic() + CAP_S
        for i in range(RTT_ORDERS):
            if time.monotonic() > deadline:
                break
            cl = f"rtt-{i}"
            fut = acks[cl] = loop.create_future()
            t0 = time.perf_counter_ns()
            await session.send_order(NewOrder(cl, "ESZ5", Side.BUY, Decimal(1), price=price))
            t1 = await asyncio.wait_for(fut, 10)
            rtts.append((t1 - t0) / 1000)
        await session.mass_cancel("bench-mc1")

        sem = asyncio.Semaphore(WINDOW)
        done = 0
        pending: set[asyncio.Future[int]] = set()

        def release(_fut: asyncio.Future[int]) -> None:
            nonlocal done
            done += 1
            sem.release()

        t_start = time.perf_counter()
        deadline = time.monotonic() + CAP_S
        for i in range(RATE_ORDERS):
            if time.monotonic() > deadline:
                break
            await asyncio.wait_for(sem.acquire(), 10)
            cl = f"rate-{i}"
            fut = acks[cl] = loop.create_future()
            fut.add_done_callback(release)
            pending.add(fut)
            await session.send_order(NewOrder(cl, "ESZ5", Side.BUY, Decimal(1), price=price))
        await asyncio.wait_for(asyncio.gather(*pending), 30)
        elapsed = time.perf_counter() - t_start
        await session.mass_cancel("bench-mc2")
    finally:
        await session.close()
    rtts.sort()
    return {
        "nos_ack_rtt_us": {
            "p50": round(percentile(rtts, 50), 1),
            "p99": round(percentile(rtts, 99), 1),
            "max": round(rtts[-1], 1),
            "n": len(rtts),
        },
        "adapter_orders_per_s": round(done / elapsed, 1),
        "orders_in_rate_phase": done,
        "window": WINDOW,
        "transport": "TCP loopback, simulator in a subprocess",
    }


def sim_state(admin_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/state", timeout=10) as resp:
        return json.load(resp)


def run_sim(tmp: Path, journal_on_disk: bool) -> dict:
    """Both clients against one simulator; the journals of both ends on disk or in memory."""
    tmp.mkdir(parents=True, exist_ok=True)
    proc, ready = start_sim(tmp, journal_on_disk)
    sessions = ready["sessions"]
    try:
        client_store = str(tmp / "client") if journal_on_disk else None
        figures = asyncio.run(measure(sessions["ACC1_OE"]["port"], client_store))
        reference = quickfix_load.run(
            sessions["ACC1_QF"]["port"], "ACC1_QF", RTT_ORDERS, RATE_ORDERS, WINDOW, CAP_S
        )
        figures["quickfix"] = reference
        figures["orders_per_s"] = reference["orders_per_s"]
        figures["sim_capacity"] = sim_state(ready["admin_port"])["capacity"].get("D")
    finally:
        stop_sim(proc)
    return figures


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmpdir:
        tmp = Path(tmpdir)
        # The simulator as shipped keeps its journals in memory (store_dir: null).
        figures = run_sim(tmp / "memory", journal_on_disk=False)
        figures["journal"] = "in memory, both ends (the simulator's default)"
        on_disk = run_sim(tmp / "disk", journal_on_disk=True)
        on_disk["journal"] = "SQLite WAL, synchronous=NORMAL, both ends"
        figures["journal_on_disk"] = on_disk
    path = write_result("sim", figures)
    print(json.dumps(figures, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
