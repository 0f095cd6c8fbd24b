"""FIX acceptor sessions of the simulator: one listener per configured session.

asyncfix ships only a single-connection dummy server. :class:`SessionAcceptor`
is an asyncfix :class:`TradeopsConnection` in the ACCEPTOR role that takes a
new TCP connection whenever the previous one is gone (reconnects), keeps its
journal (sequence numbers) across them, refuses a second concurrent
connection, can refuse logons (fault injection) and delays outbound
application messages (latency fault) without reordering them. The session
rules (framing, header checks, Reject, ResetSeqNumFlag) are those of
:mod:`tradeops.brokers.fixconn`, shared with the adapter: a session Reject
(35=3) from a client is logged and counted there, never passed to the
simulator's application.
:class:`SessionListener` binds the configured address and port only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from asyncfix import FIXMessage, FTag
from asyncfix.connection import ConnectionRole, ConnectionState
from asyncfix.journaler import Journaler
from asyncfix.protocol.protocol_base import FIXProtocolBase

from tradeops.brokers.fixconn import TradeopsConnection
from tradeops.brokers.fixframing import DEFAULT_MAX_FRAME_BYTES
from tradeops.sim.config import SessionSpec
from tradeops.sim.throttle import MessageThrottle

if TYPE_CHECKING:
    import logging

NO_REPLAY = frozenset({"W", "X", "Y"})  # market data is gap-filled, never resent
BURST_SLICE = 64  # queued messages written between two turns of the event loop


class AcceptorApp(Protocol):
    """What a SessionAcceptor needs from the simulator."""

    def logon_refusal(self, acceptor: SessionAcceptor) -> str | None:
        """Why this logon must be refused, or None."""

    def latency_s(self, acceptor: SessionAcceptor) -> float:
        """Delay to add before each outbound application message."""

    async def on_session_connected(self, acceptor: SessionAcceptor, peer: Any) -> None:
        """A TCP connection was attached."""

    async def on_session_logon(self, acceptor: SessionAcceptor) -> None:
        """The Logon exchange completed."""

    async def on_session_down(self, acceptor: SessionAcceptor) -> None:
        """The connection is gone."""

    async def handle_message(self, acceptor: SessionAcceptor, msg: FIXMessage) -> None:
        """An inbound application message."""

    def count_out(self, acceptor: SessionAcceptor, msg: FIXMessage, sent: bool) -> None:
        """An outbound application message was sent (or journaled only)."""


class MessageSource(Protocol):
    """Messages built when a session's writer first reaches them (see ``send_burst``)."""

    def message(self, index: int) -> FIXMessage:
        """The message at ``index``; built once, whichever session asks first."""


class _Single:
    """A MessageSource of one message already built."""

    __slots__ = ("msg",)

    def __init__(self, msg: FIXMessage) -> None:
        self.msg = msg

    def message(self, index: int) -> FIXMessage:
        """The message (``index`` is always 0)."""
        return self.msg


class _Outgoing:
    """Queued output of one session: messages of a source, in order, due at ``due``."""

    __slots__ = ("due", "indices", "pos", "source", "store")

    def __init__(
        self, due: float, source: MessageSource, indices: Sequence[int], store: bool
    ) -> None:
        self.due = due
        self.source = source
        self.indices = indices
        self.store = store
        self.pos = 0


