"""Versioned schema migrations of the refapp store, for SQLite and PostgreSQL.

Each migration has a number, a name and its SQL, shared by both engines or given
per dialect where they differ. :func:`migrate` applies, in order, every migration
not yet recorded in ``schema_migrations``, each in its own transaction together
with its ``schema_migrations`` row, so a run that stops half-way resumes where it
stopped and a second run is a no-op. Never edit a released migration: add one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradeops.log import utc_now_iso


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: tuple[str, ...] = ()
    dialect_sql: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def statements(self, dialect: str) -> tuple[str, ...]:
        """Return the statements of this step for ``dialect`` ("sqlite" or "postgres")."""
        return self.sql + self.dialect_sql.get(dialect, ())


# Quantities and prices are exact decimals: NUMERIC in PostgreSQL, TEXT in SQLite
# (SQLite's NUMERIC would turn them into floats).
def _decimal(dialect: str) -> str:
    return "NUMERIC" if dialect == "postgres" else "TEXT"


def _v1(dialect: str) -> tuple[str, ...]:
    dec = _decimal(dialect)
    return (
        f"""CREATE TABLE IF NOT EXISTS orders (
            cl_ord_id TEXT PRIMARY KEY,
            order_id TEXT,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            qty {dec} NOT NULL,
            price {dec},
            status TEXT NOT NULL,
            cum_qty {dec} NOT NULL,
            purpose TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS fills (
            exec_id TEXT PRIMARY KEY,
            cl_ord_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            qty {dec} NOT NULL,
            px {dec} NOT NULL,
            transact_time TEXT,
            recorded_at TEXT NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS positions (
            symbol TEXT PRIMARY KEY,
            qty {dec} NOT NULL,
            avg_px {dec} NOT NULL,
            realized_pnl {dec} NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "orders, fills, positions", dialect_sql={d: _v1(d) for d in ("sqlite", "postgres")}
    ),
    Migration(
        2,
        "parameters and app metadata",
        sql=(
            """CREATE TABLE IF NOT EXISTS params (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS app_meta (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "cancel ids, reject text and lookup indexes",
        sql=(
            "ALTER TABLE orders ADD COLUMN cancel_cl_ord_id TEXT",
            "ALTER TABLE orders ADD COLUMN text TEXT",
            "CREATE INDEX IF NOT EXISTS orders_status_idx ON orders (status)",
            "CREATE INDEX IF NOT EXISTS fills_symbol_idx ON fills (symbol)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


class MigrationDriver:
    """What :func:`migrate` needs from a store: run SQL inside one transaction."""

    dialect: str

    def transaction(self) -> Any:  # pragma: no cover - interface
        """Return a context manager yielding a cursor-like ``execute(sql, params)``."""
        raise NotImplementedError

    def lock_migrations(self, cur: Any) -> None:  # pragma: no cover - interface
        """Serialise concurrent migrators inside the current transaction."""


def applied_versions(driver: MigrationDriver) -> list[int]:
    """Versions recorded in ``schema_migrations`` (creating the table if needed)."""
    with driver.transaction() as cur:
        driver.lock_migrations(cur)
        cur.execute(CREATE_TABLE)
        rows = cur.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [int(r[0]) for r in rows]


def migrate(
    driver: MigrationDriver,
    target: int | None = None,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    on_apply: Callable[[Migration], None] | None = None,
) -> list[int]:
    """Apply pending migrations up to ``target`` (default: all); return those applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or versions[0] != 1:
        raise ValueError("migrations must be numbered 1, 2, ... in order")
    applied_now: list[int] = []
    applied_versions(driver)
    for migration in migrations:
        if target is not None and migration.version > target:
            break
        with driver.transaction() as cur:
            driver.lock_migrations(cur)
            done = cur.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ).fetchone()
            if done:
                continue
            for statement in migration.statements(driver.dialect):
                cur.execute(statement)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now_iso()),
            )
        applied_now.append(migration.version)
        if on_apply is not None:
            on_apply(migration)
    return applied_now
