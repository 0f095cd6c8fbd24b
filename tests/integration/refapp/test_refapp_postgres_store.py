"""The refapp store and its migrations on a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tradeops.brokers.base import Side
from tradeops_refapp import migrations
from tradeops_refapp.orders import Fill, OrderRecord, OrderStatus, PositionState
from tradeops_refapp.store import open_store
from tradeops_refapp.store_postgres import PostgresStore

pytestmark = pytest.mark.postgres


def test_migrations_apply_once_in_order(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    assert store.migrate() == [1, 2, 3]
    assert store.migrate() == []
    store.close()
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'fills'"
            ).fetchall()
        )
    assert [r[0] for r in rows] == [1, 2, 3]
    assert types["qty"] == "numeric"
    assert types["exec_id"] == "text"


def test_upgrade_from_v1_keeps_the_data(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    assert migrations.migrate(store, target=1) == [1]
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO fills VALUES ('E1', 'O1', 'X1', 'AAA', 'BUY', 5, 10.5, NULL, 'now')"
        )
        cur.execute("INSERT INTO positions VALUES ('AAA', 5, 10.5, 0, 'now')")
    assert store.migrate() == [2, 3]
    assert store.load_fills()[0].px == Decimal("10.5")
    assert store.load_positions()[0].qty == 5
    store.close()


def test_two_stores_migrating_the_same_database(postgres_dsn: str) -> None:
    a, b = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    assert sorted(a.migrate() + b.migrate()) == [1, 2, 3]
    a.close()
    b.close()


def test_round_trips_and_idempotent_fills(postgres_dsn: str) -> None:
    store = open_store(postgres_dsn)
    order = OrderRecord("O1", "ESZ5", Side.BUY, Decimal("3"), Decimal("5000.25"), sent_at="t0")
    store.save_order(order)
    order.status, order.order_id, order.cum_qty = OrderStatus.FILLED, "X1", Decimal(3)
    store.save_order(order)
    (got,) = store.load_orders()
    assert (got.status, got.order_id, got.cum_qty, got.price) == (
        OrderStatus.FILLED,
        "X1",
        Decimal(3),
        Decimal("5000.25"),
    )
    assert store.load_orders(live_only=True) == []
    fill = Fill("E1", "O1", "X1", "ESZ5", Side.BUY, Decimal(3), Decimal("5000.25"))
    pos = PositionState("ESZ5", Decimal(3), Decimal("5000.25"))
    assert store.record_fill(fill, pos) is True
    assert store.record_fill(fill, pos) is False
    assert store.load_fills() == [fill]
    assert store.load_positions() == [pos]
    store.set_param("limits", {"max_position": Decimal(5)})
    store.set_meta("release_id", "r1")
    assert store.params() == {"limits": {"max_position": "5"}}
    assert store.meta() == {"release_id": "r1"}
    store.close()
