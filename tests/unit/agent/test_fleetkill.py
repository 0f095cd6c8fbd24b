"""``tradeops kill`` over TCP against several real agents (threads, tmp roots, 127.0.0.1)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from tests.unit.agent.agentkit import KEY_ID, Running, running_agent
from tradeops.agent.auth import generate_key
from tradeops.agent.fleetkill import Order, run_tcp
from tradeops.agent.killinventory import InventoryError, load_inventory, parse_inventory
from tradeops.agent.protocol import Command, encode_request, parse_response
from tradeops.cli.main import main
from tradeops.tradingstate import TradingState


@contextmanager
def agents(tmp: Path, n: int) -> Iterator[list[Running]]:
    """``n`` real agents, each on its own root and key, reset to ACTIVE."""
    with ExitStack() as stack:
        out = []
        for i in range(n):
            where = tmp / f"h{i + 1}"
            where.mkdir()
            run = stack.enter_context(running_agent(where))
            reset = run.unix.request(Command.RESET, {"target": "ACTIVE"}, who="t", reason="setup")
            assert reset.ok, reset
            out.append(run)
        yield out


def free_port() -> int:
    """A port nothing listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_of(run: Running) -> int:
    assert run.agent.tcp_address is not None
    return run.agent.tcp_address[1]


def inventory(tmp: Path, running: list[Running], extra: list[dict] | None = None) -> Path:
    hosts = [
        {
            "name": f"h{i + 1}",
            "tcp": f"127.0.0.1:{port_of(run)}",
            "key_file": str(tmp / f"h{i + 1}" / "ctl.key"),
        }
        for i, run in enumerate(running)
    ]
    doc = {"format": 1, "defaults": {"key_id": KEY_ID}, "hosts": hosts + (extra or [])}
    path = tmp / "kill.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def kill(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["kill", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, out + err


def keys_of(tmp: Path) -> list[str]:
    return [p.read_text().strip() for p in tmp.rglob("*.key")]


def state(run: Running) -> TradingState:
    return run.agent.machine.snapshot.state


def test_halt_reaches_every_host(tmp_path, capsys):
    with agents(tmp_path, 3) as running:
        path = inventory(tmp_path, running)
        code, doc, text = kill(capsys, "-i", str(path), "--who", "alice", "--reason", "drill")
        assert code == 0, text
        assert doc["confirmed"] is True
        assert [h["host"] for h in doc["hosts"]] == ["h1", "h2", "h3"]
        for row in doc["hosts"]:
            assert row["halted"]
            assert row["state"] == "HALTED"
            assert row["error"] is None
            assert row["attempts"] == 1
        assert [state(r) for r in running] == [TradingState.HALTED] * 3
        for run in running:
            halts = [a for a in run.audit() if a.get("cmd") == "halt"]
            assert halts[-1]["who"] == "alice"
            assert halts[-1]["why"] == "drill"
    assert not any(key in text for key in keys_of(tmp_path))


def test_one_host_down_is_reported_and_the_others_still_halt(tmp_path, capsys):
    with agents(tmp_path, 2) as running:
        key = str(tmp_path / "h1" / "ctl.key")
        down = {"name": "down", "tcp": f"127.0.0.1:{free_port()}", "key_file": key}
        path = inventory(tmp_path, running, [down])
        code, doc, _text = kill(capsys, "-i", str(path), "--who", "bob", "--reason", "test")
        assert code == 1
        assert doc["confirmed"] is False
        rows = {h["host"]: h for h in doc["hosts"]}
        assert rows["down"]["halted"] is False
        assert "cannot connect" in rows["down"]["error"]
        assert rows["down"]["attempts"] == 2  # one bounded retry
        assert rows["h1"]["halted"]
        assert rows["h2"]["halted"]
        assert [state(r) for r in running] == [TradingState.HALTED] * 2


def test_a_wrong_key_is_refused_and_reported_and_never_printed(tmp_path, capsys):
    with agents(tmp_path, 3) as running:
        path = inventory(tmp_path, running)
        doc = yaml.safe_load(path.read_text())
        generate_key(tmp_path / "wrong.key")
        doc["hosts"][1]["key_file"] = str(tmp_path / "wrong.key")
        path.write_text(yaml.safe_dump(doc))
        code, out, text = kill(capsys, "-i", str(path), "--who", "carol", "--reason", "x")
        assert code == 1
        rows = {h["host"]: h for h in out["hosts"]}
        assert rows["h2"]["code"] == "unauthenticated"
        assert rows["h2"]["halted"] is False
        assert rows["h2"]["attempts"] == 1
        assert state(running[1]) is TradingState.ACTIVE
        assert rows["h1"]["halted"]
        assert rows["h3"]["halted"]
        assert any(a.get("code") == "unauthenticated" for a in running[1].audit())
        # The human output too.
        assert main(["kill", "-i", str(path), "--who", "carol", "--reason", "x"]) == 1
        human = capsys.readouterr()
        text += human.out + human.err
        assert "NOT h2" in human.out
    keys = keys_of(tmp_path)
    assert len(keys) == 4
    assert not any(key in text for key in keys)


