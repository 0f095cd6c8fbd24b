"""FIX application layer of the simulator: parse inbound requests, build replies.

Parsing raises :class:`SessionRejectError` (answered with a session Reject,
35=3) when a message is malformed at the FIX level: a required tag missing
(SessionRejectReason 1), an empty value (4), a value out of range (5), a bad
format (6) or a repeated tag (13). Business problems (unknown symbol, zero
quantity, ...) are left to the engine, which answers with an ExecutionReport
or an OrderCancelReject as a venue would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.errors import FIXMessageError, RepeatingTagError

from tradeops.brokers.fixproto import (
    TAG_AVG_PX,
    TAG_REALIZED_PNL,
    TAG_UNREALIZED_PNL,
    fix_utc_now,
    fmt_decimal,
)
from tradeops.sim.engine import (
    CancelRejectInfo,
    CancelReq,
    NewOrderReq,
    PositionView,
    ReplaceReq,
    Report,
)
from tradeops.sim.prices import Tick

# SessionRejectReason (373)
SR_REQUIRED_MISSING = 1
SR_NO_VALUE = 4
SR_BAD_VALUE = 5
SR_BAD_FORMAT = 6
SR_INVALID_MSGTYPE = 11
SR_REPEATED_TAG = 13
SR_OTHER = 99
# BusinessRejectReason (380)
BR_OTHER = 0
BR_UNKNOWN_SECURITY = 2
BR_UNSUPPORTED_MSGTYPE = 3
BR_NOT_AUTHORIZED = 6

_SIDES = frozenset("123456789ABCDEFG")
_FIX_FLOAT = re.compile(r"^-?(\d{1,15}(\.\d{0,12})?|\.\d{1,12})$")
_ORD_TYPES = frozenset("123456789ABCDEFGHIJKP")
_TIFS = frozenset("0123456789")


class SessionRejectError(Exception):
    """The message must be answered with a session Reject (3)."""

    def __init__(self, reason: int, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.tag = tag


class BusinessRejectError(Exception):
    """The message must be answered with a BusinessMessageReject (j)."""

    def __init__(self, reason: int, text: str, ref_id: str | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.ref_id = ref_id


# ------------------------------------------------------------------ parsing
def get(msg: FIXMessage, tag: FTag | str, required: bool = True) -> str | None:
    """Tag value as a string, or None when absent and not required."""
    key = str(tag)
    if key not in msg:
        if required:
            raise SessionRejectError(SR_REQUIRED_MISSING, f"required tag {key} missing", key)
        return None
    try:
        value = msg.get(key)
    except RepeatingTagError:
        raise SessionRejectError(
            SR_REPEATED_TAG, f"tag {key} appears more than once", key
        ) from None
    except FIXMessageError:
        raise SessionRejectError(SR_BAD_FORMAT, f"tag {key} has a bad format", key) from None
    if value == "":
        raise SessionRejectError(SR_NO_VALUE, f"tag {key} has no value", key)
    return str(value)


def req(msg: FIXMessage, tag: FTag | str) -> str:
    """Required tag value."""
    value = get(msg, tag, True)
    assert value is not None
    return value


def get_decimal(msg: FIXMessage, tag: FTag | str, required: bool = True) -> Decimal | None:
    """Numeric tag value."""
    value = get(msg, tag, required)
    if value is None:
        return None
    # FIX Float: digits with an optional decimal point, no exponent (bounded size).
    if not _FIX_FLOAT.match(value):
        raise SessionRejectError(SR_BAD_FORMAT, f"tag {tag} is not a number", str(tag))
    try:
        return Decimal(value)
    except InvalidOperation:
        raise SessionRejectError(SR_BAD_FORMAT, f"tag {tag} is not a number", str(tag)) from None


def get_enum(
    msg: FIXMessage, tag: FTag | str, allowed: Iterable[str], required: bool = True
) -> str | None:
    """Enumerated tag value; a value outside ``allowed`` is SessionRejectReason 5."""
    value = get(msg, tag, required)
    if value is not None and value not in set(allowed):
        raise SessionRejectError(
            SR_BAD_VALUE, f"value {value!r} out of range for tag {tag}", str(tag)
        )
    return value


def check_account(msg: FIXMessage, account: str) -> str:
    """Account of the message: the session's; a different Account(1) is not authorized."""
    given = get(msg, FTag.Account, required=False)
    if given is not None and given != account:
        raise BusinessRejectError(
            BR_NOT_AUTHORIZED, f"account {given} is not permitted on this session"
        )
    return account


