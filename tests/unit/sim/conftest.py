"""Shared helpers of the simulator unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from tradeops.sim.config import SimConfig, parse_config

BASE: dict[str, Any] = {
    "host": "127.0.0.1",
    "port_base": 0,
    "admin": {"port": 0},
    "seed": 1,
    "symbols": [
        {
            "symbol": "ESZ5",
            "price": 100,
            "tick_size": 0.25,
            "volatility_ticks": 0,
            "multiplier": 50,
        },
        {"symbol": "CLZ5", "price": 75, "tick_size": 0.01, "lot_size": 1},
    ],
    "accounts": [
        {
            "account": "ACC1",
            "sessions": [
                {"role": "order_entry", "comp_id": "ACC1_OE"},
                {"role": "drop_copy", "comp_id": "ACC1_DC"},
            ],
        },
        {
            "account": "ACC2",
            "cancel_on_kill": False,
            "sessions": [{"role": "order_entry", "comp_id": "ACC2_OE"}],
        },
    ],
}


def make_config(**overrides: Any) -> SimConfig:
    raw = {**BASE, **overrides}
    return parse_config(raw)


@pytest.fixture
def config() -> SimConfig:
    return make_config()
