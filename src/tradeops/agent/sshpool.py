"""The SSH transport of the fleet kill: a pool of warm paramiko connections, one per host.

For estates that open only SSH to production hosts. ``SshPool.connect()``
logs in to every host at once (key auth, ``known_hosts`` required: unknown
host keys are rejected) and opens one long-lived exec channel per host running
the relay (``tradeops.agent.sshrelay``) against the agent's Unix socket. A
command is then one request line down each channel and one answer line back,
in parallel (one worker thread per host): the warm path costs no handshake and
no Python start. Keep the pool open between commands (a benchmark, an on-call
session: ``tradeops kill --serve``).

Fallbacks, bounded like the TCP transport (one deadline per host, at most
``retries`` more attempts): a relay channel that broke or timed out is closed
and reopened; a host whose agent does not answer gets the host's own CLI,
``<venv>/bin/tradeops agent halt --json`` on a fresh exec channel, which
halts through the agent or, with the agent dead, writes HALTED to the state
file itself (``via: cli-fallback``). ``mode="exec"`` uses that CLI for every
command (slower: a Python start per command on each host).

paramiko is imported here only, so the rest of ``tradeops kill`` (and every
trading host) works without it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tradeops.agent.fleetkill import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    MAX_RETRIES,
    FleetResult,
    HostResult,
    Order,
    TransportError,
    parse_answer,
    settle,
    state_of,
)
from tradeops.agent.killinventory import KillHost
from tradeops.agent.protocol import MAX_FRAME, Command

CONNECT_TIMEOUT_S = 10.0
MAX_OUTPUT = 65536  # bytes read from a fallback command
RELAY = "{python} -I -m tradeops.agent.sshrelay --socket {socket}"
MODES = ("relay", "exec")


class SshUnavailable(RuntimeError):
    """paramiko is not installed here (the SSH transport needs it)."""


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:
        raise SshUnavailable(
            "the SSH transport needs paramiko on the controller: pip install paramiko"
        ) from None
    return paramiko


@dataclass
class _Conn:
    """One host's warm connection and relay channel (used by one worker at a time)."""

    host: KillHost
    client: Any = None
    channel: Any = None
    buf: bytearray = field(default_factory=bytearray)
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _readline(chan: Any, buf: bytearray, deadline: float) -> bytes:
    """One line from ``chan`` (through ``buf``) before ``deadline``; bounded by size."""
    while b"\n" not in buf:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TransportError("no answer in time")
        if len(buf) > MAX_FRAME:
            raise TransportError("the relay's answer is over the frame limit")
        chan.settimeout(left)
        try:
            chunk = chan.recv(MAX_FRAME + 1)
        except TimeoutError:
            raise TransportError("no answer in time") from None
        except (OSError, EOFError) as exc:
            raise TransportError(f"the relay channel broke: {exc}") from None
        if not chunk:
            raise TransportError("the relay channel closed")
        buf += chunk
    line, _unused, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line + b"\n"


