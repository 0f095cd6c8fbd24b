"""The killswitch_agent role declares every variable it reads, with the defaults it uses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeops.agent.config import parse_config

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "killswitch_agent"
PREFIX = "killswitch_agent_"


def _spec() -> dict[str, Any]:
    data = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options: dict[str, Any] = data["argument_specs"]["main"]["options"]
    return options


def _defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return defaults


def _used() -> set[str]:
    """Every ``killswitch_agent_*`` name the tasks and templates read."""
    names: set[str] = set()
    for path in [*ROLE.glob("tasks/*.yml"), *ROLE.glob("templates/*.j2")]:
        names.update(re.findall(rf"\b({PREFIX}\w+)", path.read_text()))
    return names


def _registered() -> set[str]:
    """Names the role sets itself (register, set_fact, task vars): not inputs."""
    names: set[str] = set()
    for path in ROLE.glob("tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            if "register" in task:
                names.add(task["register"])
            names.update(task.get("ansible.builtin.set_fact", {}) or {})
            names.update(k for k in task.get("vars", {}) if k.startswith(PREFIX))
    for path in ROLE.glob("templates/*.j2"):
        names.update(re.findall(rf"set ({PREFIX}\w+)", path.read_text()))
    return names


def test_every_default_is_declared_and_every_declared_option_has_a_default() -> None:
    assert set(_defaults()) == set(_spec())


def test_every_variable_carries_the_role_prefix() -> None:
    assert all(name.startswith(PREFIX) for name in _spec())


def test_every_variable_the_role_reads_is_declared_or_set_by_the_role() -> None:
    undeclared = _used() - set(_spec()) - _registered()
    assert undeclared == set()


def test_literal_defaults_are_the_same_in_the_spec_and_in_defaults() -> None:
    for name, value in _defaults().items():
        if isinstance(value, str) and "{{" in value:
            continue  # computed from another variable; the spec documents it in words
        declared = _spec()[name]["default"]
        assert declared == value or str(declared) == str(value), name


def test_every_choice_and_type_in_the_spec_accepts_its_default() -> None:
    kinds = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list}
    kinds |= {"dict": dict, "path": str}
    for name, option in _spec().items():
        assert isinstance(option["default"], kinds[option["type"]]), name
        if "choices" in option:
            assert option["default"] in option["choices"], name


def _render(template: str, **over: Any) -> str:
    """Render one of the role's templates with its defaults, as Ansible does."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    def trusted(value: Any) -> Any:
        return trust_as_template(value) if isinstance(value, str) else value

    variables = {k: trusted(v) for k, v in {**_defaults(), **over}.items()}
    variables.setdefault("ansible_managed", "Ansible managed")
    variables.setdefault("inventory_hostname", "fleet-1")
    templar = Templar(loader=DataLoader(), variables=variables)
    return str(templar.template(trust_as_template((ROLE / "templates" / template).read_text())))


def test_the_rendered_default_config_is_one_the_agent_accepts() -> None:
    data = yaml.safe_load(_render("agent.yml.j2", tradeops_root="/srv/x"))
    config = parse_config(data)
    assert str(config.root) == "/srv/x"
    assert config.unix.allowed_uids == frozenset({0})
    assert config.unix.mode == 0o660
    assert config.tcp is None  # no listener, no key, unless asked for
    assert str(config.log) == "/srv/x/shared/log/agent.jsonl"


def test_the_tcp_listener_names_the_generated_key_and_extra_config_is_merged() -> None:
    rendered = _render(
        "agent.yml.j2",
        tradeops_root="/srv/x",
        killswitch_agent_tcp_listen="127.0.0.11:7301",
        killswitch_agent_extra_config={"limits": {"max_clients": 8}},
    )
    config = parse_config(yaml.safe_load(rendered))
    assert config.tcp is not None
    assert (config.tcp.host, config.tcp.port) == ("127.0.0.11", 7301)
    assert {k: str(v) for k, v in config.tcp.keys.items()} == {
        "controller": "/srv/x/shared/secrets/agent-controller.key"
    }
    assert config.limits.max_clients == 8


def test_both_service_definitions_run_the_agent_with_the_rendered_config() -> None:
    for template in ("supervisor-program.conf.j2", "systemd.service.j2"):
        text = _render(template, tradeops_root="/srv/x")
        assert "/srv/x/venv/bin/tradeops agent run --config /srv/x/shared/config/agent.yml" in text


def test_the_agent_takes_a_real_time_policy_by_default() -> None:
    config = parse_config(yaml.safe_load(_render("agent.yml.j2", tradeops_root="/srv/x")))
    assert (config.scheduling.policy, config.scheduling.priority) == ("fifo", 10)
    empty = _render("agent.yml.j2", tradeops_root="/srv/x", killswitch_agent_scheduling={})
    assert parse_config(yaml.safe_load(empty)).scheduling.default


def test_a_non_root_systemd_agent_is_granted_cap_sys_nice_for_its_policy_only() -> None:
    root = _render("systemd.service.j2", tradeops_root="/srv/x")
    user = _render("systemd.service.j2", tradeops_root="/srv/x", killswitch_agent_user="trader")
    other = _render(
        "systemd.service.j2",
        tradeops_root="/srv/x",
        killswitch_agent_user="trader",
        killswitch_agent_scheduling={"policy": "other", "nice": -5},
    )
    assert "AmbientCapabilities=CAP_SYS_NICE" in user
    assert "AmbientCapabilities" not in root
    assert "AmbientCapabilities" not in other


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("user", ["root", "trader"])
def test_systemd_accepts_the_rendered_unit(tmp_path: Path, user: str) -> None:
    """``systemd-analyze verify``: every key known, every value parsed, ExecStart runnable."""
    tradeops = tmp_path / "venv" / "bin" / "tradeops"
    tradeops.parent.mkdir(parents=True)
    tradeops.write_text("#!/bin/sh\n")
    tradeops.chmod(0o755)
    unit = tmp_path / "tradeops-agent.service"
    unit.write_text(
        _render("systemd.service.j2", tradeops_root=str(tmp_path), killswitch_agent_user=user)
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Lines about other units of this machine are not the unit's; its own are named by path.
    own = [line for line in done.stderr.splitlines() if str(unit) in line]
    assert done.returncode == 0, done.stderr
    assert own == [], done.stderr
