"""The fleet view: split, drift and locks, from the hosts' host_info answers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from tests.collection_files import load

fleet = load("plugins/filter/fleet.py")


def answer(current, drift=None, lock=None, running=None, version="0.2.0"):
    return {
        "host_library": {"version": version, "api": 2},
        "running": {"release_id": running or current},
        "release_state": {"current": current, "drift": drift, "pending": None, "lock": lock},
    }


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_one_release_everywhere_is_not_split() -> None:
    view = fleet.fleet_view({"h1": answer("r2"), "h2": answer("r2")})
    assert view["split"] is False
    assert view["releases"] == {"r2": ["h1", "h2"]}
    assert (view["drift"], view["locks"], view["unread"]) == ({}, {}, [])


def test_a_split_fleet_names_which_hosts_run_which_release() -> None:
    view = fleet.fleet_view({"h1": answer("r2"), "h2": answer("r1"), "h3": answer("r2")})
    assert view["split"] is True
    assert view["releases"] == {"r2": ["h1", "h3"], "r1": ["h2"]}


def test_drift_and_unread_hosts_are_named() -> None:
    view = fleet.fleet_view({"h1": answer("r2", drift="current -> x, never staged"), "h2": None})
    assert view["drift"] == {"h1": "current -> x, never staged"}
    assert view["unread"] == ["h2"]


def test_a_lock_of_a_dead_run_on_this_controller_is_dead() -> None:
    lock = {"owner": "bob", "run_id": "run-1", "host": "ctl", "pid": dead_pid(), "since": 0}
    view = fleet.fleet_view({"h1": answer("r2", lock=lock)}, controller_host="ctl", run_id="run-2")
    assert view["dead_locks"] == ["h1"]
    assert "DEAD: its controller process is gone" in view["locks"]["h1"]
    assert "held by bob (run run-1" in view["locks"]["h1"]


def test_a_lock_of_a_live_run_or_another_controller_is_not_dead() -> None:
    live = {"owner": "bob", "run_id": "run-1", "host": "ctl", "pid": os.getpid(), "since": 0}
    other = {"owner": "eve", "run_id": "run-3", "host": "elsewhere", "pid": dead_pid()}
    view = fleet.fleet_view(
        {"h1": answer("r2", lock=live), "h2": answer("r2", lock=other)},
        controller_host="ctl",
        run_id="run-2",
    )
    assert view["dead_locks"] == []
    assert all("may still be alive" in line for line in view["locks"].values())


def test_a_lock_past_its_expiry_is_dead_and_this_runs_own_lock_is_not_reported() -> None:
    expired = {"run_id": "run-1", "stale": True, "stale_reason": "older than 3600s", "pid": 1}
    own = {"run_id": "run-2", "host": "ctl", "pid": 1}
    view = fleet.fleet_view(
        {"h1": answer("r2", lock=expired), "h2": answer("r2", lock=own)}, "ctl", "run-2"
    )
    assert view["dead_locks"] == ["h1"]
    assert list(view["locks"]) == ["h1"]


def test_the_lines_for_people_name_each_host_and_the_split() -> None:
    view = fleet.fleet_view(
        {"h1": answer("r2", drift="current -> x, never staged"), "h2": answer("r1"), "h3": None}
    )
    assert fleet.fleet_lines(view) == [
        "h1: current r2, running r2, library 0.2.0, DRIFT: current -> x, never staged",
        "h2: current r1, running r1, library 0.2.0",
        "fleet: SPLIT: r1 on h2; r2 on h1; unreadable: h3",
    ]


def full_answer(current, *, running=None, config="a" * 64, differs=(), altered=None):
    base = answer(current, running=running)
    base["running"]["config_sha256"] = config
    base["release_state"]["altered"] = altered
    base["config_differs"] = list(differs)
    return base


def test_a_fleet_on_the_release_and_its_config_has_no_differences() -> None:
    view = fleet.fleet_view({"h1": full_answer("r2"), "h2": full_answer("r2")})
    assert fleet.fleet_differences(view, "r2", "a" * 64) == {}


def test_already_runs_compares_the_config_on_disk_and_in_the_process() -> None:
    """Issue 10, finding 2: the same release id with another config is not "already runs"."""
    view = fleet.fleet_view(
        {
            "h1": full_answer("r2", differs=["config/r2/refapp.yml"]),
            "h2": full_answer("r2", config="b" * 64),
            "h3": full_answer("r2", config=None),
            "h4": full_answer("r1"),
            "h5": None,
        }
    )
    found = fleet.fleet_differences(view, "r2", "a" * 64)
    assert found == {
        "h1": "config on disk differs: config/r2/refapp.yml",
        "h2": "its process runs config bbbbbbbbbbbb, the controller rendered aaaaaaaaaaaa",
        "h3": "its process does not report its config",
        "h4": "current is r1; its process runs r1",
        "h5": "not read",
    }
    # Each host's config is rendered for it: one digest per host.
    per_host = fleet.fleet_differences(
        fleet.fleet_view({"h1": full_answer("r2"), "h2": full_answer("r2", config="b" * 64)}),
        "r2",
        {"h1": "a" * 64, "h2": "b" * 64},
    )
    assert per_host == {}
    # Without a process to manage, only the host's files count.
    assert set(fleet.fleet_differences(view, "r2", "a" * 64, False)) == {"h1", "h4", "h5"}


def test_an_altered_live_release_is_named_and_refusals_are_audit_notes() -> None:
    view = fleet.fleet_view(
        {"h1": full_answer("r2", altered="r2: changed on disk (sha256 mismatch: x)")}
    )
    assert view["altered"] == {"h1": "r2: changed on disk (sha256 mismatch: x)"}
    assert fleet.plan_notes(view) == [
        {"host": "h1", "event": "refused-altered", "detail": view["altered"]["h1"]}
    ]
    assert "ALTERED: r2: changed on disk" in fleet.fleet_lines(view)[0]


def test_plan_notes_record_drift_refused_or_repaired_and_locks() -> None:
    lock = {"owner": "bob", "run_id": "run-1", "host": "ctl", "pid": dead_pid(), "since": 0}
    view = fleet.fleet_view(
        {"h1": answer("x", drift="current -> x, never staged"), "h2": answer("r2", lock=lock)},
        controller_host="ctl",
        run_id="run-2",
    )
    refused = fleet.plan_notes(view)
    assert [(n["host"], n["event"]) for n in refused] == [("h1", "refused-drift")]
    repaired = fleet.plan_notes(view, "restored by hand", "controller crashed")
    assert [(n["host"], n["event"]) for n in repaired] == [
        ("h1", "drift-repaired"),
        ("h2", "lock-taken-over"),
    ]
    assert repaired[0]["detail"].startswith("repaired (restored by hand): current -> x")


def test_config_digests_send_no_content() -> None:
    files = [{"path": "config/{release_id}/a.yml", "content": "secret: s3cr3t\n", "mode": "0640"}]
    digests = fleet.config_digests(files)
    wanted = hashlib.sha256(b"secret: s3cr3t\n").hexdigest()
    assert digests == [{"path": "config/{release_id}/a.yml", "sha256": wanted}]
    assert "s3cr3t" not in repr(digests)
