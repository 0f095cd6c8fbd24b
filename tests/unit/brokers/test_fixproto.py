"""The value helpers and protocol definition of ``brokers.fixproto`` and ``brokers.fixconn``."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeops.brokers.fixconn import engine_logger, journal_path
from tradeops.brokers.fixproto import (
    TradeopsFIX44,
    fix_utc_now,
    fmt_decimal,
    make_protocol,
    parse_decimal,
    parse_fix_time,
)
from tradeops.log import EventLog


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("100.2500"), "100.25"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.00010"), "0.0001"),
        (Decimal("-0"), "0"),
        (Decimal("-3.50"), "-3.5"),
        (0.1, "0.1"),
        (7, "7"),
        (None, "0"),
    ],
)
def test_fmt_decimal_is_plain_notation(value, wire):
    assert fmt_decimal(value) == wire


@pytest.mark.parametrize(
    ("text", "value"), [("100.25", Decimal("100.25")), ("", None), (None, None)]
)
def test_parse_decimal(text, value):
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", ["abc", "NaN", "-Infinity", "1.2.3"])
def test_parse_decimal_refuses_what_is_not_a_finite_number(text):
    with pytest.raises(ValueError, match="not a"):
        parse_decimal(text)


def test_fix_time_round_trip():
    now = fix_utc_now()
    assert len(now) == len("20250102-03:04:05.678")
    assert abs((parse_fix_time(now) - datetime.now(UTC)).total_seconds()) < 60
    assert parse_fix_time("20250102-03:04:05") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_fix_time("20250102-03:04:05.678").microsecond == 678_000


def test_make_protocol_adds_groups_and_refuses_other_versions():
    assert make_protocol().__class__ is TradeopsFIX44
    proto = make_protocol({"9500": ["9501", 9502]})
    assert proto.repeating_groups["9500"] == ["9501", "9502"]
    assert "9500" not in TradeopsFIX44.repeating_groups
    assert proto.repeating_groups["268"] == TradeopsFIX44.repeating_groups["268"]
    with pytest.raises(ValueError, match=r"only FIX\.4\.4 is supported"):
        make_protocol(begin_string="FIX.4.2")


def test_journal_path_keeps_comp_ids_inside_the_store(tmp_path):
    path = journal_path(str(tmp_path), "../ETC", "a/b c")
    assert path == str(tmp_path / ".._ETC-a_b_c.journal.sqlite")
    assert "/" not in path[len(str(tmp_path)) + 1 :]


def test_asyncfix_log_records_become_events():
    stream = io.StringIO()
    logger = engine_logger("T-V", EventLog("test", stream=stream, host="h"))
    logger.warning("resend request %s..%s", 2, 5)
    logger.debug("not at INFO")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["event"], record["level"], record["msg"]) == (
        "fix_engine",
        "warning",
        "resend request 2..5",
    )
    assert logging.getLogger("tradeops.fix.T-V").propagate is False
