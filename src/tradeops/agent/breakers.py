"""Breakers: auto-trips computed from the agent's own :class:`~tradeops.agent.book.Book`.

Each breaker is a small class with a typed config and ``evaluate(view, now)``,
which never raises and fails closed: a breaker whose inputs are silent past
its ``input_timeout_s`` (while they are expected), whose session is down,
whose book could not apply an event, or whose computation raises, trips with
``Reason.BREAKER_FAULT`` and says which breaker and why. A value strictly above
its threshold is a breach; at the threshold it is not.

:class:`BreakerSet` runs them all on every event and every timer tick, latches
trips until a reset, and re-arms on reset only the breakers whose condition no
longer holds (:meth:`BreakerSet.holding` lists the others).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from tradeops.agent.book import Book, Input
from tradeops.agent.breakerconfig import (
    AckLatencyConfig,
    Action,
    BreakerConfig,
    BreakersConfig,
    ChildQtyConfig,
    DailyLossConfig,
    DrawdownConfig,
    ErrorBurstConfig,
    ExposureConfig,
    FeedStaleConfig,
    HeartbeatConfig,
    MsgRateConfig,
    RejectRateConfig,
)
from tradeops.agent.reasons import Reason
from tradeops.brokers.base import BrokerEvent
from tradeops.tradingstate import TradingState

C = TypeVar("C", bound=BreakerConfig)
DROP_COPY, MARKET_DATA = (Input.DROP_COPY,), (Input.MARKET_DATA,)
DISABLED = "disabled"
BOTH = (Input.DROP_COPY, Input.MARKET_DATA)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One breaker's answer: ok, or a trip with its reason, action, value and threshold."""

    breaker: str
    reason: Reason | None
    action: Action | None
    value: float
    threshold: float
    what: str  # what was measured (or, for a fault, why); see ``text``

    @property
    def text(self) -> str:
        """The human text: breaker, what, value and threshold (formatted on demand)."""
        if self.reason is Reason.BREAKER_FAULT or self.what == DISABLED:
            return f"{self.breaker}: {self.what}"
        if self.reason is not None:
            return f"{self.breaker}: {self.what} {self.value:g} above {self.threshold:g}"
        return f"{self.breaker}: {self.what} {self.value:g}"

    @property
    def tripped(self) -> bool:
        """True when this verdict trips the host."""
        return self.reason is not None

    @property
    def target(self) -> TradingState:
        """The trading state this verdict asks for (ACTIVE when ok)."""
        return self.action.state if self.action is not None else TradingState.ACTIVE


def _fault(name: str, action: Action, why: str, value: float = math.nan) -> Verdict:
    return Verdict(name, Reason.BREAKER_FAULT, action, value, math.nan, why)


class Breaker(Generic[C]):
    """Base: input checks and fail-closed wrapping around :meth:`measure`."""

    name: ClassVar[str]
    reason: ClassVar[Reason]
    inputs: ClassVar[tuple[Input, ...]] = DROP_COPY

    def __init__(self, config: C, fault_action: Action = Action.HALT) -> None:
        self.config = config
        self.fault_action = fault_action

    @property
    def threshold(self) -> float:
        """The threshold the measured value is compared with."""
        raise NotImplementedError

    def evaluate(self, view: Book, now: float) -> Verdict:
        """Ok or trip; never raises (a fault is a BREAKER_FAULT trip)."""
        if not self.config.enabled:
            return Verdict(self.name, None, None, 0.0, self.threshold, DISABLED)
        try:
            if self.inputs and view.fault is not None:
                return _fault(self.name, self.fault_action, f"book unusable: {view.fault}")
            for source in self.inputs:
                age = view.input_age(source, now)
                if age is not None and age > self.config.input_timeout_s:
                    down = view.input_down(source)
                    why = f"{source} session {down}" if down else f"no {source} for {age:.3f}s"
                    return _fault(
                        self.name,
                        self.fault_action,
                        f"{why} (input timeout {self.config.input_timeout_s}s)",
                        age,
                    )
            return self.measure(view, now)
        except Exception as exc:  # fail closed
            return _fault(self.name, self.fault_action, f"raised {type(exc).__name__}: {exc}")

    def measure(self, view: Book, now: float) -> Verdict:
        """Compute the value from fresh inputs and compare it with the threshold."""
        raise NotImplementedError

    def _judge(self, value: float, what: str) -> Verdict:
        threshold = self.threshold
        if value > threshold:
            return Verdict(self.name, self.reason, self.config.action, value, threshold, what)
        return Verdict(self.name, None, None, value, threshold, what)


