"""``tradeops reset`` and ``tradeops trading-state``: the host trading state by hand.

A new host starts HALTED (fail closed) until an operator resets it, with an
identity and a reason; every change is appended to ``state/audit.jsonl``. The
kill-switch agent will own this file; these commands write it directly until
then, through the same atomic writer it will use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tradeops.auditlog import append_audit
from tradeops.cli.output import emit, fail
from tradeops.tradingstate import TradingState, default_path, read_state, write_state

DEFAULT_ROOT = "/srv/tradeops"


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    state_file = Path(args.state_file) if args.state_file else default_path(args.root)
    return state_file, Path(args.root) / "state" / "audit.jsonl"


def _cmd_reset(args: argparse.Namespace) -> int:
    if not args.who.strip() or not args.reason.strip():
        return fail("reset needs an operator (--who) and a reason (--reason)", 2)
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
