"""Matching engine of the simulator: orders, fills, positions, P&L, kill switch.

Pure and synchronous (no I/O, no asyncio) so that it is unit-tested directly.
Requests come in as small dataclasses; what the venue would send comes out as
:class:`Report` (an ExecutionReport) or :class:`CancelRejectInfo` (an
OrderCancelReject). The FIX layer (:mod:`tradeops.sim.server`) routes them.

Trading model: the market is the top of book of each symbol's price process
(:mod:`tradeops.sim.prices`). A limit order that is marketable on arrival
fills at the touch; a resting limit order fills at its own price once the
market crosses it (ask <= buy price, bid >= sell price). A market order fills
at the touch plus ``fill.market_slippage_ticks``. Each fill takes at most
``fill.ratio`` of the leaves quantity (rounded down to the lot, at least one
lot) and at most ``fill.max_qty_per_tick``; the rest fills on later ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from tradeops.brokers.fixproto import fix_utc_now
from tradeops.sim.config import SimConfig, SymbolConfig
from tradeops.sim.prices import Tick

# FIX enumerations used here.
EXEC_NEW, EXEC_CANCELED, EXEC_REPLACED, EXEC_REJECTED, EXEC_TRADE, EXEC_STATUS = (
    "0",
    "4",
    "5",
    "8",
    "F",
    "I",
)
ST_NEW, ST_PARTIAL, ST_FILLED, ST_CANCELED, ST_REJECTED = "0", "1", "2", "4", "8"
WORKING = frozenset({ST_NEW, ST_PARTIAL})

# OrdRejReason (103)
REJ_BROKER_OPTION = "0"
REJ_UNKNOWN_SYMBOL = "1"
REJ_DUPLICATE = "6"
REJ_UNSUPPORTED = "11"
REJ_BAD_QTY = "13"
REJ_OTHER = "99"
# CxlRejReason (102)
CXL_TOO_LATE = "0"
CXL_UNKNOWN = "1"
CXL_OTHER = "99"

BUY, SELL = "1", "2"
MARKET, LIMIT = "1", "2"
TIF_OK = frozenset({"0", "1"})  # Day, GTC

# The mass-status answer when no order matches (a common venue convention).
NO_ORDER_ID = "NONE"
NO_SYMBOL = "NA"
NO_ORDERS_TEXT = "no working orders"


@dataclass(frozen=True, slots=True)
class NewOrderReq:
    """A NewOrderSingle, parsed."""

    cl_ord_id: str
    account: str
    symbol: str
    side: str
    ord_type: str
    qty: Decimal
    price: Decimal | None = None
    time_in_force: str | None = None


@dataclass(frozen=True, slots=True)
class CancelReq:
    """An OrderCancelRequest, parsed."""

    cl_ord_id: str
    orig_cl_ord_id: str
    account: str
    symbol: str
    side: str
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReplaceReq:
    """An OrderCancelReplaceRequest, parsed."""

    cl_ord_id: str
    orig_cl_ord_id: str
    account: str
    symbol: str
    side: str
    qty: Decimal
    ord_type: str
    price: Decimal | None = None
    order_id: str | None = None


@dataclass(slots=True)
class Order:
    """A live or finished order."""

    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    account: str
    session: str
    symbol: str
    side: str
    ord_type: str
    qty: Decimal
    price: Decimal | None
    seq: int
    cum_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    status: str = ST_NEW

    @property
    def working(self) -> bool:
        """True while the order can still fill."""
        return self.status in WORKING

    @property
    def leaves_qty(self) -> Decimal:
        """Open quantity (0 once done)."""
        return self.qty - self.cum_qty if self.working else Decimal(0)

    @property
    def avg_px(self) -> Decimal:
        """Average fill price."""
        return self.notional / self.cum_qty if self.cum_qty else Decimal(0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "order_id": self.order_id,
            "cl_ord_id": self.cl_ord_id,
            "account": self.account,
            "session": self.session,
            "symbol": self.symbol,
            "side": self.side,
            "ord_type": self.ord_type,
            "qty": str(self.qty),
            "price": None if self.price is None else str(self.price),
            "cum_qty": str(self.cum_qty),
            "leaves_qty": str(self.leaves_qty),
            "avg_px": str(self.avg_px),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """One ExecutionReport to send.

    ``recipients`` are session names; the drop-copy sessions of ``account`` get
    it too unless ``status_only`` (mass status).
    """

    exec_id: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    account: str
    symbol: str
    side: str
    ord_type: str
    order_qty: Decimal
    price: Decimal | None
    exec_type: str
    ord_status: str
    last_qty: Decimal
    last_px: Decimal
    leaves_qty: Decimal
    cum_qty: Decimal
    avg_px: Decimal
    transact_time: str
    recipients: frozenset[str]
    text: str | None = None
    ord_rej_reason: str | None = None
    status_only: bool = False
    mass_status_req_id: str | None = None
    tot_num_reports: int | None = None
    last_rpt_requested: bool | None = None


@dataclass(frozen=True, slots=True)
class CancelRejectInfo:
    """One OrderCancelReject to send to ``session``."""

    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    ord_status: str
    response_to: str  # CxlRejResponseTo: 1 cancel, 2 replace
    reason: str  # CxlRejReason
    text: str
    account: str


@dataclass(slots=True)
class PositionState:
    """Net position of one account in one symbol."""

    qty: Decimal = Decimal(0)
    avg_px: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position valued at the current mark (mid)."""

    account: str
    symbol: str
    qty: Decimal
    avg_px: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    mark: Decimal | None
    prior_settl_px: Decimal = Decimal(0)  # the session's reference price (the configured one)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {k: (None if v is None else str(v)) for k, v in self._asdict().items()}

    def _asdict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "symbol": self.symbol,
            "qty": self.qty,
            "avg_px": self.avg_px,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "mark": self.mark,
            "prior_settl_px": self.prior_settl_px,
        }


