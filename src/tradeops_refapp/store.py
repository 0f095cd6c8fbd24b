"""The refapp's durable state: orders, fills, positions, parameters, metadata.

:class:`Store` is the interface; :class:`SqlStore` implements it once in SQL that
both engines accept (``?`` placeholders, translated for psycopg), and
``store_sqlite``/``store_postgres`` add the connection and dialect details.
:func:`open_store` picks the engine from the DSN: ``sqlite:///path`` or
``postgresql://...``.

A fill and the position it changes are written in one transaction, and a fill
whose exec_id is already stored changes nothing, so replaying reports is safe.
``positions.realized_pnl`` holds the realized P&L in price * quantity, before the
contract multiplier (``PositionState.realized_points``): the refapp multiplies it
by the configured multiplier when it reports P&L.
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any, Protocol

from tradeops.brokers.base import Side
from tradeops.log import utc_now_iso
from tradeops_refapp import migrations
from tradeops_refapp.orders import Fill, OrderRecord, OrderStatus, PositionState


class StoreError(RuntimeError):
    """The store cannot be opened or used."""


class Store(Protocol):
    """What the refapp keeps across restarts."""

    dsn_redacted: str

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""

    def schema_version(self) -> int:
        """Highest applied migration."""

    def save_order(self, order: OrderRecord) -> None:
        """Insert or update one order."""

    def record_fill(self, fill: Fill, position: PositionState) -> bool:
        """Store a fill and the resulting position; False if the exec_id is known."""

    def save_position(self, position: PositionState) -> None:
        """Store a position set without a fill of ours (reconciled with the venue)."""

    def load_orders(self, live_only: bool = False) -> list[OrderRecord]:
        """Orders, oldest first."""

    def load_fills(self) -> list[Fill]:
        """Every fill, in the order recorded."""

    def load_positions(self) -> list[PositionState]:
        """Every position."""

    def set_param(self, name: str, value: Any) -> None:
        """Store a parameter (JSON-encoded)."""

    def params(self) -> dict[str, Any]:
        """Every parameter."""

    def set_meta(self, name: str, value: str) -> None:
        """Store a metadata value (version, release id, ...)."""

    def meta(self) -> dict[str, str]:
        """Every metadata value."""

    def close(self) -> None:
        """Close the connection."""


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class SqlStore(migrations.MigrationDriver):
    """The SQL shared by both engines. Subclasses set ``dialect`` and ``_conn``."""

    dialect = "sqlite"
    dsn_redacted = ""

    def transaction(self) -> contextlib.AbstractContextManager[Any]:  # pragma: no cover
        """Return a context manager yielding a cursor inside one transaction (per engine)."""
        raise NotImplementedError

    def _value(self, value: Decimal | None) -> Any:
        """How a decimal is bound: TEXT for SQLite, NUMERIC for PostgreSQL."""
        return _text(value)

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""
        return migrations.migrate(self)

    def schema_version(self) -> int:
        """Highest applied migration (0 for an empty database)."""
        versions = migrations.applied_versions(self)
        return max(versions) if versions else 0

    def save_order(self, order: OrderRecord) -> None:
        """Insert or update one order."""
        now = utc_now_iso()
        v = self._value
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO orders (cl_ord_id, order_id, symbol, side, qty, price, status,
                       cum_qty, purpose, sent_at, updated_at, cancel_cl_ord_id, text)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (cl_ord_id) DO UPDATE SET
                       order_id = excluded.order_id, status = excluded.status,
                       cum_qty = excluded.cum_qty, updated_at = excluded.updated_at,
                       cancel_cl_ord_id = excluded.cancel_cl_ord_id, text = excluded.text""",
                (
                    order.cl_ord_id,
                    order.order_id,
                    order.symbol,
                    order.side.name,
                    v(order.qty),
                    v(order.price),
                    order.status.value,
                    v(order.cum_qty),
                    order.purpose,
                    order.sent_at or now,
                    now,
                    order.cancel_cl_ord_id,
                    order.text,
                ),
            )

    def record_fill(self, fill: Fill, position: PositionState) -> bool:
        """Store a fill and the resulting position; False if the exec_id is known."""
        now = utc_now_iso()
        v = self._value
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO fills (exec_id, cl_ord_id, order_id, symbol, side, qty, px,
                       transact_time, recorded_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (exec_id) DO NOTHING""",
                (
                    fill.exec_id,
                    fill.cl_ord_id,
                    fill.order_id,
                    fill.symbol,
                    fill.side.name,
                    v(fill.qty),
                    v(fill.px),
                    fill.transact_time,
                    now,
                ),
            )
            if cur.rowcount == 0:
                return False
            self._upsert_position(cur, position, now)
        return True

    def save_position(self, position: PositionState) -> None:
        """Store a position set without a fill of ours (reconciled with the venue)."""
        with self.transaction() as cur:
            self._upsert_position(cur, position, utc_now_iso())

    def _upsert_position(self, cur: Any, position: PositionState, now: str) -> None:
        v = self._value
        cur.execute(
            """INSERT INTO positions (symbol, qty, avg_px, realized_pnl, updated_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (symbol) DO UPDATE SET qty = excluded.qty,
                   avg_px = excluded.avg_px, realized_pnl = excluded.realized_pnl,
                   updated_at = excluded.updated_at""",
            (
                position.symbol,
                v(position.qty),
                v(position.avg_px),
                v(position.realized_points),
                now,
            ),
        )

    def load_orders(self, live_only: bool = False) -> list[OrderRecord]:
        """Orders, oldest first (only live ones with ``live_only``)."""
        sql = (
            "SELECT cl_ord_id, order_id, symbol, side, qty, price, status, cum_qty, purpose,"
            " sent_at, updated_at, cancel_cl_ord_id, text FROM orders"
        )
        params: tuple[Any, ...] = ()
        if live_only:
            live = [s.value for s in OrderStatus if s.is_live]
            sql += f" WHERE status IN ({', '.join('?' for _status in live)})"
            params = tuple(live)
        sql += " ORDER BY sent_at, cl_ord_id"
        with self.transaction() as cur:
            rows = cur.execute(sql, params).fetchall()
        return [
            OrderRecord(
                cl_ord_id=r[0],
                order_id=r[1],
                symbol=r[2],
                side=Side[r[3]],
                qty=_dec(r[4]),
                price=None if r[5] is None else _dec(r[5]),
                status=OrderStatus(r[6]),
                cum_qty=_dec(r[7]),
                purpose=r[8],
                sent_at=r[9],
                updated_at=r[10],
                cancel_cl_ord_id=r[11],
                text=r[12],
            )
            for r in rows
        ]

    def load_fills(self) -> list[Fill]:
        """Every fill, in the order recorded."""
        with self.transaction() as cur:
            rows = cur.execute(
                "SELECT exec_id, cl_ord_id, order_id, symbol, side, qty, px, transact_time"
                " FROM fills ORDER BY recorded_at, exec_id"
            ).fetchall()
        return [
            Fill(r[0], r[1], r[2], r[3], Side[r[4]], _dec(r[5]), _dec(r[6]), r[7]) for r in rows
        ]

    def load_positions(self) -> list[PositionState]:
        """Every position."""
        with self.transaction() as cur:
            rows = cur.execute(
                "SELECT symbol, qty, avg_px, realized_pnl FROM positions ORDER BY symbol"
            ).fetchall()
        return [PositionState(r[0], _dec(r[1]), _dec(r[2]), _dec(r[3])) for r in rows]

    def _set_kv(self, table: str, name: str, value: str) -> None:
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO {table} (name, value, updated_at) VALUES (?, ?, ?)"  # noqa: S608 - fixed table names
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (name, value, utc_now_iso()),
            )

    def _kv(self, table: str) -> dict[str, str]:
        with self.transaction() as cur:
            rows = cur.execute(f"SELECT name, value FROM {table} ORDER BY name").fetchall()  # noqa: S608
        return {r[0]: r[1] for r in rows}

    def set_param(self, name: str, value: Any) -> None:
        """Store a parameter (JSON-encoded)."""
        self._set_kv("params", name, json.dumps(value, default=str, sort_keys=True))

    def params(self) -> dict[str, Any]:
        """Every parameter."""
        return {k: json.loads(v) for k, v in self._kv("params").items()}

    def set_meta(self, name: str, value: str) -> None:
        """Store a metadata value (version, release id, ...)."""
        self._set_kv("app_meta", name, value)

    def meta(self) -> dict[str, str]:
        """Every metadata value."""
        return self._kv("app_meta")

    def close(self) -> None:  # pragma: no cover - per engine
        """Close the connection."""


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***``."""
    if "://" not in dsn or "@" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.split("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def open_store(dsn: str, *, migrate: bool = True) -> SqlStore:
    """Open the store named by ``dsn`` and (by default) bring its schema up to date."""
    store: SqlStore
    if dsn.startswith("sqlite:///"):
        from tradeops_refapp.store_sqlite import SqliteStore

        store = SqliteStore(dsn[len("sqlite:///") :])
    elif dsn.startswith(("postgresql://", "postgres://")):
        from tradeops_refapp.store_postgres import PostgresStore

        store = PostgresStore(dsn)
    else:
        raise StoreError(f"unsupported db DSN {redact_dsn(dsn)!r}: use sqlite:/// or postgresql://")
    if migrate:
        try:
            store.migrate()
        except Exception:
            store.close()
            raise
    return store
