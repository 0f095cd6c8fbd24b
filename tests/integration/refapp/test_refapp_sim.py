"""The refapp as a process against the real FIX simulator.

Each test starts its own simulator and refapp (free loopback ports), connects a
drop-copy and a risk session of its own, and stops every process it started by
PID. The venue's records are the reference: the refapp's stored fills must equal
the drop copy's fills exactly, and its positions the venue's PositionReports,
realized P&L included (AAA and BBB have contract multipliers 50 and 1000 at the
venue and in the refapp's config, so a P&L without them would not match).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.refapp.harness import (
    DC,
    MULTIPLIERS,
    RISK,
    SYMBOLS,
    FixClient,
    RefApp,
    Sim,
    http,
    start_refapp,
    start_sim,
    wait_for,
)
from tradeops.brokers.base import Execution, NewOrder, OrdType, SessionRole, Side
from tradeops.cli.main import main as cli_main
from tradeops.tradingstate import write_state
from tradeops_refapp.store import open_store

pytestmark = pytest.mark.slow

TERMINAL = {"2", "4", "8", "C", "3"}
EPS = Decimal("1e-9")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    sim = start_sim(tmp_path)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def drop_copy(sim: Sim) -> Iterator[FixClient]:
    client = FixClient(SessionRole.DROP_COPY, DC, sim.ports[DC]).connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def risk(sim: Sim) -> Iterator[FixClient]:
    client = FixClient(SessionRole.RISK, RISK, sim.ports[RISK]).connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'refapp.db'}"
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture
def apps() -> Iterator[list[RefApp]]:
    started: list[RefApp] = []
    yield started
    for app in started:
        app.stop()


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "trading_state"


def last_status_by_order(execs: list[Execution]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ex in execs:
        if ex.order_id and ex.order_id != "NONE":
            out[ex.order_id] = ex.ord_status
    return out


def new_orders(execs: list[Execution]) -> dict[str, Execution]:
    """First report of every order the venue accepted, by OrderID."""
    out: dict[str, Execution] = {}
    for ex in execs:
        if ex.exec_type == "0" and ex.order_id not in out:
            out[ex.order_id] = ex
    return out


def fill_key(side: Side, symbol: str, qty: Decimal, px: Decimal) -> tuple[str, str, str, str]:
    return (side.name, symbol, str(qty.normalize()), str(px.normalize()))


def assert_matches_venue(db: str, drop_copy: FixClient, risk: FixClient) -> dict[str, Decimal]:
    """Stored fills == drop-copy fills (exec_id, side, qty, px); positions == venue's.

    The store keeps realized P&L before the contract multiplier. Returns the venue's
    realized P&L (PositionReport tag 9102) by symbol.
    """
    store = open_store(db)
    try:
        fills = store.load_fills()
        positions = {p.symbol: p for p in store.load_positions()}
    finally:
        store.close()
    ours = {f.exec_id: fill_key(f.side, f.symbol, f.qty, f.px) for f in fills}
    assert len(ours) == len(fills), "a fill is stored twice"
    venue = {
        e.exec_id: fill_key(e.side, e.symbol, e.last_qty, e.last_px) for e in drop_copy.fills()
    }
    assert ours == venue
    reports = risk.positions()
    for symbol in SYMBOLS:
        mine = positions.get(symbol)
        qty = mine.qty if mine else Decimal(0)
        assert reports[symbol].qty == qty, symbol
        realized = mine.realized_points * MULTIPLIERS[symbol] if mine else Decimal(0)
        assert abs(reports[symbol].realized_pnl - realized) < EPS, symbol
        if qty:
            assert abs(reports[symbol].avg_px - mine.avg_px) < EPS, symbol
    return {symbol: reports[symbol].realized_pnl for symbol in SYMBOLS}


def assert_status_pnl_matches_venue(app: RefApp, venue: dict[str, Decimal]) -> None:
    """The refapp's own realized P&L (/status) == the venue's, symbol by symbol."""
    positions = app.status()["positions"]
    for symbol in SYMBOLS:
        assert Decimal(positions[symbol]["multiplier"]) == MULTIPLIERS[symbol], symbol
        assert abs(Decimal(positions[symbol]["realized_pnl"]) - venue[symbol]) < EPS, symbol


def realized_somewhere(app: RefApp) -> bool:
    """True once some symbol has a non-zero realized P&L (a round trip was made)."""
    st = app.try_status()
    return bool(st) and any(Decimal(p["realized_pnl"]) for p in st["positions"].values())


def wait_fills(app: RefApp, n: int, timeout: float = 90.0) -> dict:
    def enough() -> dict | None:
        st = app.try_status()
        if not app.proc.alive():
            raise AssertionError(f"refapp died: {app.proc.log_text()[-3000:]}")
        return st if st and st["fills"] >= n else None

    return wait_for(enough, f"{n} fills", timeout=timeout, step=0.2)


def test_trades_matches_the_venue_and_survives_a_restart(
    tmp_path: Path, sim: Sim, drop_copy: FixClient, risk: FixClient, db: str, apps: list[RefApp]
) -> None:
    write_state(state_file(tmp_path), "ACTIVE", reason="test", who="pytest")
    app = start_refapp(tmp_path, sim, db)
    apps.append(app)
    wait_for(lambda: http(app.url + "/readyz")[0] == 200, "ready")
    wait_fills(app, 4)
    # A P&L comparison needs some realized P&L: wait for a closing fill.
    wait_for(lambda: realized_somewhere(app), "a realized P&L", timeout=90, step=0.2)
    wait_for(lambda: app.status()["working_orders"], "working orders")

    # SIGTERM: working orders are cancelled and acknowledged before exit 0.
    assert app.stop() == 0
    done = app.proc.events("shutdown_done")
    assert done
    assert done[-1]["working_orders_left"] == 0
    venue_orders = wait_for(
        lambda: (
            (s := last_status_by_order(drop_copy.executions()))
            and all(v in TERMINAL for v in s.values())
            and s
        ),
        "every order terminal at the venue",
        timeout=10,
    )
    assert venue_orders
    venue_pnl = assert_matches_venue(db, drop_copy, risk)
    assert any(venue_pnl.values()), venue_pnl
    fills_before = len(drop_copy.fills())
    store = open_store(db)
    positions_before = {p.symbol: p.qty for p in store.load_positions()}
    store.close()

    # Restart on the same store: positions and fills reloaded, nothing counted twice.
    # (In standby first, so that nothing trades before the reloaded state is read.)
    app2 = start_refapp(tmp_path, sim, db, standby=True)
    apps.append(app2)
    status = app2.status()
    assert status["fills"] == fills_before
    for symbol, qty in positions_before.items():
        assert Decimal(status["positions"][symbol]["qty"]) == qty
    assert app2.proc.events("state_loaded")[-1]["fills"] == fills_before
    # Nothing trades while it is in standby: its reloaded P&L is the venue's.
    assert_status_pnl_matches_venue(app2, venue_pnl)
    wait_for(lambda: http(app2.url + "/activate", "POST")[0] == 200, "activation")
    wait_fills(app2, fills_before + 2)
    assert app2.stop() == 0
    assert_matches_venue(db, drop_copy, risk)


def stored_positions(db: str) -> dict[str, Decimal]:
    store = open_store(db)
    try:
        return {p.symbol: p.qty for p in store.load_positions()}
    finally:
        store.close()


def test_a_restart_takes_the_venues_positions_where_they_changed_meanwhile(
    tmp_path: Path, sim: Sim, risk: FixClient, apps: list[RefApp]
) -> None:
    """The account traded on another session (the agent's, an operator's) while it was down."""
    write_state(state_file(tmp_path), "ACTIVE", reason="test", who="pytest")
    db = f"sqlite:///{tmp_path / 'refapp.db'}"
    app = start_refapp(tmp_path, sim, db)
    apps.append(app)
    wait_fills(app, 2)
    assert app.stop() == 0
    ours = stored_positions(db)
    symbol = SYMBOLS[0]
    order = NewOrder("by-hand-1", symbol, Side.BUY, Decimal(3), OrdType.MARKET)
    risk._run(risk.session.send_order(order))
    venue = wait_for(
        lambda: (p := risk.positions())[symbol].qty == ours.get(symbol, 0) + 3 and p,
        "the trade by hand at the venue",
    )
    app2 = start_refapp(tmp_path, sim, db, standby=True)
    apps.append(app2)
    wait_for(lambda: app2.proc.events("positions_checked"), "the positions check")
    positions = app2.status()["positions"]
    assert {s: Decimal(positions[s]["qty"]) for s in SYMBOLS} == {s: venue[s].qty for s in SYMBOLS}
    (adjusted,) = app2.proc.events("position_reconciled")
    assert adjusted["symbol"] == symbol
    assert Decimal(adjusted["venue"]) == Decimal(adjusted["ours"]) + 3
    assert app2.stop() == 0
    assert stored_positions(db)[symbol] == venue[symbol].qty


def test_standby_does_not_trade_until_activated(
    tmp_path: Path,
    sim: Sim,
    drop_copy: FixClient,
    apps: list[RefApp],
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_state(state_file(tmp_path), "ACTIVE")
    app = start_refapp(
        tmp_path,
        sim,
        f"sqlite:///{tmp_path / 'r.db'}",
        standby=True,
        env={"TRADEOPS_RELEASE_ID": "r-42"},
    )
    apps.append(app)
    _code, info = http(app.url + "/metrics")
    assert 'tradeops_refapp_info{fault_mode="none",instance="refapp",release="r-42"' in info
    _code, body = wait_for(
        lambda: (r := http(app.url + "/readyz"))[0] == 200 and r, "ready for activation"
    )
    assert body["status"] == "ready_for_activation"
    assert http(app.url + "/readyz?mode=active")[0] == 503
    # Ready means logged on with market data flowing (ticks every 50 ms): give it
    # many quoting passes in which it must not send anything.
    time.sleep(1.5)
    assert new_orders(drop_copy.executions()) == {}
    assert app.status()["orders_sent"] == 0

    capsys.readouterr()
    assert cli_main(["refapp", "status", "--url", app.url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["mode"], status["standby"], status["release_id"]) == ("standby", True, "r-42")
    assert cli_main(["refapp", "activate", "--url", app.url, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["mode"], body["changed"]) == ("active", True)
    wait_for(lambda: new_orders(drop_copy.executions()), "orders after activation")
    _code, metrics = http(app.url + "/metrics")
    assert "tradeops_refapp_standby 0.0" in metrics
    assert 'tradeops_refapp_mode{mode="active"} 1.0' in metrics

    # Back to standby: its orders are cancelled at the venue.
    assert cli_main(["refapp", "standby", "--url", app.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["working_orders_left"] == 0
    wait_for(
        lambda: all(v in TERMINAL for v in last_status_by_order(drop_copy.executions()).values()),
        "orders cancelled",
        timeout=10,
    )
    assert app.stop() == 0


def test_halted_stops_orders_and_reducing_only_reduces(
    tmp_path: Path, sim: Sim, drop_copy: FixClient, risk: FixClient, apps: list[RefApp]
) -> None:
    path = state_file(tmp_path)
    write_state(path, "ACTIVE")
    app = start_refapp(tmp_path, sim, f"sqlite:///{tmp_path / 'r.db'}")
    apps.append(app)
    wait_fills(app, 2)

    positions: dict[str, Decimal] = {}
    for _attempt in range(5):
        wait_for(
            lambda: any(Decimal(p["qty"]) != 0 for p in app.status()["positions"].values()),
            "a position",
            timeout=60,
        )
        write_state(path, "HALTED", reason="test halt", who="pytest")
        # The refapp pulls its quotes; the venue ends up with nothing working.
        wait_for(lambda: not app.status()["working_orders"], "quotes pulled", timeout=15)
        wait_for(
            lambda: all(
                v in TERMINAL for v in last_status_by_order(drop_copy.executions()).values()
            ),
            "nothing working at the venue",
            timeout=10,
        )
        positions = {s: p.qty for s, p in risk.positions().items() if s in SYMBOLS}
        if any(positions.values()):
            break
        write_state(path, "ACTIVE")  # flat by chance: trade a little more
    assert any(positions.values()), "never held a position to reduce"

    seen = set(new_orders(drop_copy.executions()))
    sent = app.status()["orders_sent"]
    time.sleep(1.5)  # many ticks and quoting passes while HALTED
    assert set(new_orders(drop_copy.executions())) == seen
    assert app.status()["orders_sent"] == sent
    status = app.status()
    assert status["trading_state"]["state"] == "HALTED"
    assert status["trading_state"]["who"] == "pytest"

    write_state(path, "REDUCING", reason="test reduce", who="pytest")
    wait_for(lambda: set(new_orders(drop_copy.executions())) - seen, "a reducing order", timeout=30)
    time.sleep(1.0)
    write_state(path, "HALTED")
    wait_for(lambda: not app.status()["working_orders"], "quotes pulled again", timeout=15)
    after = new_orders(drop_copy.executions())
    for order_id in set(after) - seen:
        ex = after[order_id]
        pos = positions[ex.symbol]
        assert pos != 0, f"order {order_id} in flat {ex.symbol}"
        assert ex.side is (Side.SELL if pos > 0 else Side.BUY), ex
        assert ex.order_qty <= abs(pos), ex
    final = risk.positions()
    for symbol, start in positions.items():
        end = final[symbol].qty
        assert abs(end) <= abs(start), symbol
        assert end == 0 or (end > 0) == (start > 0), symbol
    assert app.stop() == 0


def test_runaway_is_stopped_by_halted(
    tmp_path: Path, sim: Sim, drop_copy: FixClient, apps: list[RefApp]
) -> None:
    path = state_file(tmp_path)
    write_state(path, "ACTIVE")
    app = start_refapp(
        tmp_path,
        sim,
        f"sqlite:///{tmp_path / 'r.db'}",
        fault_mode="runaway",
        fault={"rate_per_s": 20},
        limits={"max_position": 10},
    )
    apps.append(app)
    # Marketable buys of 5 that ignore the limit of 10: the position runs past it.
    wait_for(
        lambda: any(Decimal(p["qty"]) > 10 for p in app.status()["positions"].values()),
        "a position past the limit",
        timeout=60,
    )
    assert all(ex.side is Side.BUY for ex in new_orders(drop_copy.executions()).values())
    write_state(path, "HALTED", reason="runaway", who="pytest")
    wait_for(
        lambda: any(r["reason"] == "HALTED" for r in app.proc.events("state_refused")),
        "a HALTED refusal",
    )
    wait_for(
        lambda: all(v in TERMINAL for v in last_status_by_order(drop_copy.executions()).values()),
        "runaway orders done",
        timeout=10,
    )
    seen = set(new_orders(drop_copy.executions()))
    time.sleep(1.0)  # ~20 more attempts of the storm
    assert set(new_orders(drop_copy.executions())) == seen
    _code, metrics = http(app.url + "/metrics")
    assert 'tradeops_refapp_order_refusals_total{reason="HALTED"}' in metrics
    assert app.stop() == 0


def test_crash_then_restart_cancels_what_the_crash_left(
    tmp_path: Path, sim: Sim, drop_copy: FixClient, risk: FixClient, apps: list[RefApp]
) -> None:
    write_state(state_file(tmp_path), "ACTIVE")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    app = start_refapp(
        tmp_path, sim, db, fault_mode="crash", fault={"after_s": 0, "after_orders": 8}
    )
    apps.append(app)
    wait_for(lambda: not app.proc.alive(), "the crash", timeout=60)
    assert app.proc.popen is not None
    assert app.proc.popen.returncode == 3
    assert app.proc.events("fault_crash")
    left = {k for k, v in last_status_by_order(drop_copy.executions()).items() if v in {"0", "1"}}
    assert left, "the crash left no working order"

    app2 = start_refapp(tmp_path, sim, db, standby=True)
    apps.append(app2)
    wait_for(
        lambda: all(last_status_by_order(drop_copy.executions()).get(k) in TERMINAL for k in left),
        "stale orders cancelled by the restarted refapp",
        timeout=20,
    )
    assert app2.proc.events("cancel_stale_orders")
    wait_for(lambda: not app2.status()["working_orders"], "nothing working", timeout=10)
    assert app2.stop() == 0
    assert_matches_venue(db, drop_copy, risk)


def test_hang_stops_healthz_and_needs_sigkill(tmp_path: Path, sim: Sim, apps: list[RefApp]) -> None:
    write_state(state_file(tmp_path), "ACTIVE")
    app = start_refapp(
        tmp_path, sim, f"sqlite:///{tmp_path / 'r.db'}", fault_mode="hang", fault={"after_s": 1}
    )
    apps.append(app)
    wait_for(lambda: http(app.url + "/healthz", timeout=1)[0] != 200, "healthz to stop", timeout=20)
    assert app.proc.events("fault_hang")
    # SIGTERM is not handled by a blocked loop: the harness falls back to SIGKILL.
    assert app.stop(timeout=2) == -9
