"""``tradeops fleet {up,down,status}``: drive the loopback SSH test fleet.

Also runnable as ``python -m tradeops.testing.fleet_cli up ...`` (molecule uses it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tradeops.cli.output import emit as _emit
from tradeops.cli.output import fail as _fail
from tradeops.testing.fleet import (
    DEFAULT_DATA_ROOT,
    DEFAULT_FIRST_ADDRESS,
    DEFAULT_NAME,
    DEFAULT_PORT,
    Fleet,
    FleetError,
    FleetUnavailable,
)

ENV_FLEET_DIR = "TRADEOPS_FLEET_DIR"


def repo_root() -> Path:
    """Return the source checkout holding this module, else the current directory."""
    here = Path(__file__).resolve()
    if here.parents[2].name == "src" and (here.parents[3] / "pyproject.toml").exists():
        return here.parents[3]
    return Path.cwd()


def default_state_dir(name: str) -> Path:
    """Return ``$TRADEOPS_FLEET_DIR/<name>`` or ``<repo>/.fleet/<name>``."""
    base = os.environ.get(ENV_FLEET_DIR)
    return (Path(base) if base else repo_root() / ".fleet") / name


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir) if args.state_dir else default_state_dir(args.name)


def _cmd_up(args: argparse.Namespace) -> int:
    fleet = Fleet(
        _state_dir(args),
        args.size,
        name=args.name,
        first_address=args.first_address,
        port=args.port,
        data_root=args.data_root,
        isolate_etc=not args.shared_etc,
    )
    try:
        fleet.up()
    except FleetUnavailable as exc:
        return _fail(str(exc), 2)
    except (FleetError, ValueError, OSError) as exc:
        return _fail(str(exc), 1)
    data = {
        "inventory": str(fleet.inventory_path),
        "state_dir": str(fleet.state_dir),
        "private_key": str(fleet.private_key_path),
        "known_hosts": str(fleet.known_hosts_path),
        "hosts": fleet.status(),
    }
    _emit(data, args.json, str(fleet.inventory_path))
    return 0


def _recorded(args: argparse.Namespace) -> Fleet | None:
    try:
        return Fleet.from_state(_state_dir(args))
    except FileNotFoundError:
        return None


def _cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    fleet = _recorded(args)
    if fleet is None and state_dir.exists():
        # No state file (interrupted up?): clean what the layout says is there.
        fleet = Fleet(state_dir, 0, name=args.name)
    if fleet is None:
        _emit({"state_dir": str(state_dir), "stopped": []}, args.json, "no fleet running")
        return 0
    names = [h.name for h in fleet.hosts]
    try:
        fleet.down(keep_data=args.keep_data)
    except (FleetError, OSError) as exc:
        return _fail(str(exc), 1)
    _emit({"state_dir": str(state_dir), "stopped": names}, args.json, f"fleet {fleet.name} down")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    fleet = _recorded(args)
    rows = fleet.status() if fleet is not None else []
    lines = [
        f"{r['name']:<16} {r['address']}:{r['port']:<6} pid={r['pid']} "
        f"{'up' if r['running'] and r['accepting'] else 'DOWN'}"
        for r in rows
    ]
    data = {
        "state_dir": str(_state_dir(args)),
        "inventory": str(fleet.inventory_path) if fleet else None,
        "hosts": rows,
    }
    _emit(data, args.json, "\n".join(lines) or "no fleet running")
    return 0 if all(r["running"] and r["accepting"] for r in rows) else 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=DEFAULT_NAME, help="fleet name (default: %(default)s)")
    parser.add_argument(
        "--state-dir",
        help=f"state directory (default: ${ENV_FLEET_DIR}/<name> or <repo>/.fleet/<name>)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_actions(parser: argparse.ArgumentParser) -> None:
    """Add the ``up``, ``down`` and ``status`` actions to ``parser``."""
    actions = parser.add_subparsers(dest="fleet_action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="start the fleet (idempotent) and write its inventory")
    _common(up)
    up.add_argument("--size", type=int, default=3, help="number of hosts (default: %(default)s)")
    up.add_argument("--first-address", default=DEFAULT_FIRST_ADDRESS, help="%(default)s")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="%(default)s")
    up.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="%(default)s")
    up.add_argument(
        "--shared-etc", action="store_true", help="do not give each host its own /etc copy"
    )
    up.set_defaults(handler=_cmd_up)

    down = actions.add_parser("down", help="stop every host process and remove the state")
    _common(down)
    down.add_argument("--keep-data", action="store_true", help="keep the per-host data dirs")
    down.set_defaults(handler=_cmd_down)

    status = actions.add_parser("status", help="show the hosts (exit 1 if one is down)")
    _common(status)
    status.set_defaults(handler=_cmd_status)


def register(subparsers: Any) -> None:
    """Add ``tradeops fleet`` to the top-level sub-commands."""
    parser = subparsers.add_parser(
        "fleet",
        help="loopback SSH test fleet (N sshd 'hosts' on this machine)",
        description="Start, stop and inspect the loopback SSH test fleet (needs root).",
    )
    add_actions(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m tradeops.testing.fleet_cli``."""
    parser = argparse.ArgumentParser(
        prog="python -m tradeops.testing.fleet_cli",
        description="Start, stop and inspect the loopback SSH test fleet (needs root).",
    )
    add_actions(parser)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
