"""Property: the adapter survives any garbled frame (hypothesis, >= 10,000 frames).

Each example sends 50-60 garbled frames of every kind (``sessionkit.garbles``),
each followed by a valid Heartbeat with the next MsgSeqNum, then a TestRequest.
Checked per example: the TestRequest is answered with its TestReqID, the
expected MsgSeqNum is exactly one above the last valid frame (discarded frames
advanced nothing), one ``garbled_frame`` event per garbled frame, no Reject,
no Logout, no error logged, still logged on. Reproducible (derandomized).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.unit.brokers.rawfix import WAIT_S, Events, RawFixPeer, log_on, make_session
from tests.unit.brokers.sessionkit import (
    PROPERTY_MAX_FRAME,
    EventSink,
    GarbleRun,
    run_garble_property,
)
from tradeops.log import EventLog

pytestmark = pytest.mark.volume  # run once, not again on the newest core


@contextlib.asynccontextmanager
async def adapter() -> AsyncIterator[GarbleRun]:
    peer = RawFixPeer()
    sink = EventSink()
    session = make_session(peer, Events(), log=EventLog("adapter", sink))
    try:
        conn, _logon = await log_on(session, peer)
        session.connection.max_frame_bytes = PROPERTY_MAX_FRAME
        yield GarbleRun(conn, session.connection, sink)
    finally:
        peer.close()
        await asyncio.wait_for(session.close(), WAIT_S)


def test_garbled_frames_never_wedge_the_adapter():
    fed = run_garble_property(adapter)
    assert fed >= 10_000
