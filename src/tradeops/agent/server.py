"""The kill-switch agent: one asyncio process, two listeners, one dispatch.

* The **Unix socket** (mode 0660 by default) checks each connection's peer
  with ``SO_PEERCRED`` (uid, primary gid) and ``SO_PEERGROUPS`` against the
  configured ids, before reading a byte; then it parses each frame.
* The **TCP listener** (optional) authenticates every frame with its HMAC
  (``auth.authenticate``) before anything of it is trusted.
* Both hand a parsed request to ``Agent.dispatch``, the one place that maps
  commands to the state machine and the enforcer.

Every refused frame gets a protocol error and an audit record (no key, at
most a short ASCII excerpt of the input) and changes nothing. Connections are
bounded: ``max_clients`` at once, an idle timeout, a read size, and a number
of refusals after which the connection is closed.

Policy for tightening commands (``halt``, ``reduce``, ``cancel-all``): once
authenticated, they are carried out even when their timestamp is outside the
window or their nonce was seen, and audited as ``accepted_expired`` or
``accepted_replay``: a kill must never fail because of a skewed clock, and a
replayed halt only halts again. The other commands keep the strict checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any, Protocol, cast

from tradeops import __version__
from tradeops.agent import scheduling
from tradeops.agent.auth import (
    KeyRing,
    NonceCache,
    Verified,
    authenticate,
    peer_credentials,
    peer_may_connect,
    peer_roles,
)
from tradeops.agent.config import AgentConfig, UnixConfig
from tradeops.agent.hooks import Hooks, NoHooks
from tradeops.agent.liveness import LivenessWriter
from tradeops.agent.protocol import (
    Command,
    ErrorCode,
    FrameReader,
    HaltArgs,
    HeartbeatArgs,
    ProtocolError,
    ReduceArgs,
    Request,
    ResetArgs,
    Response,
    answer,
    encode_response,
    is_expired,
    parse_request,
    refusal,
    show,
)
from tradeops.agent.reasons import Reason
from tradeops.agent.state import Refused, StateMachine, Transition
from tradeops.agent.unixfast import UnixAcceptor
from tradeops.auditlog import append_audit
from tradeops.log import EventLog, open_log
from tradeops.tradingstate import TradingState

# Carried out even when expired or replayed, once authenticated (see the module docstring).
TIGHTENING = frozenset({Command.HALT, Command.REDUCE, Command.CANCEL_ALL})
# What a strategy's uid or group (unix.strategy_uids/gids) may send: its dead man's switch,
# a read, and the two commands that only tighten. Never a reset.
STRATEGY_COMMANDS = frozenset({Command.HEARTBEAT, Command.STATUS, Command.HALT, Command.REDUCE})
# Audited when carried out (status and heartbeats are not: they change nothing and are frequent).
AUDITED = frozenset(Command) - {Command.STATUS, Command.HEARTBEAT}
NO_RISK_SESSION = "no risk session configured: cancel-all and flatten need the agent's risk session"
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13
MAX_PEER_GROUPS = 1024
MAX_STRATEGIES = 64  # heartbeats tracked; a status answer must fit one frame
EXCERPT_BYTES = 32
UNIX, TCP = "unix", "tcp"


class Enforcer(Protocol):
    """What carries out ``cancel-all`` and ``flatten`` (the risk session). Raise ``Refused``."""

    async def cancel_all(self, who: str, why: str) -> Mapping[str, Any]:
        """Cancel every working order of the account; return what the venue confirmed."""

    async def flatten(self, who: str, why: str) -> Mapping[str, Any]:
        """Flatten every position; return what the venue confirmed."""


class NoEnforcer:
    """The default: refuses both, until a risk session is configured."""

    async def cancel_all(self, who: str, why: str) -> Mapping[str, Any]:
        """Refuse: there is no risk session."""
        raise Refused(NO_RISK_SESSION)

    async def flatten(self, who: str, why: str) -> Mapping[str, Any]:
        """Refuse: there is no risk session."""
        raise Refused(NO_RISK_SESSION)


class _Forbidden(Exception):
    """The peer may not send the command."""


class StartupError(RuntimeError):
    """The agent cannot start (another agent holds the socket, a file in its place, ...)."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection."""

    listener: str
    address: str
    uid: int | None = None
    strategy: bool = False  # a strategy's uid or group: only STRATEGY_COMMANDS

    def fields(self) -> dict[str, Any]:
        """Audit and log fields."""
        return {"listener": self.listener, "peer": self.address}


