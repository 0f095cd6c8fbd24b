"""Run-time fault injection state of the simulator.

Faults are set and cleared through the admin API (and so the CLI):

``latency``  extra delay (ms) before every outbound application message, all
             sessions (``*``) or one session.
``reject``   probability that a new order is rejected, all accounts or one.
``drop``     disconnect a session now (one-shot, nothing to clear).
``refuse``   refuse the logons of a session until cleared.
``stall``    stop market data of one symbol or all (``*``) until cleared.
``jump``     move the price of a symbol (one-shot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL = "*"
KINDS = ("latency", "reject", "drop", "refuse", "stall", "jump")
CLEARABLE = ("latency", "reject", "refuse", "stall")


@dataclass(slots=True)
class FaultState:
    """The faults in force."""

    latency_ms: dict[str, float] = field(default_factory=dict)  # session or ALL -> ms
    reject_probability: dict[str, float] = field(default_factory=dict)  # account or ALL
    refused: set[str] = field(default_factory=set)  # session names
    stalled: set[str] = field(default_factory=set)  # symbols or ALL

    def latency_s(self, session: str) -> float:
        """Delay to add to an outbound message of ``session``, in seconds."""
        ms = self.latency_ms.get(session, self.latency_ms.get(ALL, 0.0))
        return ms / 1000.0

    def reject_prob(self, account: str) -> float:
        """Probability of rejecting a new order of ``account``."""
        return self.reject_probability.get(account, self.reject_probability.get(ALL, 0.0))

    def is_refused(self, session: str) -> bool:
        """True while logons of ``session`` are refused."""
        return session in self.refused

    def is_stalled(self, symbol: str) -> bool:
        """True while market data of ``symbol`` is stalled."""
        return ALL in self.stalled or symbol in self.stalled

    def clear(self, kind: str | None = None, target: str | None = None) -> list[str]:
        """Clear faults (all, one kind, or one kind for one target); return what was cleared."""
        cleared: list[str] = []
        kinds = CLEARABLE if kind is None else (kind,)
        for k in kinds:
            if k not in CLEARABLE:
                raise ValueError(f"cannot clear {k!r}: one of {', '.join(CLEARABLE)}")
            store: dict[str, float] | set[str]
            if k == "latency":
                store = self.latency_ms
            elif k == "reject":
                store = self.reject_probability
            elif k == "refuse":
                store = self.refused
            else:
                store = self.stalled
            keys = list(store) if target is None else [t for t in (target,) if t in store]
            for key in keys:
                if isinstance(store, dict):
                    del store[key]
                else:
                    store.discard(key)
                cleared.append(f"{k}:{key}")
        return cleared

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "latency_ms": dict(self.latency_ms),
            "reject_probability": dict(self.reject_probability),
            "refused": sorted(self.refused),
            "stalled": sorted(self.stalled),
        }

    @property
    def active(self) -> dict[str, int]:
        """Number of faults in force per kind (for the metrics)."""
        return {
            "latency": len(self.latency_ms),
            "reject": len(self.reject_probability),
            "refuse": len(self.refused),
            "stall": len(self.stalled),
        }
