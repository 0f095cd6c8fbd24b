"""Entry point of the ``tradeops`` command.

Each sub-command lives in the module of the subsystem it drives and exposes
``register(subparsers)``; this file only wires them together, so that a
subsystem can be added without touching the others.

Every module in the table must import. One that does not makes every
invocation (``--help`` and ``--version`` too) fail with one line per broken
sub-command on stderr: an on-call ``tradeops`` that silently lost a command is
worse than one that refuses to start. The only exception is an *extra* (a
staging or test tool, not installed on production trading hosts) whose own
package is absent: it is not offered, and naming it says which extra to
install. ``TRADEOPS_DEBUG=1`` adds the tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from tradeops import __version__
from tradeops.cli.output import fail

DEBUG_ENV = "TRADEOPS_DEBUG"
EXIT_BROKEN = 1  # a listed sub-command cannot be imported
EXIT_NOT_INSTALLED = 2  # an extra's sub-command was asked for on a host without it


@dataclass(frozen=True)
class Subcommand:
    """A module exposing ``register(subparsers) -> None``, and whether it is optional.

    ``extra`` names the install extra that provides it (None: a core command,
    always installed). An extra may be absent as a whole: its package (the one
    holding ``module``) then does not exist. Anything else that stops its
    import is a broken install, as for a core command.
    """

    module: str
    extra: str | None = None
    hint: str | None = None  # what to do when the extra is absent (default: install it)

    @property
    def package(self) -> str:
        """The package whose absence means "extra not installed"."""
        return self.module.rpartition(".")[0]


# Sub-command name -> where it lives. The order is the order of ``tradeops --help``.
SUBCOMMANDS: dict[str, Subcommand] = {
    "sim": Subcommand("tradeops.sim.cli", extra="staging"),
    "refapp": Subcommand(
        "tradeops_refapp.cli",
        extra="strategy",
        hint="the reference strategy runs from its release: <tradeops_root>/current/bin/refapp",
    ),
    "agent": Subcommand("tradeops.agent.cli"),
    "release": Subcommand("tradeops.releases.cli"),
    "reset": Subcommand("tradeops.cli.trading_state"),
    "kill": Subcommand("tradeops.agent.killcli"),
    "fleet": Subcommand("tradeops.testing.fleet_cli", extra="staging"),
}


@dataclass(frozen=True)
class ImportProblem:
    """A listed sub-command whose module failed to import."""

    name: str
    spec: Subcommand
    error: BaseException

    def line(self) -> str:
        """One line for the operator: the sub-command, the module and the error."""
        kind = f"{self.spec.extra} extra " if self.spec.extra else ""
        return (
            f"the {kind}sub-command {self.name!r} is broken: cannot import {self.spec.module}: "
            f"{type(self.error).__name__}: {self.error}"
        )


class SubcommandImportError(RuntimeError):
    """One or more listed sub-commands cannot be imported (``problems`` says which)."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        super().__init__("; ".join(p.line() for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    """The imported sub-command modules, and the extras not installed on this host."""

    modules: dict[str, ModuleType]
    absent: dict[str, Subcommand]


def _extra_absent(spec: Subcommand, exc: ImportError) -> bool:
    """True when ``exc`` says the extra's own package is not installed (nothing deeper)."""
    return (
        spec.extra is not None and isinstance(exc, ModuleNotFoundError) and exc.name == spec.package
    )


def load_subcommands(table: Mapping[str, Subcommand] | None = None) -> Loaded:
    """Import every module of ``table`` (default ``SUBCOMMANDS``).

    Raises SubcommandImportError naming every module that failed, except an
    extra whose package is absent, which is returned in ``absent``.
    """
    table = SUBCOMMANDS if table is None else table
    modules: dict[str, ModuleType] = {}
    absent: dict[str, Subcommand] = {}
    problems: list[ImportProblem] = []
    for name, spec in table.items():
        try:
            modules[name] = importlib.import_module(spec.module)
        except ImportError as exc:
            if _extra_absent(spec, exc):
                absent[name] = spec
            else:
                problems.append(ImportProblem(name, spec, exc))
        except Exception as exc:  # a SyntaxError, or anything the module raises on import
            problems.append(ImportProblem(name, spec, exc))
    if problems:
        raise SubcommandImportError(problems)
    return Loaded(modules, absent)


def build_parser(loaded: Loaded | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every installed sub-command.

    Raises SubcommandImportError when a listed module cannot be imported.
    """
    loaded = load_subcommands() if loaded is None else loaded
    parser = argparse.ArgumentParser(
        prog="tradeops",
        description="Safe releases, kill switches and rollback for automated trading hosts.",
    )
    parser.add_argument("--version", action="version", version=f"tradeops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in loaded.modules.values():
        module.register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (top-level options take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _report(exc: SubcommandImportError) -> int:
    for problem in exc.problems:
        fail(problem.line())
        if os.environ.get(DEBUG_ENV):
            sys.stderr.write("".join(traceback.format_exception(problem.error)))
    if not os.environ.get(DEBUG_ENV):
        fail(f"(set {DEBUG_ENV}=1 for the traceback)")
    return EXIT_BROKEN


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tradeops`` command and return its exit status."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    try:
        loaded = load_subcommands()
    except SubcommandImportError as exc:
        return _report(exc)
    wanted = _command(args_in)
    if wanted in loaded.absent:
        spec = loaded.absent[wanted]
        hint = spec.hint or f"install tradeops-{spec.extra}"
        return fail(
            f"the {wanted!r} sub-command is a {spec.extra} extra, not installed on this host "
            f"({hint})",
            EXIT_NOT_INSTALLED,
        )
    parser = build_parser(loaded)
    args = parser.parse_args(args_in)
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
