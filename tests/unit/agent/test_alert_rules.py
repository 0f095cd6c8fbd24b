"""The alerting rules shipped for the agent: valid, tested by promtool, and on real metric names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ci import unavailable
from tradeops.agent.metrics import AgentMetrics
from tradeops.tradingstate import TradingState

RULES_DIR = Path(__file__).resolve().parents[3] / "prometheus"
RULES = RULES_DIR / "tradeops-agent.rules.yml"
RULE_TESTS = RULES_DIR / "tests" / "agent.test.yml"
METRIC = re.compile(r"\btradeops_agent_[a-z_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not installed (Debian package prometheus; make os-deps)")
    assert path is not None
    return path


def exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@pytest.mark.parametrize(("what", "path"), [("check", RULES), ("test", RULE_TESTS)])
def test_promtool_accepts_and_tests_the_rules(what, path):
    done = subprocess.run(
        [promtool(), what, "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_metric_a_rule_uses_is_one_the_agent_exports():
    exported = AgentMetrics().names()
    used = {name for expr in exprs() for name in METRIC.findall(expr)}
    assert used, "the rules use no agent metric"
    assert used <= exported, f"not exported by tradeops.agent.metrics: {sorted(used - exported)}"


def test_the_state_values_in_the_rules_are_the_trading_state_values():
    compared = {
        int(value)
        for expr in exprs()
        for value in re.findall(r"tradeops_agent_trading_state == (\d+)", expr)
    }
    assert compared == {TradingState.REDUCING.value, TradingState.HALTED.value}
    metrics = AgentMetrics()
    metrics.set_state(TradingState.REDUCING)
    assert b"tradeops_agent_trading_state 2.0" in metrics.render()
