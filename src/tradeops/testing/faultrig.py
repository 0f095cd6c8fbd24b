"""Processes of the fault-mode tests: a multi-account venue, the real refapp, a beat, a hog.

- :class:`Venue`: ``tradeops sim run`` with one account per test (order entry for
  the refapp, drop copy and risk session for the agent), so that tests sharing
  one simulator never see each other's orders or positions.
- :class:`RefAppProcess`: ``tradeops refapp run`` (the reference strategy) on one
  of those accounts, its pid written to a pid file as a service manager would.
- :class:`HeartbeatBridge`: the refapp has no agent ``heartbeat`` of its own;
  this sidecar sends one for it each time its ``/healthz`` answers (served by
  its event loop), so a hung, frozen or dead refapp stops beating.
- :class:`CpuHog`: one busy loop pinned on each core.

Every process is started here and stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tradeops.agent.client import AgentClient, AgentUnreachable
from tradeops.agent.protocol import Command
from tradeops.sim.admin import AdminClient
from tradeops.testing.agentproc import until

SRC = str(Path(__file__).resolve().parents[2])
SYMBOLS = {"AAA": (100, 50), "BBB": (50, 1000)}  # symbol: (start price, multiplier)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Signal ``proc`` by PID (SIGCONT too, in case it is frozen), bounded wait, then SIGKILL."""
    if proc.poll() is None:
        for s in (sig, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, s)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)


def read_events(path: Path, event: str | None = None) -> list[dict[str, Any]]:
    """JSON-lines records of ``path`` (optionally only ``event``), in file order."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict) and (event is None or rec.get("event") == event):
                out.append(rec)
    return out


# ------------------------------------------------------------------- venue
@dataclass(frozen=True)
class Account:
    """One account of the venue and its sessions' names."""

    name: str

    @property
    def oe(self) -> str:
        """The refapp's order-entry session."""
        return f"{self.name}_OE"

    @property
    def dc(self) -> str:
        """The agent's drop copy."""
        return f"{self.name}_DC"

    @property
    def risk(self) -> str:
        """The agent's risk session."""
        return f"{self.name}_RISK"


def venue_config(accounts: list[Account], max_qty_per_tick: int) -> dict[str, Any]:
    """AAA and BBB (random walks, multipliers 50 and 1000), one tick per 50 ms.

    ``max_qty_per_tick`` > 0 fills that many lots per tick, so that marketable
    orders stay working a little while (a mass cancel then has work to do).
    """
    return {
        "host": "127.0.0.1",
        "port_base": 0,
        "admin": {"port": 0},
        "seed": 13,
        "sim_comp_id": "SIM",
        "tick_interval_ms": 50,
        "fill": {"max_qty_per_tick": max_qty_per_tick, "ratio": 1, "market_slippage_ticks": 1},
        "throttle": {"window_ms": 1000, "reject_limit": 0, "disconnect_limit": 0},
        "symbols": [
            {
                "symbol": s,
                "price": px,
                "tick_size": "0.01",
                "spread_ticks": 2,
                "volatility_ticks": 1.0,
                "size": 100,
                "multiplier": mult,
            }
            for s, (px, mult) in SYMBOLS.items()
        ],
        "accounts": [
            {
                "account": a.name,
                "sessions": [
                    {"role": "order_entry", "comp_id": a.oe},
                    {"role": "drop_copy", "comp_id": a.dc},
                    {"role": "risk", "comp_id": a.risk},
                ],
            }
            for a in accounts
        ],
    }


