"""Fleet kill: one signed command to every host's agent at once, no Ansible on the hot path.

``Order`` is what to send (halt, reduce, status; reset for drills and
benchmarks), ``HostResult`` what each host answered, ``FleetResult`` the
whole fan-out. This module holds the transport-free parts and the TCP
transport: one asyncio connection per host, each request signed with that
host's key (``auth.SigningKey``), the answer parsed (``protocol.parse_response``)
and matched to the request id. The SSH transport is ``tradeops.agent.sshpool``.

Bounded: every host has one deadline (``timeout_s``) for all its attempts,
and a transport failure (refused, reset, cut off) is retried at most
``retries`` times inside it. A refusal by the agent is never retried (a wrong
key stays wrong). A halt is idempotent, so a retried halt is harmless.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradeops.agent.auth import KeyFileError, SigningKey
from tradeops.agent.killinventory import KillHost
from tradeops.agent.protocol import (
    MAX_FRAME,
    Command,
    ProtocolError,
    Response,
    encode_request,
    parse_response,
)

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_RETRIES = 1
RETRY_PAUSE_S = 0.05
MAX_RETRIES = 5
# The states that confirm an order: a reduce on a halted host leaves it (safely) halted.
CONFIRMS: Mapping[Command, frozenset[str]] = {
    Command.HALT: frozenset({"HALTED"}),
    Command.REDUCE: frozenset({"REDUCING", "HALTED"}),
    Command.STATUS: frozenset({"HALTED"}),  # "is the whole fleet halted?"
}
FAN_OUT = frozenset(CONFIRMS)  # what ``tradeops kill`` offers


class TransportError(Exception):
    """The agent could not be reached or did not answer in time (worth a bounded retry)."""


@dataclass(frozen=True, slots=True)
class Order:
    """One command for every host, with who asks and why, and the states that confirm it."""

    cmd: Command
    who: str
    reason: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    expect: frozenset[str] = frozenset({"HALTED"})

    @classmethod
    def of(cls, cmd: Command | str, who: str, reason: str = "") -> Order:
        """A ``halt``, ``reduce`` or ``status`` order; raise ``ValueError`` if incomplete."""
        cmd = Command(cmd)
        if cmd not in CONFIRMS:
            raise ValueError(f"tradeops kill sends {', '.join(sorted(FAN_OUT))}, not {cmd.value}")
        if cmd is not Command.STATUS and not reason.strip():
            raise ValueError(f"{cmd.value} needs a reason")
        return cls(cmd, who, reason, {}, CONFIRMS[cmd])

    @classmethod
    def reset(cls, who: str, reason: str, target: str = "ACTIVE") -> Order:
        """A reset to ``target`` (drills and benchmarks; on-call resets use ``tradeops reset``)."""
        return cls(Command.RESET, who, reason, {"target": target}, frozenset({target}))

    def frame(self, request_id: str) -> bytes:
        """A fresh request frame (new ts and nonce) with ``request_id``."""
        return encode_request(
            self.cmd, dict(self.args), who=self.who, reason=self.reason, request_id=request_id
        )


@dataclass(slots=True)
class HostResult:
    """What one host answered: its state, whether that confirms the order, the time taken."""

    host: str
    transport: str
    state: str | None = None
    confirmed: bool = False
    ms: float = 0.0
    error: str | None = None
    code: str | None = None  # the agent's error code, when it refused
    attempts: int = 0
    via: str = "agent"  # or "cli-fallback": the host's CLI wrote the state file itself

    @property
    def halted(self) -> bool:
        """Whether the host said HALTED."""
        return self.state == "HALTED"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (never holds a key: errors name key ids and paths only)."""
        return {
            "host": self.host,
            "transport": self.transport,
            "halted": self.halted,
            "confirmed": self.confirmed,
            "state": self.state,
            "ms": round(self.ms, 3),
            "error": self.error,
            "code": self.code,
            "attempts": self.attempts,
            "via": self.via,
        }


