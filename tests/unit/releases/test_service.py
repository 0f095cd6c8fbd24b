"""The release module's service layer: state=absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeops.releases.artifact import build_artifact
from tradeops.releases.layout import LAYOUT_DIRS, Layout
from tradeops.releases.prune import PRUNE_SUFFIX, prune
from tradeops.releases.service import ReleaseRequest, ReleaseServiceError, run_release


@pytest.fixture
def host(tmp_path: Path) -> Layout:
    """A host with releases r1, r2 (previous) and r3 (active)."""
    layout = Layout.at(tmp_path / "root")
    for rel in LAYOUT_DIRS:
        (layout.root / rel).mkdir(parents=True, exist_ok=True)
    for index, rid in enumerate(("r1", "r2", "r3")):
        built = build_artifact(f"1.{index}", tmp_path / "art" / rid)
        for state in ("staged", "active"):
            req = ReleaseRequest(str(layout.root), state, rid, str(built.path), None)
            run_release(req)
    return layout


def absent(layout: Layout, rid: str, check_mode: bool = False, reason: str | None = None):
    request = ReleaseRequest(str(layout.root), "absent", rid, reason=reason)
    return run_release(request, check_mode=check_mode)


def test_absent_removes_and_logs_the_reason(host: Layout) -> None:
    outcome = absent(host, "r1", reason="superseded")
    assert outcome.changed
    assert outcome.result["removed"] == ["r1"]
    assert not (host.releases / "r1").exists()
    last = json.loads(host.release_log.read_text().splitlines()[-1])
    assert (last["release_id"], last["status"], last["reason"]) == ("r1", "pruned", "superseded")
    assert not absent(host, "r1").changed


def test_absent_in_check_mode_changes_nothing(host: Layout) -> None:
    log_before = host.release_log.read_bytes()
    outcome = absent(host, "r1", check_mode=True)
    assert outcome.changed
    assert (host.releases / "r1").is_dir()
    assert host.release_log.read_bytes() == log_before


@pytest.mark.parametrize(("rid", "why"), [("r3", "is active"), ("r2", "rollback target")])
def test_absent_refuses_active_and_rollback_target(host: Layout, rid: str, why: str) -> None:
    with pytest.raises(ReleaseServiceError, match=why):
        absent(host, rid)
    assert (host.releases / rid).is_dir()


def test_an_interrupted_removal_is_finished_by_prune(host: Layout) -> None:
    # A crash after the rename leaves the release under .staging with the prune suffix,
    # the same place prune uses, so the next prune completes it.
    doomed = host.staging / f"r1{PRUNE_SUFFIX}"
    (host.releases / "r1").rename(doomed)
    prune(host, keep=5)
    assert not doomed.exists()
    statuses = [json.loads(x) for x in host.release_log.read_text().splitlines()]
    assert statuses[-1]["release_id"] == "r1"
    assert statuses[-1]["status"] == "pruned"