@dataclass
class Venue:
    """A simulator subprocess started by this process; stopped by its PID."""

    proc: subprocess.Popen[str]
    ready: dict[str, Any]
    accounts: list[Account]
    _next: int = 0

    @classmethod
    def start(cls, tmp: Path, n_accounts: int, max_qty_per_tick: int = 1) -> Venue:
        """Write the config, start the simulator, wait (bounded) for its ready line."""
        accounts = [Account(f"ACC{i:02d}") for i in range(n_accounts)]
        cfg = tmp / "venue.yml"
        cfg.write_text(yaml.safe_dump(venue_config(accounts, max_qty_per_tick)), encoding="utf-8")
        cmd = [sys.executable, "-m", "tradeops.cli.main", "sim", "run", "--config", str(cfg)]
        cmd += ["--log-file", str(tmp / "venue.log")]
        with (tmp / "venue.err").open("w") as err:
            proc = subprocess.Popen(
                cmd, env=_env(), stdout=subprocess.PIPE, stderr=err,
                stdin=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        box: dict[str, str] = {}

        def read() -> None:
            assert proc.stdout is not None
            box["line"] = proc.stdout.readline()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        venue = cls(proc, {}, accounts)
        if not box.get("line"):
            venue.stop()
            text = (tmp / "venue.err").read_text(errors="replace")
            raise RuntimeError(f"simulator did not become ready: {text[-2000:]}")
        venue.ready = json.loads(box["line"])
        return venue

    def take_account(self) -> Account:
        """The next unused account (one per test)."""
        if self._next >= len(self.accounts):
            raise RuntimeError(f"all {len(self.accounts)} accounts of the venue are used")
        self._next += 1
        return self.accounts[self._next - 1]

    def port(self, session: str) -> int:
        """The port a session listens on."""
        return int(self.ready["sessions"][session]["port"])

    def state(self) -> dict[str, Any]:
        """The admin API's ``GET /state``."""
        return dict(AdminClient(str(self.ready["admin_url"])).get("/state"))

    def working(self, account: Account) -> list[dict[str, Any]]:
        """The account's working orders, as the venue lists them."""
        return [o for o in self.state()["orders"] if o["account"] == account.name]

    def positions(self, account: Account) -> dict[str, Decimal]:
        """The account's non-zero positions at the venue, by symbol."""
        out = {}
        for p in self.state()["positions"]:
            if p["account"] == account.name and Decimal(str(p["qty"])) != 0:
                out[p["symbol"]] = Decimal(str(p["qty"]))
        return out

    def session(self, name: str) -> dict[str, Any]:
        """The venue's view of one session."""
        return dict(next(s for s in self.state()["sessions"] if s["name"] == name))

    def stop(self) -> None:
        """SIGTERM by PID, bounded wait, SIGKILL if still running."""
        _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ------------------------------------------------------------------ refapp
@dataclass
class RefAppProcess:
    """``tradeops refapp run`` on one account of the venue, in a subprocess of this one."""

    workdir: Path
    config: dict[str, Any]
    pidfile: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @classmethod
    def write(
        cls, workdir: Path, venue: Venue, account: Account, agent_root: Path, **over: Any
    ) -> RefAppProcess:
        """Its config: quotes AAA and BBB (size 5, limit 40), reads the agent's files.

        The quotes are wide (60 bps) and requoted only after a 30 bps move, so they
        rest at the venue: a halt has orders to cancel.

        ``over`` replaces top-level keys (``fault_mode``, ``fault``, ...).
        """
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "instance": "refapp",
            "venue": {"host": "127.0.0.1", "port": venue.port(account.oe),
                      "sender_comp_id": account.oe, "target_comp_id": "SIM",
                      "store_dir": str(workdir / "fix"), "reconnect_delay_s": 0.5},
            "account": account.name,
            "symbols": list(SYMBOLS),
            "quoting": {"spread_bps": 60, "size": 5, "requote_bps": 30, "interval_s": 0.2,
                        "multipliers": {s: m for s, (_px, m) in SYMBOLS.items()}},
            "limits": {"max_position": 40, "max_order_qty": 100},
            "db": f"sqlite:///{workdir / 'refapp.db'}",
            "http": {"bind": "127.0.0.1", "port": 0},
            "trading_state_path": str(agent_root / "state" / "trading_state"),
            "agent_liveness": {"path": str(agent_root / "run" / "agent-liveness"),
                               "max_age_s": 0.5},
            "marketdata_stale_s": 10,
            "shutdown_timeout_s": 5,
            "log_file": str(workdir / "refapp.jsonl"),
            **over,
        }  # fmt: skip
        return cls(workdir, config, agent_root / "run" / "refapp.pid")

    @property
    def log_path(self) -> Path:
        """Its JSON-lines log."""
        return self.workdir / "refapp.jsonl"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Its log records (optionally only ``event``), in order; one run per workdir."""
        return read_events(self.log_path, event)

    @property
    def url(self) -> str:
        """Base URL of its endpoints."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> RefAppProcess:
        """Start it, wait for its HTTP port and ``/healthz``, then write its pid file."""
        path = self.workdir / "refapp.yml"
        path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        cmd = [sys.executable, "-m", "tradeops.cli.main", "refapp", "run", "--config", str(path)]
        with (self.workdir / "refapp.out").open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"refapp exited early: {self.output()[-2000:]}")
            recs = [r for r in read_events(self.log_path, "http_listening")
                    if r.get("pid") == self.proc.pid]  # fmt: skip
            if recs:
                self.port = int(recs[-1]["port"])
            return bool(recs)

        until(listening, "the refapp to listen", timeout_s)
        until(lambda: healthz(self.url), "the refapp's /healthz", timeout_s)
        tmp = self.pidfile.with_name(f".{self.pidfile.name}")
        tmp.write_text(str(self.proc.pid), encoding="ascii")
        os.replace(tmp, self.pidfile)  # what a service manager does for it
        return self

    def output(self) -> str:
        """Its stdout and stderr, then its log."""
        parts = [self.workdir / "refapp.out", self.log_path]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        """SIGTERM by PID (SIGCONT too), bounded wait, SIGKILL if still there; reap."""
        if self.proc is not None:
            _stop(self.proc)


