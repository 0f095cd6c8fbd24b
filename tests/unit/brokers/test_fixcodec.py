"""FastCodec writes what asyncfix's own encoder writes, faster."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.codec import Codec
from asyncfix.session import FIXSession

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