def parse_new_order(msg: FIXMessage, account: str) -> NewOrderReq:
    """NewOrderSingle (D)."""
    cl_ord_id = req(msg, FTag.ClOrdID)
    symbol = req(msg, FTag.Symbol)
    side = get_enum(msg, FTag.Side, _SIDES)
    qty = get_decimal(msg, FTag.OrderQty)
    ord_type = get_enum(msg, FTag.OrdType, _ORD_TYPES)
    price = get_decimal(msg, FTag.Price, required=ord_type == "2")
    tif = get_enum(msg, FTag.TimeInForce, _TIFS, required=False)
    assert side is not None
    assert qty is not None
    assert ord_type is not None
    given = get(msg, FTag.Account, required=False)
    return NewOrderReq(
        cl_ord_id=cl_ord_id,
        account=given if given is not None else account,
        symbol=symbol,
        side=side,
        ord_type=ord_type,
        qty=qty,
        price=price,
        time_in_force=tif,
    )


def parse_cancel(msg: FIXMessage, account: str) -> CancelReq:
    """OrderCancelRequest (F)."""
    orig = req(msg, FTag.OrigClOrdID)
    cl_ord_id = req(msg, FTag.ClOrdID)
    symbol = req(msg, FTag.Symbol)
    side = get_enum(msg, FTag.Side, _SIDES)
    assert side is not None
    return CancelReq(
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig,
        account=check_account(msg, account),
        symbol=symbol,
        side=side,
        order_id=get(msg, FTag.OrderID, required=False),
    )


def parse_replace(msg: FIXMessage, account: str) -> ReplaceReq:
    """OrderCancelReplaceRequest (G)."""
    orig = req(msg, FTag.OrigClOrdID)
    cl_ord_id = req(msg, FTag.ClOrdID)
    symbol = req(msg, FTag.Symbol)
    side = get_enum(msg, FTag.Side, _SIDES)
    qty = get_decimal(msg, FTag.OrderQty)
    ord_type = get_enum(msg, FTag.OrdType, _ORD_TYPES)
    price = get_decimal(msg, FTag.Price, required=ord_type == "2")
    assert side is not None
    assert qty is not None
    assert ord_type is not None
    return ReplaceReq(
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig,
        account=check_account(msg, account),
        symbol=symbol,
        side=side,
        qty=qty,
        ord_type=ord_type,
        price=price,
        order_id=get(msg, FTag.OrderID, required=False),
    )


def group_values(msg: FIXMessage, group_tag: FTag | str, member: FTag | str) -> list[str]:
    """Values of ``member`` in every item of a repeating group (missing group -> Reject)."""
    key = str(group_tag)
    if key not in msg:
        raise SessionRejectError(SR_REQUIRED_MISSING, f"required group {key} missing", key)
    if not msg.is_group(key):
        raise SessionRejectError(SR_BAD_FORMAT, f"tag {key} is not a repeating group", key)
    return [req(item, member) for item in msg.get_group_list(key)]


# ----------------------------------------------------------------- building
def exec_report(rep: Report) -> FIXMessage:
    """ExecutionReport (8) for ``rep``.

    The hot path of the simulator: the fields go straight into the message's
    tag dictionary (the tag numbers and values are already strings), which is
    what ``FIXMessage.__setitem__`` does after its checks.
    """
    m = FIXMessage(FMsg.EXECUTIONREPORT)
    tags = m.tags
    tags["37"] = rep.order_id
    tags["11"] = rep.cl_ord_id
    if rep.orig_cl_ord_id:
        tags["41"] = rep.orig_cl_ord_id
    if rep.mass_status_req_id is not None:
        tags["584"] = rep.mass_status_req_id
        tags["911"] = str(rep.tot_num_reports or 0)
        tags["912"] = "Y" if rep.last_rpt_requested else "N"
    tags["17"] = rep.exec_id
    tags["150"] = rep.exec_type
    tags["39"] = rep.ord_status
    if rep.ord_rej_reason is not None:
        tags["103"] = str(rep.ord_rej_reason)
    tags["1"] = rep.account
    tags["55"] = rep.symbol
    tags["54"] = str(rep.side)
    tags["38"] = fmt_decimal(rep.order_qty)
    if rep.ord_type:
        tags["40"] = str(rep.ord_type)
    if rep.price is not None:
        tags["44"] = fmt_decimal(rep.price)
    tags["32"] = fmt_decimal(rep.last_qty)
    tags["31"] = fmt_decimal(rep.last_px)
    tags["151"] = fmt_decimal(rep.leaves_qty)
    tags["14"] = fmt_decimal(rep.cum_qty)
    tags["6"] = fmt_decimal(rep.avg_px)
    tags["60"] = rep.transact_time
    if rep.text:
        tags["58"] = rep.text
    return m


