"""Schema migrations and store round trips on SQLite."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tradeops.brokers.base import Side
from tradeops_refapp import migrations
from tradeops_refapp.orders import Fill, OrderRecord, OrderStatus, PositionState
from tradeops_refapp.store import StoreError, open_store, redact_dsn
from tradeops_refapp.store_sqlite import SqliteStore

D = Decimal


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {r[0] for r in rows}


def test_fresh_database_gets_every_migration_in_order(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "r.db"))
    assert store.migrate() == [m.version for m in migrations.MIGRATIONS]
    assert store.schema_version() == migrations.LATEST
    assert {"orders", "fills", "positions", "params", "app_meta", "schema_migrations"} <= tables(
        tmp_path / "r.db"
    )
    with store.transaction() as cur:
        rows = cur.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    store.close()


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "r.db"))
    store.migrate()
    assert store.migrate() == []
    store.close()
    again = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    assert again.migrate() == []
    assert again.schema_version() == migrations.LATEST
    again.close()


def test_upgrade_from_v1_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SqliteStore(str(path))
    assert migrations.migrate(store, target=1) == [1]
    assert store.schema_version() == 1
    assert "params" not in tables(path)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO fills VALUES ('E1', 'O1', 'X1', 'AAA', 'BUY', '5', '10.5', NULL, 'now')"
        )
        cur.execute("INSERT INTO positions VALUES ('AAA', '5', '10.5', '0', 'now')")
        cur.execute(
            "INSERT INTO orders VALUES ('O1', 'X1', 'AAA', 'BUY', '5', '10.5', 'filled', '5',"
            " 'quote', 't0', 't1')"
        )
    assert store.migrate() == [2, 3]
    assert store.load_fills()[0].exec_id == "E1"
    assert store.load_positions() == [PositionState("AAA", D(5), D("10.5"), D(0))]
    order = store.load_orders()[0]
    assert order.cancel_cl_ord_id is None
    assert order.status is OrderStatus.FILLED
    store.close()


def test_failed_migration_rolls_back_and_is_retried(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "r.db"))
    bad = (
        *migrations.MIGRATIONS,
        migrations.Migration(4, "broken", sql=("CREATE TABLE t (x)", "NOPE")),
    )
    with pytest.raises(sqlite3.Error):
        migrations.migrate(store, migrations=bad)
    assert store.schema_version() == 3
    assert "t" not in tables(tmp_path / "r.db")
    store.close()


def test_migrations_must_be_numbered_in_order(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "r.db"))
    with pytest.raises(ValueError, match="numbered"):
        migrations.migrate(store, migrations=(migrations.Migration(2, "x"),))
    store.close()


def test_orders_round_trip(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    o = OrderRecord("O1", "AAA", Side.SELL, D("10"), D("101.25"), sent_at="t0")
    store.save_order(o)
    o.status, o.order_id, o.cum_qty, o.cancel_cl_ord_id = (
        OrderStatus.PENDING_CANCEL, "X1", D("3"), "C1",
    )  # fmt: skip
    store.save_order(o)
    store.save_order(
        OrderRecord("O2", "AAA", Side.BUY, D(1), None, OrderStatus.FILLED, sent_at="t1")
    )
    loaded = store.load_orders()
    assert [x.cl_ord_id for x in loaded] == ["O1", "O2"]
    got = loaded[0]
    assert (got.side, got.qty, got.price, got.status, got.order_id, got.cum_qty) == (
        Side.SELL, D(10), D("101.25"), OrderStatus.PENDING_CANCEL, "X1", D(3),
    )  # fmt: skip
    assert got.cancel_cl_ord_id == "C1"
    assert [x.cl_ord_id for x in store.load_orders(live_only=True)] == ["O1"]
    assert loaded[1].price is None
    store.close()


def test_fills_are_idempotent_and_move_the_position(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    f = Fill("E1", "O1", "X1", "AAA", Side.BUY, D(5), D("10.01"), "20240101-00:00:00")
    pos = PositionState("AAA", D(5), D("10.01"))
    assert store.record_fill(f, pos) is True
    assert store.record_fill(f, PositionState("AAA", D(10), D("10.01"))) is False
    assert store.load_fills() == [f]
    assert store.load_positions() == [pos]
    store.close()


def test_params_and_meta(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    store.set_param("quoting", {"size": D(10), "symbols": ["A"]})
    store.set_param("quoting", {"size": D(20)})
    store.set_meta("version", "0.1.0")
    assert store.params() == {"quoting": {"size": "20"}}
    assert store.meta() == {"version": "0.1.0"}
    store.close()


def test_open_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://root:secret@h/db")
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{tmp_path / 'f' / 'sub' / 'r.db'}")
    assert redact_dsn("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert redact_dsn("postgresql://u@/db?host=/x") == "postgresql://u@/db?host=/x"
