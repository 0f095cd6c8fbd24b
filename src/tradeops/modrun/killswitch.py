"""The ``killswitch`` module: bring a host's trading state to halted, reducing or active.

It talks to the local agent over its Unix socket (``tradeops.agent.client``):
the state is read with ``status``, a tightening is a ``halt`` or ``reduce``,
a loosening is a ``reset`` (who, reason, ``force``). ``changed`` is true only
when the trading state changed. Check mode reads the state and reports the
action it would take, sending nothing that changes anything.

With the agent down, ``halted`` falls back to what ``tradeops agent halt``
does: the state machine trips HALTED itself (reason ``AGENT_DOWN``), audited
with ``via: module-fallback``, and the answer is checked in the trading-state
file. Nothing is cancelled or flattened on that path, and the result warns so.
A reset never falls back: it goes through the agent only.

``python -m tradeops.modrun.killswitch --check-config PATH`` loads an agent
config with the agent's own loader (``tradeops.agent.config.load_config``);
the ``tradeops.algo.killswitch_agent`` role validates its template with it
before the file replaces the one the agent runs with.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.agent.client import (
    AgentClient,
    AgentError,
    AgentRefused,
    AgentUnreachable,
    checked,
)
from tradeops.agent.config import DEFAULT_SOCKET, ConfigError, load_config
from tradeops.agent.protocol import Command, ProtocolError
from tradeops.agent.reasons import Reason
from tradeops.agent.state import StateMachine
from tradeops.auditlog import append_audit
from tradeops.tradingstate import TradingState, default_path, read_state
from tradeops_client.liveness import DEFAULT_RELATIVE_PATH, read_beat

STATES = ("halted", "reducing", "active", "status")
TARGETS = {
    "halted": TradingState.HALTED,
    "reducing": TradingState.REDUCING,
    "active": TradingState.ACTIVE,
}
FALLBACK_WARNING = (
    "THE AGENT DID NOT ANSWER ({error}); HALTED was written to {path} directly "
    "(module-fallback): nothing was cancelled or flattened, restart the agent"
)


@dataclass(frozen=True)
class KillswitchParams:
    """The module's parameters."""

    root: str
    state: str = "status"
    who: str | None = None
    reason: str | None = None
    reason_code: str = Reason.MANUAL.value
    force: bool = False
    socket: str | None = None
    timeout: float = 2.0
    liveness_max_age: float = 1.0


PARAMS = KillswitchParams


@dataclass
class Observed:
    """The host's trading state as read before acting."""

    state: TradingState
    via: str  # "agent" (status answered) or "state-file" (the agent did not answer)
    detail: dict[str, Any]  # the agent's snapshot, or the trading-state record
    agent: dict[str, Any] | None = None
    agent_error: str | None = None


def _fail(msg: str, **fields: Any) -> dict[str, Any]:
    return {"failed": True, "msg": msg, **fields}


def liveness(root: Path, max_age_s: float) -> dict[str, Any]:
    """The agent's liveness beat: ``alive`` when it beat within ``max_age_s``."""
    beat = read_beat(root / DEFAULT_RELATIVE_PATH)
    if beat.error is not None:
        return {"alive": False, "age_s": None, "pid": None, "error": beat.error}
    if beat.monotonic_ns == 0:
        return {"alive": False, "age_s": None, "pid": beat.pid, "error": "the agent stopped"}
    age = max(0, time.monotonic_ns() - beat.monotonic_ns) / 1e9
    alive = age <= max_age_s
    error = None if alive else f"last beat {age:.3f} s ago (limit {max_age_s:g} s)"
    return {"alive": alive, "age_s": round(age, 3), "pid": beat.pid, "error": error}


def observe(client: AgentClient, root: Path) -> Observed:
    """Ask the agent for its state; read the trading-state file when it does not answer.

    Raises ``AgentError`` for anything but "not running": a refusal or a
    permission problem is not an agent that is down.
    """
    try:
        response = checked(client.request(Command.STATUS, who="ansible"))
    except AgentUnreachable as exc:
        record = read_state(default_path(root))
        return Observed(record.state, "state-file", record.as_dict(), None, str(exc))
    result = response.result or {}
    snapshot = dict(result.get("state") or {})
    return Observed(TradingState[str(snapshot["state"])], "agent", snapshot, result.get("agent"))


def _diff(before: TradingState, after: TradingState, root: Path) -> dict[str, str]:
    header = f"{root} trading state"
    return {
        "before_header": header,
        "after_header": header,
        "before": f"{before.name}\n",
        "after": f"{after.name}\n",
    }


def _command(current: TradingState, target: TradingState) -> Command:
    if target > current:
        return Command.HALT if target is TradingState.HALTED else Command.REDUCE
    return Command.RESET