class DailyLoss(Breaker[DailyLossConfig]):
    """Realized + unrealized loss of the day."""

    name, reason, inputs = "daily_loss", Reason.DAILY_LOSS, BOTH

    @property
    def threshold(self) -> float:
        """The largest loss allowed."""
        return float(self.config.max_loss)

    def measure(self, view: Book, now: float) -> Verdict:
        """Loss = -(realized + unrealized)."""
        return self._judge(float(-view.equity), "loss")


class Drawdown(Breaker[DrawdownConfig]):
    """Equity below its intraday peak."""

    name, reason, inputs = "drawdown", Reason.DRAWDOWN, BOTH

    @property
    def threshold(self) -> float:
        """The largest drawdown allowed."""
        return float(self.config.max_drawdown)

    def measure(self, view: Book, now: float) -> Verdict:
        """Drawdown = intraday peak equity - equity."""
        return self._judge(float(view.drawdown), "drawdown from the intraday peak")


class Exposure(Breaker[ExposureConfig]):
    """Notional (and quantity) per symbol and in total, counting working orders."""

    name, reason, inputs = "exposure", Reason.WORKING_EXPOSURE, BOTH

    @property
    def threshold(self) -> float:
        """The total notional limit (the value reported is total notional)."""
        return float(self.config.max_total_notional)

    def measure(self, view: Book, now: float) -> Verdict:
        """Each symbol against its limits, then the total."""
        cfg = self.config
        for s in view.symbols.values():
            if s.notional > cfg.max_symbol_notional:
                return self._breach(
                    s.notional, cfg.max_symbol_notional, f"{s.symbol} notional incl. working"
                )
            if cfg.max_symbol_qty is not None and s.exposure_qty > cfg.max_symbol_qty:
                return self._breach(
                    s.exposure_qty, cfg.max_symbol_qty, f"{s.symbol} quantity incl. working"
                )
        return self._judge(float(view.notional), "total notional incl. working")

    def _breach(self, value: Decimal, limit: Decimal, what: str) -> Verdict:
        action = self.config.action
        return Verdict(self.name, self.reason, action, float(value), float(limit), what)


class MsgRate(Breaker[MsgRateConfig]):
    """Drop-copy messages and new orders per window."""

    name, reason = "msg_rate", Reason.MSG_RATE

    @property
    def threshold(self) -> float:
        """Messages allowed per window."""
        return float(self.config.max_messages)

    def measure(self, view: Book, now: float) -> Verdict:
        """New orders first (the sharper signal), then all messages."""
        orders = view.new_orders.count(now)
        if orders > self.config.max_new_orders:
            limit = self.config.max_new_orders
            what = f"new orders in {self.config.window_s}s"
            return Verdict(self.name, self.reason, self.config.action, orders, limit, what)
        return self._judge(view.messages.count(now), f"messages in {self.config.window_s}s")


