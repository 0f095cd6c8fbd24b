"""The refapp engine in-process, against a small fake venue session.

The real FIX simulator is exercised by tests/integration/refapp; here a fake
``BrokerSession`` acknowledges, fills and cancels on demand, so the strategy's
own logic (gating, limits, modes, endpoints, persistence) is checked quickly.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradeops.brokers.base import (
    CancelReject,
    Execution,
    NewOrder,
    Position,
    PositionsAck,
    Quote,
    SessionConfig,
    SessionStatus,
    Side,
)
from tradeops.log import EventLog
from tradeops.tradingstate import write_state
from tradeops_refapp.app import RefApp
from tradeops_refapp.config import ConfigError, validate

D = Decimal


class FakeVenue:
    """Orders by ClOrdID, fills on request, one quote per symbol, net positions."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.orders: dict[str, NewOrder] = {}
        self.live: set[str] = set()
        self.cum: dict[str, D] = {}
        self.sent: list[NewOrder] = []
        self.cancels: list[str] = []
        self.sessions: list[FakeSession] = []
        self.net: dict[str, D] = {}  # the account's positions, as the venue sees them
        self.position_requests: list[str] = []
        self.answers_positions = True
        self.n = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def er(self, cl: str, exec_type: str, ord_status: str, **kw: Any) -> Execution:
        o = self.orders[cl]
        fields: dict[str, Any] = {
            "exec_id": self.next("E"),
            "order_id": "X" + cl,
            "cl_ord_id": cl,
            "orig_cl_ord_id": None,
            "symbol": o.symbol,
            "side": o.side,
            "exec_type": exec_type,
            "ord_status": ord_status,
            "order_qty": o.qty,
            "last_qty": D(0),
            "last_px": D(0),
            "cum_qty": self.cum.get(cl, D(0)),
            "leaves_qty": o.qty - self.cum.get(cl, D(0)),
            "price": o.price,
        }
        fields.update(kw)
        return Execution(**fields)

    async def fill(self, cl: str, qty: D) -> Execution:
        o = self.orders[cl]
        cum = self.cum.get(cl, D(0)) + qty
        self.cum[cl] = cum
        done = cum >= o.qty
        signed = qty if o.side is Side.BUY else -qty
        self.net[o.symbol] = self.net.get(o.symbol, D(0)) + signed
        if done:
            self.live.discard(cl)
        ex = self.er(
            cl, "F", "2" if done else "1", last_qty=qty, last_px=o.price, cum_qty=cum,
            leaves_qty=o.qty - cum,
        )  # fmt: skip
        await self.sessions[-1].emit(ex)
        return ex


class FakeSession:
    def __init__(self, venue: FakeVenue, config: SessionConfig, on_event) -> None:
        self.venue, self.config, self.on_event = venue, config, on_event
        self.logged_on = False

    async def emit(self, event) -> None:
        await self.on_event(event)

    async def connect(self, timeout_s: float = 10.0) -> None:
        self.venue.sessions.append(self)
        self.logged_on = True
        await self.emit(SessionStatus("logged_on"))

    async def close(self) -> None:
        self.logged_on = False

    @property
    def is_logged_on(self) -> bool:
        return self.logged_on

    async def send_order(self, order: NewOrder) -> None:
        v = self.venue
        v.orders[order.cl_ord_id] = order
        v.sent.append(order)
        if order.symbol not in v.symbols:
            asyncio.get_running_loop().call_soon(
                asyncio.ensure_future, self.emit(v.er(order.cl_ord_id, "8", "8", text="bad sym"))
            )
            return
        v.live.add(order.cl_ord_id)
        asyncio.get_running_loop().call_soon(
            asyncio.ensure_future, self.emit(v.er(order.cl_ord_id, "0", "0"))
        )

    async def cancel_order(self, cl_ord_id, orig_cl_ord_id, symbol, side) -> None:
        v = self.venue
        v.cancels.append(orig_cl_ord_id)
        if orig_cl_ord_id in v.live:
            v.live.discard(orig_cl_ord_id)
            ex = v.er(orig_cl_ord_id, "4", "4", cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id)
            ex = Execution(**{**{f: getattr(ex, f) for f in ex.__slots__}, "leaves_qty": D(0)})
        else:
            ex = CancelReject(cl_ord_id, orig_cl_ord_id, None, "unknown order")
        asyncio.get_running_loop().call_soon(asyncio.ensure_future, self.emit(ex))

    async def replace_order(self, *a, **k) -> None:
        raise NotImplementedError

    async def mass_cancel(self, cl_ord_id, symbol=None) -> None:
        raise NotImplementedError

    async def mass_status(self, mass_status_req_id) -> None:
        return None

    async def request_positions(self, pos_req_id) -> None:
        v = self.venue
        v.position_requests.append(pos_req_id)
        if not v.answers_positions:
            return
        held = {s: q for s, q in v.net.items() if q}
        answer = [
            PositionsAck(pos_req_id, len(held), "0"),
            *(Position("ACC1", s, q, pos_req_id=pos_req_id) for s, q in sorted(held.items())),
        ]
        for event in answer:
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, self.emit(event))

    async def subscribe_market_data(self, md_req_id, symbols) -> None:
        for s in symbols:
            await self.emit(Quote(s, D("99.95"), D("100.05")))


