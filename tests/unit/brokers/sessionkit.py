"""Helpers for the session-layer tests of both FIX ends (adapter and simulator).

* Garbled frames, built by hand with ``rawfix.build_frame`` (no tradeops
  code): one table of named cases (:data:`GARBLED_CASES`) for the example
  tests and one hypothesis strategy (:func:`garbles`) for the property tests.
  Each garbled frame carries the MsgSeqNum the receiver expects next, so
  that one accepted by mistake would advance the sequence and show.
* Header faults that FIX 4.4 answers with a session Reject (:data:`HEADER_FAULTS`).
* :func:`logged`: the JSON events an ``EventLog`` wrote into a ``StringIO``.
* :func:`sim_peer`: an in-process simulator (one order-entry session,
  ``CLIENT`` -> ``SIM``) with a raw client connected (and logged on).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.unit.brokers.rawfix import SOH, Frame, PeerConn, build_frame, checksum, dial, utc_stamp
from tradeops.log import EventLog
from tradeops.sim.acceptor import SessionAcceptor
from tradeops.sim.config import parse_config
from tradeops.sim.server import SimServer

CLIENT = "CLIENT"  # the raw client's CompID towards the simulator
SIM = "SIM"
FRAME_START = re.compile(rb"8=FIXT?\.\d\.\d\x019=")  # this file's own copy, not fixconn's

Builder = Callable[[int, str, str], bytes]  # (MsgSeqNum, sender, target) -> bytes


# ------------------------------------------------------------ garbled frames
def _report(seq: int, sender: str, target: str, **kwargs: Any) -> bytes:
    fields = [(11, "g1"), (17, "G1"), (150, "0"), (39, "0"), (55, "ESZ5"), (54, "1")]
    return build_frame("8", fields, sender=sender, target=target, seq=seq, **kwargs)


def _replace_length(frame: bytes, text: bytes) -> bytes:
    start = frame.index(SOH + b"9=") + 3
    end = frame.index(SOH, start)
    return frame[:start] + text + frame[end:]


def _stated_length(frame: bytes) -> int:
    start = frame.index(SOH + b"9=") + 3
    return int(frame[start : frame.index(SOH, start)])


def raw_frame(parts: list[str]) -> bytes:
    """A frame of the fields ``parts`` as given, with the right BodyLength and CheckSum."""
    body = ("\x01".join(parts) + "\x01").encode("latin-1")
    head = b"8=FIX.4.4" + SOH + f"9={len(body)}".encode() + SOH + body
    return head + f"10={checksum(head):03d}".encode() + SOH


def _reorder(seq: int, sender: str, target: str, drop_msg_type: bool) -> bytes:
    """A frame whose MsgType is not the third field (or absent), with a right length and sum."""
    parts = [f"49={sender}", f"56={target}", f"34={seq}", f"52={utc_stamp()}"]
    if not drop_msg_type:
        parts.insert(2, "35=0")
    return raw_frame(parts)


def _with_check(frame: bytes, delta: int) -> bytes:
    """``frame`` with its CheckSum moved by ``delta`` (wrong unless ``delta`` is 0 mod 256)."""
    return frame[:-4] + f"{(int(frame[-4:-1]) + delta) % 256:03d}".encode() + SOH


def _bad_checksum(seq: int, sender: str, target: str) -> bytes:
    return _with_check(_report(seq, sender, target), 1)


GARBLED_CASES: dict[str, tuple[Builder, str]] = {
    "non-numeric BodyLength": (
        lambda s, a, b: _replace_length(_report(s, a, b), b"1x0"),
        "body_length_invalid",
    ),
    "empty BodyLength": (
        lambda s, a, b: _replace_length(_report(s, a, b), b""),
        "body_length_invalid",
    ),
    "BodyLength too short": (
        lambda s, a, b: _report(s, a, b, body_length=_stated_length(_report(s, a, b)) - 5),
        "body_length_mismatch",
    ),
    "BodyLength too long": (
        lambda s, a, b: _report(s, a, b, body_length=_stated_length(_report(s, a, b)) + 300),
        "truncated",
    ),
    "bad CheckSum": (_bad_checksum, "bad_checksum"),
    "MsgType missing": (lambda s, a, b: _reorder(s, a, b, True), "msg_type_not_third"),
    "MsgType not third": (lambda s, a, b: _reorder(s, a, b, False), "msg_type_not_third"),
    "truncated frame": (lambda s, a, b: _report(s, a, b)[:-20], "truncated"),
    "garbage between frames": (lambda s, a, b: b"\x00\xffhello\r\n8=FIY", "garbage"),
    "frame larger than the limit": (
        lambda s, a, b: _report(s, a, b, body_length=2_000_000),
        "frame_too_large",
    ),
}


# ------------------------------------------------------ hypothesis strategy
@dataclass(frozen=True)
class Garble:
    """One garbled frame to render with the receiver's next MsgSeqNum."""

    kind: str
    msg_type: str
    fields: tuple[tuple[int, str], ...]
    amount: int = 0  # length delta, cut offset, CheckSum delta, stated length or body size
    text: bytes = b""  # BodyLength text or garbage bytes

    def render(self, seq: int, sender: str, target: str) -> bytes:
        """The bytes of this garbled frame."""
        if self.kind == "garbage":
            return self.text
        if self.kind in ("msg_type_missing", "msg_type_not_third"):
            return _reorder(seq, sender, target, self.kind == "msg_type_missing")
        stamp = utc_stamp()  # one SendingTime: the variants differ only where meant to

        def frame(**kwargs: Any) -> bytes:
            return build_frame(
                self.msg_type,
                self.fields,
                sender=sender,
                target=target,
                seq=seq,
                sending_time=stamp,
                **kwargs,
            )

        good = frame()
        length = _stated_length(good)
        render: dict[str, Callable[[], bytes]] = {
            "body_length_text": lambda: _replace_length(good, self.text),
            "body_length_short": lambda: frame(body_length=max(length - self.amount, 0)),
            "body_length_long": lambda: frame(body_length=length + self.amount),
            "bad_checksum": lambda: _with_check(good, self.amount),
            "truncated": lambda: good[: max(1, min(self.amount, len(good) - 1))],
            "too_large": lambda: _replace_length(good, str(self.amount).encode()),
            "too_large_body": lambda: build_frame(
                self.msg_type,
                (*self.fields, (58, "x" * self.amount)),
                sender=sender,
                target=target,
                seq=seq,
            ),
        }
        return render[self.kind]()


_VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .-_", min_size=1, max_size=24)
_FIELD = st.tuples(st.sampled_from([1, 11, 17, 37, 38, 39, 44, 54, 55, 58, 150, 9999]), _VALUE)
_MSG_TYPE = st.sampled_from(["0", "8", "D", "F", "j", "AP"])


def _is_garbage(data: bytes) -> bool:
    """Bytes that only end where the next frame starts (they hold no frame start)."""
    found = FRAME_START.search(data + b"8=FIX.4.4\x019=")
    return found is not None and found.start() == len(data)


def garbles(max_frame: int) -> st.SearchStrategy[Garble]:
    """Garbled frames of every kind the session layer must discard."""
    framed = st.builds(
        Garble,
        kind=st.sampled_from(
            ["body_length_short", "body_length_long", "bad_checksum", "truncated"]
        ),
        msg_type=_MSG_TYPE,
        fields=st.lists(_FIELD, max_size=8).map(tuple),
        amount=st.integers(1, 255),
    )
    length_text = st.builds(
        Garble,
        kind=st.just("body_length_text"),
        msg_type=_MSG_TYPE,
        fields=st.lists(_FIELD, max_size=4).map(tuple),
        text=st.one_of(
            st.binary(max_size=8).filter(lambda b: not b.isdigit() and b"\x01" not in b),
            st.integers(10**9, 10**12).map(lambda n: str(n).encode()),  # too many digits
        ),
    )
    too_large = st.builds(
        Garble,
        kind=st.sampled_from(["too_large", "too_large", "too_large_body"]),
        msg_type=_MSG_TYPE,
        fields=st.lists(_FIELD, max_size=4).map(tuple),
        amount=st.integers(max_frame, 3 * max_frame),  # stated, or the size of a real body
    )
    garbage = st.builds(
        Garble,
        kind=st.just("garbage"),
        msg_type=st.just(""),
        fields=st.just(()),
        text=st.binary(min_size=1, max_size=48).filter(_is_garbage),
    )
    header = st.builds(
        Garble,
        kind=st.sampled_from(["msg_type_missing", "msg_type_not_third"]),
        msg_type=st.just("0"),
        fields=st.just(()),
    )
    return st.one_of(framed, framed, length_text, too_large, garbage, header)


