"""``tradeops agent``: commands through the agent, the halt fallback, keygen, restart HALTED."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.agent.agentkit import KEY_ID, running_agent, write_config
from tradeops.agent.client import AgentClient, AgentUnreachable
from tradeops.agent.protocol import Command
from tradeops.agent.state import StateMachine
from tradeops.cli.main import main
from tradeops.tradingstate import TradingState, read_state

SRC = str(Path(__file__).resolve().parents[3] / "src")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if out.strip().startswith("{") else out
    except ValueError:
        data = out
    return code, data, err


def test_status_reset_halt_through_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_agent(tmp_path) as run:
        root = str(run.config.root)
        code, data, _unused = _run(capsys, "agent", "status", "--root", root, "--json")
        assert (code, data["via"], data["result"]["state"]["state"]) == (0, "agent", "HALTED")
        code, _unused, _unused = _run(
            capsys, "agent", "reset", "--root", root, "--who", "a", "--reason", "go"
        )
        assert code == 0
        code, data, _unused = _run(
            capsys, "agent", "halt", "--socket", str(run.config.unix.path),
            "--who", "a", "--reason", "drill", "--reason-code", "DRAWDOWN", "--json",
        )  # fmt: skip
        assert (code, data["result"]["after"]["reasons"]) == (0, ["DRAWDOWN"])
        assert read_state(run.config.root / "state" / "trading_state").state is TradingState.HALTED


def test_commands_over_tcp_with_a_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_agent(tmp_path) as run:
        assert run.agent.tcp_address is not None
        host, port = run.agent.tcp_address
        tcp = [
            "--tcp",
            f"{host}:{port}",
            "--key-id",
            KEY_ID,
            "--key-file",
            str(tmp_path / "ctl.key"),
        ]
        code, _unused, err = _run(capsys, "agent", "reset", *tcp, "--who", "a", "--reason", "go")
        assert (code, err) == (0, "")
        code, _unused, _unused = _run(
            capsys, "agent", "cancel-all", *tcp, "--who", "a", "--reason", "x"
        )
        assert code == 1  # no risk session: a refusal, said on stderr


def test_halt_with_the_agent_down_writes_halted_itself_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    StateMachine(root).reset(TradingState.ACTIVE, "alice", "trading")  # then the agent died
    code, data, err = _run(
        capsys, "agent", "halt", "--root", str(root), "--who", "oncall", "--reason", "bleeding",
        "--json", "--timeout", "1",
    )  # fmt: skip
    assert code == 0
    assert "THE AGENT DID NOT ANSWER" in err
    assert (data["via"], data["state"]["state"]) == ("cli-fallback", "HALTED")
    record = read_state(root / "state" / "trading_state")
    assert (record.state, record.reason) == (TradingState.HALTED, "AGENT_DOWN")
    audit = [json.loads(x) for x in (root / "state" / "audit.jsonl").read_text().splitlines()]
    assert any(r.get("via") == "cli-fallback" and r["who"] == "oncall" for r in audit)


def test_reset_with_the_agent_down_fails_without_touching_the_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    code, _unused, err = _run(
        capsys, "agent", "reset", "--root", str(root), "--who", "a", "--reason", "go"
    )
    assert code == 3
    assert "not running" in err
    assert "through the agent only" in err
    assert not (root / "state" / "trading_state").exists()


def test_keygen_writes_a_0600_key_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k.key"
    code, data, _unused = _run(capsys, "agent", "keygen", str(path), "--json")
    assert code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_hex = path.read_text().strip()
    assert key_hex not in json.dumps(data)
    before = path.read_bytes()
    code, _unused, err = _run(capsys, "agent", "keygen", str(path))
    assert code == 1
    assert "never overwritten" in err
    assert path.read_bytes() == before


def test_run_refuses_a_config_with_an_unknown_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yml"
    config.write_text(yaml.safe_dump({**write_config(tmp_path), "halt_on_sunday": True}))
    code, _unused, err = _run(capsys, "agent", "run", "--config", str(config))
    assert code == 2
    assert "unknown key(s) halt_on_sunday" in err


def _wait_up(client: AgentClient, proc: subprocess.Popen[bytes]) -> None:
    for _unused in range(200):  # bounded: 200 x 50 ms
        if proc.poll() is not None:
            raise AssertionError(f"the agent exited with {proc.returncode}")
        try:
            if client.request(Command.STATUS, who="test").ok:
                return
        except AgentUnreachable:
            pass
        time.sleep(0.05)
    raise AssertionError("the agent did not come up")


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tradeops.cli.main", "agent", "run", "--config", str(config)],
            stdout=out, stderr=out, env=env,
        )  # fmt: skip


def test_an_agent_sigkilled_while_halted_restarts_halted(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    data = write_config(tmp_path)
    config.write_text(json.dumps(data))
    client = AgentClient(socket_path=Path(data["root"]) / "run" / "agent.sock", timeout_s=2.0)
    log = tmp_path / "agent.log"
    proc = _start(config, log)
    try:
        _wait_up(client, proc)
        assert client.request(Command.RESET, {}, who="a", reason="go").ok
        assert client.request(Command.HALT, {"reason_code": "DAILY_LOSS"}, who="b", reason="x").ok
        proc.send_signal(signal.SIGKILL)  # only the process this test started
        proc.wait(timeout=30)
        proc = _start(config, log)  # the stale socket is replaced, the state comes back
        _wait_up(client, proc)
        status = client.request(Command.STATUS, who="test").result
        assert status is not None
        assert (status["state"]["state"], status["state"]["reasons"]) == ("HALTED", ["DAILY_LOSS"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not client.socket_path.exists()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "key" not in log.read_text().replace("key_ids", "")