class RejectRate(Breaker[RejectRateConfig]):
    """Order rejects over new orders in the window."""

    name, reason = "reject_rate", Reason.REJECT_RATE

    @property
    def threshold(self) -> float:
        """The largest reject ratio allowed."""
        return self.config.max_ratio

    def measure(self, view: Book, now: float) -> Verdict:
        """Judged once at least ``min_orders`` were sent in the window."""
        orders, rejects = view.orders_for_rejects.count(now), view.rejects.count(now)
        ratio = rejects / orders if orders else 0.0
        if orders < self.config.min_orders:
            what = f"{rejects}/{orders} rejected (judged from {self.config.min_orders}), ratio"
            return Verdict(self.name, None, None, ratio, self.threshold, what)
        return self._judge(ratio, f"{rejects}/{orders} rejected, ratio")


class ChildQty(Breaker[ChildQtyConfig]):
    """The Knight pattern: child quantity beyond the parent's intended quantity."""

    name, reason = "child_qty", Reason.CHILD_EXCEEDS_PARENT

    @property
    def threshold(self) -> float:
        """The largest (filled + working) / intended ratio allowed."""
        return self.config.max_ratio

    def measure(self, view: Book, now: float) -> Verdict:
        """The worst parent, or an order filled beyond its own OrderQty."""
        overfill, order = view.worst_overfill
        if overfill > 1.0:
            what = f"order {order} CumQty / OrderQty"
            return Verdict(self.name, self.reason, self.config.action, overfill, 1.0, what)
        ratio, child = view.worst_child
        if child is None:
            return self._judge(ratio, "filled + working / intended")
        symbol, side, parent = child
        what = f"{symbol} {side.name} parent {parent or '*'} filled + working / intended"
        return self._judge(ratio, what)


class FeedStale(Breaker[FeedStaleConfig]):
    """Quotes too old for a symbol with a position, a working order or on the list."""

    name, reason, inputs = "feed_stale", Reason.FEED_STALE, MARKET_DATA

    @property
    def threshold(self) -> float:
        """The oldest quote allowed, in seconds."""
        return self.config.max_age_s

    def measure(self, view: Book, now: float) -> Verdict:
        """The stalest watched symbol."""
        worst, worst_symbol = 0.0, ""
        for symbol in self.config.symbols:
            age = view.feed_age(symbol, now)
            if age > worst:
                worst, worst_symbol = age, symbol
        oldest, oldest_symbol = now - worst, ""
        for s in view.symbols.values():  # inlined: this runs on every event
            if s.qty or s.working_buy or s.working_sell:
                seen = s.quote_at if s.quote_at is not None else s.first_seen
                if seen < oldest:
                    oldest, oldest_symbol = seen, s.symbol
        if oldest_symbol:
            worst, worst_symbol = now - oldest, oldest_symbol
        return self._judge(worst, f"quote age of {worst_symbol or 'every symbol'} (s)")


class AckLatency(Breaker[AckLatencyConfig]):
    """PendingNew -> New latency, or the age of an order still awaiting its ack."""

    name, reason = "ack_latency", Reason.ACK_LATENCY

    @property
    def threshold(self) -> float:
        """The largest latency allowed, in seconds."""
        return self.config.max_latency_s

    def measure(self, view: Book, now: float) -> Verdict:
        """The worse of the window's maximum and the oldest unacked order."""
        cl, age = view.oldest_unacked(now)
        latency = view.ack_latency.max(now)
        if age > latency:
            return self._judge(age, f"order {cl} unacked for (s)")
        return self._judge(latency, f"max ack latency in {self.config.window_s}s (s)")


class Heartbeat(Breaker[HeartbeatConfig]):
    """A strategy's dead man's switch, fed by the agent server."""

    name, reason, inputs = "heartbeat", Reason.HEARTBEAT_LOST, ()

    @property
    def threshold(self) -> float:
        """The oldest heartbeat allowed, in seconds."""
        return self.config.max_age_s

    def measure(self, view: Book, now: float) -> Verdict:
        """The oldest heartbeat (a required strategy never heard counts from the start)."""
        worst, who = 0.0, ""
        for strategy in (*self.config.required, *view.heartbeats):
            age = now - view.heartbeats.get(strategy, view.started)
            if age > worst:
                worst, who = age, strategy
        return self._judge(worst, f"heartbeat age of {who or 'every strategy'} (s)")