class Log(EventLog):
    def __init__(self) -> None:
        super().__init__("refapp", stream=open("/dev/null", "w"), host="t")  # noqa: SIM115
        self.records: list[dict[str, Any]] = []

    def event(self, event: str, **fields: Any) -> dict[str, Any]:
        rec = super().event(event, **fields)
        self.records.append(rec)
        return rec

    def bind(self, **static: Any) -> EventLog:
        return self

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] == name]


def make_cfg(tmp_path: Path, **over: Any):
    data = {
        "instance": "t1",
        "symbols": ["AAA"],
        "quoting": {"spread_bps": 20, "size": 10, "requote_bps": 5, "interval_s": 0.05},
        "limits": {"max_position": 25},
        "db": f"sqlite:///{tmp_path / 'refapp.db'}",
        "http": {"bind": "127.0.0.1", "port": 0},
        "trading_state_path": str(tmp_path / "trading_state"),
        "shutdown_timeout_s": 2,
    }
    data.update(over)
    return validate(data)


async def until(cond, what: str, timeout: float = 5.0) -> None:
    for _attempt in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def http(app: RefApp, method: str, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{app.http.port}{path}"

    def call():
        req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                code, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read().decode()
        try:
            return code, json.loads(body)
        except ValueError:
            return code, body

    return await asyncio.to_thread(call)


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        standby: bool = False,
        fake_venue: FakeVenue | None = None,
        **over: Any,
    ) -> None:
        self.venue = fake_venue or FakeVenue(["AAA"])
        self.log = Log()
        self.app = RefApp(
            make_cfg(tmp_path, **over),
            standby=standby,
            log=self.log,
            session_factory=lambda c, cb: FakeSession(self.venue, c, cb),
        )

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.app.run())
        await until(lambda: self.app.http is not None and self.app.logged_on, "logon")
        return self

    async def __aexit__(self, *exc) -> None:
        self.app.request_stop()
        self.code = await asyncio.wait_for(self.task, 10)

    def working(self) -> list[str]:
        return sorted(self.venue.live)

    def quotes_at_venue(self, side: Side) -> list[NewOrder]:
        return [self.venue.orders[c] for c in self.venue.live if self.venue.orders[c].side is side]


def run(coro) -> Any:
    return asyncio.run(coro)


