"""The halt sequence without a venue: freeze, stop, SIGKILL; each step reported."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tradeops.agent.enforce import Enforcement
from tradeops.agent.metrics import AgentMetrics
from tradeops.agent.procs import Pid, PidfileManager, start_time
from tradeops.agent.riskreport import CancelReport
from tradeops.agent.sections import EnforcementConfig, OnHalt, ProcessConfig
from tradeops.log import EventLog

# Ignores SIGTERM once running: only a frozen-then-killed path ends it quickly.
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"


def _child(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN])
    pidfile = tmp_path / "p.pid"
    pidfile.write_text(str(proc.pid))
    return proc, pidfile


def _enforcement(tmp_path: Path, pidfile: Path, on_halt: OnHalt) -> tuple[Enforcement, list[Any]]:
    audit: list[Any] = []
    config = EnforcementConfig(
        (ProcessConfig("p", "pidfile", pidfile),), on_halt=on_halt, kill_after_s=0.3
    )
    enforcement = Enforcement(
        config, tmp_path, enforcer=None, notifier=None, metrics=AgentMetrics(),
        log=EventLog("agent", io.StringIO()), audit=lambda event, **f: audit.append((event, f)),
    )  # fmt: skip
    return enforcement, audit


def test_stop_freezes_then_kills_and_says_nothing_was_cancelled(tmp_path: Path) -> None:
    proc, pidfile = _child(tmp_path)
    try:
        enforcement, audit = _enforcement(tmp_path, pidfile, OnHalt.STOP)
        report = asyncio.run(enforcement.run("test", "drill"))
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait(10)
    steps = {s.name: s for s in report.steps}
    assert list(steps) == ["freeze", "cancel_all", "stop", "confirm", "notify"]
    assert f"SIGSTOP {proc.pid}" in steps["freeze"].detail
    assert steps["stop"].ok
    assert not steps["cancel_all"].ok  # no risk session: never reported clean
    assert "no risk session" in steps["cancel_all"].detail
    assert not report.ok
    assert [e for e, _unused in audit].count("enforce_step") == 5


def test_pause_leaves_the_process_frozen(tmp_path: Path) -> None:
    proc, pidfile = _child(tmp_path)
    try:
        enforcement, _audit = _enforcement(tmp_path, pidfile, OnHalt.PAUSE)
        report = asyncio.run(enforcement.run("test", "drill"))
        assert [s.name for s in report.steps] == ["freeze", "cancel_all", "notify"]
        assert report.steps[0].ok  # confirmed in /proc, not only signalled
        assert "stopped within" in report.steps[0].detail
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "T"
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


def test_a_pid_is_not_alive_once_a_zombie_or_reused(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = Pid("p", proc.pid, start_time(proc.pid))
    for _attempt in range(200):
        if not pid.alive():
            break
        time.sleep(0.02)
    assert not pid.alive()  # exited, not yet reaped: a zombie is not alive
    proc.wait(10)
    assert not Pid("p", proc.pid, 12345).signal(signal.SIGKILL)
    assert PidfileManager(tmp_path / "missing.pid").state("p").pid is None


class CleanVenue:
    """A risk enforcer whose venue always confirms zero working orders."""

    async def cancel(self, who: str, why: str) -> CancelReport:
        return CancelReport(who, why, "ACC1", clean=True, cancelled_by_mass=2, confirm_ms=1.0)


def _confirmed_by(drop_copy: Any) -> tuple[bool, str]:
    enforcement = Enforcement(
        EnforcementConfig((), on_halt=OnHalt.NONE), Path("/nonexistent"),
        enforcer=CleanVenue(), notifier=None, metrics=AgentMetrics(),  # type: ignore[arg-type]
        log=EventLog("agent", io.StringIO()), audit=lambda event, **f: None, drop_copy=drop_copy,
    )  # fmt: skip
    report = asyncio.run(enforcement.run("test", "drill"))
    step = next(s for s in report.steps if s.name == "cancel_all")
    return step.ok, step.detail


def test_the_venues_zero_is_confirmed_by_the_drop_copy_once_its_cancels_arrive() -> None:
    views = iter([(["A1", "A2"], None), (["A2"], None)])
    ok, detail = _confirmed_by(lambda: next(views, ([], None)))
    assert ok
    assert "clean=True" in detail
    assert "drop copy: 0 working" in detail


def test_a_drop_copy_that_still_shows_an_order_or_is_down_leaves_the_cancel_not_ok() -> None:
    ok, detail = _confirmed_by(lambda: (["MANUAL-7"], None))
    assert not ok
    assert "drop copy still shows 1 working after" in detail
    assert "MANUAL-7" in detail
    ok, detail = _confirmed_by(lambda: ([], "LOGGED_OUT"))
    assert not ok
    assert "drop copy down (LOGGED_OUT): not confirmed by it" in detail


def test_a_pid_known_ahead_is_frozen_without_asking_its_manager(tmp_path: Path) -> None:
    proc, pidfile = _child(tmp_path)
    try:
        enforcement, _audit = _enforcement(tmp_path, pidfile, OnHalt.PAUSE)

        async def halt_after_a_watch() -> Any:
            watch = asyncio.create_task(enforcement.watch())
            for _attempt in range(200):  # the first resolve runs at once
                if enforcement._known:
                    break
                await asyncio.sleep(0.01)
            watch.cancel()
            return await enforcement.run("test", "drill")

        report = asyncio.run(halt_after_a_watch())
        freeze_step = report.steps[0]
        assert freeze_step.ok
        assert f"SIGSTOP {proc.pid}" in freeze_step.detail
        assert "not known before the halt" not in freeze_step.detail
    finally:
        proc.kill()
        proc.wait(10)


def test_a_pid_nobody_knew_is_still_found_and_frozen(tmp_path: Path) -> None:
    proc, pidfile = _child(tmp_path)
    try:
        enforcement, _audit = _enforcement(tmp_path, pidfile, OnHalt.PAUSE)
        report = asyncio.run(enforcement.run("test", "drill"))
        assert f"SIGSTOP {proc.pid} (not known before the halt)" in report.steps[0].detail
        assert report.steps[0].ok
    finally:
        proc.kill()
        proc.wait(10)
