"""Sliding time windows over injected time: a counter and a running maximum."""

from __future__ import annotations

from collections import deque


class WindowCount:
    """How many events happened in the last ``window_s`` seconds (at ``now``)."""

    __slots__ = ("_times", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        """Record one event at ``now``."""
        self._times.append(now)

    def count(self, now: float) -> int:
        """Events in ``(now - window_s, now]``."""
        times, edge = self._times, now - self.window_s
        while times and times[0] <= edge:
            times.popleft()
        return len(times)


class WindowMax:
    """The largest value recorded in the last ``window_s`` seconds (monotonic deque)."""

    __slots__ = ("_items", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        """Record ``value`` at ``now``."""
        items = self._items
        while items and items[-1][1] <= value:
            items.pop()
        items.append((now, value))

    def max(self, now: float) -> float:
        """The maximum over the window, 0.0 when it is empty."""
        items, edge = self._items, now - self.window_s
        while items and items[0][0] <= edge:
            items.popleft()
        return items[0][1] if items else 0.0
