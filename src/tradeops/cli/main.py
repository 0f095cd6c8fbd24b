"""Entry point of the ``tradeops`` command.

Each sub-command lives in the module of the subsystem it drives and exposes
``register(subparsers)``; this file only wires them together, so that a
subsystem can be added without touching the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tradeops import __version__

# Sub-command name -> module exposing ``register(subparsers) -> None``.
# The order is the order of ``tradeops --help``.
SUBCOMMAND_MODULES: dict[str, str] = {
    "sim": "tradeops.sim.cli",
    "refapp": "tradeops.refapp.cli",
    "release": "tradeops.releases.cli",
    "reset": "tradeops.cli.trading_state",
    "status": "tradeops.cli.status",
    "fleet": "tradeops.testing.fleet_cli",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="tradeops",
        description="Safe releases, kill switches and rollback for automated trading hosts.",
    )
    parser.add_argument("--version", action="version", version=f"tradeops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A subsystem that has not landed yet is simply not offered.
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tradeops`` command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
