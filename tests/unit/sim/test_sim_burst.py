"""SessionAcceptor's writer queue: a burst keeps the session's order and lets the loop run.

The acceptors are real (asyncfix connections, in-memory journals) but never
connected: ``_deliver`` is replaced by a recorder, so what is checked is the
queue's order, how often each burst message is built, and the turns the
writer gives the loop, all deterministic under asyncio's FIFO scheduling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncfix import FIXMessage, FMsg, FTag

from tests.unit.sim.conftest import make_config
from tradeops.brokers.fixproto import make_protocol
from tradeops.brokers.memjournal import MemoryJournaler
from tradeops.sim.acceptor import BURST_SLICE, SessionAcceptor
from tradeops.sim.server import ReportBurst


class App:
    """The little of the simulator an acceptor's writer asks for."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency = latency_s

    def latency_s(self, acceptor: SessionAcceptor) -> float:
        return self.latency

    def count_out(self, acceptor: SessionAcceptor, msg: FIXMessage, sent: bool) -> None:
        """Not counted here."""


class Source:
    """A MessageSource that builds each message whenever it is asked."""

    def message(self, index: int) -> FIXMessage:
        return plain(f"c{index}")


def acceptor(name: str, written: list[str], app: App) -> SessionAcceptor:
    spec = next(s for s in make_config().sessions if s.name == name)
    acc = SessionAcceptor(spec, app, make_protocol(), MemoryJournaler(), "127.0.0.1", 30)

    async def record(msg: FIXMessage, store_if_down: bool) -> None:
        written.append(f"{name}:{msg[FTag.ClOrdID]}")

    acc._deliver = record  # type: ignore[method-assign]
    return acc


def plain(cl_ord_id: str) -> FIXMessage:
    msg = FIXMessage(FMsg.EXECUTIONREPORT)
    msg[FTag.ClOrdID] = cl_ord_id
    return msg


async def drain(*accs: SessionAcceptor) -> None:
    for _turn in range(10_000):
        if all(a._outq_task is None for a in accs):
            return
        await asyncio.sleep(0)
    raise AssertionError("the writer tasks did not finish")


def test_a_later_message_waits_behind_the_burst_and_each_message_is_built_once() -> None:
    n = 3 * BURST_SLICE + 5
    written: list[str] = []

    async def scenario() -> dict[str, Any]:
        app = App()
        oe, dc = acceptor("ACC1_OE", written, app), acceptor("ACC1_DC", written, app)
        builds = [0] * n

        def build(index: Any) -> FIXMessage:
            builds[index] += 1
            return plain(f"c{index}")

        source = ReportBurst(build, list(range(n)))  # the simulator's: builds each once
        oe.send_burst(source, range(0, n, 2))  # the owner of the even orders
        dc.send_burst(source, range(n))  # the drop copy gets them all
        await oe.send_app(plain("after"))  # a later report on the owner's session
        assert written == []  # nothing was built or written by the calls themselves
        await drain(oe, dc)
        return {"builds": builds}

    out = asyncio.run(scenario())
    assert [w for w in written if w.startswith("ACC1_OE:")] == [
        *(f"ACC1_OE:c{i}" for i in range(0, n, 2)),
        "ACC1_OE:after",
    ]
    assert [w for w in written if w.startswith("ACC1_DC:")] == [f"ACC1_DC:c{i}" for i in range(n)]
    assert out["builds"] == [1] * n


def test_the_writer_gives_the_loop_a_turn_every_slice() -> None:
    n = 2 * BURST_SLICE + 1
    written: list[str] = []

    async def scenario() -> None:
        dc = acceptor("ACC1_DC", written, App())
        dc.send_burst(Source(), range(n))

        async def other_session() -> None:  # what another session's reader would do
            for _turn in range(3):
                written.append("other")
                await asyncio.sleep(0)

        other = asyncio.create_task(other_session())
        await drain(dc)
        await other

    asyncio.run(scenario())
    first_other = written.index("other")
    assert first_other <= BURST_SLICE  # not after the whole burst
    assert written.count("other") == 3
    assert len(written) == n + 3


def test_an_empty_burst_queues_nothing() -> None:
    async def scenario() -> bool:
        dc = acceptor("ACC1_DC", [], App())
        dc.send_burst(Source(), [])
        return dc._outq_task is None and not dc._outq

    assert asyncio.run(scenario())


def test_latency_applies_to_a_burst_and_keeps_its_order() -> None:
    written: list[str] = []

    async def scenario() -> None:
        oe = acceptor("ACC1_OE", written, App(latency_s=0.01))
        oe.send_burst(Source(), range(3))
        await oe.send_app(plain("after"))
        assert written == []
        for _attempt in range(200):
            if oe._outq_task is None:
                return
            await asyncio.sleep(0.005)

    asyncio.run(scenario())
    assert written == ["ACC1_OE:c0", "ACC1_OE:c1", "ACC1_OE:c2", "ACC1_OE:after"]
