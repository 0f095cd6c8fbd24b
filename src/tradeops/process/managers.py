"""Start, stop and restart the strategy under supervisord or systemd.

supervisord is driven over its XML-RPC Unix socket (the one the host role
configures), not by spawning ``supervisorctl``: one less Python process per
call. systemd is driven with ``systemctl``.
"""

from __future__ import annotations

import subprocess
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tradeops.releases.fsutil import atomic_write
from tradeops.releases.layout import detect_service_manager

SYSTEMD_UNIT_DIR = Path("/etc/systemd/system")
RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF", "active", "activating", "reloading"})
# States in which the manager no longer runs a program it was asked to start.
SUPERVISORD_GAVE_UP = frozenset({"FATAL", "EXITED"})
OUTPUT_TAIL_BYTES = 2000  # of the program's log, quoted when it gave up


class ManagerError(RuntimeError):
    """The service manager refused or failed; the message says what and why."""


@dataclass(frozen=True)
class ProcState:
    """The manager's view of a program: its state name and main pid (None when down)."""

    state: str
    pid: int | None

    @property
    def running(self) -> bool:
        """True when the manager runs (or is starting) the program."""
        return self.state in RUNNING_STATES


class Manager(Protocol):
    """What the strategy module needs from a service manager."""

    name: str

    def definition_path(self, program: str) -> Path:
        """Where the program's definition (program section or unit file) lives."""

    def apply(self, program: str) -> bool:
        """Load a changed definition; True when the manager (re)started the program."""

    def state(self, program: str) -> ProcState:
        """The program's state and pid."""

    def start(self, program: str) -> None:
        """Start the program (no-op when it runs)."""

    def stop(self, program: str) -> None:
        """Stop the program and wait for it to exit (no-op when it is down)."""

    def gave_up(self, program: str) -> str | None:
        """Why the manager stopped running the program after a start, or None."""


def _last_lines(text: str, count: int = 3) -> str:
    """The last ``count`` distinct lines of ``text``; a line repeated in a row is shown once."""
    runs: list[list[Any]] = []  # [line, times in a row]
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if runs and runs[-1][0] == line:
            runs[-1][1] += 1
        else:
            runs.append([line, 1])
    return " | ".join(
        line if times == 1 else f"{line} ({times} times)" for line, times in runs[-count:]
    )


def write_definition(manager: Manager, program: str, text: str) -> bool:
    """Write the program's definition atomically when it differs; True when it did."""
    path = manager.definition_path(program)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"), mode=0o644)
    return True


def read_definition(manager: Manager, program: str) -> str | None:
    """The program's definition as installed, or None."""
    try:
        return manager.definition_path(program).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


