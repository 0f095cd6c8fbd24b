"""The simulator, as QuickFIX sees it: every message validates against FIX 4.4.

A QuickFIX initiator (all validation on) logs on to the simulator's order
entry, drop copy and risk sessions and sends every message type the
simulator takes, so that it sends back every message type it has. Every
message QuickFIX logged, both ways, is then checked offline against the
dictionary; QuickFIX must have sent no session Reject and no
BusinessMessageReject, and the simulator only the two this test provokes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as f44

from tests.conformance.quickfix_peer import (
    all_violations,
    field,
    rejects,
    require_dictionary,
    timestamp,
)
from tests.conformance.sim_peer import Peer, md_request, order, set_fields, simulator_peer
from tests.integration.refapp.harness import ACCOUNT, DC, OE, RISK, SIM_ID

pytestmark = pytest.mark.timeout(180)

# Every message type the simulator sends, and every ExecType it uses.
SIM_SENDS = {"A", "0", "4", "5", "8", "9", "r", "AO", "AP", "W", "X", "Y", "3", "j"}
EXEC_TYPES = {"0", "4", "5", "8", "F", "I"}
# What this test sends on purpose to make the simulator reject it.
PROVOKED = {"3": 1, "j": 1}
BROKEN = "BROKEN-ON-PURPOSE"  # the ClOrdID of the order sent without its Side


@pytest.fixture
def standard(tmp_path: Path) -> Iterator[Peer]:
    """The simulator as shipped, against QuickFIX's own FIX44.xml."""
    with simulator_peer(tmp_path, False, require_dictionary()) as peer:
        yield peer


def drive_every_message(peer: Peer) -> None:
    """Send every message type the simulator takes; wait for each answer."""
    app, oe = peer.app, OE
    peer.send(md_request("MD1", "1", "AAA"))  # subscribe: a snapshot, then increments
    app.wait_count(oe, "W", 1)
    peer.send(md_request("MD2", "0", "NOPE"))  # unknown symbol: MarketDataRequestReject
    app.wait_count(oe, "Y", 1)
    peer.send(order("O1", "AAA", "1", 2, "2", "1"))  # a buy far below the market: rests
    app.wait_count(oe, "8", 1, _11="O1", _150="0")
    peer.send(order("O2", "BBB", "1", 1, "1"))  # a market order: fills
    app.wait_count(oe, "8", 1, _11="O2", _150="F")
    peer.send(order("O3", "NOPE", "1", 1, "2", "1"))  # unknown symbol: rejected
    app.wait_count(oe, "8", 1, _11="O3", _150="8")
    replace = set_fields(
        f44.OrderCancelReplaceRequest(),
        _41="O1", _11="O1R", _1=ACCOUNT, _55="AAA", _54="1", _60=timestamp(), _38=3, _40="2",
        _44="1.5",
    )  # fmt: skip
    peer.send(replace)
    app.wait_count(oe, "8", 1, _11="O1R", _150="5")
    peer.send(set_fields(f44.OrderMassStatusRequest(), _584="MS1", _585="7", _1=ACCOUNT))
    app.wait_count(oe, "8", 1, _584="MS1", _150="I")
    cancel = set_fields(
        f44.OrderCancelRequest(),
        _41="O1R", _11="O1C", _1=ACCOUNT, _55="AAA", _54="1", _60=timestamp(), _38=3,
    )  # fmt: skip
    peer.send(cancel)
    app.wait_count(oe, "8", 1, _11="O1C", _150="4")
    unknown = set_fields(
        f44.OrderCancelRequest(),
        _41="NOSUCH", _11="C2", _1=ACCOUNT, _55="AAA", _54="1", _60=timestamp(), _38=1,
    )  # fmt: skip
    peer.send(unknown)
    app.wait_count(oe, "9", 1, _11="C2")
    peer.send(order("O4", "AAA", "2", 1, "2", "1000"))
    peer.send(order("O5", "BBB", "1", 1, "2", "1"))
    app.wait_count(oe, "8", 1, _11="O5", _150="0")
    peer.send(set_fields(f44.OrderMassCancelRequest(), _11="MC1", _530="7", _60=timestamp()))
    app.wait_count(oe, "r", 1, _11="MC1")
    peer.send(set_fields(f44.OrderMassStatusRequest(), _584="MS2", _585="7", _1=ACCOUNT))
    app.wait_count(oe, "8", 1, _584="MS2", _150="I")  # the "no working orders" report
    positions = set_fields(
        f44.RequestForPositions(),
        _710="P1", _724="0", _1=ACCOUNT, _581="1", _715=timestamp()[:8], _60=timestamp(),
    )  # fmt: skip
    peer.send(positions, RISK)
    app.wait_count(RISK, "AO", 1, _710="P1")
    app.wait_count(RISK, "AP", 2, _710="P1")
    # Two rejects on purpose: a message type the simulator does not take (a
    # BusinessMessageReject) and an order without its Side (a session Reject).
    peer.send(set_fields(f44.OrderStatusRequest(), _11="O4", _1=ACCOUNT, _55="AAA", _54="2"))
    app.wait_count(oe, "j", 1)
    no_side = set_fields(
        f44.NewOrderSingle(), _11=BROKEN, _55="AAA", _38=1, _40="1", _60=timestamp()
    )
    peer.send(no_side)
    app.wait_count(oe, "3", 1)
    app.wait_count(oe, "X", 3)  # increments of the subscription
    test_request = f44.TestRequest()
    test_request.setField(112, "TR1")
    peer.send(test_request)
    app.wait_count(oe, "0", 1, _112="TR1")
    # Ask for everything again: executions are resent (PossDupFlag=Y), the rest gap-filled.
    resend = f44.ResendRequest()
    resend.setField(7, "1")
    resend.setField(16, "0")
    peer.send(resend)
    peer.wait_logged(oe, "4")
    peer.send(md_request("MD1", "2", "AAA"))  # unsubscribe
    app.wait_count(DC, "8", 1, _150="F")
    fix.Session.lookupSession(fix.SessionID("FIX.4.4", oe, SIM_ID)).logout("conformance done")
    peer.wait_logged(oe, "5")


