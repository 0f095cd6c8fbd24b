"""asyncfix connection with the fixes that both FIX ends of tradeops need.

The session layer (logon, heartbeat and test request, sequence numbers,
resend requests and gap fills, the SQLite journal) is asyncfix 1.0.1's
:class:`AsyncFIXConnection`. :class:`TradeopsConnection` adds transport
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
   the reader sees EOF while we close; an exception in a message handler
   escapes the reader. Both are guarded.
5. The reader task polls every second for a new socket and, being one task
   for the life of the connection, a stale read could tear down the next
   socket; here every socket gets a fresh reader task.
6. ``send_msg`` journals a message after writing it, so a process killed in
   between restarts with a MsgSeqNum the peer has already received (the peer
   then logs out with "MsgSeqNum too low"); here it is journaled first.
7. Framing. asyncfix's reader raises on every read once a non-numeric
   BodyLength is in its buffer (the session is wedged until the heartbeat
   timeout), accepts a BodyLength that is too short, drops its whole buffer
   on a foreign BeginString, leaves the frames behind a discarded one unread
   until more bytes arrive, and reports a bad CheckSum only on stderr. Here
   :func:`tradeops.brokers.fixframing.cut_frame` cuts frames by BodyLength
   and CheckSum with a size limit (``max_frame_bytes``); a garbled frame or
   stray bytes are discarded, not counted, logged as one ``garbled_frame``
   event, and reading resumes at the next ``8=FIX`` start (FIX 4.4 session
   rules: garbled messages are ignored).
8. Header checks and dispatch (``_process_message`` rewritten). Per FIX 4.4:
   a missing or non-numeric MsgSeqNum or a foreign BeginString is a Logout;
   a missing or badly formatted header field (49, 56, 52, 122 when 43=Y, a
   repeated header tag, a field that is not ``tag=value``) is a session
   Reject (35=3) with its SessionRejectReason, counted; wrong CompIDs are a
   Reject (373=9) and a Logout. A PossDupFlag=Y message below the expected
   MsgSeqNum is ignored (asyncfix logged out); a GapFill beyond the expected
   MsgSeqNum is a gap (asyncfix jumped over the missing messages); a
   SequenceReset that would lower the expected MsgSeqNum is a Reject
   (373=5). A received Reject (35=3) is handled by the session layer
   (logged as ``session_reject_received``, counted, handed to
   :meth:`TradeopsConnection.on_session_reject`), never to ``on_message``,
   so no application answers it.
9. ResetSeqNumFlag (141=Y) on a Logon was ignored (the peer was logged out
   with "MsgSeqNum is too low"). On such a Logon both sequences restart at 1
   and the journal is cleared; the acceptor answers with 34=1 and 141=Y. An
   initiator asks for it with :meth:`TradeopsConnection.reset_for_logon`.
10. A message sent while asyncio already knows the connection is lost (its
    transport is closing) is journaled and not written: asyncfix wrote it
    anyway, and asyncio logged "socket.send() raised exception." for every
    message of a burst. The peer gets it by a ResendRequest after its next
    logon (``stats["writes_after_close"]`` counts them).
11. asyncfix never sends a Heartbeat of its own (only TestRequests when the
    peer is quiet): here one goes out after HeartBtInt without a write.

It also lets a message be journaled without being sent while the peer is
disconnected (store and forward): the peer's next logon then sees a higher
MsgSeqNum and asks for a resend, as with a real venue.

Known limits: a data field (RawData, XmlData) that carries a whole FIX
message (``8=FIX.4.4<SOH>9=``) is read as the start of the next frame; the
project sends none. asyncfix's decoder (used for messages with repeating
groups) cannot read a field whose value contains ``8=FIX.``: such a message
is rejected (373=99), not misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.connection import AsyncFIXConnection, ConnectionRole, ConnectionState
from asyncfix.errors import FIXConnectionError
from asyncfix.journaler import Journaler
from asyncfix.message import MessageDirection
from asyncfix.protocol.protocol_base import FIXProtocolBase

from tradeops.brokers.fixcodec import FastCodec
from tradeops.brokers.fixframing import (
    DEFAULT_MAX_FRAME_BYTES,
    CutKind,
    GarbleReason,
    cut_frame,
    excerpt,
)
from tradeops.brokers.fixheader import (
    HEADER_TAGS,
    SR_OTHER,
    Fault,
    Header,
    header_fault,
    parse_header,
    seqreset_fault,
    session_reject,
)
from tradeops.brokers.memjournal import MemoryJournaler
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


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")

_READ_SIZE = 1 << 16


def journal_path(store_dir: str, sender_comp_id: str, target_comp_id: str) -> str:
    """Where the journal of one session lives inside ``store_dir``."""
    name = f"{_SAFE_NAME.sub('_', sender_comp_id)}-{_SAFE_NAME.sub('_', target_comp_id)}"
    return os.path.join(store_dir, f"{name}.journal.sqlite")


def open_journal(store_dir: str | None, sender_comp_id: str, target_comp_id: str) -> Journaler:
    """Open the journal of a session: asyncfix's SQLite file, or in memory without a dir.

    WAL with ``synchronous=NORMAL``: every message is committed before the
    next one is processed, so a crash or a kill of the process loses nothing;
    only a power cut may lose the last commits.
    """
    if store_dir is None:
        return MemoryJournaler()
    os.makedirs(store_dir, exist_ok=True)
    journaler = Journaler(journal_path(store_dir, sender_comp_id, target_comp_id))
    journaler.conn.execute("PRAGMA journal_mode=WAL")
    journaler.conn.execute("PRAGMA synchronous=NORMAL")
    return journaler


class EventLogHandler(logging.Handler):
    """Forward asyncfix's ``logging`` records to an :class:`EventLog`.

    A record logged by :meth:`TradeopsConnection.event` keeps its own event
    name and fields; any other record becomes a ``fix_engine`` event.
    """

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as its own event or as a ``fix_engine`` event."""
        try:
            name = getattr(record, "tradeops_event", None)
            if isinstance(name, str):
                self._log.event(name, **getattr(record, "tradeops_fields", {}))
                return
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
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
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
        self.max_frame_bytes = max_frame_bytes
        self._rx = bytearray()
        self._skipping = False  # discarding bytes since the last garbled frame
        self._reset_requested = False  # our Logon carries ResetSeqNumFlag=Y
        self._codec = FastCodec(protocol)  # asyncfix's output, 4x faster to encode
        self._send_lock = asyncio.Lock()
        self._send_owner: asyncio.Task[Any] | None = None
        self._logout_sent = False
        self._last_sent = time.monotonic()  # of our last write, for our own Heartbeats
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
            "possdup_ignored": 0,
            "garbled_frames": 0,
            "garbled_bytes": 0,
            "session_rejects_sent": 0,
            "session_rejects_received": 0,
            "sequence_resets": 0,
            "writes_after_close": 0,
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

    def event(self, name: str, level: int = logging.INFO, **fields: Any) -> None:
        """Log a structured event through the engine logger (see :class:`EventLogHandler`)."""
        self.log.log(
            level,
            f"{name} {fields}",
            extra={"tradeops_event": name, "tradeops_fields": fields},
        )

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
        self._rx = bytearray()
        self._skipping = False
        self._reset_requested = False
        self._test_req_id = None
        self._message_last_time = 0.0
        self._max_seq_num_resend = 0
        self._logout_sent = False
        self._last_sent = time.monotonic()  # of our last write, for our own Heartbeats
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
            await self._write(writer, encoded)

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

    async def send_sequence_reset(self, new_seq_no: int) -> None:
        """Send a SequenceReset-Reset (35=4, 123=N): our next MsgSeqNum becomes ``new_seq_no``.

        FIX's last resort when messages cannot be recovered; the gap is not
        resent. Raises ValueError if ``new_seq_no`` is not above the next MsgSeqNum.
        """
        async with self.sending():
            current = self._session.next_num_out
            if new_seq_no <= current:
                raise ValueError(f"NewSeqNo {new_seq_no} must exceed the next MsgSeqNum {current}")
            reset = FIXMessage(FMsg.SEQUENCERESET)
            reset[FTag.MsgSeqNum] = current
            reset[FTag.GapFillFlag] = "N"
            reset[FTag.NewSeqNo] = new_seq_no
            await self.send_msg(reset)
            self._journaler.set_seq_num(self._session, next_num_out=new_seq_no)
            self._journaler.conn.commit()
            self.stats["sequence_resets"] += 1
            self.event("sequence_reset", by="us", next_seq_out=new_seq_no)

    def reset_for_logon(self) -> None:
        """Restart both sequences at 1 before sending a Logon with ResetSeqNumFlag=Y.

        The journal is cleared: nothing sent or stored before can be resent.
        """
        self._reset_sequences(next_out=1, by="our_logon")
        self._reset_requested = True

    def _reset_sequences(self, next_out: int, by: str) -> None:
        """Both sequences restart: the journal is emptied, then ``next_out`` is set."""
        before = (self.next_seq_in, self.next_seq_out)
        self._journaler.set_seq_num(self._session, next_num_in=1, next_num_out=1)
        self._journaler.set_seq_num(self._session, next_num_out=next_out)
        self._journaler.conn.commit()
        self.stats["sequence_resets"] += 1
        self.event(
            "sequence_reset",
            by=by,
            before_in=before[0],
            before_out=before[1],
            next_seq_in=self.next_seq_in,
            next_seq_out=self.next_seq_out,
        )

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

    # ------------------------------------------------------------- app hooks
    async def on_session_reject(self, msg: FIXMessage) -> None:
        """A session-level Reject (35=3) of one of our messages arrived (already logged).

        Never answer it: a reject of a reject loops with a strict peer.
        """

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

    async def socket_read_task(self) -> None:
        """Read and frame the attached socket until it closes (asyncfix-fix 7)."""
        reader = self._socket_reader
        if reader is None:
            return
        try:
            while self._socket_reader is reader:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    raise ConnectionError("closed by the peer")
                self._rx += chunk
                await self._read_frames(reader)
        except (ConnectionError, OSError) as exc:
            self.log.debug(f"reader: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("reader failed")
        if self._socket_reader is reader:
            await self.disconnect(ConnectionState.DISCONNECTED_BROKEN_CONN)

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        """Process every complete frame in the buffer; discard garbled bytes."""
        while (
            self._rx
            and self._socket_reader is reader
            and self._connection_state > ConnectionState.DISCONNECTED_BROKEN_CONN
        ):
            cut = cut_frame(self._rx, self.max_frame_bytes)
            if cut.kind is CutKind.NEED_MORE:
                return
            data = bytes(self._rx[: cut.size])
            del self._rx[: cut.size]
            if cut.kind is CutKind.GARBLED:
                assert cut.reason is not None
                self._garbled(cut.reason, data)
                continue
            self._skipping = False
            try:
                await self._on_frame(data)
            except asyncio.CancelledError:
                raise
            except Exception:  # asyncfix-fix 4: one bad message never stops the reader
                self.log.exception(f"message dropped: {excerpt(data)}")

    def _garbled(self, reason: GarbleReason, data: bytes) -> None:
        """Discard ``data``: not counted; one event per garbled frame or run of garbage."""
        self.stats["garbled_bytes"] += len(data)
        if reason is GarbleReason.GARBAGE and self._skipping:
            return  # the rest of what the last event reported
        self._skipping = True
        self.stats["garbled_frames"] += 1
        self.event(
            "garbled_frame",
            logging.WARNING,
            reason=str(reason),
            size=len(data),
            excerpt=excerpt(data),
            next_seq_in=self.next_seq_in,
        )

    async def _on_frame(self, frame: bytes) -> None:
        """Check the header of one frame, then dispatch it, reject it or log out."""
        header = parse_header(frame)
        begin = header.get(FTag.BeginString)
        if begin != self.protocol.beginstring:
            await self._violation(
                f"Protocol BeginString(8) mismatch, expected {self.protocol.beginstring},"
                f" got {begin}"
            )
            return
        seq = header.seq_num
        if seq is None:
            await self._violation("MsgSeqNum(34) tag is missing or not a positive integer")
            return
        fault = header_fault(header, self.target_comp_id, self.sender_comp_id)
        msg = None if fault is not None else self._decode(frame)
        if fault is None and msg is None:
            fault = Fault(SR_OTHER, None, "message cannot be decoded")
        if fault is not None:
            await self._on_fault(header, seq, fault, frame)
            return
        assert msg is not None
        await self._process_message(msg, frame)

    def _decode(self, frame: bytes) -> FIXMessage | None:
        try:
            msg, _size, _raw = self._codec.decode(frame)
        except Exception as exc:
            self.log.warning(f"cannot decode ({type(exc).__name__}: {exc}): {excerpt(frame)}")
            return None
        return msg if isinstance(msg, FIXMessage) else None

    async def _violation(self, text: str) -> None:
        """Log out with ``text`` and close: FIX's answer to a fatal session error."""
        self.event("session_violation", logging.WARNING, text=text)
        await self.disconnect(ConnectionState.DISCONNECTED_BROKEN_CONN, logout_message=text)

    async def _on_fault(self, header: Header, seq: int, fault: Fault, frame: bytes) -> None:
        """A message breaking a header rule: Reject it in sequence (and log out if fatal)."""
        if self._connection_state not in LIVE_STATES:
            await self._violation(fault.logout_text or fault.text)
            return
        expected = self._session.next_num_in
        if fault.logout_text is None:
            if seq < expected:
                await self._below_expected(seq, header.msg_type, header.poss_dup)
                return
            if seq > expected:
                await self._check_seqnum_gaps(seq)
                return
        await self._send_reject(seq, header.msg_type, fault)
        if seq == expected:
            await self._count_only(seq, frame)
        if fault.logout_text is not None:
            await self._violation(fault.logout_text)

    async def _send_reject(self, seq: int, msg_type: str, fault: Fault) -> None:
        self.stats["session_rejects_sent"] += 1
        self.event(
            "session_reject_sent",
            logging.WARNING,
            ref_seq_num=seq,
            ref_msg_type=msg_type,
            ref_tag_id=fault.tag,
            reason=fault.reason,
            text=fault.text,
        )
        await self.send_msg(session_reject(seq, msg_type, fault))

    async def _count_only(self, seq: int, frame: bytes) -> None:
        """Count a rejected message (it takes its MsgSeqNum) without acting on it."""
        await super()._finalize_message(FIXMessage(FMsg.HEARTBEAT, {FTag.MsgSeqNum: seq}), frame)

    async def _below_expected(self, seq: int, msg_type: str, poss_dup: bool) -> None:
        """MsgSeqNum below the expected one: a resent duplicate is ignored, else log out."""
        expected = self._session.next_num_in
        if poss_dup:
            self.stats["possdup_ignored"] += 1
            self.event("possdup_ignored", seq=seq, msg_type=msg_type, expected=expected)
            return
        await self._violation(f"MsgSeqNum is too low, expected {expected}, got {seq}")

    async def _process_message(self, msg: FIXMessage, raw_msg: bytes) -> None:
        """asyncfix's dispatcher, rewritten (asyncfix-fix 8); the header is already checked."""
        if not await self._first_message_ok(msg):
            return
        seq = int(msg[FTag.MsgSeqNum])
        msg_type = msg.msg_type
        if seq < self._session.next_num_in and not self._resets_sequence(msg):
            await self._below_expected(seq, str(msg_type), msg.get(FTag.PossDupFlag, "N") == "Y")
            return
        if msg_type == FMsg.SEQUENCERESET and not await self._seqreset_ok(msg, seq, raw_msg):
            return
        if msg_type == FMsg.LOGON:
            await self._process_logon(msg)
        elif msg_type == FMsg.SEQUENCERESET:
            await self._process_seqreset(msg)
        elif msg_type == FMsg.LOGOUT:
            await self._process_logout(msg)
        if self._connection_state <= ConnectionState.DISCONNECTED_BROKEN_CONN:
            return
        if msg_type == FMsg.SEQUENCERESET and self._resets_sequence(msg):
            in_order = True  # a SequenceReset-Reset ignores its own MsgSeqNum
        else:
            in_order = await self._check_seqnum_gaps(seq)
        try:
            await self._handle(msg, in_order)
        finally:
            if in_order:
                await self._finalize_message(msg, raw_msg)

    async def _first_message_ok(self, msg: FIXMessage) -> bool:
        """An acceptor's first message must be a Logon (else close without a Logout)."""
        if self._connection_state != ConnectionState.NETWORK_CONN_ESTABLISHED:
            return True
        if msg.msg_type != FMsg.LOGON:
            await self.disconnect(ConnectionState.DISCONNECTED_BROKEN_CONN)
            return False
        await self._state_set(ConnectionState.LOGON_INITIAL_RECV)
        self._connection_role = ConnectionRole.ACCEPTOR
        return True

    @staticmethod
    def _resets_sequence(msg: FIXMessage) -> bool:
        """A SequenceReset-Reset or a Logon with ResetSeqNumFlag=Y: its MsgSeqNum may be low."""
        if msg.msg_type == FMsg.SEQUENCERESET:
            return msg.get(FTag.GapFillFlag, "N") != "Y"
        return msg.msg_type == FMsg.LOGON and msg.get(FTag.ResetSeqNumFlag, "N") == "Y"

    async def _seqreset_ok(self, msg: FIXMessage, seq: int, raw_msg: bytes) -> bool:
        """Whether a SequenceReset may be applied; a gap before a GapFill is asked for first."""
        expected = self._session.next_num_in
        gap_fill = msg.get(FTag.GapFillFlag, "N") == "Y"
        if gap_fill and seq > expected:
            await self._check_seqnum_gaps(seq)
            return False
        fault = seqreset_fault(msg, seq, expected)
        if fault is None:
            return True
        await self._send_reject(seq, str(FMsg.SEQUENCERESET), fault)
        if gap_fill and seq == expected:
            await self._count_only(seq, raw_msg)
        return False

    async def _handle(self, msg: FIXMessage, in_order: bool) -> None:
        msg_type = msg.msg_type
        if msg_type == FMsg.RESENDREQUEST:
            await self._process_resend(msg)
        elif msg_type in (FMsg.SEQUENCERESET, FMsg.LOGON):
            pass  # processed before the gap check
        elif msg_type == FMsg.TESTREQUEST:
            await self._process_testrequest(msg)
        elif msg_type == FMsg.HEARTBEAT:
            await self._process_heartbeat(msg)
        elif not in_order:
            self.log.debug(f"skipped out of order: {msg}")
        elif msg_type == FMsg.REJECT:
            await self._session_reject_received(msg)
        else:
            await self.on_message(msg)

    async def _session_reject_received(self, msg: FIXMessage) -> None:
        self.stats["session_rejects_received"] += 1
        self.event(
            "session_reject_received",
            logging.WARNING,
            ref_seq_num=msg.get(FTag.RefSeqNum, None),
            ref_tag_id=msg.get(FTag.RefTagID, None),
            ref_msg_type=msg.get(FTag.RefMsgType, None),
            reason=msg.get(FTag.SessionRejectReason, None),
            text=msg.get(FTag.Text, None),
        )
        await self.on_session_reject(msg)

    async def _process_logon(self, logon_msg: FIXMessage) -> None:
        # asyncfix-fix 9: honour ResetSeqNumFlag=Y; answer even without EncryptMethod.
        reset = logon_msg.get(FTag.ResetSeqNumFlag, "N") == "Y"
        acceptor = self._connection_role == ConnectionRole.ACCEPTOR
        if reset and (acceptor or not self._reset_requested):
            # An initiator answered with a reset it did not ask for: its own Logon
            # becomes number 1 of the new numbering, as the acceptor counted it.
            self._reset_sequences(next_out=1 if acceptor else 2, by="peer_logon")
        self._reset_requested = False
        seq = int(logon_msg[FTag.MsgSeqNum])
        if acceptor:
            answer = FIXMessage(FMsg.LOGON)
            answer[FTag.EncryptMethod] = logon_msg.get(FTag.EncryptMethod, "0")
            answer[FTag.HeartBtInt] = logon_msg.get(FTag.HeartBtInt, self._heartbeat_period)
            if reset:
                answer[FTag.ResetSeqNumFlag] = "Y"
            await self.send_msg(answer)
        if seq == self._session.next_num_in:
            await self._state_set(ConnectionState.ACTIVE)
        else:
            await self._state_set(ConnectionState.RECV_SEQNUM_TOO_HIGH)
        await self.on_logon(self._connection_state == ConnectionState.ACTIVE)

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
        # Checked by _seqreset_ok before (asyncfix-fix 8: it could lower the sequence).
        seq = int(seqreset_msg[FTag.MsgSeqNum])
        new_seq_no = int(seqreset_msg[FTag.NewSeqNo])
        if seqreset_msg.get(FTag.GapFillFlag, "N") == "Y":
            self.stats["gap_fills_received"] += 1
        else:
            self.stats["sequence_resets"] += 1
            self.event("sequence_reset", by="peer", next_seq_in=new_seq_no)
        # As asyncfix: drop journaled inbound messages from the reset's own MsgSeqNum on, so
        # that journaling the reset itself cannot collide with one of them.
        self._journaler.set_seq_num(self._session, next_num_in=min(seq, new_seq_no))
        self._journaler.set_seq_num(self._session, next_num_in=new_seq_no)

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
        await self._write(self._socket_writer, encoded)

    async def _write(self, writer: asyncio.StreamWriter, encoded: bytes) -> None:
        """Write to the socket unless the peer is already gone.

        A journaled message is then resent when the peer asks after its next
        logon. Writing into a lost connection only makes asyncio log
        "socket.send() raised exception." for every message of a storm.
        """
        if writer.transport.is_closing():
            self.stats["writes_after_close"] += 1
            return
        writer.write(encoded)
        self._last_sent = time.monotonic()
        await writer.drain()

    async def heartbeat_timer_task(self) -> None:
        """asyncfix's watcher, plus a Heartbeat of ours after HeartBtInt without sending.

        asyncfix-fix 11: asyncfix sends TestRequests when the peer is quiet but
        never a Heartbeat of its own, so a side with nothing to send stays
        silent while the peer talks; FIX 4.4 wants one every HeartBtInt.
        """
        watcher = asyncio.create_task(super().heartbeat_timer_task())
        try:
            while True:
                await asyncio.sleep(min(1.0, self._heartbeat_period / 10))
                if (
                    self._connection_state == ConnectionState.ACTIVE
                    and self._socket_writer is not None
                    and time.monotonic() - self._last_sent >= self._heartbeat_period
                ):
                    try:
                        await self.send_msg(FIXMessage(FMsg.HEARTBEAT))
                    except (FIXConnectionError, OSError) as exc:
                        self.log.debug(f"heartbeat not sent: {exc}")
        finally:
            watcher.cancel()

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
            if tag in HEADER_TAGS:
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
