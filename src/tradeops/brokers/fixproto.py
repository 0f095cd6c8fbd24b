"""FIX 4.4 protocol definition and small value helpers shared by both FIX ends.

asyncfix's :class:`FIXProtocol44` knows the repeating groups of order and
position messages but not those of market data (NoMDEntryTypes, NoRelatedSym,
NoMDEntries) nor NoAffectedOrders; :class:`TradeopsFIX44` adds them. Further
groups can be added per deployment with :func:`make_protocol` (the simulator's
``fix.repeating_groups`` setting): that is as far as asyncfix lets a data
dictionary be configured, plus optional message validation against a
QuickFIX-format XML dictionary with :class:`asyncfix.protocol.FIXSchema`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from asyncfix import FTag
from asyncfix.protocol import FIXProtocol44
from asyncfix.protocol.protocol_base import FIXProtocolBase

BEGIN_STRING = "FIX.4.4"

# Simulator-defined tags (FIX user-defined range) carried in PositionReport (AP).
TAG_AVG_PX = "9101"
TAG_REALIZED_PNL = "9102"
TAG_UNREALIZED_PNL = "9103"

_EXTRA_GROUPS: dict[str, list[str]] = {
    str(FTag.NoMDEntryTypes): [str(FTag.MDEntryType)],
    str(FTag.NoRelatedSym): [
        str(FTag.Symbol),
        str(FTag.SecurityID),
        str(FTag.SecurityIDSource),
        str(FTag.SecurityExchange),
    ],
    str(FTag.NoMDEntries): [
        str(FTag.MDUpdateAction),
        str(FTag.MDEntryType),
        str(FTag.MDEntryID),
        str(FTag.Symbol),
        str(FTag.RptSeq),
        str(FTag.MDEntryPx),
        str(FTag.MDEntrySize),
        str(FTag.MDEntryDate),
        str(FTag.MDEntryTime),
    ],
    str(FTag.NoAffectedOrders): [
        str(FTag.OrigClOrdID),
        str(FTag.AffectedOrderID),
        str(FTag.AffectedSecondaryOrderID),
    ],
}


class TradeopsFIX44(FIXProtocol44):
    """FIX 4.4 as asyncfix defines it, plus the market-data repeating groups."""

    repeating_groups: ClassVar[dict[str, list[str]]] = {
        **FIXProtocol44.repeating_groups,
        **_EXTRA_GROUPS,
    }


def make_protocol(
    extra_groups: Mapping[str, Sequence[str]] | None = None,
    begin_string: str = BEGIN_STRING,
) -> FIXProtocolBase:
    """Return a protocol instance with ``extra_groups`` (group tag -> member tags) added."""
    if begin_string != BEGIN_STRING:
        raise ValueError(f"only {BEGIN_STRING} is supported by the FIX engine, got {begin_string}")
    if not extra_groups:
        return TradeopsFIX44()
    groups = dict(TradeopsFIX44.repeating_groups)
    for tag, members in extra_groups.items():
        groups[str(int(tag))] = [str(int(m)) for m in members]
    cls = type("ConfiguredFIX44", (TradeopsFIX44,), {"repeating_groups": groups})
    return cls()


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def fix_utc_now() -> str:
    """UTCTimestamp with milliseconds, as FIX wants it (``YYYYMMDD-HH:MM:SS.sss``).

    Called for every message sent: the date and time of day are formatted once
    per second, the milliseconds every time.
    """
    global _second
    now = time.time()
    second = int(now)
    cached, text = _second  # one tuple, swapped whole: safe across threads
    if second != cached:
        text = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int((now - second) * 1000):03d}"


def parse_fix_time(value: str) -> datetime:
    """Parse a FIX UTCTimestamp (with or without fractions) into an aware datetime."""
    fmt = "%Y%m%d-%H:%M:%S.%f" if "." in value else "%Y%m%d-%H:%M:%S"
    return datetime.strptime(value, fmt).replace(tzinfo=UTC)


def fmt_decimal(value: Decimal | int | float | None) -> str:
    """Format a number for the wire: plain notation, no exponent, no trailing zeros."""
    if value is None:
        return "0"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


def parse_decimal(value: str | None) -> Decimal | None:
    """Parse a wire number into a Decimal; None (absent) stays None."""
    if value is None or value == "":
        return None
    try:
        d = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d
