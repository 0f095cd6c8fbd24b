"""A simulator subprocess with a full book, for the risk-session tests and benchmark.

``RiskSim.start`` runs ``tradeops sim run`` with ``n_symbols`` constant-price
symbols (``S00``, ``S01``, ...), account ACC1 with an order-entry session
(``ACC1_OE``), a second one for "manual" orders (``ACC1_MAN``), a drop copy and
the risk session, on free loopback ports read from its ready line. It is
stopped by its PID only. ``OrderEntry`` places resting orders and opens
positions on an order-entry session. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tradeops.agent.risk import KillSwitch
from tradeops.brokers.base import (
    BrokerEvent,
    Execution,
    NewOrder,
    OrdType,
    SessionConfig,
    SessionRole,
    Side,
)
from tradeops.brokers.fix import FixSession
from tradeops.sim.admin import AdminClient

ACCOUNT = "ACC1"
OE, MANUAL, DC, RISK = "ACC1_OE", "ACC1_MAN", "ACC1_DC", "ACC1_RISK"
PRICE = Decimal(100)
TICK = Decimal("0.01")


def symbols(n: int) -> list[str]:
    """The symbol names of a simulator with ``n`` symbols."""
    return [f"S{i:02d}" for i in range(n)]


def sim_config(
    n_symbols: int,
    risk_throttle: dict[str, int] | None = None,
    fill: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Config: constant prices (100, tick 0.01, spread 2 ticks), no throttles by default.

    ``fill`` overrides the fill model (e.g. ``{"max_qty_per_tick": 1}``: orders fill
    one lot per tick and stay working meanwhile); the default fills in full on arrival.
    """
    risk: dict[str, Any] = {"role": "risk", "comp_id": RISK}
    if risk_throttle:
        risk["throttle"] = risk_throttle
    return {
        "host": "127.0.0.1",
        "port_base": 0,
        "admin": {"port": 0},
        "seed": 11,
        "sim_comp_id": "SIM",
        "tick_interval_ms": 100,
        "fill": {"max_qty_per_tick": 0, "ratio": 1, "market_slippage_ticks": 1, **(fill or {})},
        "throttle": {"window_ms": 1000, "reject_limit": 0, "disconnect_limit": 0},
        "symbols": [
            {
                "symbol": s,
                "price": str(PRICE),
                "tick_size": str(TICK),
                "spread_ticks": 2,
                "volatility_ticks": 0,
                "size": 1000,
            }
            for s in symbols(n_symbols)
        ],
        "accounts": [
            {
                "account": ACCOUNT,
                "sessions": [
                    {"role": "order_entry", "comp_id": OE},
                    {"role": "order_entry", "comp_id": MANUAL},
                    {"role": "drop_copy", "comp_id": DC},
                    risk,
                ],
            }
        ],
    }


_ORDER_IDS = itertools.count(1)  # unique ClOrdIDs across OrderEntry objects


