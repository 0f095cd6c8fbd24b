"""``tradeops sim``: run the exchange simulator and drive it through its admin API."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from tradeops.cli.output import emit, fail
from tradeops.log import open_log
from tradeops.sim.admin import DEFAULT_ADMIN_URL, AdminClient, AdminError
from tradeops.sim.config import ConfigError, load_config


def _admin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-url",
        default=os.environ.get("TRADEOPS_SIM_ADMIN", DEFAULT_ADMIN_URL),
        help="admin API base URL (default $TRADEOPS_SIM_ADMIN or %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the response as JSON")


def register(subparsers: Any) -> None:
    """Add ``sim`` and its sub-commands to the ``tradeops`` parser."""
    sim = subparsers.add_parser(
        "sim",
        help="FIX 4.4 exchange simulator",
        description="FIX 4.4 exchange simulator: run it, inject faults, flip kill switches.",
    )
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    sim.set_defaults(handler=lambda args: _usage(sim))

    run = sub.add_parser("run", help="run the simulator in the foreground")
    run.add_argument("--config", help="YAML or JSON config (default: the shipped default.yml)")
    run.add_argument("--host", help="address every listener binds (default from config)")
    run.add_argument("--port-base", type=int, help="first session port; 0 = any free ports")
    run.add_argument("--admin-port", type=int, help="admin API port; 0 = any free port")
    run.add_argument("--seed", type=int, help="seed of the price processes and faults")
    run.add_argument("--store-dir", help="directory of the FIX journals (sequence numbers)")
    run.add_argument("--log-file", help="append JSON event lines here (default: stderr)")
    run.set_defaults(handler=_run)

    fault = sub.add_parser("fault", help="inject or clear a fault")
    fsub = fault.add_subparsers(dest="fault_kind", metavar="KIND")
    fault.set_defaults(handler=lambda args: _usage(fault))

    p = fsub.add_parser("latency", help="delay outbound messages")
    p.add_argument("--ms", type=float, required=True, help="added latency in milliseconds")
    p.add_argument("--session", help="one session (default: all)")
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("ms", "session"))

    p = fsub.add_parser("reject", help="reject new orders with a probability")
    p.add_argument("--probability", type=float, required=True, help="0..1")
    p.add_argument("--account", help="one account (default: all)")
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("probability", "account"))

    p = fsub.add_parser("drop", help="disconnect a session now")
    p.add_argument("--session", required=True)
    p.add_argument("--logout", action="store_true", help="send a Logout first")
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("session", "logout"))

    p = fsub.add_parser("refuse", help="refuse a session's logons until cleared")
    p.add_argument("--session", required=True)
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("session",))

    p = fsub.add_parser("stall", help="stop market data until cleared")
    p.add_argument("--symbol", help="one symbol (default: all)")
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("symbol",))

    p = fsub.add_parser("jump", help="move a symbol's price now")
    p.add_argument("--symbol", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pct", type=float, help="percent of the mid (e.g. -5)")
    g.add_argument("--abs", type=float, help="absolute price change")
    _admin_args(p)
    p.set_defaults(handler=_fault, params=("symbol", "pct", "abs"))

    p = fsub.add_parser("clear", help="clear faults (all, or one kind / target)")
    p.add_argument("--kind", choices=["latency", "reject", "refuse", "stall"])
    p.add_argument("--target", help="session, account or symbol the fault was set for")
    _admin_args(p)
    p.set_defaults(handler=_fault_clear)

    ks = sub.add_parser("kill-switch", help="turn an account's exchange kill switch on or off")
    ks.add_argument("state", choices=["on", "off"])
    ks.add_argument("--account", required=True)
    _admin_args(ks)
    ks.set_defaults(handler=_kill_switch)

    st = sub.add_parser("state", help="show orders, positions, sessions and sequence numbers")
    _admin_args(st)
    st.set_defaults(handler=_state)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(
            args.config,
            host=args.host,
            port_base=args.port_base,
            admin_port=args.admin_port,
            seed=args.seed,
            store_dir=args.store_dir,
        )
    except ConfigError as exc:
        return fail(f"sim config: {exc}")
    from tradeops.sim.server import run_forever

    log = open_log("sim", args.log_file)
    try:
        return asyncio.run(run_forever(cfg, log))
    except OSError as exc:
        return fail(f"sim: cannot start: {exc}")


def _client(args: argparse.Namespace) -> AdminClient:
    return AdminClient(args.admin_url)


def _fault(args: argparse.Namespace) -> int:
    params = {name: getattr(args, name) for name in args.params}
    if params.get("logout") is False:
        params.pop("logout")
    try:
        result = _client(args).fault(args.fault_kind, **params)
    except AdminError as exc:
        return fail(str(exc))
    detail = ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("ok", "fault", "ticks"))
    emit(result, args.json, f"fault {args.fault_kind} set: {detail}")
    return 0


def _fault_clear(args: argparse.Namespace) -> int:
    body = {"kind": args.kind, "target": args.target}
    try:
        result = _client(args).post("/faults/clear", {k: v for k, v in body.items() if v})
    except AdminError as exc:
        return fail(str(exc))
    cleared = ", ".join(result.get("cleared", [])) or "nothing"
    emit(result, args.json, f"cleared: {cleared}")
    return 0


def _kill_switch(args: argparse.Namespace) -> int:
    try:
        result = _client(args).kill_switch(args.account, args.state == "on")
    except AdminError as exc:
        return fail(str(exc))
    emit(
        result,
        args.json,
        f"kill switch {args.state} for {args.account}"
        + (f" ({result.get('cancelled', 0)} orders cancelled)" if args.state == "on" else ""),
    )
    return 0


def _state(args: argparse.Namespace) -> int:
    try:
        state = _client(args).state()
    except AdminError as exc:
        return fail(str(exc))
    lines = [f"simulator pid {state.get('pid')} run {state.get('run_tag')}"]
    for s in state.get("sessions", []):
        lines.append(
            f"  {s['name']:<12} {s['role']:<12} port {s['port']:<6}"
            f" {'logged on' if s['logged_on'] else s['state'].lower():<26}"
            f" seq in {s['next_seq_in']} out {s['next_seq_out']}"
        )
    lines.append(f"working orders: {len(state.get('orders', []))}")
    for p in state.get("positions", []):
        lines.append(
            f"  {p['account']} {p['symbol']}: qty {p['qty']} avg {p['avg_px']}"
            f" realized {p['realized_pnl']} unrealized {p['unrealized_pnl']}"
        )
    ks = ", ".join(f"{a}={'ON' if on else 'off'}" for a, on in state.get("kill_switch", {}).items())
    lines.append(f"kill switch: {ks}")
    faults = state.get("faults", {})
    active = {k: v for k, v in faults.items() if v}
    lines.append(f"faults: {active or 'none'}")
    emit(state, args.json, "\n".join(lines))
    return 0
