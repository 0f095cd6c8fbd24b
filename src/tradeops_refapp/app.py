"""The running reference strategy: session, quoting loop, endpoints, shutdown.

One asyncio loop runs everything: the FIX order-entry session (reconnected when
it drops), the quoting passes, the HTTP endpoints and, when configured, a fault.
Every order goes through :meth:`RefApp.place`, which checks the host trading
state (and, except for the faults that simulate a broken strategy, the position
limit) immediately before sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradeops.brokers.base import (
    BrokerEvent,
    BrokerSession,
    CancelReject,
    EventCallback,
    Execution,
    MassCancelReport,
    NewOrder,
    OrdType,
    Position,
    PositionsAck,
    Quote,
    Reject,
    SessionConfig,
    SessionRole,
    SessionStatus,
    Side,
)
from tradeops.log import EventLog, open_log, utc_now_iso
from tradeops_client.agentbeat import send_heartbeat
from tradeops_client.liveness import AgentLiveness
from tradeops_client.tradingstate import Decision, TradingState, TradingStateReader, check_order
from tradeops_refapp import faults, quoting
from tradeops_refapp.config import RefAppConfig
from tradeops_refapp.http import HttpServer, Request, Response
from tradeops_refapp.metrics import Metrics
from tradeops_refapp.orders import OrderRecord, OrderStatus, OrderTracker
from tradeops_refapp.reconcile import PositionsRefused, PositionsRequest, reconcile
from tradeops_refapp.store import SqlStore, open_store
from tradeops_refapp.version import release_id, version

SessionFactory = Callable[[SessionConfig, EventCallback], BrokerSession]

ACTIVE = "active"
STANDBY = "standby"
STOPPING = "stopping"
ACK_TIMEOUT_S = 10.0
REJECT_BACKOFF_S = 1.0
REJECT_BACKOFF_MAX_S = 30.0


def fix_session_factory(log: EventLog) -> SessionFactory:
    """Return a factory of FIX adapters that log their session events to ``log``."""

    def make(config: SessionConfig, on_event: EventCallback) -> BrokerSession:
        from tradeops.brokers.fix import FixSession  # late: unit tests run without it

        return FixSession(config, on_event, log=log)

    return make


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class RefApp:
    """One refapp instance."""

    def __init__(
        self,
        cfg: RefAppConfig,
        *,
        standby: bool = False,
        log: EventLog | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.cfg = cfg
        self.version = version()
        self.release_id = release_id(cfg.config_dir)
        self.log = (log or open_log("refapp", cfg.log_file)).bind(instance=cfg.instance)
        self.metrics = Metrics(self.version, self.release_id, cfg.instance, cfg.fault_mode)
        self.tracker = OrderTracker(multipliers=dict(cfg.quoting.multipliers))
        self.mode = STANDBY if standby else ACTIVE
        self.quotes: dict[str, Quote] = {}
        self.md_seen: dict[str, float] = {}
        self.session: BrokerSession | None = None
        self.store: SqlStore | None = None
        self.reader: TradingStateReader | None = None
        self.liveness: AgentLiveness | None = None  # set when an agent is required
        self.http: HttpServer | None = None
        self.state_loaded = False
        self.logged_on = False
        self.started_at = utc_now_iso()
        self.orders_sent = 0
        self._session_factory = session_factory or fix_session_factory(self.log)
        self._run_id = _base36(int(time.time() * 1000) % 36**7)
        self._seq = 0
        self._sent_ns: dict[str, int] = {}
        self._stale: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_state: TradingState | None = None
        self._loop_lag_s = 0.0
        self._first_logon_done = False
        self._session_token: object | None = None
        self._positions_request: tuple[PositionsRequest, asyncio.Future[None]] | None = None
        self._positions_settled = False  # since the last logon: quote only once it is
        # (symbol, side) -> (monotonic time before which it is not re-quoted, delay)
        self._backoff: dict[tuple[str, Side], tuple[float, float]] = {}
        self._active_since: float | None = None if standby else time.monotonic()
        self.exit_code = 0

    # ----------------------------------------------------------------- ids
    def next_id(self, kind: str = "") -> str:
        """Return a ClOrdID unique across runs of this instance."""
        self._seq += 1
        return f"{self.cfg.instance}-{self._run_id}-{kind}{self._seq}"

    # ----------------------------------------------------------------- lifecycle
    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM, SIGINT)."""
        if not self._stop.is_set():
            self.log.event("stop_requested")
        self._stop.set()

    async def run(self) -> int:
        """Run until stopped; return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self.log.event(
            "starting",
            version=self.version,
            release_id=self.release_id,
            mode=self.mode,
            pid=os.getpid(),
            fault_mode=self.cfg.fault_mode,
            config=self.cfg.path,
        )
        try:
            self._load_state()
            self.reader = TradingStateReader(self.cfg.trading_state_path)
            if self.cfg.agent_liveness_path:
                self.liveness = AgentLiveness(
                    self.cfg.agent_liveness_path, self.cfg.agent_liveness_max_s
                )
            self._observe_state()
            self.http = self._build_http()
            await self.http.start(self.cfg.http_bind, self.cfg.http_port)
        except Exception as exc:
            self.log.event("start_failed", error=f"{type(exc).__name__}: {exc}")
            self._close_store()
            return 2
        self.log.event(
            "http_listening", bind=self.cfg.http_bind, port=self.http.port, pid=os.getpid()
        )
        self.metrics.set_mode(self.mode)
        self._tasks = [
            asyncio.create_task(self._session_loop(), name="session"),
            asyncio.create_task(self._quote_loop(), name="quoting"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]
        if self.cfg.agent_heartbeat_socket:
            self._tasks.append(asyncio.create_task(self._agent_beat_loop(), name="agent-beat"))
        fault_task = faults.start(self)
        if fault_task is not None:
            self._tasks.append(fault_task)
        await self._stop.wait()
        await self._shutdown()
        return self.exit_code

    def _load_state(self) -> None:
        self.store = open_store(self.cfg.db)
        orders = self.store.load_orders()
        positions = self.store.load_positions()
        fills = self.store.load_fills()
        self.tracker.load(orders, positions, (f.exec_id for f in fills))
        self._stale = {o.cl_ord_id for o in orders if o.status.is_live}
        for key, value in (
            ("version", self.version),
            ("release_id", self.release_id),
            ("instance", self.cfg.instance),
            ("started_at", self.started_at),
        ):
            self.store.set_meta(key, value)
        q, lim = self.cfg.quoting, self.cfg.limits
        self.store.set_param("symbols", self.cfg.symbols)
        self.store.set_param(
            "quoting",
            {
                "spread_bps": q.spread_bps,
                "size": q.size,
                "requote_bps": q.requote_bps,
                "multipliers": q.multipliers,
            },
        )
        self.store.set_param(
            "limits",
            {
                "max_position": lim.max_position,
                "per_symbol": lim.per_symbol,
                "max_order_qty": lim.max_order_qty,
            },
        )
        self.state_loaded = True
        for sym in self.cfg.symbols:
            self._update_symbol_metrics(sym)
        self.log.event(
            "state_loaded",
            db=self.store.dsn_redacted,
            schema_version=self.store.schema_version(),
            orders=len(orders),
            stale_live_orders=len(self._stale),
            fills=len(fills),
            positions={p.symbol: str(p.qty) for p in positions},
        )

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    async def _shutdown(self) -> None:
        self.log.event("shutdown_begin", working_orders=len(self.tracker.working()))
        self.mode = STOPPING
        self.metrics.set_mode(self.mode)
        current = asyncio.current_task()
        for task in self._tasks:
            if task.get_name() != "session" and task is not current:
                task.cancel()
        left = await self.cancel_all("shutdown", wait_s=self.cfg.shutdown_timeout_s)
        session_task = next((t for t in self._tasks if t.get_name() == "session"), None)
        if session_task is not None:
            session_task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.close(), 5.0)
        if self.http is not None:
            await self.http.close()
        if self.reader is not None:
            self.reader.close()
        if self.liveness is not None:
            self.liveness.close()
        self._close_store()
        self.log.event("shutdown_done", working_orders_left=left, exit_code=self.exit_code)

    # ----------------------------------------------------------------- session
    def _session_config(self) -> SessionConfig:
        v = self.cfg.venue
        return SessionConfig(
            host=v.host,
            port=v.port,
            sender_comp_id=v.sender_comp_id,
            target_comp_id=v.target_comp_id,
            role=SessionRole.ORDER_ENTRY,
            account=self.cfg.account,
            heartbeat_s=v.heartbeat_s,
            store_dir=v.store_dir,
        )

    async def _session_loop(self) -> None:
        v = self.cfg.venue
        while not self._stop.is_set():
            self._disconnected.clear()
            token = object()
            self._session_token = token

            async def on_event(event: BrokerEvent, token: object = token) -> None:
                # Status notices of a session we already gave up on must not
                # disturb the current one.
                if isinstance(event, SessionStatus) and token is not self._session_token:
                    return
                await self.on_event(event)

            session = self._session_factory(self._session_config(), on_event)
            self.session = session
            self.log.event("session_connecting", venue_host=v.host, venue_port=v.port)
            try:
                await session.connect(timeout_s=v.connect_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.event("session_connect_failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    await session.close()
                await self._sleep_or_stop(v.reconnect_delay_s)
                continue
            self._set_logged_on(True)
            try:
                await self._after_logon(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.event("after_logon_failed", error=f"{type(exc).__name__}: {exc}")
            await self._disconnected.wait()
            self._set_logged_on(False)
            with contextlib.suppress(Exception):
                await session.close()
            await self._sleep_or_stop(v.reconnect_delay_s)

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _after_logon(self, session: BrokerSession) -> None:
        md_req = self.next_id("md")
        await session.subscribe_market_data(md_req, list(self.cfg.symbols))
        self.log.event("md_subscribed", md_req_id=md_req, symbols=self.cfg.symbols)
        if not self._first_logon_done:
            self._first_logon_done = True
            stale = [o for o in self.tracker.working() if o.cl_ord_id in self._stale]
            if stale and self.cfg.cancel_on_start:
                self.log.event("cancel_stale_orders", count=len(stale))
                for order in stale:
                    await self.cancel(order, "stale_from_previous_run")
        await self._reconcile_positions(session)
        self._wake.set()

    async def _reconcile_positions(self, session: BrokerSession) -> None:
        """Take the venue's positions as the truth after a logon (tradeops_refapp.reconcile).

        Bounded by the venue's connect timeout; without an answer the refapp
        goes on with its own figures and says so.
        """
        request = PositionsRequest(self.next_id("pos"))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._positions_request = (request, done)
        try:
            await session.request_positions(request.req_id)
            await asyncio.wait_for(done, self.cfg.venue.connect_timeout_s)
        except (TimeoutError, PositionsRefused, ConnectionError) as exc:
            self.log.event("positions_unreconciled", req_id=request.req_id, error=str(exc))
            return
        finally:
            self._positions_request = None
            self._positions_settled = True
        assert self.store is not None
        changed = reconcile(self.tracker, request.reports, self.cfg.symbols)
        for adjustment in changed:
            self.store.save_position(self.tracker.position(adjustment.symbol))
            self._update_symbol_metrics(adjustment.symbol)
            self.log.event(
                "position_reconciled",
                symbol=adjustment.symbol,
                ours=str(adjustment.ours),
                venue=str(adjustment.venue),
                avg_px=str(adjustment.avg_px),
            )
        self.log.event(
            "positions_checked",
            req_id=request.req_id,
            reports=len(request.reports),
            changed=[a.symbol for a in changed],
        )

    def _set_logged_on(self, value: bool) -> None:
        if self.logged_on != value:
            self.logged_on = value
            self._positions_settled = False  # until _reconcile_positions after the logon
            self.metrics.logged_on.set(1 if value else 0)
            self.log.event("session_logged_on" if value else "session_down")

    # ----------------------------------------------------------------- events
    async def on_event(self, event: BrokerEvent) -> None:
        """Handle one event from the broker session."""
        try:
            if isinstance(event, Quote):
                self._on_quote(event)
            elif isinstance(event, Execution):
                self._on_execution(event)
            elif isinstance(event, CancelReject):
                self._on_cancel_reject(event)
            elif isinstance(event, Reject):
                self.metrics.rejects.labels("session").inc()
                self.log.event(
                    "reject",
                    kind="session",
                    ref_msg_type=event.ref_msg_type,
                    ref_seq_num=event.ref_seq_num,
                    reason=event.reason,
                )
            elif isinstance(event, SessionStatus):
                self.log.event("session_status", state=event.state, detail=event.detail)
                if event.state == "logged_on":
                    self._set_logged_on(True)
                else:
                    self._set_logged_on(False)
                    self._disconnected.set()
            elif isinstance(event, MassCancelReport):
                self.log.event(
                    "mass_cancel_report",
                    response=event.response,
                    total_affected=event.total_affected,
                    reject_reason=event.reject_reason,
                )
            elif isinstance(event, Position | PositionsAck):
                self._on_positions(event)
        except Exception as exc:  # never let one bad event kill the session's reader
            self.log.event(
                "event_error", error=f"{type(exc).__name__}: {exc}", kind=type(event).__name__
            )

    def _on_positions(self, event: Position | PositionsAck) -> None:
        if isinstance(event, Position):
            self.log.event("position_report", symbol=event.symbol, qty=str(event.qty))
        pending = self._positions_request
        if pending is None or pending[1].done():
            return
        request, done = pending
        try:
            if request.add(event):
                done.set_result(None)
        except PositionsRefused as exc:
            done.set_exception(exc)

    def _on_quote(self, q: Quote) -> None:
        # A Quote is the whole top of book (the adapter applies incremental updates).
        self.quotes[q.symbol] = q
        self.md_seen[q.symbol] = time.monotonic()
        self.metrics.md_updates.labels(q.symbol).inc()
        self._update_symbol_metrics(q.symbol)
        self._wake.set()

    def _on_execution(self, ex: Execution) -> None:
        outcome = self.tracker.on_execution(ex)
        order = outcome.order
        if outcome.duplicate:
            self.log.event("fill_duplicate", exec_id=ex.exec_id, cl_ord_id=ex.cl_ord_id)
            return
        if outcome.fill is not None:
            fill = outcome.fill
            assert self.store is not None
            pos = self.tracker.position(fill.symbol)
            self.store.record_fill(fill, pos)
            self.metrics.fills.labels(fill.symbol, fill.side.name).inc()
            self.metrics.filled_qty.labels(fill.symbol, fill.side.name).inc(float(fill.qty))
            self.log.event(
                "fill",
                exec_id=fill.exec_id,
                cl_ord_id=fill.cl_ord_id,
                order_id=fill.order_id,
                symbol=fill.symbol,
                side=fill.side.name,
                qty=str(fill.qty),
                px=str(fill.px),
                position=str(pos.qty),
            )
        if order is not None:
            sent = self._sent_ns.pop(order.cl_ord_id, None) if outcome.acked else None
            if sent is not None:
                self.metrics.ack_latency.observe((time.monotonic_ns() - sent) / 1e9)
            if outcome.acked and not outcome.rejected:
                self.log.event(
                    "ack", cl_ord_id=order.cl_ord_id, order_id=order.order_id, status=order.status
                )
            if outcome.rejected:
                self.metrics.rejects.labels("order").inc()
                self.log.event(
                    "reject",
                    kind="order",
                    cl_ord_id=order.cl_ord_id,
                    symbol=order.symbol,
                    text=ex.text,
                )
                if order.purpose == "quote":
                    self._back_off(order.symbol, order.side, ex.text)
            elif outcome.acked and order.purpose == "quote":
                self._backoff.pop((order.symbol, order.side), None)
            elif ex.exec_type == "4":
                self.log.event("canceled", cl_ord_id=order.cl_ord_id, symbol=order.symbol)
            if outcome.done:
                self._stale.discard(order.cl_ord_id)
            assert self.store is not None
            self.store.save_order(order)
            self._update_symbol_metrics(order.symbol)
        elif outcome.fill is None:
            self.log.event(
                "execution_unknown_order",
                cl_ord_id=ex.cl_ord_id,
                exec_type=ex.exec_type,
                ord_status=ex.ord_status,
            )
        if outcome.fill is not None:
            self._update_symbol_metrics(outcome.fill.symbol)
        self._wake.set()

    def _back_off(self, symbol: str, side: Side, why: str | None) -> None:
        """Do not re-quote a side whose quote was rejected for a while (doubling, max 30 s)."""
        _until, delay = self._backoff.get((symbol, side), (0.0, 0.0))
        delay = min(max(delay * 2, REJECT_BACKOFF_S), REJECT_BACKOFF_MAX_S)
        self._backoff[(symbol, side)] = (time.monotonic() + delay, delay)
        self.log.event("quote_backoff", symbol=symbol, side=side.name, delay_s=delay, text=why)

    def _backing_off(self, symbol: str, side: Side) -> bool:
        until, _delay = self._backoff.get((symbol, side), (0.0, 0.0))
        return time.monotonic() < until

    def _on_cancel_reject(self, rej: CancelReject) -> None:
        self.metrics.rejects.labels("cancel").inc()
        order = self.tracker.find(rej.orig_cl_ord_id) or self.tracker.find(rej.cl_ord_id)
        if order is not None and order.status is OrderStatus.PENDING_CANCEL:
            if order.order_id is None or order.cl_ord_id in self._stale:
                # The venue does not know it (never acked, or left from an earlier
                # run): it cannot trade, so stop counting it as working.
                order.status = OrderStatus.EXPIRED
                order.text = f"cancel rejected: {rej.reason}"
                self._stale.discard(order.cl_ord_id)
            else:
                self.tracker.on_cancel_reject(rej.cl_ord_id, rej.orig_cl_ord_id)
            assert self.store is not None
            self.store.save_order(order)
            self._update_symbol_metrics(order.symbol)
        self.log.event(
            "cancel_reject",
            cl_ord_id=rej.cl_ord_id,
            orig_cl_ord_id=rej.orig_cl_ord_id,
            reason=rej.reason,
            status=order.status if order else None,
        )
        self._wake.set()

    # ----------------------------------------------------------------- orders
    def trading_state(self) -> TradingState:
        """Return the host trading state now.

        HALTED when it cannot be read, and when the kill-switch agent this host
        requires (``agent_liveness.path``) has not beaten for ``max_age_s``.
        """
        if self.reader is None:
            return TradingState.HALTED
        if self.liveness is not None and not self.liveness.alive():
            return TradingState.HALTED
        return self.reader.current()

    def _observe_state(self) -> TradingState:
        state = self.trading_state()
        if state is not self._last_state:
            record = self.reader.record() if self.reader else None
            self.log.event(
                "trading_state_change",
                state=state.name,
                previous=self._last_state.name if self._last_state else None,
                generation=record.generation if record else None,
                who=record.who if record else None,
                reason=record.reason if record else None,
                error=record.error if record else None,
                agent=None if self.liveness is None else self._agent_health(),
            )
            self._last_state = state
            self.metrics.set_trading_state(state)
        return state

    def _agent_health(self) -> str:
        """``alive``, or why the agent counts as dead (for the log)."""
        assert self.liveness is not None
        if self.liveness.alive():
            return "alive"
        beat = self.liveness.beat()
        return f"not alive: {beat.error or 'stopped or silent'}"

    def gate(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        *,
        enforce_limit: bool = True,
        check_state: bool = True,
    ) -> Decision:
        """Check an order before it goes out: host trading state, then position limit.

        ``check_state=False`` is the ``runaway`` fault with ``ignore_trading_state``
        only (a code path that checks nothing, as Knight's did).
        """
        state = self.trading_state() if check_state else TradingState.ACTIVE
        pos = self.tracker.position(symbol).qty
        decision = check_order(
            state,
            pos,
            side,
            qty,
            working_buy=self.tracker.working_qty(symbol, Side.BUY),
            working_sell=self.tracker.working_qty(symbol, Side.SELL),
            max_position=self.cfg.limits.for_symbol(symbol) if enforce_limit else None,
        )
        if decision.allowed and enforce_limit and qty > self.cfg.limits.max_order_qty:
            decision = Decision(False, "MAX_ORDER_QTY")
        return decision

    async def place(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
        *,
        purpose: str = "quote",
        enforce_limit: bool = True,
        check_state: bool = True,
    ) -> OrderRecord | None:
        """Check and send one limit order; return it, or None when refused or not sent."""
        if self.cfg.fault_mode == "slow" and self.cfg.fault.delay_ms:
            await asyncio.sleep(self.cfg.fault.delay_ms / 1000)
        session = self.session
        if session is None or not self.logged_on:
            return None
        decision = self.gate(
            symbol, side, qty, enforce_limit=enforce_limit, check_state=check_state
        )
        if not decision.allowed:
            self.metrics.refusals.labels(decision.reason_code).inc()
            self.log.event(
                "state_refused",
                reason=decision.reason_code,
                trading_state=self.trading_state().name,
                symbol=symbol,
                side=side.name,
                qty=str(qty),
                position=str(self.tracker.position(symbol).qty),
                purpose=purpose,
            )
            return None
        order = OrderRecord(
            cl_ord_id=self.next_id(),
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            purpose=purpose,
            sent_at=utc_now_iso(),
        )
        self.tracker.add(order)
        assert self.store is not None
        self.store.save_order(order)
        self._sent_ns[order.cl_ord_id] = time.monotonic_ns()
        try:
            await session.send_order(
                NewOrder(
                    cl_ord_id=order.cl_ord_id,
                    symbol=symbol,
                    side=side,
                    qty=qty,
                    ord_type=OrdType.LIMIT,
                    price=price,
                    account=self.cfg.account,
                )
            )
        except Exception as exc:
            order.status = OrderStatus.REJECTED
            order.text = f"not sent: {exc}"
            self.store.save_order(order)
            self._sent_ns.pop(order.cl_ord_id, None)
            self.log.event("send_failed", cl_ord_id=order.cl_ord_id, error=str(exc))
            return None
        self.orders_sent += 1
        self.metrics.orders_sent.labels(symbol, side.name, purpose).inc()
        self.log.event(
            "order_sent",
            cl_ord_id=order.cl_ord_id,
            symbol=symbol,
            side=side.name,
            qty=str(qty),
            price=None if price is None else str(price),
            purpose=purpose,
            position=str(self.tracker.position(symbol).qty),
        )
        self._update_symbol_metrics(symbol)
        faults.after_order(self)
        return order

    async def cancel(self, order: OrderRecord, reason: str) -> bool:
        """Send a cancel for ``order`` (always allowed, whatever the trading state)."""
        session = self.session
        if session is None or not self.logged_on or not order.status.is_live:
            return False
        cancel_id = self.next_id("c")
        self.tracker.mark_cancel(order, cancel_id)
        assert self.store is not None
        self.store.save_order(order)
        try:
            await session.cancel_order(cancel_id, order.cl_ord_id, order.symbol, order.side)
        except Exception as exc:
            self.log.event("cancel_send_failed", cl_ord_id=order.cl_ord_id, error=str(exc))
            return False
        self.metrics.cancels_sent.labels(order.symbol).inc()
        self.log.event(
            "cancel_sent",
            cl_ord_id=cancel_id,
            orig_cl_ord_id=order.cl_ord_id,
            symbol=order.symbol,
            reason=reason,
        )
        return True

    async def cancel_all(self, reason: str, wait_s: float = 0.0) -> int:
        """Cancel every working order; wait up to ``wait_s`` for them to end; return those left."""
        for order in list(self.tracker.working()):
            if order.status is not OrderStatus.PENDING_CANCEL:
                await self.cancel(order, reason)
        deadline = time.monotonic() + wait_s
        resent = False
        while self.tracker.working() and time.monotonic() < deadline and self.logged_on:
            if not resent and time.monotonic() > deadline - wait_s / 2:
                resent = True  # once, for cancels lost or answered by a cancel reject
                for order in list(self.tracker.working()):
                    if order.status is not OrderStatus.PENDING_CANCEL or order.order_id is None:
                        continue
                    await self.cancel(order, reason + "_retry")
            await asyncio.sleep(0.05)
        return len(self.tracker.working())

    # ----------------------------------------------------------------- quoting
    def quote_params(self, symbol: str) -> quoting.QuoteParams:
        """Quoting parameters of ``symbol``."""
        q = self.cfg.quoting
        return quoting.QuoteParams(
            q.spread_bps,
            q.size,
            q.requote_bps,
            q.tick_for(symbol),
            self.cfg.limits.for_symbol(symbol),
        )

    async def _quote_loop(self) -> None:
        interval = self.cfg.quoting.interval_s
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.quote_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.event("quote_pass_error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(interval)

    async def quote_pass(self) -> None:
        """Bring every symbol's quotes to their targets (active mode only)."""
        state = self._observe_state()
        await self._expire_unacked()
        if self.mode != ACTIVE or not self.logged_on or not self._positions_settled:
            return
        if not faults.quotes_normally(self):
            return
        for symbol in self.cfg.symbols:
            mid = quoting.mid_price(self.quotes.get(symbol))
            actions = quoting.plan(
                symbol,
                mid,
                self.tracker.position(symbol).qty,
                self.tracker.working(symbol),
                self.quote_params(symbol),
                state,
            )
            for action in actions:
                if isinstance(action, quoting.Cancel):
                    order = self.tracker.orders.get(action.cl_ord_id)
                    if order is not None:
                        await self.cancel(order, action.reason)
                elif not self._backing_off(action.symbol, action.side):
                    await self.place(action.symbol, action.side, action.qty, action.price)

    async def _expire_unacked(self) -> None:
        """Cancel orders that got no answer at all (a session Reject leaves them pending)."""
        now = time.monotonic_ns()
        for cl_ord_id, sent in list(self._sent_ns.items()):
            if (now - sent) / 1e9 < ACK_TIMEOUT_S:
                continue
            self._sent_ns.pop(cl_ord_id, None)
            order = self.tracker.orders.get(cl_ord_id)
            if order is not None and order.status is OrderStatus.PENDING_NEW:
                self.log.event("ack_timeout", cl_ord_id=cl_ord_id)
                await self.cancel(order, "ack_timeout")

    async def _heartbeat_loop(self) -> None:
        period = 0.5
        while True:
            start = time.monotonic()
            await asyncio.sleep(period)
            self._loop_lag_s = max(time.monotonic() - start - period, 0.0)
            self._observe_state()
            self.metrics.ready.set(1 if self.readiness()[0] else 0)

    async def _agent_beat_loop(self) -> None:
        """The dead man's switch: a heartbeat to the kill-switch agent every interval.

        Sent from this process's event loop, so a hung or frozen strategy stops
        beating and the agent's HEARTBEAT_LOST breaker trips.
        """
        socket_path = self.cfg.agent_heartbeat_socket
        assert socket_path is not None
        failing = False
        while True:
            answer = await asyncio.to_thread(
                send_heartbeat, socket_path, self.cfg.instance, f"refapp:{self.cfg.instance}"
            )
            if answer.ok == failing:  # log changes only, not every beat
                failing = not answer.ok
                self.log.event("agent_heartbeat", ok=answer.ok, state=answer.state,
                               error=answer.error)  # fmt: skip
            await asyncio.sleep(self.cfg.agent_heartbeat_interval_s)

    # ----------------------------------------------------------------- mode
    async def set_mode(self, mode: str, who: str) -> dict[str, Any]:
        """Switch between active and standby; standby cancels the working orders."""
        previous = self.mode
        if previous == STOPPING:
            return {"mode": previous, "changed": False, "error": "stopping"}
        if mode == previous:
            return {"mode": mode, "changed": False}
        self.mode = mode
        self.metrics.set_mode(mode)
        self._active_since = time.monotonic() if mode == ACTIVE else None
        self.log.event("mode_change", mode=mode, previous=previous, who=who)
        left = 0
        if mode == STANDBY:
            left = await self.cancel_all("standby", wait_s=min(self.cfg.shutdown_timeout_s, 5.0))
        self._wake.set()
        return {"mode": mode, "previous": previous, "changed": True, "working_orders_left": left}

    # ----------------------------------------------------------------- views
    def md_flowing(self) -> dict[str, bool]:
        """Per symbol: a quote was received within ``marketdata_stale_s``."""
        now = time.monotonic()
        return {
            s: s in self.md_seen and now - self.md_seen[s] <= self.cfg.marketdata_stale_s
            for s in self.cfg.symbols
        }

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        """Whether the instance is ready (to trade, or to be activated), and why."""
        checks = {
            "state_loaded": self.state_loaded,
            "session_logged_on": self.logged_on,
            "marketdata_flowing": all(self.md_flowing().values()),
            "not_stopping": self.mode != STOPPING,
        }
        return all(checks.values()), checks

    def _update_symbol_metrics(self, symbol: str) -> None:
        pos = self.tracker.position(symbol)
        mark = quoting.mid_price(self.quotes.get(symbol))
        m = self.metrics
        m.position.labels(symbol).set(float(pos.qty))
        m.realized_pnl.labels(symbol).set(float(pos.realized_pnl))
        m.unrealized_pnl.labels(symbol).set(float(pos.unrealized(mark)))
        for side in Side:
            m.working_orders.labels(symbol, side.name).set(len(self.tracker.working(symbol, side)))

    def status(self) -> dict[str, Any]:
        """Return the ``/status`` document."""
        ready, checks = self.readiness()
        record = self.reader.record() if self.reader else None
        positions = {}
        for symbol in sorted(set(self.cfg.symbols) | set(self.tracker.positions)):
            pos = self.tracker.position(symbol)
            mark = quoting.mid_price(self.quotes.get(symbol))
            positions[symbol] = {
                **pos.as_dict(),
                "unrealized_pnl": str(pos.unrealized(mark)),
                "mark": None if mark is None else str(mark),
                "working_buy": str(self.tracker.working_qty(symbol, Side.BUY)),
                "working_sell": str(self.tracker.working_qty(symbol, Side.SELL)),
            }
        return {
            "instance": self.cfg.instance,
            "version": self.version,
            "release_id": self.release_id,
            "config_sha256": self.cfg.sha256,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "mode": self.mode,
            "standby": self.mode == STANDBY,
            "ready": ready,
            "checks": checks,
            "trading_state": record.as_dict() if record else None,
            "fault_mode": self.cfg.fault_mode,
            "session": {
                "logged_on": self.logged_on,
                "sender_comp_id": self.cfg.venue.sender_comp_id,
                "target_comp_id": self.cfg.venue.target_comp_id,
                "account": self.cfg.account,
            },
            "symbols": self.cfg.symbols,
            "positions": positions,
            "working_orders": [o.as_dict() for o in self.tracker.working()],
            "orders_sent": self.orders_sent,
            "fills": len(self.tracker.exec_ids),
            "db": self.store.dsn_redacted if self.store else None,
            "schema_version": self.store.schema_version() if self.store else None,
            "loop_lag_ms": round(self._loop_lag_s * 1000, 3),
        }

    # ----------------------------------------------------------------- http
    def _build_http(self) -> HttpServer:
        async def healthz(_request: Request) -> Response:
            return Response.json(
                {
                    "status": "ok",
                    "pid": os.getpid(),
                    "loop_lag_ms": round(self._loop_lag_s * 1000, 3),
                }
            )

        async def readyz(req: Request) -> Response:
            ready, checks = self.readiness()
            body: dict[str, Any] = {"ready": ready, "mode": self.mode, "checks": checks}
            if not ready:
                body["status"] = "not_ready"
                return Response.json(body, 503, **{"X-Refapp-Mode": self.mode})
            if self.mode == STANDBY:
                body["status"] = "ready_for_activation"
                code = 503 if req.query.get("mode") == ACTIVE else 200
                return Response.json(body, code, **{"X-Refapp-Mode": self.mode})
            body["status"] = "ready"
            return Response.json(body, 200, **{"X-Refapp-Mode": self.mode})

        async def metrics(_request: Request) -> Response:
            for sym in self.cfg.symbols:
                self._update_symbol_metrics(sym)
            self.metrics.ready.set(1 if self.readiness()[0] else 0)
            return Response(200, self.metrics.render(), self.metrics.content_type)

        async def status(_request: Request) -> Response:
            return Response.json(self.status())

        async def activate(req: Request) -> Response:
            if self.mode == STANDBY and req.query.get("force") not in ("1", "true"):
                ready, checks = self.readiness()
                if not ready:
                    body = {
                        "error": "not ready for activation",
                        "checks": checks,
                        "mode": self.mode,
                    }
                    return Response.json(body, 409)
            result = await self.set_mode(ACTIVE, who=f"http:{req.peer}")
            return Response.json(result, 409 if result.get("error") else 200)

        async def standby(req: Request) -> Response:
            result = await self.set_mode(STANDBY, who=f"http:{req.peer}")
            return Response.json(result, 409 if result.get("error") else 200)

        return HttpServer(
            {
                ("GET", "/healthz"): healthz,
                ("GET", "/readyz"): readyz,
                ("GET", "/metrics"): metrics,
                ("GET", "/status"): status,
                ("POST", "/activate"): activate,
                ("POST", "/standby"): standby,
            },
            control={"/activate", "/standby"},
        )


def run(cfg: RefAppConfig, *, standby: bool = False) -> int:
    """Run the refapp in a fresh event loop; return its exit status."""
    app = RefApp(cfg, standby=standby)
    return asyncio.run(app.run())
