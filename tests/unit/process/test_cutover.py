"""The cutover module: swap, then restart on the new release, against a real supervisord."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.unit.modrun.conftest import handle
from tradeops.modrun.api import API_VERSION
from tradeops.releases import service
from tradeops.releases.activation import activate
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import DEFAULT_SHARED_LINKS, stage
from tradeops.testing.artifacts import craft_artifact

from .conftest import PROGRAM, SupervisedHost


def host_with_releases(host: SupervisedHost) -> Layout:
    """Releases A and B staged on the supervised host, A active, the strategy running A."""
    for rel in LAYOUT_DIRS:
        (host.root / rel).mkdir(parents=True, exist_ok=True)
    layout = Layout.at(host.root)
    for rid in ("A", "B"):
        stage(layout, craft_artifact(host.root / f"{rid}.tar.gz", f"{rid}-1.0"), rid)
    activate(layout, "A")
    host.set_release("A")
    started = cutover(host, "A", definition=host.definition())
    assert "failed" not in started, started
    return layout


def cutover(host: SupervisedHost, release_id: str, check_mode: bool = False, **over: Any) -> dict:
    params: dict[str, Any] = {
        "root": str(host.root),
        "release_id": release_id,
        "shared_links": dict(DEFAULT_SHARED_LINKS),  # the links stage() added
        "verify": True,
        "prune": False,
        "keep": 5,
        "replaced": "previous",
        "name": PROGRAM,
        "manager": "supervisord",
        "status_url": host.status_url,
        "timeout": 60.0,
    }
    params.update(over)
    request = {
        "api": API_VERSION,
        "module": "cutover",
        "params": params,
        "check_mode": check_mode,
        "diff": True,
    }
    return handle(request)


def test_swap_then_restart_until_the_new_process_reports_the_release(
    supervised: SupervisedHost,
) -> None:
    layout = host_with_releases(supervised)
    old_pid = supervised.info()["pid"]  # type: ignore[index]
    supervised.set_release("B")  # what the next start of the program reports
    result = cutover(supervised, "B")
    assert "failed" not in result, result
    assert result["changed"] is True
    assert (result["previous"], result["current"]) == ("A", "B")
    running = result["strategy"]["running"]
    assert running["release_id"] == "B"
    assert running["pid"] != old_pid
    assert os.readlink(layout.current) == "releases/B"
    assert any("current -> releases/B" in d.get("after", "") for d in result["diff"])


def test_a_release_that_cannot_start_fails_after_the_swap_and_says_so(
    supervised: SupervisedHost,
) -> None:
    layout = host_with_releases(supervised)
    supervised.set_release("broken-B")  # the new release exits at start
    result = cutover(supervised, "B")
    assert result["failed"] is True
    assert result["changed"] is True, "current moved: the caller must switch back"
    assert (result["previous"], result["current"]) == ("A", "B")
    assert "stopped at start" in result["msg"], result["msg"]
    assert os.readlink(layout.current) == "releases/B"
    # The switch-back: A again, and B logged rolled-back.
    supervised.set_release("A")
    back = cutover(supervised, "A", replaced="rolled-back")
    assert "failed" not in back, back
    assert back["strategy"]["running"]["release_id"] == "A"
    assert ReleaseLog(layout.release_log).status_of("B") == "rolled-back"


def test_a_release_that_cannot_be_activated_restarts_nothing(
    supervised: SupervisedHost,
) -> None:
    layout = host_with_releases(supervised)
    pid = supervised.info()["pid"]  # type: ignore[index]
    ReleaseLog(layout.release_log).append("B", "bad", reason="test")
    result = cutover(supervised, "B")
    assert result["failed"] is True
    assert "marked bad" in result["msg"]
    assert "changed" not in result or result["changed"] is False
    assert os.readlink(layout.current) == "releases/A"
    assert supervised.info()["pid"] == pid  # type: ignore[index]


def test_check_mode_swaps_and_restarts_nothing(supervised: SupervisedHost) -> None:
    layout = host_with_releases(supervised)
    pid = supervised.info()["pid"]  # type: ignore[index]
    log = layout.release_log.read_bytes()
    result = cutover(supervised, "B", check_mode=True)
    assert "failed" not in result, result
    assert result["changed"] is True
    assert result["strategy"]["action"] == "restart"
    assert os.readlink(layout.current) == "releases/A"
    assert layout.release_log.read_bytes() == log
    assert supervised.info()["pid"] == pid  # type: ignore[index]


def test_without_a_program_name_only_the_swap(supervised: SupervisedHost) -> None:
    layout = host_with_releases(supervised)
    result = cutover(supervised, "B", name=None, status_url=None)
    assert "failed" not in result, result
    assert "strategy" not in result
    assert os.readlink(layout.current) == "releases/B"


def test_a_host_that_already_runs_the_release_is_not_restarted(
    supervised: SupervisedHost,
) -> None:
    host_with_releases(supervised)
    supervised.set_release("B")
    first = cutover(supervised, "B")
    assert "failed" not in first, first
    pid = first["strategy"]["running"]["pid"]
    again = cutover(supervised, "B")
    assert "failed" not in again, again
    assert again["changed"] is False
    assert again["strategy"]["action"] == "none"
    assert again["strategy"]["running"]["pid"] == pid


def test_a_process_on_the_release_but_another_config_is_restarted(
    supervised: SupervisedHost,
) -> None:
    """Issue 10, finding 2: "already runs" compares the config the process loaded too."""
    host_with_releases(supervised)
    supervised.set_release("B")
    supervised.set_config("a" * 64)
    first = cutover(supervised, "B", config_sha256="a" * 64)
    assert "failed" not in first, first
    pid = first["strategy"]["running"]["pid"]
    same = cutover(supervised, "B", config_sha256="a" * 64)
    assert (same["changed"], same["strategy"]["action"]) == (False, "none")
    supervised.set_config("b" * 64)  # the config re-rendered on disk; the process runs "a"
    again = cutover(supervised, "B", config_sha256="b" * 64)
    assert "failed" not in again, again
    assert (again["changed"], again["strategy"]["action"]) == (True, "restart")
    assert again["strategy"]["running"]["pid"] != pid


def test_a_process_that_does_not_report_its_config_is_restarted_when_one_is_wanted(
    supervised: SupervisedHost,
) -> None:
    host_with_releases(supervised)
    supervised.set_release("B")
    first = cutover(supervised, "B")
    assert "failed" not in first, first
    again = cutover(supervised, "B", config_sha256="a" * 64)
    assert "failed" not in again, again
    assert again["strategy"]["action"] == "restart"


def test_current_already_swapped_but_the_old_process_running_is_restarted(
    supervised: SupervisedHost,
) -> None:
    layout = host_with_releases(supervised)  # the process runs A
    activate(layout, "B")  # a run that swapped, then died before the restart
    supervised.set_release("B")
    result = cutover(supervised, "B")
    assert "failed" not in result, result
    assert result["strategy"]["action"] == "restart"
    assert result["strategy"]["running"]["release_id"] == "B"


def test_a_prune_of_keep_zero_is_refused_before_the_swap(supervised: SupervisedHost) -> None:
    layout = host_with_releases(supervised)
    pid = supervised.info()["pid"]  # type: ignore[index]
    result = cutover(supervised, "B", prune=True, keep=0)
    assert result["failed"] is True
    assert "keep must be at least 1, got 0" in result["msg"]
    assert "changed" not in result or result["changed"] is False
    assert os.readlink(layout.current) == "releases/A"
    assert supervised.info()["pid"] == pid  # type: ignore[index]


def test_a_failure_after_the_swap_reports_the_move_for_the_switch_back(
    supervised: SupervisedHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prune (here: its disk read) fails once current points at B: the host moved."""
    layout = host_with_releases(supervised)
    pid = supervised.info()["pid"]  # type: ignore[index]

    def disk_gone(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(service, "plan_prune", disk_gone)
    result = cutover(supervised, "B", prune=True, keep=1)
    assert result["failed"] is True
    assert result["changed"] is True, "current moved: the caller must switch back"
    assert (result["previous"], result["current"]) == ("A", "B")
    assert "Input/output error" in result["msg"]
    assert "current had already moved from A to B" in result["msg"]
    assert os.readlink(layout.current) == "releases/B"
    assert supervised.info()["pid"] == pid  # type: ignore[index]
    monkeypatch.undo()
    # The switch-back the deploy runs on that answer puts A back.
    back = cutover(supervised, "A", replaced="rolled-back")
    assert "failed" not in back, back
    assert os.readlink(layout.current) == "releases/A"
    assert ReleaseLog(layout.release_log).status_of("B") == "rolled-back"


def test_a_run_that_does_not_hold_the_lock_may_not_cut_over(supervised: SupervisedHost) -> None:
    """An orphaned remote call of a dead run, after another run took its lock over."""
    from tradeops.releases.lock import DeployLock

    layout = host_with_releases(supervised)
    supervised.set_release("B")
    nobody = cutover(supervised, "B", run_id="run-dead")
    assert nobody["failed"] is True
    assert "does not hold this host's deploy lock (none is held)" in nobody["msg"]
    lock = DeployLock(layout.deploy_lock)
    assert lock.acquire("ann", "B", "run-new", os.getpid(), "ctl")
    other = cutover(supervised, "B", run_id="run-dead")
    assert other["failed"] is True
    assert "held by run run-new, not by run run-dead" in other["msg"]
    assert layout.current_release() == "A"
    ours = cutover(supervised, "B", run_id="run-new")
    assert "failed" not in ours, ours
    assert layout.current_release() == "B"