def test_reduce_then_status(tmp_path, capsys):
    with agents(tmp_path, 2) as running:
        path = inventory(tmp_path, running)
        code, doc, _unused = kill(capsys, "reduce", "-i", str(path), "--who", "d", "--reason", "r")
        assert code == 0
        assert {h["state"] for h in doc["hosts"]} == {"REDUCING"}
        code, doc, _unused = kill(capsys, "status", "-i", str(path))
        assert code == 1  # status confirms only a fleet that is HALTED
        assert {h["state"] for h in doc["hosts"]} == {"REDUCING"}
        assert [state(r) for r in running] == [TradingState.REDUCING] * 2


def test_no_answer_is_bounded_by_the_timeout(tmp_path):
    with agents(tmp_path, 1) as running, socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)  # accepts in the kernel, never answers
        key = str(tmp_path / "h1" / "ctl.key")
        host = {"name": "mute", "tcp": f"127.0.0.1:{mute.getsockname()[1]}", "key_file": key}
        path = inventory(tmp_path, running, [host])
        result = run_tcp(load_inventory(path), Order.of("halt", "e", "r"), timeout_s=0.3)
        rows = {h.host: h for h in result.hosts}
        assert "no answer within" in (rows["mute"].error or "")
        assert rows["h1"].halted
        assert not result.confirmed


def test_usage_errors_exit_2(tmp_path, capsys):
    path = tmp_path / "kill.yml"
    host = {"name": "a", "tcp": "127.0.0.1:1", "key_id": "k", "key_file": "/nonexistent"}
    path.write_text(yaml.safe_dump({"format": 1, "hosts": [host]}))
    assert main(["kill", "-i", str(path), "--who", "a"]) == 2  # no reason
    assert main(["kill", "-i", str(path), "--reason", "r"]) == 2  # no who
    assert main(["kill", "-i", str(tmp_path / "missing.yml"), "--who", "a", "--reason", "r"]) == 2
    # A key file that cannot be read is that host's error, not a crash.
    assert main(["kill", "-i", str(path), "--who", "a", "--reason", "r", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert "cannot open the key file" in doc["hosts"][0]["error"]


def test_inventory_is_strict_and_merges_defaults():
    doc = {
        "format": 1,
        "defaults": {"key_id": "k", "key_file": "/k", "ssh": {"user": "ops", "port": 2222}},
        "hosts": [
            {"name": "a", "tcp": "127.0.0.11:7301", "ssh": {"host": "127.0.0.11"}},
            {"name": "b", "ssh": {"host": "127.0.0.12", "user": "root"}, "root": "/r"},
        ],
    }
    a, b = parse_inventory(doc)
    assert a.tcp == ("127.0.0.11", 7301)
    assert a.ssh is not None
    assert (a.ssh.user, a.ssh.port) == ("ops", 2222)
    assert b.ssh is not None
    assert (b.ssh.user, b.ssh.host) == ("root", "127.0.0.12")
    assert str(b.host_venv) == "/r/venv"
    bad = [
        {"format": 2, "hosts": doc["hosts"]},
        {"format": 1, "hosts": [{"name": "a", "tcp": "127.0.0.1:1", "colour": "red"}]},
        {"format": 1, "hosts": [{"name": "a", "tcp": "127.0.0.1:1"}]},  # no key
        {
            "format": 1,
            "hosts": [{"name": "a", "tcp": "localhost:1", "key_id": "k", "key_file": "/k"}],
        },
        {"format": 1, "hosts": [{"name": "a"}]},
        {
            "format": 1,
            "hosts": [{"name": "a", "ssh": {"host": "h"}}, {"name": "a", "ssh": {"host": "h"}}],
        },
    ]
    for case in bad:
        with pytest.raises(InventoryError):
            parse_inventory(case)


def test_ssh_relay_forwards_to_the_agent_socket_and_says_when_it_is_down(tmp_path):
    with agents(tmp_path, 1) as (run,):
        sock = str(run.config.unix.path)
        frame = encode_request(Command.HALT, {}, who="relay", reason="test", request_id="r1")
        status = encode_request(Command.STATUS, {}, who="relay", request_id="r2")
        proc = subprocess.run(
            [sys.executable, "-I", "-m", "tradeops.agent.sshrelay", "--socket", sock],
            input=frame + status,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        ready, first, second = proc.stdout.splitlines()
        assert json.loads(ready) == {"relay_ready": 1}
        answer = parse_response(first + b"\n")
        assert answer.ok
        assert answer.id == "r1"
        assert answer.result["after"]["state"] == "HALTED"
        assert parse_response(second + b"\n").result["state"]["state"] == "HALTED"
        assert state(run) is TradingState.HALTED
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "tradeops.agent.sshrelay", "--socket", sock],
        input=frame,
        capture_output=True,
        timeout=30,
        check=False,
    )
    line = json.loads(proc.stdout.splitlines()[1])
    assert line["relay_error"] == "unreachable"


def test_serve_answers_one_json_line_per_command(tmp_path, capsys, monkeypatch):
    with agents(tmp_path, 2) as running:
        path = inventory(tmp_path, running)
        monkeypatch.setattr("sys.stdin", io.StringIO("status\nhalt serve drill\nbogus\nstatus\n"))
        code = main(["kill", "--serve", "-i", str(path), "--who", "erin"])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0
        assert [doc.get("command") for doc in lines] == ["status", "halt", None, "status"]
        assert [doc.get("confirmed") for doc in lines] == [False, True, None, True]
        assert "error" in lines[2]
        assert [state(r) for r in running] == [TradingState.HALTED] * 2
