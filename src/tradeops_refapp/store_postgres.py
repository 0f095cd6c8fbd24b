"""The refapp store on PostgreSQL (``postgresql://...``, via psycopg 3)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from tradeops_refapp.store import SqlStore, StoreError, redact_dsn

# pg_advisory_xact_lock key that serialises refapp migrations ("refapp" in ASCII).
MIGRATION_LOCK_KEY = 0x726566617070


class _Cursor:
    """A psycopg cursor that accepts the ``?`` placeholders of the shared SQL."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> _Cursor:
        self._cur.execute(sql.replace("?", "%s"), params)
        return self

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class PostgresStore(SqlStore):
    """One PostgreSQL database; decimals are stored as NUMERIC."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "PostgreSQL needs psycopg 3: pip install 'tradeops[postgres]'"
            ) from None
        self.dsn_redacted = redact_dsn(dsn)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.dsn_redacted}: {exc}") from None

    def _value(self, value: Decimal | None) -> Any:
        return value

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a cursor inside one transaction."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield _Cursor(cur)

    def lock_migrations(self, cur: Any) -> None:
        """Take a transaction-scoped advisory lock so that one process migrates at a time."""
        cur.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(Exception):
            self._conn.close()