class ErrorBurst(Breaker[ErrorBurstConfig]):
    """Error-log lines in the window, from a counter fed by a callable."""

    name, reason, inputs = "error_burst", Reason.ERROR_BURST, ()

    def __init__(
        self, config: ErrorBurstConfig, count: Callable[[], int], fault_action: Action = Action.HALT
    ) -> None:
        super().__init__(config, fault_action)
        self.count = count
        self._samples: deque[tuple[float, int]] = deque()

    @property
    def threshold(self) -> float:
        """Error lines allowed per window."""
        return float(self.config.max_errors)

    def measure(self, view: Book, now: float) -> Verdict:
        """Sample the counter; a counter that went down (restarted) starts a new baseline."""
        count = int(self.count())
        samples, edge = self._samples, now - self.config.window_s
        if samples and count < samples[-1][1]:
            samples.clear()
        samples.append((now, count))
        while len(samples) > 1 and samples[1][0] <= edge:
            samples.popleft()
        return self._judge(count - samples[0][1], f"error lines in {self.config.window_s}s")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one pass: the strictest latched verdict, and what newly tripped."""

    verdict: Verdict | None
    new_trips: tuple[Verdict, ...]
    verdicts: tuple[Verdict, ...]

    @property
    def target(self) -> TradingState:
        """What the breakers ask for: ACTIVE when nothing is latched."""
        return self.verdict.target if self.verdict else TradingState.ACTIVE


class Arm(enum.StrEnum):
    """A breaker's latch."""

    ARMED = "armed"
    TRIPPED = "tripped"  # latched until a reset finds the condition gone
    SUPPRESSED = "suppressed"  # forced reset while holding: re-arms once it clears


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One breaker's current value and threshold (for metrics and ``status``)."""

    name: str
    reason: Reason
    enabled: bool
    action: Action
    arm: Arm
    value: float
    threshold: float
    text: str


@dataclass(frozen=True, slots=True)
class Rearm:
    """What a reset did to the breakers."""

    rearmed: tuple[str, ...]
    holding: tuple[Reason, ...]
    suppressed: tuple[str, ...]


_RANK = {Action.HALT: 2, Action.REDUCE: 1}


def _strictest(verdicts: Iterable[Verdict]) -> Verdict | None:
    best: Verdict | None = None
    for v in verdicts:
        if v.action is not None and (best is None or _RANK[v.action] > _RANK[best.action]):  # type: ignore[index]
            best = v
    return best


def new_book(config: BreakersConfig, started: float) -> Book:
    """A :class:`Book` with the windows and intended quantities of ``config``."""
    child = config.child_qty
    return Book(
        started,
        rate_window_s=config.msg_rate.window_s,
        reject_window_s=config.reject_rate.window_s,
        ack_window_s=config.ack_latency.window_s,
        intended_qty=child.intended_qty,
        default_intended_qty=child.default_intended_qty,
        parent_pattern=child.parent_pattern,
    )