def cancel_reject(info: CancelRejectInfo) -> FIXMessage:
    """OrderCancelReject (9)."""
    m = FIXMessage(FMsg.ORDERCANCELREJECT)
    m[FTag.OrderID] = info.order_id or "NONE"
    m[FTag.ClOrdID] = info.cl_ord_id
    m[FTag.OrigClOrdID] = info.orig_cl_ord_id
    m[FTag.OrdStatus] = info.ord_status
    m[FTag.Account] = info.account
    m[FTag.CxlRejResponseTo] = info.response_to
    m[FTag.CxlRejReason] = info.reason
    m[FTag.Text] = info.text
    return m


def mass_cancel_report(
    report_id: str,
    cl_ord_id: str,
    request_type: str,
    response: str,
    affected: list[Report],
    reject_reason: str | None = None,
    text: str | None = None,
) -> FIXMessage:
    """OrderMassCancelReport (r); ``response`` 0 = rejected, else the request type."""
    m = FIXMessage(FMsg.ORDERMASSCANCELREPORT)
    m[FTag.ClOrdID] = cl_ord_id
    m[FTag.OrderID] = report_id
    m[FTag.MassCancelRequestType] = request_type
    m[FTag.MassCancelResponse] = response
    if reject_reason is not None:
        m[FTag.MassCancelRejectReason] = reject_reason
    m[FTag.TotalAffectedOrders] = len(affected)
    m[FTag.TransactTime] = fix_utc_now()
    if text:
        m[FTag.Text] = text
    if affected:
        m.set_group(
            FTag.NoAffectedOrders,
            [{FTag.OrigClOrdID: r.cl_ord_id, FTag.AffectedOrderID: r.order_id} for r in affected],
        )
    return m


def positions_ack(
    report_id: str,
    pos_req_id: str,
    account: str,
    total: int,
    result: str = "0",
    text: str | None = None,
) -> FIXMessage:
    """RequestForPositionsAck (AO); result 0 = valid request."""
    m = FIXMessage(FMsg.REQUESTFORPOSITIONSACK)
    m[FTag.PosMaintRptID] = report_id
    m[FTag.PosReqID] = pos_req_id
    m[FTag.TotalNumPosReports] = total
    m[FTag.PosReqResult] = result
    m[FTag.PosReqStatus] = "0" if result == "0" else "2"
    m[FTag.Account] = account
    m[FTag.AccountType] = "1"
    if text:
        m[FTag.Text] = text
    return m


def position_report(
    report_id: str, pos_req_id: str, total: int, view: PositionView, extensions: bool = False
) -> FIXMessage:
    """PositionReport (AP) of one symbol, valued at the mark (the reference price before any).

    With the venue extensions on (``fix.venue_extensions``), the average price
    and the P&L go in the user-defined tags 9101-9103 (FIX44-venue.xml).
    """
    m = FIXMessage(FMsg.POSITIONREPORT)
    m[FTag.PosMaintRptID] = report_id
    m[FTag.PosReqID] = pos_req_id
    m[FTag.PosReqType] = "0"
    m[FTag.TotalNumPosReports] = total
    m[FTag.PosReqResult] = "0"
    m[FTag.ClearingBusinessDate] = fix_utc_now()[:8]
    m[FTag.Account] = view.account
    m[FTag.AccountType] = "1"
    m[FTag.Symbol] = view.symbol
    m[FTag.SettlPrice] = fmt_decimal(view.mark if view.mark is not None else view.prior_settl_px)
    m[FTag.SettlPriceType] = "2"  # theoretical: an intraday valuation, not a final settlement
    m[FTag.PriorSettlPrice] = fmt_decimal(view.prior_settl_px)
    if extensions:
        m[TAG_AVG_PX] = fmt_decimal(view.avg_px)
        m[TAG_REALIZED_PNL] = fmt_decimal(view.realized_pnl)
        m[TAG_UNREALIZED_PNL] = fmt_decimal(view.unrealized_pnl)
    long_qty = view.qty if view.qty > 0 else Decimal(0)
    short_qty = -view.qty if view.qty < 0 else Decimal(0)
    m.set_group(
        FTag.NoPositions,
        [
            {
                FTag.PosType: "TOT",
                FTag.LongQty: fmt_decimal(long_qty),
                FTag.ShortQty: fmt_decimal(short_qty),
            }
        ],
    )
    return m


