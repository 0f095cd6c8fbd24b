"""The FIX engine for the kill-switch agent's risk session: asyncfix against QuickFIX.

The risk session is the kill path: it must be logged on when a halt comes,
and back at once when the venue drops it. For each engine as an initiator
against the simulator (journals in memory, the simulator in a subprocess):

* ``reconnect_ms``: the simulator drops the session (``POST /faults/drop``);
  from the drop until the engine is logged on again ({p50, p99, max, n});
* ``nos_ack_rtt_us``: NewOrderSingle -> ack, one at a time (the figures of
  ``sim.json`` come from the same clients on a journal on disk).

asyncfix runs as the adapter (``FixSession``, ``reconnect_s`` 0.01);
QuickFIX with ``ReconnectInterval=1``, its smallest (whole seconds). Writes
``bench/results/fix_engines.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import quickfix as fix  # noqa: E402
from bench_sim import start_sim, stop_sim  # noqa: E402
from common import write_result  # noqa: E402
from quickfix_load import _summary  # noqa: E402

from tests.conformance.quickfix_peer import Recorder, require_dictionary, settings  # noqa: E402
from tradeops.brokers.base import SessionConfig, SessionStatus  # noqa: E402
from tradeops.brokers.fix import FixSession  # noqa: E402

DROPS = 20
SETTLE_S = 0.2  # between drops


def _drop(admin_port: int, session: str) -> None:
    body = json.dumps({"session": session}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/faults/drop", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


async def asyncfix_reconnects(port: int, admin_port: int) -> list[float]:
    """Milliseconds from each drop until the adapter is logged on again."""
    logons: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, SessionStatus) and event.state == "logged_on":
            logons.append(time.perf_counter())

    config = SessionConfig("127.0.0.1", port, "ACC1_RISK", "SIM", heartbeat_s=30,
                           extra={"reconnect_s": "0.01"})  # fmt: skip
    session = FixSession(config, on_event)
    await session.connect(10)
    out: list[float] = []
    try:
        for _unused in range(DROPS):
            before = len(logons)
            t0 = time.perf_counter()
            await asyncio.to_thread(_drop, admin_port, "ACC1_RISK")
            for _unused in range(1000):  # 10 s
                if len(logons) > before:
                    break
                await asyncio.sleep(0.001)
            else:
                raise RuntimeError("the adapter did not log on again within 10 s")
            out.append((logons[before] - t0) * 1000)
            await asyncio.sleep(SETTLE_S)
    finally:
        await session.close()
    return out


class _Logons(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def onLogon(self, sid: fix.SessionID) -> None:  # noqa: N802
        """Time every logon."""
        self.times.append(time.perf_counter())
        super().onLogon(sid)


def quickfix_reconnects(port: int, admin_port: int) -> list[float]:
    """Milliseconds from each drop until QuickFIX is logged on again."""
    with tempfile.TemporaryDirectory(prefix="bench-qf-") as tmp:
        work = Path(tmp)
        session = {"BeginString": "FIX.4.4", "SenderCompID": "ACC1_QF", "TargetCompID": "SIM",
                   "SocketConnectHost": "127.0.0.1", "SocketConnectPort": port}  # fmt: skip
        conf = settings(work / "initiator.cfg", [session], initiator=True,
                        dictionary=require_dictionary(), work=work)  # fmt: skip
        app = _Logons()
        initiator = fix.SocketInitiator(app, fix.MemoryStoreFactory(), conf)
        initiator.start()
        out: list[float] = []
        try:
            app.wait("logon", lambda: len(app.times) >= 1, 15)
            for _unused in range(DROPS):
                before = len(app.times)
                t0 = time.perf_counter()
                _drop(admin_port, "ACC1_QF")
                app.wait("logon after the drop", lambda b=before: len(app.times) > b, 15)
                out.append((app.times[before] - t0) * 1000)
                time.sleep(SETTLE_S)
        finally:
            initiator.stop()
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmpdir:
        proc, ready = start_sim(Path(tmpdir), journal_on_disk=False)
        try:
            sessions, admin = ready["sessions"], ready["admin_port"]
            ours = asyncio.run(asyncfix_reconnects(sessions["ACC1_RISK"]["port"], admin))
            theirs = quickfix_reconnects(sessions["ACC1_QF"]["port"], admin)
        finally:
            stop_sim(proc)
    sim = json.loads((REPO / "bench" / "results" / "sim.json").read_text(encoding="utf-8"))
    figures = {
        "asyncfix": {
            "reconnect_ms": _summary(sorted(round(v, 3) for v in ours)),
            "reconnect_setting": "reconnect_s 0.01",
            "nos_ack_rtt_us": sim.get("nos_ack_rtt_us"),
        },
        "quickfix": {
            "reconnect_ms": _summary(sorted(round(v, 3) for v in theirs)),
            "reconnect_setting": "ReconnectInterval=1 (seconds, its smallest)",
            "nos_ack_rtt_us": sim.get("quickfix", {}).get("nos_ack_rtt_us"),
        },
        "drops": DROPS,
        "transport": "TCP loopback, simulator in a subprocess, journals in memory",
    }
    path = write_result("fix_engines", figures)
    print(json.dumps(figures, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
