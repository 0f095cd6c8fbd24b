"""The assembly sections of the agent's config: all optional, each strict."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradeops.agent.config import ConfigError, parse_config
from tradeops.agent.sections import OnHalt, read_urls

FIX = {"host": "127.0.0.1", "port": 9880, "sender_comp_id": "ACC1_RISK",
       "target_comp_id": "SIM", "account": "ACC1"}  # fmt: skip
DC = {**FIX, "port": 9879, "sender_comp_id": "ACC1_DC", "heartbeat_s": 1}
BREAKERS = {"config": {"version": 1, "error_burst": {"enabled": False}}}


def _config(**sections: Any) -> Any:
    return parse_config({"format": 1, "root": "/srv/t", **sections})


def _urls(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "notify.urls"
    path.write_text("# comment\njson://127.0.0.1:9/hook?token=SECRET\n\n", encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_a_config_without_sections_has_none() -> None:
    assert _config().sections is None


def test_every_section_parses(tmp_path: Path) -> None:
    urls = _urls(tmp_path)
    config = _config(
        risk={**FIX, "cancel_timeout_s": 3, "default_tick": "0.05"},
        drop_copy=DC,
        market_data={"symbols": ["S00", "S01"]},
        breakers=BREAKERS,
        enforcement={"processes": [{"program": "blue", "manager": "supervisord"}],
                     "on_halt": "pause", "kill_after_s": 2, "flatten_on_halt": True},
        metrics={"listen": "127.0.0.1:9301"},
        notify={"urls_file": str(urls)},
    )  # fmt: skip
    s = config.sections
    assert s.risk is not None
    assert (s.risk.fix.port, s.risk.cancel_timeout_s) == (9880, 3.0)
    assert s.risk.default_tick == Decimal("0.05")
    assert s.drop_copy is not None
    assert s.drop_copy.heartbeat_s == 1
    assert s.market_data == ("S00", "S01")
    assert s.breakers is not None
    assert not s.breakers.error_burst.enabled
    assert s.enforcement.on_halt is OnHalt.PAUSE
    assert s.enforcement.processes[0].program == "blue"
    assert s.enforcement.flatten_on_halt
    assert s.metrics_listen == ("127.0.0.1", 9301)
    assert s.notify_urls_file == urls
    assert read_urls(urls) == ["json://127.0.0.1:9/hook?token=SECRET"]


def test_the_enforcement_defaults_stop_without_flattening() -> None:
    s = _config(enforcement={}).sections
    assert s.enforcement.on_halt is OnHalt.STOP
    assert not s.enforcement.flatten_on_halt


@pytest.mark.parametrize(
    ("sections", "text"),
    [
        ({"risk": {**FIX, "colar_ticks": 3}}, "unknown key(s) colar_ticks"),
        ({"risk": {**FIX, "host": "localhost"}}, "not an IP address"),
        ({"risk": {k: v for k, v in FIX.items() if k != "account"}}, "missing account"),
        ({"breakers": BREAKERS}, "breakers need drop_copy"),
        ({"drop_copy": DC, "breakers": {"config": {"version": 1}}}, "error_log"),
        ({"drop_copy": DC, "breakers": {"config": {"version": 1, "daily_loss": {"x": 1}}}}, "x"),
        ({"drop_copy": DC, "breakers": {}}, "exactly one of file"),
        ({"market_data": {"symbols": ["S00"]}}, "configure risk"),
        ({"enforcement": {"on_halt": "freeze"}}, "stop, pause or none"),
        ({"enforcement": {"processes": [{"program": "p", "manager": "pidfile"}]}}, "pidfile"),
        ({"enforcement": {"processes": [{"program": "p", "manager": "init"}]}}, "one of"),
        ({"enforcement": {"flatten_on_halt": True}}, "needs risk"),
        ({"metrics": {"listen": "localhost:9301"}}, "not an IP address"),
    ],
)
def test_a_wrong_section_is_refused_naming_the_key(sections: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**sections)
    assert text in str(info.value)


def test_a_notify_urls_file_others_can_read_is_refused_without_its_content(
    tmp_path: Path,
) -> None:
    urls = _urls(tmp_path, 0o644)
    with pytest.raises(ConfigError) as info:
        _config(notify={"urls_file": str(urls)})
    assert "0600" in str(info.value)
    assert "SECRET" not in str(info.value)
