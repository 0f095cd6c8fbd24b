"""Structured JSON-lines logging."""

from __future__ import annotations

import io
import json

from tradeops.log import EventLog


def test_every_line_has_the_correlation_fields() -> None:
    buf = io.StringIO()
    log = EventLog("sim", stream=buf, host="h1").bind(session="OE1")
    log.event("order_accepted", cl_ord_id="A1", qty=5)
    log.event("fill", cl_ord_id="A1")
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["event"] for r in lines] == ["order_accepted", "fill"]
    for record in lines:
        assert record["component"] == "sim"
        assert record["host"] == "h1"
        assert record["session"] == "OE1"
        assert record["ts"].endswith("Z")
    assert lines[0]["qty"] == 5