# ----------------------------------------------------------- header faults
def _no_tag(tag: int) -> Callable[[int, str, str], bytes]:
    """A TestRequest without header ``tag`` (CompIDs, SendingTime)."""

    def build(seq: int, sender: str, target: str) -> bytes:
        parts = ["35=1", f"49={sender}", f"56={target}", f"34={seq}", f"52={utc_stamp()}"]
        return raw_frame([p for p in parts if not p.startswith(f"{tag}=")] + ["112=x"])

    return build


# name -> (builder, SessionRejectReason, RefTagID or None)
HEADER_FAULTS: dict[str, tuple[Builder, str, str | None]] = {
    "SenderCompID missing": (_no_tag(49), "1", "49"),
    "TargetCompID missing": (_no_tag(56), "1", "56"),
    "SendingTime missing": (_no_tag(52), "1", "52"),
    "SendingTime badly formatted": (
        lambda s, a, b: build_frame(
            "1", [(112, "x")], sender=a, target=b, seq=s, sending_time="yesterday"
        ),
        "6",
        "52",
    ),
    "PossDupFlag without OrigSendingTime": (
        lambda s, a, b: build_frame(
            "1", [(112, "x")], sender=a, target=b, seq=s, header=[(43, "Y")]
        ),
        "1",
        "122",
    ),
    "header tag repeated": (
        lambda s, a, b: build_frame(
            "1", [(112, "x")], sender=a, target=b, seq=s, header=[(52, utc_stamp())]
        ),
        "13",
        "52",
    ),
    "field without a tag number": (
        lambda s, a, b: raw_frame(
            ["35=1", f"49={a}", f"56={b}", f"34={s}", f"52={utc_stamp()}", "112=x", "abc=y"]
        ),
        "0",
        None,
    ),
}


# ------------------------------------------------------------------ events
def logged(stream: io.StringIO, event: str | None = None, start: int = 0) -> list[dict[str, Any]]:
    """The JSON events in ``stream`` (from line ``start``), only ``event`` ones if given."""
    lines = stream.getvalue().splitlines()[start:]
    records = [json.loads(line) for line in lines]
    return [r for r in records if event is None or r["event"] == event]


# ----------------------------------------------------------- the simulator
@dataclass
class SimPeer:
    """An in-process simulator and a raw client of its order-entry session."""

    sim: SimServer
    conn: PeerConn
    stream: io.StringIO

    @property
    def acceptor(self) -> SessionAcceptor:
        return self.sim.acceptors[CLIENT]

    @property
    def port(self) -> int:
        return self.sim.ports[CLIENT]

    async def reconnect(self, next_out: int, logon: bool = True, **kwargs: Any) -> PeerConn:
        """Close the client's socket, wait for the simulator to notice, dial again."""
        self.conn.close()
        await wait_until(lambda: not self.acceptor.is_connected)
        self.conn = await dial(self.port, CLIENT, SIM, next_out=next_out)
        if logon:
            await log_on_sim(self.conn, **kwargs)
        return self.conn


SIM_CONFIG: dict[str, Any] = {
    "host": "127.0.0.1",
    "port_base": 0,
    "admin": {"port": 0},
    "seed": 1,
    "sim_comp_id": SIM,
    "symbols": [{"symbol": "ESZ5", "price": 100, "tick_size": 0.25, "volatility_ticks": 0}],
    "accounts": [
        {"account": "ACC1", "sessions": [{"role": "order_entry", "comp_id": CLIENT}]},
    ],
}


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until ``pred()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def log_on_sim(conn: PeerConn, reset: bool = False, heartbeat_s: int = 30) -> Frame:
    """Send the client's Logon; return the simulator's answer."""
    fields: list[tuple[int | str, Any]] = [(98, 0), (108, heartbeat_s)]
    if reset:
        fields.append((141, "Y"))
    await conn.send("A", fields)
    return await conn.expect("A", skip=())


