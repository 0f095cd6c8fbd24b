"""The Unix socket's accept thread publishes a halt before the event loop has seen it."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.unit.agent.agentkit import Running, running_agent, write_config
from tradeops.agent.config import parse_config
from tradeops.agent.protocol import Command, encode_request
from tradeops.agent.server import Agent
from tradeops.log import EventLog
from tradeops.tradingstate import TradingState, read_state

BLOCK_S = 1.0


def _state_file(run: Running) -> Path:
    return run.config.root / "state" / "trading_state"


def _block_loop(run: Running, seconds: float) -> threading.Event:
    """Make the agent's event loop busy for ``seconds``; set the event once it is."""
    started = threading.Event()

    def busy() -> None:
        started.set()
        time.sleep(seconds)  # blocks the loop: nothing of asyncio runs meanwhile

    loop = run.agent._loop
    assert loop is not None
    loop.call_soon_threadsafe(busy)
    assert started.wait(5)
    return started


def _send(run: Running, frame: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(run.config.unix.path))
    sock.sendall(frame)
    return sock


def _wait_for(path: Path, state: TradingState, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:  # bounded by within_s
        if read_state(path).state is state:
            return True
        time.sleep(0.005)
    return False


def _reset(run: Running) -> None:
    assert run.unix.request(Command.RESET, {}, who="alice", reason="start").ok


def _spaced(frame: bytes) -> bytes:
    """The same request as JSON with spaces: valid, but not the form our clients write."""
    return json.dumps(json.loads(frame)).encode() + b"\n"


@pytest.mark.parametrize(
    "frame",
    [
        encode_request(Command.HALT, {}, who="ops", reason="runaway"),
        _spaced(encode_request(Command.HALT, {}, who="ops", reason="runaway")),
        encode_request(Command.HALT, {}, who="ops", reason="runaway \u00b5s"),
    ],
    ids=["canonical", "spaced", "non-ascii"],
)
def test_a_halt_is_published_while_the_event_loop_is_busy(tmp_path: Path, frame: bytes) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        _block_loop(run, BLOCK_S)
        sock = _send(run, frame)
        try:
            # Seen within the loop's stall: only the accept thread can have written it.
            assert _wait_for(_state_file(run), TradingState.HALTED, BLOCK_S / 2)
            assert sock.recv(8192)  # answered once the loop is back
        finally:
            sock.close()
        assert run.agent.machine.snapshot.state is TradingState.HALTED
        for _unused in range(500):  # bounded: 5 s for the durable writes after the answer
            if run.agent.machine.durable:
                break
            time.sleep(0.01)
        trips = [r for r in run.audit() if r.get("event") == "trip"]
        assert trips[-1]["who"] == "ops"


@pytest.mark.parametrize(
    "frame",
    [
        encode_request(Command.RESET, {}, who="ops", reason="not a halt"),
        encode_request(Command.REDUCE, {}, who="ops", reason="may not loosen a HALTED file"),
        b'{"v": 1, "cmd": "halt"}\n',
    ],
    ids=["reset", "reduce", "malformed"],
)
def test_nothing_but_a_valid_halt_is_published_early(tmp_path: Path, frame: bytes) -> None:
    with running_agent(tmp_path) as run:
        _reset(run)
        _block_loop(run, BLOCK_S / 2)
        sock = _send(run, frame)
        try:
            assert not _wait_for(_state_file(run), TradingState.HALTED, BLOCK_S / 4)
            assert read_state(_state_file(run)).state is not TradingState.HALTED
        finally:
            sock.close()


def test_a_peer_that_may_not_halt_publishes_nothing(tmp_path: Path) -> None:
    other = os.getuid() + 4242
    with running_agent(tmp_path, unix={"allowed_uids": [other], "allowed_gids": []}) as run:
        path = _state_file(run)
        before = read_state(path)
        _block_loop(run, BLOCK_S / 2)
        sock = _send(run, encode_request(Command.HALT, {}, who="mallory", reason="x"))
        try:
            assert not _wait_for(path, TradingState.ACTIVE, 0.01)  # a new host is HALTED...
            assert read_state(path).generation == before.generation  # ...and nothing was written
        finally:
            sock.close()


ME, MY_GID, OTHER = os.getuid(), os.getgid(), os.getuid() + 4242


@pytest.mark.parametrize(
    ("unix", "allowed"),
    [
        ({"allowed_uids": [ME]}, True),
        ({"allowed_uids": [OTHER], "strategy_uids": [ME]}, True),
        ({"allowed_uids": [OTHER], "allowed_gids": [MY_GID]}, True),
        ({"allowed_uids": [OTHER], "strategy_gids": [MY_GID]}, True),
        ({"allowed_uids": [OTHER], "allowed_gids": [MY_GID + 4242]}, False),
    ],
    ids=["operator-uid", "strategy-uid", "operator-gid", "strategy-gid", "nobody"],
)
def test_the_accept_threads_peer_check_agrees_with_the_loops(
    tmp_path: Path, unix: dict, allowed: bool
) -> None:
    agent = Agent(
        parse_config(write_config(tmp_path, unix=unix)), log=EventLog("agent", io.StringIO())
    )
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with mine, theirs:
        assert agent._unix_may_halt(mine) is allowed
        assert agent._unix_peer(mine)[1] is allowed