class SshPool:
    """Warm SSH connections to ``hosts``; ``run(order)`` fans an order out over them."""

    def __init__(
        self,
        hosts: Sequence[KillHost],
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        mode: str = "relay",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        missing = [h.name for h in hosts if h.ssh is None]
        if missing:
            raise ValueError(f"no ssh target in the inventory for: {', '.join(missing)}")
        self.mode = mode
        self.connect_timeout_s = connect_timeout_s
        self._paramiko = _paramiko()
        self._conns = [_Conn(h) for h in hosts]
        self._workers = ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="ssh")

    # ----------------------------------------------------------- lifecycle
    def __enter__(self) -> SshPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> dict[str, str | None]:
        """Log in to every host at once and open the relays; return each host's error or None."""
        list(self._workers.map(self._warm, self._conns))
        return {c.host.name: c.error for c in self._conns}

    def close(self) -> None:
        """Close every channel and connection (the relays end with their stdin)."""
        for conn in self._conns:
            self._drop(conn, client=True)
        self._workers.shutdown(wait=True)

    def _login(self, conn: _Conn) -> None:
        ssh = conn.host.ssh
        assert ssh is not None
        client = self._paramiko.SSHClient()
        if ssh.known_hosts is not None:
            client.load_host_keys(str(ssh.known_hosts))
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(self._paramiko.RejectPolicy())
        client.connect(
            ssh.host,
            port=ssh.port,
            username=ssh.user,
            key_filename=str(ssh.key_file) if ssh.key_file else None,
            look_for_keys=ssh.key_file is None,
            allow_agent=ssh.key_file is None,
            timeout=self.connect_timeout_s,
            banner_timeout=self.connect_timeout_s,
            auth_timeout=self.connect_timeout_s,
        )
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        conn.client = client

    def _open_relay(self, conn: _Conn, deadline: float) -> None:
        host = conn.host
        command = RELAY.format(
            python=shlex.quote(str(host.host_venv / "bin" / "python")),
            socket=shlex.quote(str(host.root / "run" / "agent.sock")),
        )
        chan = conn.client.get_transport().open_session(timeout=self.connect_timeout_s)
        chan.exec_command(command)
        conn.channel, conn.buf = chan, bytearray()
        ready = _readline(chan, conn.buf, deadline)
        if b"relay_ready" not in ready:
            raise TransportError(f"the relay did not start: {ready[:200]!r}")

    def _warm(self, conn: _Conn) -> None:
        with conn.lock:
            conn.error = None
            try:
                if conn.client is None or not self._alive(conn):
                    self._drop(conn, client=True)
                    self._login(conn)
                if self.mode == "relay" and conn.channel is None:
                    self._open_relay(conn, time.perf_counter() + self.connect_timeout_s)
            except Exception as exc:  # paramiko raises many kinds; each is this host's problem
                conn.error = f"{type(exc).__name__}: {exc}"
                self._drop(conn, client=True)

    @staticmethod
    def _alive(conn: _Conn) -> bool:
        transport = conn.client.get_transport() if conn.client is not None else None
        return bool(transport is not None and transport.is_active())

    @staticmethod
    def _drop(conn: _Conn, client: bool = False) -> None:
        if conn.channel is not None:
            with contextlib.suppress(Exception):  # a broken channel may fail to close
                conn.channel.close()
            conn.channel, conn.buf = None, bytearray()
        if client and conn.client is not None:
            conn.client.close()
            conn.client = None

    # ------------------------------------------------------------- commands
    def run(
        self,
        order: Order,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
    ) -> FleetResult:
        """Send ``order`` to every host at once over the warm pool; wait for all."""
        started = time.perf_counter()
        submit = self._workers.submit
        futures = [submit(self._one, c, order, timeout_s, retries) for c in self._conns]
        results = [f.result() for f in futures]  # each bounded by its own deadline
        return FleetResult(order, "ssh", results, (time.perf_counter() - started) * 1000)

    def _one(self, conn: _Conn, order: Order, timeout_s: float, retries: int) -> HostResult:
        out = HostResult(conn.host.name, "ssh")
        started = time.perf_counter()
        deadline = started + timeout_s
        with conn.lock:
            for attempt in range(1, min(retries, MAX_RETRIES) + 2):
                out.attempts = attempt
                if time.perf_counter() >= deadline:
                    break
                try:
                    self._attempt(conn, order, deadline, out)
                except TransportError as exc:
                    out.error = str(exc)
                    self._drop(conn, client=not self._alive(conn))
                    continue
                except Exception as exc:  # paramiko's own errors: this host's, reported
                    out.error = f"{type(exc).__name__}: {exc}"
                    self._drop(conn, client=True)
                    continue
                break
        out.ms = (time.perf_counter() - started) * 1000
        return out

    def _ensure(self, conn: _Conn, deadline: float) -> None:
        if conn.client is None or not self._alive(conn):
            self._drop(conn, client=True)
            self._login(conn)
        if self.mode == "relay" and conn.channel is None:
            self._open_relay(conn, deadline)

    def _attempt(self, conn: _Conn, order: Order, deadline: float, out: HostResult) -> None:
        self._ensure(conn, deadline)
        if self.mode == "exec":
            self._exec_cli(conn, order, deadline, out)
            return
        request_id = secrets.token_hex(8)
        conn.channel.sendall(order.frame(request_id))
        line = _readline(conn.channel, conn.buf, deadline)
        if line.startswith(b'{"relay_error"'):
            text = json.loads(line).get("text", "the agent did not answer")
            if order.cmd is Command.HALT:
                self._exec_cli(conn, order, deadline, out)  # the host's CLI falls back
                return
            out.error = f"agent unreachable: {text}"
            return
        out.error = None
        settle(out, parse_answer(line, request_id), order)

    def _exec_cli(self, conn: _Conn, order: Order, deadline: float, out: HostResult) -> None:
        """Run ``<venv>/bin/tradeops agent <cmd> --json`` on the host; read its answer."""
        host = conn.host
        argv = [
            str(host.host_venv / "bin" / "tradeops"), "agent", order.cmd.value,
            "--root", str(host.root), "--who", order.who, "--json",
        ]  # fmt: skip
        if order.reason:
            argv += ["--reason", order.reason]
        if order.cmd is Command.RESET:
            argv += ["--to", str(order.args.get("target", "ACTIVE"))]
        chan = conn.client.get_transport().open_session(timeout=self.connect_timeout_s)
        try:
            chan.exec_command(" ".join(shlex.quote(a) for a in argv))
            data = bytearray()
            for _unused in range(MAX_OUTPUT):  # bounded: each pass reads a byte or ends
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TransportError("the host's tradeops CLI did not answer in time")
                chan.settimeout(left)
                try:
                    chunk = chan.recv(MAX_OUTPUT)
                except TimeoutError:
                    raise TransportError("the host's tradeops CLI did not answer in time") from None
                if not chunk or len(data) > MAX_OUTPUT:
                    break
                data += chunk
            left = max(0.0, deadline - time.perf_counter())
            status = chan.exit_status if chan.status_event.wait(left) else -1
        finally:
            chan.close()
        self._settle_cli(bytes(data), status, order, out)

    @staticmethod
    def _settle_cli(data: bytes, status: int, order: Order, out: HostResult) -> None:
        try:
            doc = json.loads(data)
        except ValueError:
            out.error = f"the host's tradeops CLI exited {status} without a JSON answer"
            return
        out.via = str(doc.get("via", "agent"))
        error = doc.get("error")
        if isinstance(error, dict):
            out.code = str(error.get("code"))
            out.error = f"refused: {out.code}: {error.get('text')}"
            return
        result = doc.get("result") if isinstance(doc.get("result"), dict) else doc
        out.state = state_of(result)
        out.confirmed = out.state in order.expect and status == 0
        out.error = None if out.confirmed else f"the host's CLI exited {status}, state {out.state}"
