"""The deploy's own audit record: phases judged from their results, each written once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.collection_files import load

audit = load("plugins/plugin_utils/deploy_audit.py")

PHASES = [
    {"name": "lock", "results": ["lock_result"]},
    {"name": "preflight", "results": ["info", "check"]},
    {"name": "snapshot", "results": []},
    {"name": "stage", "results": ["stage_result"]},
]
CONTEXT = {"run_id": "run-1", "release_id": "1.0-abc", "operator": "alice", "play": "p"}


def records(results, record=("lock", "preflight", "snapshot", "stage")):
    return audit.phase_records(PHASES, list(record), results, CONTEXT)


def test_each_phase_is_judged_from_its_results() -> None:
    lines = records(
        {
            "h1": {
                "lock_result": {"changed": True, "elapsed_s": 0.1},
                "info": {"changed": False, "elapsed_s": 0.2},
                "check": {"changed": False},
                "stage_result": {"failed": True, "msg": "disk full", "elapsed_s": 0.3},
            }
        }
    )
    got = [(ln["phase"], ln["outcome"], ln["duration_s"], ln.get("error")) for ln in lines]
    assert got == [
        ("lock", "changed", 0.1, None),
        ("preflight", "ok", 0.2, None),
        ("stage", "failed", 0.3, "disk full"),
    ]
    assert all(ln["host"] == "h1" and ln["run_id"] == "run-1" for ln in lines)


def test_a_phase_that_did_not_run_or_was_skipped_is_not_recorded() -> None:
    lines = records({"h1": {"lock_result": {"skipped": True}}, "h2": {}})
    assert lines == []


def test_unreachable_wins_over_failed_and_changed() -> None:
    lines = records(
        {"h1": {"info": {"changed": True}, "check": {"unreachable": True, "msg": "no route"}}},
        record=["preflight"],
    )
    assert [(ln["outcome"], ln["error"]) for ln in lines] == [("unreachable", "no route")]


def test_an_unknown_phase_is_refused() -> None:
    with pytest.raises(audit.AuditError, match=r"unknown deploy phase\(s\) staging; the phases"):
        records({}, record=["lock", "staging"])  # a renamed phase


def test_each_host_and_phase_is_written_once_across_checkpoints(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path / "audit")
    first = records({"h1": {"lock_result": {"changed": True}}})
    assert len(log.append("run-1", first)) == 1
    later = records(
        {"h1": {"lock_result": {"changed": True}, "stage_result": {"changed": True}}},
    )
    written = log.append("run-1", later)
    assert [ln["phase"] for ln in written] == ["stage"]
    lines = [json.loads(x) for x in Path(log.path).read_text().splitlines()]
    assert [(ln["host"], ln["phase"]) for ln in lines] == [("h1", "lock"), ("h1", "stage")]
    assert all(ln["ts"].endswith("Z") for ln in lines)
    # Another run records the same host and phase again.
    assert len(log.append("run-2", first)) == 1


def test_plan_notes_are_audit_lines_written_once_per_host_and_event(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path / "audit")
    context = {"run_id": "run-1", "release_id": "r2", "operator": "ann", "play": "deploy"}
    notes = [
        {"host": "h1", "event": "drift-repaired", "detail": "repaired (why): current -> x"},
        {"host": "h2", "event": "refused-locked", "detail": "held by bob"},
    ]
    lines = audit.note_records(notes, context)
    written_now = log.append("run-1", lines)
    assert [ln["event"] for ln in written_now] == ["drift-repaired", "refused-locked"]
    assert log.append("run-1", lines) == []
    written = [json.loads(x) for x in Path(log.path).read_text().splitlines()]
    assert written[0]["detail"] == "repaired (why): current -> x"
    assert (written[0]["operator"], written[0]["component"]) == ("ann", "deploy")


def test_a_note_without_host_or_event_is_refused() -> None:
    with pytest.raises(audit.AuditError, match="each note needs a host and an event"):
        audit.note_records([{"host": "h1"}], {})


def test_the_gate_report_is_written_whole(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path / "audit")
    path = log.write_gate_report({"run_id": "run-9", "passed": False, "offenders": {"h2": "x"}})
    assert Path(path).name == "gate-run-9.json"
    assert json.loads(Path(path).read_text())["offenders"] == {"h2": "x"}
    assert not list(Path(path).parent.glob("*.tmp"))