def apply_fill(
    pos: PositionState, signed_qty: Decimal, px: Decimal, multiplier: Decimal = Decimal(1)
) -> Decimal:
    """Apply a fill (positive = buy) to ``pos`` at average cost; return the realized P&L."""
    q0 = pos.qty
    if signed_qty == 0:
        return Decimal(0)
    if q0 == 0 or (q0 > 0) == (signed_qty > 0):
        new_qty = q0 + signed_qty
        pos.avg_px = (pos.avg_px * abs(q0) + px * abs(signed_qty)) / abs(new_qty)
        pos.qty = new_qty
        return Decimal(0)
    closing = min(abs(q0), abs(signed_qty))
    direction = 1 if q0 > 0 else -1
    realized = (px - pos.avg_px) * closing * direction * multiplier
    pos.realized += realized
    new_qty = q0 + signed_qty
    if new_qty == 0:
        pos.qty, pos.avg_px = Decimal(0), Decimal(0)
    elif (new_qty > 0) == (q0 > 0):
        pos.qty = new_qty  # reduced, same average
    else:
        pos.qty, pos.avg_px = new_qty, px  # flipped: the rest opens at px
    return realized


def unrealized_pnl(pos: PositionState, mark: Decimal, multiplier: Decimal = Decimal(1)) -> Decimal:
    """Mark-to-market P&L of the open quantity."""
    if pos.qty == 0:
        return Decimal(0)
    return (mark - pos.avg_px) * pos.qty * multiplier


