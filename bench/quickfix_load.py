"""NewOrderSingle load from a QuickFIX initiator: the reference client of the sim bench.

QuickFIX (C++) spends little time per message, so what it measures is the
simulator, not the client. Used by ``bench_sim.py`` (sequential round trips
and a sustained rate with a window of orders in flight); needs QuickFIX
(``scripts/quickfix-wheel.sh``).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import quickfix as fix
import quickfix44 as f44

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conformance.quickfix_peer import Recorder, require_dictionary, settings  # noqa: E402


class _Acks(Recorder):
    """Records the time of each order's first ExecutionReport (New or Rejected)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, int] = {}
        self.acked: dict[str, int] = {}
        self.rejected = 0
        self.window: threading.Semaphore | None = None

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        """An ExecutionReport acks the order it names (recorded without the raw text)."""
        now = time.perf_counter_ns()
        if msg.getHeader().getField(35) != "8":
            return
        exec_type = msg.getField(150)
        if exec_type not in ("0", "8"):
            return
        cl = msg.getField(11)
        with self.cv:
            if cl in self.sent and cl not in self.acked:
                self.acked[cl] = now
                self.rejected += exec_type == "8"
                if self.window is not None:
                    self.window.release()
                self.cv.notify_all()


def _order(cl: str) -> fix.Message:
    msg = f44.NewOrderSingle()
    now = time.strftime("%Y%m%d-%H:%M:%S")
    for tag, value in ((11, cl), (1, "ACC1"), (55, "ESZ5"), (54, "1"), (38, "1"), (40, "2"),
                       (44, "4000"), (59, "0"), (60, now)):  # fmt: skip
        msg.setField(tag, value)
    return msg


def _mass_cancel(cl: str) -> fix.Message:
    msg = f44.OrderMassCancelRequest()
    for tag, value in ((11, cl), (530, "7"), (60, time.strftime("%Y%m%d-%H:%M:%S"))):
        msg.setField(tag, value)
    return msg


def run(
    port: int, comp_id: str, rtt_orders: int, rate_orders: int, window: int, cap_s: float
) -> dict[str, Any]:
    """Sequential round trips, then ``rate_orders`` with ``window`` in flight."""
    with tempfile.TemporaryDirectory(prefix="bench-qf-") as tmp:
        work = Path(tmp)
        session = {"BeginString": "FIX.4.4", "SenderCompID": comp_id, "TargetCompID": "SIM",
                   "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port}  # fmt: skip
        conf = settings(work / "initiator.cfg", [session], initiator=True,
                        dictionary=require_dictionary(), work=work)  # fmt: skip
        app = _Acks()
        initiator = fix.SocketInitiator(app, fix.MemoryStoreFactory(), conf)  # no file log
        sid = fix.SessionID("FIX.4.4", comp_id, "SIM")
        initiator.start()
        try:
            app.wait("logon", lambda: comp_id in app.logged_on, 15)
            rtts: list[float] = []
            deadline = time.monotonic() + cap_s
            for i in range(rtt_orders):
                if time.monotonic() > deadline:
                    break
                cl = f"q-rtt-{i}"
                app.sent[cl] = time.perf_counter_ns()
                fix.Session.sendToTarget(_order(cl), sid)
                app.wait(f"ack of {cl}", lambda c=cl: c in app.acked, 10)
                rtts.append((app.acked[cl] - app.sent[cl]) / 1000)
            fix.Session.sendToTarget(_mass_cancel("q-mc1"), sid)
            time.sleep(0.5)

            app.window = threading.Semaphore(window)
            names = [f"q-rate-{i}" for i in range(rate_orders)]
            start = time.perf_counter()
            deadline = time.monotonic() + cap_s
            sent = 0
            for cl in names:
                if time.monotonic() > deadline or not app.window.acquire(timeout=10):
                    break
                app.sent[cl] = time.perf_counter_ns()
                fix.Session.sendToTarget(_order(cl), sid)
                sent += 1
            app.wait("the last acks", lambda: all(c in app.acked for c in names[:sent]), 30)
            elapsed = time.perf_counter() - start
            fix.Session.sendToTarget(_mass_cancel("q-mc2"), sid)
            time.sleep(0.5)
        finally:
            initiator.stop()
    rtts.sort()
    return {
        "nos_ack_rtt_us": _summary(rtts),
        "orders_per_s": round(sent / elapsed, 1),
        "orders_in_rate_phase": sent,
        "rejected": app.rejected,
        "window": window,
    }


def _summary(values: list[float]) -> dict[str, float | int]:
    def pct(p: float) -> float:
        return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]

    return {"p50": round(pct(50), 1), "p99": round(pct(99), 1), "max": round(values[-1], 1),
            "n": len(values)}  # fmt: skip
