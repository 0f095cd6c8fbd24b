"""Working orders, fills and positions of the refapp, in memory.

The tracker is fed the orders the strategy sends and the ExecutionReports the
venue returns; it is the single source for position limits (which count working
orders) and for the P&L. Fills are keyed by exec_id, so a report seen twice (a
FIX resend, a restart) is applied once.

P&L is in money: price difference * quantity * the symbol's contract multiplier
(``quoting.multipliers``, 1 unless configured), as the venue reports it. The
realized part is kept, and stored, in price * quantity (``realized_points``) and
multiplied when read, so stores written before multipliers existed stay right.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from tradeops.brokers.base import Execution, Side

ZERO = Decimal(0)
ONE = Decimal(1)

# ExecType(150) values that carry a fill (FIX 4.4 "F", FIX 4.2 partial/full fill).
FILL_EXEC_TYPES = frozenset({"F", "1", "2"})


class OrderStatus(enum.StrEnum):
    """Our view of an order's life cycle (FIX OrdStatus(39) where one exists)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_live(self) -> bool:
        """True while the order can still trade."""
        return self in _LIVE


_LIVE = frozenset(
    {
        OrderStatus.PENDING_NEW,
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)

_ORD_STATUS = {
    "0": OrderStatus.NEW,
    "1": OrderStatus.PARTIALLY_FILLED,
    "2": OrderStatus.FILLED,
    "3": OrderStatus.EXPIRED,  # done for day
    "4": OrderStatus.CANCELED,
    "5": OrderStatus.NEW,  # replaced
    "6": OrderStatus.PENDING_CANCEL,
    "8": OrderStatus.REJECTED,
    "A": OrderStatus.PENDING_NEW,
    "C": OrderStatus.EXPIRED,
    "E": OrderStatus.NEW,  # pending replace
}


@dataclass(slots=True)
class OrderRecord:
    """One order of ours."""

    cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None
    status: OrderStatus = OrderStatus.PENDING_NEW
    order_id: str | None = None
    cum_qty: Decimal = ZERO
    purpose: str = "quote"
    sent_at: str = ""
    updated_at: str = ""
    cancel_cl_ord_id: str | None = None
    text: str | None = None

    @property
    def leaves(self) -> Decimal:
        """Quantity that can still fill (0 once the order is done)."""
        return max(self.qty - self.cum_qty, ZERO) if self.status.is_live else ZERO

    def as_dict(self) -> dict[str, object]:
        """Return the order as JSON-able data."""
        return {
            "cl_ord_id": self.cl_ord_id,
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": self.side.name,
            "qty": str(self.qty),
            "price": None if self.price is None else str(self.price),
            "cum_qty": str(self.cum_qty),
            "leaves_qty": str(self.leaves),
            "status": self.status.value,
            "purpose": self.purpose,
            "sent_at": self.sent_at,
        }


@dataclass(slots=True)
class PositionState:
    """Net position of one symbol, at average cost, with realized P&L.

    ``realized_points`` is the realized P&L in price * quantity (what the store
    keeps); :attr:`realized_pnl` and :meth:`unrealized` apply ``multiplier``.
    """

    symbol: str
    qty: Decimal = ZERO
    avg_px: Decimal = ZERO
    realized_points: Decimal = ZERO
    multiplier: Decimal = ONE

    @property
    def realized_pnl(self) -> Decimal:
        """Realized P&L in money (price * quantity * multiplier)."""
        return self.realized_points * self.multiplier

    def apply_fill(self, side: Side, qty: Decimal, px: Decimal) -> None:
        """Update the position for a fill of ``qty`` at ``px``."""
        signed = qty if side is Side.BUY else -qty
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            new_qty = self.qty + signed
            self.avg_px = (self.avg_px * abs(self.qty) + px * qty) / abs(new_qty)
            self.qty = new_qty
            return
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        self.realized_points += (px - self.avg_px) * closing * direction
        new_qty = self.qty + signed
        if new_qty == 0:
            self.avg_px = ZERO
        elif (new_qty > 0) != (self.qty > 0):
            self.avg_px = px  # flipped: the remainder opened at px
        self.qty = new_qty

    def unrealized(self, mark: Decimal | None) -> Decimal:
        """Unrealized P&L in money at ``mark`` (0 without a mark or a position)."""
        if mark is None or self.qty == 0:
            return ZERO
        return (mark - self.avg_px) * self.qty * self.multiplier

    def as_dict(self) -> dict[str, object]:
        """Return the position as JSON-able data."""
        return {
            "symbol": self.symbol,
            "qty": str(self.qty),
            "avg_px": str(self.avg_px),
            "realized_pnl": str(self.realized_pnl),
            "multiplier": str(self.multiplier),
        }


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of ours, as stored."""

    exec_id: str
    cl_ord_id: str
    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    px: Decimal
    transact_time: str | None = None


@dataclass(slots=True)
class ExecOutcome:
    """What one ExecutionReport did to the tracker."""

    order: OrderRecord | None
    fill: Fill | None = None
    acked: bool = False
    rejected: bool = False
    done: bool = False
    duplicate: bool = False


@dataclass
class OrderTracker:
    """Orders, fills (by exec_id) and positions of one strategy instance."""

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)
    exec_ids: set[str] = field(default_factory=set)
    multipliers: dict[str, Decimal] = field(default_factory=dict)
    _cancel_ids: dict[str, str] = field(default_factory=dict)

    def multiplier(self, symbol: str) -> Decimal:
        """Contract multiplier of ``symbol`` (1 unless configured)."""
        return self.multipliers.get(symbol, ONE)

    def position(self, symbol: str) -> PositionState:
        """Return (creating if needed) the position of ``symbol``."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = PositionState(symbol, multiplier=self.multiplier(symbol))
        return pos

    def load(
        self,
        orders: Iterable[OrderRecord],
        positions: Iterable[PositionState],
        exec_ids: Iterable[str],
    ) -> None:
        """Restore state read from the store; positions take the configured multipliers."""
        for order in orders:
            self.orders[order.cl_ord_id] = order
            if order.cancel_cl_ord_id:
                self._cancel_ids[order.cancel_cl_ord_id] = order.cl_ord_id
        for pos in positions:
            pos.multiplier = self.multiplier(pos.symbol)
            self.positions[pos.symbol] = pos
        self.exec_ids.update(exec_ids)

    def add(self, order: OrderRecord) -> None:
        """Track an order that is about to be sent."""
        self.orders[order.cl_ord_id] = order

    def mark_cancel(self, order: OrderRecord, cancel_cl_ord_id: str) -> None:
        """Record that a cancel was sent for ``order``."""
        order.cancel_cl_ord_id = cancel_cl_ord_id
        if order.status.is_live:
            order.status = OrderStatus.PENDING_CANCEL
        self._cancel_ids[cancel_cl_ord_id] = order.cl_ord_id

    def find(self, cl_ord_id: str | None) -> OrderRecord | None:
        """Find an order by its ClOrdID or by the ClOrdID of a cancel for it."""
        if not cl_ord_id:
            return None
        order = self.orders.get(cl_ord_id)
        if order is None and cl_ord_id in self._cancel_ids:
            order = self.orders.get(self._cancel_ids[cl_ord_id])
        return order

    def working(self, symbol: str | None = None, side: Side | None = None) -> list[OrderRecord]:
        """Live orders, optionally of one symbol and side."""
        return [
            o
            for o in self.orders.values()
            if o.status.is_live
            and (symbol is None or o.symbol == symbol)
            and (side is None or o.side is side)
        ]

    def working_qty(self, symbol: str, side: Side) -> Decimal:
        """Open quantity of our live orders in ``symbol`` on ``side``."""
        return sum((o.leaves for o in self.working(symbol, side)), ZERO)

    def on_execution(self, ex: Execution) -> ExecOutcome:
        """Apply one ExecutionReport."""
        order = self.find(ex.cl_ord_id) or self.find(ex.orig_cl_ord_id)
        outcome = ExecOutcome(order)
        is_fill = ex.exec_type in FILL_EXEC_TYPES and ex.last_qty > 0
        if is_fill:
            if ex.exec_id in self.exec_ids:
                outcome.duplicate = True
                return outcome
            self.exec_ids.add(ex.exec_id)
            self.position(ex.symbol).apply_fill(ex.side, ex.last_qty, ex.last_px)
            outcome.fill = Fill(
                exec_id=ex.exec_id,
                cl_ord_id=order.cl_ord_id if order else ex.cl_ord_id,
                order_id=ex.order_id,
                symbol=ex.symbol,
                side=ex.side,
                qty=ex.last_qty,
                px=ex.last_px,
                transact_time=ex.transact_time,
            )
        if order is None:
            return outcome
        was_pending_new = order.status is OrderStatus.PENDING_NEW
        if ex.order_id:
            order.order_id = ex.order_id
        if ex.cum_qty > order.cum_qty:
            order.cum_qty = ex.cum_qty
        status = _ORD_STATUS.get(ex.ord_status)
        if status is not None and order.status.is_live:
            if status is OrderStatus.PENDING_NEW and not was_pending_new:
                status = order.status
            # A fill or status report does not undo a cancel we asked for.
            if order.status is OrderStatus.PENDING_CANCEL and status in (
                OrderStatus.NEW,
                OrderStatus.PARTIALLY_FILLED,
            ):
                status = OrderStatus.PENDING_CANCEL
            order.status = status
        if ex.text:
            order.text = ex.text
        outcome.rejected = ex.exec_type == "8" or ex.ord_status == "8"
        outcome.acked = was_pending_new and order.status is not OrderStatus.PENDING_NEW
        outcome.done = not order.status.is_live
        return outcome

    def on_cancel_reject(self, cl_ord_id: str, orig_cl_ord_id: str) -> OrderRecord | None:
        """Handle a refused cancel: the order is working again (or already done)."""
        order = self.find(orig_cl_ord_id) or self.find(cl_ord_id)
        if order is not None and order.status is OrderStatus.PENDING_CANCEL:
            order.status = OrderStatus.PARTIALLY_FILLED if order.cum_qty > 0 else OrderStatus.NEW
        return order
