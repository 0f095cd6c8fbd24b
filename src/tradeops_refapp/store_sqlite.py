"""The refapp store on SQLite (the default: ``sqlite:///path``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from tradeops_refapp.store import SqlStore, StoreError


class SqliteStore(SqlStore):
    """One SQLite file, in WAL mode, written in explicit transactions."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.dsn_redacted = f"sqlite:///{path}"
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {parent}: {exc.strerror or exc}") from None
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a cursor inside ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            self._conn.rollback()
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def lock_migrations(self, cur: Any) -> None:
        """BEGIN IMMEDIATE already holds SQLite's write lock."""

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
