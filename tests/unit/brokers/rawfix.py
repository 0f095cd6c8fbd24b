"""A test-only FIX 4.4 counterparty that shares no code with ``tradeops.brokers`` or asyncfix.

Frames are built here by hand (BodyLength and CheckSum computed below, SOH
separators) and what the adapter sends is parsed by splitting bytes. Every
frame the peer reads from the adapter is checked on the way in: BeginString
first, BodyLength second and equal to the byte count up to CheckSum, MsgType
third, a three-digit CheckSum equal to the byte sum modulo 256, our CompIDs
reversed, a well-formed SendingTime and, unless PossDupFlag=Y or a gap fill,
a MsgSeqNum exactly one above the previous one. A frame that breaks any rule
fails the test that reads it.

The peer listens on 127.0.0.1 only (or, with :func:`dial`, connects to the
simulator there as a client) and uses plain non-blocking sockets driven
by the test's event loop (``loop.sock_*``), so that a test owns the socket and
can close it with a FIN or a RST at a moment it chooses. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradeops.brokers.base import BrokerEvent, SessionConfig, SessionStatus
from tradeops.brokers.fix import FixSession
from tradeops.log import EventLog

SOH = b"\x01"
BEGIN = b"8=FIX.4.4"
HOST = "127.0.0.1"
TRADER = "TRADER"  # the adapter's SenderCompID
VENUE = "VENUE"  # the peer's SenderCompID
WAIT_S = 5.0  # default bound of every wait on the peer or the adapter
SENDING_TIME = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}(\.\d{3})?$")
SESSION_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})

Fields = Sequence[tuple[int | str, Any]]


class FrameError(AssertionError):
    """A frame from the adapter that breaks the FIX 4.4 wire rules."""


def checksum(data: bytes) -> int:
    """FIX CheckSum(10): the sum of every byte before the CheckSum field, modulo 256."""
    return sum(data) % 256


def utc_stamp() -> str:
    """A SendingTime in UTCTimestamp format with milliseconds."""
    return datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def build_frame(
    msg_type: str,
    fields: Fields = (),
    *,
    sender: str = VENUE,
    target: str = TRADER,
    seq: int | str | None = 1,
    header: Fields = (),
    sending_time: str | None = None,
    body_length: int | None = None,
    check: int | None = None,
) -> bytes:
    """Encode one FIX 4.4 frame by hand.

    ``header`` fields go after SendingTime (PossDupFlag, OrigSendingTime).
    ``seq=None`` leaves MsgSeqNum out; ``body_length`` and ``check`` override
    the computed values (to build garbled frames).
    """
    parts = [f"35={msg_type}", f"49={sender}", f"56={target}"]
    if seq is not None:
        parts.append(f"34={seq}")
    parts.append(f"52={sending_time or utc_stamp()}")
    parts += [f"{int(t)}={v}" for t, v in header]
    parts += [f"{int(t)}={v}" for t, v in fields]
    body = ("\x01".join(parts) + "\x01").encode("latin-1")
    length = len(body) if body_length is None else body_length
    head = BEGIN + SOH + f"9={length}".encode() + SOH + body
    total = checksum(head) if check is None else check
    return head + f"10={total:03d}".encode() + SOH


@dataclass(frozen=True)
class Frame:
    """One frame parsed from the wire: its bytes and its (tag, value) pairs in order."""

    raw: bytes
    pairs: tuple[tuple[str, str], ...]

    @property
    def msg_type(self) -> str:
        return self.pairs[2][1]

    @property
    def seq(self) -> int:
        return int(self.get("34"))

    @property
    def possdup(self) -> bool:
        return self.get("43") == "Y"

    @property
    def tags(self) -> list[str]:
        return [t for t, _value in self.pairs]

    def get(self, tag: int | str, default: str | None = None) -> str | None:
        """The first value of ``tag`` (None when absent)."""
        key = str(tag)
        for t, v in self.pairs:
            if t == key:
                return v
        return default

    def __getitem__(self, tag: int | str) -> str:
        value = self.get(tag)
        if value is None:
            raise KeyError(f"tag {tag} missing in {self}")
        return value

    def all(self, tag: int | str) -> list[str]:
        """Every value of ``tag``, in order (repeating groups)."""
        key = str(tag)
        return [v for t, v in self.pairs if t == key]

    def body(self) -> list[tuple[str, str]]:
        """The pairs after the standard header, without CheckSum."""
        header = {"8", "9", "35", "49", "56", "34", "52", "43", "122", "97"}
        return [(t, v) for t, v in self.pairs if t not in header and t != "10"]

    def __str__(self) -> str:
        return self.raw.replace(SOH, b"|").decode("latin-1")


def split_frames(buffer: bytes) -> tuple[list[Frame], bytes]:
    """Cut every complete frame off ``buffer``; return them and the incomplete rest.

    Raises FrameError on anything that is not a valid FIX 4.4 frame.
    """
    frames: list[Frame] = []
    while buffer:
        if (BEGIN + SOH).startswith(buffer):
            break  # a read ended inside the BeginString
        if not buffer.startswith(BEGIN + SOH):
            raise FrameError(f"frame does not start with 8=FIX.4.4: {buffer[:60]!r}")
        len_start = len(BEGIN) + 1
        len_end = buffer.find(SOH, len_start)
        if len_end < 0:
            break
        len_field = buffer[len_start:len_end]
        if not len_field.startswith(b"9=") or not len_field[2:].isdigit():
            raise FrameError(f"second field is not BodyLength: {buffer[:60]!r}")
        body_start = len_end + 1
        body_end = body_start + int(len_field[2:])
        frame_end = body_end + len(b"10=000") + 1
        if len(buffer) < frame_end:
            break
        trailer = buffer[body_end:frame_end]
        if not re.fullmatch(rb"10=\d{3}\x01", trailer):
            raise FrameError(
                f"BodyLength {int(len_field[2:])} does not end at CheckSum: "
                f"{buffer[: frame_end + 20]!r}"
            )
        if int(trailer[3:6]) != checksum(buffer[:body_end]):
            raise FrameError(
                f"CheckSum {trailer[3:6].decode()} != {checksum(buffer[:body_end]):03d}: "
                f"{buffer[:frame_end]!r}"
            )
        raw = buffer[:frame_end]
        pairs: list[tuple[str, str]] = []
        for item in raw[:-1].split(SOH):
            tag, sep, value = item.decode("latin-1").partition("=")
            if not sep or not tag.isdigit() or value == "":
                raise FrameError(f"bad field {item!r} in {raw!r}")
            pairs.append((tag, value))
        if pairs[2][0] != "35":
            raise FrameError(f"third field is not MsgType: {raw!r}")
        frames.append(Frame(raw, tuple(pairs)))
        buffer = buffer[frame_end:]
    return frames, buffer


class PeerConn:
    """One connection: reads and checks the other end's frames, sends hand-built ones.

    By default the peer is the venue (VENUE) facing the adapter (TRADER); ``ours`` and
    ``theirs`` swap the roles, e.g. a client facing the simulator (see :func:`dial`).
    """

    def __init__(
        self, sock: socket.socket, next_out: int = 1, ours: str = VENUE, theirs: str = TRADER
    ) -> None:
        self.sock = sock
        self.ours = ours
        self.theirs = theirs
        self.next_out = next_out  # MsgSeqNum of our next frame
        self.last_in: int | None = None  # last in-order MsgSeqNum seen from the adapter
        self.received: list[Frame] = []
        self._buffer = b""
        self._pending: list[Frame] = []
        self.eof = False

    # ---------------------------------------------------------------- reading
    def _check(self, frame: Frame) -> None:
        if frame.get("49") != self.theirs or frame.get("56") != self.ours:
            raise FrameError(f"CompIDs not ours: {frame}")
        if not SENDING_TIME.match(frame.get("52") or ""):
            raise FrameError(f"bad SendingTime: {frame}")
        seq_text = frame.get("34") or ""
        if not seq_text.isdigit():
            raise FrameError(f"bad MsgSeqNum: {frame}")
        if frame.possdup:
            # OrigSendingTime is required on resent messages; the adapter's gap fills
            # (35=4, 123=Y) carry PossDupFlag=Y without it, which QuickFIX tolerates.
            if frame.msg_type != "4" and not SENDING_TIME.match(frame.get("122") or ""):
                raise FrameError(f"PossDupFlag=Y without a valid OrigSendingTime: {frame}")
            return
        if frame.msg_type == "4" and frame.get("123") == "Y":
            return
        if self.last_in is not None and frame.seq != self.last_in + 1:
            raise FrameError(f"MsgSeqNum {frame.seq} after {self.last_in}: {frame}")
        self.last_in = frame.seq

    async def _fill(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not self._pending:
            if self.eof:
                raise EOFError("the adapter closed the connection")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no frame from the adapter in time")
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), remaining)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                continue
            frames, self._buffer = split_frames(self._buffer + chunk)
            for frame in frames:
                self._check(frame)
                self.received.append(frame)
            self._pending.extend(frames)

    async def recv(self, timeout: float = WAIT_S) -> Frame:
        """The next frame from the adapter (TimeoutError, EOFError if none)."""
        loop = asyncio.get_running_loop()
        await self._fill(loop.time() + timeout)
        return self._pending.pop(0)

    async def expect(
        self, msg_type: str, timeout: float = WAIT_S, skip: Iterable[str] = ("0",)
    ) -> Frame:
        """Read until a frame of ``msg_type``; frames of the ``skip`` types are passed over.

        Any other frame in between fails the test.
        """
        skipped = set(skip)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(deadline - loop.time(), 0.0))
            if frame.msg_type == msg_type:
                return frame
            if frame.msg_type not in skipped:
                raise AssertionError(f"expected 35={msg_type}, got {frame}")

    async def read_until_eof(self, timeout: float = WAIT_S) -> list[Frame]:
        """Every frame until the adapter closes the socket."""
        frames: list[Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(EOFError):
            while True:
                frames.append(await self.recv(max(deadline - loop.time(), 0.0)))
        return frames

    # ---------------------------------------------------------------- sending
    async def send_bytes(self, data: bytes) -> None:
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(self.sock, data), WAIT_S)

    def frame(self, msg_type: str, fields: Fields = (), **kwargs: Any) -> bytes:
        """Build our next frame (taking the next MsgSeqNum unless ``seq`` is given)."""
        if "seq" not in kwargs:
            kwargs["seq"] = self.next_out
            self.next_out += 1
        kwargs.setdefault("sender", self.ours)
        kwargs.setdefault("target", self.theirs)
        return build_frame(msg_type, fields, **kwargs)

    async def send(self, msg_type: str, fields: Fields = (), **kwargs: Any) -> bytes:
        data = self.frame(msg_type, fields, **kwargs)
        await self.send_bytes(data)
        return data

    async def answer_logon(self, heartbeat_s: int = 30, extra: Fields = (), **kwargs: Any) -> Frame:
        """Read the adapter's Logon and answer it with ours."""
        logon = await self.expect("A", skip=())
        await self.send("A", [(98, 0), (108, heartbeat_s), *extra], **kwargs)
        return logon

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close our end with a FIN."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def reset(self) -> None:
        """Close our end with a RST (SO_LINGER 0), as a crashed venue or a firewall would."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


class RawFixPeer:
    """A listening socket on 127.0.0.1 with an ephemeral port."""

    def __init__(self, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:  # inherited by accepted sockets
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.conns: list[PeerConn] = []

    async def accept(self, timeout: float = WAIT_S, next_out: int = 1) -> PeerConn:
        loop = asyncio.get_running_loop()
        sock, addr = await asyncio.wait_for(loop.sock_accept(self.sock), timeout)
        assert addr[0] == HOST
        sock.setblocking(False)
        conn = PeerConn(sock, next_out=next_out)
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


async def dial(port: int, ours: str, theirs: str, next_out: int = 1) -> PeerConn:
    """Connect to ``port`` on 127.0.0.1 as ``ours`` (a raw client of the simulator)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), WAIT_S)
    except BaseException:
        sock.close()
        raise
    return PeerConn(sock, next_out=next_out, ours=ours, theirs=theirs)