def _fallback_halt(params: KillswitchParams, root: Path, error: AgentError) -> dict[str, Any]:
    """``tradeops agent halt`` with the agent down: trip HALTED through the state machine."""
    who, why = str(params.who), str(params.reason)
    machine = StateMachine(root)
    trip = machine.trip(
        TradingState.HALTED, Reason.AGENT_DOWN, who, f"{why} (agent unreachable: {error})"
    )
    append_audit(
        machine.audit_path, "ansible", "halt", via="module-fallback", who=who, why=why,
        agent_error=str(error), after=trip.after.state.name,
    )  # fmt: skip
    record = read_state(default_path(root))
    if record.state is not TradingState.HALTED:
        return _fail(f"{default_path(root)} does not say HALTED after the fallback halt")
    warning = FALLBACK_WARNING.format(error=error, path=default_path(root))
    return {"transition": trip.as_dict(), "trading_state": record.as_dict(), "warnings": [warning]}


def run(params: KillswitchParams, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Read the state; bring it to ``params.state`` unless it is ``status``."""
    started = time.monotonic()
    if params.state not in STATES:
        return _fail(f"unknown state {params.state!r}: use one of {', '.join(STATES)}")
    code = Reason.parse(params.reason_code)
    if code is None:
        return _fail(f"unknown reason_code {params.reason_code!r}")
    root = Path(params.root)
    sock = Path(params.socket) if params.socket else root / DEFAULT_SOCKET
    client = AgentClient(socket_path=sock, timeout_s=params.timeout)
    try:
        seen = observe(client, root)
    except AgentError as exc:
        return _fail(f"cannot read the trading state from the agent at {sock}: {exc}")
    result: dict[str, Any] = {
        "changed": False,
        "state": seen.state.name,
        "previous_state": seen.state.name,
        "action": "none",
        "via": seen.via,
        "agent_reachable": seen.via == "agent",
        "agent": seen.agent,
        "agent_error": seen.agent_error,
        "trading_state": seen.detail,
        "liveness": liveness(root, params.liveness_max_age),
    }
    if params.state == "status" or TARGETS[params.state] is seen.state:
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
        return result
    target = TARGETS[params.state]
    who, why = (params.who or "").strip(), (params.reason or "").strip()
    cmd = _command(seen.state, target)
    if not who or not why:
        return _fail(
            f"{seen.state.name} -> {target.name} needs who and reason (every change is audited)",
            **result,
        )
    if seen.via != "agent" and cmd is not Command.HALT:
        return _fail(
            f"{cmd.value} goes through the agent only, and it did not answer "
            f"({seen.agent_error}): start it first",
            **result,
        )
    result.update(changed=True, action=cmd.value, state=target.name)
    if seen.via != "agent":
        result["via"] = "module-fallback"
    if diff:
        result["diff"] = _diff(seen.state, target, root)
    if check_mode:
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
        return result
    args: dict[str, Any] = {}
    if cmd is Command.RESET:
        args = {"target": target.name, "force": params.force, "scope": "host"}
    else:
        args = {"reason_code": code.value}
    try:
        if seen.via != "agent":
            raise AgentUnreachable(str(seen.agent_error))
        response = checked(client.request(cmd, args, who=who, reason=why))
    except AgentUnreachable as exc:
        if cmd is not Command.HALT:
            return _fail(f"{cmd.value}: {exc}; nothing changed", **{**result, "changed": False})
        result.update(via="module-fallback", agent_reachable=False, agent_error=str(exc))
        result.update(_fallback_halt(params, root, exc))
    except AgentRefused as exc:
        result.update(changed=False, action="none", state=seen.state.name)
        result.pop("diff", None)
        return _fail(f"{cmd.value} refused by the agent: {exc.response.error.text}", **result)  # type: ignore[union-attr]
    except (AgentError, ProtocolError) as exc:
        text = exc.text if isinstance(exc, ProtocolError) else str(exc)
        return _fail(f"{cmd.value}: {text}", **{**result, "changed": False})
    else:
        answer = response.result or {}
        after = dict(answer.get("after") or {})
        result.update(
            transition=answer,
            trading_state=after,
            state=str(after.get("state", target.name)),
            changed=bool(answer.get("changed", True)),
        )
    if result.get("failed"):
        return result
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
    return result


def check_config(path: str) -> str:
    """Load the agent config at ``path`` with the agent's loader; raise ``ConfigError``."""
    config = load_config(path)
    tcp = f", TCP {config.tcp.host}:{config.tcp.port}" if config.tcp else ""
    return f"{path}: a valid agent config (root {config.root}, socket {config.unix.path}{tcp})"


def main(argv: list[str] | None = None) -> int:
    """``python -m tradeops.modrun.killswitch --check-config PATH``: 0 valid, 2 refused."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--check-config":
        sys.stderr.write("usage: python -m tradeops.modrun.killswitch --check-config PATH\n")
        return 2
    try:
        sys.stdout.write(check_config(args[1]) + "\n")
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
