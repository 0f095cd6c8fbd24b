"""Processes and clients for the refapp integration tests.

The simulator and the refapp run as subprocesses (``python -m tradeops.cli.main``),
each stopped by its PID; FIX clients of the test (drop copy, risk) run a
:class:`tradeops.brokers.fix.FixSession` on an event loop in a background thread.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tradeops.brokers.base import (
    BrokerEvent,
    Execution,
    Position,
    SessionConfig,
    SessionRole,
)

ACCOUNT = "ACC1"
OE, DC, RISK = "REFAPP_OE", "ACC1_DC", "ACC1_RISK"
SIM_ID = "SIM"
SYMBOLS = ["AAA", "BBB"]
# Contract multipliers of the test symbols, at the venue and in the refapp's config:
# not 1, so that P&L computed without them would not match the venue's.
MULTIPLIERS = {"AAA": 50, "BBB": 1000}


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 30.0, step: float = 0.1) -> Any:
    """Poll ``cond`` until truthy (bounded in count and time); return its value."""
    deadline = time.monotonic() + timeout
    for _attempt in range(int(timeout / step) + 1):
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    """Call an endpoint; return (status, JSON or text); (0, error) if unreachable."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            code, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        code, raw = exc.code, exc.read()
    except (OSError, TimeoutError) as exc:
        return 0, str(exc)
    text = raw.decode("utf-8", errors="replace")
    try:
        return code, json.loads(text)
    except ValueError:
        return code, text


