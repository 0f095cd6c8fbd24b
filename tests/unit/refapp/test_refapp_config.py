"""refapp.yml loading and validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tradeops.cli.main import main
from tradeops_refapp.config import DEFAULT_CONFIG_TEXT, ConfigError, load, validate


def test_defaults_are_valid() -> None:
    cfg = validate({})
    assert cfg.symbols == ["AAPL", "MSFT"]
    assert cfg.http_bind == "127.0.0.1"
    assert cfg.fault_mode == "none"
    assert cfg.limits.for_symbol("AAPL") == Decimal(100)


def test_default_config_text_matches_defaults(tmp_path: Path) -> None:
    path = tmp_path / "refapp.yml"
    path.write_text(DEFAULT_CONFIG_TEXT)
    cfg = load(path)
    assert cfg.raw == validate({}, str(path)).raw


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "refapp.yml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {
                "db": "sqlite:///state/refapp.db",
                "log_file": "log/refapp.jsonl",
                "trading_state_path": "ts",
                "venue": {"store_dir": "fix"},
            }
        )
    )
    cfg = load(path)
    assert cfg.db == f"sqlite:///{tmp_path}/conf/state/refapp.db"
    assert cfg.log_file == f"{tmp_path}/conf/log/refapp.jsonl"
    assert cfg.trading_state_path == f"{tmp_path}/conf/ts"
    assert cfg.venue.store_dir == f"{tmp_path}/conf/fix"


def test_per_symbol_limits_and_postgres_dsn() -> None:
    cfg = validate(
        {
            "symbols": ["AAA", "BBB"],
            "limits": {"max_position": 50, "per_symbol": {"BBB": 5}},
            "db": "postgresql://u@/db?host=/tmp/x",
        }
    )
    assert cfg.limits.for_symbol("AAA") == 50
    assert cfg.limits.for_symbol("BBB") == 5
    assert cfg.db.startswith("postgresql://")


def test_contract_multipliers_default_to_one() -> None:
    cfg = validate(
        {
            "symbols": ["ESZ5", "CLZ5", "AAPL"],
            "quoting": {"multipliers": {"ESZ5": 50, "CLZ5": "1000"}},
        }
    )
    assert cfg.quoting.multipliers == {"ESZ5": Decimal(50), "CLZ5": Decimal(1000)}
    assert cfg.quoting.multiplier_for("ESZ5") == 50
    assert cfg.quoting.multiplier_for("AAPL") == 1
    assert validate({}).quoting.multipliers == {}
    assert validate({"quoting": {"multipliers": None}}).quoting.multipliers == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"symbols": []}, "symbols must be a non-empty list"),
        ({"symbols": "AAPL"}, "symbols must be a non-empty list"),
        ({"symbols": ["A", "A"]}, "symbols must not repeat a symbol"),
        ({"symbols": ["A B"]}, "symbols[0] has invalid characters"),
        ({"sybmols": ["A"]}, "unknown key sybmols"),
        ({"quoting": {"sprad_bps": 1}}, "unknown key quoting.sprad_bps"),
        ({"quoting": {"size": 0}}, "quoting.size must be greater than 0"),
        ({"quoting": {"size": "ten"}}, "quoting.size must be a number"),
        ({"quoting": {"size": 2000}}, "quoting.size must not exceed limits.max_order_qty"),
        ({"quoting": 5}, "quoting must be a mapping"),
        ({"agent_liveness": {"max_age_s": 0}}, "agent_liveness.max_age_s must be greater than 0"),
        ({"agent_liveness": {"pth": "x"}}, "unknown key agent_liveness.pth"),
        ({"venue": {"port": 70000}}, "venue.port must be at most 65535"),
        ({"venue": {"port": "x"}}, "venue.port must be an integer"),
        ({"venue": {"sender_comp_id": ""}}, "venue.sender_comp_id must be a non-empty string"),
        ({"limits": {"max_position": -1}}, "limits.max_position must be at least 0"),
        ({"limits": {"per_symbol": {"ZZZ": 1}}}, "limits.per_symbol.ZZZ: ZZZ is not in symbols"),
        ({"http": {"bind": "example.com"}}, "http.bind must be an IP address"),
        ({"db": "mysql://x"}, "db must be sqlite:///PATH or postgresql://"),
        ({"db": "sqlite:///"}, "sqlite:/// needs a file path"),
        ({"fault_mode": "explode"}, "fault_mode must be one of"),
        ({"quoting": {"tick_sizes": {"ZZZ": 1}}}, "quoting.tick_sizes.ZZZ: ZZZ is not in symbols"),
        (
            {"quoting": {"tick_sizes": {"AAPL": 0}}},
            "quoting.tick_sizes.AAPL must be greater than 0",
        ),
        (
            {"quoting": {"multipliers": {"AAPL": 0}}},
            "quoting.multipliers.AAPL must be greater than 0",
        ),
        (
            {"quoting": {"multipliers": {"AAPL": -50}}},
            "quoting.multipliers.AAPL must be greater than 0",
        ),
        (
            {"quoting": {"multipliers": {"AAPL": "fifty"}}},
            "quoting.multipliers.AAPL must be a number",
        ),
        (
            {"quoting": {"multipliers": {"AAPL": True}}},
            "quoting.multipliers.AAPL must be a number",
        ),
        (
            {"quoting": {"multipliers": {"ESZ5": 50}}},
            "quoting.multipliers.ESZ5: ESZ5 is not in symbols",
        ),
        (
            {"quoting": {"multipliers": [50]}},
            "quoting.multipliers must be a mapping of symbol to contract multiplier",
        ),
        ({"fault": {"rate_per_s": 0}}, "fault.rate_per_s must be greater than 0"),
        ({"cancel_on_start": "yes"}, "cancel_on_start must be true or false"),
        ([1, 2], "must hold a mapping at the top level"),
    ],
)
def test_errors_name_the_key(data, message) -> None:
    with pytest.raises(ConfigError) as info:
        validate(data)
    assert message in str(info.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("symbols: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)


def test_cli_reports_config_errors_on_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "refapp.yml"
    path.write_text("symbols: []\n")
    assert main(["refapp", "run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "tradeops: error: config error: symbols must be a non-empty list"
    assert main(["refapp", "check-config", "--config", str(path)]) == 2


def test_cli_init_config_writes_a_valid_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "out" / "refapp.yml"
    assert main(["refapp", "init-config", "--output", str(path)]) == 0
    assert main(["refapp", "check-config", "--config", str(path)]) == 0
    assert main(["refapp", "init-config", "--output", str(path)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["refapp", "init-config", "--output", str(path), "--force"]) == 0
