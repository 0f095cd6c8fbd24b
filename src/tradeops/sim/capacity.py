"""The simulator's own capacity: inbound messages handled per second of its time.

Every inbound application message is timed from dispatch until its answers
are written (engine, encoding, journaling, sending); ``per_busy_s`` of a
MsgType is how many such messages one core could handle back to back (for
``D``: new orders per second). A stress test
compares it with the rate it drives: when the two are close, the simulator,
not the system under test, is the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Totals:
    handled: int = 0
    busy_s: float = 0.0


@dataclass(slots=True)
class Capacity:
    """Running totals of handled messages and the time spent on them, per MsgType."""

    by_type: dict[str, _Totals] = field(default_factory=dict)

    def add(self, msg_type: str, seconds: float) -> None:
        """Count one message of ``msg_type`` that took ``seconds`` to handle."""
        totals = self.by_type.get(msg_type)
        if totals is None:
            totals = self.by_type[msg_type] = _Totals()
        totals.handled += 1
        totals.busy_s += seconds

    def report(self) -> dict[str, dict[str, float | int | None]]:
        """What ``GET /state`` shows under ``capacity``: per MsgType (D: new orders)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for msg_type, t in sorted(self.by_type.items()):
            out[msg_type] = {
                "handled": t.handled,
                "busy_s": round(t.busy_s, 6),
                "mean_us": round(t.busy_s / t.handled * 1e6, 1) if t.handled else None,
                "per_busy_s": round(t.handled / t.busy_s, 1) if t.busy_s > 0 else None,
            }
        return out
