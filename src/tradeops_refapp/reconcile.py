"""Positions reconciled with the venue's after each logon.

The strategy counts its positions from its own fills, but the account's
position can change without them: the kill-switch agent flattens on its own
risk session, an operator trades by hand. After every logon the refapp asks
the venue (RequestForPositions) and takes its PositionReports as the truth for
every symbol it reports or the refapp holds: a symbol the venue does not
report is flat there. It assumes, as the agent's account-level breakers do,
that the refapp is the account's only strategy.

:class:`PositionsRequest` collects one answer; :func:`reconcile` applies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from tradeops.brokers.base import BrokerEvent, Position, PositionsAck
from tradeops_refapp.orders import ZERO, OrderTracker, PositionState


class PositionsRefused(Exception):
    """The venue refused or could not answer the request for positions."""


@dataclass
class PositionsRequest:
    """One RequestForPositions: its ack and PositionReports, complete at ``total``."""

    req_id: str
    ack: PositionsAck | None = None
    reports: dict[str, Position] = field(default_factory=dict)

    def add(self, event: BrokerEvent) -> bool:
        """Take ``event`` if it answers this request; True once the answer is complete.

        Raises PositionsRefused when the venue rejected the request.
        """
        if isinstance(event, PositionsAck) and event.pos_req_id == self.req_id:
            self.ack = event
            if event.refused:
                raise PositionsRefused(
                    f"request {self.req_id} refused (status {event.status}, result"
                    f" {event.result}): {event.text or 'no text'}"
                )
        elif isinstance(event, Position) and event.pos_req_id == self.req_id:
            self.reports[event.symbol] = event
        return self.ack is not None and self.ack.complete_with(len(self.reports))


@dataclass(frozen=True)
class Adjustment:
    """A position that differed from the venue's, and what it became."""

    symbol: str
    ours: Decimal
    venue: Decimal
    avg_px: Decimal


def reconcile(
    tracker: OrderTracker, reports: dict[str, Position], symbols: Iterable[str]
) -> list[Adjustment]:
    """Set each position that differs from the venue's to the venue's; say which.

    ``symbols`` are the configured ones; held positions and reported ones are
    checked too. The average price becomes the venue's when it reports one
    (the simulator's venue extensions), zero when flat, else it is kept; the
    realized P&L is the venue's when reported.
    """
    changed = []
    for symbol in sorted(set(symbols) | set(tracker.positions) | set(reports)):
        report = reports.get(symbol)
        venue = report.qty if report is not None else ZERO
        pos = tracker.position(symbol)
        if pos.qty == venue:
            continue
        changed.append(Adjustment(symbol, pos.qty, venue, _adopt(pos, venue, report)))
    return changed


def _adopt(pos: PositionState, venue: Decimal, report: Position | None) -> Decimal:
    pos.qty = venue
    if venue == 0:
        pos.avg_px = ZERO
    elif report is not None and report.avg_px is not None:
        pos.avg_px = report.avg_px
    if report is not None and report.realized_pnl is not None and pos.multiplier:
        pos.realized_points = report.realized_pnl / pos.multiplier
    return pos.avg_px
