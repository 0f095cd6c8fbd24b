"""The broker adapter, as a QuickFIX venue sees it, and what it makes of the venue's answers.

The adapter (:class:`tradeops.brokers.fix.FixSession`) logs on to a QuickFIX
acceptor (all validation on, FIX44.xml) that plays a small venue, and sends
every message type it has: D, G, F, q, AF, AN, V and the session messages.
Every message, both ways, must validate against the dictionary; the venue
must send only the two rejects provoked on purpose, the adapter none; and
every answer must become the adapter's event, with no message it could not
read. It runs in a network namespace of its own (``unshare --net``), where
QuickFIX's acceptor, which binds every interface, sees only loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.adapter_venue import CLIENT, VENUE
from tests.conformance.quickfix_peer import (
    all_violations,
    field,
    message_log,
    rejects,
    require_dictionary,
)

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
ADAPTER_SENDS = {"A", "0", "5", "D", "G", "F", "q", "AF", "AN", "V"}
VENUE_SENDS = {"A", "5", "8", "9", "r", "AO", "AP", "W", "X", "Y", "3", "j"}


def _run_in_namespace(work: Path) -> dict[str, Any]:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the adapter's conformance test needs root (a network namespace)")
        pytest.skip("needs root: a network namespace for QuickFIX's acceptor")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    command = ["unshare", "--net", "--", sys.executable, "-m", "tests.conformance.adapter_venue"]
    done = subprocess.run(
        [*command, str(work)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    report_path = work / "report.json"
    assert report_path.exists(), f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"], f"{report.get('error')}\n{done.stderr[-3000:]}"
    return report


def test_the_adapter_and_a_quickfix_venue_exchange_only_valid_fix44(tmp_path: Path) -> None:
    report = _run_in_namespace(tmp_path)
    messages = message_log(tmp_path, VENUE, CLIENT)

    problems = all_violations(require_dictionary(), messages)
    assert not problems, "messages that break FIX44.xml:\n" + "\n".join(map(str, problems))

    sent = {field(raw, 35) for raw in messages if field(raw, 49) == CLIENT}
    assert sent >= ADAPTER_SENDS, f"not exercised: {sorted(ADAPTER_SENDS - sent)}"
    assert not rejects(messages, CLIENT), rejects(messages, CLIENT)

    answered = [raw for raw in messages if field(raw, 49) == VENUE]
    assert {field(raw, 35) for raw in answered} >= VENUE_SENDS
    venue_rejects = rejects(answered, VENUE)
    assert len(venue_rejects) == 2, venue_rejects  # the two provoked on purpose
    assert any("(35=D): tag 55" in r for r in venue_rejects), venue_rejects

    unreadable = [
        line
        for line in (tmp_path / "adapter.jsonl").read_text(encoding="utf-8").splitlines()
        if '"bad_inbound_message"' in line
    ]
    assert not unreadable, unreadable
    kinds = {str(e).split(":", 1)[0] for e in report["events"]}
    expected = {"Execution", "CancelReject", "MassCancelReport", "PositionsAck", "Position"}
    assert kinds >= expected | {"Quote", "Reject"}, kinds