class Events:
    """The adapter's ``on_event`` callback: records events, lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[BrokerEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: BrokerEvent) -> None:
        self.items.append(event)
        self._changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]

    def statuses(self) -> list[str]:
        return [e.state for e in self.items if isinstance(e, SessionStatus)]

    async def wait_for(
        self, pred: Callable[[Any], bool], timeout: float = WAIT_S, start: int = 0
    ) -> Any:
        """The first event from index ``start`` on that satisfies ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = start
        while True:
            while index < len(self.items):
                event = self.items[index]
                index += 1
                if pred(event):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching event; got {self.items}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_kind(self, kind: type, timeout: float = WAIT_S, start: int = 0) -> Any:
        return await self.wait_for(lambda e: isinstance(e, kind), timeout, start)

    async def wait_status(self, state: str, timeout: float = WAIT_S, start: int = 0) -> Any:
        return await self.wait_for(
            lambda e: isinstance(e, SessionStatus) and e.state == state, timeout, start
        )


def make_session(
    peer: RawFixPeer,
    events: Events,
    *,
    heartbeat_s: int = 30,
    account: str | None = "ACC1",
    store_dir: str | None = None,
    log: EventLog | None = None,
    reset_on_logon: bool = False,
    **extra: str,
) -> FixSession:
    config = SessionConfig(
        host=HOST,
        port=peer.port,
        sender_comp_id=TRADER,
        target_comp_id=VENUE,
        account=account,
        heartbeat_s=heartbeat_s,
        store_dir=store_dir,
        extra=dict(extra),
    )
    return FixSession(config, events, log=log, reset_on_logon=reset_on_logon)


