"""Fixtures for the simulator integration tests: real FIX sessions on loopback.

* ``sim_config_file`` writes a small test configuration (constant ESZ5 price,
  fast ticks, extra sessions for throttle and kill-switch tests).
* ``run`` runs a coroutine with an overall bound.
* ``start_sim(config_path, **overrides)`` starts an in-process :class:`SimServer`.
* ``Client`` wraps :class:`FixSession` with the events and raw messages it got
  and bounded waits.
* ``sim_process`` starts ``tradeops sim run`` as a subprocess (``PYTHONPATH=src``),
  reads its ready line and stops it by PID at the end of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncfix import FIXMessage

from tradeops.brokers.base import BrokerEvent, SessionConfig, SessionRole
from tradeops.brokers.fix import FixSession
from tradeops.log import EventLog
from tradeops.sim.admin import AdminClient
from tradeops.sim.config import load_config
from tradeops.sim.server import SimServer

REPO = Path(__file__).resolve().parents[3]
WAIT_S = 10.0

TEST_CONFIG = """
host: 127.0.0.1
port_base: 0
admin: {port: 0}
seed: 7
sim_comp_id: SIM
tick_interval_ms: 50
fill: {max_qty_per_tick: 0, ratio: 1, market_slippage_ticks: 1}
throttle: {window_ms: 1000, reject_limit: 0, disconnect_limit: 0}
symbols:
  - {symbol: ESZ5, price: 100, tick_size: 0.25, spread_ticks: 1, volatility_ticks: 0, size: 10}
  - {symbol: NQZ5, price: 200, tick_size: 0.5, spread_ticks: 2, volatility_ticks: 1, size: 5}
accounts:
  - account: ACC1
    sessions:
      - {role: order_entry, comp_id: ACC1_OE}
      - {role: drop_copy, comp_id: ACC1_DC}
      - {role: risk, comp_id: ACC1_RISK}
      - role: order_entry
        comp_id: ACC1_THR
        throttle: {window_ms: 600000, reject_limit: 3, disconnect_limit: 6}
  - account: ACC2
    cancel_on_kill: false
    sessions:
      - {role: order_entry, comp_id: ACC2_OE}
      - {role: drop_copy, comp_id: ACC2_DC}
"""


def run(coro: Any, timeout_s: float = 45.0) -> Any:
    """Run ``coro`` to completion with an overall time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture
def sim_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "sim.yml"
    path.write_text(TEST_CONFIG, encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def start_sim(config_path: Path, **overrides: Any) -> AsyncIterator[SimServer]:
    """An in-process simulator on free loopback ports, logging into a buffer."""
    cfg = load_config(config_path, **overrides)
    sim = SimServer(cfg, EventLog("sim", io.StringIO()))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def sim_log(sim: SimServer) -> list[dict[str, Any]]:
    """The JSON events the in-process simulator logged so far."""
    stream = sim.log._stream
    assert isinstance(stream, io.StringIO)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def admin(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the admin API without blocking the event loop."""
    client = AdminClient(url)
    if method == "GET":
        return await asyncio.to_thread(client.get, path)
    return await asyncio.to_thread(client.post, path, body or {})


class Client:
    """A FixSession plus what it received, with bounded waits."""

    def __init__(
        self,
        port: int,
        comp_id: str,
        account: str = "ACC1",
        role: SessionRole = SessionRole.ORDER_ENTRY,
        store_dir: str | None = None,
        extra: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.events: list[BrokerEvent] = []
        self.raw: list[FIXMessage] = []
        self._changed = asyncio.Event()
        cfg = SessionConfig(
            host=host,
            port=port,
            sender_comp_id=comp_id,
            target_comp_id="SIM",
            role=role,
            account=account,
            store_dir=store_dir,
            extra=extra or {},
        )
        self.session = FixSession(cfg, self._on_event, on_message=self._on_raw)

    def _on_event(self, event: BrokerEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def _on_raw(self, msg: FIXMessage) -> None:
        self.raw.append(msg)
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition"
    ) -> Any:
        """Wait until ``predicate()`` is truthy (checked on every event); return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for _attempt in range(100_000):
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
        raise AssertionError(f"timed out waiting for {what}; events: {self.events[-10:]}")

    def of(self, cls: type) -> list[Any]:
        """Events of one class."""
        return [e for e in self.events if isinstance(e, cls)]

    def raw_of(self, msg_type: str) -> list[FIXMessage]:
        """Raw inbound messages of one MsgType."""
        return [m for m in self.raw if str(m.msg_type) == msg_type]

    async def wait_raw(self, msg_type: str, count: int = 1, timeout_s: float = WAIT_S) -> list[Any]:
        """Wait until ``count`` messages of ``msg_type`` arrived; return them all."""
        return await self.wait_for(
            lambda: len(self.raw_of(msg_type)) >= count and self.raw_of(msg_type),
            timeout_s,
            f"{count} x MsgType {msg_type}",
        )

    async def __aenter__(self) -> Client:
        await self.session.connect(timeout_s=WAIT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


@contextlib.asynccontextmanager
async def connected(sim: SimServer, name: str, **kwargs: Any) -> AsyncIterator[Client]:
    """A logged-on Client of session ``name`` of an in-process simulator."""
    spec = sim.config.session(name)
    client = Client(sim.ports[name], spec.client_comp_id, spec.account, spec.role, **kwargs)
    async with client:
        yield client


def free_port_block(n: int, host: str = "127.0.0.1") -> int:
    """First port of ``n`` consecutive ports that are free right now."""
    for _attempt in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind((host, p))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports found")


class SimProcess:
    """``tradeops sim run`` in a subprocess; stopped by its PID."""

    def __init__(self, args: list[str], log_file: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "tradeops.cli.main", "sim", "run", *args]
        cmd += ["--log-file", str(log_file)]
        self.log_file = log_file
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.ready = self._read_ready(timeout_s=30.0)

    def _read_ready(self, timeout_s: float) -> dict[str, Any]:
        box: dict[str, str] = {}

        def reader() -> None:
            assert self.proc.stdout is not None
            box["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout_s)
        line = box.get("line", "")
        if not line:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"simulator did not become ready: {err[-2000:]}")
        return dict(json.loads(line))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def port(self, session: str) -> int:
        return int(self.ready["sessions"][session]["port"])

    @property
    def admin_url(self) -> str:
        return str(self.ready["admin_url"])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Signal the process (by PID) and wait for it; SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return int(self.proc.returncode)

    def events(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    """Factory of simulator subprocesses; every one is stopped at teardown."""
    started: list[SimProcess] = []
    counter = iter(range(1000))

    def factory(*args: str) -> SimProcess:
        proc = SimProcess(list(args), tmp_path / f"sim-{next(counter)}.log")
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop()
