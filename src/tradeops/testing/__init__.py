"""Test tooling: the loopback SSH test fleet (see ``docs/test-fleet.md``)."""

from __future__ import annotations

from tradeops.testing.fleet import Fleet, FleetError, FleetHost, FleetUnavailable

__all__ = ["Fleet", "FleetError", "FleetHost", "FleetUnavailable"]
