"""``tradeops refapp``: run the reference strategy and talk to a running one."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tradeops.cli.output import emit, fail
from tradeops_refapp import config as refconfig

DEFAULT_URL = "http://127.0.0.1:8480"


def register(subparsers: Any) -> None:
    """Add ``refapp`` and its sub-commands."""
    parser = subparsers.add_parser(
        "refapp",
        help="the reference market-making strategy",
        description="Run the reference strategy, or query and switch a running one.",
    )
    sub = parser.add_subparsers(dest="refapp_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 2)[1])

    run = sub.add_parser("run", help="run the strategy in the foreground")
    run.add_argument("--config", required=True, help="path of refapp.yml")
    run.add_argument(
        "--standby", action="store_true", help="connect and sync but do not trade until activated"
    )
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("--config", required=True, help="path of refapp.yml")
    check.add_argument("--json", action="store_true", help="print the effective config as JSON")
    check.set_defaults(handler=_check_config)

    init = sub.add_parser("init-config", help="write a default refapp.yml")
    init.add_argument("--output", "-o", help="file to write (default: stdout)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_init_config)

    status = sub.add_parser("status", help="show a running refapp's /status")
    status.add_argument("--url", default=DEFAULT_URL, help=f"base URL (default {DEFAULT_URL})")
    status.add_argument("--json", action="store_true", help="print the JSON document")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    status.set_defaults(handler=_status)

    for name, text in (
        ("activate", "start trading (leave standby)"),
        ("standby", "stop trading, cancel working orders, stay connected"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--url", default=DEFAULT_URL, help=f"base URL (default {DEFAULT_URL})")
        p.add_argument("--json", action="store_true", help="print the JSON answer")
        p.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
        if name == "activate":
            p.add_argument("--force", action="store_true", help="activate even if not ready")
        p.set_defaults(handler=_control, action=name)


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = refconfig.load(args.config)
    except refconfig.ConfigError as exc:
        return fail(f"config error: {exc}", 2)
    from tradeops_refapp.app import run

    return run(cfg, standby=args.standby)


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = refconfig.load(args.config)
    except refconfig.ConfigError as exc:
        return fail(f"config error: {exc}", 2)
    emit(cfg.raw | {"path": cfg.path}, args.json, f"{cfg.path}: ok")
    return 0


def _init_config(args: argparse.Namespace) -> int:
    text = refconfig.DEFAULT_CONFIG_TEXT
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if path.exists() and not args.force:
        return fail(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    sys.stdout.write(f"wrote {path}\n")
    return 0


def http_call(
    url: str, method: str = "GET", timeout: float = 5.0
) -> tuple[int, dict[str, Any] | str]:
    """Call a refapp endpoint; return the status and the decoded body."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http URL: {url}")
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked
            code, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        code, raw = exc.code, exc.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        return code, json.loads(text)
    except ValueError:
        return code, text


def _status(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/status"
    try:
        code, body = http_call(url, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        return fail(f"cannot reach {url}: {exc}")
    if code != 200 or not isinstance(body, dict):
        return fail(f"{url} answered {code}: {body}")
    positions = ", ".join(f"{s} {p['qty']}" for s, p in body.get("positions", {}).items())
    state = (body.get("trading_state") or {}).get("state")
    human = (
        f"{body.get('instance')} {body.get('version')} release {body.get('release_id')}"
        f" pid {body.get('pid')}\n"
        f"mode {body.get('mode')}, ready {body.get('ready')}, host trading state {state}\n"
        f"positions: {positions or '-'}\n"
        f"working orders: {len(body.get('working_orders', []))}, fills: {body.get('fills')}"
    )
    emit(body, args.json, human)
    return 0


def _control(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/" + args.action
    if getattr(args, "force", False):
        url += "?force=1"
    try:
        code, body = http_call(url, "POST", timeout=args.timeout)
    except (OSError, ValueError) as exc:
        return fail(f"cannot reach {url}: {exc}")
    if code != 200 or not isinstance(body, dict):
        return fail(f"{args.action} refused ({code}): {json.dumps(body, default=str)}")
    human = f"mode {body.get('mode')}" + (" (unchanged)" if not body.get("changed") else "")
    emit(body, args.json, human)
    return 0
