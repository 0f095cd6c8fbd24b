"""The deploy consistency gate filter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def load(relpath: str):
    spec = importlib.util.spec_from_file_location(relpath.replace("/", "_"), REPO / relpath)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = load("plugins/filter/gate.py")
audit = load("plugins/callback/audit.py")

RID, DIGEST = "1.0-abc", "d" * 64


def report(**over):
    base = {
        "release_id": RID,
        "manifest_digest": DIGEST,
        "config_sha1": "c1",
        "expected_config_sha1": "c1",
    }
    return {**base, **over}


def test_all_hosts_equal_pass() -> None:
    reports = {"h1": report(), "h2": report()}
    assert gate.gate_offenders(reports, RID, DIGEST, ["h1", "h2"]) == {}


@pytest.mark.parametrize(
    ("host_report", "live", "reason"),
    [
        (report(), False, "failed or unreachable"),
        (None, True, "reported nothing"),
        (report(release_id="0.9-old"), True, "staged release 0.9-old"),
        (report(manifest_digest="e" * 64), True, "manifest digest eeeeeeeeeeee"),
        (report(config_sha1="c2"), True, "config digest c2, expected c1"),
    ],
)
def test_one_offender_is_named(host_report, live: bool, reason: str) -> None:
    reports = {"good": report(), "bad": host_report}
    live_hosts = ["good", "bad"] if live else ["good"]
    offenders = gate.gate_offenders(reports, RID, DIGEST, live_hosts)
    assert list(offenders) == ["bad"]
    assert reason in offenders["bad"]


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("Stage | Copy the artifact, one archive per host", "stage"),
        ("tradeops.algo.release : Verify | Read the release", "verify"),
        ("Gate | Stop with no host activated", "gate"),
        ("Install tradeops", None),
        ("Stage phase", None),
        ("Staging | something", None),
    ],
)
def test_audit_phase_from_task_name(name: str, phase: str | None) -> None:
    assert audit.phase_of(name) == phase