async def log_on(
    session: FixSession,
    peer: RawFixPeer,
    *,
    next_out: int = 1,
    heartbeat_s: int = 30,
    extra: Fields = (),
) -> tuple[PeerConn, Frame]:
    """Connect ``session`` to ``peer`` and answer its Logon; return the connection and Logon."""
    task = asyncio.create_task(session.connect(timeout_s=WAIT_S))
    try:
        conn = await peer.accept(next_out=next_out)
        logon = await conn.answer_logon(heartbeat_s=heartbeat_s, extra=extra)
        await asyncio.wait_for(task, WAIT_S)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    return conn, logon


@contextlib.asynccontextmanager
async def venue(
    *, rcvbuf: int | None = None, logon: bool = True, **session_kwargs: Any
) -> AsyncIterator[tuple[FixSession, PeerConn | None, Events, RawFixPeer]]:
    """A peer, a FixSession connected and logged on to it (unless ``logon=False``).

    On exit the peer closes its sockets first, so that the session's Logout
    is not left waiting for an answer, then the session is closed.
    """
    peer = RawFixPeer(rcvbuf=rcvbuf)
    events = Events()
    session = make_session(peer, events, **session_kwargs)
    try:
        conn = None
        if logon:
            conn, _logon = await log_on(
                session, peer, heartbeat_s=session_kwargs.get("heartbeat_s", 30)
            )
        yield session, conn, events, peer
    finally:
        peer.close()
        await asyncio.wait_for(session.close(), WAIT_S)