@dataclass
class RiskSim:
    """A simulator subprocess started by this process; stopped by its PID."""

    proc: subprocess.Popen[str]
    ready: dict[str, Any]
    log_file: Path
    n_symbols: int

    @classmethod
    def start(cls, tmp: Path, n_symbols: int = 50, **config: Any) -> RiskSim:
        """Write the config under ``tmp``, start the simulator, wait for its ready line."""
        cfg = tmp / "sim.yml"
        cfg.write_text(yaml.safe_dump(sim_config(n_symbols, **config)), encoding="utf-8")
        src = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        log_file = tmp / "sim.log"
        cmd = [sys.executable, "-m", "tradeops.cli.main", "sim", "run", "--config", str(cfg)]
        cmd += ["--log-file", str(log_file)]
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        box: dict[str, str] = {}

        def read() -> None:
            assert proc.stdout is not None
            box["line"] = proc.stdout.readline()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        sim = cls(proc, {}, log_file, n_symbols)
        if not box.get("line"):
            sim.stop()
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"simulator did not become ready: {err[-2000:]}")
        sim.ready = json.loads(box["line"])
        return sim

    def session_config(self, name: str, role: SessionRole, **extra: str) -> SessionConfig:
        """Client SessionConfig of session ``name`` (journals in memory)."""
        return SessionConfig(
            host="127.0.0.1",
            port=int(self.ready["sessions"][name]["port"]),
            sender_comp_id=name,
            target_comp_id="SIM",
            role=role,
            account=ACCOUNT,
            extra=dict(extra),
        )

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        return str(self.ready["admin_url"])

    def get(self, path: str) -> Any:
        """GET an admin endpoint (JSON)."""
        return AdminClient(self.admin_url).get(path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to an admin endpoint (JSON)."""
        return AdminClient(self.admin_url).post(path, body)

    def working_orders(self) -> list[dict[str, Any]]:
        """Working orders of every account, as the simulator's ``GET /state`` lists them."""
        return list(self.get("/state")["orders"])

    def positions(self) -> dict[str, Decimal]:
        """Non-zero positions of ACC1 by symbol, from ``GET /state``."""
        out = {}
        for p in self.get("/state")["positions"]:
            if p["account"] == ACCOUNT and Decimal(p["qty"]) != 0:
                out[p["symbol"]] = Decimal(p["qty"])
        return out

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM by PID, bounded wait, SIGKILL if still running."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


@dataclass
class OrderEntry:
    """A FixSession on an order-entry session, remembering its executions."""

    config: SessionConfig
    execs: list[Execution] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = FixSession(self.config, self._on_event, reset_on_logon=True)
        self._changed = asyncio.Event()
        self._n = 0

    def _on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, Execution):
            self.execs.append(event)
            self._changed.set()

    async def __aenter__(self) -> OrderEntry:
        await self.session.connect(timeout_s=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.session.close()

    def _id(self) -> str:
        self._n += 1
        # A process-wide counter: id(self) of a later OrderEntry may repeat an earlier one's.
        return f"{self.config.sender_comp_id}-{os.getpid()}-{next(_ORDER_IDS)}"

    async def wait_acks(self, ids: set[str], timeout_s: float = 60.0) -> None:
        """Wait until every ClOrdID in ``ids`` got an answer (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for _attempt in range(1_000_000):
            seen = {e.cl_ord_id for e in self.execs if e.cl_ord_id in ids}
            if seen >= ids:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        raise TimeoutError(f"{len(ids) - len(seen)} of {len(ids)} orders unanswered")

    async def rest(self, count: int, syms: list[str]) -> list[str]:
        """Place ``count`` buy orders far below the market, spread over ``syms``."""
        ids = []
        for i in range(count):
            cl = self._id()
            price = Decimal(50) + TICK * (i % 100)
            await self.session.send_order(
                NewOrder(cl, syms[i % len(syms)], Side.BUY, Decimal(1), OrdType.LIMIT, price)
            )
            ids.append(cl)
        await self.wait_acks(set(ids))
        bad = [e for e in self.execs if e.cl_ord_id in set(ids) and e.exec_type == "8"]
        if bad:
            raise RuntimeError(f"{len(bad)} resting orders rejected: {bad[0].text}")
        return ids

    async def take(self, positions: dict[str, Decimal]) -> None:
        """Open signed ``positions`` with marketable limit orders (filled on arrival)."""
        ids = set()
        for symbol, qty in positions.items():
            cl = self._id()
            side = Side.BUY if qty > 0 else Side.SELL
            price = PRICE + 1 if qty > 0 else PRICE - 1
            await self.session.send_order(
                NewOrder(cl, symbol, side, abs(qty), OrdType.LIMIT, price)
            )
            ids.add(cl)
        await self.wait_acks(ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        for _attempt in range(10_000):
            filled = {e.cl_ord_id for e in self.execs if e.ord_status == "2"}
            if ids <= filled or loop.time() > deadline:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)


def admin_kill_switch(admin_url: str) -> KillSwitch:
    """The simulator's exchange-side kill switch (``POST /kill-switch``) as a ``KillSwitch``.

    What a venue adapter injects into :class:`tradeops.agent.risk.RiskSession`;
    the simulator exposes its switch only on the admin API, not over FIX.
    """
    client = AdminClient(admin_url)

    def post(account: str) -> bool:
        return bool(client.kill_switch(account, True).get("kill_switch"))

    async def engage(account: str, reason: str) -> bool:
        return await asyncio.to_thread(post, account)

    return engage
