"""A real agent process (``tradeops agent run``) and strategy stand-ins, for tests.

Both are started by this process and stopped by their PID only. Every wait
is bounded in count and time. The root is a short directory under /tmp (a
Unix socket path must stay under ~100 bytes), removed by ``cleanup``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradeops.agent.client import AgentClient, AgentUnreachable
from tradeops.agent.protocol import Command, Response

POLL_S = 0.05

# A strategy stand-in: writes its pid, beats a counter, and on SIGTERM writes a
# file and exits 0 (so a test can tell whether it ever ran again after a freeze).
STRATEGY = textwrap.dedent(
    """\
    import os, signal, sys, time
    from pathlib import Path

    root, name = Path(sys.argv[1]), sys.argv[2]
    def term(signum, frame):
        (root / f"{name}.term").write_text("SIGTERM handled")
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    beat = root / f"{name}.beat"
    tmp = root / "run" / f".{name}.pid"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, root / "run" / f"{name}.pid")
    for n in range(30000):  # bounded: at most ~5 minutes
        beat.write_text(str(n))
        time.sleep(0.01)
    """
)


def until(cond: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll ``cond`` (bounded in count and time); AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    for _attempt in range(int(timeout_s / POLL_S) + 1):
        if cond():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def short_root() -> Path:
    """A new short directory under /tmp (for Unix socket paths)."""
    return Path(tempfile.mkdtemp(prefix="ag", dir="/tmp"))


@dataclass
class AgentProcess:
    """``tradeops agent run --config`` in a subprocess of this one."""

    root: Path
    config_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def write(cls, root: Path, **sections: Any) -> AgentProcess:
        """Write the agent's config (root, log under root, ``sections``) and return the handle."""
        (root / "run").mkdir(parents=True, exist_ok=True)
        config = {
            "format": 1,
            "root": str(root),
            "log": str(root / "agent.jsonl"),
            "unix": {"allowed_uids": [os.getuid()]},
            **sections,
        }
        path = root / "agent.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return cls(root, path)

    def start(self, timeout_s: float = 20.0) -> AgentProcess:
        """Start the agent; wait until it answers ``status``."""
        src = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "tradeops.cli.main", "agent", "run"]
        cmd += ["--config", str(self.config_path)]
        with (self.root / "agent.out").open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            until(self._answers, "the agent to answer", timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its output: {self.output()[-1500:]}") from None
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the agent exited {self.proc.returncode}: {self.output()}")
        try:
            return self.request(Command.STATUS).ok
        except AgentUnreachable:
            return False

    @property
    def client(self) -> AgentClient:
        """A client on the agent's Unix socket."""
        return AgentClient(socket_path=self.root / "run" / "agent.sock", timeout_s=10.0)

    def request(self, cmd: Command, args: dict[str, Any] | None = None, **kw: str) -> Response:
        """One command over the Unix socket."""
        return self.client.request(cmd, args, who=kw.get("who", "test"), reason=kw.get("why", ""))

    def status(self) -> dict[str, Any]:
        """The ``status`` answer."""
        response = self.request(Command.STATUS)
        assert response.ok, response
        return dict(response.result or {})

    def state(self) -> str:
        """The state the agent reports."""
        return str(self.status()["state"]["state"])

    def reset(self, force: bool = True) -> Response:
        """Reset to ACTIVE (forced by default: a new host starts HALTED)."""
        args = {"target": "ACTIVE", "force": force, "scope": "host"}
        return self.request(Command.RESET, args, who="test", why="test start")

    def halt(self, why: str = "drill") -> Response:
        """Halt over the Unix socket."""
        return self.request(Command.HALT, {"reason_code": "MANUAL"}, who="test", why=why)

    def enforcement(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait (bounded) until a halt sequence ran to its end; its report."""
        box: dict[str, Any] = {}

        def done() -> bool:
            report: dict[str, Any] | None = self.status().get("enforcement")
            box["report"] = report
            return report is not None and not report["running"]

        try:
            until(done, "the halt sequence to finish", timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last report: {box.get('report')}") from None
        return dict(box["report"])

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The agent's JSON log lines (optionally only ``event``)."""
        path = self.root / "agent.jsonl"
        if not path.exists():
            return []
        lines = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return [x for x in lines if event is None or x.get("event") == event]

    def output(self) -> str:
        """The agent's stdout and stderr."""
        path = self.root / "agent.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the agent (by PID) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM by PID, bounded wait, SIGKILL if still running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@dataclass
class Strategy:
    """A strategy stand-in subprocess; its pid file is ``<root>/run/<name>.pid``."""

    root: Path
    name: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, root: Path, name: str = "strat") -> Strategy:
        """Start it; wait (bounded) for its pid file."""
        script = root / "strategy.py"
        script.write_text(STRATEGY, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        strategy = cls(root, name, proc)
        until(strategy.pidfile.exists, f"{name} to write its pid file")
        return strategy

    @property
    def pidfile(self) -> Path:
        """Where it writes its pid."""
        return self.root / "run" / f"{self.name}.pid"

    @property
    def handled_sigterm(self) -> bool:
        """It ran its SIGTERM handler (it ran again after being frozen)."""
        return (self.root / f"{self.name}.term").exists()

    def stop(self) -> None:
        """SIGCONT then SIGKILL by PID (only if still running), and reap."""
        if self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def cleanup(root: Path) -> None:
    """Remove a short root made by ``short_root``."""
    shutil.rmtree(root, ignore_errors=True)