def md_snapshot(
    md_req_id: str, symbol: str, tick: Tick, rpt_seq: int, extensions: bool = False
) -> FIXMessage:
    """MarketDataSnapshotFullRefresh (W): bid, offer, last trade; RptSeq only as an extension."""
    m = FIXMessage(FMsg.MARKETDATASNAPSHOTFULLREFRESH)
    m[FTag.MDReqID] = md_req_id
    m[FTag.Symbol] = symbol
    if extensions:
        m[FTag.RptSeq] = rpt_seq
    m.set_group(
        FTag.NoMDEntries,
        [
            {
                FTag.MDEntryType: "0",
                FTag.MDEntryPx: fmt_decimal(tick.bid),
                FTag.MDEntrySize: fmt_decimal(tick.bid_size),
            },
            {
                FTag.MDEntryType: "1",
                FTag.MDEntryPx: fmt_decimal(tick.ask),
                FTag.MDEntrySize: fmt_decimal(tick.ask_size),
            },
            {FTag.MDEntryType: "2", FTag.MDEntryPx: fmt_decimal(tick.last), FTag.MDEntrySize: "1"},
        ],
    )
    return m


def md_incremental(
    md_req_id: str, symbol: str, tick: Tick, rpt_seq: int, extensions: bool = False
) -> FIXMessage:
    """MarketDataIncrementalRefresh (X): bid and offer changed, a trade at last.

    RptSeq goes in each entry only as a venue extension.
    """
    m = FIXMessage(FMsg.MARKETDATAINCREMENTALREFRESH)
    m[FTag.MDReqID] = md_req_id
    entries = []
    for entry_type, action, px, size in (
        ("0", "1", tick.bid, tick.bid_size),
        ("1", "1", tick.ask, tick.ask_size),
        ("2", "0", tick.last, Decimal(1)),
    ):
        entry: dict[Any, Any] = {
            FTag.MDUpdateAction: action,
            FTag.MDEntryType: entry_type,
            FTag.Symbol: symbol,
        }
        if extensions:
            entry[FTag.RptSeq] = rpt_seq
        entry[FTag.MDEntryPx] = fmt_decimal(px)
        entry[FTag.MDEntrySize] = fmt_decimal(size)
        entries.append(entry)
    m.set_group(FTag.NoMDEntries, entries)
    return m


def md_reject(md_req_id: str, reason: str, text: str) -> FIXMessage:
    """MarketDataRequestReject (Y); reason 0 = unknown symbol."""
    m = FIXMessage(FMsg.MARKETDATAREQUESTREJECT)
    m[FTag.MDReqID] = md_req_id
    m[FTag.MDReqRejReason] = reason
    m[FTag.Text] = text
    return m


def session_reject(
    ref_seq_num: int | str | None,
    ref_msg_type: str | None,
    reason: int,
    text: str,
    ref_tag: str | None = None,
) -> FIXMessage:
    """Reject (3)."""
    m = FIXMessage(FMsg.REJECT)
    m[FTag.RefSeqNum] = ref_seq_num if ref_seq_num is not None else 0
    if ref_tag:
        m[FTag.RefTagID] = ref_tag
    if ref_msg_type:
        m[FTag.RefMsgType] = ref_msg_type
    m[FTag.SessionRejectReason] = reason
    m[FTag.Text] = text
    return m


def business_reject(
    ref_seq_num: int | str | None,
    ref_msg_type: str,
    reason: int,
    text: str,
    ref_id: str | None = None,
) -> FIXMessage:
    """BusinessMessageReject (j)."""
    m = FIXMessage(FMsg.BUSINESSMESSAGEREJECT)
    m[FTag.RefSeqNum] = ref_seq_num if ref_seq_num is not None else 0
    m[FTag.RefMsgType] = ref_msg_type
    if ref_id:
        m[FTag.BusinessRejectRefID] = ref_id
    m[FTag.BusinessRejectReason] = reason
    m[FTag.Text] = text
    return m
