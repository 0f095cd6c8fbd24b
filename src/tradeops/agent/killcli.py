"""``tradeops kill``: halt (or reduce, or ask the status of) every host's agent at once.

The on-call command (docs/fleet-kill.md)::

    tradeops kill --inventory /etc/tradeops/kill.yml --who alice --reason "runaway orders"

Exit status: 0 only if every host confirmed (halt and status: HALTED;
reduce: REDUCING or HALTED); 1 if any host did not; 2 for a usage or
inventory error. ``--serve`` keeps the connections warm and reads one command
per line on stdin (``halt <reason>``, ``reduce <reason>``, ``status``),
answering each with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tradeops.agent.fleetkill import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    FAN_OUT,
    MAX_RETRIES,
    FleetResult,
    Order,
    fan_out_tcp,
    prepare_tcp,
)
from tradeops.agent.killinventory import InventoryError, KillHost, load_inventory
from tradeops.agent.protocol import Command
from tradeops.cli.output import emit, fail

EXIT_NOT_CONFIRMED = 1
EXIT_USAGE = 2
MAX_SERVE_COMMANDS = 100_000


def human(result: FleetResult) -> str:
    """One line per host, then the verdict."""
    width = max((len(h.host) for h in result.hosts), default=4)
    lines = []
    for h in result.hosts:
        mark = "ok " if h.confirmed else "NOT"
        state = h.state or "-"
        extra = f"  {h.error}" if h.error else ""
        via = f"  (via {h.via})" if h.via != "agent" else ""
        lines.append(f"{mark} {h.host:<{width}}  {state:<8}  {h.ms:8.1f} ms{via}{extra}")
    good = sum(h.confirmed for h in result.hosts)
    want = " or ".join(sorted(result.order.expect))
    verdict = "CONFIRMED" if result.confirmed else "NOT CONFIRMED"
    lines.append(
        f"{result.order.cmd.value} over {result.transport}: {good}/{len(result.hosts)} hosts "
        f"{want}, {verdict} ({result.total_ms:.1f} ms)"
    )
    return "\n".join(lines)


Runner = Callable[[Order], FleetResult]


class TcpRunner:
    """The TCP fan-out on one event loop, keys read once (before any clock starts)."""

    def __init__(self, hosts: list[KillHost], timeout: float, retries: int) -> None:
        self.targets = prepare_tcp(hosts)
        self.timeout, self.retries = timeout, retries
        self.loop = asyncio.new_event_loop()

    def __call__(self, order: Order) -> FleetResult:
        """Send ``order`` to every host; wait for all."""
        coro = fan_out_tcp(self.targets, order, self.timeout, self.retries)
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the event loop."""
        self.loop.close()


def _serve(runner: Runner, args: argparse.Namespace, stdin: TextIO) -> int:
    """Answer one command per stdin line with one JSON line; exit with the last verdict."""
    status = 0
    for _unused in range(MAX_SERVE_COMMANDS):
        line = stdin.readline()
        if not line:
            break
        words = line.strip().split(maxsplit=1)
        if not words:
            continue
        try:
            order = Order.of(words[0], args.who, words[1] if len(words) > 1 else "")
        except ValueError as exc:
            sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
            sys.stdout.flush()
            continue
        result = runner(order)
        status = 0 if result.confirmed else EXIT_NOT_CONFIRMED
        sys.stdout.write(json.dumps(result.as_dict(), sort_keys=True) + "\n")
        sys.stdout.flush()
    return status


def _cmd_kill(args: argparse.Namespace) -> int:
    cmd = Command(args.action)
    if not args.serve:
        if cmd is not Command.STATUS and not args.who:
            return fail(f"{cmd.value} needs --who (the operator's identity)", EXIT_USAGE)
        try:
            order = Order.of(cmd, args.who or "cli", args.reason or "")
        except ValueError as exc:
            return fail(f"{exc} (--reason)", EXIT_USAGE)
    elif not args.who:
        return fail("--serve needs --who (the operator's identity)", EXIT_USAGE)
    if not 0 < args.timeout <= 60:
        return fail("--timeout must be between 0 and 60 seconds", EXIT_USAGE)
    if not 0 <= args.retries <= MAX_RETRIES:
        return fail(f"--retries must be between 0 and {MAX_RETRIES}", EXIT_USAGE)
    try:
        hosts = load_inventory(args.inventory)
    except InventoryError as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.host:
        wanted = set(args.host)
        unknown = sorted(wanted - {h.name for h in hosts})
        if unknown:
            return fail(f"not in the inventory: {', '.join(unknown)}", EXIT_USAGE)
        hosts = [h for h in hosts if h.name in wanted]

    if args.transport == "tcp":
        tcp = TcpRunner(hosts, args.timeout, args.retries)
        runner: Runner = tcp
        closer: Callable[[], None] = tcp.close
    else:
        from tradeops.agent.sshpool import SshPool, SshUnavailable

        try:
            pool = SshPool(hosts, mode=args.ssh_mode)
        except (SshUnavailable, ValueError) as exc:
            return fail(str(exc), EXIT_USAGE)
        pool.connect()  # a host that failed is retried (bounded) by run, and reported there

        def runner(order: Order) -> FleetResult:
            return pool.run(order, args.timeout, args.retries)

        closer = pool.close
    try:
        if args.serve:
            return _serve(runner, args, sys.stdin)
        result = runner(order)
    finally:
        closer()
    emit(result.as_dict(), args.json, human(result))
    return 0 if result.confirmed else EXIT_NOT_CONFIRMED


def register(subparsers: Any) -> None:
    """Add ``tradeops kill``."""
    p = subparsers.add_parser(
        "kill",
        help="halt every host's agent at once (signed TCP or warm SSH; no Ansible)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action", nargs="?", default="halt", choices=sorted(c.value for c in FAN_OUT),
        help="what to send (%(default)s)",
    )  # fmt: skip
    p.add_argument("--inventory", "-i", required=True, help="the kill inventory (YAML or JSON)")
    p.add_argument("--who", help="operator identity (required for halt and reduce)")
    p.add_argument("--reason", help="why (required for halt and reduce)")
    p.add_argument("--transport", choices=["tcp", "ssh"], default="tcp", help="%(default)s")
    p.add_argument(
        "--ssh-mode",
        choices=["relay", "exec"],
        default="relay",
        help="ssh: a warm relay per host, or the host's CLI per command (%(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds per host, all attempts included (%(default)s)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="more attempts after a transport failure (%(default)s)",
    )
    p.add_argument("--host", action="append", help="only this host (repeatable)")
    p.add_argument(
        "--serve",
        action="store_true",
        help="keep connections warm; read commands from stdin, one per line",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_kill)
