"""Per-session messaging controls, like CME's: a count over a sliding time window.

Every inbound application message counts, rejected ones included. Above
``reject_limit`` in the window a message is rejected; above the higher
``disconnect_limit`` the session is logged out.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from tradeops.sim.config import ThrottleConfig


class Verdict(enum.StrEnum):
    """What to do with one inbound application message."""

    OK = "ok"
    REJECT = "reject"
    DISCONNECT = "disconnect"


class MessageThrottle:
    """Sliding-window message counter for one session."""

    def __init__(self, config: ThrottleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._window_s = config.window_ms / 1000.0
        self._stamps: deque[float] = deque()
        self.rejected = 0
        self.disconnects = 0

    @property
    def enabled(self) -> bool:
        """False when neither limit is set."""
        return bool(self.config.reject_limit or self.config.disconnect_limit)

    def count(self) -> int:
        """Messages in the current window."""
        self._expire(self._clock())
        return len(self._stamps)

    def _expire(self, now: float) -> None:
        horizon = now - self._window_s
        stamps = self._stamps
        while stamps and stamps[0] <= horizon:
            stamps.popleft()

    def check(self) -> Verdict:
        """Count one message and return the verdict for it."""
        if not self.enabled:
            return Verdict.OK
        now = self._clock()
        self._expire(now)
        self._stamps.append(now)
        n = len(self._stamps)
        if self.config.disconnect_limit and n > self.config.disconnect_limit:
            self.disconnects += 1
            return Verdict.DISCONNECT
        if self.config.reject_limit and n > self.config.reject_limit:
            self.rejected += 1
            return Verdict.REJECT
        return Verdict.OK

    def reset(self) -> None:
        """Forget the window (after a disconnect)."""
        self._stamps.clear()
