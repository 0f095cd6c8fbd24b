"""What the venue said, as verdicts: working orders, "clean", "flat", and the reports.

Pure functions and dataclasses, no I/O: :mod:`tradeops.agent.risk` and
:mod:`tradeops.agent.flatten` feed them the events of the risk session. "Clean"
and "flat" are decided here, and only from the venue's own answers (a complete
mass status, a complete set of PositionReports), never from bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from tradeops.brokers.base import Execution, Position, PositionsAck, Side

NO_ORDER_ID = "NONE"  # the mass-status answer "no working orders" is not an order
WORKING_STATUSES = frozenset({"0", "1", "A", "E", "6"})  # New, Partial, PendingNew/Replace/Cancel


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """An order the venue reports as working (one ExecType=I report)."""

    order_id: str
    cl_ord_id: str
    symbol: str
    side: Side
    leaves_qty: Decimal


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """The venue's answer to one OrderMassStatusRequest.

    ``expected`` is TotNumReports (911) as the venue stated it, ``received`` how
    many reports came; the answer is complete when the last one (912=Y) came
    and their number matches.
    """

    req_id: str
    working: tuple[WorkingOrder, ...]
    expected: int | None
    received: int
    last_seen: bool

    @property
    def complete(self) -> bool:
        """Every report the venue announced arrived."""
        if not self.last_seen or self.expected is None:
            return False
        if self.expected == 0:
            return self.received == 1 and not self.working  # the single "no orders" report
        return self.received == self.expected

    @property
    def clean(self) -> bool:
        """The venue says the account has zero working orders."""
        return self.complete and self.expected == 0 and not self.working


def status_answer(req_id: str, reports: Iterable[Execution]) -> StatusAnswer:
    """Fold the ExecType=I reports of ``req_id`` into a :class:`StatusAnswer`."""
    working: dict[str, WorkingOrder] = {}
    expected: int | None = None
    received = 0
    last_seen = False
    for ex in reports:
        if ex.mass_status_req_id != req_id or ex.exec_type != "I":
            continue
        received += 1
        if ex.tot_num_reports is not None:
            expected = ex.tot_num_reports if expected is None else max(expected, ex.tot_num_reports)
        last_seen = last_seen or bool(ex.last_rpt_requested)
        if ex.order_id == NO_ORDER_ID or ex.tot_num_reports == 0:
            continue
        if ex.ord_status in WORKING_STATUSES or ex.leaves_qty > 0:
            working[ex.order_id] = WorkingOrder(
                ex.order_id, ex.cl_ord_id, ex.symbol, ex.side, ex.leaves_qty
            )
    return StatusAnswer(req_id, tuple(working.values()), expected, received, last_seen)


@dataclass(frozen=True, slots=True)
class PositionsAnswer:
    """The venue's answer to one RequestForPositions: the ack and its PositionReports."""

    req_id: str
    ack: PositionsAck | None
    positions: tuple[Position, ...]

    @property
    def complete(self) -> bool:
        """Acked as valid and every announced PositionReport arrived."""
        return self.ack is not None and self.ack.complete_with(
            len({p.symbol for p in self.positions})
        )

    def by_symbol(self) -> dict[str, Position]:
        """The reported position of each symbol (the last report wins)."""
        return {p.symbol: p for p in self.positions}

    def open_positions(self) -> dict[str, Decimal]:
        """Signed quantity of every symbol the venue reports as not flat."""
        return {s: p.qty for s, p in self.by_symbol().items() if p.qty != 0}

    @property
    def flat(self) -> bool:
        """The venue reports zero for every symbol (and the answer is complete)."""
        return self.complete and not self.open_positions()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


@dataclass(slots=True)
class CancelReport:
    """What ``cancel_all`` did and what the venue confirmed.

    ``clean`` is True only when a complete mass status of the venue reported
    zero working orders for the account after the cancels. ``steps_ms`` holds
    the duration of each step in the order they ran (``connect``,
    ``mass_cancel``, ``confirm_1``, ``per_order_1``, ``confirm_2``, ...,
    ``kill_switch``); ``total_ms`` from the start to the last answer.
    """

    who: str
    why: str
    account: str
    clean: bool = False
    cancelled_by_mass: int = 0
    cancelled_by_order: int = 0
    still_working: list[str] = field(default_factory=list)
    steps_ms: dict[str, float] = field(default_factory=dict)
    total_ms: float = 0.0
    confirm_ms: float | None = None  # start until the venue confirmed zero working orders
    reconnects: int = 0
    exchange_kill_switch_needed: bool = False
    exchange_kill_switch_used: bool = False
    errors: list[str] = field(default_factory=list)

    def step(self, name: str, seconds: float) -> None:
        """Record the duration of a step (a repeated name gets a numeric suffix)."""
        key, n = name, 1
        while key in self.steps_ms:
            n += 1
            key = f"{name}_{n}"
        self.steps_ms[key] = _ms(seconds)

    def settle(self, answer: StatusAnswer | None, elapsed_s: float) -> None:
        """Set the verdict from the last complete venue answer (None: no answer)."""
        self.total_ms = _ms(elapsed_s)
        if answer is None or not answer.complete:
            self.clean = False
            if answer is not None:
                self.still_working = sorted(o.order_id for o in answer.working)
            return
        self.clean = answer.clean
        self.still_working = sorted(o.order_id for o in answer.working)
        if self.clean and self.confirm_ms is None:
            self.confirm_ms = _ms(elapsed_s)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return asdict(self)


@dataclass(slots=True)
class SymbolFlatten:
    """Flattening of one symbol: the venue's quantity before and after, what was sent."""

    symbol: str
    start_qty: Decimal
    final_qty: Decimal | None = None
    orders: int = 0
    filled_qty: Decimal = Decimal(0)
    rejects: list[str] = field(default_factory=list)
    last_price: Decimal | None = None


@dataclass(slots=True)
class FlattenReport:
    """What ``flatten`` did; ``flat`` only from a fresh, complete set of PositionReports."""

    who: str
    why: str
    account: str
    flat: bool = False
    attempts: int = 0
    symbols: dict[str, SymbolFlatten] = field(default_factory=dict)
    still_open: dict[str, Decimal] = field(default_factory=dict)
    cancel: CancelReport | None = None
    steps_ms: dict[str, float] = field(default_factory=dict)
    total_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    def step(self, name: str, seconds: float) -> None:
        """Record the duration of a step (a repeated name gets a numeric suffix)."""
        key, n = name, 1
        while key in self.steps_ms:
            n += 1
            key = f"{name}_{n}"
        self.steps_ms[key] = _ms(seconds)

    def observe(self, answer: PositionsAnswer) -> None:
        """Record a fresh venue answer: per-symbol quantities and the verdict."""
        open_now = answer.open_positions() if answer.complete else {}
        for symbol, qty in open_now.items():
            self.symbols.setdefault(symbol, SymbolFlatten(symbol, qty))
        for symbol, entry in self.symbols.items():
            pos = answer.by_symbol().get(symbol)
            entry.final_qty = pos.qty if pos is not None else None
        self.flat = answer.flat
        self.still_open = dict(open_now) if answer.complete else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (decimals as strings)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
