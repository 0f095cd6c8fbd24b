"""FastCodec writes what asyncfix's own encoder writes, faster."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.codec import Codec
from asyncfix.session import FIXSession
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.brokers.fixcodec import FastCodec
from tradeops.brokers.fixproto import TradeopsFIX44
from tradeops.sim import fixapp
from tradeops.sim.engine import PositionView
from tradeops.sim.prices import Tick

PROTOCOL = TradeopsFIX44()
SENDING_TIME = re.compile(r"\x0152=[^\x01]*")
CHECKSUM = re.compile(r"10=\d{3}\x01$")


def _session() -> FIXSession:
    session = FIXSession(1, "SIM", "ACC1_OE")
    session.next_num_out = 7
    session.next_num_in = 1
    return session


def _order() -> FIXMessage:
    m = FIXMessage(FMsg.NEWORDERSINGLE)
    m[FTag.ClOrdID] = "o1"
    m[FTag.Symbol] = "ESZ5"
    m[FTag.Side] = "1"
    m[FTag.OrderQty] = "2"
    return m


def _gap_fill() -> FIXMessage:
    m = FIXMessage(FMsg.SEQUENCERESET)
    m[FTag.MsgSeqNum] = 3
    m[FTag.PossDupFlag] = "Y"
    m[FTag.GapFillFlag] = "Y"
    m[FTag.NewSeqNo] = 9
    return m


def _resent() -> FIXMessage:
    m = _order()
    m[FTag.MsgSeqNum] = 4
    m[FTag.PossDupFlag] = "Y"
    return m


def _position() -> FIXMessage:
    view = PositionView("ACC1", "ESZ5", Decimal(-3), Decimal(101), Decimal("12.5"),
                        Decimal("-7.5"), Decimal("100.125"), Decimal(100))  # fmt: skip
    return fixapp.position_report("P1", "p", 1, view, True)


def _market_data() -> FIXMessage:
    tick = Tick(Decimal(99), Decimal(101), Decimal(100), Decimal(5), Decimal(6))
    return fixapp.md_incremental("md1", "ESZ5", tick, 12, True)


@pytest.mark.parametrize("make", [_order, _gap_fill, _resent, _position, _market_data])
def test_the_same_message_as_asyncfix_and_one_asyncfix_decodes(make) -> None:
    ours_session, theirs_session = _session(), _session()
    ours = FastCodec(PROTOCOL).encode(make(), ours_session)
    theirs = Codec(PROTOCOL).encode(make(), theirs_session)

    def comparable(text: str) -> str:
        return CHECKSUM.sub("", SENDING_TIME.sub("", text))

    # Everything but SendingTime (the clock) and CheckSum (which covers it) is the same.
    assert comparable(ours) == comparable(theirs)
    assert ours_session.next_num_out == theirs_session.next_num_out
    decoded, consumed, _raw = Codec(PROTOCOL).decode(ours.encode())
    assert decoded is not None  # the checksum and BodyLength are right
    assert consumed == len(ours)
    assert decoded.msg_type == make().msg_type


def test_body_length_and_checksum_count_bytes() -> None:
    m = _order()
    m[FTag.Text] = "prix élevé"
    frame = FastCodec(PROTOCOL).encode(m, _session()).encode()
    body_length = int(re.search(rb"\x019=(\d+)\x01", frame).group(1))
    start = frame.index(b"\x0135=") + 1
    end = frame.rindex(b"10=")
    assert body_length == end - start
    assert int(frame[end + 3 : end + 6]) == sum(frame[:end]) % 256


def _decoded(codec: Codec, frame: bytes) -> tuple[object, dict[str, object], int] | None:
    msg, consumed, _raw = codec.decode(frame)
    if msg is None:
        return None
    return msg.msg_type, {tag: str(value) for tag, value in msg.tags.items()}, consumed


_VALUES = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="\x01"),
    min_size=1,
    max_size=12,
)
_FIELDS = st.lists(
    st.tuples(st.sampled_from(["1", "11", "38", "44", "54", "55", "58", "60", "11"]), _VALUES),
    max_size=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(msg_type=st.sampled_from(["D", "F", "8", "AF", "ZZ"]), fields=_FIELDS)
def test_the_fast_decoder_reads_what_asyncfix_reads(msg_type: str, fields) -> None:
    body = "".join(f"{t}={v}\x01" for t, v in [("35", msg_type), ("34", "5"), *fields])
    head = f"8=FIX.4.4\x019={len(body)}\x01"
    frame = (head + body + f"10={sum((head + body).encode()) % 256:03d}\x01").encode()
    assert _decoded(FastCodec(PROTOCOL), frame) == _decoded(Codec(PROTOCOL), frame)
    broken = frame[:-3] + b"%03d" % ((int(frame[-4:-1]) + 1) % 1000) + b"\x01"
    assert _decoded(FastCodec(PROTOCOL), broken) == _decoded(Codec(PROTOCOL), broken)


@pytest.mark.parametrize("make", [_position, _market_data, _order])
def test_messages_with_groups_and_partial_frames_decode_as_asyncfix_does(make) -> None:
    frame = FastCodec(PROTOCOL).encode(make(), _session()).encode()
    for data in (frame, frame[:-5], frame + frame[:20], b"garbage" + frame):
        assert _decoded(FastCodec(PROTOCOL), data) == _decoded(Codec(PROTOCOL), data)
