"""The release log: append-only JSON lines, folding, order, rollback target, torn lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeops.releases.releaselog import STATUSES, ReleaseLog


def write_raw(path: Path, records: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_missing_log_is_empty(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    assert log.entries() == []
    assert log.releases() == {}
    assert log.status_of("A") is None
    assert log.rollback_target(None) is None


def test_append_writes_one_json_line_per_record(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    record = log.append("A", "staged", version="1.0", digest="d" * 64)
    log.append("A", "active")
    lines = log.path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == record
    assert record["status"] == "staged"
    assert record["ts"].endswith("Z")


def test_unknown_status_is_refused(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    with pytest.raises(ValueError, match="unknown release status"):
        log.append("A", "deployed")
    assert not log.path.exists()
    assert set(STATUSES) == {"staged", "active", "previous", "bad", "rolled-back", "pruned"}


def test_fold_keeps_version_and_digest_and_latest_status(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    log.append("A", "staged", version="1.0", digest="a" * 64)
    log.append("B", "staged", version="2.0", digest="b" * 64)
    log.append("A", "active")
    log.append("A", "previous")
    log.append("B", "active")
    view = log.releases()
    assert (view["A"].status, view["A"].version, view["A"].digest) == ("previous", "1.0", "a" * 64)
    assert (view["B"].status, view["B"].version) == ("active", "2.0")
    assert [r.release_id for r in log.ordered()] == ["A", "B"]
    assert log.status_of("B") == "active"


def test_order_comes_from_the_log_not_from_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "release-log.jsonl"
    # Timestamps run backwards (clock stepped back): the order of lines still wins.
    write_raw(
        path,
        [
            {"ts": "2030-01-01T00:00:00Z", "release_id": "A", "status": "staged"},
            {"ts": "2020-01-01T00:00:00Z", "release_id": "B", "status": "staged"},
            {"ts": "2010-01-01T00:00:00Z", "release_id": "C", "status": "staged"},
        ],
    )
    assert [r.release_id for r in ReleaseLog(path).ordered()] == ["A", "B", "C"]


def test_rollback_target_is_the_latest_previous_by_log_position(tmp_path: Path) -> None:
    path = tmp_path / "release-log.jsonl"
    write_raw(
        path,
        [
            {"ts": "2030-01-01T00:00:00Z", "release_id": "A", "status": "staged"},
            {"ts": "2030-01-01T00:00:01Z", "release_id": "B", "status": "staged"},
            {"ts": "2030-01-01T00:00:02Z", "release_id": "C", "status": "staged"},
            {"ts": "2030-01-01T00:00:03Z", "release_id": "B", "status": "previous"},
            # Written later, with an earlier clock:
            {"ts": "2001-01-01T00:00:00Z", "release_id": "A", "status": "previous"},
            {"ts": "2001-01-01T00:00:01Z", "release_id": "C", "status": "active"},
        ],
    )
    log = ReleaseLog(path)
    assert log.rollback_target("C") == "A"
    assert log.rollback_target("A") == "B"  # the active release is never its own target


def test_rollback_target_skips_bad_rolled_back_and_pruned(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    for rid in ("A", "B", "C", "D"):
        log.append(rid, "staged")
    log.append("A", "previous")
    log.append("B", "previous")
    log.append("C", "previous")
    log.append("D", "active")
    assert log.rollback_target("D") == "C"
    log.append("C", "bad")
    assert log.rollback_target("D") == "B"
    log.append("B", "rolled-back")
    assert log.rollback_target("D") == "A"
    log.append("A", "pruned")
    assert log.rollback_target("D") is None


def test_torn_last_line_is_ignored_and_does_not_eat_the_next_record(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    log.append("A", "staged", version="1.0")
    log.append("A", "active")
    with log.path.open("a") as fh:
        fh.write('{"release_id":"B","status":"sta')  # crash mid-append: no newline
    assert [(e["release_id"], e["status"]) for e in log.entries()] == [
        ("A", "staged"),
        ("A", "active"),
    ]
    assert log.status_of("B") is None
    log.append("B", "staged", version="2.0")
    assert [(e["release_id"], e["status"]) for e in log.entries()] == [
        ("A", "staged"),
        ("A", "active"),
        ("B", "staged"),
    ]
    assert log.status_of("B") == "staged"


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "release-log.jsonl"
    path.write_bytes(
        b'{"release_id":"A","status":"staged"}\n'
        b"[1, 2]\n"
        b'{"release_id":"A","status":"exploded"}\n'
        b'{"status":"active"}\n'
        b'{"release_id":7,"status":"active"}\n'
        b"\xff\xfe not utf-8\n"
        b"\n"
        b'{"release_id":"A","status":"active"}\n'
    )
    log = ReleaseLog(path)
    assert [(e["release_id"], e["status"]) for e in log.entries()] == [
        ("A", "staged"),
        ("A", "active"),
    ]
    assert list(log.releases()) == ["A"]


def test_restaging_after_prune_gets_a_new_place_in_the_order(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    log.append("A", "staged")
    log.append("B", "staged")
    log.append("A", "pruned")
    assert [r.release_id for r in log.ordered()] == ["A", "B"]
    log.append("A", "staged")
    assert [r.release_id for r in log.ordered()] == ["B", "A"]
    # Other status changes keep the first place.
    log.append("B", "active")
    assert [r.release_id for r in log.ordered()] == ["B", "A"]


def test_bad_is_final_whatever_comes_after(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "release-log.jsonl")
    log.append("A", "staged", version="1.0", digest="d" * 64)
    log.append("A", "bad", reason="fat finger")
    for later in ("staged", "pruned", "previous", "active"):
        log.append("A", later)
        assert log.status_of("A") == "bad", later
    assert log.rollback_target(None) is None
