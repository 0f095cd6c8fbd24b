"""The refapp.yml.j2 template renders a config that validates."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jinja2
import pytest
import yaml

import tradeops
import tradeops_refapp
from tradeops_refapp.config import validate

TEMPLATE = Path(tradeops_refapp.__file__).parent / "templates" / "refapp.yml.j2"


def render(**variables) -> dict:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return yaml.safe_load(env.from_string(TEMPLATE.read_text()).render(**variables))


REQUIRED = {
    "refapp_sender_comp_id": "REFAPP_BLUE",
    "refapp_account": "ACC1",
    "refapp_symbols": ["AAPL", "MSFT"],
    "refapp_db_dsn": "sqlite:////srv/tradeops/shared/state/refapp.db",
    "refapp_trading_state_path": "/srv/tradeops/state/trading_state",
}


def test_minimal_variables_render_a_valid_config() -> None:
    cfg = validate(render(**REQUIRED))
    assert cfg.venue.sender_comp_id == "REFAPP_BLUE"
    assert cfg.symbols == ["AAPL", "MSFT"]
    assert cfg.cancel_on_start is True
    assert cfg.log_file is None
    assert cfg.venue.store_dir == "fix"
    assert (cfg.quoting.tick_sizes, cfg.quoting.multipliers) == ({}, {})


def test_simulator_symbols_get_the_simulator_tick_sizes_and_multipliers() -> None:
    sim = yaml.safe_load((Path(tradeops.__file__).parent / "sim" / "default.yml").read_text())
    shipped = {s["symbol"]: s for s in sim["symbols"]}
    assert sorted(shipped) == ["CLZ5", "ESZ5", "NQZ5"]
    symbols = ["ESZ5", "NQZ5", "CLZ5", "AAPL"]
    cfg = validate(render(**{**REQUIRED, "refapp_symbols": symbols}))
    assert cfg.quoting.multipliers == {
        "ESZ5": Decimal(50),
        "NQZ5": Decimal(20),
        "CLZ5": Decimal(1000),
    }
    for sym, spec in shipped.items():
        assert cfg.quoting.multiplier_for(sym) == Decimal(str(spec["multiplier"])), sym
        assert cfg.quoting.tick_for(sym) == Decimal(str(spec["tick_size"])), sym
    assert cfg.quoting.multiplier_for("AAPL") == 1
    # Only quoted symbols appear (the config refuses the others).
    only_es = validate(render(**{**REQUIRED, "refapp_symbols": ["ESZ5"]}))
    assert only_es.quoting.multipliers == {"ESZ5": Decimal(50)}


def test_every_variable_is_used() -> None:
    cfg = validate(
        render(
            **REQUIRED,
            refapp_instance="blue",
            refapp_venue_port=9999,
            refapp_fix_store_dir="/srv/tradeops/state/fix",
            refapp_spread_bps=12.5,
            refapp_quote_size=3,
            refapp_tick_size="0.05",
            refapp_tick_sizes={"AAPL": "0.01"},
            refapp_multipliers={"AAPL": 2, "ESZ5": 50},
            refapp_max_position=40,
            refapp_position_limits={"AAPL": 10},
            refapp_http_port=8481,
            refapp_cancel_on_start=False,
            refapp_fault_mode="slow",
            refapp_fault={"delay_ms": 50},
            refapp_log_file="/srv/tradeops/shared/log/refapp.jsonl",
        )
    )
    assert (cfg.instance, cfg.venue.port, cfg.http_port) == ("blue", 9999, 8481)
    assert str(cfg.quoting.spread_bps) == "12.5"
    assert str(cfg.quoting.tick_size) == "0.05"
    assert cfg.quoting.tick_for("AAPL") == Decimal("0.01")
    assert cfg.quoting.tick_for("MSFT") == Decimal("0.05")
    assert cfg.quoting.multipliers == {"AAPL": Decimal(2)}  # ESZ5 is not quoted
    assert cfg.limits.for_symbol("AAPL") == 10
    assert cfg.limits.for_symbol("MSFT") == 40
    assert cfg.cancel_on_start is False
    assert (cfg.fault_mode, cfg.fault.delay_ms) == ("slow", 50)
    assert cfg.venue.store_dir == "/srv/tradeops/state/fix"


def test_missing_required_variable_fails_to_render() -> None:
    partial = dict(REQUIRED)
    del partial["refapp_symbols"]
    with pytest.raises(jinja2.UndefinedError):
        render(**partial)


def test_the_release_default_fault_mode_applies_unless_the_inventory_sets_one() -> None:
    drill = {"refapp_fault_mode": "runaway", "release_version": "1.4.2"}
    assert validate(render(**REQUIRED)).fault_mode == "none"
    assert validate(render(**REQUIRED, release_defaults=drill)).fault_mode == "runaway"
    chosen = render(**REQUIRED, release_defaults=drill, refapp_fault_mode="slow")
    assert validate(chosen).fault_mode == "slow"
