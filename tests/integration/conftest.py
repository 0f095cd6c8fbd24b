"""Fixtures for integration tests that use real processes.

``fleet_factory(size, name=...)`` brings up a loopback SSH test fleet (see
docs/test-fleet.md) in a short state dir under /tmp and tears down every fleet
it made. Without root/unshare/sshd the test is skipped, except under
``CI=true`` where it fails so that CI cannot skip silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tradeops.testing.fleet import (
    DEFAULT_PORT,
    FLEET_BLOCKS,
    Fleet,
    FleetError,
    FleetUnavailable,
    check_prerequisites,
    find_free_first_address,
)

FleetFactory = Callable[..., Fleet]


def require_fleet() -> None:
    """Skip (or fail under CI=true) when the machine cannot run the fleet."""
    try:
        check_prerequisites()
    except FleetUnavailable as exc:
        reason = str(exc)
    else:
        return
    unavailable(reason)


def worker_address_blocks() -> list[str] | None:
    """This pytest-xdist worker's own share of the fleets' loopback blocks, or None.

    The workers of ``make integration`` bring fleets up at the same time: with
    disjoint blocks, a host that one test stopped never has its address taken
    by another worker's fleet.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return None
    index = int(worker[2:])
    share = len(FLEET_BLOCKS) // count
    return [f"127.0.{b}.11" for b in FLEET_BLOCKS[index * share : (index + 1) * share]]


class _Factory:
    def __init__(self) -> None:
        self.created: list[Fleet] = []

    def __call__(self, size: int, name: str = "fleet", **kwargs: Any) -> Fleet:
        require_fleet()
        port = kwargs.pop("port", DEFAULT_PORT)
        pinned = kwargs.pop("first_address", None)
        last: Exception | None = None
        # Another fleet may grab the same free addresses between probe and bind: retry.
        for _attempt in range(3):
            first = pinned or find_free_first_address(size, port, worker_address_blocks())
            state_dir = Path(tempfile.mkdtemp(prefix="tof-", dir="/tmp"))
            fleet = Fleet(state_dir, size, name=name, first_address=first, port=port, **kwargs)
            self.created.append(fleet)
            try:
                return fleet.up()
            except FleetUnavailable as exc:
                reason = str(exc)
            except FleetError as exc:
                last = exc
                fleet.down()
                if pinned:
                    break
                continue
            unavailable(reason)
        raise FleetError(f"could not bring up a {size}-host fleet: {last}")

    def teardown(self) -> None:
        errors = []
        for fleet in reversed(self.created):
            try:
                fleet.down()
            except Exception as exc:
                errors.append(f"{fleet.state_dir}: {exc}")
            else:
                shutil.rmtree(fleet.state_dir, ignore_errors=True)
        self.created.clear()
        if errors:
            pytest.fail("fleet teardown failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def fleet_factory() -> Iterator[FleetFactory]:
    """Make fleets for one test; all are torn down after it."""
    factory = _Factory()
    yield factory
    factory.teardown()


@pytest.fixture(scope="module")
def module_fleet_factory() -> Iterator[FleetFactory]:
    """Make fleets shared by the tests of one module; torn down after the module."""
    factory = _Factory()
    yield factory
    factory.teardown()
