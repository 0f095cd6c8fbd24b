"""Test helpers: a real agent on a tmp root, in a thread of this process, and its audit."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.agent.auth import SigningKey, generate_key, load_key
from tradeops.agent.client import AgentClient
from tradeops.agent.config import AgentConfig, parse_config
from tradeops.agent.server import Agent, Enforcer
from tradeops.log import EventLog

KEY_ID = "ctl"
START_TIMEOUT_S = 10.0


@dataclass
class Running:
    """A started agent and what a test needs to talk to it."""

    agent: Agent
    config: AgentConfig
    key: SigningKey
    log: io.StringIO

    @property
    def unix(self) -> AgentClient:
        """A client on the Unix socket."""
        return AgentClient(socket_path=self.config.unix.path, timeout_s=5.0)

    @property
    def tcp(self) -> AgentClient:
        """A client on the TCP listener, with the agent's key."""
        assert self.agent.tcp_address is not None
        return AgentClient(tcp=self.agent.tcp_address, key=self.key, timeout_s=5.0)

    def audit(self) -> list[dict[str, Any]]:
        """Every audit record so far."""
        path = self.config.root / "state" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def raw(self, listener: str, data: bytes, timeout: float = 5.0) -> list[bytes]:
        """Send ``data`` as is, close our side, return every response line until EOF."""
        if listener == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = str(self.config.unix.path)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = self.agent.tcp_address
        sock.settimeout(timeout)
        try:
            sock.connect(target)
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the agent may close first (too many errors): read what it sent
            out = b""
            for _unused in range(10_000):  # bounded: each pass reads a byte or ends
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            sock.close()
        return out.splitlines()


def write_config(tmp: Path, **over: Any) -> dict[str, Any]:
    """A config dict for a root under ``tmp``, with a TCP listener on 127.0.0.1 and a key."""
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    key_path = tmp / "ctl.key"
    if not key_path.exists():
        generate_key(key_path)
    data: dict[str, Any] = {
        "format": 1,
        "root": str(root),
        "unix": {"allowed_uids": [os.getuid()]},
        "tcp": {"listen": "127.0.0.1:0", "keys": {KEY_ID: str(key_path)}},
        "liveness": {"interval_s": 0.05},
        "limits": {"idle_timeout_s": 5.0},
    }
    data.update(over)
    return data


@contextmanager
def running_agent(tmp: Path, enforcer: Enforcer | None = None, **over: Any) -> Iterator[Running]:
    """Run a real agent in a thread until the block ends."""
    data = write_config(tmp, **over)
    config = parse_config(data)
    stream = io.StringIO()
    agent = Agent(config, enforcer=enforcer, log=EventLog("agent", stream))
    ready = threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(agent.serve(ready.set))
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="agent", daemon=True)
    thread.start()
    assert ready.wait(START_TIMEOUT_S), "the agent did not start"
    if errors:
        raise errors[0]
    key = SigningKey(KEY_ID, load_key(tmp / "ctl.key"))
    try:
        yield Running(agent, config, key, stream)
    finally:
        agent.stop_threadsafe()
        thread.join(START_TIMEOUT_S)
        assert not thread.is_alive(), "the agent did not stop"
        assert not errors, errors
