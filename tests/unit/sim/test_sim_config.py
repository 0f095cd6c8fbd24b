from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradeops.brokers.base import SessionRole
from tradeops.sim.config import ConfigError, load_config

from .conftest import BASE, make_config


def test_shipped_default_config():
    cfg = load_config()
    assert cfg.host == "127.0.0.1"
    assert cfg.admin_host == "127.0.0.1"
    assert cfg.admin_port == 9877
    assert [(s.name, s.role, s.port) for s in cfg.sessions] == [
        ("ACC1_OE", SessionRole.ORDER_ENTRY, 9878),
        ("ACC1_DC", SessionRole.DROP_COPY, 9879),
        ("ACC1_RISK", SessionRole.RISK, 9880),
    ]
    assert {s.sim_comp_id for s in cfg.sessions} == {"SIM"}
    assert {s.account for s in cfg.sessions} == {"ACC1"}
    assert cfg.sessions[0].throttle.reject_limit == 500
    assert cfg.symbol("ESZ5").tick_size == Decimal("0.25")
    assert cfg.fix.begin_string == "FIX.4.4"
    assert cfg.fix.max_frame_bytes == 1 << 20


def test_cli_overrides():
    cfg = load_config(None, host="127.0.0.5", port_base=20000, admin_port=0, seed=9,
                      store_dir="rel/store")  # fmt: skip
    assert cfg.host == cfg.admin_host == "127.0.0.5"
    assert [s.port for s in cfg.sessions] == [20000, 20001, 20002]
    assert cfg.admin_port == 0
    assert cfg.seed == 9
    assert cfg.store_dir is not None
    assert cfg.store_dir.endswith("rel/store")
    assert load_config(None, port_base=0).sessions[1].port == 0


def test_json_config_and_relative_paths(tmp_path):
    raw = dict(BASE)
    raw["store_dir"] = "journals"
    raw["symbols"] = [{"symbol": "X", "csv": "ticks.csv"}]
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.store_dir == str(tmp_path / "journals")
    assert cfg.symbols[0].csv == str(tmp_path / "ticks.csv")


def test_explicit_session_port_and_throttle_default():
    raw = json.loads(json.dumps(BASE))
    raw["port_base"] = 30000
    raw["throttle"] = {"reject_limit": 5, "disconnect_limit": 10}
    raw["accounts"][0]["sessions"][1]["port"] = 31000
    raw["accounts"][0]["sessions"][1]["throttle"] = {"reject_limit": 1, "disconnect_limit": 2}
    cfg = make_config(**raw)
    assert [s.port for s in cfg.sessions] == [30000, 31000, 30002]
    assert cfg.sessions[0].throttle.reject_limit == 5
    assert cfg.sessions[1].throttle.disconnect_limit == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"host": "0.0.0.0"}, "every interface"),
        ({"host": "::"}, "every interface"),
        ({"host": "localhost"}, "expected an IP address"),
        ({"bogus": 1}, "unknown key"),
        ({"port_base": 70000}, "port_base: must be <= 65535"),
        ({"fill": {"ratio": 2}}, "fill.ratio"),
        ({"fix": {"begin_string": "FIX.4.2"}}, "only FIX.4.4"),
        ({"fix": {"max_frame_bytes": 100}}, "fix.max_frame_bytes: must be >= 1024"),
        ({"fix": {"repeating_groups": {"268": []}}}, "repeating_groups.268"),
        ({"throttle": {"reject_limit": 5, "disconnect_limit": 2}}, "disconnect_limit must be"),
        ({"symbols": []}, "symbols: expected a non-empty list"),
        ({"symbols": [{"symbol": "A"}]}, "needs price"),
        ({"symbols": [{"symbol": "A", "price": -1}]}, "price: must be > 0"),
        ({"accounts": [{"account": "A", "sessions": [{"role": "boss", "comp_id": "X"}]}]},
         "role: expected one of"),
        ({"accounts": [{"account": "A", "sessions": [{"role": "risk", "comp_id": "X"},
                                                     {"role": "risk", "comp_id": "X"}]}]},
         "duplicate"),
        ({"admin": {"port": 5}, "port_base": 5}, "share a port"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**change)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yml"
    lst.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