class SessionAcceptor(TradeopsConnection):
    """One configured session, accepting reconnects."""

    def __init__(
        self,
        spec: SessionSpec,
        app: AcceptorApp,
        protocol: FIXProtocolBase,
        journaler: Journaler,
        host: str,
        heartbeat_period: int,
        logger: logging.Logger | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        super().__init__(
            protocol=protocol,
            sender_comp_id=spec.sim_comp_id,
            target_comp_id=spec.client_comp_id,
            journaler=journaler,
            host=host,
            port=spec.port,
            heartbeat_period=heartbeat_period,
            logger=logger,
            max_frame_bytes=max_frame_bytes,
        )
        self._connection_role = ConnectionRole.ACCEPTOR
        self.spec = spec
        self.app = app
        self.throttle = MessageThrottle(spec.throttle)
        self.md_subs: dict[str, set[str]] = {}
        self.logons = 0
        self.peer: Any = None
        self._outq: deque[_Outgoing] = deque()
        self._outq_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """Session name (the client's CompID unless configured)."""
        return self.spec.name

    @property
    def state_name(self) -> str:
        """asyncfix connection state, by name."""
        return self._connection_state.name

    # ------------------------------------------------------------ transport
    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Attach a new TCP connection, unless one is already attached."""
        peer = writer.get_extra_info("peername")
        if self.is_connected:
            self.log.warning(f"second connection from {peer} refused: session in use")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self.peer = peer
        self.attach_socket(reader, writer, ConnectionRole.ACCEPTOR)
        await self.app.on_session_connected(self, peer)

    # ------------------------------------------------------- asyncfix hooks
    async def _process_logon(self, logon_msg: FIXMessage) -> None:
        if self._connection_state != ConnectionState.LOGON_INITIAL_RECV:
            await self.drop("Logon received on a session already logged on")
            return
        refusal = self.app.logon_refusal(self)
        if refusal is not None:
            await self.drop(refusal)
            return
        with contextlib.suppress(Exception):
            current: int = getattr(self, "_heartbeat_period", 30)
            hb = int(logon_msg.get(FTag.HeartBtInt, current))
            if 1 <= hb <= 3600:
                self._heartbeat_period = hb  # asyncfix echoes it but keeps its own
        await super()._process_logon(logon_msg)

    async def on_connect(self) -> None:
        """Nothing to do before the Logon."""

    async def on_logon(self, is_healthy: bool) -> None:
        """Logon exchange done (a ResendRequest may follow if ``is_healthy`` is False)."""
        self.logons += 1
        await self.app.on_session_logon(self)

    async def on_disconnect(self) -> None:
        """Subscriptions end with the connection; the throttle window restarts."""
        self.md_subs.clear()
        self.throttle.reset()
        await self.app.on_session_down(self)

    async def on_message(self, msg: FIXMessage) -> None:
        """Application message from the client."""
        await self.app.handle_message(self, msg)

    async def should_replay(self, historical_replay_msg: FIXMessage) -> bool:
        """Resend executions and rejects; gap-fill stale market data."""
        return str(historical_replay_msg.msg_type) not in NO_REPLAY

    # ---------------------------------------------------------------- output
    async def send_app(self, msg: FIXMessage, store_if_down: bool = True) -> None:
        """Send an application message, after the injected latency if any.

        While the session is down the message is journaled for a later resend
        (``store_if_down``) or dropped (market data). With a latency, or behind
        messages still queued (a burst: :meth:`send_burst`), it goes to the
        session's writer task (:meth:`_run_outq`), so the session's order is kept.
        """
        delay = self.app.latency_s(self)
        if delay > 0 or self._outq:
            self._enqueue(delay, _Single(msg), (0,), store_if_down)
            return
        await self._deliver(msg, store_if_down)

    def send_burst(self, source: MessageSource, indices: Sequence[int]) -> None:
        """Queue the messages ``indices`` of ``source`` for the writer task, in order.

        Returns at once: the messages are built (by ``source``) and written by
        the writer task, a slice at a time, so the caller's next inbound message
        is read meanwhile (a mass cancel's thousands of reports must not hold
        back the mass status that follows it). Later sends queue behind them.
        """
        if indices:
            self._enqueue(self.app.latency_s(self), source, indices, True)

    def _enqueue(
        self, delay: float, source: MessageSource, indices: Sequence[int], store: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        self._outq.append(_Outgoing(loop.time() + delay, source, indices, store))
        if self._outq_task is None:
            self._outq_task = asyncio.create_task(self._run_outq())

    async def _deliver(self, msg: FIXMessage, store_if_down: bool) -> None:
        if not store_if_down and not self.is_live:
            self.app.count_out(self, msg, False)
            return
        sent = await self.send_or_store(msg, store_if_down)
        self.app.count_out(self, msg, sent)

    async def _run_outq(self) -> None:
        """Write the queued messages in order, giving the loop a turn every ``BURST_SLICE``.

        Without the turns, a mass cancel's thousands of reports would be written
        before any other session's next message is read.
        """
        loop = asyncio.get_running_loop()
        since_turn = 0
        try:
            while self._outq:
                entry = self._outq[0]
                wait = entry.due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    since_turn = 0
                elif since_turn >= BURST_SLICE:
                    await asyncio.sleep(0)
                    since_turn = 0
                index = entry.indices[entry.pos]
                entry.pos += 1
                if entry.pos == len(entry.indices):
                    self._outq.popleft()
                since_turn += 1
                try:
                    await self._deliver(entry.source.message(index), entry.store)
                except Exception:
                    self.log.exception("queued send failed")
        finally:
            self._outq_task = None

    async def shutdown(self, text: str, timeout_s: float = 1.0) -> None:
        """Log out (bounded), stop the tasks, close the journal."""
        task = self._outq_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.logout(text, timeout_s=timeout_s)
        await self.stop_tasks()
        self.close_journal()


class SessionListener:
    """A TCP listener on the configured address only, handing sockets to an acceptor."""

    def __init__(self, acceptor: SessionAcceptor, host: str, port: int) -> None:
        self.acceptor = acceptor
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen; ``port`` becomes the bound port (useful with 0)."""
        self._server = await asyncio.start_server(
            self.acceptor.accept, host=self.host, port=self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def socknames(self) -> list[tuple[Any, ...]]:
        """Addresses actually bound."""
        if self._server is None:
            return []
        return [s.getsockname() for s in self._server.sockets]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
