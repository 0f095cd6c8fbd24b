"""The agent's own view of the account, built only from the drop copy and market data.

Never from the strategy's figures: a hung, crashed or rogue strategy cannot make
the agent believe anything. Time is injected (``now``, seconds) with every call.

* **Working orders** are keyed by OrderID (stable across replaces), by ClOrdID
  while the venue has not given one. An order is open until its OrdStatus is
  Filled, DoneForDay, Canceled, Rejected or Expired, or its LeavesQty is 0.
* **Fills** are ExecType Trade (F), or PartialFill/Fill (1/2) of FIX 4.2, with a
  LastQty above 0; a fill seen again (same ExecID, a PossDup resend) counts once.
  Positions use average cost; realized P&L is booked when a fill reduces.
* **Unrealized P&L** marks a long at the bid and a short at the ask (the side it
  would close at, the conservative mark), falling back to the other side, then
  the last trade. **Notional exposure** of a symbol is the worse of
  ``|position + working buys|`` and ``|position - working sells|`` times the mid
  (else one side, the last trade, the last order price): working orders count.
* **Rates** count drop-copy messages (every Execution except mass-status answers
  ExecType I, which the agent asked for, plus CancelRejects and Rejects) and new
  orders (the first PendingNew, New or Rejected of a ClOrdID) over a sliding window.
* **Ack latency** is the agent-clock time between a PendingNew and its New (or
  Rejected) on the drop copy: both cross the same path, so no clock skew and no
  TransactTime parsing. An order still awaiting its ack counts with its age.
* **Child quantity** (the Knight pattern): per (symbol, side, parent) the day's
  filled plus working quantity over the intended quantity. The parent is the
  ``parent`` group of ``parent_pattern`` on the order's first ClOrdID (all orders
  of a symbol and side when there is no pattern or no match). Independently, an
  order whose CumQty exceeds its OrderQty is an over-fill.
* Anything the book cannot apply (a malformed event) sets :attr:`Book.fault`:
  its figures can no longer be trusted, and every breaker trips BREAKER_FAULT.
"""

from __future__ import annotations

import enum
import heapq
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from tradeops.agent.window import WindowCount, WindowMax
from tradeops.brokers.base import BrokerEvent, CancelReject, Execution, Quote, Reject, Side

ZERO = Decimal(0)
TRADES = frozenset({"F", "1", "2"})  # Trade; PartialFill and Fill in FIX 4.2
CLOSED = frozenset({"2", "3", "4", "8", "C"})  # Filled, DoneForDay, Canceled, Rejected, Expired
PENDING_NEW, NEW, REJECTED, STATUS = "A", "0", "8", "I"
NO_ORDER_ID = frozenset({"", "NONE"})
EXEC_ID_MEMORY = 200_000  # fills remembered for duplicate detection

ChildKey = tuple[str, Side, str]  # symbol, side, parent


class Input(enum.StrEnum):
    """The feeds the book is built from."""

    DROP_COPY = "drop_copy"
    MARKET_DATA = "market_data"


@dataclass(slots=True)
class WorkingOrder:
    """One open order as the drop copy shows it."""

    cl_ord_id: str
    symbol: str
    side: Side
    order_qty: Decimal
    leaves: Decimal
    cum_qty: Decimal
    price: Decimal | None
    child: ChildKey
    cl_ids: list[str]


@dataclass(slots=True)
class SymbolView:
    """Position, P&L, marks and exposure of one symbol."""

    symbol: str
    first_seen: float
    qty: Decimal = ZERO
    avg_px: Decimal = ZERO
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    working_buy: Decimal = ZERO
    working_sell: Decimal = ZERO
    exposure_qty: Decimal = ZERO
    notional: Decimal = ZERO
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    order_px: Decimal | None = None
    quote_at: float | None = None

    @property
    def watched(self) -> bool:
        """True with a position or a working order (its feed must be fresh)."""
        return bool(self.qty or self.working_buy or self.working_sell)

    def mark(self) -> Decimal | None:
        """Mid, else the one side quoted, else the last trade, else the last order price."""
        bid, ask = self.bid, self.ask
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return bid if bid is not None else ask if ask is not None else self.last or self.order_px

    def apply_fill(self, signed: Decimal, px: Decimal) -> Decimal:
        """Apply a signed fill at ``px`` (average cost); return the realized P&L it booked."""
        qty, realized = self.qty, ZERO
        if qty == 0 or (qty > 0) == (signed > 0):
            self.avg_px = (self.avg_px * abs(qty) + px * abs(signed)) / (abs(qty) + abs(signed))
        else:
            closing = min(abs(signed), abs(qty))
            realized = closing * (px - self.avg_px) * (1 if qty > 0 else -1)
            if abs(signed) > abs(qty):
                self.avg_px = px  # flipped: the rest opens at this price
        self.qty = qty + signed
        if self.qty == 0:
            self.avg_px = ZERO
        self.realized += realized
        self.last = px
        return realized

    def refresh(self) -> None:
        """Recompute unrealized P&L and exposure from the position, orders and marks."""
        qty = self.qty
        close = self.bid if qty > 0 else self.ask
        if close is None:
            close = self.mark()
        self.unrealized = (close - self.avg_px) * qty if qty and close is not None else ZERO
        self.exposure_qty = max(abs(qty + self.working_buy), abs(qty - self.working_sell))
        px = self.mark()
        self.notional = self.exposure_qty * px if px is not None else ZERO


