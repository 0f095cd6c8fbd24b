"""FIX 4.4 broker adapter on asyncfix: :class:`FixSession` implements ``BrokerSession``.

One ``FixSession`` is one FIX initiator session (order entry, drop copy or
risk). The session layer is asyncfix's; sequence numbers and sent messages
are journaled in SQLite under ``SessionConfig.store_dir`` (one file per
SenderCompID/TargetCompID pair), so a restarted process continues the
session where it stopped, and gaps are closed by resend and gap fill.

Inbound messages become the event dataclasses of :mod:`tradeops.brokers.base`:
ExecutionReport (8) -> Execution, OrderCancelReject (9) -> CancelReject,
OrderMassCancelReport (r) -> MassCancelReport, PositionReport (AP) -> Position,
RequestForPositionsAck (AO) -> PositionsAck, MarketData snapshot/incremental
(W/X) -> Quote, Reject (3, handed over by the session layer, which never
answers it), BusinessMessageReject (j), MarketDataRequestReject (Y) and a
failed AO (after its PositionsAck) -> Reject, and
logon/logout/disconnect -> SessionStatus. Mass-status reports (ExecType=I) carry
MassStatusReqID (584), TotNumReports (911) and LastRptRequested (912) in
``Execution``.

``SessionConfig.extra`` keys (all optional, strings):

``reconnect_s``
    Seconds between reconnect attempts after the session drops; ``0`` (the
    default) means no automatic reconnect: call :meth:`FixSession.connect` again.
``resend_app_messages``
    ``true`` to answer the venue's ResendRequest by resending every application
    message it asks for. Default ``false``: messages sent on the current
    connection (after our Logon) are resent with PossDupFlag=Y, those of earlier
    connections are gap-filled, so that a stale order is never sent again after
    a reconnect (the venue may have skipped a message that arrived while it was
    itself waiting for a resend; asyncfix does not queue such messages).
``username`` / ``password``
    Sent in the Logon as Username(553) / Password(554).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.connection import ConnectionRole
from asyncfix.protocol.protocol_base import FIXProtocolBase

from tradeops.brokers.base import (
    BrokerEvent,
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
    SessionStatus,
    Side,
)
from tradeops.brokers.fixconn import TradeopsConnection, engine_logger, open_journal
from tradeops.brokers.fixproto import (
    TAG_AVG_PX,
    TAG_REALIZED_PNL,
    TAG_UNREALIZED_PNL,
    TradeopsFIX44,
    fix_utc_now,
    fmt_decimal,
)
from tradeops.log import EventLog

RawTap = Callable[[FIXMessage], Awaitable[None] | None]

_SEEN_EXEC_IDS = 50_000
# The tag that carries the reason code of each reject message, by MsgType.
_REJECT_REASON_TAGS = {"3": FTag.SessionRejectReason, "j": FTag.BusinessRejectReason}


def _dec(msg: Any, tag: Any, default: Decimal | None = Decimal(0)) -> Decimal | None:
    value = msg.get(tag, None)
    if value in (None, ""):
        return default
    return Decimal(str(value))


def _opt(msg: Any, tag: Any) -> str | None:
    value = msg.get(tag, None)
    return None if value in (None, "") else str(value)


def _int(msg: Any, tag: Any) -> int | None:
    value = _opt(msg, tag)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _flag(msg: Any, tag: Any) -> bool | None:
    value = _opt(msg, tag)
    return None if value is None else value == "Y"


class _Initiator(TradeopsConnection):
    """The asyncfix connection of a FixSession, in the INITIATOR role."""

    def __init__(self, owner: FixSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    async def on_connect(self) -> None:
        """Nothing: the owner sends the Logon."""

    async def on_message(self, msg: FIXMessage) -> None:
        """Hand application messages to the owner."""
        await self._owner._on_message(msg)

    async def on_session_reject(self, msg: FIXMessage) -> None:
        """A session Reject (35=3) of one of our messages: the owner makes it a ``Reject``."""
        await self._owner._on_message(msg)

    async def on_logon(self, is_healthy: bool) -> None:
        """Logon answered by the venue."""
        await self._owner._on_logon()

    async def on_disconnect(self) -> None:
        """Socket closed, for whatever reason."""
        await self._owner._on_disconnect()

    async def should_replay(self, historical_replay_msg: FIXMessage) -> bool:
        """Resend what this connection sent; earlier messages only when configured to."""
        if self._owner._resend_app_messages:
            return True
        try:
            seq = int(historical_replay_msg[FTag.MsgSeqNum])
        except Exception:
            return False
        return seq > self._owner._logon_seq


class FixSession:
    """A FIX 4.4 initiator session implementing :class:`tradeops.brokers.base.BrokerSession`.

    ``on_event`` receives every event (sync or async callable; it runs on the
    session's reader task, so it should not block). ``on_message``, if given,
    also receives every raw inbound application message (an asyncfix
    ``FIXMessage``) before conversion: for diagnostics and protocol tests.
    ``reset_on_logon`` sends every Logon with ResetSeqNumFlag=Y: both
    sequences restart at 1 and the journal is cleared (nothing stored while
    disconnected is resent).
    """

    def __init__(
        self,
        config: SessionConfig,
        on_event: EventCallback,
        *,
        log: EventLog | None = None,
        on_message: RawTap | None = None,
        protocol: FIXProtocolBase | None = None,
        reset_on_logon: bool = False,
    ) -> None:
        self.config = config
        self._reset_on_logon = reset_on_logon
        self._on_event = on_event
        self._raw_tap = on_message
        self._protocol = protocol or TradeopsFIX44()
        name = f"{config.sender_comp_id}-{config.target_comp_id}"
        self._log = log.bind(session=name, role=str(config.role)) if log else None
        self._engine_log = engine_logger(name, log)
        extra = config.extra or {}
        self._reconnect_s = float(extra.get("reconnect_s", "0") or 0)
        self._resend_app_messages = str(extra.get("resend_app_messages", "")).lower() in (
            "1",
            "true",
            "yes",
        )
        self._username = extra.get("username")
        self._password = extra.get("password")
        self._conn: _Initiator | None = None
        self._logged_on = False
        self._closing = False
        self._logon_waiter: asyncio.Future[None] | None = None
        self._logon_seq = 0
        self._reconnect_task: asyncio.Task[None] | None = None
        self._books: dict[str, dict[str, Decimal | None]] = {}
        self._seen_exec_ids: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------ properties
    @property
    def is_logged_on(self) -> bool:
        """True while the session is logged on."""
        return self._logged_on and self._conn is not None and self._conn.is_live

    @property
    def next_seq_out(self) -> int:
        """MsgSeqNum of the next message this session sends."""
        return self._connection().next_seq_out

    @property
    def next_seq_in(self) -> int:
        """MsgSeqNum this session expects next from the venue."""
        return self._connection().next_seq_in

    @property
    def last_disconnect_reason(self) -> str | None:
        """Text of the venue's last Logout, or why asyncfix dropped the session."""
        if self._conn is None:
            return None
        return self._conn.last_logout_text or self._conn.last_disconnect_reason

    @property
    def connection(self) -> TradeopsConnection:
        """The underlying asyncfix connection (for diagnostics and tests)."""
        return self._connection()

    def _connection(self) -> _Initiator:
        if self._conn is None:
            journal = open_journal(
                self.config.store_dir, self.config.sender_comp_id, self.config.target_comp_id
            )
            self._conn = _Initiator(
                self,
                protocol=self._protocol,
                sender_comp_id=self.config.sender_comp_id,
                target_comp_id=self.config.target_comp_id,
                journaler=journal,
                host=self.config.host,
                port=self.config.port,
                heartbeat_period=self.config.heartbeat_s,
                logger=self._engine_log,
            )
        return self._conn

    # ------------------------------------------------------------- lifecycle
    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the TCP connection, log on, and wait until the venue answers the Logon.

        Raises ``ConnectionError`` (refused, logon rejected) or ``TimeoutError``.
        """
        if self.is_logged_on:
            return
        self._closing = False
        conn = self._connection()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                try:
                    reader, writer = await asyncio.open_connection(
                        self.config.host, self.config.port
                    )
                except OSError as exc:
                    raise ConnectionError(
                        f"cannot connect to {self.config.host}:{self.config.port}: {exc}"
                    ) from exc
                self._logon_waiter = loop.create_future()
                conn.attach_socket(reader, writer, ConnectionRole.INITIATOR)
                logon = FIXMessage(FMsg.LOGON)
                logon[FTag.EncryptMethod] = "0"
                logon[FTag.HeartBtInt] = str(self.config.heartbeat_s)
                if self._username:
                    logon[FTag.Username] = self._username
                if self._password:
                    logon[FTag.Password] = self._password
                if self._reset_on_logon:
                    conn.reset_for_logon()
                    logon[FTag.ResetSeqNumFlag] = "Y"
                self._logon_seq = conn.next_seq_out
                await conn.send_msg(logon)
                await self._logon_waiter
        except BaseException:
            self._logon_waiter = None
            await conn.drop()
            raise
        self._logon_waiter = None

    async def close(self) -> None:
        """Log out (bounded wait for the venue's Logout), close the socket and the journal."""
        self._closing = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn = self._conn
        if conn is None:
            return
        try:
            await conn.logout(timeout_s=2.0)
        finally:
            await conn.stop_tasks()
            conn.close_journal()
            self._conn = None
            self._logged_on = False

    # -------------------------------------------------------------- requests
    async def send_raw(self, msg: FIXMessage) -> None:
        """Send any application message (header fields are filled by asyncfix)."""
        conn = self._conn
        if conn is None or not conn.is_live:
            raise ConnectionError(
                f"FIX session {self.config.sender_comp_id}->{self.config.target_comp_id}"
                " is not logged on"
            )
        await conn.send_msg(msg)

    def _account(self, account: str | None = None) -> str | None:
        return account or self.config.account

    async def send_order(self, order: NewOrder) -> None:
        """Send a NewOrderSingle (D)."""
        msg = FIXMessage(FMsg.NEWORDERSINGLE)
        msg[FTag.ClOrdID] = order.cl_ord_id
        account = self._account(order.account)
        if account:
            msg[FTag.Account] = account
        msg[FTag.Symbol] = order.symbol
        msg[FTag.Side] = str(order.side)
        msg[FTag.TransactTime] = fix_utc_now()
        msg[FTag.OrderQty] = fmt_decimal(order.qty)
        msg[FTag.OrdType] = str(order.ord_type)
        if order.price is not None and order.ord_type == OrdType.LIMIT:
            msg[FTag.Price] = fmt_decimal(order.price)
        msg[FTag.TimeInForce] = "0"
        await self.send_raw(msg)

    async def cancel_order(
        self, cl_ord_id: str, orig_cl_ord_id: str, symbol: str, side: Side
    ) -> None:
        """Send an OrderCancelRequest (F)."""
        msg = FIXMessage(FMsg.ORDERCANCELREQUEST)
        msg[FTag.OrigClOrdID] = orig_cl_ord_id
        msg[FTag.ClOrdID] = cl_ord_id
        account = self._account()
        if account:
            msg[FTag.Account] = account
        msg[FTag.Symbol] = symbol
        msg[FTag.Side] = str(side)
        msg[FTag.TransactTime] = fix_utc_now()
        await self.send_raw(msg)

    async def replace_order(
        self,
        cl_ord_id: str,
        orig_cl_ord_id: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
    ) -> None:
        """Send an OrderCancelReplaceRequest (G); no price means a market order."""
        msg = FIXMessage(FMsg.ORDERCANCELREPLACEREQUEST)
        msg[FTag.OrigClOrdID] = orig_cl_ord_id
        msg[FTag.ClOrdID] = cl_ord_id
        account = self._account()
        if account:
            msg[FTag.Account] = account
        msg[FTag.Symbol] = symbol
        msg[FTag.Side] = str(side)
        msg[FTag.TransactTime] = fix_utc_now()
        msg[FTag.OrderQty] = fmt_decimal(qty)
        msg[FTag.OrdType] = str(OrdType.LIMIT if price is not None else OrdType.MARKET)
        if price is not None:
            msg[FTag.Price] = fmt_decimal(price)
        await self.send_raw(msg)

    async def mass_cancel(self, cl_ord_id: str, symbol: str | None = None) -> None:
        """Send an OrderMassCancelRequest (q): type 1 (one symbol) or 7 (all orders)."""
        msg = FIXMessage(FMsg.ORDERMASSCANCELREQUEST)
        msg[FTag.ClOrdID] = cl_ord_id
        msg[FTag.MassCancelRequestType] = "1" if symbol else "7"
        if symbol:
            msg[FTag.Symbol] = symbol
        msg[FTag.TransactTime] = fix_utc_now()
        await self.send_raw(msg)

    async def mass_status(self, mass_status_req_id: str) -> None:
        """Send an OrderMassStatusRequest (AF) for all orders (answered by ExecType=I)."""
        msg = FIXMessage(FMsg.ORDERMASSSTATUSREQUEST)
        msg[FTag.MassStatusReqID] = mass_status_req_id
        msg[FTag.MassStatusReqType] = "7"
        account = self._account()
        if account:
            msg[FTag.Account] = account
        await self.send_raw(msg)

    async def request_positions(self, pos_req_id: str) -> None:
        """Send a RequestForPositions (AN); the venue answers AO then one AP per symbol."""
        msg = FIXMessage(FMsg.REQUESTFORPOSITIONS)
        msg[FTag.PosReqID] = pos_req_id
        msg[FTag.PosReqType] = "0"
        account = self._account()
        if account:
            msg[FTag.Account] = account
        msg[FTag.AccountType] = "1"
        msg[FTag.ClearingBusinessDate] = fix_utc_now()[:8]
        msg[FTag.TransactTime] = fix_utc_now()
        await self.send_raw(msg)

    async def subscribe_market_data(self, md_req_id: str, symbols: list[str]) -> None:
        """Send a MarketDataRequest (V): snapshot plus incremental updates, top of book."""
        msg = FIXMessage(FMsg.MARKETDATAREQUEST)
        msg[FTag.MDReqID] = md_req_id
        msg[FTag.SubscriptionRequestType] = "1"
        msg[FTag.MarketDepth] = "1"
        msg[FTag.MDUpdateType] = "1"
        msg.set_group(FTag.NoMDEntryTypes, [{FTag.MDEntryType: t} for t in ("0", "1", "2")])
        msg.set_group(FTag.NoRelatedSym, [{FTag.Symbol: s} for s in symbols])
        await self.send_raw(msg)

    # ---------------------------------------------------------------- events
    async def _emit(self, event: BrokerEvent) -> None:
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._log:
                self._log.event("event_callback_failed", error=f"{type(exc).__name__}: {exc}")

    async def _on_logon(self) -> None:
        self._logged_on = True
        conn = self._connection()
        if self._log:
            self._log.event("logged_on", seq_in=conn.next_seq_in, seq_out=conn.next_seq_out)
        waiter = self._logon_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        await self._emit(
            SessionStatus("logged_on", f"seq_in={conn.next_seq_in} seq_out={conn.next_seq_out}")
        )

    async def _on_disconnect(self) -> None:
        was_logged_on = self._logged_on
        self._logged_on = False
        conn = self._conn
        logout_text = conn.last_logout_text if conn else None
        reason = (conn.last_disconnect_reason if conn else None) or ""
        waiter = self._logon_waiter
        if waiter is not None and not waiter.done():
            detail = logout_text or reason or "connection closed before the Logon was answered"
            waiter.set_exception(ConnectionError(f"logon failed: {detail}"))
        if logout_text is not None:
            status = SessionStatus("logged_out", logout_text)
        else:
            status = SessionStatus("disconnected", reason)
        if self._log:
            self._log.event(
                "session_down",
                state=status.state,
                detail=status.detail,
                was_logged_on=was_logged_on,
            )
        await self._emit(status)
        if not self._closing and self._reconnect_s > 0 and self._reconnect_task is None:
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        try:
            while not self._closing and not self.is_logged_on:
                await asyncio.sleep(self._reconnect_s)
                if self._closing:
                    return
                try:
                    await self.connect(timeout_s=max(self._reconnect_s, 5.0))
                except (ConnectionError, TimeoutError, OSError) as exc:
                    if self._log:
                        self._log.event("reconnect_failed", error=str(exc))
        finally:
            if self._reconnect_task is asyncio.current_task():
                self._reconnect_task = None

    async def _on_message(self, msg: FIXMessage) -> None:
        if self._raw_tap is not None:
            try:
                result = self._raw_tap(msg)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                if self._log:
                    self._log.event("raw_tap_failed", error=f"{type(exc).__name__}: {exc}")
        try:
            events = self._convert(msg)
        except Exception as exc:
            if self._log:
                self._log.event(
                    "bad_inbound_message",
                    msg_type=str(msg.msg_type),
                    error=f"{type(exc).__name__}: {exc}",
                )
            return
        for event in events:
            await self._emit(event)

    def _convert(self, msg: FIXMessage) -> list[BrokerEvent]:
        mt = str(msg.msg_type)
        if mt == "8":
            ex = self._execution(msg)
            return [ex] if ex is not None else []
        if mt == "9":
            order_id = _opt(msg, FTag.OrderID)
            return [
                CancelReject(
                    cl_ord_id=str(msg.get(FTag.ClOrdID, "")),
                    orig_cl_ord_id=str(msg.get(FTag.OrigClOrdID, "")),
                    order_id=None if order_id in (None, "NONE") else order_id,
                    reason=_opt(msg, FTag.Text) or f"CxlRejReason={msg.get(FTag.CxlRejReason, '')}",
                )
            ]
        if mt == "r":
            return [
                MassCancelReport(
                    cl_ord_id=str(msg.get(FTag.ClOrdID, "")),
                    request_type=str(msg.get(FTag.MassCancelRequestType, "")),
                    response=str(msg.get(FTag.MassCancelResponse, "")),
                    total_affected=int(msg.get(FTag.TotalAffectedOrders, "0") or 0),
                    reject_reason=_opt(msg, FTag.MassCancelRejectReason),
                )
            ]
        if mt == "AP":
            return [self._position(msg)]
        if mt == "AO":
            result = str(msg.get(FTag.PosReqResult, "0"))
            ack = PositionsAck(
                pos_req_id=str(msg.get(FTag.PosReqID, "")),
                total=_int(msg, FTag.TotalNumPosReports) or 0,
                status=str(msg.get(FTag.PosReqStatus, "0" if result == "0" else "2")),
                result=result,
                account=_opt(msg, FTag.Account),
                text=_opt(msg, FTag.Text),
            )
            if result == "0":
                return [ack]
            return [
                ack,
                Reject(
                    ref_msg_type="AN",
                    reason=_opt(msg, FTag.Text) or f"PosReqResult={result}",
                ),
            ]
        if mt in ("W", "X"):
            return self._quotes(msg, snapshot=mt == "W")
        if mt in _REJECT_REASON_TAGS:  # session Reject (3), BusinessMessageReject (j)
            reason_tag = _REJECT_REASON_TAGS[mt]
            return [
                Reject(
                    ref_msg_type=_opt(msg, FTag.RefMsgType),
                    reason=_opt(msg, FTag.Text) or f"{reason_tag.name}={msg.get(reason_tag, '')}",
                    ref_seq_num=int(msg.get(FTag.RefSeqNum, "0") or 0) or None,
                )
            ]
        if mt == "Y":
            return [
                Reject(
                    ref_msg_type="V",
                    reason=_opt(msg, FTag.Text)
                    or f"MDReqRejReason={msg.get(FTag.MDReqRejReason, '')}",
                )
            ]
        return []

    def _execution(self, msg: FIXMessage) -> Execution | None:
        exec_id = str(msg.get(FTag.ExecID, ""))
        if exec_id:
            if msg.get(FTag.PossDupFlag, "N") == "Y" and exec_id in self._seen_exec_ids:
                return None
            self._seen_exec_ids[exec_id] = None
            while len(self._seen_exec_ids) > _SEEN_EXEC_IDS:
                self._seen_exec_ids.popitem(last=False)
        order_qty = _dec(msg, FTag.OrderQty)
        cum_qty = _dec(msg, FTag.CumQty)
        assert order_qty is not None
        assert cum_qty is not None
        leaves = _dec(msg, FTag.LeavesQty, None)
        return Execution(
            exec_id=exec_id,
            order_id=str(msg.get(FTag.OrderID, "")),
            cl_ord_id=str(msg.get(FTag.ClOrdID, "")),
            orig_cl_ord_id=_opt(msg, FTag.OrigClOrdID),
            symbol=str(msg.get(FTag.Symbol, "")),
            side=Side(str(msg.get(FTag.Side))),
            exec_type=str(msg.get(FTag.ExecType, "")),
            ord_status=str(msg.get(FTag.OrdStatus, "")),
            order_qty=order_qty,
            last_qty=_dec(msg, FTag.LastQty) or Decimal(0),
            last_px=_dec(msg, FTag.LastPx) or Decimal(0),
            cum_qty=cum_qty,
            leaves_qty=leaves if leaves is not None else order_qty - cum_qty,
            price=_dec(msg, FTag.Price, None),
            account=_opt(msg, FTag.Account),
            text=_opt(msg, FTag.Text),
            transact_time=_opt(msg, FTag.TransactTime),
            mass_status_req_id=_opt(msg, FTag.MassStatusReqID),
            tot_num_reports=_int(msg, FTag.TotNumReports),
            last_rpt_requested=_flag(msg, FTag.LastRptRequested),
        )

    def _position(self, msg: FIXMessage) -> Position:
        qty = Decimal(0)
        if msg.is_group(FTag.NoPositions):
            for grp in msg.get_group_list(FTag.NoPositions):
                qty += _dec(grp, FTag.LongQty) or Decimal(0)
                qty -= _dec(grp, FTag.ShortQty) or Decimal(0)
        return Position(
            account=str(msg.get(FTag.Account, "")),
            symbol=str(msg.get(FTag.Symbol, "")),
            qty=qty,
            avg_px=_dec(msg, TAG_AVG_PX, None),
            realized_pnl=_dec(msg, TAG_REALIZED_PNL, None),
            unrealized_pnl=_dec(msg, TAG_UNREALIZED_PNL, None),
            pos_req_id=_opt(msg, FTag.PosReqID),
            settl_px=_dec(msg, FTag.SettlPrice, None),
        )

    def _quotes(self, msg: FIXMessage, snapshot: bool) -> list[BrokerEvent]:
        ts = _opt(msg, FTag.SendingTime)
        top_symbol = _opt(msg, FTag.Symbol)
        changed: list[str] = []
        if snapshot and top_symbol:
            self._books[top_symbol] = {"bid": None, "ask": None, "last": None}
            changed.append(top_symbol)
        if msg.is_group(FTag.NoMDEntries):
            for entry in msg.get_group_list(FTag.NoMDEntries):
                symbol = _opt(entry, FTag.Symbol) or top_symbol
                if symbol is None:
                    continue
                book = self._books.setdefault(symbol, {"bid": None, "ask": None, "last": None})
                key = {"0": "bid", "1": "ask", "2": "last"}.get(
                    str(entry.get(FTag.MDEntryType, ""))
                )
                if key is None:
                    continue
                action = str(entry.get(FTag.MDUpdateAction, "0"))
                book[key] = None if action == "2" else _dec(entry, FTag.MDEntryPx, None)
                if symbol not in changed:
                    changed.append(symbol)
        return [
            Quote(
                symbol=s,
                bid=self._books[s]["bid"],
                ask=self._books[s]["ask"],
                last=self._books[s]["last"],
                ts=ts,
            )
            for s in changed
        ]