def test_every_message_of_the_simulator_validates_against_quickfix_fix44(standard: Peer) -> None:
    drive_every_message(standard)
    logs = {name: standard.log(name) for name in (OE, DC, RISK)}
    messages = [raw for log in logs.values() for raw in log]

    problems = all_violations(
        standard.dictionary, (raw for raw in messages if field(raw, 11) != BROKEN)
    )
    assert not problems, "messages that break FIX44.xml:\n" + "\n".join(map(str, problems))

    ours = {name: [raw for raw in log if field(raw, 49) == name] for name, log in logs.items()}
    quickfix_rejects = [r for name, sent in ours.items() for r in rejects(sent, name)]
    assert not quickfix_rejects, "\n".join(quickfix_rejects)

    theirs = [raw for raw in messages if field(raw, 49) == SIM_ID]
    sim_rejects = rejects(theirs, SIM_ID)
    first_sent = [raw for raw in theirs if field(raw, 43) != "Y"]  # not the resent copies
    counted = {t: sum(1 for raw in first_sent if field(raw, 35) == t) for t in PROVOKED}
    assert counted == PROVOKED, "\n".join(sim_rejects)

    seen = {field(raw, 35) for raw in theirs}
    assert seen >= SIM_SENDS, f"not exercised: {sorted(SIM_SENDS - seen)}"
    exec_types = {field(raw, 150) for raw in theirs if field(raw, 35) == "8"}
    assert exec_types >= EXEC_TYPES, f"ExecTypes not exercised: {sorted(EXEC_TYPES - exec_types)}"
    resent = [raw for raw in theirs if field(raw, 43) == "Y" and field(raw, 35) == "8"]
    assert resent, "the ResendRequest got no execution resent"
