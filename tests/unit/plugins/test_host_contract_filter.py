"""The host-contract filter (library_offenders) and the gate's library check."""

from __future__ import annotations

from tests.collection_files import load
from tests.unit.plugins.test_gate_filter import DIGEST, LIBRARY, RID, gate, host_api, report

contract = load("plugins/filter/host_contract.py")


def test_every_host_with_the_collections_library_passes() -> None:
    answers = {"h1": {"host_library": LIBRARY}, "h2": {"host_library": LIBRARY}}
    assert contract.library_offenders(answers) == {}


def test_each_host_with_another_library_is_named_with_both_versions() -> None:
    answers = {
        "h1": {"host_library": LIBRARY},
        "h2": {"library_version": "0.1.0"},
        "h3": {"host_library": {**LIBRARY, "version": "9.9.0", "api": 99}},
        "h4": None,  # no answer: the preflight names it
    }
    found = contract.library_offenders(answers)
    assert sorted(found) == ["h2", "h3"]
    assert found["h2"].startswith("its library is tradeops 0.1.0 (host API none")
    assert found["h3"].startswith("its library is tradeops 9.9.0 (host API 99)")
    for reason in found.values():
        assert reason.endswith(host_api.NEEDED)
        assert host_api.LIBRARY_VERSION in reason


def test_the_gate_refuses_a_host_that_answered_with_another_library() -> None:
    reports = {"h1": report(), "h2": report(host_library={**LIBRARY, "version": "0.1.5"})}
    found = gate.gate_offenders(reports, RID, DIGEST, ["h1", "h2"])
    assert list(found) == ["h2"]
    assert "tradeops 0.1.5" in found["h2"]


def test_the_gate_refuses_a_host_that_answered_without_a_library() -> None:
    bare = report()
    del bare["host_library"]
    found = gate.gate_offenders({"h1": report(), "h2": bare}, RID, DIGEST, ["h1", "h2"])
    assert list(found) == ["h2"]
    assert "without its library version" in found["h2"]