@contextlib.asynccontextmanager
async def sim_peer(
    store_dir: str | None = None, logon: bool = True, fix: dict[str, Any] | None = None
) -> AsyncIterator[SimPeer]:
    """Start a simulator, dial its session as a raw client (logged on unless ``logon=False``).

    ``fix`` is the simulator's ``fix`` configuration section.
    """
    cfg = parse_config({**SIM_CONFIG, "store_dir": store_dir, "fix": fix or {}})
    stream = io.StringIO()
    sim = SimServer(cfg, EventLog("sim", stream))
    await sim.start()
    conn: PeerConn | None = None
    try:
        conn = await dial(sim.ports[CLIENT], CLIENT, SIM)
        if logon:
            await log_on_sim(conn)
        peer = SimPeer(sim, conn, stream)
        yield peer
        conn = peer.conn
    finally:
        if conn is not None:
            conn.close()
        await sim.stop()


# ---------------------------------------------------------- property driver
class EventSink(io.StringIO):
    """An ``EventLog`` stream that also keeps its lines, so that new events are cheap to read."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.lines.extend(s.splitlines())  # EventLog writes whole lines
        return super().write(s)

    def since(self, start: int) -> list[dict[str, Any]]:
        """The events written from line ``start`` on."""
        return [json.loads(line) for line in self.lines[start:]]


BATCH = (50, 60)  # garbled frames per hypothesis example (min, max)
PROPERTY_EXAMPLES = 220  # examples per side: 50-60 frames each, >= 11,000 frames
PROPERTY_MAX_FRAME = 4096  # the receiver's max_frame_bytes during the property tests


@dataclass
class GarbleRun:
    """Feeds batches of garbled frames to one receiver over one connection and checks it.

    Each garbled frame is followed by a valid Heartbeat with the next MsgSeqNum,
    each batch by a TestRequest that must be answered with its TestReqID.
    """

    conn: PeerConn  # the raw peer's connection
    receiver: Any  # the TradeopsConnection under test
    sink: EventSink
    fed: int = 0
    _seen: int = 0

    async def feed(self, batch: list[Garble]) -> None:
        """Send ``batch`` and check every property of the session layer."""
        assert self.receiver.next_seq_in == self.conn.next_out
        garbled_before = self.receiver.stats["garbled_frames"]
        chunks: list[bytes] = []
        for garble in batch:
            chunks.append(garble.render(self.conn.next_out, self.conn.ours, self.conn.theirs))
            chunks.append(self.conn.frame("0"))
        probe = f"probe-{self.fed}"
        chunks.append(self.conn.frame("1", [(112, probe)]))
        await self.conn.send_bytes(b"".join(chunks))
        answer = await self.conn.expect("0", skip=())
        assert answer["112"] == probe, answer
        # Discarded frames advanced nothing: every valid frame was in sequence.
        assert self.receiver.next_seq_in == self.conn.next_out
        assert self.receiver.stats["garbled_frames"] - garbled_before == len(batch)
        events = self.sink.since(self._seen)
        self._seen += len(events)
        garbled = [e for e in events if e["event"] == "garbled_frame"]
        assert len(garbled) == len(batch), [e["reason"] for e in garbled]
        assert all(e["excerpt"] and e["size"] > 0 for e in garbled)
        bad = [
            e
            for e in events
            if e["event"] in ("session_reject_sent", "session_violation")
            or (e["event"] == "fix_engine" and e["level"] in ("error", "critical"))
        ]
        assert not bad, bad
        assert self.receiver.is_live
        self.fed += len(batch)


def run_garble_property(
    start: Callable[[], contextlib.AbstractAsyncContextManager[GarbleRun]],
) -> int:
    """Run the hypothesis property over one connection; return how many frames were fed."""
    loop = asyncio.new_event_loop()
    manager = start()
    try:
        runner = loop.run_until_complete(asyncio.wait_for(manager.__aenter__(), 10))
        failures: list[BaseException] = []

        @settings(
            max_examples=PROPERTY_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],  # state carries over: a shrunk example would not replay
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(batch=st.lists(garbles(PROPERTY_MAX_FRAME), min_size=BATCH[0], max_size=BATCH[1]))
        def feed(batch: list[Garble]) -> None:
            # Hypothesis replays a failing example at the end, on a connection the first
            # failure has left broken: report the first failure, not the replay's.
            if failures:
                raise failures[0]
            try:
                loop.run_until_complete(asyncio.wait_for(runner.feed(batch), 30))
            except BaseException as exc:
                failures.append(exc)
                raise

        feed()
        return runner.fed
    finally:
        loop.run_until_complete(asyncio.wait_for(manager.__aexit__(None, None, None), 15))
        loop.close()