class Engine:
    """Orders, matching and positions of every account of one simulator."""

    def __init__(
        self,
        config: SimConfig,
        run_tag: str = "R",
        clock: Callable[[], str] = fix_utc_now,
    ) -> None:
        self.config = config
        self.run_tag = run_tag
        self._clock = clock
        self._symbols: dict[str, SymbolConfig] = {s.symbol: s for s in config.symbols}
        self.quotes: dict[str, Tick] = {}
        self.orders: dict[str, Order] = {}
        self._book: dict[str, dict[str, Order]] = {s: {} for s in self._symbols}
        self._by_cl: dict[tuple[str, str], str] = {}
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.kill_switch: dict[str, bool] = {a.account: a.kill_switch for a in config.accounts}
        self._cancel_on_kill = {a.account: a.cancel_on_kill for a in config.accounts}
        self._exec_n = 0
        self._order_n = 0
        self.fills = 0

    # ------------------------------------------------------------------ ids
    def _exec_id(self) -> str:
        self._exec_n += 1
        return f"{self.run_tag}-E{self._exec_n}"

    def _order_id(self) -> str:
        self._order_n += 1
        return f"{self.run_tag}-O{self._order_n}"

    # -------------------------------------------------------------- reports
    def _report(
        self,
        order: Order,
        exec_type: str,
        requester: str | None = None,
        last_qty: Decimal = Decimal(0),
        last_px: Decimal = Decimal(0),
        text: str | None = None,
    ) -> Report:
        recipients = {order.session}
        if requester:
            recipients.add(requester)
        return Report(
            exec_id=self._exec_id(),
            order_id=order.order_id,
            cl_ord_id=order.cl_ord_id,
            orig_cl_ord_id=order.orig_cl_ord_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            ord_type=order.ord_type,
            order_qty=order.qty,
            price=order.price,
            exec_type=exec_type,
            ord_status=order.status,
            last_qty=last_qty,
            last_px=last_px,
            leaves_qty=order.leaves_qty,
            cum_qty=order.cum_qty,
            avg_px=order.avg_px,
            transact_time=self._clock(),
            recipients=frozenset(recipients),
            text=text,
        )

    def reject_new(self, req: NewOrderReq, session: str, reason: str, text: str) -> Report:
        """An ExecutionReport rejecting ``req`` (ExecType=8, OrdStatus=8)."""
        return Report(
            exec_id=self._exec_id(),
            order_id="NONE",
            cl_ord_id=req.cl_ord_id,
            orig_cl_ord_id=None,
            account=req.account,
            symbol=req.symbol,
            side=req.side,
            ord_type=req.ord_type,
            order_qty=req.qty,
            price=req.price,
            exec_type=EXEC_REJECTED,
            ord_status=ST_REJECTED,
            last_qty=Decimal(0),
            last_px=Decimal(0),
            leaves_qty=Decimal(0),
            cum_qty=Decimal(0),
            avg_px=Decimal(0),
            transact_time=self._clock(),
            recipients=frozenset({session}),
            text=text,
            ord_rej_reason=reason,
        )

    def _cancel_reject(
        self,
        session: str,
        req: CancelReq | ReplaceReq,
        order: Order | None,
        response_to: str,
        reason: str,
        text: str,
    ) -> CancelRejectInfo:
        return CancelRejectInfo(
            session=session,
            cl_ord_id=req.cl_ord_id,
            orig_cl_ord_id=req.orig_cl_ord_id,
            order_id=order.order_id if order else None,
            ord_status=order.status if order else ST_REJECTED,
            response_to=response_to,
            reason=reason,
            text=text,
            account=req.account,
        )

    # ---------------------------------------------------------------- checks
    def _check_price(self, sym: SymbolConfig, ord_type: str, price: Decimal | None) -> str | None:
        if ord_type == LIMIT:
            if price is None:
                return "limit order without price"
            if price <= 0:
                return f"price must be > 0, got {price}"
            if (price / sym.tick_size) % 1 != 0:
                return f"price {price} is not a multiple of the tick size {sym.tick_size}"
        return None

    def _check_qty(self, sym: SymbolConfig, qty: Decimal) -> str | None:
        if qty <= 0:
            return f"quantity must be > 0, got {qty}"
        if (qty / sym.lot_size) % 1 != 0:
            return f"quantity {qty} is not a multiple of the lot size {sym.lot_size}"
        return None

    def find_order(
        self, account: str, orig_cl_ord_id: str, order_id: str | None = None
    ) -> Order | None:
        """The order of ``account`` with that OrderID or (any past) ClOrdID."""
        if order_id and order_id in self.orders and self.orders[order_id].account == account:
            return self.orders[order_id]
        oid = self._by_cl.get((account, orig_cl_ord_id))
        return self.orders.get(oid) if oid else None

    # ---------------------------------------------------------------- orders
    def new_order(self, req: NewOrderReq, session: str) -> list[Report]:
        """Accept (and maybe fill) or reject a new order."""
        sym = self._symbols.get(req.symbol)
        if req.account not in self.kill_switch:
            return [self.reject_new(req, session, REJ_OTHER, f"unknown account {req.account}")]
        if sym is None:
            return [self.reject_new(req, session, REJ_UNKNOWN_SYMBOL, "unknown symbol")]
        if self.kill_switch[req.account]:
            return [
                self.reject_new(
                    req, session, REJ_OTHER, f"kill switch active for account {req.account}"
                )
            ]
        if req.side not in (BUY, SELL):
            return [self.reject_new(req, session, REJ_UNSUPPORTED, f"unsupported Side {req.side}")]
        if req.ord_type not in (MARKET, LIMIT):
            return [
                self.reject_new(
                    req, session, REJ_UNSUPPORTED, f"unsupported OrdType {req.ord_type}"
                )
            ]
        if req.time_in_force is not None and req.time_in_force not in TIF_OK:
            return [
                self.reject_new(
                    req, session, REJ_UNSUPPORTED, f"unsupported TimeInForce {req.time_in_force}"
                )
            ]
        problem = self._check_qty(sym, req.qty)
        if problem:
            return [self.reject_new(req, session, REJ_BAD_QTY, problem)]
        problem = self._check_price(sym, req.ord_type, req.price)
        if problem:
            return [self.reject_new(req, session, REJ_OTHER, problem)]
        if (req.account, req.cl_ord_id) in self._by_cl:
            return [self.reject_new(req, session, REJ_DUPLICATE, "duplicate ClOrdID")]
        order = Order(
            order_id=self._order_id(),
            cl_ord_id=req.cl_ord_id,
            orig_cl_ord_id=None,
            account=req.account,
            session=session,
            symbol=req.symbol,
            side=req.side,
            ord_type=req.ord_type,
            qty=req.qty,
            price=req.price if req.ord_type == LIMIT else None,
            seq=self._order_n,
        )
        self.orders[order.order_id] = order
        self._book[order.symbol][order.order_id] = order
        self._by_cl[(order.account, order.cl_ord_id)] = order.order_id
        reports = [self._report(order, EXEC_NEW)]
        tick = self.quotes.get(order.symbol)
        if tick is not None:
            reports.extend(self._match(order, tick, arrival=True))
        return reports

    def cancel(self, req: CancelReq, session: str) -> list[Report] | CancelRejectInfo:
        """Cancel a working order, or say why not."""
        order = self.find_order(req.account, req.orig_cl_ord_id, req.order_id)
        if order is None:
            return self._cancel_reject(session, req, None, "1", CXL_UNKNOWN, "unknown order")
        if not order.working:
            return self._cancel_reject(
                session, req, order, "1", CXL_TOO_LATE, f"order is not working ({order.status})"
            )
        self._by_cl[(order.account, req.cl_ord_id)] = order.order_id
        order.orig_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = req.cl_ord_id
        return [self._close(order, session, None)]

    def _close(self, order: Order, requester: str | None, text: str | None) -> Report:
        order.status = ST_CANCELED
        self._book[order.symbol].pop(order.order_id, None)
        return self._report(order, EXEC_CANCELED, requester=requester, text=text)

    def replace(self, req: ReplaceReq, session: str) -> list[Report] | CancelRejectInfo:
        """Change quantity and/or price of a working order, or say why not."""
        order = self.find_order(req.account, req.orig_cl_ord_id, req.order_id)
        if order is None:
            return self._cancel_reject(session, req, None, "2", CXL_UNKNOWN, "unknown order")
        if not order.working:
            return self._cancel_reject(
                session, req, order, "2", CXL_TOO_LATE, f"order is not working ({order.status})"
            )
        if self.kill_switch.get(req.account):
            return self._cancel_reject(
                session,
                req,
                order,
                "2",
                CXL_OTHER,
                f"kill switch active for account {req.account}",
            )
        sym = self._symbols[order.symbol]
        problem = self._check_qty(sym, req.qty) or self._check_price(sym, req.ord_type, req.price)
        if req.ord_type not in (MARKET, LIMIT):
            problem = f"unsupported OrdType {req.ord_type}"
        if problem is None and req.qty <= order.cum_qty:
            problem = f"quantity {req.qty} not above the filled {order.cum_qty}"
        if problem is None and (req.account, req.cl_ord_id) in self._by_cl:
            problem = "duplicate ClOrdID"
        if problem:
            return self._cancel_reject(session, req, order, "2", CXL_OTHER, problem)
        self._by_cl[(order.account, req.cl_ord_id)] = order.order_id
        order.orig_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = req.cl_ord_id
        order.qty = req.qty
        order.ord_type = req.ord_type
        order.price = req.price if req.ord_type == LIMIT else None
        reports = [self._report(order, EXEC_REPLACED, requester=session)]
        tick = self.quotes.get(order.symbol)
        if tick is not None:
            reports.extend(self._match(order, tick, arrival=True))
        return reports

    def working_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        """Working orders of ``account`` (of one symbol if given), oldest first."""
        books = [self._book[symbol]] if symbol else list(self._book.values())
        out = [o for book in books for o in book.values() if o.account == account and o.working]
        out.sort(key=lambda o: o.seq)
        return out

    def mass_cancel(
        self, account: str, session: str, symbol: str | None = None, text: str | None = None
    ) -> list[Report]:
        """Cancel every working order of ``account`` (or of one symbol).

        Each report goes to the order's own session (and the drop copies), not
        to ``session``, which asked: its answer is the OrderMassCancelReport
        with every affected order (as venues do).
        """
        return [self._close(o, None, text) for o in self.working_orders(account, symbol)]

    def status_reports(
        self, account: str, session: str, req_id: str, symbol: str | None = None
    ) -> list[Report]:
        """ExecType=I reports of every working order (OrderMassStatusRequest).

        Every report carries ``req_id``, the total and a last-report flag. With no
        working order the answer is one report without an order (OrderID ``NONE``,
        total 0, flagged last), so that a request is never left unanswered.
        """
        orders = self.working_orders(account, symbol)
        if not orders:
            return [self._no_orders_report(account, session, req_id, symbol)]
        out = []
        for i, order in enumerate(orders):
            out.append(
                replace(
                    self._report(order, EXEC_STATUS),
                    recipients=frozenset({session}),
                    status_only=True,
                    mass_status_req_id=req_id,
                    tot_num_reports=len(orders),
                    last_rpt_requested=i == len(orders) - 1,
                )
            )
        return out

    def _no_orders_report(
        self, account: str, session: str, req_id: str, symbol: str | None
    ) -> Report:
        """The single ExecType=I report answering a mass status with nothing to report.

        FIX requires Symbol and Side in an ExecutionReport: Symbol is the requested
        one (``NA`` for all), Side 1 and the zero quantities are placeholders;
        OrdStatus 8 as for a status request on an unknown order.
        """
        return Report(
            exec_id=self._exec_id(),
            order_id=NO_ORDER_ID,
            cl_ord_id=NO_ORDER_ID,
            orig_cl_ord_id=None,
            account=account,
            symbol=symbol or NO_SYMBOL,
            side=BUY,
            ord_type="",
            order_qty=Decimal(0),
            price=None,
            exec_type=EXEC_STATUS,
            ord_status=ST_REJECTED,
            last_qty=Decimal(0),
            last_px=Decimal(0),
            leaves_qty=Decimal(0),
            cum_qty=Decimal(0),
            avg_px=Decimal(0),
            transact_time=self._clock(),
            recipients=frozenset({session}),
            text=NO_ORDERS_TEXT if symbol is None else f"{NO_ORDERS_TEXT} in {symbol}",
            status_only=True,
            mass_status_req_id=req_id,
            tot_num_reports=0,
            last_rpt_requested=True,
        )

    def set_kill_switch(self, account: str, on: bool) -> list[Report]:
        """Turn the account's kill switch on (cancelling working orders) or off."""
        if account not in self.kill_switch:
            raise KeyError(account)
        self.kill_switch[account] = on
        if on and self._cancel_on_kill.get(account, True):
            return self.mass_cancel(account, session="", text="kill switch")
        return []

    # -------------------------------------------------------------- matching
    def on_tick(self, symbol: str, tick: Tick) -> list[Report]:
        """New top of book for ``symbol``: fill what it crosses."""
        self.quotes[symbol] = tick
        reports: list[Report] = []
        for order in list(self._book[symbol].values()):
            reports.extend(self._match(order, tick, arrival=False))
        return reports

    def _fill_price(self, order: Order, tick: Tick, arrival: bool) -> Decimal | None:
        sym = self._symbols[order.symbol]
        if order.ord_type == MARKET:
            slip = sym.tick_size * self.config.fill.market_slippage_ticks
            if order.side == BUY:
                return tick.ask + slip
            return max(sym.tick_size, tick.bid - slip)
        assert order.price is not None
        if order.side == BUY and tick.ask <= order.price:
            return tick.ask if arrival else order.price
        if order.side == SELL and tick.bid >= order.price:
            return tick.bid if arrival else order.price
        return None

    def _fill_qty(self, order: Order) -> Decimal:
        fill = self.config.fill
        lot = self._symbols[order.symbol].lot_size
        leaves = order.leaves_qty
        qty = leaves
        if fill.ratio < 1:
            qty = (leaves * fill.ratio / lot).to_integral_value(ROUND_FLOOR) * lot
            qty = max(qty, lot)
        if fill.max_qty_per_tick > 0:
            qty = min(qty, fill.max_qty_per_tick)
        return min(qty, leaves)

    def _match(self, order: Order, tick: Tick, arrival: bool) -> list[Report]:
        if not order.working:
            return []
        px = self._fill_price(order, tick, arrival)
        if px is None:
            return []
        qty = self._fill_qty(order)
        if qty <= 0:
            return []
        order.cum_qty += qty
        order.notional += qty * px
        order.status = ST_FILLED if order.cum_qty >= order.qty else ST_PARTIAL
        if order.status == ST_FILLED:
            self._book[order.symbol].pop(order.order_id, None)
        sym = self._symbols[order.symbol]
        pos = self.positions.setdefault((order.account, order.symbol), PositionState())
        apply_fill(pos, qty if order.side == BUY else -qty, px, sym.multiplier)
        self.fills += 1
        return [self._report(order, EXEC_TRADE, last_qty=qty, last_px=px)]

    # ------------------------------------------------------------- positions
    def position_views(self, account: str) -> list[PositionView]:
        """One view per configured symbol (flat ones included), valued at the mid."""
        out = []
        for symbol, sym in self._symbols.items():
            pos = self.positions.get((account, symbol), PositionState())
            tick = self.quotes.get(symbol)
            mark = tick.mid if tick else None
            out.append(
                PositionView(
                    account=account,
                    symbol=symbol,
                    qty=pos.qty,
                    avg_px=pos.avg_px,
                    realized_pnl=pos.realized,
                    unrealized_pnl=unrealized_pnl(pos, mark, sym.multiplier)
                    if mark is not None
                    else Decimal(0),
                    mark=mark,
                    prior_settl_px=sym.price,
                )
            )
        return out

    def state(self) -> dict[str, Any]:
        """JSON-friendly snapshot for the admin API."""
        working = sorted((o for o in self.orders.values() if o.working), key=lambda o: o.seq)
        return {
            "orders": [o.to_dict() for o in working],
            "orders_total": len(self.orders),
            "fills_total": self.fills,
            "positions": [
                v.to_dict()
                for account in self.kill_switch
                for v in self.position_views(account)
                if v.qty or v.realized_pnl
            ],
            "kill_switch": dict(self.kill_switch),
            "quotes": {
                s: {"bid": str(t.bid), "ask": str(t.ask), "last": str(t.last)}
                for s, t in self.quotes.items()
            },
        }
