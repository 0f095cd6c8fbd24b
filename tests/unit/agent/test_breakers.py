"""Breakers: trip on a breach and not at the threshold, fail closed, latch, re-arm."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.agent.bookkit import D, Order, quote
from tradeops.agent.book import Book, Input
from tradeops.agent.breakerconfig import (
    AckLatencyConfig,
    Action,
    BreakersConfig,
    ChildQtyConfig,
    ConfigError,
    DailyLossConfig,
    DrawdownConfig,
    ErrorBurstConfig,
    ExposureConfig,
    FeedStaleConfig,
    HeartbeatConfig,
    MsgRateConfig,
    RejectRateConfig,
    breakers_config_from_dict,
    load_breakers_config,
)
from tradeops.agent.breakers import (
    AckLatency,
    Arm,
    BreakerSet,
    ChildQty,
    DailyLoss,
    Drawdown,
    ErrorBurst,
    Exposure,
    FeedStale,
    Heartbeat,
    MsgRate,
    RejectRate,
)
from tradeops.agent.reasons import Reason
from tradeops.agent.state import Refused, StateMachine
from tradeops.brokers.base import CancelReject, Execution, Quote, Reject, Side
from tradeops.tradingstate import TradingState

HALT, REDUCE = Action.HALT, Action.REDUCE


def _long(book: Book, qty: int, px: int, t: float = 1.0) -> None:
    book.on_event(Order(f"L{qty}-{px}-{t}", qty=qty).fill(qty, px), t)


# ------------------------------------------------------------------ each breaker
def test_daily_loss_trips_above_the_limit_and_not_at_it() -> None:
    breaker = DailyLoss(DailyLossConfig(max_loss=D(1_000)))
    book = Book(0.0)
    _long(book, 100, 100)
    book.on_event(quote(bid=90, ask=91), 1.0)  # loss exactly 1,000
    assert not breaker.evaluate(book, 1.0).tripped
    book.on_event(quote(bid="89.99", ask=91), 1.0)
    v = breaker.evaluate(book, 1.0)
    assert (v.reason, v.action, v.value, v.threshold) == (Reason.DAILY_LOSS, HALT, 1001.0, 1000.0)
    assert "loss" in v.text


def test_drawdown_from_the_intraday_peak_reduces_by_default() -> None:
    breaker = Drawdown(DrawdownConfig(max_drawdown=D(500)))
    book = Book(0.0)
    _long(book, 100, 100)
    book.on_event(quote(bid=120, ask=121), 1.0)  # +2,000 at the peak
    book.on_event(quote(bid=115, ask=116), 1.0)  # drawdown 500, still +1,500
    assert not breaker.evaluate(book, 1.0).tripped
    book.on_event(quote(bid="114.9", ask=116), 1.0)
    v = breaker.evaluate(book, 1.0)
    assert (v.reason, v.action, v.value) == (Reason.DRAWDOWN, REDUCE, 510.0)


def test_exposure_counts_working_orders_with_no_fill_at_all() -> None:
    breaker = Exposure(ExposureConfig(max_symbol_notional=D(10_000)))
    book = Book(0.0)
    book.on_event(quote(bid=10, ask=10), 1.0)
    book.on_event(Order("a", qty=1_000).new(), 1.0)  # 10,000 working: at the limit
    assert not breaker.evaluate(book, 1.0).tripped
    book.on_event(Order("b", qty=1).new(), 1.0)
    v = breaker.evaluate(book, 1.0)
    assert book.position("AAA") == 0
    assert (v.reason, v.action, v.value) == (Reason.WORKING_EXPOSURE, REDUCE, 10_010.0)


def test_exposure_total_and_quantity_limits() -> None:
    cfg = ExposureConfig(max_total_notional=D(15_000), max_symbol_qty=D(900))
    book = Book(0.0)
    book.on_event(quote("AAA", 10, 10), 1.0)
    book.on_event(quote("BBB", 10, 10), 1.0)
    book.on_event(Order("a", "AAA", qty=800).new(), 1.0)
    book.on_event(Order("b", "BBB", side=Side.SELL, qty=700).new(), 1.0)
    assert not Exposure(cfg).evaluate(book, 1.0).tripped
    book.on_event(Order("c", "BBB", side=Side.SELL, qty=150).new(), 1.0)
    assert Exposure(cfg).evaluate(book, 1.0).value == 16_500.0
    book.on_event(Order("d", "AAA", qty=101).new(), 1.0)
    v = Exposure(replace(cfg, max_total_notional=D(10**9))).evaluate(book, 1.0)
    assert (v.value, v.threshold) == (901.0, 900.0)
    assert "AAA quantity" in v.text


def test_message_and_order_rate_over_the_window() -> None:
    breaker = MsgRate(MsgRateConfig(window_s=1.0, max_new_orders=10, max_messages=15))
    book = Book(0.0, rate_window_s=1.0)
    for i in range(10):
        book.on_event(Order(f"n{i}").new(), 1.0 + i * 0.05)
    assert not breaker.evaluate(book, 1.5).tripped
    book.on_event(Order("n10").new(), 1.6)
    v = breaker.evaluate(book, 1.6)
    assert (v.reason, v.value, v.threshold) == (Reason.MSG_RATE, 11.0, 10.0)
    assert not breaker.evaluate(book, 2.5).tripped  # the burst left the window
    for i in range(16):
        book.on_event(CancelReject(f"x{i}", "n0", None, "too late"), 3.0)
    assert breaker.evaluate(book, 3.0).value == 16.0


def test_reject_rate_is_judged_from_min_orders() -> None:
    breaker = RejectRate(RejectRateConfig(max_ratio=0.5, min_orders=10))
    book = Book(0.0)
    for i in range(6):
        book.on_event(Order(f"r{i}").reject(), 1.0)
    assert not breaker.evaluate(book, 1.0).tripped  # 6/6 but only 6 orders
    for i in range(6):
        book.on_event(Order(f"k{i}").new(), 1.0)
    assert not breaker.evaluate(book, 1.0).tripped  # 6/12 = 0.5, at the limit
    book.on_event(Order("r6").reject(), 1.0)
    v = breaker.evaluate(book, 1.0)
    assert (v.reason, v.action) == (Reason.REJECT_RATE, HALT)
    assert v.value == pytest.approx(7 / 13)


def test_knight_many_small_children_summing_past_the_parent_trip() -> None:
    breaker = ChildQty(ChildQtyConfig(intended_qty={"AAA": D(1_000)}))
    book = Book(0.0, intended_qty={"AAA": D(1_000)})
    for i in range(99):  # 99 children of 10 filled: 990 of 1,000
        book.on_event(Order(f"c{i}", qty=10).fill(10, 10), 1.0 + i / 1000)
    book.on_event(Order("w", qty=10).new(), 1.2)  # + 10 working: exactly 1,000
    assert not breaker.evaluate(book, 1.2).tripped
    book.on_event(Order("w2", qty=1).new(), 1.2)  # one more working share
    v = breaker.evaluate(book, 1.2)
    assert (v.reason, v.action, v.value) == (Reason.CHILD_EXCEEDS_PARENT, HALT, 1.001)
    assert "AAA BUY" in v.text


def test_an_order_filled_beyond_its_own_qty_trips_child_qty() -> None:
    book = Book(0.0)
    o = Order("o", qty=10)
    book.on_event(o.fill(10, 10), 1.0)
    book.on_event(o.fill(5, 10), 1.0)
    v = ChildQty(ChildQtyConfig()).evaluate(book, 1.0)
    assert (v.reason, v.value) == (Reason.CHILD_EXCEEDS_PARENT, 1.5)


def test_feed_stale_for_a_symbol_with_a_position() -> None:
    breaker = FeedStale(FeedStaleConfig(max_age_s=2.0))
    book = Book(0.0)
    book.on_event(quote("AAA"), 1.0)
    _long(book, 10, 10, 1.0)
    book.on_event(quote("BBB"), 3.0)  # the feed is alive, AAA is not
    assert not breaker.evaluate(book, 3.0).tripped
    v = breaker.evaluate(book, 3.1)
    assert (v.reason, v.value) == (Reason.FEED_STALE, pytest.approx(2.1))
    assert "AAA" in v.text


def test_feed_stale_for_a_listed_symbol_never_quoted() -> None:
    book = Book(0.0)
    book.touch(Input.MARKET_DATA, 5.0)
    v = FeedStale(FeedStaleConfig(max_age_s=2.0, symbols=("ZZZ",))).evaluate(book, 5.0)
    assert v.reason is Reason.FEED_STALE


def test_ack_latency_and_an_order_never_acked() -> None:
    breaker = AckLatency(AckLatencyConfig(max_latency_s=0.5))
    book = Book(0.0)
    a, b = Order("a"), Order("b")
    book.on_event(a.pending(), 1.0)
    book.on_event(a.new(), 1.5)
    assert not breaker.evaluate(book, 1.5).tripped
    book.on_event(b.pending(), 2.0)
    assert not breaker.evaluate(book, 2.5).tripped
    v = breaker.evaluate(book, 2.6)
    assert (v.reason, v.value) == (Reason.ACK_LATENCY, pytest.approx(0.6))
    assert "order b" in v.text


def test_heartbeat_lost_and_a_required_strategy_never_heard() -> None:
    cfg = HeartbeatConfig(max_age_s=2.0, required=("blue",))
    book = Book(0.0)
    book.heartbeat("blue", 1.0)
    assert not Heartbeat(cfg).evaluate(book, 3.0).tripped
    v = Heartbeat(cfg).evaluate(book, 3.5)
    assert (v.reason, v.value) == (Reason.HEARTBEAT_LOST, 2.5)
    fresh = Book(0.0)
    assert Heartbeat(cfg).evaluate(fresh, 2.5).reason is Reason.HEARTBEAT_LOST


def test_error_burst_from_a_counter() -> None:
    lines = [0]
    breaker = ErrorBurst(ErrorBurstConfig(window_s=10.0, max_errors=5), lambda: lines[0])
    book = Book(0.0)
    assert not breaker.evaluate(book, 1.0).tripped
    lines[0] = 5
    assert not breaker.evaluate(book, 2.0).tripped
    lines[0] = 6
    v = breaker.evaluate(book, 3.0)
    assert (v.reason, v.value) == (Reason.ERROR_BURST, 6.0)
    assert not breaker.evaluate(book, 20.0).tripped  # the burst left the window


def test_a_disabled_breaker_never_trips() -> None:
    book = Book(0.0)
    assert not Heartbeat(HeartbeatConfig(enabled=False, required=("x",))).evaluate(book, 99).tripped


# ------------------------------------------------------------------ fail closed
def test_silent_drop_copy_trips_breaker_fault_naming_the_breaker() -> None:
    breaker = MsgRate(MsgRateConfig(input_timeout_s=5.0))
    book = Book(0.0)
    book.on_event(Order("a").new(), 1.0)
    assert not breaker.evaluate(book, 6.0).tripped
    v = breaker.evaluate(book, 6.5)
    assert (v.reason, v.action) == (Reason.BREAKER_FAULT, HALT)
    assert v.text.startswith("msg_rate: no drop_copy for 5.500s")


def test_no_fault_while_the_input_is_not_expected() -> None:
    book = Book(0.0)
    book.expect(Input.MARKET_DATA, False, 0.0)
    breaker = FeedStale(FeedStaleConfig(input_timeout_s=5.0))
    assert not breaker.evaluate(book, 100.0).tripped


def test_a_session_down_faults_at_once() -> None:
    book = Book(0.0)
    book.on_session(Input.MARKET_DATA, "disconnected", 1.0)
    v = DailyLoss(DailyLossConfig()).evaluate(book, 1.0)
    assert v.reason is Reason.BREAKER_FAULT
    assert "market_data session disconnected" in v.text


def test_a_breaker_that_raises_trips_breaker_fault() -> None:
    def broken() -> int:
        raise OSError("log file gone")

    v = ErrorBurst(ErrorBurstConfig(), broken).evaluate(Book(0.0), 1.0)
    assert (v.reason, v.action) == (Reason.BREAKER_FAULT, HALT)
    assert "error_burst: raised OSError: log file gone" in v.text


def test_a_book_that_could_not_apply_an_event_faults_every_breaker() -> None:
    bs = BreakerSet(BreakersConfig(), 0.0, error_count=lambda: 0)
    bad = replace(Order("x").fill(1, 1), side="9")
    ev = bs.on_event(bad, 0.5)
    assert ev.verdict is not None
    assert ev.verdict.reason is Reason.BREAKER_FAULT
    assert {v.reason for v in ev.new_trips} == {Reason.BREAKER_FAULT}
    assert len(ev.new_trips) == len(bs.breakers) - 2  # heartbeat, error_burst need no book


# ------------------------------------------------------------------ the set
def _quiet_config(**over: object) -> BreakersConfig:
    return replace(
        BreakersConfig(),
        heartbeat=HeartbeatConfig(enabled=False),
        **over,  # type: ignore[arg-type]
    )


def _alive(bs: BreakerSet, now: float) -> None:
    bs.book.touch(Input.DROP_COPY, now)
    bs.book.touch(Input.MARKET_DATA, now)


def test_the_strictest_verdict_wins_and_a_trip_is_new_once() -> None:
    cfg = _quiet_config(
        exposure=ExposureConfig(max_symbol_notional=D(100)),
        daily_loss=DailyLossConfig(max_loss=D(10)),
    )
    bs = BreakerSet(cfg, 0.0, error_count=lambda: 0)
    bs.on_event(quote(bid=10, ask=10), 1.0)
    ev = bs.on_event(Order("big", qty=20).new(), 1.0)
    assert [v.reason for v in ev.new_trips] == [Reason.WORKING_EXPOSURE]
    assert ev.target is TradingState.REDUCING
    ev = bs.on_event(Order("f", qty=20).fill(20, 11), 1.0)  # loss 20: HALT beats REDUCE
    assert [v.reason for v in ev.new_trips] == [Reason.DAILY_LOSS]
    assert ev.verdict is not None
    assert ev.verdict.reason is Reason.DAILY_LOSS
    assert ev.target is TradingState.HALTED
    assert bs.tick(1.1).new_trips == ()  # latched: not tripped again


def test_a_latched_trip_stays_until_a_reset_finds_it_cleared() -> None:
    cfg = _quiet_config(daily_loss=DailyLossConfig(max_loss=D(10)))
    bs = BreakerSet(cfg, 0.0, error_count=lambda: 0)
    _alive(bs, 1.0)
    bs.on_event(Order("f", qty=20).fill(20, 10), 1.0)
    bs.on_event(quote(bid=9, ask=9), 1.0)  # loss 20
    ev = bs.on_event(quote(bid=10, ask=10), 2.0)  # loss gone, still latched
    assert ev.verdict is not None
    assert ev.verdict.reason is Reason.DAILY_LOSS
    assert bs.holding(2.0) == ()
    report = bs.rearm(2.0)
    assert "daily_loss" in report.rearmed
    assert bs.tick(2.0).verdict is None


def test_reset_refused_while_the_condition_holds(tmp_path: Path) -> None:
    cfg = _quiet_config(daily_loss=DailyLossConfig(max_loss=D(10)))
    bs = BreakerSet(cfg, 0.0, error_count=lambda: 0)
    machine = StateMachine(tmp_path)
    machine.reset(TradingState.ACTIVE, "alice", "start of day")
    bs.on_event(quote(bid=9, ask=9), 1.0)
    ev = bs.on_event(Order("f", qty=20).fill(20, 10), 1.0)
    for v in ev.new_trips:
        machine.trip(v.target, v.reason or Reason.BREAKER_FAULT, "agent", v.text)
    assert machine.snapshot.state is TradingState.HALTED
    assert bs.holding(2.0) == (Reason.DAILY_LOSS,)
    with pytest.raises(Refused, match="DAILY_LOSS still holds"):
        machine.reset(TradingState.ACTIVE, "bob", "looks fine", holding=bs.holding(2.0))
    report = bs.rearm(2.0)
    assert report.holding == (Reason.DAILY_LOSS,)
    assert {s.name: s.arm for s in bs.status()}["daily_loss"] is Arm.TRIPPED


def test_a_forced_reset_suppresses_until_the_condition_clears_once() -> None:
    cfg = _quiet_config(daily_loss=DailyLossConfig(max_loss=D(10)))
    bs = BreakerSet(cfg, 0.0, error_count=lambda: 0)
    bs.on_event(quote(bid=9, ask=9), 1.0)
    bs.on_event(Order("f", qty=20).fill(20, 10), 1.0)
    report = bs.rearm(1.0, force=True)
    assert report.suppressed == ("daily_loss",)
    assert bs.on_event(quote(bid=8, ask=8), 1.5).new_trips == ()  # same reason: suppressed
    bs.on_event(quote(bid=10, ask=10), 2.0)  # cleared: armed again
    ev = bs.on_event(quote(bid=9, ask=9), 3.0)
    assert [v.reason for v in ev.new_trips] == [Reason.DAILY_LOSS]


def test_status_exposes_each_value_and_threshold() -> None:
    bs = BreakerSet(_quiet_config(), 0.0, error_count=lambda: 3)
    bs.on_event(quote(bid=10, ask=10), 1.0)
    bs.on_event(Order("a", qty=10).new(), 1.0)
    status = {s.name: s for s in bs.status()}
    assert set(status) == {
        "daily_loss", "drawdown", "exposure", "msg_rate", "reject_rate",
        "child_qty", "feed_stale", "ack_latency", "heartbeat", "error_burst",
    }  # fmt: skip
    assert status["exposure"].value == 100.0
    assert status["exposure"].threshold == 5_000_000.0
    assert all(s.arm is Arm.ARMED for s in status.values())


def test_a_breaker_set_fed_no_data_trips() -> None:
    bs = BreakerSet(BreakersConfig(), 0.0, error_count=lambda: 0)
    ev = bs.tick(11.0)
    assert ev.target is TradingState.HALTED
    assert Reason.BREAKER_FAULT in {v.reason for v in ev.new_trips}


def test_error_burst_enabled_without_a_counter_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="error counter"):
        BreakerSet(BreakersConfig(), 0.0)


# ------------------------------------------------------------------ no sequence raises
_num = st.one_of(
    st.integers(-5, 10_000).map(Decimal),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-0.5"), Decimal("1e30")]),
)
_exec = st.builds(
    Execution,
    exec_id=st.sampled_from(["e1", "e2", "e3", "e4"]),
    order_id=st.sampled_from(["O1", "O2", "NONE", ""]),
    cl_ord_id=st.sampled_from(["c1", "c2", "c3"]),
    orig_cl_ord_id=st.sampled_from([None, "c1", "c2"]),
    symbol=st.sampled_from(["AAA", "BBB"]),
    side=st.sampled_from(["1", "2", "x"]),
    exec_type=st.sampled_from(["0", "A", "F", "1", "2", "4", "5", "8", "C", "I", "H", "?"]),
    ord_status=st.sampled_from(["0", "1", "2", "4", "8", "A", "C", "?"]),
    order_qty=_num,
    last_qty=_num,
    last_px=_num,
    cum_qty=_num,
    leaves_qty=_num,
    price=st.one_of(st.none(), _num),
)
_quote = st.builds(
    Quote,
    symbol=st.sampled_from(["AAA", "BBB"]),
    bid=st.one_of(st.none(), _num),
    ask=st.one_of(st.none(), _num),
)
_other = st.sampled_from([CancelReject("c", "c1", None, "x"), Reject("D", "bad")])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(_exec, _quote, _other), st.floats(0, 30)), max_size=40),
    st.lists(st.one_of(st.integers(-10, 1_000), st.none()), min_size=1, max_size=5),
)
def test_no_event_sequence_makes_evaluate_raise(
    events: list[tuple[object, float]], counts: list[int | None]
) -> None:
    calls = iter(range(10**6))

    def counter() -> int:
        value = counts[next(calls) % len(counts)]
        if value is None:
            raise RuntimeError("counter broke")
        return value

    bs = BreakerSet(BreakersConfig(), 0.0, error_count=counter)
    for event, now in sorted(events, key=lambda e: e[1]):
        ev = bs.on_event(event, now)  # type: ignore[arg-type]
        for v in ev.verdicts:
            if v.tripped and not math.isfinite(v.threshold):
                assert v.reason is Reason.BREAKER_FAULT
        bs.status()
        bs.holding(now)
    bs.tick(60.0)
    bs.rearm(60.0, force=True)


# ------------------------------------------------------------------ config
def test_defaults_are_documented_values() -> None:
    cfg = breakers_config_from_dict({"version": 1})
    assert cfg == BreakersConfig()
    assert cfg.daily_loss.action is HALT
    assert cfg.exposure.action is REDUCE


def test_config_overrides_and_converts() -> None:
    cfg = breakers_config_from_dict(
        {
            "version": 1,
            "fault_action": "halt",
            "daily_loss": {"max_loss": "2500.5", "action": "reduce"},
            "child_qty": {"intended_qty": {"AAA": 1000}, "parent_pattern": "^(?P<parent>[^.]+)"},
            "feed_stale": {"symbols": ["AAA", "BBB"], "max_age_s": 1},
        }
    )
    assert cfg.daily_loss.max_loss == Decimal("2500.5")
    assert cfg.daily_loss.action is REDUCE
    assert cfg.child_qty.intended_qty == {"AAA": Decimal(1000)}
    assert cfg.feed_stale.symbols == ("AAA", "BBB")
    assert cfg.feed_stale.max_age_s == 1.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "breakers.version: missing"),
        ({"version": 2}, "version 2 is not supported"),
        ({"version": 1, "dayly_loss": {}}, "breakers: unknown key 'dayly_loss'"),
        (
            {"version": 1, "daily_loss": {"max_los": 1}},
            "breakers.daily_loss: unknown key 'max_los'",
        ),
        ({"version": 1, "daily_loss": {"max_loss": -1}}, "max_loss must be above 0"),
        ({"version": 1, "daily_loss": {"max_loss": "lots"}}, "not a number"),
        ({"version": 1, "daily_loss": {"enabled": "yes"}}, "daily_loss.enabled: expected bool"),
        ({"version": 1, "msg_rate": {"max_messages": True}}, "got a boolean"),
        ({"version": 1, "drawdown": {"action": "panic"}}, "must be one of reduce, halt"),
        ({"version": 1, "reject_rate": {"max_ratio": 1.5}}, "max_ratio must be in"),
        ({"version": 1, "child_qty": {"parent_pattern": "(x"}}, "not a regex"),
        ({"version": 1, "child_qty": {"parent_pattern": "x"}}, "named group"),
        ({"version": 1, "heartbeat": []}, "heartbeat: expected a mapping"),
        ([], "expected a mapping"),
    ],
)
def test_config_is_strict(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        breakers_config_from_dict(data)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "breakers.yml"
    path.write_text("version: 1\nexposure:\n  max_total_notional: 2e6\n", encoding="utf-8")
    assert load_breakers_config(path).exposure.max_total_notional == Decimal("2e6")
    path.write_text("version: 1\nexposure: {max_totl: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"breakers.yml: breakers.exposure: unknown key"):
        load_breakers_config(path)
