"""``tradeops agent``: run the kill-switch agent, command it, make keys.

``tradeops agent halt`` works with the agent dead: when no agent answers on
the local socket, it trips the state itself through the same state machine
(audited ``via: cli-fallback``), says so on stderr, and exits 0 only if the
trading-state file now says HALTED. ``reset`` goes through the agent only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tradeops.agent.auth import KeyFileError, SigningKey, generate_key
from tradeops.agent.client import AgentClient, AgentError, AgentUnreachable
from tradeops.agent.config import DEFAULT_SOCKET, ConfigError, load_config
from tradeops.agent.protocol import Command, ProtocolError, Response
from tradeops.agent.reasons import Reason
from tradeops.agent.state import StateMachine
from tradeops.auditlog import append_audit
from tradeops.cli.output import emit, fail
from tradeops.tradingstate import TradingState, default_path, read_state

DEFAULT_ROOT = "/srv/tradeops"
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def _client(args: argparse.Namespace) -> AgentClient:
    if args.tcp:
        if not (args.key_id and args.key_file):
            raise ValueError("--tcp needs --key-id and --key-file")
        host, _unused, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--tcp takes HOST:PORT, got {args.tcp!r}")
        key = SigningKey.load(args.key_id, args.key_file)
        return AgentClient(tcp=(host.strip("[]"), int(port)), key=key, timeout_s=args.timeout)
    path = Path(args.socket) if args.socket else Path(args.root) / DEFAULT_SOCKET
    return AgentClient(socket_path=path, timeout_s=args.timeout)


def _human(cmd: str, response: Response) -> str:
    result = response.result or {}
    state = result.get("after") or result.get("state")
    if isinstance(state, dict) and "state" in state:
        reasons = ", ".join(state.get("reasons", [])) or "-"
        return f"{cmd}: {state['state']} (reasons: {reasons}; by {state.get('who', '?')})"
    return f"{cmd}: ok {result}"


def _fallback_halt(args: argparse.Namespace, error: AgentError) -> int:
    """Trip HALTED through the state machine ourselves; exit 0 only if the file says HALTED."""
    root = Path(args.root)
    sys.stderr.write(
        f"tradeops: WARNING: THE AGENT DID NOT ANSWER ({error}).\n"
        f"tradeops: WARNING: WRITING HALTED TO {default_path(root)} DIRECTLY (cli-fallback).\n"
        "tradeops: WARNING: nothing was cancelled or flattened: restart the agent.\n"
    )
    why = f"{args.reason} (agent unreachable: {error})"
    try:
        machine = StateMachine(root)
        trip = machine.trip(TradingState.HALTED, Reason.AGENT_DOWN, args.who, why)
        append_audit(
            machine.audit_path, "cli", "halt", via="cli-fallback", who=args.who, why=args.reason,
            agent_error=str(error), after=trip.after.state.name,
        )  # fmt: skip
    except OSError as exc:
        return fail(f"the fallback halt failed: {exc}", EXIT_UNREACHABLE)
    record = read_state(default_path(root))
    data = {"ok": record.state is TradingState.HALTED, "via": "cli-fallback",
            "state": record.as_dict(), "agent_error": str(error)}  # fmt: skip
    emit(data, args.json, f"halt: {record.state.name} (written by the CLI, not the agent)")
    if record.state is not TradingState.HALTED:
        return fail(f"{default_path(root)} does not say HALTED after the fallback", EXIT_REFUSED)
    return 0


def _cmd_command(args: argparse.Namespace) -> int:
    cmd = Command(args.agent_command)
    cmd_args: dict[str, Any] = {}
    if cmd in (Command.HALT, Command.REDUCE):
        cmd_args["reason_code"] = args.reason_code
    if cmd is Command.RESET:
        cmd_args = {"target": args.to, "force": args.force, "scope": args.scope}
    try:
        client = _client(args)
    except (ValueError, KeyFileError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        response = client.request(cmd, cmd_args, who=args.who, reason=args.reason or "")
    except ProtocolError as exc:
        return fail(f"{cmd.value}: {exc.text}", EXIT_USAGE)
    except AgentUnreachable as exc:
        if cmd is Command.HALT and client.socket_path is not None:
            return _fallback_halt(args, exc)
        extra = (
            " (reset goes through the agent only: start it first)" if cmd is Command.RESET else ""
        )
        return fail(f"{exc}{extra}", EXIT_UNREACHABLE)
    except AgentError as exc:
        return fail(str(exc), EXIT_REFUSED)
    data = {**response.as_dict(), "via": "agent", "agent": client.where}
    if response.error is not None:
        if args.json:
            emit(data, True)
        return fail(f"{cmd.value} refused: {response.error.code.value}: {response.error.text}")
    emit(data, args.json, _human(cmd.value, response))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tradeops.agent.assembly import run
    from tradeops.agent.server import StartupError

    try:
        config = load_config(args.config)
        return run(config)
    except (ConfigError, KeyFileError, StartupError) as exc:
        return fail(str(exc), EXIT_USAGE)


def _cmd_keygen(args: argparse.Namespace) -> int:
    try:
        path = generate_key(args.path)
    except (KeyFileError, OSError) as exc:
        return fail(str(exc), EXIT_REFUSED)
    emit({"path": str(path), "mode": "0600"}, args.json, f"wrote a new key to {path} (mode 0600)")
    return 0


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=DEFAULT_ROOT, help="tradeops_root (%(default)s)")
    parser.add_argument("--socket", help="the agent's Unix socket (default <root>/run/agent.sock)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="the agent's TCP listener")
    parser.add_argument("--key-id", help="key id for --tcp")
    parser.add_argument("--key-file", help="key file (mode 0600) for --tcp")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (%(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")


HELP = {
    Command.HALT: "trip to HALTED (falls back to the state file if the agent is down)",
    Command.REDUCE: "trip to REDUCING (only risk-reducing orders)",
    Command.RESET: "lift HALTED or REDUCING (through the agent only)",
    Command.STATUS: "show the agent's state",
    Command.CANCEL_ALL: "cancel every working order on the risk session",
    Command.FLATTEN: "flatten every position on the risk session",
}


def register(subparsers: Any) -> None:
    """Add ``tradeops agent``."""
    agent = subparsers.add_parser("agent", help="the kill-switch agent: run it, command it")
    sub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="run the agent in the foreground")
    run.add_argument("--config", required=True, help="the agent's config (YAML or JSON)")
    run.set_defaults(handler=_cmd_run)

    for cmd, text in HELP.items():
        p = sub.add_parser(cmd.value, help=text)
        _target(p)
        status = cmd is Command.STATUS
        p.add_argument("--who", required=not status, default="cli", help="operator identity")
        p.add_argument("--reason", required=not status, help="why")
        if cmd in (Command.HALT, Command.REDUCE):
            p.add_argument("--reason-code", default=Reason.MANUAL.value,
                           choices=[r.value for r in Reason], help="%(default)s")  # fmt: skip
        if cmd is Command.RESET:
            p.add_argument("--to", default="ACTIVE", choices=["ACTIVE", "REDUCING"])
            p.add_argument("--force", action="store_true", help="reset while a condition holds")
            p.add_argument("--scope", default="host", choices=["host", "fleet"])
        p.set_defaults(handler=_cmd_command)

    keygen = sub.add_parser("keygen", help="write a new signing key (mode 0600)")
    keygen.add_argument("path", help="where to write it (never overwritten)")
    keygen.add_argument("--json", action="store_true", help="print JSON")
    keygen.set_defaults(handler=_cmd_keygen)
