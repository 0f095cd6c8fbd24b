"""The agent's own book: orders, positions, P&L, exposure, rates, all from the drop copy."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.agent.bookkit import D, Order, quote
from tradeops.agent.book import Book, Input
from tradeops.brokers.base import Execution, Side


def test_fills_build_a_position_with_average_cost_and_realized_pnl() -> None:
    book = Book(0.0)
    buy, sell = Order("b", qty=100), Order("s", side=Side.SELL, qty=160)
    book.on_event(buy.fill(60, 10), 1.0)
    book.on_event(buy.fill(40, 15), 1.0)
    assert book.position("AAA") == 100
    assert book.symbols["AAA"].avg_px == 12
    book.on_event(sell.fill(40, 14), 2.0)  # closes 40 at +2
    assert book.realized == 80
    book.on_event(sell.fill(120, 11), 3.0)  # closes 60 at -1, opens 60 short at 11
    assert book.position("AAA") == -60
    assert book.realized == 80 - 60
    assert book.symbols["AAA"].avg_px == 11


def test_a_fill_resent_with_the_same_exec_id_counts_once() -> None:
    book = Book(0.0)
    fill = Order("b").fill(10, 10)
    book.on_event(fill, 1.0)
    book.on_event(fill, 1.1)  # PossDup resend on the drop copy
    assert book.position("AAA") == 10


def test_unrealized_marks_a_long_at_the_bid_and_a_short_at_the_ask() -> None:
    book = Book(0.0)
    book.on_event(Order("b").fill(10, 100), 1.0)
    book.on_event(quote(bid=99, ask=103), 1.0)
    assert book.unrealized == -10
    book.on_event(Order("s", symbol="BBB", side=Side.SELL).fill(10, 50), 1.0)
    book.on_event(quote("BBB", bid=48, ask=51), 1.0)
    assert book.symbols["BBB"].unrealized == -10
    assert book.equity == -20


def test_peak_equity_and_drawdown_follow_the_marks() -> None:
    book = Book(0.0)
    book.on_event(Order("b").fill(10, 100), 1.0)
    book.on_event(quote(bid=110, ask=111), 2.0)
    assert book.peak_equity == 100
    book.on_event(quote(bid=95, ask=96), 3.0)
    assert book.equity == -50
    assert book.drawdown == 150
    assert book.peak_equity == 100


def test_working_orders_open_until_filled_cancelled_or_rejected() -> None:
    book = Book(0.0)
    a, b, c = Order("a", qty=100), Order("b", qty=50), Order("c", qty=70)
    for ex in (a.new(), b.new(), c.pending()):
        book.on_event(ex, 1.0)
    assert set(book.working) == {"O-a", "O-b", "O-c"}
    assert book.symbols["AAA"].working_buy == 220
    book.on_event(a.fill(30, 10), 2.0)
    assert book.symbols["AAA"].working_buy == 190
    book.on_event(a.fill(70, 10), 2.0)
    book.on_event(b.cancel(), 2.0)
    book.on_event(c.reject(), 2.0)
    assert book.working == {}
    assert book.symbols["AAA"].working_buy == 0
    assert book.position("AAA") == 100


def test_exposure_counts_working_orders_on_either_side() -> None:
    book = Book(0.0)
    book.on_event(quote(bid=10, ask=10), 0.5)
    book.on_event(Order("f").fill(100, 10), 1.0)
    assert book.notional == 1_000
    book.on_event(Order("buy", qty=50).new(), 1.0)  # long 100 + working buy 50
    assert book.notional == 1_500
    book.on_event(Order("sell", side=Side.SELL, qty=300).new(), 1.0)  # could end 200 short
    assert book.symbols["AAA"].exposure_qty == 200
    assert book.notional == 2_000


def test_exposure_of_working_orders_without_a_quote_uses_the_order_price() -> None:
    book = Book(0.0)
    book.on_event(Order("x", qty=1_000, price=25).new(), 1.0)
    assert book.position("AAA") == 0
    assert book.notional == 25_000


def test_rates_count_messages_and_new_orders_in_the_window() -> None:
    book = Book(0.0, rate_window_s=1.0)
    for i in range(5):
        o = Order(f"r{i}")
        book.on_event(o.pending(), 1.0 + i * 0.1)
        book.on_event(o.new(), 1.0 + i * 0.1)
    assert book.new_orders.count(1.45) == 5
    assert book.messages.count(1.45) == 10
    assert book.new_orders.count(2.15) == 3  # the first two left the window


def test_rejects_are_counted_against_new_orders() -> None:
    book = Book(0.0)
    book.on_event(Order("ok").new(), 1.0)
    book.on_event(Order("bad").reject(), 1.0)
    assert book.orders_for_rejects.count(1.0) == 2
    assert book.rejects.count(1.0) == 1
    assert book.working.keys() == {"O-ok"}


def test_ack_latency_from_pending_new_to_new_and_unacked_age() -> None:
    book = Book(0.0)
    a, b = Order("a"), Order("b")
    book.on_event(a.pending(), 1.0)
    book.on_event(a.new(), 1.25)
    assert book.ack_latency.max(1.3) == 0.25
    book.on_event(b.pending(), 2.0)
    assert book.oldest_unacked(2.5) == ("b", 0.5)


def test_mass_status_answers_refresh_orders_but_are_not_messages() -> None:
    book = Book(0.0)
    status = replace(Order("m", qty=40).new(), exec_type="I")
    book.on_event(status, 1.0)
    assert book.symbols["AAA"].working_buy == 40
    assert book.messages.count(1.0) == 0
    none = replace(status, order_id="NONE", exec_id="Z")
    book.on_event(none, 1.0)
    assert book.fault is None


def test_children_are_grouped_by_the_parent_in_their_clordid() -> None:
    book = Book(0.0, intended_qty={"AAA": D(100)}, parent_pattern=r"^(?P<parent>P\d+)\.")
    book.on_event(Order("P1.1", qty=60).new(), 1.0)
    book.on_event(Order("P2.1", qty=30).new(), 1.0)
    book.on_event(Order("P1.2", qty=50).fill(50, 10), 1.0)
    ratio, key = book.worst_child
    assert key == ("AAA", Side.BUY, "P1")
    assert ratio == 1.1


def test_an_event_the_book_cannot_apply_makes_it_faulty() -> None:
    book = Book(0.0)
    bad = replace(Order("x").fill(10, 10), last_qty=Decimal("NaN"))
    book.on_event(bad, 1.0)
    assert book.fault is not None
    assert "last_qty" in book.fault


def test_input_age_counts_silence_only_while_the_input_is_expected() -> None:
    book = Book(0.0)
    book.on_event(quote(), 3.0)
    assert book.input_age(Input.MARKET_DATA, 5.0) == 2.0
    assert book.input_age(Input.DROP_COPY, 5.0) == 5.0
    book.expect(Input.DROP_COPY, False, 5.0)
    assert book.input_age(Input.DROP_COPY, 100.0) is None
    book.expect(Input.DROP_COPY, True, 100.0)
    assert book.input_age(Input.DROP_COPY, 101.0) == 1.0
    book.on_session(Input.MARKET_DATA, "disconnected", 101.0)
    assert book.input_age(Input.MARKET_DATA, 101.0) == math.inf


_fill = st.tuples(
    st.sampled_from(["AAA", "BBB"]),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 1_000),
    st.integers(1, 10_000),
    st.integers(0, 40),  # exec id: repeats are resends
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fill, max_size=60))
def test_position_is_the_sum_of_signed_fills(fills: list[tuple[str, Side, int, int, int]]) -> None:
    book = Book(0.0)
    expected: dict[str, Decimal] = {"AAA": D(0), "BBB": D(0)}
    seen: set[int] = set()
    for n, (symbol, side, qty, cents, exec_no) in enumerate(fills):
        ex = Execution(
            exec_id=f"X{exec_no}",
            order_id=f"O{n}",
            cl_ord_id=f"C{n}",
            orig_cl_ord_id=None,
            symbol=symbol,
            side=side,
            exec_type="F",
            ord_status="2",
            order_qty=D(qty),
            last_qty=D(qty),
            last_px=D(cents) / 100,
            cum_qty=D(qty),
            leaves_qty=D(0),
        )
        book.on_event(ex, float(n))
        if exec_no not in seen:
            seen.add(exec_no)
            expected[symbol] += qty if side is Side.BUY else -qty
    assert book.fault is None
    assert {s: book.position(s) for s in expected} == expected
    assert abs(book.realized - sum(s.realized for s in book.symbols.values())) < D("1e-9")
