"""The host end of ``tradeops kill --transport ssh``: request lines in, agent answers out.

The controller's warm SSH pool (``tradeops.agent.sshpool``) opens one exec
channel per host running ``<venv>/bin/python -I -m tradeops.agent.sshrelay
--socket <root>/run/agent.sock`` and keeps it open. Each request line read
from stdin goes to the agent's local Unix socket (a new connection per
request; the agent checks the SSH user's uid with ``SO_PEERCRED``), and the
agent's answer line is written to stdout. So a command over a warm pool costs
one line each way, not an SSH handshake nor a Python start.

When the agent cannot be reached, the relay answers
``{"relay_error": "unreachable", "text": ...}`` instead, and the controller
falls back to ``tradeops agent halt`` on the host (which writes the state file
itself). Standard library only, so that its start is cheap; bounded in line
size, lines per session and time per request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import BinaryIO

MAX_LINE = 8192  # protocol.MAX_FRAME: one frame with its newline
MAX_REQUESTS = 1_000_000  # per session; the controller reopens the channel after that
REQUEST_TIMEOUT_S = 5.0
READY = b'{"relay_ready": 1}\n'


def _error(kind: str, text: str) -> bytes:
    return (json.dumps({"relay_error": kind, "text": text}) + "\n").encode()


def forward(path: str, line: bytes, timeout_s: float = REQUEST_TIMEOUT_S) -> bytes:
    """Send one request line to the agent's Unix socket; return its answer line."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            return _error("unreachable", f"nothing answers on {path}: {exc.strerror or exc}")
        try:
            sock.sendall(line)
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_LINE:  # bounded by size
                chunk = sock.recv(MAX_LINE + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError as exc:  # a timeout included
            return _error("unreachable", f"the agent on {path}: {exc.strerror or exc}")
        if not data.endswith(b"\n"):
            return _error("unreachable", f"the agent on {path} closed without an answer")
        return data
    finally:
        sock.close()


def serve(path: str, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Relay request lines until stdin closes (or ``MAX_REQUESTS``); return the exit status."""
    stdout.write(READY)
    stdout.flush()
    for _unused in range(MAX_REQUESTS):
        line = stdin.readline(MAX_LINE + 1)
        if not line:
            return 0
        if not line.endswith(b"\n"):  # over the frame limit: skip the rest of it
            for _skip in range(1 << 20):
                rest = stdin.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
            stdout.write(_error("oversized", f"a request line is at most {MAX_LINE} bytes"))
        else:
            stdout.write(forward(path, line))
        stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tradeops.agent.sshrelay --socket PATH``."""
    parser = argparse.ArgumentParser(prog="tradeops.agent.sshrelay", description=__doc__)
    parser.add_argument("--socket", required=True, help="the agent's Unix socket")
    args = parser.parse_args(argv)
    return serve(os.fspath(args.socket), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
