"""Fixtures of the refapp integration tests: PostgreSQL, processes, free ports.

``postgres_dsn`` gives each test its own database in one throwaway cluster per
session (``tradeops.testing.postgres``); without the PostgreSQL binaries the test
is skipped with the reason, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.ci import unavailable
from tradeops.testing.postgres import (
    PostgresCluster,
    create_database,
    start_cluster,
    stop_cluster,
    unavailable_reason,
)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster (Unix socket only) for the whole session."""
    reason = unavailable_reason()
    if reason:
        unavailable(f"PostgreSQL is not usable here: {reason}")
    cluster = start_cluster("refapp")
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def postgres_dsn(pg_cluster: PostgresCluster) -> str:
    """DSN of a fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    create_database(pg_cluster, name)
    return pg_cluster.dsn_for(name)
