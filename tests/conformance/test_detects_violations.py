"""The conformance check fails, naming the message and the tag, on a message that breaks it.

The simulator's venue extensions (RptSeq in market data, tags 9101-9103 in
PositionReport) are not in QuickFIX's FIX44.xml. Turned on, they are a
message that breaks the standard dictionary, sent on purpose: the check must
name each one, QuickFIX must reject them, and the simulator must take those
Rejects without answering them. Checked against the venue dictionary
(FIX44.xml plus FIX44-venue-extensions.xml), the same traffic is clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import quickfix44 as f44

from tests.conformance.quickfix_peer import (
    all_violations,
    field,
    rejects,
    require_dictionary,
    timestamp,
)
from tests.conformance.sim_peer import Peer, md_request, set_fields, simulator_peer
from tests.integration.refapp.harness import ACCOUNT, OE, RISK, SIM_ID
from tradeops.sim.venue_dictionary import write_venue_dictionary

pytestmark = pytest.mark.timeout(120)


def _market_data_and_positions(peer: Peer) -> list[str]:
    """Subscribe to AAA and ask for positions; return every message logged."""
    peer.send(md_request("MD1", "1", "AAA"))
    peer.wait_logged(OE, "W")
    peer.wait_logged(OE, "X")
    positions = set_fields(
        f44.RequestForPositions(),
        _710="P1", _724="0", _1=ACCOUNT, _581="1", _715=timestamp()[:8], _60=timestamp(),
    )  # fmt: skip
    peer.send(positions, RISK)
    peer.wait_logged(RISK, "AP")
    peer.send(md_request("MD1", "2", "AAA"))
    return peer.log(OE) + peer.log(RISK)


def test_venue_extensions_break_the_standard_dictionary_and_are_named(tmp_path: Path) -> None:
    with simulator_peer(tmp_path, True, require_dictionary()) as peer:
        messages = _market_data_and_positions(peer)
        problems = [str(v) for v in all_violations(peer.dictionary, messages)]
        theirs = [raw for raw in messages if field(raw, 49) == SIM_ID]
        ours = [raw for raw in messages if field(raw, 49) in (OE, RISK)]

    assert any(p.startswith("35=W ") and "tag 83:" in p for p in problems), problems
    assert any(p.startswith("35=X ") for p in problems), problems
    assert any(p.startswith("35=AP ") and "tag 9101:" in p for p in problems), problems
    quickfix_rejects = rejects(ours, OE) + rejects(ours, RISK)
    assert any("(35=W): tag 83" in r for r in quickfix_rejects), quickfix_rejects
    assert any("(35=AP): tag 9101" in r for r in quickfix_rejects), quickfix_rejects
    # A session Reject is the session layer's business: never answered with a reject.
    answered = [raw for raw in theirs if field(raw, 35) in ("3", "j")]
    assert not answered, rejects(theirs, SIM_ID)


def test_venue_extensions_validate_against_the_venue_dictionary(tmp_path: Path) -> None:
    venue = write_venue_dictionary(require_dictionary(), tmp_path / "FIX44-venue.xml")
    with simulator_peer(tmp_path, True, venue) as peer:
        messages = _market_data_and_positions(peer)
        problems = all_violations(venue, messages)
    assert not problems, "\n".join(map(str, problems))
    assert any(field(raw, 9101) is not None for raw in messages), "no extension was sent"
    assert any(field(raw, 83) is not None for raw in messages), "no extension was sent"
    mine = [raw for raw in messages if field(raw, 49) in (OE, RISK)]
    assert not rejects(mine, OE) + rejects(mine, RISK)
