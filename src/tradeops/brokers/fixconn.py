"""asyncfix connection with the fixes that both FIX ends of tradeops need.

The session layer (logon, heartbeat and test request, sequence numbers,
resend requests and gap fills, the SQLite journal) is asyncfix 1.0.1's
:class:`AsyncFIXConnection`. :class:`TradeopsConnection` only adds transport
plumbing (attaching a socket, one reader task per socket) and works around
these asyncfix 1.0.1 bugs, each marked ``asyncfix-fix`` below:

1. ``_process_resend`` moves ``next_num_out`` back while it replays, so any
   other task sending meanwhile reuses sequence numbers; it crashes
   (DuplicatedTagError) on a message that was already resent once (43=Y);
   it does not gap-fill holes in the journal. It is rewritten here, under a
   send lock that every sender takes.
2. A received Logout is neither answered (FIX requires a Logout reply) nor
   counted, so every logout left a one-message gap for the next logon.
3. After a SequenceReset the journal stores the reset's own MsgSeqNum as the
   last inbound number instead of NewSeqNo-1.
4. ``disconnect`` raises on a socket that is already gone and runs twice when
   the reader sees EOF while we close; a bad MsgSeqNum escapes the message
   handler. Both are guarded.
5. The reader task polls every second for a new socket and, being one task
   for the life of the connection, a stale read could tear down the next
   socket; here every socket gets a fresh reader task.
6. ``send_msg`` journals a message after writing it, so a process killed in
   between restarts with a MsgSeqNum the peer has already received (the peer
   then logs out with "MsgSeqNum too low"); here it is journaled first.

It also lets a message be journaled without being sent while the peer is
disconnected (store and forward): the peer's next logon then sees a higher
MsgSeqNum and asks for a resend, as with a real venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.connection import AsyncFIXConnection, ConnectionRole, ConnectionState
from asyncfix.errors import FIXConnectionError
from asyncfix.journaler import Journaler
from asyncfix.message import MessageDirection
from asyncfix.protocol.protocol_base import FIXProtocolBase

from tradeops.log import EventLog

# States in which the session is logged on and application messages may flow.
LIVE_STATES = frozenset(
    {
        ConnectionState.ACTIVE,
        ConnectionState.RESENDREQ_HANDLING,
        ConnectionState.RECV_SEQNUM_TOO_HIGH,
        ConnectionState.RESENDREQ_AWAITING,
        ConnectionState.NO_MSG_IN_INTERVAL,
        ConnectionState.AWAIT_PROC_TEST_REQ,
    }
)

SESSION_MSG_TYPES = frozenset(
    {
        str(FMsg.LOGON),
        str(FMsg.LOGOUT),
        str(FMsg.RESENDREQUEST),
        str(FMsg.HEARTBEAT),
        str(FMsg.TESTREQUEST),
        str(FMsg.SEQUENCERESET),
    }
)

_HEADER_TAGS = frozenset(
    {
        str(FTag.BeginString),
        str(FTag.BodyLength),
        str(FTag.MsgType),
        str(FTag.SenderCompID),
        str(FTag.TargetCompID),
        str(FTag.MsgSeqNum),
        str(FTag.SendingTime),
        str(FTag.PossDupFlag),
        str(FTag.OrigSendingTime),
        str(FTag.CheckSum),
    }
)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def journal_path(store_dir: str, sender_comp_id: str, target_comp_id: str) -> str:
    """Where the journal of one session lives inside ``store_dir``."""
    name = f"{_SAFE_NAME.sub('_', sender_comp_id)}-{_SAFE_NAME.sub('_', target_comp_id)}"
    return os.path.join(store_dir, f"{name}.journal.sqlite")


def open_journal(store_dir: str | None, sender_comp_id: str, target_comp_id: str) -> Journaler:
    """Open the asyncfix SQLite journal of a session (in memory when ``store_dir`` is None).

    WAL with ``synchronous=NORMAL``: every message is committed before the
    next one is processed, so a crash or a kill of the process loses nothing;
    only a power cut may lose the last commits.
    """
    if store_dir is None:
        return Journaler(None)
    os.makedirs(store_dir, exist_ok=True)
    journaler = Journaler(journal_path(store_dir, sender_comp_id, target_comp_id))
    journaler.conn.execute("PRAGMA journal_mode=WAL")
    journaler.conn.execute("PRAGMA synchronous=NORMAL")
    return journaler


class EventLogHandler(logging.Handler):
    """Forward asyncfix's ``logging`` records to an :class:`EventLog`."""

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as a ``fix_engine`` event."""
        try:
            fields: dict[str, Any] = {"level": record.levelname.lower(), "msg": record.getMessage()}
            if record.exc_info:
                fields["exc"] = logging.Formatter().formatException(record.exc_info)
            self._log.event("fix_engine", **fields)
        except Exception:
            self.handleError(record)


def engine_logger(name: str, log: EventLog | None, level: int = logging.INFO) -> logging.Logger:
    """Return the logger handed to asyncfix for session ``name``."""
    logger = logging.getLogger(f"tradeops.fix.{name}")
    if log is not None:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(EventLogHandler(log))
        logger.propagate = False
        logger.setLevel(level)
    else:
        logger.setLevel(logging.WARNING)
    return logger


class TradeopsConnection(AsyncFIXConnection):
    """An asyncfix connection with the fixes listed in the module docstring."""

    def __init__(
        self,
        protocol: FIXProtocolBase,
        sender_comp_id: str,
        target_comp_id: str,
        journaler: Journaler,
        host: str,
        port: int,
        heartbeat_period: int = 30,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            protocol=protocol,
            sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id,
            journaler=journaler,
            host=host,
            port=port,
            heartbeat_period=heartbeat_period,
            logger=logger,
        )
        self._send_lock = asyncio.Lock()
        self._send_owner: asyncio.Task[Any] | None = None
        self._logout_sent = False
        self._disconnecting = False
        self.last_logout_text: str | None = None
        self.last_disconnect_reason: str | None = None
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        # Session-layer counters, for diagnostics and tests.
        self.stats: dict[str, int] = {
            "resend_requests_sent": 0,
            "resend_requests_received": 0,
            "gap_fills_sent": 0,
            "gap_fills_received": 0,
            "possdup_sent": 0,
            "possdup_received": 0,
        }

    # ------------------------------------------------------------------ state
    @property
    def sender_comp_id(self) -> str:
        """Our CompID."""
        return str(self._session.sender_comp_id)

    @property
    def target_comp_id(self) -> str:
        """The peer's CompID."""
        return str(self._session.target_comp_id)

    @property
    def next_seq_out(self) -> int:
        """MsgSeqNum of the next message we send."""
        return int(self._session.next_num_out)

    @property
    def next_seq_in(self) -> int:
        """MsgSeqNum we expect next from the peer."""
        return int(self._session.next_num_in)

    @property
    def is_connected(self) -> bool:
        """True while a socket is attached."""
        return self._socket_writer is not None

    @property
    def is_live(self) -> bool:
        """True while logged on (application messages may be sent)."""
        return self._socket_writer is not None and self._connection_state in LIVE_STATES

    # -------------------------------------------------------------- transport
    def attach_socket(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: ConnectionRole,
    ) -> None:
        """Take over a freshly connected socket (before the Logon exchange)."""
        self._socket_reader = reader
        self._socket_writer = writer
        self._connection_role = role
        # asyncfix's own client and server set the state directly, without a callback.
        self._connection_state = ConnectionState.NETWORK_CONN_ESTABLISHED
        self._msg_buffer = b""
        self._test_req_id = None
        self._message_last_time = 0.0
        self._max_seq_num_resend = 0
        self._logout_sent = False
        self._disconnecting = False
        self.last_logout_text = None
        self.last_disconnect_reason = None
        self.disconnected.clear()
        # asyncfix-fix 5: a fresh reader task per socket.
        old: asyncio.Task[Any] | None = getattr(self, "_aio_task_socket_read", None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        self._aio_task_socket_read = asyncio.create_task(self.socket_read_task())
        beat: asyncio.Task[Any] | None = getattr(self, "_aio_task_heartbeat", None)
        if beat is None or beat.done():
            self._aio_task_heartbeat = asyncio.create_task(self.heartbeat_timer_task())

    async def connect(self) -> None:
        """Not used: the owner attaches sockets (asyncfix's auto-reconnect calls this)."""

    async def stop_tasks(self) -> None:
        """Cancel the reader and heartbeat tasks."""
        tasks = [t for t in (self._aio_task_socket_read, self._aio_task_heartbeat) if t]
        self._aio_task_socket_read = None  # type: ignore[assignment]
        self._aio_task_heartbeat = None  # type: ignore[assignment]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def close_journal(self) -> None:
        """Close the journal's database connection."""
        with contextlib.suppress(Exception):
            self._journaler.conn.commit()
            self._journaler.conn.close()

    # ---------------------------------------------------------------- sending
    @contextlib.asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """Hold the send lock (re-entrant for the task holding it)."""
        task = asyncio.current_task()
        if self._send_owner is task:
            yield
            return
        async with self._send_lock:
            self._send_owner = task
            try:
                yield
            finally:
                self._send_owner = None

    async def send_msg(self, msg: FIXMessage) -> None:
        """Send ``msg``, serialised with every other sender (asyncfix-fix 6: journal first).

        The state checks are asyncfix's. Raises FIXConnectionError before the
        message is journaled, OSError/ConnectionError if the write fails after.
        """
        async with self.sending():
            state = self._connection_state
            if state < ConnectionState.NETWORK_CONN_ESTABLISHED:
                raise FIXConnectionError(
                    f"Connection must be established before sending, state {state.name}"
                )
            if state == ConnectionState.NETWORK_CONN_ESTABLISHED:
                if msg.msg_type not in (FMsg.LOGON, FMsg.LOGOUT):
                    raise FIXConnectionError("the first message must be Logon or Logout")
                await self._state_set(ConnectionState.LOGON_INITIAL_SENT)
                self._connection_role = ConnectionRole.INITIATOR
            elif (
                self._connection_role == ConnectionRole.INITIATOR
                and state == ConnectionState.LOGON_INITIAL_SENT
                and msg.msg_type != FMsg.LOGOUT
            ):
                raise FIXConnectionError("waiting for the Logon response")
            if msg.msg_type == FMsg.TESTREQUEST and self._test_req_id is None:
                raise FIXConnectionError("send TestRequest with send_test_req()")
            writer = self._socket_writer
            if writer is None:
                raise FIXConnectionError("socket closed")
            if msg.msg_type == FMsg.LOGOUT:
                self._logout_sent = True
            encoded = self._codec.encode(msg, self._session).encode("utf-8")
            self._journaler.persist_msg(encoded, self._session, MessageDirection.OUTBOUND)
            writer.write(encoded)
            await writer.drain()

    def store_msg(self, msg: FIXMessage) -> int:
        """Journal ``msg`` under the next MsgSeqNum without sending it; return that number."""
        encoded = self._codec.encode(msg, self._session).encode("utf-8")
        self._journaler.persist_msg(encoded, self._session, MessageDirection.OUTBOUND)
        return int(self._journaler.find_seq_no(encoded))

    async def send_or_store(self, msg: FIXMessage, store_if_down: bool = True) -> bool:
        """Send ``msg`` if logged on, else (when ``store_if_down``) journal it for a resend.

        Returns True when the message went out on the socket.
        """
        async with self.sending():
            if self.is_live:
                try:
                    await self.send_msg(msg)
                    return True
                except FIXConnectionError as exc:  # not journaled
                    self.log.info(f"not sent ({exc})")
                except Exception as exc:  # journaled, the write failed: a resend will carry it
                    self.log.warning(f"send failed ({type(exc).__name__}: {exc})")
                    return False
            if store_if_down:
                self.store_msg(msg)
            return False

    async def logout(self, text: str = "", timeout_s: float = 2.0) -> None:
        """Send Logout, wait (bounded) for the peer's Logout, then close the socket."""
        if self.is_live:
            msg = FIXMessage(FMsg.LOGOUT)
            if text:
                msg[FTag.Text] = text
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_msg(msg), timeout_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.disconnected.wait(), timeout_s)
        await self.disconnect(ConnectionState.DISCONNECTED_WCONN_TODAY)

    async def drop(self, logout_text: str | None = None) -> None:
        """Close the socket now, with a Logout carrying ``logout_text`` if given."""
        await self.disconnect(ConnectionState.DISCONNECTED_BROKEN_CONN, logout_message=logout_text)

    # --------------------------------------------------------- asyncfix fixes
    async def disconnect(
        self,
        disconn_state: ConnectionState,
        logout_message: str | None = None,
    ) -> None:
        """Close the session (asyncfix-fix 4: same steps, but idempotent and never raising)."""
        if self._connection_state <= ConnectionState.DISCONNECTED_BROKEN_CONN:
            return
        if self._disconnecting:
            return
        self._disconnecting = True
        try:
            self._test_req_id = None
            self._message_last_time = 0.0
            self._max_seq_num_resend = 0
            if logout_message is not None:
                if logout_message:
                    self.last_disconnect_reason = logout_message
                msg = FIXMessage(FMsg.LOGOUT)
                if logout_message:
                    msg[FTag.Text] = logout_message
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.send_msg(msg), 2.0)
            writer = self._socket_writer
            self._socket_writer = None  # type: ignore[assignment]
            self._socket_reader = None  # type: ignore[assignment]
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2.0)
            self.log.info(f"disconnected, state {disconn_state.name}")
            await self._state_set(disconn_state)
        finally:
            self._disconnecting = False
            self.disconnected.set()
        await self.on_disconnect()

    async def _process_message(self, msg: FIXMessage, raw_msg: bytes) -> None:
        # asyncfix-fix 4: a garbled MsgSeqNum raises outside asyncfix's own guard.
        try:
            await super()._process_message(msg, raw_msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception(f"message dropped: {msg!r}")

    async def _process_logout(self, logout_msg: FIXMessage) -> None:
        # asyncfix-fix 2: count the Logout's MsgSeqNum and answer it.
        with contextlib.suppress(Exception):
            self.last_logout_text = str(logout_msg.get(FTag.Text, ""))
        with contextlib.suppress(Exception):
            seq = int(logout_msg[FTag.MsgSeqNum])
            if seq == self._session.next_num_in:
                self._journaler.set_seq_num(self._session, next_num_in=seq + 1)
                self._journaler.conn.commit()
        if not self._logout_sent and self._socket_writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_msg(FIXMessage(FMsg.LOGOUT)), 2.0)
        await super()._process_logout(logout_msg)

    async def _check_seqnum_gaps(self, msg_seq_num: int) -> bool:
        awaiting = self._connection_state == ConnectionState.RESENDREQ_AWAITING
        ok = bool(await super()._check_seqnum_gaps(msg_seq_num))
        if not ok and not awaiting:
            self.stats["resend_requests_sent"] += 1
        return ok

    async def _process_seqreset(self, seqreset_msg: FIXMessage) -> None:
        if seqreset_msg.get(FTag.GapFillFlag, "N") == "Y":
            self.stats["gap_fills_received"] += 1
        await super()._process_seqreset(seqreset_msg)

    async def _finalize_message(self, msg: FIXMessage, raw_msg: bytes) -> None:
        if msg.get(FTag.PossDupFlag, "N") == "Y":
            self.stats["possdup_received"] += 1
        await super()._finalize_message(msg, raw_msg)
        if msg.msg_type == FMsg.SEQUENCERESET:
            # asyncfix-fix 3: store NewSeqNo-1, not the reset's MsgSeqNum, as last inbound.
            self._journaler.set_seq_num(self._session)
            self._journaler.conn.commit()

    async def _write_replay(self, msg: FIXMessage) -> None:
        """Write a resent message or gap fill: its MsgSeqNum is its own, it is not journaled."""
        encoded = self._codec.encode(msg, self._session).encode("utf-8")
        assert self._socket_writer is not None
        self._socket_writer.write(encoded)
        await self._socket_writer.drain()

    async def _gap_fill(self, begin: int, new_seq_no: int) -> None:
        gap = FIXMessage(FMsg.SEQUENCERESET)
        gap[FTag.MsgSeqNum] = begin
        gap[FTag.PossDupFlag] = "Y"
        gap[FTag.GapFillFlag] = "Y"
        gap[FTag.NewSeqNo] = new_seq_no
        await self._write_replay(gap)
        self.stats["gap_fills_sent"] += 1

    def _as_possdup(self, stored: FIXMessage) -> FIXMessage:
        """Rebuild a journaled message as a PossDupFlag=Y resend with its MsgSeqNum."""
        out = FIXMessage(stored.msg_type)
        out[FTag.MsgSeqNum] = stored[FTag.MsgSeqNum]
        out[FTag.PossDupFlag] = "Y"
        orig = stored.get(FTag.OrigSendingTime, None) or stored.get(FTag.SendingTime, None)
        if orig:
            out[FTag.OrigSendingTime] = orig
        for tag, value in stored.tags.items():
            if tag in _HEADER_TAGS:
                continue
            out.tags[tag] = value
        return out

    async def _process_resend(self, resend_msg: FIXMessage) -> None:
        # asyncfix-fix 1: replay under the send lock without moving next_num_out,
        # gap-fill holes, tolerate messages already resent once.
        async with self.sending():
            self.stats["resend_requests_received"] += 1
            if self._connection_state != ConnectionState.RESENDREQ_AWAITING:
                await self._state_set(ConnectionState.RESENDREQ_HANDLING)
            begin = int(resend_msg[FTag.BeginSeqNo])
            end = int(resend_msg[FTag.EndSeqNo]) or sys.maxsize
            last_sent = self._session.next_num_out - 1
            end = min(end, last_sent)
            self.log.info(f"resend request {begin}..{end} (last sent {last_sent})")
            fill_from = max(begin, 1)
            if fill_from <= end:
                stored = self._journaler.recover_messages(
                    self._session, MessageDirection.OUTBOUND, fill_from, end
                )
                for raw in stored:
                    decoded, _consumed, _raw_msg = self._codec.decode(raw)
                    if decoded is None:
                        continue
                    seq = int(decoded[FTag.MsgSeqNum])
                    if seq < fill_from:
                        continue
                    msg_type = str(decoded.msg_type)
                    if msg_type in SESSION_MSG_TYPES or not await self.should_replay(decoded):
                        continue
                    if fill_from < seq:
                        await self._gap_fill(fill_from, seq)
                    await self._write_replay(self._as_possdup(decoded))
                    self.stats["possdup_sent"] += 1
                    fill_from = seq + 1
                if fill_from <= end:
                    await self._gap_fill(fill_from, end + 1)
            if self._connection_state != ConnectionState.RESENDREQ_AWAITING:
                await self._state_set(ConnectionState.ACTIVE)