def test_quotes_fills_limits_and_graceful_stop(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(tmp_path) as h:
            await until(lambda: len(h.venue.live) == 2, "two quotes")
            bid = h.quotes_at_venue(Side.BUY)[0]
            assert (bid.price, bid.qty, bid.account) == (D("99.90"), D(10), "REFAPP")
            await h.venue.fill(bid.cl_ord_id, D(10))
            await h.venue.fill(h.quotes_at_venue(Side.SELL)[0].cl_ord_id, D(4))
            # Long 10 - 4 = 6 with a limit of 25: room for a full new bid of 10.
            await until(lambda: len(h.quotes_at_venue(Side.BUY)) == 1, "new bid")
            await h.venue.fill(h.quotes_at_venue(Side.BUY)[0].cl_ord_id, D(10))
            await until(lambda: len(h.quotes_at_venue(Side.BUY)) == 1, "clipped bid")
            # Position 16, limit 25: at most 9 more on the buy side.
            assert h.quotes_at_venue(Side.BUY)[0].qty == D(9)
            code, status = await http(h.app, "GET", "/status")
            assert code == 200
            assert status["positions"]["AAA"]["qty"] == "16"
            assert status["mode"] == "active"
            assert status["fills"] == 3
            code, text = await http(h.app, "GET", "/metrics")
            assert 'tradeops_refapp_position{symbol="AAA"} 16.0' in text
            assert "tradeops_refapp_ack_latency_seconds_count" in text
            assert 'tradeops_refapp_info{fault_mode="none",instance="t1"' in text
            code, body = await http(h.app, "GET", "/healthz")
            assert code == 200
            assert body["status"] == "ok"
            code, body = await http(h.app, "GET", "/readyz")
            assert code == 200
            assert body["status"] == "ready"
            assert (await http(h.app, "GET", "/nope"))[0] == 404
            assert (await http(h.app, "GET", "/activate"))[0] == 405
        return h

    h = run(scenario())
    assert h.code == 0
    assert h.venue.live == set()  # SIGTERM path cancelled every working order
    assert h.log.events("shutdown_done")[0]["working_orders_left"] == 0


def test_halted_cancels_and_sends_nothing_reducing_only_reduces(tmp_path: Path) -> None:
    state = tmp_path / "trading_state"
    write_state(state, "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(tmp_path) as h:
            await until(lambda: len(h.venue.live) == 2, "two quotes")
            await h.venue.fill(h.quotes_at_venue(Side.BUY)[0].cl_ord_id, D(10))
            await until(lambda: len(h.venue.live) == 2, "requoted")
            write_state(state, "HALTED", reason="test", who="pytest")
            await until(lambda: not h.venue.live, "quotes pulled")
            sent = len(h.venue.sent)
            await asyncio.sleep(0.3)  # several quoting passes
            assert len(h.venue.sent) == sent
            _code, body = await http(h.app, "GET", "/status")
            assert body["trading_state"]["state"] == "HALTED"
            write_state(state, "REDUCING")
            await until(lambda: len(h.venue.live) == 1, "reducing quote")
            (only,) = [h.venue.orders[c] for c in h.venue.live]
            assert only.side is Side.SELL
            assert only.qty <= D(10)
            new = h.venue.sent[sent:]
            assert all(o.side is Side.SELL for o in new)
        return h

    h = run(scenario())
    assert h.code == 0
    changes = [r["state"] for r in h.log.events("trading_state_change")]
    assert changes == ["ACTIVE", "HALTED", "REDUCING"]


def test_missing_state_file_fails_closed(tmp_path: Path) -> None:
    async def scenario() -> Harness:
        async with Harness(tmp_path) as h:
            await until(lambda: h.app.readiness()[0], "ready")
            await asyncio.sleep(0.3)
            assert h.venue.sent == []
        return h

    h = run(scenario())
    assert h.log.events("trading_state_change")[0]["state"] == "HALTED"


def test_runaway_is_still_stopped_by_the_state_check(tmp_path: Path) -> None:
    state = tmp_path / "trading_state"
    write_state(state, "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(
            tmp_path, fault_mode="runaway", fault={"rate_per_s": 200, "max_orders": 0}
        ) as h:
            # It ignores the position limit of 25: more than 3 buys of 10 go out.
            await until(lambda: len(h.venue.sent) >= 4, "storm")
            assert all(o.side is Side.BUY for o in h.venue.sent)
            for cl in list(h.venue.live):
                await h.venue.fill(cl, h.venue.orders[cl].qty)
            write_state(state, "REDUCING")
            await until(lambda: h.log.events("state_refused"), "refusals")
            sent = len(h.venue.sent)
            await asyncio.sleep(0.2)
            assert len(h.venue.sent) == sent
            write_state(state, "HALTED")
            await until(
                lambda: any(r["reason"] == "HALTED" for r in h.log.events("state_refused")),
                "halted refusals",
            )
            assert len(h.venue.sent) == sent
            _code, text = await http(h.app, "GET", "/metrics")
            assert 'tradeops_refapp_order_refusals_total{reason="HALTED"}' in text
            assert (
                'tradeops_refapp_order_refusals_total{reason="REDUCE_ONLY_WOULD_INCREASE_POSITION"}'
                in text
            )
        return h

    run(scenario())


def test_a_runaway_that_ignores_the_trading_state_is_not_stopped_by_it(tmp_path: Path) -> None:
    # Knight's revived dead code: the state file says HALTED and orders still go out;
    # only something outside the process (the kill-switch agent) can stop it.
    state = tmp_path / "trading_state"
    write_state(state, "ACTIVE")
    fault = {"rate_per_s": 200, "max_orders": 0, "ignore_trading_state": True}

    async def scenario() -> Harness:
        async with Harness(tmp_path, fault_mode="runaway", fault=fault) as h:
            await until(lambda: len(h.venue.sent) >= 4, "storm")
            write_state(state, "HALTED")
            sent = len(h.venue.sent)
            await until(lambda: len(h.venue.sent) >= sent + 4, "storm while HALTED")
            assert not h.log.events("state_refused")
        return h

    run(scenario())


@pytest.mark.parametrize(
    ("mode", "message"),
    [("crash", "applies to fault_mode runaway only"), ("runaway", None)],
)
def test_ignore_trading_state_is_for_the_runaway_only(tmp_path: Path, mode, message) -> None:
    fault = {"ignore_trading_state": True}
    if message is None:
        assert make_cfg(tmp_path, fault_mode=mode, fault=fault).fault.ignore_trading_state
        return
    with pytest.raises(ConfigError, match=message):
        make_cfg(tmp_path, fault_mode=mode, fault=fault)


def test_standby_then_activate_then_standby(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(tmp_path, standby=True) as h:
            await until(lambda: h.app.readiness()[0], "ready")
            code, body = await http(h.app, "GET", "/readyz")
            assert (code, body["status"]) == (200, "ready_for_activation")
            assert (await http(h.app, "GET", "/readyz?mode=active"))[0] == 503
            await asyncio.sleep(0.2)
            assert h.venue.sent == []
            code, body = await http(h.app, "POST", "/activate")
            assert code == 200
            assert body["changed"]
            assert body["mode"] == "active"
            await until(lambda: len(h.venue.live) == 2, "quotes after activation")
            code, body = await http(h.app, "POST", "/standby")
            assert code == 200
            assert body["working_orders_left"] == 0
            assert h.venue.live == set()
            _code, text = await http(h.app, "GET", "/metrics")
            assert "tradeops_refapp_standby 1.0" in text
        return h

    h = run(scenario())
    assert [r["mode"] for r in h.log.events("mode_change")] == ["active", "standby"]


def test_state_survives_a_restart_without_duplicates(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")
    replay: list[Execution] = []

    async def first() -> Harness:
        async with Harness(tmp_path) as h:
            await until(lambda: len(h.venue.live) == 2, "two quotes")
            replay.append(await h.venue.fill(h.quotes_at_venue(Side.BUY)[0].cl_ord_id, D(10)))
            await until(lambda: len(h.quotes_at_venue(Side.BUY)) == 1, "new bid")
        return h

    venue = run(first()).venue  # the same venue: its positions are the refapp's

    async def second() -> Harness:
        async with Harness(tmp_path, standby=True, fake_venue=venue) as h:
            assert h.app.tracker.position("AAA").qty == D(10)
            await h.app.on_event(replay[0])  # a resent report must not count twice
            assert h.app.tracker.position("AAA").qty == D(10)
            _code, body = await http(h.app, "GET", "/status")
            assert body["fills"] == 1
            assert body["schema_version"] == 3
        return h

    h = run(second())
    assert h.log.events("fill_duplicate")
    assert h.log.events("state_loaded")[0]["fills"] == 1


def test_pnl_in_status_and_metrics_applies_the_multiplier(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")
    quoting = {
        "spread_bps": 20,
        "size": 10,
        "requote_bps": 5,
        "interval_s": 0.05,
        "multipliers": {"AAA": 50},
    }

    async def first() -> Harness:
        async with Harness(tmp_path, quoting=quoting) as h:
            await until(lambda: len(h.venue.live) == 2, "two quotes")
            await h.venue.fill(h.quotes_at_venue(Side.BUY)[0].cl_ord_id, D(10))  # 10 @ 99.90
            await h.venue.fill(h.quotes_at_venue(Side.SELL)[0].cl_ord_id, D(4))  # 4 @ 100.10
            _code, status = await http(h.app, "GET", "/status")
            pos = status["positions"]["AAA"]
            assert (pos["qty"], D(pos["avg_px"]), pos["multiplier"]) == ("6", D("99.90"), "50")
            assert D(pos["realized_pnl"]) == D("0.20") * 4 * 50
            assert D(pos["mark"]) == 100
            assert D(pos["unrealized_pnl"]) == D("0.10") * 6 * 50
            _code, text = await http(h.app, "GET", "/metrics")
            assert 'tradeops_refapp_realized_pnl{symbol="AAA"} 40.0' in text
            assert 'tradeops_refapp_unrealized_pnl{symbol="AAA"} 30.0' in text
            assert 'tradeops_refapp_position{symbol="AAA"} 6.0' in text
        return h

    venue = run(first()).venue

    async def second() -> Harness:
        async with Harness(tmp_path, standby=True, quoting=quoting, fake_venue=venue) as h:
            _code, status = await http(h.app, "GET", "/status")
            assert D(status["positions"]["AAA"]["realized_pnl"]) == 40
            _code, text = await http(h.app, "GET", "/metrics")
            assert 'tradeops_refapp_realized_pnl{symbol="AAA"} 40.0' in text
        return h

    run(second())


def test_positions_changed_at_the_venue_meanwhile_are_taken_before_trading(
    tmp_path: Path,
) -> None:
    """The agent flattened the account while the refapp was down: it must not trade on 10."""
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def first() -> Harness:
        async with Harness(tmp_path) as h:
            await until(lambda: len(h.venue.live) == 2, "two quotes")
            await h.venue.fill(h.quotes_at_venue(Side.BUY)[0].cl_ord_id, D(10))
            await until(lambda: h.app.tracker.position("AAA").qty == 10, "the fill")
        return h

    venue = run(first()).venue
    venue.net["AAA"] = D(0)  # flattened on another session (the agent's risk session)
    requests_before = len(venue.position_requests)

    async def second() -> Harness:
        async with Harness(tmp_path, fake_venue=venue) as h:
            await until(lambda: h.log.events("positions_checked"), "the positions check")
            await until(lambda: len(h.venue.live) == 2, "quotes again")
        return h

    h = run(second())
    assert len(venue.position_requests) == requests_before + 1
    (adjusted,) = h.log.events("position_reconciled")
    assert (adjusted["symbol"], adjusted["ours"], adjusted["venue"]) == ("AAA", "10", "0")
    first_order = next(
        i for i, r in enumerate(h.log.records) if r["event"] in ("order_sent", "new_order")
    )
    checked = next(i for i, r in enumerate(h.log.records) if r["event"] == "positions_checked")
    assert checked < first_order  # reconciled before it quoted
    from tradeops_refapp.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'refapp.db'}")
    try:
        assert {p.symbol: p.qty for p in store.load_positions()} == {"AAA": 0}
    finally:
        store.close()


def test_a_venue_that_does_not_answer_positions_is_reported_and_trading_goes_on(
    tmp_path: Path,
) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")
    venue = FakeVenue(["AAA"])
    venue.answers_positions = False

    async def scenario() -> Harness:
        async with Harness(tmp_path, fake_venue=venue, venue={"connect_timeout_s": 0.2}) as h:
            await until(lambda: h.log.events("positions_unreconciled"), "the bounded wait")
            await until(lambda: len(h.venue.live) == 2, "quotes")
        return h

    h = run(scenario())
    assert len(venue.position_requests) == 1
    assert not h.log.events("positions_checked")


def test_stale_orders_from_a_crash_are_cancelled_at_start(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "HALTED")
    from tradeops_refapp.orders import OrderRecord
    from tradeops_refapp.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'refapp.db'}")
    store.save_order(OrderRecord("old-1", "AAA", Side.BUY, D(5), D(99), order_id="X1"))
    store.close()

    async def scenario() -> Harness:
        async with Harness(tmp_path, standby=True) as h:
            await until(lambda: not h.app.tracker.working(), "stale order resolved")
            assert h.venue.cancels == ["old-1"]
        return h

    h = run(scenario())
    assert h.log.events("cancel_reject")  # the fake venue never knew it


def test_control_endpoints_refuse_activation_when_not_ready(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(tmp_path, standby=True, marketdata_stale_s=0.01) as h:
            await asyncio.sleep(0.1)  # market data is now "stale"
            code, body = await http(h.app, "POST", "/activate")
            assert code == 409
            assert body["checks"]["marketdata_flowing"] is False
            code, body = await http(h.app, "POST", "/activate?force=1")
            assert code == 200
            assert body["mode"] == "active"
        return h

    run(scenario())


@pytest.mark.parametrize("mode", ["reject_storm"])
def test_reject_storm_orders_are_rejected(tmp_path: Path, mode: str) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def scenario() -> Harness:
        async with Harness(tmp_path, fault_mode=mode, fault={"rate_per_s": 100}) as h:
            await until(lambda: len(h.log.events("reject")) >= 3, "rejects")
            assert h.app.tracker.working() == []
        return h

    run(scenario())


def test_rejected_quotes_back_off(tmp_path: Path) -> None:
    write_state(tmp_path / "trading_state", "ACTIVE")

    async def scenario() -> Harness:
        # The venue does not list ZZZ: its quotes are rejected.
        async with Harness(tmp_path, symbols=["AAA", "ZZZ"]) as h:
            await until(lambda: len(h.log.events("quote_backoff")) >= 2, "backoff")
            await asyncio.sleep(0.5)  # ten quoting passes inside the first 1 s backoff
            zzz = [o for o in h.venue.sent if o.symbol == "ZZZ"]
            assert len(zzz) == 2  # one per side, not one per pass
            assert len(h.venue.live) == 2  # AAA is quoted normally
        return h

    run(scenario())


def test_a_required_agent_that_stops_beating_halts_the_strategy(tmp_path: Path) -> None:
    # ACTIVE in the state file, but the kill-switch agent this host requires is silent:
    # the strategy acts as HALTED (pulls its quotes, sends nothing) until it beats again.
    from tradeops.agent.liveness import LivenessWriter

    write_state(tmp_path / "trading_state", "ACTIVE")
    beat_path = tmp_path / "agent-liveness"
    writer = LivenessWriter(beat_path, interval_s=0.05)
    writer.beat()
    beating = True

    async def beat() -> None:
        for _unused in range(2000):  # bounded: 100 s at most
            if beating:
                writer.beat()
            await asyncio.sleep(0.05)

    async def scenario() -> Harness:
        nonlocal beating
        over = {"agent_liveness": {"path": str(beat_path), "max_age_s": 0.3}}
        async with Harness(tmp_path, **over) as h:
            task = asyncio.create_task(beat())
            try:
                await until(lambda: len(h.venue.live) == 2, "quotes while the agent beats")
                beating = False
                await until(lambda: not h.venue.live, "quotes pulled once the agent is silent")
                sent = len(h.venue.sent)
                await asyncio.sleep(0.3)
                assert len(h.venue.sent) == sent
                beating = True
                await until(lambda: len(h.venue.live) == 2, "quoting again once it beats")
            finally:
                task.cancel()
        return h

    h = run(scenario())
    writer.close()
    changes = [(r["state"], r["agent"]) for r in h.log.events("trading_state_change")]
    assert [state for state, _unused in changes] == ["ACTIVE", "HALTED", "ACTIVE"]
    assert changes[1][1].startswith("not alive")


def test_the_refapp_beats_the_agents_dead_mans_switch(tmp_path: Path) -> None:
    from tests.unit.agent.agentkit import running_agent

    write_state(tmp_path / "trading_state", "ACTIVE")
    (tmp_path / "agent").mkdir()
    with running_agent(tmp_path / "agent") as agent:

        async def scenario() -> Harness:
            over = {"agent_heartbeat": {"socket": str(agent.config.unix.path), "interval_s": 0.05}}
            async with Harness(tmp_path, **over) as h:
                await until(lambda: agent.agent.heartbeat_ns("t1") is not None, "a beat")
                first = agent.agent.heartbeat_ns("t1")
                await until(lambda: agent.agent.heartbeat_ns("t1") != first, "another beat")
            return h

        run(scenario())