def run(coro: Any, timeout_s: float = 15.0) -> Any:
    """Run one test scenario on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def er_fields(
    cl_ord_id: str,
    exec_id: str,
    exec_type: str,
    ord_status: str,
    *,
    order_id: str = "O1",
    symbol: str = "ESZ5",
    side: str = "1",
    order_qty: str = "10",
    cum_qty: str = "0",
    leaves_qty: str | None = "10",
    last_qty: str | None = None,
    last_px: str | None = None,
    price: str | None = "100.25",
    extra: Fields = (),
) -> list[tuple[int | str, Any]]:
    """Fields of an ExecutionReport (8), in FIX 4.4 order."""
    out: list[tuple[int | str, Any]] = [
        (37, order_id),
        (11, cl_ord_id),
        (17, exec_id),
        (150, exec_type),
        (39, ord_status),
        (1, "ACC1"),
        (55, symbol),
        (54, side),
        (38, order_qty),
    ]
    if price is not None:
        out.append((44, price))
    if last_qty is not None:
        out.append((32, last_qty))
    if last_px is not None:
        out.append((31, last_px))
    if leaves_qty is not None:
        out.append((151, leaves_qty))
    out += [(14, cum_qty), (6, last_px or "0"), (60, "20250102-03:04:05.678"), *extra]
    return out
