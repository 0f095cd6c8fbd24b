from __future__ import annotations

import pytest

from tradeops.sim.faults import ALL, FaultState


def test_lookup_prefers_the_specific_target():
    f = FaultState()
    f.latency_ms[ALL] = 10
    f.latency_ms["OE"] = 50
    assert f.latency_s("OE") == 0.05
    assert f.latency_s("DC") == 0.01
    f.reject_probability["ACC1"] = 0.5
    assert f.reject_prob("ACC1") == 0.5
    assert f.reject_prob("ACC2") == 0
    f.stalled.add("ESZ5")
    assert f.is_stalled("ESZ5")
    assert not f.is_stalled("NQZ5")
    f.stalled.add(ALL)
    assert f.is_stalled("NQZ5")


def test_clear():
    f = FaultState(latency_ms={"OE": 1, ALL: 2}, refused={"OE", "DC"}, stalled={ALL})
    assert f.clear("refuse", "DC") == ["refuse:DC"]
    assert f.refused == {"OE"}
    assert sorted(f.clear("latency")) == ["latency:*", "latency:OE"]
    assert sorted(f.clear()) == ["refuse:OE", "stall:*"]
    assert f.active == {"latency": 0, "reject": 0, "refuse": 0, "stall": 0}
    with pytest.raises(ValueError, match="cannot clear"):
        f.clear("jump")