class BreakerSet:
    """Every breaker over one book: evaluate, latch, report, re-arm."""

    def __init__(
        self,
        config: BreakersConfig,
        started: float,
        error_count: Callable[[], int] | None = None,
        book: Book | None = None,
    ) -> None:
        fa = config.fault_action
        if config.error_burst.enabled and error_count is None:
            raise ValueError("error_burst is enabled but no error counter was given")
        self.config = config
        self.book = book if book is not None else new_book(config, started)
        breakers: list[Breaker[Any]] = [
            DailyLoss(config.daily_loss, fa),
            Drawdown(config.drawdown, fa),
            Exposure(config.exposure, fa),
            MsgRate(config.msg_rate, fa),
            RejectRate(config.reject_rate, fa),
            ChildQty(config.child_qty, fa),
            FeedStale(config.feed_stale, fa),
            AckLatency(config.ack_latency, fa),
            Heartbeat(config.heartbeat, fa),
        ]
        if error_count is not None:
            breakers.append(ErrorBurst(config.error_burst, error_count, fa))
        self.breakers = tuple(breakers)
        self._arm = {b.name: Arm.ARMED for b in self.breakers}
        self._latched: dict[str, Verdict] = {}
        self._suppressed: dict[str, Reason] = {}
        self._last: dict[str, Verdict] = {}

    def on_event(self, event: BrokerEvent, now: float) -> Evaluation:
        """Apply a drop-copy or market-data event to the book, then evaluate."""
        self.book.on_event(event, now)
        return self.evaluate(now)

    def tick(self, now: float) -> Evaluation:
        """The timer: catches silence (stale feeds, lost heartbeats, dead inputs)."""
        return self.evaluate(now)

    def _run(self, breaker: Breaker[Any], now: float) -> Verdict:
        try:
            return breaker.evaluate(self.book, now)
        except Exception as exc:  # belt and braces: evaluate itself never raises
            return _fault(breaker.name, self.config.fault_action, f"{type(exc).__name__}: {exc}")

    def evaluate(self, now: float) -> Evaluation:
        """Run every breaker; latch new trips; return the strictest latched verdict."""
        new: list[Verdict] = []
        verdicts = []
        for b in self.breakers:
            v = self._run(b, now)
            verdicts.append(v)
            self._last[b.name] = v
            arm = self._arm[b.name]
            if not v.tripped:
                if arm is Arm.SUPPRESSED:
                    self._arm[b.name] = Arm.ARMED
                    del self._suppressed[b.name]
                continue
            if arm is Arm.SUPPRESSED and self._suppressed[b.name] is v.reason:
                continue
            if arm is not Arm.TRIPPED:
                self._arm[b.name] = Arm.TRIPPED
                self._suppressed.pop(b.name, None)
                new.append(v)
            self._latched[b.name] = v
        return Evaluation(_strictest(self._latched.values()), tuple(new), tuple(verdicts))

    def holding(self, now: float) -> tuple[Reason, ...]:
        """Reasons whose condition holds now (what the state machine's reset refuses on)."""
        out: list[Reason] = []
        for b in self.breakers:
            v = self._run(b, now)
            if v.reason is not None and v.reason not in out:
                out.append(v.reason)
        return tuple(out)

    def rearm(self, now: float, force: bool = False) -> Rearm:
        """After a reset: re-arm each breaker whose condition is gone.

        One still holding stays latched, or with ``force`` is suppressed until its
        condition clears once (a different reason, a fault say, still trips it).
        """
        rearmed, holding, suppressed = [], [], []
        for b in self.breakers:
            v = self._run(b, now)
            self._last[b.name] = v
            if not v.tripped:
                self._arm[b.name] = Arm.ARMED
                self._latched.pop(b.name, None)
                self._suppressed.pop(b.name, None)
                rearmed.append(b.name)
                continue
            assert v.reason is not None
            if v.reason not in holding:
                holding.append(v.reason)
            if force:
                self._arm[b.name] = Arm.SUPPRESSED
                self._suppressed[b.name] = v.reason
                self._latched.pop(b.name, None)
                suppressed.append(b.name)
            else:
                self._arm[b.name] = Arm.TRIPPED
                self._latched[b.name] = v
        return Rearm(tuple(rearmed), tuple(holding), tuple(suppressed))

    def status(self) -> list[BreakerStatus]:
        """Each breaker's last value and threshold, its latch and its text."""
        out = []
        for b in self.breakers:
            v = self._last.get(b.name)
            out.append(
                BreakerStatus(
                    b.name,
                    b.reason,
                    b.config.enabled,
                    b.config.action,
                    self._arm[b.name],
                    v.value if v else math.nan,
                    v.threshold if v else b.threshold,
                    v.text if v else f"{b.name}: not evaluated yet",
                )
            )
        return out
