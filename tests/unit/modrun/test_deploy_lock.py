"""The deploy_lock module through ``tradeops.modrun``: lock, refuse, unlock, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.modrun.conftest import handle
from tradeops.modrun.api import API_VERSION
from tradeops.releases.layout import Layout

from .conftest import lock_params, modrun_answer

GONE_PID = 2**30  # above any pid_max: never a live process


def deploy_lock(root: Path, check_mode: bool = False, **over: Any) -> dict[str, Any]:
    params = lock_params(root, **over)
    return handle(
        {"api": API_VERSION, "module": "deploy_lock", "params": params, "check_mode": check_mode}
    )


def audit_events(layout: Layout) -> list[dict[str, Any]]:
    path = layout.state / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_lock_then_unlock_round_trip(layout: Layout) -> None:
    taken = deploy_lock(layout.root)
    assert "failed" not in taken
    assert (taken["changed"], taken["acquired"]) == (True, True)
    holder = taken["holder"]
    assert (holder["owner"], holder["run_id"], holder["release_id"]) == ("alice", "run-1", "r1")
    assert holder["stale"] is False
    assert layout.deploy_lock.is_file()

    again = deploy_lock(layout.root)
    assert (again["changed"], again["acquired"]) == (False, True)
    assert again["holder"]["run_id"] == "run-1"

    released = deploy_lock(layout.root, state="unlocked")
    assert (released["changed"], released["acquired"]) == (True, False)
    assert released["holder"]["run_id"] == "run-1"  # who held it
    assert not layout.deploy_lock.exists()

    idle = deploy_lock(layout.root, state="unlocked")
    assert idle == {"changed": False, "holder": {}, "acquired": False}
    events = [e.get("event") for e in audit_events(layout)]
    assert events.count("lock") == 1
    assert events.count("unlock") == 1


def test_a_second_run_is_refused_with_the_holder(layout: Layout) -> None:
    deploy_lock(layout.root)
    other = deploy_lock(layout.root, run_id="run-2", owner="bob", release_id="r2")
    assert other["failed"] is True
    assert other["acquired"] is False
    assert other["holder"]["run_id"] == "run-1"
    assert other["holder"]["owner"] == "alice"
    assert "deploy lock held by alice" in other["msg"]
    assert "run run-1" in other["msg"]
    assert json.loads(layout.deploy_lock.read_text())["run_id"] == "run-1"


def test_a_second_run_is_refused_in_check_mode_too(layout: Layout) -> None:
    deploy_lock(layout.root)
    other = deploy_lock(layout.root, check_mode=True, run_id="run-2")
    assert other["failed"] is True
    assert other["acquired"] is False


def test_a_stale_lock_is_reported_not_taken_over(layout: Layout) -> None:
    deploy_lock(layout.root, controller_pid=GONE_PID)
    other = deploy_lock(layout.root, run_id="run-2")
    assert other["failed"] is True
    assert other["holder"]["stale"] is True
    assert f"STALE: pid {GONE_PID} is gone" in other["msg"]
    assert json.loads(layout.deploy_lock.read_text())["run_id"] == "run-1"


def test_another_run_cannot_unlock_without_force(layout: Layout) -> None:
    deploy_lock(layout.root)
    result = deploy_lock(layout.root, state="unlocked", run_id="run-2")
    assert result["failed"] is True
    assert result["acquired"] is False
    assert "set force=true and a reason" in result["msg"]
    assert result["holder"]["run_id"] == "run-1"
    assert layout.deploy_lock.exists()


def test_a_forced_unlock_is_audited_with_its_reason(layout: Layout) -> None:
    deploy_lock(layout.root, controller_pid=GONE_PID)
    result = deploy_lock(
        layout.root, state="unlocked", run_id="run-2", owner="oncall", force=True, reason="stuck"
    )
    assert result["changed"] is True
    assert result["acquired"] is False
    assert result["holder"]["run_id"] == "run-1"
    assert not layout.deploy_lock.exists()
    unlock = [e for e in audit_events(layout) if e.get("event") == "unlock"]
    assert len(unlock) == 1
    record = unlock[0]
    assert (record["owner"], record["reason"], record["forced"]) == ("oncall", "stuck", True)
    assert record["previous_holder"]["run_id"] == "run-1"


def test_a_forced_unlock_with_a_blank_reason_fails(layout: Layout) -> None:
    deploy_lock(layout.root)
    result = deploy_lock(layout.root, state="unlocked", run_id="run-2", force=True, reason="   ")
    assert result["failed"] is True
    assert "needs a reason" in result["msg"]
    assert layout.deploy_lock.exists()


def test_check_mode_lock_takes_nothing(layout: Layout) -> None:
    result = deploy_lock(layout.root, check_mode=True)
    assert result == {"changed": True, "holder": {}, "acquired": True}
    assert not layout.deploy_lock.exists()
    assert audit_events(layout) == []


def test_check_mode_unlock_keeps_the_lock(layout: Layout) -> None:
    deploy_lock(layout.root)
    result = deploy_lock(layout.root, check_mode=True, state="unlocked")
    assert (result["changed"], result["acquired"]) == (True, False)
    assert layout.deploy_lock.exists()


def test_a_root_that_is_not_bootstrapped_fails(tmp_path: Path) -> None:
    result = deploy_lock(tmp_path)
    assert result == {"failed": True, "msg": f"{tmp_path} is not a bootstrapped tradeops root"}
    assert not (tmp_path / "deploy.lock").exists()


def test_process_round_trip(layout: Layout) -> None:
    def call(**over: Any) -> dict[str, Any]:
        return modrun_answer(
            {
                "api": API_VERSION,
                "module": "deploy_lock",
                "params": lock_params(layout.root, **over),
            }
        )

    assert call()["acquired"] is True
    refused = call(run_id="run-2")
    assert (refused["failed"], refused["acquired"]) == (True, False)
    assert refused["holder"]["run_id"] == "run-1"
    assert call(state="unlocked")["changed"] is True
    assert not layout.deploy_lock.exists()
