"""The strategy processes a halt stops: their pids from their manager, signals, liveness.

A halt freezes every pid at once with SIGSTOP (a runaway cannot send one more
order), then, with ``on_halt: stop``, asks the manager to stop the program
without restart and SIGKILLs whatever is still alive after ``kill_after_s``.
A stopped process never runs again before it dies: the manager's SIGTERM
stays pending, SIGKILL acts on it.

The ``pidfile`` manager is for hosts (and tests) without supervisord or
systemd: the pid is read from a file the program writes, and ``stop`` sends
SIGTERM. A pid is identified with its start time (``/proc/<pid>/stat``), so a
reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tradeops.agent.sections import ProcessConfig
from tradeops.process.managers import Manager, ManagerError, ProcState, Supervisord, Systemd


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T, Z, ...), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()[0]


@dataclass(frozen=True, slots=True)
class Pid:
    """One process, named by pid and start time."""

    program: str
    pid: int
    started: int | None

    def alive(self) -> bool:
        """Running or frozen; a zombie or another process with the same pid is not it."""
        if start_time(self.pid) != self.started:
            return False
        return proc_state(self.pid) not in (None, "Z", "X")

    def cannot_run(self) -> bool:
        """Stopped (T, t), dead, or no longer this process: it sends nothing more."""
        if start_time(self.pid) != self.started:
            return True
        return proc_state(self.pid) in (None, "Z", "X", "T", "t")

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` if it is still this process; True when sent."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True


class PidfileManager:
    """Pid from a file the program writes; ``stop`` sends SIGTERM and waits (bounded)."""

    name = "pidfile"

    def __init__(self, pidfile: Path, stop_wait_s: float = 10.0) -> None:
        self.pidfile = pidfile
        self.stop_wait_s = stop_wait_s

    def state(self, program: str) -> ProcState:
        """RUNNING with the file's pid while that process exists, else EXITED."""
        try:
            pid = int(self.pidfile.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return ProcState("EXITED", None)
        if pid <= 1 or proc_state(pid) in (None, "Z", "X"):
            return ProcState("EXITED", None)
        return ProcState("RUNNING", pid)

    def stop(self, program: str) -> None:
        """SIGTERM the pid; wait (bounded) for it to exit."""
        st = self.state(program)
        if st.pid is None:
            return
        target = Pid(program, st.pid, start_time(st.pid))
        target.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_wait_s
        for _attempt in range(int(self.stop_wait_s / 0.02) + 1):
            if not target.alive() or time.monotonic() > deadline:
                return
            time.sleep(0.02)


def manager(config: ProcessConfig, root: Path) -> Manager | PidfileManager:
    """The manager of one configured program."""
    if config.manager == "pidfile":
        assert config.pidfile is not None
        return PidfileManager(config.pidfile)
    if config.manager == "supervisord":
        return Supervisord(root)
    return Systemd()


def resolve(program: str, mgr: Manager | PidfileManager) -> Pid | None:
    """The program's pid as its manager gives it (None: not running)."""
    st = mgr.state(program)
    if st.pid is None:
        return None
    return Pid(program, st.pid, start_time(st.pid))


def freeze(pids: list[Pid]) -> dict[str, str]:
    """SIGSTOP every pid at once; per program what happened."""
    out = {}
    for p in pids:
        out[p.program] = f"SIGSTOP {p.pid}" if p.signal(signal.SIGSTOP) else f"{p.pid} gone"
    return out


def kill_if_alive(pid: Pid) -> bool:
    """SIGKILL ``pid`` if it is still this process; True when sent."""
    with contextlib.suppress(PermissionError):
        return pid.signal(signal.SIGKILL)
    return False


__all__ = ["ManagerError", "Pid", "PidfileManager", "freeze", "kill_if_alive", "manager", "resolve"]