def _check_number(name: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name} {value} is not a finite number >= 0")


class Book:
    """Orders, positions, P&L, rates and input freshness of one account."""

    def __init__(
        self,
        started: float,
        *,
        rate_window_s: float = 1.0,
        reject_window_s: float = 10.0,
        ack_window_s: float = 10.0,
        intended_qty: dict[str, Decimal] | None = None,
        default_intended_qty: Decimal | None = None,
        parent_pattern: str | None = None,
    ) -> None:
        self.started = started
        self.symbols: dict[str, SymbolView] = {}
        self.working: dict[str, WorkingOrder] = {}
        self.realized = ZERO
        self.unrealized = ZERO
        self.notional = ZERO
        self.peak_equity = ZERO
        self.fault: str | None = None
        self.messages = WindowCount(rate_window_s)
        self.new_orders = WindowCount(rate_window_s)
        self.orders_for_rejects = WindowCount(reject_window_s)
        self.rejects = WindowCount(reject_window_s)
        self.ack_latency = WindowMax(ack_window_s)
        self.heartbeats: dict[str, float] = {}
        self._pending: dict[str, float] = {}  # ClOrdID -> when its PendingNew arrived
        self._by_cl: dict[str, str] = {}  # ClOrdID of a working order -> its key
        self._seen_fills: OrderedDict[str, None] = OrderedDict()
        self._intended = dict(intended_qty or {})
        self._default_intended = default_intended_qty
        self._parent_re = re.compile(parent_pattern) if parent_pattern else None
        self.child_filled: dict[ChildKey, Decimal] = {}
        self.child_working: dict[ChildKey, Decimal] = {}
        self._child_heap: list[tuple[float, int, ChildKey]] = []
        self._child_version: dict[ChildKey, int] = {}
        self._child_seq = 0
        self.worst_overfill: tuple[float, str | None] = (0.0, None)
        self._last_input = dict.fromkeys(Input, started)
        self._expected: dict[Input, float | None] = dict.fromkeys(Input, started)
        self._down: dict[Input, str | None] = dict.fromkeys(Input)

    # ------------------------------------------------------------ inputs
    def on_event(self, event: BrokerEvent, now: float) -> None:
        """Apply one broker event; never raises (a failure sets :attr:`fault`)."""
        try:
            if isinstance(event, Execution):
                self.on_execution(event, now)
            elif isinstance(event, Quote):
                self.on_quote(event, now)
            elif isinstance(event, CancelReject | Reject):
                self.touch(Input.DROP_COPY, now)
                self.messages.add(now)
        except Exception as exc:  # fail closed: the view is no longer trustworthy
            self.fault = f"could not apply {type(event).__name__}: {type(exc).__name__}: {exc}"

    def touch(self, source: Input, now: float) -> None:
        """Any message from ``source`` (session heartbeats too): it is alive."""
        if now > self._last_input[source]:
            self._last_input[source] = now

    def on_session(self, source: Input, state: str, now: float) -> None:
        """A SessionStatus of ``source``: logged out or disconnected means no input now."""
        self._down[source] = None if state == "logged_on" else state
        self.touch(source, now)

    def expect(self, source: Input, up: bool, now: float) -> None:
        """Whether ``source`` is supposed to be up (e.g. outside market hours it is not)."""
        self._expected[source] = now if up else None

    def input_age(self, source: Input, now: float) -> float | None:
        """Seconds since ``source`` last spoke (inf when down), None when not expected."""
        since = self._expected[source]
        if since is None:
            return None
        if self._down[source] is not None:
            return math.inf
        return now - max(self._last_input[source], since)

    def input_down(self, source: Input) -> str | None:
        """The session state that took ``source`` down, or None."""
        return self._down[source]

    def heartbeat(self, strategy: str, now: float) -> None:
        """A strategy's heartbeat (the agent server feeds them)."""
        self.heartbeats[strategy] = now

    def forget(self, strategy: str) -> None:
        """Stop expecting heartbeats from ``strategy`` (stopped on purpose)."""
        self.heartbeats.pop(strategy, None)

    def seed_position(self, symbol: str, qty: Decimal, avg_px: Decimal, now: float) -> None:
        """Start from a venue-reported position (start of day or after a resync)."""
        s = self._symbol(symbol, now)
        s.qty, s.avg_px = qty, avg_px if qty else ZERO
        self._remark(s)

    def clear_fault(self) -> None:
        """Trust the book again: only after it was rebuilt from the venue's reports."""
        self.fault = None

    # ------------------------------------------------------------ events
    def on_quote(self, q: Quote, now: float) -> None:
        """Top of book for one symbol: marks and feed freshness."""
        self.touch(Input.MARKET_DATA, now)
        for name, px in (("bid", q.bid), ("ask", q.ask), ("last", q.last)):
            if px is not None:
                _check_number(name, px)
        s = self._symbol(q.symbol, now)
        s.bid, s.ask, s.quote_at = q.bid, q.ask, now
        if q.last is not None:
            s.last = q.last
        self._remark(s)

    def on_execution(self, ex: Execution, now: float) -> None:
        """One drop-copy ExecutionReport."""
        self.touch(Input.DROP_COPY, now)
        if ex.exec_type == STATUS:
            if ex.order_id not in NO_ORDER_ID:
                self._update_order(ex, self._key(ex), now)
            return
        for name in ("order_qty", "last_qty", "last_px", "cum_qty", "leaves_qty"):
            _check_number(name, getattr(ex, name))
        side = Side(ex.side)
        self.messages.add(now)
        key = self._key(ex)
        et, cl = ex.exec_type, ex.cl_ord_id
        if et == PENDING_NEW:
            if cl not in self._pending:
                self._pending[cl] = now
                self._count_new(now)
        elif et in (NEW, REJECTED):
            sent = self._pending.pop(cl, None)
            if sent is not None:
                self.ack_latency.add(now, now - sent)
            elif key not in self.working:
                self._count_new(now)
            if et == REJECTED:
                self.rejects.add(now)
        if et in TRADES and ex.last_qty > 0:
            self._fill(ex, key, side, now)
        self._update_order(ex, key, now)

    # ------------------------------------------------------------ figures
    @property
    def equity(self) -> Decimal:
        """Realized plus unrealized P&L of the day."""
        return self.realized + self.unrealized

    @property
    def drawdown(self) -> Decimal:
        """How far equity is below its intraday peak."""
        return self.peak_equity - self.equity

    def position(self, symbol: str) -> Decimal:
        """Signed position of ``symbol``."""
        s = self.symbols.get(symbol)
        return s.qty if s else ZERO

    def oldest_unacked(self, now: float) -> tuple[str | None, float]:
        """The ClOrdID longest awaiting its ack, and its age (0.0 when none)."""
        for cl, sent in self._pending.items():  # insertion order: the oldest first
            return cl, now - sent
        return None, 0.0

    def intended(self, symbol: str) -> Decimal | None:
        """The intended quantity per side and parent of ``symbol`` (None: unlimited)."""
        return self._intended.get(symbol, self._default_intended)

    def feed_age(self, symbol: str, now: float) -> float:
        """Seconds since the last quote of ``symbol`` (since first seen if never quoted)."""
        s = self.symbols.get(symbol)
        if s is None:
            return now - self.started
        return now - (s.quote_at if s.quote_at is not None else s.first_seen)

    # ------------------------------------------------------------ internals
    def _symbol(self, symbol: str, now: float) -> SymbolView:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = SymbolView(symbol, now)
        return s

    def _count_new(self, now: float) -> None:
        self.new_orders.add(now)
        self.orders_for_rejects.add(now)

    def _child_key(self, ex: Execution, side: Side) -> ChildKey:
        parent = ""
        if self._parent_re is not None:
            match = self._parent_re.search(ex.orig_cl_ord_id or ex.cl_ord_id)
            if match is not None and match.group("parent") is not None:
                parent = match.group("parent")
        return ex.symbol, side, parent

    def _key(self, ex: Execution) -> str:
        """OrderID once the venue gave one (re-keying an order first seen without)."""
        by_cl = self._by_cl
        known = by_cl.get(ex.cl_ord_id) or (by_cl.get(ex.orig_cl_ord_id or ""))
        if ex.order_id in NO_ORDER_ID:
            return known or ex.cl_ord_id
        key = ex.order_id
        if known is not None and known != key and key not in self.working:
            order = self.working.pop(known, None)
            if order is not None:
                self.working[key] = order
                for cl in order.cl_ids:
                    by_cl[cl] = key
        return key

    def _fill(self, ex: Execution, key: str, side: Side, now: float) -> None:
        seen = self._seen_fills
        if ex.exec_id in seen:
            return
        seen[ex.exec_id] = None
        if len(seen) > EXEC_ID_MEMORY:
            seen.popitem(last=False)
        order = self.working.get(key)
        child = order.child if order is not None else self._child_key(ex, side)
        signed = ex.last_qty if side is Side.BUY else -ex.last_qty
        s = self._symbol(ex.symbol, now)
        self.realized += s.apply_fill(signed, ex.last_px)
        self.child_filled[child] = self.child_filled.get(child, ZERO) + ex.last_qty
        self._note_child(child)

    def _update_order(self, ex: Execution, key: str, now: float) -> None:
        side = Side(ex.side)
        is_open = ex.ord_status not in CLOSED and ex.leaves_qty > 0
        order = self.working.get(key)
        s = self._symbol(ex.symbol, now)
        if ex.price is not None:
            s.order_px = ex.price
        if order is None:
            if not is_open:
                self._check_overfill(ex, key)
                self._remark(s)
                return
            child = self._child_key(ex, side)
            order = WorkingOrder(
                ex.cl_ord_id, ex.symbol, side, ex.order_qty, ZERO, ZERO, ex.price, child, []
            )
            self.working[key] = order
        if ex.cl_ord_id not in self._by_cl:
            self._by_cl[ex.cl_ord_id] = key
            order.cl_ids.append(ex.cl_ord_id)
        leaves = ex.leaves_qty if is_open else ZERO
        delta = leaves - order.leaves
        if order.side is Side.BUY:
            s.working_buy += delta
        else:
            s.working_sell += delta
        self.child_working[order.child] = self.child_working.get(order.child, ZERO) + delta
        order.leaves, order.cum_qty, order.order_qty = leaves, ex.cum_qty, ex.order_qty
        order.cl_ord_id, order.price = ex.cl_ord_id, ex.price
        if not is_open:
            del self.working[key]
            for cl in order.cl_ids:
                self._by_cl.pop(cl, None)
        self._note_child(order.child)
        self._check_overfill(ex, key)
        self._remark(s)

    def _check_overfill(self, ex: Execution, key: str) -> None:
        if ex.order_qty > 0 and ex.cum_qty > ex.order_qty:
            ratio = float(ex.cum_qty / ex.order_qty)
            if ratio > self.worst_overfill[0]:
                self.worst_overfill = (ratio, key)

    def child_ratio(self, child: ChildKey) -> float:
        """Filled + working over intended for one parent (0.0 without an intended qty)."""
        intended = self.intended(child[0])
        if intended is None:
            return 0.0
        total = self.child_filled.get(child, ZERO) + self.child_working.get(child, ZERO)
        return float(total / intended)

    @property
    def worst_child(self) -> tuple[float, ChildKey | None]:
        """The parent with the highest filled + working / intended ratio, and that ratio."""
        heap, version = self._child_heap, self._child_version
        while heap and version[heap[0][2]] != heap[0][1]:
            heapq.heappop(heap)  # an outdated entry: that parent changed since
        return (-heap[0][0], heap[0][2]) if heap else (0.0, None)

    def _note_child(self, child: ChildKey) -> None:
        """Push the parent's new ratio on a lazy max-heap (O(log n), exact maximum)."""
        if self.intended(child[0]) is None:
            return
        self._child_seq += 1
        self._child_version[child] = self._child_seq
        heap = self._child_heap
        heapq.heappush(heap, (-self.child_ratio(child), self._child_seq, child))
        if len(heap) > 4 * len(self._child_version) + 64:  # compact the outdated entries
            version = self._child_version
            self._child_heap = [e for e in heap if version[e[2]] == e[1]]
            heapq.heapify(self._child_heap)

    def _remark(self, s: SymbolView) -> None:
        unrealized, notional = s.unrealized, s.notional
        s.refresh()
        self.unrealized += s.unrealized - unrealized
        self.notional += s.notional - notional
        equity = self.realized + self.unrealized
        if equity > self.peak_equity:
            self.peak_equity = equity