def excerpt(data: bytes) -> str:
    """A short ASCII rendering of untrusted input, for the audit."""
    return show(bytes(data[:EXCERPT_BYTES]), EXCERPT_BYTES * 4 + 3)


def peer_groups(sock: socket.socket) -> tuple[int, ...]:
    """The peer's supplementary groups (``SO_PEERGROUPS``), or () where unavailable."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_PEER_GROUPS)
    except OSError:
        return ()
    return struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])


# ----------------------------------------------------------------- the socket
def bind_unix(config: UnixConfig) -> socket.socket:
    """Bind the control socket with ``config.mode``; refuse if a live agent holds the path.

    A stale socket (nobody accepts on it) is replaced; anything else in its
    place, or a socket that answers, stops the start with ``StartupError``.
    """
    path = config.path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale: its agent is gone
        except OSError as exc:
            raise StartupError(
                f"{path}: cannot tell whether another agent holds it ({exc.strerror or exc}); "
                "refusing to replace it"
            ) from None
        else:
            raise StartupError(
                f"another agent answers on {path}; stop it first (refusing to unlink a live socket)"
            )
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~config.mode)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, config.mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


# ------------------------------------------------------------------ the agent
class Agent:
    """The agent process: state machine, listeners, liveness, audit."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        enforcer: Enforcer | None = None,
        holding: Callable[[], Iterable[Reason]] | None = None,
        log: EventLog | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        self.config = config
        self.enforcer: Enforcer = enforcer or NoEnforcer()
        self.hooks: Hooks = hooks or NoHooks()
        self.holding = holding or self.hooks.holding
        self.log = log or (open_log("agent", str(config.log)) if config.log else EventLog("agent"))
        self.clock = clock
        self.keys = KeyRing.load(config.tcp.keys) if config.tcp else KeyRing()
        self.nonces = NonceCache()
        self.audit_path = config.root / "state" / "audit.jsonl"
        self.tcp_address: tuple[str, int] | None = None
        self._machine: StateMachine | None = None
        self._heartbeats: dict[str, int] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._adopting: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = 0.0
        self.scheduling: dict[str, Any] = {}

    @property
    def machine(self) -> StateMachine:
        """The state machine (loaded once the socket is bound)."""
        if self._machine is None:
            raise RuntimeError("the agent has not started")
        return self._machine

    # --------------------------------------------------------- heartbeats
    def heartbeat_ns(self, strategy: str) -> int | None:
        """``time.monotonic_ns`` of ``strategy``'s last heartbeat, or None (for the breakers)."""
        return self._heartbeats.get(strategy)

    def heartbeats(self) -> Mapping[str, int]:
        """Every strategy's last heartbeat (``time.monotonic_ns``)."""
        return dict(self._heartbeats)

    # ----------------------------------------------------------- dispatch
    def trip(
        self, target: TradingState, reason: Reason, who: str, why: str, source: str = "command"
    ) -> Transition:
        """Tighten the state (published at once), then hand the transition to the hooks.

        The durable writes run on the loop's next turn, after the answer has been
        written and the halt sequence has frozen the strategies: a halt is
        confirmed once every strategy can see it (the record published in place,
        which survives the agent's crash), not after three fsyncs.
        """
        transition = self.machine.trip(target, reason, who, why, durable=False)
        if transition.changed:
            self.hooks.tripped(transition, source)
        try:
            asyncio.get_running_loop().call_soon(self._flush)
        except RuntimeError:  # called outside the agent's loop: durable now
            self._flush()
        return transition

    def _flush(self) -> None:
        try:
            self.machine.flush()
        except OSError as exc:  # the record is published; say loudly that it is not durable
            self.log.event("persist-failed", error=f"{type(exc).__name__}: {exc}")

    async def dispatch(self, request: Request) -> Mapping[str, Any]:
        """Carry out one authenticated request; raise ``Refused`` to decline it."""
        machine, args = self.machine, request.args
        if request.cmd is Command.HALT:
            assert isinstance(args, HaltArgs)
            trip = self.trip(TradingState.HALTED, args.reason_code, request.who, request.reason)
            return trip.as_dict()
        if request.cmd is Command.REDUCE:
            assert isinstance(args, ReduceArgs)
            trip = self.trip(TradingState.REDUCING, args.reason_code, request.who, request.reason)
            return trip.as_dict()
        if request.cmd is Command.RESET:
            assert isinstance(args, ResetArgs)
            resynced = await self.hooks.resync()
            done = machine.reset(
                TradingState[args.target],
                request.who,
                request.reason,
                holding=self.holding(),
                force=args.force,
                scope=args.scope,
            )
            extra = self.hooks.reset_done(done, args.force) if done.changed else {}
            if resynced:
                extra["resynced"] = resynced
            return {**done.as_dict(), **extra}
        if request.cmd is Command.STATUS:
            return self.status()
        if request.cmd is Command.CANCEL_ALL:
            return dict(await self.enforcer.cancel_all(request.who, request.reason))
        if request.cmd is Command.FLATTEN:
            return dict(await self.enforcer.flatten(request.who, request.reason))
        if request.cmd is Command.HEARTBEAT:
            assert isinstance(args, HeartbeatArgs)
            if args.strategy not in self._heartbeats and len(self._heartbeats) >= MAX_STRATEGIES:
                raise Refused(f"at most {MAX_STRATEGIES} strategies send heartbeats to one agent")
            self._heartbeats[args.strategy] = time.monotonic_ns()
            self.hooks.heartbeat(args.strategy)
            return {"strategy": args.strategy, "state": machine.snapshot.state.name}
        raise Refused(f"{request.cmd.value} is not carried out by this agent")  # pragma: no cover

    def status(self) -> dict[str, Any]:
        """The ``status`` answer: the state, this agent, the strategies' heartbeats."""
        now = time.monotonic_ns()
        return {
            "state": self.machine.snapshot.as_dict(),
            "agent": {
                "pid": os.getpid(),
                "version": __version__,
                "uptime_s": round(time.monotonic() - self._started, 3),
                "tcp": f"{self.tcp_address[0]}:{self.tcp_address[1]}" if self.tcp_address else None,
                "scheduling": self.scheduling,
            },
            "heartbeats": {k: round((now - v) / 1e9, 3) for k, v in self._heartbeats.items()},
            **self.hooks.status(),
        }

    async def execute(self, verified: Verified, peer: Peer) -> Response:
        """Dispatch an authenticated request; audit and log it; never raise."""
        request = verified.request
        started = time.perf_counter_ns()
        try:
            if peer.strategy and request.cmd not in STRATEGY_COMMANDS:
                allowed = ", ".join(sorted(c.value for c in STRATEGY_COMMANDS))
                raise _Forbidden(
                    f"a strategy may send {allowed}; {request.cmd.value} needs an operator"
                    " (unix.allowed_uids/gids)"
                )
            response = answer(request, await self.dispatch(request))
        except _Forbidden as exc:
            error = ProtocolError(ErrorCode.FORBIDDEN, str(exc))
            response = refusal(error.about(request.id, request.v))
        except Refused as exc:
            error = ProtocolError(ErrorCode.REFUSED, exc.text)
            response = refusal(error.about(request.id, request.v))
        except Exception as exc:
            self.log.event("dispatch-error", cmd=request.cmd.value, error=type(exc).__name__)
            text = f"the agent failed to carry out {request.cmd.value} ({type(exc).__name__})"
            response = refusal(ProtocolError(ErrorCode.INTERNAL, text).about(request.id, request.v))
        if verified.expired:
            event = "accepted_expired"
        elif verified.replayed:
            event = "accepted_replay"
        else:
            event = "command" if response.ok else "refused"
        fields: dict[str, Any] = {
            **peer.fields(),
            "cmd": request.cmd.value,
            "id": request.id,
            "who": request.who,
            "why": request.reason,
            "ok": response.ok,
        }
        if response.error is not None:
            fields["code"] = response.error.code.value
            fields["text"] = response.error.text
        if verified.expired:
            fields["ts"] = request.ts
        if event != "command" or request.cmd in AUDITED:
            self._audit(event, **fields)
        elapsed_ns = time.perf_counter_ns() - started
        if request.cmd is not Command.HEARTBEAT or not response.ok:
            self.log.event(event, **fields, latency_us=elapsed_ns // 1000)
        code = response.error.code.value if response.error is not None else None
        self.hooks.command_done(request.cmd.value, peer.listener, elapsed_ns / 1e9, code)
        return response

    def refuse(self, peer: Peer, error: ProtocolError, frame: bytes | None) -> Response:
        """Audit and log a refused frame; return the protocol error to send."""
        fields: dict[str, Any] = {**peer.fields(), "code": error.code.value, "text": error.text}
        if error.request_id is not None:
            fields["id"] = error.request_id
        if frame is not None:
            fields["excerpt"] = excerpt(frame)
        self._audit("refused", **fields)
        self.log.event("refused", **fields)
        self.hooks.refused(error.code.value, peer.listener)
        return refusal(error)

    def _audit(self, event: str, **fields: Any) -> None:
        try:
            append_audit(self.audit_path, "agent", event, **fields)
        except OSError as exc:  # the audit must not stop the agent; say so in the log
            self.log.event("audit-failed", audit_event=event, error=str(exc))

    # -------------------------------------------------------- connections
    def _handle_frame(self, listener: str, frame: bytes) -> Verified:
        now, window = self.clock(), self.config.replay_window_s
        if listener == TCP:
            return authenticate(
                frame, self.keys, now, window, nonces=self.nonces, lenient=TIGHTENING
            )
        request = parse_request(frame, now, window, lenient=TIGHTENING)
        return Verified(request, expired=is_expired(request, now, window))

    def _peer(self, listener: str, writer: asyncio.StreamWriter) -> tuple[Peer, bool]:
        """The peer and whether it may use this listener."""
        if listener == TCP:
            addr = writer.get_extra_info("peername")
            text = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
            return Peer(TCP, text), True
        return self._unix_peer(cast(socket.socket, writer.get_extra_info("socket")))

    def _hold_cpu_latency(self) -> int | None:
        """The config's PM QoS request, held until the agent stops; shown in ``scheduling``."""
        us = self.config.scheduling.cpu_latency_us
        if us is None:
            return None
        fd, error = scheduling.hold_cpu_latency(us)
        self.scheduling["cpu_latency_us"] = us if fd is not None else None
        if error is not None:
            self.scheduling["errors"] = sorted({*self.scheduling["errors"], error})
        return fd

    def _unix_pairs(self) -> tuple[tuple[Set[int], Set[int]], tuple[Set[int], Set[int]]]:
        unix = self.config.unix
        return (unix.allowed_uids, unix.allowed_gids), (unix.strategy_uids, unix.strategy_gids)

    def _unix_may_halt(self, sock: socket.socket) -> bool:
        """Whether this peer may use the socket: the accept thread's check, on the halt's path.

        The same answer as ``_unix_peer`` (``peer_may_connect``), without a ``Peer``.
        """
        try:
            _pid, uid, gid = peer_credentials(sock)
        except OSError:
            return False
        return peer_may_connect(uid, gid, functools.partial(peer_groups, sock), *self._unix_pairs())

    def _unix_peer(self, sock: socket.socket) -> tuple[Peer, bool]:
        """The Unix-socket peer (its credentials) and whether it may use the socket."""
        try:
            pid, uid, gid = peer_credentials(sock)
        except OSError:
            return Peer(UNIX, "unknown"), False
        groups = functools.partial(peer_groups, sock)
        operator, strategy = peer_roles(uid, gid, groups, *self._unix_pairs())
        address = f"pid={pid} uid={uid} gid={gid}"
        if operator:
            return Peer(UNIX, address, uid), True
        return Peer(UNIX, address, uid, strategy=strategy), strategy

    async def _send(self, writer: asyncio.StreamWriter, response: Response) -> None:
        try:
            data = encode_response(response)
        except ProtocolError as exc:
            data = encode_response(refusal(exc))
        writer.write(data)
        if writer.transport.get_write_buffer_size():  # only a slow reader makes us wait
            async with asyncio.timeout(self.config.limits.idle_timeout_s):
                await writer.drain()

    async def _connection(
        self, listener: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.config.limits
        peer, allowed = self._peer(listener, writer)
        full = len(self._writers) >= limits.max_clients
        self._writers.add(writer)
        try:
            if full:
                text = f"too many clients ({limits.max_clients}); retry"
                await self._send(writer, self.refuse(peer, ProtocolError("refused", text), None))
            elif not allowed:
                text = "this uid and its groups may not command the agent (unix.allowed_uids/gids)"
                await self._send(writer, self.refuse(peer, ProtocolError("forbidden", text), None))
            else:
                await self._frames(listener, peer, reader, writer)
        except (TimeoutError, ConnectionError, OSError):
            pass  # the client went away or stopped reading: nothing to answer
        except Exception as exc:  # never let one connection take the agent down
            self.log.event("connection-error", **peer.fields(), error=type(exc).__name__)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _frames(
        self,
        listener: str,
        peer: Peer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        limits = self.config.limits
        framer = FrameReader()
        errors = 0
        while errors < limits.max_errors_per_connection:
            try:
                # asyncio.timeout, not wait_for: no task per read on the halt's path.
                async with asyncio.timeout(limits.idle_timeout_s):
                    data = await reader.read(limits.read_size)
            except TimeoutError:
                self.log.event("idle-timeout", **peer.fields())
                return
            if not data:
                cut = framer.finish()
                if cut is not None:
                    await self._send(writer, self.refuse(peer, cut, None))
                return
            for item in framer.feed(data):
                if isinstance(item, ProtocolError):
                    response = self.refuse(peer, item, None)
                else:
                    try:
                        verified = self._handle_frame(listener, item)
                    except ProtocolError as exc:
                        response = self.refuse(peer, exc, item)
                    else:
                        response = await self.execute(verified, peer)
                await self._send(writer, response)
                if not response.ok:
                    errors += 1
                    if errors >= limits.max_errors_per_connection:
                        break
        text = f"{errors} refused frames on one connection; closing it"
        self.refuse(peer, ProtocolError("refused", text), None)

    def _loop_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` on the agent's loop (from the accept thread)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))

    def _adopt_unix(self, conn: socket.socket) -> None:
        """Serve a socket the accept thread took, as ``start_unix_server`` would."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        protocol = asyncio.StreamReaderProtocol(
            reader, lambda r, w: self._connection(UNIX, r, w), loop=loop
        )
        task = loop.create_task(loop.connect_accepted_socket(lambda: protocol, sock=conn))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    # --------------------------------------------------------- lifecycle
    async def _beat(self, writer: LivenessWriter) -> None:
        interval = self.config.liveness.interval_s
        while True:
            writer.beat()
            self.hooks.beat(time.time())
            await asyncio.sleep(interval)

    def _accept_thread_scheduling(self) -> None:
        applied = scheduling.apply(self.config.scheduling, this_thread=True)
        if applied["errors"]:
            self._loop_call(self.log.event, "scheduling-refused", thread="unix-accept", **applied)

    def stop(self) -> None:
        """Ask the agent to stop (from its loop, or a signal handler)."""
        if self._stop is not None:
            self._stop.set()

    def stop_threadsafe(self) -> None:
        """Ask the agent to stop from another thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop)

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Bind, load the state, serve until ``stop``; clean up the socket on the way out."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        unix_sock = bind_unix(self.config.unix)  # before anything is written: one agent only
        st = os.stat(self.config.unix.path)
        servers: list[asyncio.AbstractServer] = []
        acceptor: UnixAcceptor | None = None
        beat: asyncio.Task[None] | None = None
        liveness: LivenessWriter | None = None
        cpu_latency_fd: int | None = None
        try:
            # Every thread of now; the accept thread applies it to itself (on_start).
            self.scheduling = scheduling.apply(self.config.scheduling)
            cpu_latency_fd = self._hold_cpu_latency()
            if self.scheduling["errors"]:
                self.log.event("scheduling-refused", **self.scheduling)
            self._machine = StateMachine(self.config.root, clock=self.clock)
            liveness = LivenessWriter(self.config.liveness.path, self.config.liveness.interval_s)
            beat = asyncio.create_task(self._beat(liveness))
            acceptor = UnixAcceptor(
                unix_sock,
                allowed_to_halt=self._unix_may_halt,
                prepublish=self.machine.prepublish_halt,
                on_socket=lambda conn: self._loop_call(self._adopt_unix, conn),
                window_s=self.config.replay_window_s,
                on_error=lambda text: self._loop_call(self.log.event, "unix-accept", error=text),
                clock=self.clock,
                on_start=self._accept_thread_scheduling,
            )
            acceptor.start()
            if self.config.tcp is not None:
                tcp = await asyncio.start_server(
                    lambda r, w: self._connection(TCP, r, w),
                    self.config.tcp.host,
                    self.config.tcp.port,
                )
                servers.append(tcp)
                host, port = tcp.sockets[0].getsockname()[:2]
                self.tcp_address = (host, port)
            self.log.event(
                "start",
                pid=os.getpid(),
                socket=str(self.config.unix.path),
                tcp=list(self.tcp_address) if self.tcp_address else None,
                key_ids=sorted(self.keys),
                state=self.machine.snapshot.state.name,
                scheduling=self.scheduling,
            )
            await self.hooks.start(self)
            if ready is not None:
                ready()
            await self._stop.wait()
        finally:
            if self._machine is not None:
                self._flush()  # a trip's durable writes, if still due
            with contextlib.suppress(Exception):
                await self.hooks.stop()
            if acceptor is not None:
                await asyncio.to_thread(acceptor.stop)
            for server in servers:
                server.close()
            for writer in list(self._writers):
                writer.close()
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            if liveness is not None:
                liveness.close(stopped=True)
            unix_sock.close()
            if cpu_latency_fd is not None:
                os.close(cpu_latency_fd)  # the PM QoS request ends with the agent
            with contextlib.suppress(OSError):
                now = os.lstat(self.config.unix.path)
                if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                    os.unlink(self.config.unix.path)
            self.log.event("stop", pid=os.getpid())


def freeze_heap() -> None:
    """Take what is loaded so far (modules, config) out of the collector's scans.

    It lives as long as the agent process; a collection on the halt's path then
    walks only what is new. For the process entry points, not for an agent
    run in a thread of another program.
    """
    gc.collect()
    gc.freeze()


def run(config: AgentConfig, enforcer: Enforcer | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT; return the exit status."""
    agent = Agent(config, enforcer=enforcer)
    freeze_heap()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        await agent.serve()

    asyncio.run(main())
    return 0