class Supervisord:
    """The host's own supervisord (``<root>/run/supervisor.sock``)."""

    name = "supervisord"

    def __init__(self, root: Path) -> None:
        self.socket = root / "run" / "supervisor.sock"
        self.conf_dir = root / "supervisor" / "conf.d"

    def _rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport  # the host venv has supervisor

        if not self.socket.exists():
            raise ManagerError(
                f"supervisord is not running: no socket at {self.socket} "
                "(start it with the tradeops.algo.host role)"
            )
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def _call(self, method: str, *args: Any, ok_faults: tuple[str, ...] = ()) -> Any:
        try:
            return getattr(self._rpc(), method)(*args)
        except xmlrpc.client.Fault as exc:
            if any(code in exc.faultString for code in ok_faults):
                return None
            raise ManagerError(f"supervisord {method}{args}: {exc.faultString}") from exc
        except OSError as exc:
            raise ManagerError(f"supervisord at {self.socket}: {exc}") from exc

    def definition_path(self, program: str) -> Path:
        """``<root>/supervisor/conf.d/<program>.conf``."""
        return self.conf_dir / f"{program}.conf"

    def apply(self, program: str) -> bool:
        """Like ``supervisorctl update`` for this program's group."""
        added, changed, removed = self._call("reloadConfig")[0]
        if program in removed or program in changed:
            self._call("stopProcessGroup", program, True, ok_faults=("BAD_NAME",))
            self._call("removeProcessGroup", program, ok_faults=("BAD_NAME",))
        if program in added or program in changed:
            self._call("addProcessGroup", program, ok_faults=("ALREADY_ADDED",))
            return True  # autostart runs it with the new definition
        return False

    def state(self, program: str) -> ProcState:
        """``getProcessInfo``; ``absent`` when supervisord does not know the program."""
        info = self._call("getProcessInfo", program, ok_faults=("BAD_NAME",))
        if info is None:
            return ProcState("absent", None)
        pid = int(info.get("pid") or 0)
        return ProcState(str(info.get("statename", "UNKNOWN")), pid or None)

    def start(self, program: str) -> None:
        """``startProcess`` without waiting for ``startsecs``; the caller verifies."""
        self._call("startProcess", program, False, ok_faults=("ALREADY_STARTED",))

    def stop(self, program: str) -> None:
        """``stopProcess`` and wait for the exit."""
        self._call("stopProcess", program, True, ok_faults=("NOT_RUNNING",))

    def gave_up(self, program: str) -> str | None:
        """FATAL (start retries used up) or EXITED: the reason and the program's last output."""
        info = self._call("getProcessInfo", program, ok_faults=("BAD_NAME",))
        if info is None or info.get("statename") not in SUPERVISORD_GAVE_UP:
            return None
        why = info.get("spawnerr") or f"exit status {info.get('exitstatus')}"
        tail = self._call("tailProcessStdoutLog", program, 0, OUTPUT_TAIL_BYTES)
        output = _last_lines(str(tail[0])) if tail else ""
        return f"supervisord: {info['statename']} ({why})" + (
            f"; its last output: {output}" if output else ""
        )


class Systemd:
    """systemd, with the unit ``tradeops-<program>.service``."""

    name = "systemd"

    def __init__(self, unit_dir: Path = SYSTEMD_UNIT_DIR) -> None:
        self.unit_dir = unit_dir

    @staticmethod
    def unit(program: str) -> str:
        """The unit name of a program."""
        return f"tradeops-{program}.service"

    def _systemctl(self, *args: str) -> str:
        proc = subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, check=False, timeout=120
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise ManagerError(f"systemctl {' '.join(args)} failed ({proc.returncode}): {detail}")
        return proc.stdout

    def definition_path(self, program: str) -> Path:
        """``/etc/systemd/system/tradeops-<program>.service``."""
        return self.unit_dir / self.unit(program)

    def apply(self, program: str) -> bool:
        """``daemon-reload``; systemd does not start the unit by itself."""
        self._systemctl("daemon-reload")
        return False

    def state(self, program: str) -> ProcState:
        """``ActiveState`` and ``MainPID`` from ``systemctl show``."""
        out = self._systemctl("show", "-p", "ActiveState", "-p", "MainPID", self.unit(program))
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        pid = int(fields.get("MainPID", "0") or 0)
        return ProcState(fields.get("ActiveState", "unknown"), pid or None)

    def start(self, program: str) -> None:
        """``systemctl start``."""
        self._systemctl("start", self.unit(program))

    def stop(self, program: str) -> None:
        """``systemctl stop`` (waits for the exit)."""
        self._systemctl("stop", self.unit(program))

    def gave_up(self, program: str) -> str | None:
        """ActiveState ``failed``: the unit's result and its main process's exit status."""
        out = self._systemctl(
            "show", "-p", "ActiveState", "-p", "Result", "-p", "ExecMainStatus", self.unit(program)
        )
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if fields.get("ActiveState") != "failed":
            return None
        return (
            f"systemd: failed (result {fields.get('Result', '?')}, exit status "
            f"{fields.get('ExecMainStatus', '?')}); see journalctl -u {self.unit(program)}"
        )


def manager_for(kind: str, root: Path) -> Manager:
    """The manager named ``kind`` (``auto`` detects it)."""
    kind = detect_service_manager() if kind == "auto" else kind
    if kind == "supervisord":
        return Supervisord(root)
    if kind == "systemd":
        return Systemd()
    raise ManagerError(f"unknown service manager {kind!r}: use auto, supervisord or systemd")
