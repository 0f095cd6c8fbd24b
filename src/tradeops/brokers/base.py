"""The broker adapter interface shared by the strategy, the agent and the tests.

An adapter owns one broker session (order entry, drop copy or risk). It turns
domain calls into wire messages and wire messages into the events below, which
it hands to the ``on_event`` callback given at construction. Everything is
asyncio; callbacks run on the adapter's event loop.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class Side(enum.StrEnum):
    """Order side, with FIX Side(54) values."""

    BUY = "1"
    SELL = "2"


class OrdType(enum.StrEnum):
    """Order type, with FIX OrdType(40) values."""

    MARKET = "1"
    LIMIT = "2"


class SessionRole(enum.StrEnum):
    """What a broker session is for."""

    ORDER_ENTRY = "order_entry"
    DROP_COPY = "drop_copy"
    RISK = "risk"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A new order request."""

    cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType = OrdType.LIMIT
    price: Decimal | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Execution:
    """An ExecutionReport, normalised. ``exec_type`` uses FIX ExecType(150) values.

    Answers to a mass status request (``exec_type`` ``"I"``) also carry
    ``mass_status_req_id``, ``tot_num_reports`` (how many reports the answer has)
    and ``last_rpt_requested`` (True on the last one); they are None otherwise.
    With nothing to report the answer is one report with ``tot_num_reports`` 0,
    ``order_id`` ``"NONE"`` and placeholder order fields: it is not an order.
    """

    exec_id: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    symbol: str
    side: Side
    exec_type: str
    ord_status: str
    order_qty: Decimal
    last_qty: Decimal
    last_px: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    price: Decimal | None = None
    account: str | None = None
    text: str | None = None
    transact_time: str | None = None
    mass_status_req_id: str | None = None
    tot_num_reports: int | None = None
    last_rpt_requested: bool | None = None


@dataclass(frozen=True, slots=True)
class CancelReject:
    """An OrderCancelReject (9)."""

    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class MassCancelReport:
    """An OrderMassCancelReport (r)."""

    cl_ord_id: str
    request_type: str
    response: str
    total_affected: int
    reject_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """One PositionReport (AP), per account and symbol; ``pos_req_id`` of the request.

    Standard FIX 4.4 carries no average price nor P&L in a PositionReport: they
    are None unless the venue sends them (the simulator's venue extensions,
    tags 9101-9103). ``settl_px`` is the SettlPrice (730) the venue valued it at.
    """

    account: str
    symbol: str
    qty: Decimal
    avg_px: Decimal | None = None
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    pos_req_id: str | None = None
    settl_px: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PositionsAck:
    """A RequestForPositionsAck (AO): how many PositionReports the request gets.

    The answer is complete once ``total`` (TotalNumPosReports, 727) Positions
    with this ``pos_req_id`` arrived. ``status`` is PosReqStatus (729: 0
    completed, 1 with warnings, 2 rejected), ``result`` PosReqResult (728: 0
    valid request, else why not).
    """

    pos_req_id: str
    total: int
    status: str
    result: str = "0"
    account: str | None = None
    text: str | None = None

    @property
    def refused(self) -> bool:
        """The venue rejected the request (729=2) or found it invalid (728 not 0)."""
        return self.status == "2" or self.result != "0"

    def complete_with(self, reports: int) -> bool:
        """Whether ``reports`` PositionReports complete a request the venue accepted."""
        return not self.refused and reports >= self.total


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book for one symbol, from market data (W/X)."""

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None = None
    ts: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A session Reject (3) or BusinessMessageReject (j) from the venue."""

    ref_msg_type: str | None
    reason: str
    ref_seq_num: int | None = None


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """Logon, logout and disconnect notices of the session itself."""

    state: str  # "logged_on", "logged_out", "disconnected"
    detail: str = ""


BrokerEvent = (
    Execution
    | CancelReject
    | MassCancelReport
    | Position
    | PositionsAck
    | Quote
    | Reject
    | SessionStatus
)
EventCallback = Callable[[BrokerEvent], Awaitable[None] | None]


@dataclass(slots=True)
class SessionConfig:
    """Where and as whom an adapter connects."""

    host: str
    port: int
    sender_comp_id: str
    target_comp_id: str
    role: SessionRole = SessionRole.ORDER_ENTRY
    account: str | None = None
    heartbeat_s: int = 30
    store_dir: str | None = None  # sequence numbers persist here; None = in memory
    extra: dict[str, str] = field(default_factory=dict)


class BrokerSession(Protocol):
    """What every broker adapter offers. Methods return once the request is sent."""

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the session and wait until it is logged on."""

    async def close(self) -> None:
        """Log out and close the connection."""

    @property
    def is_logged_on(self) -> bool:
        """True while the session is logged on."""

    async def send_order(self, order: NewOrder) -> None:
        """Send a NewOrderSingle."""

    async def cancel_order(
        self, cl_ord_id: str, orig_cl_ord_id: str, symbol: str, side: Side
    ) -> None:
        """Send an OrderCancelRequest."""

    async def replace_order(
        self,
        cl_ord_id: str,
        orig_cl_ord_id: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
    ) -> None:
        """Send an OrderCancelReplaceRequest."""

    async def mass_cancel(self, cl_ord_id: str, symbol: str | None = None) -> None:
        """Cancel all orders (or those of one symbol) of the session's account."""

    async def mass_status(self, mass_status_req_id: str) -> None:
        """Ask for the status of every working order (answered as ExecType=I).

        The answer is complete at the Execution with ``last_rpt_requested``.
        """

    async def request_positions(self, pos_req_id: str) -> None:
        """Ask for the positions of the session's account.

        Answered by a PositionsAck with the number of Positions that follow.
        """

    async def subscribe_market_data(self, md_req_id: str, symbols: list[str]) -> None:
        """Subscribe to snapshots and incremental updates for ``symbols``."""
