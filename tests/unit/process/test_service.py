"""The strategy module's service layer, against a real supervisord and a real process."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tradeops.process.running import read_running
from tradeops.process.service import (
    StrategyError,
    StrategyOutcome,
    StrategyRequest,
    run_strategy,
)

from .conftest import PROGRAM, SupervisedHost, closed_url


def request(
    host: SupervisedHost,
    state: str = "started",
    *,
    definition: str | None = None,
    release_id: str | None = None,
    status_url: str | None = None,
    timeout: float = 15.0,
) -> StrategyRequest:
    if release_id is not None and status_url is None:
        status_url = host.status_url
    return StrategyRequest(
        root=str(host.root),
        name=PROGRAM,
        state=state,
        manager="supervisord",
        definition=definition,
        status_url=status_url,
        release_id=release_id,
        timeout=timeout,
    )


def start(host: SupervisedHost, release_id: str = "r1") -> StrategyOutcome:
    """Install and start the program; return once it reports ``release_id``."""
    host.set_release(release_id)
    outcome = run_strategy(request(host, definition=host.definition(), release_id=release_id))
    host.wait_state("RUNNING")
    return outcome


def test_first_start_installs_the_definition_and_starts(supervised: SupervisedHost) -> None:
    assert supervised.info() is None
    outcome = run_strategy(request(supervised, definition=supervised.definition()))
    assert outcome.changed
    result = outcome.result
    assert (result["name"], result["manager"]) == (PROGRAM, "supervisord")
    assert result["action"] == "start"
    assert result["definition_changed"] is True
    assert result["running"] is None  # no status_url
    assert supervised.conf_file.read_text() == supervised.definition()
    assert supervised.conf_file.stat().st_mode & 0o777 == 0o644
    info = supervised.wait_state("RUNNING")
    assert supervised.wait_answer()["pid"] == info["pid"]
    definition_diff = outcome.diff[0]
    assert definition_diff["before_header"] == str(supervised.conf_file)
    assert (definition_diff["before"], definition_diff["after"]) == ("", supervised.definition())
    assert outcome.diff[1] == {
        "before": f"{PROGRAM}: absent (pid None)\n",
        "after": f"{PROGRAM}: start\n",
    }


def test_a_second_start_is_idempotent(supervised: SupervisedHost) -> None:
    start(supervised)
    pid = supervised.info()["pid"]  # type: ignore[index]
    outcome = run_strategy(request(supervised, definition=supervised.definition()))
    assert not outcome.changed
    assert outcome.result["action"] == "none"
    assert outcome.result["definition_changed"] is False
    assert (outcome.result["state"], outcome.result["pid"]) == ("RUNNING", pid)
    assert outcome.diff == []
    assert supervised.info()["pid"] == pid  # type: ignore[index]


def test_start_with_a_release_verifies_it_from_the_process(supervised: SupervisedHost) -> None:
    outcome = start(supervised, "r1")
    running = outcome.result["running"]
    assert running["release_id"] == "r1"
    assert running["version"] == "v-r1"
    assert running["error"] is None
    assert running["pid"] == supervised.info()["pid"]  # type: ignore[index]
    assert outcome.result["state"] == "RUNNING"


def test_restart_waits_for_the_new_pid_and_the_release(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    old_pid = supervised.info()["pid"]  # type: ignore[index]
    supervised.set_release("r2")
    outcome = run_strategy(request(supervised, "restarted", release_id="r2"))
    assert outcome.changed
    assert outcome.result["action"] == "restart"
    assert outcome.result["definition_changed"] is False
    running = outcome.result["running"]
    assert running["release_id"] == "r2"
    assert running["pid"] != old_pid
    assert outcome.result["pid"] == running["pid"]
    assert outcome.result["state"] == "RUNNING"
    assert supervised.info()["pid"] == running["pid"]  # type: ignore[index]


def test_restart_into_a_wrong_release_fails_naming_both(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    supervised.set_release("r2")
    with pytest.raises(StrategyError) as caught:
        run_strategy(request(supervised, "restarted", release_id="r3", timeout=1.0))
    message = str(caught.value)
    assert f"{PROGRAM} reports release r2 (pid " in message
    assert "expected r3 within 1s" in message
    assert "does not run the target release" in message


def test_a_process_that_did_not_restart_still_reports_the_old_release(
    supervised: SupervisedHost,
) -> None:
    start(supervised, "r1")
    supervised.set_release("r2")  # e.g. `current` switched, but nobody restarted the process
    with pytest.raises(StrategyError, match=r"reports release r1 .*expected r2"):
        run_strategy(request(supervised, "started", release_id="r2", timeout=0.5))


def test_a_process_that_does_not_answer_fails_the_verification(
    supervised: SupervisedHost,
) -> None:
    start(supervised, "r1")
    url = closed_url()
    with pytest.raises(StrategyError, match=r"did not answer \(http://127\.0\.0\.1:\d+/status: "):
        run_strategy(request(supervised, release_id="r1", status_url=url, timeout=0.3))


def test_a_release_that_exits_at_start_fails_with_the_managers_reason_and_its_output(
    supervised: SupervisedHost,
) -> None:
    start(supervised, "r1")
    supervised.set_release("broken-r2")
    with pytest.raises(StrategyError) as failure:
        run_strategy(request(supervised, "restarted", release_id="broken-r2", timeout=60))
    message = str(failure.value)
    # Not the timeout's message: the wait ended on supervisord's verdict.
    assert message.startswith(f"{PROGRAM} does not run broken-r2: it stopped at start"), message
    assert re.search(r"supervisord: EXITED \((Bad exit code|exit status) 3\)", message), message
    assert "its last output:" in message
    assert message.endswith("config error: fault_mode must be one of none, crash"), message


def test_a_changed_definition_restarts_the_running_program(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    old_pid = supervised.info()["pid"]  # type: ignore[index]
    old_text = supervised.definition()
    new_text = supervised.definition(extra='environment=STRAT_MODE="b"\n')
    outcome = run_strategy(request(supervised, definition=new_text, release_id="r1"))
    assert outcome.changed
    assert outcome.result["action"] == "restart"
    assert outcome.result["definition_changed"] is True
    assert outcome.result["running"]["pid"] != old_pid
    assert supervised.conf_file.read_text() == new_text
    assert (outcome.diff[0]["before"], outcome.diff[0]["after"]) == (old_text, new_text)
    # And it is stable afterwards.
    supervised.wait_state("RUNNING")
    again = run_strategy(request(supervised, definition=new_text, release_id="r1"))
    assert not again.changed
    assert again.result["action"] == "none"


def test_check_mode_on_a_running_program_changes_nothing(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    pid = supervised.info()["pid"]  # type: ignore[index]
    installed = supervised.conf_file.read_bytes()
    mtime = supervised.conf_file.stat().st_mtime_ns
    new_text = supervised.definition(extra='environment=STRAT_MODE="b"\n')
    supervised.set_release("r2")
    outcome = run_strategy(
        request(supervised, "restarted", definition=new_text, release_id="r2"), check_mode=True
    )
    assert outcome.changed
    assert outcome.result["action"] == "restart"
    assert outcome.result["definition_changed"] is True
    assert (outcome.result["state"], outcome.result["pid"]) == ("RUNNING", pid)
    # What it runs now, read from the process; no waiting for r2 in check mode.
    assert outcome.result["running"]["release_id"] == "r1"
    assert outcome.result["running"]["pid"] == pid
    definition_diff, action_diff = outcome.diff
    assert definition_diff["before"] == installed.decode()
    assert definition_diff["after"] == new_text
    assert action_diff == {
        "before": f"{PROGRAM}: RUNNING (pid {pid})\n",
        "after": f"{PROGRAM}: restart\n",
    }
    assert supervised.conf_file.read_bytes() == installed
    assert supervised.conf_file.stat().st_mtime_ns == mtime
    info = supervised.info()
    assert info is not None
    assert (info["statename"], info["pid"]) == ("RUNNING", pid)
    assert read_running(supervised.status_url).release_id == "r1"


def test_check_mode_on_a_new_program_installs_nothing(supervised: SupervisedHost) -> None:
    outcome = run_strategy(
        request(supervised, definition=supervised.definition(), release_id="r1"), check_mode=True
    )
    assert outcome.changed
    assert outcome.result["action"] == "start"
    assert outcome.result["state"] == "absent"
    assert outcome.result["running"]["error"] is not None  # nothing answers yet
    assert outcome.diff[0]["after"] == supervised.definition()
    assert not supervised.conf_file.exists()
    assert supervised.info() is None


def test_check_mode_stop_reports_but_keeps_running(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    pid = supervised.info()["pid"]  # type: ignore[index]
    outcome = run_strategy(request(supervised, "stopped"), check_mode=True)
    assert outcome.changed
    assert outcome.result["action"] == "stop"
    assert outcome.diff == [
        {"before": f"{PROGRAM}: RUNNING (pid {pid})\n", "after": f"{PROGRAM}: stop\n"}
    ]
    assert supervised.info()["pid"] == pid  # type: ignore[index]


def test_stop_stops_and_is_idempotent(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    outcome = run_strategy(request(supervised, "stopped", status_url=supervised.status_url))
    assert outcome.changed
    assert outcome.result["action"] == "stop"
    assert outcome.result["definition_changed"] is False
    assert (outcome.result["state"], outcome.result["pid"]) == ("STOPPED", None)
    assert outcome.result["running"]["error"] is not None  # it no longer answers
    assert read_running(supervised.status_url).error is not None
    again = run_strategy(request(supervised, "stopped"))
    assert not again.changed
    assert again.result["action"] == "none"
    assert again.diff == []
    assert supervised.info()["statename"] == "STOPPED"  # type: ignore[index]


def test_stop_of_a_program_nobody_defined_is_a_no_op(supervised: SupervisedHost) -> None:
    outcome = run_strategy(request(supervised, "stopped"))
    assert not outcome.changed
    assert outcome.result["action"] == "none"
    assert outcome.result["state"] == "absent"


def test_start_after_stop_starts_again(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    run_strategy(request(supervised, "stopped"))
    supervised.set_release("r2")
    outcome = run_strategy(request(supervised, "started", release_id="r2"))
    assert outcome.changed
    assert outcome.result["action"] == "start"
    assert outcome.result["running"]["release_id"] == "r2"


def test_an_unknown_program_without_definition_fails(supervised: SupervisedHost) -> None:
    with pytest.raises(StrategyError, match=f"{PROGRAM} is not defined under supervisord"):
        run_strategy(request(supervised, "started"))
    with pytest.raises(StrategyError, match="pass its definition"):
        run_strategy(request(supervised, "restarted"))
    assert not supervised.conf_file.exists()


def test_a_root_without_a_supervisord_socket_fails(tmp_path: Path) -> None:
    req = StrategyRequest(str(tmp_path), PROGRAM, "started", "supervisord", "[program:x]\n")
    with pytest.raises(StrategyError, match="supervisord is not running: no socket at"):
        run_strategy(req)
    with pytest.raises(StrategyError, match="supervisord"):
        run_strategy(req, check_mode=True)


def test_a_stale_socket_file_fails_clearly(tmp_path: Path) -> None:
    sock_path = tmp_path / "run" / "supervisor.sock"
    sock_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))  # left behind, nobody listens: a crashed supervisord
    req = StrategyRequest(str(tmp_path), PROGRAM, "stopped", "supervisord")
    with pytest.raises(StrategyError, match=f"supervisord at {sock_path}: "):
        run_strategy(req)


def test_release_id_without_status_url_fails(tmp_path: Path) -> None:
    req = StrategyRequest(str(tmp_path), PROGRAM, "restarted", "supervisord", release_id="r2")
    with pytest.raises(StrategyError, match="release_id needs status_url"):
        run_strategy(req)


def test_an_unknown_state_fails(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="unknown state 'paused'"):
        run_strategy(StrategyRequest(str(tmp_path), PROGRAM, "paused", "supervisord"))


def test_an_unknown_manager_fails(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="unknown service manager 'moon'"):
        run_strategy(StrategyRequest(str(tmp_path), PROGRAM, "started", "moon"))


# Regressions: a changed definition with state=stopped, a definition with autostart=false,
# and a definition written by an interrupted run.


def test_stopped_with_a_changed_definition_leaves_it_stopped(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    new_text = supervised.definition(extra='environment=STRAT_MODE="b"\n')
    outcome = run_strategy(request(supervised, "stopped", definition=new_text))
    assert outcome.result["action"] == "stop"
    assert supervised.conf_file.read_text() == new_text
    assert supervised.info()["statename"] == "STOPPED"  # type: ignore[index]


def test_started_with_autostart_false_is_started(supervised: SupervisedHost) -> None:
    start(supervised, "r1")
    outcome = run_strategy(request(supervised, definition=supervised.definition(autostart=False)))
    assert outcome.result["action"] == "restart"
    assert outcome.result["state"] in ("STARTING", "RUNNING")


def test_a_definition_written_but_never_applied_is_applied(supervised: SupervisedHost) -> None:
    supervised.conf_file.write_text(supervised.definition())
    outcome = run_strategy(request(supervised, definition=supervised.definition(), release_id="r1"))
    assert outcome.result["running"]["release_id"] == "r1"