@dataclass(slots=True)
class FleetResult:
    """The whole fan-out: one result per host, in inventory order."""

    order: Order
    transport: str
    hosts: list[HostResult]
    total_ms: float

    @property
    def confirmed(self) -> bool:
        """Whether every host confirmed the order (for halt: every host HALTED)."""
        return bool(self.hosts) and all(h.confirmed for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``--json``."""
        return {
            "command": self.order.cmd.value,
            "transport": self.transport,
            "who": self.order.who,
            "reason": self.order.reason,
            "confirmed": self.confirmed,
            "expect": sorted(self.order.expect),
            "total_ms": round(self.total_ms, 3),
            "hosts": [h.as_dict() for h in self.hosts],
        }


def state_of(result: Mapping[str, Any]) -> str | None:
    """The state an agent's answer reports (``after`` of a transition, or ``state``)."""
    for key in ("after", "state"):
        value = result.get(key)
        if isinstance(value, dict) and isinstance(value.get("state"), str):
            return str(value["state"])
    return None


def settle(out: HostResult, response: Response, order: Order) -> None:
    """Fill ``out`` from the agent's response to ``order``."""
    if response.error is not None:
        out.code = response.error.code.value
        out.error = f"refused: {response.error.code.value}: {response.error.text}"
        return
    out.state = state_of(response.result or {})
    out.confirmed = out.state in order.expect
    if not out.confirmed:
        out.error = f"answered {out.state or 'no state'}, expected {' or '.join(order.expect)}"


def parse_answer(line: bytes, request_id: str) -> Response:
    """Parse one response line and check it answers ``request_id``."""
    try:
        response = parse_response(line)
    except ProtocolError as exc:
        raise TransportError(f"invalid answer: {exc}") from None
    if response.id is not None and response.id != request_id:
        raise TransportError(f"the answer is for request {response.id}, not {request_id}")
    return response


# --------------------------------------------------------------------- TCP
@dataclass(frozen=True, slots=True)
class TcpTarget:
    """A host ready for the TCP transport: its key loaded, or why it cannot be."""

    host: KillHost
    key: SigningKey | None
    problem: str | None = None


def prepare_tcp(hosts: Sequence[KillHost]) -> list[TcpTarget]:
    """Load each host's key once (``load_key``'s checks); a bad key is that host's problem."""
    cache: dict[tuple[str, str], SigningKey | str] = {}
    out: list[TcpTarget] = []
    for host in hosts:
        if host.tcp is None or host.key_id is None or host.key_file is None:
            out.append(TcpTarget(host, None, "no tcp address and key in the inventory"))
            continue
        slot = (host.key_id, str(host.key_file))
        if slot not in cache:
            try:
                cache[slot] = SigningKey.load(host.key_id, host.key_file)
            except (KeyFileError, ValueError) as exc:
                cache[slot] = f"key {host.key_id}: {exc}"
        got = cache[slot]
        if isinstance(got, SigningKey):
            out.append(TcpTarget(host, got))
        else:
            out.append(TcpTarget(host, None, got))
    return out


async def _tcp_attempt(target: TcpTarget, order: Order) -> Response:
    assert target.host.tcp is not None
    assert target.key is not None
    request_id = secrets.token_hex(8)
    frame = target.key.sign(order.frame(request_id))
    address, port = target.host.tcp
    try:
        reader, writer = await asyncio.open_connection(address, port, limit=MAX_FRAME + 1)
    except OSError as exc:
        raise TransportError(f"cannot connect to {address}:{port}: {exc.strerror or exc}") from None
    try:
        writer.write(frame)
        await writer.drain()
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise TransportError("the agent closed the connection without an answer") from None
    except asyncio.LimitOverrunError:
        raise TransportError("the agent's answer is over the frame limit") from None
    except OSError as exc:
        raise TransportError(f"connection to {address}:{port}: {exc.strerror or exc}") from None
    finally:
        writer.close()
    return parse_answer(line, request_id)


async def tcp_one(target: TcpTarget, order: Order, timeout_s: float, retries: int) -> HostResult:
    """Send ``order`` to one host over TCP: bounded attempts inside one deadline."""
    out = HostResult(target.host.name, "tcp")
    started = time.perf_counter()
    if target.problem is not None:
        out.error = target.problem
        return out
    deadline = started + timeout_s
    for attempt in range(1, min(retries, MAX_RETRIES) + 2):
        out.attempts = attempt
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            response = await asyncio.wait_for(_tcp_attempt(target, order), left)
        except TimeoutError:
            out.error = f"no answer within {timeout_s:g} s"
            break
        except TransportError as exc:
            out.error = str(exc)
            pause = min(RETRY_PAUSE_S, max(0.0, deadline - time.perf_counter()))
            await asyncio.sleep(pause)
            continue
        out.error = None
        settle(out, response, order)
        break
    out.ms = (time.perf_counter() - started) * 1000
    return out


async def fan_out_tcp(
    targets: Sequence[TcpTarget],
    order: Order,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> FleetResult:
    """Send ``order`` to every target at once; wait for all (each bounded by ``timeout_s``)."""
    started = time.perf_counter()
    tasks = [tcp_one(t, order, timeout_s, retries) for t in targets]
    results = list(await asyncio.gather(*tasks))
    return FleetResult(order, "tcp", results, (time.perf_counter() - started) * 1000)


def run_tcp(
    hosts: Sequence[KillHost],
    order: Order,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> FleetResult:
    """``fan_out_tcp`` from synchronous code (loads the keys first, outside the clock)."""
    targets = prepare_tcp(hosts)
    return asyncio.run(fan_out_tcp(targets, order, timeout_s, retries))
