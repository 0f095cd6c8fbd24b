"""A strategy's dead man's switch: the ``heartbeat`` request to the kill-switch agent.

The agent's control protocol (version 1, docs/agent-protocol.md) is one JSON
object per line on its Unix socket. A strategy needs one request of it, so
this module writes that request with the standard library only, and reads the
answer; the agent's own parser (``tradeops.agent.protocol.parse_request``) is
tested against what it writes, so the two cannot drift. A strategy whose
heartbeats stop (hung, frozen, dead) trips the agent's ``HEARTBEAT_LOST``
breaker; its uid or group belongs in the agent's ``unix.strategy_uids/gids``.

Compatibility: a request says ``"v": 1``; an agent that speaks version 1
(every agent so far, and any later one, which keeps serving version 1)
answers it. A refusal comes back as ``ok: false`` with a code, never silently.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from dataclasses import dataclass

PROTOCOL_VERSION = 1
MAX_ANSWER = 8192
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def heartbeat_frame(strategy: str, who: str, now: float | None = None) -> bytes:
    """One version-1 ``heartbeat`` request for ``strategy``, as a line of JSON."""
    if not NAME_RE.fullmatch(strategy):
        raise ValueError(f"a strategy name is 1-64 of [A-Za-z0-9_.-], got {strategy!r}")
    request = {
        "v": PROTOCOL_VERSION,
        "id": secrets.token_hex(8),
        "cmd": "heartbeat",
        "args": {"strategy": strategy},
        "who": who[:64],
        "reason": "",
        "ts": time.time() if now is None else now,
        "nonce": secrets.token_hex(16),
    }
    return json.dumps(request, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass(frozen=True, slots=True)
class BeatAnswer:
    """What the agent said: the host's state (``ok``) or why it refused."""

    ok: bool
    state: str | None = None
    error: str | None = None


def read_answer(line: bytes) -> BeatAnswer:
    """Read the agent's answer line (never raises: a bad answer is an error answer)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return BeatAnswer(False, error="the agent's answer is not JSON")
    if not isinstance(obj, dict) or obj.get("ok") not in (True, False):
        return BeatAnswer(False, error="the agent's answer is not a response")
    if obj["ok"]:
        result = obj.get("result")
        state = result.get("state") if isinstance(result, dict) else None
        return BeatAnswer(True, state=state if isinstance(state, str) else None)
    error = obj.get("error")
    if isinstance(error, dict):
        return BeatAnswer(False, error=f"{error.get('code')}: {error.get('text')}")
    return BeatAnswer(False, error="refused")


def send_heartbeat(socket_path: str, strategy: str, who: str, timeout_s: float = 0.2) -> BeatAnswer:
    """Send one heartbeat over the agent's Unix socket and read its answer (blocking)."""
    frame = heartbeat_frame(strategy, who)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(socket_path)
            sock.sendall(frame)
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_ANSWER:
                chunk = sock.recv(MAX_ANSWER + 1 - len(data))
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return BeatAnswer(False, error=f"agent unreachable: {exc.strerror or exc}")
    if not data.endswith(b"\n"):
        return BeatAnswer(False, error="the agent closed without an answer")
    return read_answer(data)