def healthz(url: str, timeout_s: float = 0.5) -> bool:
    """Whether ``<url>/healthz`` answers 200 within ``timeout_s``."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout_s) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


# ----------------------------------------------------------------- sidecar
@dataclass
class HeartbeatBridge:
    """Sends the agent's ``heartbeat`` for ``strategy`` each time its ``/healthz`` answers.

    A thread of the test process; it ends on ``stop`` or after ``max_run_s``.
    """

    url: str
    socket_path: Path
    strategy: str = "refapp"
    interval_s: float = 0.2
    max_run_s: float = 300.0
    beats: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat-bridge")

    def start(self) -> HeartbeatBridge:
        """Start beating; wait (bounded) for the first beat the agent accepted."""
        self._thread.start()
        until(lambda: self.beats > 0, f"a first heartbeat of {self.strategy}")
        return self

    def _run(self) -> None:
        client = AgentClient(socket_path=self.socket_path, timeout_s=2.0)
        deadline = time.monotonic() + self.max_run_s
        for _attempt in range(int(self.max_run_s / self.interval_s) + 1):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            if healthz(self.url):
                try:
                    answer = client.request(Command.HEARTBEAT, {"strategy": self.strategy},
                                            who=self.strategy)  # fmt: skip
                except AgentUnreachable as exc:
                    self.errors.append(str(exc))
                else:
                    if answer.ok:
                        self.beats += 1
                    else:
                        self.errors.append(str(answer.error))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stop beating (bounded join)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


# --------------------------------------------------------------------- hog
HOG = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\n" + (
    "end = time.monotonic() + float(sys.argv[2])\nwhile time.monotonic() < end:\n    pass\n"
)


@dataclass
class CpuHog:
    """One busy loop pinned on each core this process may run on; each ends by itself."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, max_run_s: float = 120.0) -> CpuHog:
        """Start them (each stops by itself after ``max_run_s``)."""
        hog = cls()
        for core in sorted(os.sched_getaffinity(0)):
            cmd = [sys.executable, "-c", HOG, str(core), str(max_run_s)]
            hog.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
        return hog

    def running(self) -> bool:
        """Every busy loop is still running."""
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        """SIGKILL each by PID and reap it."""
        for proc in self.procs:
            _stop(proc, signal.SIGKILL, timeout_s=10)
