"""The agent's ``scheduling`` section: parsed strictly, applied to every thread, reset on fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.agentkit import running_agent
from tradeops.agent import scheduling
from tradeops.agent.config import ConfigError, parse_config
from tradeops.agent.protocol import Command
from tradeops.agent.scheduling import SchedulingConfig, hold_cpu_latency

SRC = Path(__file__).resolve().parents[3] / "src"


def config(scheduling: Any) -> SchedulingConfig:
    return parse_config({"format": 1, "root": "/srv/t", "scheduling": scheduling}).scheduling


def test_absent_means_what_the_service_manager_gave() -> None:
    parsed = parse_config({"format": 1, "root": "/srv/t"}).scheduling
    assert parsed.default
    assert parsed == SchedulingConfig()


def test_a_real_time_policy_on_a_housekeeping_core() -> None:
    parsed = config({"policy": "fifo", "priority": 10, "cpus": [0]})
    assert (parsed.policy, parsed.priority, parsed.cpus) == ("fifo", 10, frozenset({0}))
    assert not parsed.default


def test_a_cpu_latency_request_is_parsed_and_changes_no_thread() -> None:
    parsed = config({"cpu_latency_us": 0})
    assert parsed.cpu_latency_us == 0
    assert parsed.default  # the threads keep what the service manager gave
    assert config({}).cpu_latency_us is None


def test_the_request_is_written_as_a_32_bit_count_and_held_open(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    fd, error = hold_cpu_latency(20, str(device))
    assert error is None
    assert fd is not None
    try:
        assert device.read_bytes() == (20).to_bytes(4, sys.byteorder, signed=True)
        assert os.get_inheritable(fd) is False  # a command the agent runs does not hold it
    finally:
        os.close(fd)


def test_a_device_that_cannot_be_opened_is_said_not_fatal(tmp_path: Path) -> None:
    fd, error = hold_cpu_latency(0, str(tmp_path / "missing"))
    assert fd is None
    assert error is not None
    assert "cpu_latency_us 0" in error
    assert "missing" in error


@pytest.mark.parametrize(
    ("scheduling", "text"),
    [
        ({"policy": "deadline"}, "scheduling.policy must be one of other, fifo, rr"),
        ({"policy": "fifo"}, "a fifo policy needs a priority from 1 to 99"),
        ({"policy": "rr", "priority": 100}, "scheduling.priority must be between 0 and 99"),
        ({"priority": 5}, "priority applies to the fifo and rr policies only"),
        ({"policy": "fifo", "priority": 5, "nice": -5}, "nice applies to the other policy only"),
        ({"nice": -21}, "scheduling.nice must be between -20 and 19"),
        ({"cpus": []}, "cpus must name at least one CPU"),
        ({"cpus": [-1]}, "scheduling.cpus[0] must be between 0"),
        ({"cpu_latency_us": -1}, "scheduling.cpu_latency_us must be between 0"),
        ({"cpu_latency_us": 2**31}, "scheduling.cpu_latency_us must be between 0"),
        ({"policy": "fifo", "prio": 5}, "unknown key(s) prio"),
        ("fifo", "scheduling must be a mapping"),
    ],
)
def test_a_wrong_section_is_refused_naming_the_key(scheduling: Any, text: str) -> None:
    with pytest.raises(ConfigError, match="scheduling") as caught:
        config(scheduling)
    assert text in str(caught.value)


CHILD = r"""
import json, os, sys, threading
from tradeops.agent.config import parse_config
from tradeops.agent.scheduling import apply, current
cfg = parse_config({"format": 1, "root": "/srv/t", "scheduling": json.loads(sys.argv[1])})
done = apply(cfg.scheduling)
seen = {}
inherited = {}
t = threading.Thread(target=lambda: inherited.update(current()))
t.start(); t.join()
t = threading.Thread(target=lambda: seen.update(apply(cfg.scheduling, this_thread=True)))
t.start(); t.join()
pid = os.fork()
if pid == 0:
    os.write(1, json.dumps(current()).encode() + b"\n")
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps({"applied": done, "thread": seen, "inherited": inherited}))
"""


def run_child(scheduling: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(scheduling)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    forked, parent = json.loads(out[0]), json.loads(out[1])
    return parent, forked


def test_the_default_changes_nothing() -> None:
    parent, _forked = run_child({})
    assert parent["applied"]["errors"] == []
    assert parent["applied"]["policy"] == "other"


def test_fifo_holds_for_the_threads_that_ask_and_not_for_a_forked_command() -> None:
    parent, forked = run_child({"policy": "fifo", "priority": 3, "cpus": [0]})
    applied = parent["applied"]
    if os.geteuid() != 0 and applied["errors"]:  # no CAP_SYS_NICE: refused, and said
        assert any("policy fifo 3" in e for e in applied["errors"])
        return
    assert applied == {"policy": "fifo", "priority": 3, "cpus": [0], "errors": []}
    # SCHED_RESET_ON_FORK: systemctl runs at the normal policy, and so does a new thread...
    assert (forked["policy"], forked["priority"]) == ("other", 0)
    assert (parent["inherited"]["policy"], parent["inherited"]["cpus"]) == ("other", [0])
    # ... unless it applies the policy to itself, as the accept thread does.
    assert parent["thread"] == {"policy": "fifo", "priority": 3, "cpus": [0], "errors": []}


def test_a_cpu_that_does_not_exist_is_said_not_fatal() -> None:
    cpus = [(os.cpu_count() or 1) + 64]
    parent, _forked = run_child({"cpus": cpus})
    assert any(f"cpus {cpus}" in e for e in parent["applied"]["errors"])
    assert parent["applied"]["policy"] == "other"


def test_the_agent_holds_its_request_while_it_runs_and_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    monkeypatch.setattr(scheduling, "CPU_LATENCY_DEVICE", str(device))

    def holders() -> list[str]:
        return [
            name
            for name in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{name}") == str(device)
        ]

    with running_agent(tmp_path, scheduling={"cpu_latency_us": 0}) as run:
        status = run.unix.request(Command.STATUS, who="test").result
        assert status is not None
        assert status["agent"]["scheduling"]["cpu_latency_us"] == 0
        assert status["agent"]["scheduling"]["errors"] == []
        assert len(holders()) == 1
    assert device.read_bytes() == (0).to_bytes(4, sys.byteorder, signed=True)
    assert holders() == []  # the request ended with the agent
