"""The simulator and a QuickFIX initiator logged on to it, for the conformance tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import quickfix as fix
import quickfix44 as f44

from tests.conformance.quickfix_peer import Recorder, field, message_log, settings, timestamp
from tests.integration.refapp.harness import ACCOUNT, DC, OE, RISK, SIM_ID, Sim, start_sim


@dataclass
class Peer:
    """A logged-on QuickFIX initiator and what it recorded."""

    app: Recorder
    work: Path
    dictionary: Path
    sim: Sim

    def send(self, msg: fix.Message, session: str = OE) -> None:
        fix.Session.sendToTarget(msg, fix.SessionID("FIX.4.4", session, SIM_ID))

    def log(self, session: str) -> list[str]:
        return message_log(self.work, session, SIM_ID)

    def wait_logged(self, session: str, msg_type: str, timeout_s: float = 10.0) -> None:
        """Wait until QuickFIX logged a ``msg_type`` from the simulator on ``session``.

        Resent messages that QuickFIX already has are logged but not handed to
        the application, so they are waited for in the log.
        """
        deadline = time.monotonic() + timeout_s
        while not any(
            field(raw, 49) == SIM_ID and field(raw, 35) == msg_type for raw in self.log(session)
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"QuickFIX logged no 35={msg_type} on {session}")
            time.sleep(0.05)


@contextlib.contextmanager
def simulator_peer(tmp_path: Path, venue_extensions: bool, dictionary: Path) -> Iterator[Peer]:
    """The simulator (a subprocess) and a QuickFIX initiator logged on to its 3 sessions."""
    sim = start_sim(tmp_path, venue_extensions=venue_extensions)
    work = tmp_path / "quickfix"
    work.mkdir()
    sessions = [
        {
            "BeginString": "FIX.4.4",
            "SenderCompID": name,
            "TargetCompID": SIM_ID,
            "SocketConnectHost": "127.0.0.1",
            "SocketConnectPort": sim.ports[name],
        }
        for name in (OE, DC, RISK)
    ]
    conf = settings(
        work / "initiator.cfg", sessions, initiator=True, dictionary=dictionary, work=work
    )
    app = Recorder()
    initiator = fix.SocketInitiator(app, fix.MemoryStoreFactory(), conf, fix.FileLogFactory(conf))
    initiator.start()
    try:
        app.wait("logon on 3 sessions", lambda: {OE, DC, RISK} <= app.logged_on, 20)
        yield Peer(app, work, dictionary, sim)
    finally:
        initiator.stop()
        sim.stop()


def group(msg: fix.Message, group: fix.Group, **values: str | int) -> None:
    for tag, value in values.items():
        group.setField(int(tag.lstrip("_")), str(value))
    msg.addGroup(group)


def set_fields(msg: fix.Message, **values: str | int) -> fix.Message:
    for tag, value in values.items():
        msg.setField(int(tag.lstrip("_")), str(value))
    return msg


def order(cl: str, symbol: str, side: str, qty: int, ord_type: str, px: str = "") -> fix.Message:
    msg = set_fields(
        f44.NewOrderSingle(),
        _11=cl, _1=ACCOUNT, _55=symbol, _54=side, _60=timestamp(), _38=qty, _40=ord_type, _59="0",
    )  # fmt: skip
    return set_fields(msg, _44=px) if px else msg


def md_request(req_id: str, sub_type: str, symbol: str) -> fix.Message:
    msg = set_fields(f44.MarketDataRequest(), _262=req_id, _263=sub_type, _264=1)
    if sub_type == "1":
        msg.setField(265, "1")
    for entry_type in "012":
        group(msg, f44.MarketDataRequest.NoMDEntryTypes(), _269=entry_type)
    group(msg, f44.MarketDataRequest.NoRelatedSym(), _55=symbol)
    return msg
