"""The broker adapter against a QuickFIX venue, in a network namespace of its own.

Run by ``test_adapter.py`` as ``unshare --net -- python -m
tests.conformance.adapter_venue WORK``: QuickFIX's acceptor binds every
interface, and a namespace where only loopback is up keeps it off the
machine's network. A QuickFIX acceptor plays a small venue (all validation
on, FIX44.xml); the adapter (:class:`tradeops.brokers.fix.FixSession`) logs on
and sends every message type it has. What the adapter made of the answers is
written to ``WORK/report.json``; QuickFIX's message logs are in ``WORK/log``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import quickfix as fix
import quickfix44 as f44

from tests.conformance.quickfix_peer import Recorder, require_dictionary, settings, timestamp
from tradeops.brokers.base import (
    CancelReject,
    Execution,
    MassCancelReport,
    NewOrder,
    OrdType,
    Position,
    PositionsAck,
    Quote,
    Reject,
    SessionConfig,
    Side,
)
from tradeops.brokers.fix import FixSession
from tradeops.log import EventLog

VENUE, CLIENT, ACCOUNT = "VENUE", "ACC1_OE", "ACC1"
SYMBOLS = {"AAA": Decimal("100.5"), "BBB": Decimal("50.25")}
REJECTED_SYMBOL = "REJECTME"  # an order the venue's session layer rejects (35=3)
UNSUPPORTED_SYMBOL = "UNSUPPORTED"  # market data the venue does not offer (35=j)


class Venue:
    """The venue's application: answers every request with standard FIX 4.4 messages."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, str]] = {}  # ClOrdID -> order fields
        self.ids = itertools.count(1)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def _send(self, msg: fix.Message, sid: fix.SessionID) -> None:
        fix.Session.sendToTarget(msg, sid)

    def _report(self, order: dict[str, str], exec_type: str, status: str, **extra: str) -> Any:
        msg = f44.ExecutionReport()
        values = {
            37: order["order_id"], 17: self._new_id("E"), 150: exec_type, 39: status,
            11: order["cl"], 1: ACCOUNT, 55: order["symbol"], 54: order["side"],
            38: order["qty"], 151: extra.pop("leaves", order["qty"]), 14: extra.pop("cum", "0"),
            6: extra.pop("avg", "0"), 60: timestamp(),
        }  # fmt: skip
        if order.get("price"):
            values[44] = order["price"]
        values.update({int(k.lstrip("_")): v for k, v in extra.items()})
        for tag, value in values.items():
            msg.setField(tag, str(value))
        return msg

    def on_app(self, msg: fix.Message, sid: fix.SessionID) -> None:
        """Answer one application message (raising is QuickFIX's way to reject it)."""
        handler: Callable[[fix.Message, fix.SessionID], None] | None = getattr(
            self, f"on_{msg.getHeader().getField(35)}", None
        )
        if handler is None:
            raise fix.UnsupportedMessageType()
        handler(msg, sid)

    def on_D(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        symbol = msg.getField(55)
        if symbol == REJECTED_SYMBOL:
            raise fix.IncorrectTagValue(55)
        order = {
            "cl": msg.getField(11), "order_id": self._new_id("O"), "symbol": symbol,
            "side": msg.getField(54), "qty": msg.getField(38),
            "price": msg.getField(44) if msg.isSetField(44) else "",
        }  # fmt: skip
        self._send(self._report(order, "0", "0"), sid)
        if msg.getField(40) == "1":  # market: filled at once
            px = str(SYMBOLS.get(symbol, Decimal(1)))
            fill = dict(_32=order["qty"], _31=px, leaves="0", cum=order["qty"], avg=px)
            self._send(self._report(order, "F", "2", **fill), sid)
            return
        self.orders[order["cl"]] = order

    def on_G(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        order = self.orders.pop(msg.getField(41))
        order.update(cl=msg.getField(11), qty=msg.getField(38), price=msg.getField(44))
        self.orders[order["cl"]] = order
        self._send(self._report(order, "5", "0", _41=msg.getField(41)), sid)

    def on_F(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        orig = msg.getField(41)
        order = self.orders.pop(orig, None)
        if order is None:
            reject = f44.OrderCancelReject()
            for tag, value in ((37, "NONE"), (11, msg.getField(11)), (41, orig), (39, "8"),
                               (434, "1"), (102, "1"), (58, "unknown order")):  # fmt: skip
                reject.setField(tag, value)
            self._send(reject, sid)
            return
        cancelled = dict(order, cl=msg.getField(11))
        self._send(self._report(cancelled, "4", "4", leaves="0", _41=orig), sid)

    def on_q(self, msg: fix.Message, sid: fix.SessionID) -> None:
        report = f44.OrderMassCancelReport()
        for tag, value in ((11, msg.getField(11)), (37, self._new_id("MC")), (530, "7"),
                           (531, "7"), (533, str(len(self.orders)))):  # fmt: skip
            report.setField(tag, value)
        for order in self.orders.values():
            affected = f44.OrderMassCancelReport.NoAffectedOrders()
            affected.setField(41, order["cl"])
            affected.setField(535, order["order_id"])
            report.addGroup(affected)
        self._send(report, sid)
        for order in list(self.orders.values()):
            self._send(self._report(order, "4", "4", leaves="0"), sid)
        self.orders.clear()

    def on_AF(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        req_id = msg.getField(584)
        orders = list(self.orders.values())
        if not orders:
            none = {"cl": "NONE", "order_id": "NONE", "symbol": "NA", "side": "1", "qty": "0"}
            self._send(self._report(none, "I", "0", _584=req_id, _911="0", _912="Y"), sid)
            return
        for i, order in enumerate(orders, 1):
            last = "Y" if i == len(orders) else "N"
            self._send(
                self._report(order, "I", "0", _584=req_id, _911=str(len(orders)), _912=last), sid
            )

    def on_AN(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        req_id, n = msg.getField(710), str(len(SYMBOLS))
        ack = f44.RequestForPositionsAck()
        for tag, value in ((721, self._new_id("PA")), (710, req_id), (727, n), (728, "0"),
                           (729, "0"), (1, ACCOUNT), (581, "1")):  # fmt: skip
            ack.setField(tag, value)
        self._send(ack, sid)
        for symbol, px in SYMBOLS.items():
            report = f44.PositionReport()
            values = ((721, self._new_id("P")), (710, req_id), (724, "0"), (727, n), (728, "0"),
                      (715, timestamp()[:8]), (1, ACCOUNT), (581, "1"), (55, symbol),
                      (730, str(px)), (731, "2"), (734, str(px)))  # fmt: skip
            for tag, value in values:
                report.setField(tag, value)
            group = f44.PositionReport.NoPositions()
            for tag, value in ((703, "TOT"), (704, "3"), (705, "0")):
                group.setField(tag, value)
            report.addGroup(group)
            self._send(report, sid)

    def on_V(self, msg: fix.Message, sid: fix.SessionID) -> None:  # noqa: N802
        req_id = msg.getField(262)
        group = f44.MarketDataRequest.NoRelatedSym()
        msg.getGroup(1, group)
        symbol = group.getField(55)
        if symbol == UNSUPPORTED_SYMBOL:
            raise fix.UnsupportedMessageType()
        if symbol not in SYMBOLS:
            reject = f44.MarketDataRequestReject()
            reject.setField(262, req_id)
            reject.setField(281, "0")
            reject.setField(58, f"unknown symbol {symbol}")
            self._send(reject, sid)
            return
        px = SYMBOLS[symbol]
        snapshot = f44.MarketDataSnapshotFullRefresh()
        snapshot.setField(262, req_id)
        snapshot.setField(55, symbol)
        for entry_type, value in (("0", px - 1), ("1", px + 1), ("2", px)):
            entry = f44.MarketDataSnapshotFullRefresh.NoMDEntries()
            for tag, v in ((269, entry_type), (270, str(value)), (271, "10")):
                entry.setField(tag, v)
            snapshot.addGroup(entry)
        self._send(snapshot, sid)
        update = f44.MarketDataIncrementalRefresh()
        update.setField(262, req_id)
        for entry_type, value in (("0", px), ("1", px + 2)):
            entry = f44.MarketDataIncrementalRefresh.NoMDEntries()
            for tag, v in ((279, "1"), (269, entry_type), (55, symbol), (270, str(value)),
                           (271, "5")):  # fmt: skip
                entry.setField(tag, v)
            update.addGroup(entry)
        self._send(update, sid)


async def _until(events: list[Any], what: str, pred: Callable[[Any], bool]) -> Any:
    for _unused in range(1000):  # 10 s
        found = next((e for e in events if pred(e)), None)
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"the adapter got no {what}; events: {events!r}")


async def drive_adapter(port: int, work: Path, venue_app: Recorder) -> list[Any]:
    """Log the adapter on, send every message type, wait for each answer."""
    events: list[Any] = []
    log = EventLog("adapter", (work / "adapter.jsonl").open("a", encoding="utf-8"))
    config = SessionConfig("127.0.0.1", port, CLIENT, VENUE, account=ACCOUNT, heartbeat_s=30)
    session = FixSession(config, events.append, log=log)
    await session.connect(10)

    def execution(cl: str, exec_type: str) -> Callable[[Any], bool]:
        return lambda e: isinstance(e, Execution) and (e.cl_ord_id, e.exec_type) == (cl, exec_type)

    buy, limit, market = Side.BUY, OrdType.LIMIT, OrdType.MARKET
    try:
        await session.send_order(NewOrder("O1", "AAA", buy, Decimal(2), limit, Decimal(90)))
        await _until(events, "New O1", execution("O1", "0"))
        await session.send_order(NewOrder("O2", "BBB", buy, Decimal(1), market))
        await _until(events, "a fill of O2", execution("O2", "F"))
        await session.send_order(NewOrder("O3", REJECTED_SYMBOL, buy, Decimal(1), market))
        await _until(
            events, "a session Reject", lambda e: isinstance(e, Reject) and e.ref_msg_type == "D"
        )
        await session.replace_order("O1R", "O1", "AAA", buy, Decimal(3), Decimal("90.5"))
        await _until(events, "Replaced O1R", execution("O1R", "5"))
        await session.mass_status("MS1")
        await _until(events, "mass status", lambda e: getattr(e, "mass_status_req_id", 0) == "MS1")
        await session.cancel_order("O1C", "O1R", "AAA", buy)
        await _until(events, "Canceled O1C", execution("O1C", "4"))
        await session.cancel_order("C2", "NOSUCH", "AAA", buy)
        await _until(events, "a cancel reject", lambda e: isinstance(e, CancelReject))
        await session.send_order(NewOrder("O4", "AAA", buy, Decimal(1), limit, Decimal(80)))
        await _until(events, "New O4", execution("O4", "0"))
        await session.mass_cancel("MC1")
        await _until(events, "a mass cancel report", lambda e: isinstance(e, MassCancelReport))
        await _until(events, "Canceled O4", execution("O4", "4"))
        await session.mass_status("MS2")
        await _until(events, "empty status", lambda e: getattr(e, "mass_status_req_id", 0) == "MS2")
        await session.request_positions("P1")
        await _until(events, "a positions ack", lambda e: isinstance(e, PositionsAck))
        await _until(events, "a position", lambda e: isinstance(e, Position) and e.symbol == "BBB")
        await session.subscribe_market_data("MD1", ["AAA"])
        await _until(
            events, "a quote", lambda e: isinstance(e, Quote) and e.ask == Decimal("102.5")
        )
        await session.subscribe_market_data("MD2", ["NOPE"])
        await _until(events, "a market data reject", lambda e: getattr(e, "ref_msg_type", 0) == "V")
        await session.subscribe_market_data("MD3", [UNSUPPORTED_SYMBOL])
        await _until(
            events, "a business reject", lambda e: isinstance(e, Reject) and e.ref_msg_type == "V"
            and e.ref_seq_num is not None,
        )  # fmt: skip
        # The venue tests the adapter's session layer: a TestRequest wants a Heartbeat.
        test_request = f44.TestRequest()
        test_request.setField(112, "TR1")
        fix.Session.sendToTarget(test_request, fix.SessionID("FIX.4.4", VENUE, CLIENT))
        for _unused in range(1000):  # 10 s
            if venue_app.count(VENUE, "0", _112="TR1"):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the adapter did not answer the venue's TestRequest")
    finally:
        await session.close()
    return events


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(work: Path) -> int:
    """Bring loopback up, run the venue and the adapter, write the report."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    port = _free_port()
    conf = settings(
        work / "acceptor.cfg",
        [
            {
                "BeginString": "FIX.4.4",
                "SenderCompID": VENUE,
                "TargetCompID": CLIENT,
                "SocketAcceptPort": port,
            }
        ],
        initiator=False,
        dictionary=require_dictionary(),
        work=work,
    )
    venue = Venue()
    app = Recorder(on_app=venue.on_app)
    acceptor = fix.SocketAcceptor(app, fix.MemoryStoreFactory(), conf, fix.FileLogFactory(conf))
    acceptor.start()
    report: dict[str, Any] = {}
    try:
        events = asyncio.run(asyncio.wait_for(drive_adapter(port, work, app), 60))
        report["events"] = [f"{type(e).__name__}: {e!r}" for e in events]
        report["ok"] = True
    except Exception as exc:  # the test reports it
        report["ok"] = False
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        acceptor.stop()
    (work / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
