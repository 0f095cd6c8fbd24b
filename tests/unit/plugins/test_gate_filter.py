"""The deploy consistency gate filter."""

from __future__ import annotations

import pytest

from tests.collection_files import load

gate = load("plugins/filter/gate.py")
host_api = load("plugins/module_utils/host_api.py")

RID, DIGEST = "1.0-abc", "d" * 64
LIBRARY = {"version": host_api.LIBRARY_VERSION, "api": host_api.HOST_API_VERSION, "oldest_api": 2}


def report(**over):
    base = {
        "host_library": LIBRARY,
        "release_id": RID,
        "manifest_digest": DIGEST,
        "action": "none",
        "config_sha256": {"config/x/refapp.yml": "c1"},
        "config_expected_sha256": {"config/x/refapp.yml": "c1"},
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
        (
            report(config_sha256={"config/x/refapp.yml": "c2"}),
            True,
            "config config/x/refapp.yml digest c2, expected c1",
        ),
        (report(config_sha256={}), True, "digest None, expected c1"),
        (report(action="create"), True, "no longer holds a staged 1.0-abc"),
        ({"failed": "boom"}, True, "failed before the gate: boom"),
    ],
)
def test_one_offender_is_named(host_report, live: bool, reason: str) -> None:
    reports = {"good": report(), "bad": host_report}
    live_hosts = ["good", "bad"] if live else ["good"]
    offenders = gate.gate_offenders(reports, RID, DIGEST, live_hosts)
    assert list(offenders) == ["bad"]
    assert reason in offenders["bad"]


def test_check_mode_accepts_what_the_stage_would_create() -> None:
    planned = report(action="create", config_sha256={}, config_changed=["config/x/refapp.yml"])
    assert gate.gate_offenders({"h1": planned}, RID, DIGEST, ["h1"], planned=True) == {}
    assert "no longer holds" in gate.gate_offenders({"h1": planned}, RID, DIGEST, ["h1"])["h1"]


def test_rescue_failure_wins_over_a_stale_report() -> None:
    reports = {"h1": report(), "h2": report()}
    failures = {"h1": None, "h2": {"failed": "Stage | Copy: disk full"}}
    offenders = gate.gate_offenders(reports, RID, DIGEST, ["h1"], failures)
    assert offenders == {"h2": "failed before the gate: Stage | Copy: disk full"}


def test_host_with_only_a_failure_is_named() -> None:
    offenders = gate.gate_offenders({}, RID, DIGEST, [], {"h3": {"failed": "lock: held"}})
    assert offenders == {"h3": "failed before the gate: lock: held"}


@pytest.mark.parametrize(
    ("host_vars", "failure"),
    [
        (None, None),
        ({}, None),
        (
            {
                "release_lock_result": {"acquired": True},
                "release_stage_result": {"manifest_digest": "d"},
            },
            None,
        ),
        ({"release_lock_result": {"acquired": False, "msg": "held by bob"}}, "lock: held by bob"),
        ({"release_lock_result": {"skipped": True}}, None),
        ({"release_stage_result": {"failed": False, "msg": "no space"}}, "stage: no space"),
        ({"release_gate_report": {"failed": "Gate | x: boom"}}, "Gate | x: boom"),
    ],
)
def test_gate_failure_reads_registered_results(host_vars, failure) -> None:
    found = gate.gate_failure(host_vars)
    assert (found or {}).get("failed") == failure


@pytest.mark.parametrize(
    ("result", "summary"),
    [
        (None, None),
        ({"skipped": True}, None),
        ({"failed": True, "msg": "no such release"}, {"failed": "no such release"}),
        (
            {"release_id": RID, "action": "none", "changed": False, "path": "/x"},
            {"release_id": RID, "action": "none"},
        ),
    ],
)
def test_gate_summary_keeps_what_the_gate_compares(result, summary) -> None:
    assert gate.gate_summary(result) == summary


STOP = "so no host is activated in this run"


def test_the_stop_message_of_a_host_that_failed_before_the_gate_says_why() -> None:
    msg = gate.gate_stop_message("h1", None, "Stage | Copy: disk full")
    assert msg == f"h1 failed before the gate, {STOP}: Stage | Copy: disk full"


def test_the_stop_message_of_an_offender_quotes_the_gate() -> None:
    msg = gate.gate_stop_message("h2", {"h2": "manifest digest eeee"}, "Gate | Stop")
    assert msg == f"h2 failed the gate, {STOP}: manifest digest eeee"


def test_the_stop_message_of_a_host_that_did_nothing_wrong_names_the_offenders() -> None:
    msg = gate.gate_stop_message("h1", {"h3": "x", "h2": "y"}, "Gate | Stop: GATE FAILED")
    assert msg == "h1 not activated: h2, h3 failed the gate (nothing is wrong with this host)"


def test_the_stop_message_after_a_passed_gate_says_what_failed() -> None:
    msg = gate.gate_stop_message("h1", {}, "Gate | Record: disk full")
    assert msg == f"h1 failed after the gate passed, {STOP}: Gate | Record: disk full"
