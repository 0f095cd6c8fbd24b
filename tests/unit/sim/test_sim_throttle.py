from __future__ import annotations

from tradeops.sim.config import ThrottleConfig
from tradeops.sim.throttle import MessageThrottle, Verdict


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_reject_then_disconnect_within_the_window():
    clock = Clock()
    th = MessageThrottle(ThrottleConfig(1000, reject_limit=2, disconnect_limit=4), clock)
    verdicts = [th.check() for _msg in range(5)]
    assert verdicts == [Verdict.OK, Verdict.OK, Verdict.REJECT, Verdict.REJECT, Verdict.DISCONNECT]
    assert th.rejected == 2
    assert th.disconnects == 1


def test_window_slides():
    clock = Clock()
    th = MessageThrottle(ThrottleConfig(1000, reject_limit=2, disconnect_limit=0), clock)
    assert th.check() == Verdict.OK
    clock.t += 0.6
    assert th.check() == Verdict.OK
    assert th.check() == Verdict.REJECT
    clock.t += 0.5  # the first message is now out of the window
    assert th.count() == 2
    assert th.check() == Verdict.REJECT
    clock.t += 2
    assert th.check() == Verdict.OK
    th.reset()
    assert th.count() == 0


def test_disabled_counts_nothing():
    th = MessageThrottle(ThrottleConfig(1000, 0, 0))
    assert not th.enabled
    assert all(th.check() == Verdict.OK for _msg in range(1000))
    assert th.count() == 0
