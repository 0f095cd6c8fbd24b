"""Property: the simulator survives any garbled frame (hypothesis, >= 10,000 frames).

The same property as ``tests/unit/brokers/test_fixconn_garbled_property.py``,
with the in-process simulator's acceptor as the receiver and a raw client as
the sender (see ``sessionkit.GarbleRun`` for what is checked).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.unit.brokers.rawfix import dial
from tests.unit.brokers.sessionkit import (
    CLIENT,
    PROPERTY_MAX_FRAME,
    SIM,
    SIM_CONFIG,
    EventSink,
    GarbleRun,
    log_on_sim,
    run_garble_property,
)
from tradeops.log import EventLog
from tradeops.sim.config import parse_config
from tradeops.sim.server import SimServer

pytestmark = pytest.mark.volume  # run once, not again on the newest core


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[GarbleRun]:
    sink = EventSink()
    config = {**SIM_CONFIG, "fix": {"max_frame_bytes": PROPERTY_MAX_FRAME}}
    sim = SimServer(parse_config(config), EventLog("sim", sink))
    await sim.start()
    conn = None
    try:
        conn = await dial(sim.ports[CLIENT], CLIENT, SIM)
        await log_on_sim(conn)
        acceptor = sim.acceptors[CLIENT]
        assert acceptor.max_frame_bytes == PROPERTY_MAX_FRAME  # from the configuration
        yield GarbleRun(conn, acceptor, sink)
    finally:
        if conn is not None:
            conn.close()
        await sim.stop()


def test_garbled_frames_never_wedge_the_simulator():
    fed = run_garble_property(simulator)
    assert fed >= 10_000