@dataclass
class Proc:
    """A subprocess started by a test, stopped by its PID only."""

    name: str
    cmd: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        env = {**os.environ, **(self.env or {})}
        src = str(Path(__file__).resolve().parents[3] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        out = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal the process by PID, wait (bounded), SIGKILL it if still there."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON-lines log records (of one event name) written so far."""
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and (name is None or rec.get("event") == name):
                    out.append(rec)
        return out


def tradeops_cmd(*args: str) -> list[str]:
    """The ``tradeops`` command line with this interpreter."""
    return [sys.executable, "-m", "tradeops.cli.main", *args]


# ------------------------------------------------------------------ simulator
@dataclass
class Sim:
    """A running simulator with one account and its three sessions."""

    proc: Proc
    ports: dict[str, int]
    admin_port: int
    config_path: Path

    def stop(self) -> int | None:
        return self.proc.stop()


def sim_config(
    tmp: Path,
    ports: dict[str, int],
    admin_port: int,
    extra_oe: list[str],
    venue_extensions: bool = True,
) -> Path:
    """Write a simulator config: fast ticks that cross the refapp's quotes often.

    The venue extensions are on by default: the venue's average price and P&L
    (tags 9101-9103) are the reference of the refapp's own.
    """
    sessions = [
        {"role": "order_entry", "comp_id": OE, "port": ports[OE]},
        {"role": "drop_copy", "comp_id": DC, "port": ports[DC]},
        {"role": "risk", "comp_id": RISK, "port": ports[RISK]},
    ]
    sessions += [{"role": "order_entry", "comp_id": c, "port": ports[c]} for c in extra_oe]
    data = {
        "host": "127.0.0.1",
        "admin": {"port": admin_port},
        "seed": 7,
        "store_dir": None,
        "sim_comp_id": SIM_ID,
        "heartbeat_s": 30,
        "tick_interval_ms": 50,
        "fix": {"venue_extensions": venue_extensions},
        "throttle": {"window_ms": 1000, "reject_limit": 0, "disconnect_limit": 0},
        "symbols": [
            {
                "symbol": "AAA",
                "price": 100,
                "tick_size": "0.01",
                "spread_ticks": 2,
                "volatility_ticks": 3.0,
                "size": 100,
                "multiplier": MULTIPLIERS["AAA"],
            },
            {
                "symbol": "BBB",
                "price": 50,
                "tick_size": "0.01",
                "spread_ticks": 2,
                "volatility_ticks": 3.0,
                "size": 100,
                "multiplier": MULTIPLIERS["BBB"],
            },
        ],
        "accounts": [{"account": ACCOUNT, "sessions": sessions}],
    }
    path = tmp / "sim.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_sim(tmp: Path, extra_oe: list[str] | None = None, venue_extensions: bool = True) -> Sim:
    """Start the simulator on ports it picks (0) and read them from its log."""
    extra_oe = extra_oe or []
    names = [OE, DC, RISK, *extra_oe]
    cfg = sim_config(tmp, dict.fromkeys(names, 0), 0, extra_oe, venue_extensions)
    proc = Proc("sim", tradeops_cmd("sim", "run", "--config", str(cfg)), tmp / "sim.log").start()

    # Not probed with TCP connects: a session accepts one connection at a time, and a
    # probe still attached would make the first real logon fail. Its log says when.
    def listening() -> dict[str, int] | None:
        if not proc.alive():
            raise AssertionError(f"simulator exited: {proc.log_text()[-3000:]}")
        up = {e.get("session"): int(e["port"]) for e in proc.events("listening")}
        return up if set(names) <= set(up) else None

    ports = wait_for(listening, "simulator sessions to listen", timeout=30)
    return Sim(proc, ports, 0, cfg)


# --------------------------------------------------------------------- refapp
@dataclass
class RefApp:
    """A refapp subprocess and its config."""

    proc: Proc
    config_path: Path
    http_port: int
    db: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def status(self) -> dict[str, Any]:
        code, body = http(self.url + "/status")
        assert code == 200, body
        return body

    def try_status(self) -> dict[str, Any] | None:
        code, body = http(self.url + "/status")
        return body if code == 200 and isinstance(body, dict) else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        return self.proc.stop(sig, timeout)


def refapp_config(
    tmp: Path, sim: Sim, db: str, http_port: int, name: str = "refapp", **over: Any
) -> Path:
    """Write a refapp config that quotes AAA and BBB on the simulator (their multipliers)."""
    data: dict[str, Any] = {
        "instance": name,
        "venue": {
            "host": "127.0.0.1",
            "port": sim.ports[OE],
            "sender_comp_id": OE,
            "target_comp_id": SIM_ID,
            "store_dir": str(tmp / f"{name}-fix"),
            "reconnect_delay_s": 0.5,
        },
        "account": ACCOUNT,
        "symbols": SYMBOLS,
        "quoting": {
            "spread_bps": 4,
            "size": 5,
            "requote_bps": 3,
            "interval_s": 0.2,
            "multipliers": dict(MULTIPLIERS),
        },
        "limits": {"max_position": 40, "max_order_qty": 100},
        "db": db,
        "http": {"bind": "127.0.0.1", "port": http_port},
        "trading_state_path": str(tmp / "state" / "trading_state"),
        "marketdata_stale_s": 10,
        "shutdown_timeout_s": 10,
        "log_file": str(tmp / f"{name}.jsonl"),
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_refapp(
    tmp: Path,
    sim: Sim,
    db: str,
    *,
    standby: bool = False,
    name: str = "refapp",
    http_port: int | None = None,
    env: dict[str, str] | None = None,
    **over: Any,
) -> RefApp:
    """Start a refapp (HTTP on a port it picks, read from its log); wait for /healthz."""
    cfg = refapp_config(tmp, sim, db, http_port or 0, name=name, **over)
    cmd = tradeops_cmd("refapp", "run", "--config", str(cfg), *(["--standby"] if standby else []))
    proc = Proc(name, cmd, tmp / f"{name}.jsonl", env=env).start()

    def listening() -> int | None:
        if not proc.alive():
            raise AssertionError(f"refapp exited early: {proc.log_text()[-3000:]}")
        new = [e for e in proc.events("http_listening") if e.get("pid") == proc.pid]
        return int(new[-1]["port"]) if new else None

    app = RefApp(proc, cfg, wait_for(listening, "refapp to listen", timeout=30), db)
    wait_for(lambda: http(app.url + "/healthz", timeout=2)[0] == 200, "refapp /healthz")
    return app


# ----------------------------------------------------------------- FIX clients
@dataclass
class FixClient:
    """A FixSession of the test (drop copy or risk) on a background event loop."""

    role: SessionRole
    comp_id: str
    port: int
    events: list[BrokerEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.session: Any = None

    def _on_event(self, event: BrokerEvent) -> None:
        with self._lock:
            self.events.append(event)

    def _run(self, coro: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connect(self) -> FixClient:
        from tradeops.brokers.fix import FixSession

        async def go() -> Any:
            cfg = SessionConfig(
                host="127.0.0.1",
                port=self.port,
                sender_comp_id=self.comp_id,
                target_comp_id=SIM_ID,
                role=self.role,
                account=ACCOUNT,
            )
            session = FixSession(cfg, self._on_event)
            await session.connect(timeout_s=10)
            return session

        self.session = self._run(go())
        return self

    def snapshot(self) -> list[BrokerEvent]:
        with self._lock:
            return list(self.events)

    def executions(self) -> list[Execution]:
        return [e for e in self.snapshot() if isinstance(e, Execution)]

    def fills(self) -> list[Execution]:
        return [e for e in self.executions() if e.exec_type == "F" and e.last_qty > 0]

    def positions(self, timeout: float = 10.0) -> dict[str, Position]:
        """Ask for the account's positions and wait for the reports."""
        req_id = f"pos-{time.monotonic_ns()}"
        before = len(self.snapshot())
        self._run(self.session.request_positions(req_id))

        def got() -> dict[str, Position] | None:
            new = [e for e in self.snapshot()[before:] if isinstance(e, Position)]
            found = {p.symbol: p for p in new}
            return found if all(s in found for s in SYMBOLS) else None

        return wait_for(got, "PositionReports", timeout=timeout)

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self._run(self.session.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
