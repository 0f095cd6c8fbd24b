"""Service managers: supervisord over its socket (real daemon), systemd naming only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeops.process import managers
from tradeops.process.managers import (
    RUNNING_STATES,
    ManagerError,
    ProcState,
    Supervisord,
    Systemd,
    manager_for,
    read_definition,
    write_definition,
)

from .conftest import PROGRAM, SupervisedHost


@pytest.mark.parametrize(
    ("state", "running"),
    [
        ("RUNNING", True),
        ("STARTING", True),
        ("BACKOFF", True),
        ("active", True),
        ("activating", True),
        ("reloading", True),
        ("STOPPED", False),
        ("EXITED", False),
        ("FATAL", False),
        ("absent", False),
        ("inactive", False),
        ("failed", False),
    ],
)
def test_proc_state_running(state: str, running: bool) -> None:
    assert ProcState(state, None).running is running
    assert (state in RUNNING_STATES) is running


def test_supervisord_paths(tmp_path: Path) -> None:
    manager = Supervisord(tmp_path)
    assert manager.name == "supervisord"
    assert manager.socket == tmp_path / "run" / "supervisor.sock"
    assert manager.definition_path("strat") == tmp_path / "supervisor" / "conf.d" / "strat.conf"


def test_systemd_naming() -> None:
    assert Systemd.unit("strat") == "tradeops-strat.service"
    manager = Systemd()
    assert manager.name == "systemd"
    assert manager.definition_path("strat") == Path("/etc/systemd/system/tradeops-strat.service")
    assert Systemd(Path("/x/units")).definition_path("a") == Path("/x/units/tradeops-a.service")


def test_manager_for_names(tmp_path: Path) -> None:
    supervisord = manager_for("supervisord", tmp_path)
    assert isinstance(supervisord, Supervisord)
    assert supervisord.socket == tmp_path / "run" / "supervisor.sock"
    assert isinstance(manager_for("systemd", tmp_path), Systemd)


@pytest.mark.parametrize(("detected", "kind"), [("systemd", Systemd), ("supervisord", Supervisord)])
def test_manager_for_auto_detects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detected: str, kind: type
) -> None:
    monkeypatch.setattr(managers, "detect_service_manager", lambda: detected)
    assert isinstance(manager_for("auto", tmp_path), kind)


@pytest.mark.parametrize("kind", ["moon", "", "Systemd"])
def test_manager_for_an_unknown_kind_fails(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ManagerError, match=f"unknown service manager {kind!r}"):
        manager_for(kind, tmp_path)


def test_write_and_read_definition(tmp_path: Path) -> None:
    manager = Supervisord(tmp_path)
    assert read_definition(manager, "strat") is None
    assert write_definition(manager, "strat", "[program:strat]\ncommand=a\n")
    path = manager.definition_path("strat")
    assert path.read_text() == "[program:strat]\ncommand=a\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert read_definition(manager, "strat") == "[program:strat]\ncommand=a\n"
    mtime = path.stat().st_mtime_ns
    assert not write_definition(manager, "strat", "[program:strat]\ncommand=a\n")
    assert path.stat().st_mtime_ns == mtime
    assert write_definition(manager, "strat", "[program:strat]\ncommand=b\n")
    assert read_definition(manager, "strat") == "[program:strat]\ncommand=b\n"
    assert [p.name for p in path.parent.iterdir()] == ["strat.conf"]  # no temp file left


def test_rpc_without_a_socket_names_it(tmp_path: Path) -> None:
    with pytest.raises(ManagerError, match=r"supervisord is not running: no socket at .*host role"):
        Supervisord(tmp_path).state("strat")


def test_supervisord_lifecycle(supervised: SupervisedHost) -> None:
    manager = Supervisord(supervised.root)
    assert manager.state(PROGRAM) == ProcState("absent", None)
    assert not manager.apply(PROGRAM)  # nothing on disk: nothing to add
    write_definition(manager, PROGRAM, supervised.definition(autostart=False))
    assert manager.apply(PROGRAM)  # added
    assert manager.state(PROGRAM) == ProcState("STOPPED", None)
    assert not manager.apply(PROGRAM)  # unchanged
    manager.start(PROGRAM)
    info = supervised.wait_state("RUNNING")
    state = manager.state(PROGRAM)
    assert state.running
    assert state.pid == info["pid"]
    manager.start(PROGRAM)  # already started: no error
    assert manager.state(PROGRAM).pid == info["pid"]
    manager.stop(PROGRAM)
    assert manager.state(PROGRAM) == ProcState("STOPPED", None)
    manager.stop(PROGRAM)  # not running: no error
    manager.definition_path(PROGRAM).unlink()
    assert not manager.apply(PROGRAM)  # removed
    assert manager.state(PROGRAM).state == "absent"


def test_apply_of_a_changed_definition_restarts_with_it(supervised: SupervisedHost) -> None:
    manager = Supervisord(supervised.root)
    write_definition(manager, PROGRAM, supervised.definition())
    assert manager.apply(PROGRAM)
    old_pid = supervised.wait_state("RUNNING")["pid"]
    write_definition(manager, PROGRAM, supervised.definition(extra='environment=X="1"\n'))
    assert manager.apply(PROGRAM)
    new_pid = supervised.wait_state("RUNNING")["pid"]
    assert new_pid != old_pid


def test_starting_an_unknown_program_is_a_manager_error(supervised: SupervisedHost) -> None:
    with pytest.raises(ManagerError, match=r"supervisord startProcess\('nope', False\): BAD_NAME"):
        Supervisord(supervised.root).start("nope")


def test_stopping_an_unknown_program_is_a_manager_error(supervised: SupervisedHost) -> None:
    with pytest.raises(ManagerError, match="BAD_NAME"):
        Supervisord(supervised.root).stop("nope")


def test_a_broken_definition_is_a_manager_error(supervised: SupervisedHost) -> None:
    manager = Supervisord(supervised.root)
    write_definition(manager, PROGRAM, "[program:strat]\nautostart=true\n")  # no command
    with pytest.raises(ManagerError, match="reloadConfig"):
        manager.apply(PROGRAM)


def test_the_last_lines_show_a_repeated_line_once() -> None:
    from tradeops.process.managers import _last_lines

    text = "start\nerror: bad mode\n\nerror: bad mode\nerror: bad mode\n"
    assert _last_lines(text) == "start | error: bad mode (3 times)"
    assert _last_lines("a\nb\nc\nd\n") == "b | c | d"
    assert _last_lines("") == ""
