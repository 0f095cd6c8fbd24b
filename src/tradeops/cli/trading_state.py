"""``tradeops reset`` and ``tradeops trading-state``: the host trading state by hand.

A new host starts HALTED (fail closed) until an operator resets it, with an
identity and a reason; every change is appended to ``state/audit.jsonl``.

Where the kill-switch agent is installed (its socket ``<root>/run/agent.sock``
exists), it owns the state: ``tradeops reset`` goes through it, so that a
reset is refused while a breaker's condition still holds and the agent's own
state never disagrees with the file. If that agent does not answer, the reset
is refused (exit 3): it never goes around the agent. A halt, the other way,
always works (``tradeops agent halt`` writes the file itself when the agent is
down). On a host without an agent, the reset writes the file directly, through
the same writer the agent uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tradeops.agent.client import AgentClient, AgentError, AgentRefused
from tradeops.agent.protocol import Command
from tradeops.auditlog import append_audit
from tradeops.cli.output import emit, fail
from tradeops.tradingstate import TradingState, default_path, read_state, write_state

DEFAULT_ROOT = "/srv/tradeops"
AGENT_SOCKET = "run/agent.sock"
EXIT_AGENT_DOWN = 3


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    state_file = Path(args.state_file) if args.state_file else default_path(args.root)
    return state_file, Path(args.root) / "state" / "audit.jsonl"


def _reset_through_agent(args: argparse.Namespace, socket_path: Path) -> int:
    client = AgentClient(socket_path=socket_path)
    try:
        response = client.request(
            Command.RESET,
            {"target": args.to, "force": args.force},
            who=args.who,
            reason=args.reason,
        )
    except AgentError as exc:
        return fail(
            f"the kill-switch agent owns the trading state on this host ({socket_path}) and"
            f" did not answer: {exc}. Start it (tradeops agent run), then reset again: a reset"
            " never goes around the agent.",
            EXIT_AGENT_DOWN,
        )
    if response.error is not None:
        return fail(str(AgentRefused(response)), 1)
    result = dict(response.result or {})
    after = result.get("after", {})
    human = f"{after.get('state', args.to)} by {args.who}, through the agent: {args.reason}"
    for line in result.get("not_reset", []):
        human += f"\n  not reset: {line}"
    emit({**result, "via": "agent", "socket": str(socket_path)}, args.json, human)
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    if not args.who.strip() or not args.reason.strip():
        return fail("reset needs an operator (--who) and a reason (--reason)", 2)
    socket_path = Path(args.root) / AGENT_SOCKET
    if socket_path.is_socket():
        return _reset_through_agent(args, socket_path)
    if args.force:
        return fail("--force overrides a breaker of the kill-switch agent; none runs here", 2)
    state_file, audit_path = _paths(args)
    before = read_state(state_file)
    record = write_state(state_file, args.to, reason=args.reason, who=args.who)
    append_audit(
        audit_path,
        "trading-state",
        "reset",
        who=args.who,
        reason=args.reason,
        before=before.state.name,
        after=record.state.name,
        generation=record.generation,
    )
    data = {"before": before.as_dict(), "after": record.as_dict(), "path": str(state_file)}
    human = f"{before.state.name} -> {record.state.name} by {args.who}: {args.reason}"
    emit(data, args.json, human)
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    state_file, audit_path = _paths(args)
    if state_file.exists():
        emit({"path": str(state_file), "changed": False}, args.json, f"{state_file} exists")
        return 0
    record = write_state(state_file, TradingState.HALTED, reason=args.reason, who=args.who)
    append_audit(
        audit_path,
        "trading-state",
        "init",
        who=args.who,
        reason=args.reason,
        after=record.state.name,
    )
    emit({"path": str(state_file), "changed": True}, args.json, f"{state_file}: HALTED")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    state_file, _audit_path = _paths(args)
    record = read_state(state_file)
    emit(record.as_dict(), args.json, f"{record.state.name} ({state_file})")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=DEFAULT_ROOT, help="tradeops_root (%(default)s)")
    parser.add_argument("--state-file", help="trading-state file (default: <root>/state/...)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def register(subparsers: Any) -> None:
    """Add ``tradeops reset`` and ``tradeops trading-state``."""
    reset = subparsers.add_parser(
        "reset", help="lift HALTED or REDUCING: an authorised reset with who and why"
    )
    _common(reset)
    reset.add_argument("--who", required=True, help="operator identity")
    reset.add_argument("--reason", required=True, help="why trading may resume")
    reset.add_argument(
        "--to", default="ACTIVE", choices=["ACTIVE", "REDUCING"], help="state to reset to"
    )
    reset.add_argument(
        "--force",
        action="store_true",
        help="reset although a breaker's condition still holds (audited as forced)",
    )
    reset.set_defaults(handler=_cmd_reset)

    state = subparsers.add_parser("trading-state", help="show or initialise the trading state")
    sub = state.add_subparsers(dest="trading_state_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the host's trading state")
    _common(show)
    show.set_defaults(handler=_cmd_show)
    init = sub.add_parser("init", help="create the state file as HALTED when it is missing")
    _common(init)
    init.add_argument("--who", default="host role", help="recorded author")
    init.add_argument("--reason", default="new host", help="recorded reason")
    init.set_defaults(handler=_cmd_init)
