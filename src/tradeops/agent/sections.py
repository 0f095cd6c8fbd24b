"""The agent config's assembly sections: risk, drop copy, market data, breakers, enforcement.

Every section is optional (a config without them runs the bare agent: state,
listeners, liveness). Parsed as strictly as the rest of ``config.py``: unknown
keys, wrong types and out-of-range values are ``ConfigError`` naming the key.
See ``docs/agent.md`` for an example of each.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tradeops.agent.breakerconfig import BreakersConfig, breakers_config_from_dict
from tradeops.agent.breakerconfig import ConfigError as BreakerConfigError
from tradeops.agent.config import (
    ConfigError,
    _int,
    _listen,
    _number,
    _path,
    _section,
)


class OnHalt(enum.StrEnum):
    """What a halt does to the strategy processes (after freezing them)."""

    STOP = "stop"  # ask the manager to stop it; SIGKILL after kill_after_s
    PAUSE = "pause"  # leave it frozen (SIGSTOP) for an operator to look at
    NONE = "none"  # do not touch the processes at all


MANAGERS = ("supervisord", "systemd", "pidfile")


@dataclass(frozen=True, slots=True)
class FixConfig:
    """One FIX initiator session of the agent (risk or drop copy)."""

    host: str
    port: int
    sender_comp_id: str
    target_comp_id: str
    account: str
    heartbeat_s: int = 30
    reconnect_s: float = 1.0
    store_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The risk session and its cancel / flatten policy."""

    fix: FixConfig
    connect_timeout_s: float = 5.0
    cancel_timeout_s: float = 5.0
    mass_cancel: bool = True
    per_order_rounds: int = 3
    flatten_timeout_s: float = 15.0
    collar_ticks: int = 10
    default_tick: Decimal = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ProcessConfig:
    """A strategy program whose pid its manager gives."""

    program: str
    manager: str
    pidfile: Path | None = None  # manager ``pidfile`` only


@dataclass(frozen=True, slots=True)
class EnforcementConfig:
    """What a halt does to the strategy processes and positions."""

    processes: tuple[ProcessConfig, ...] = ()
    on_halt: OnHalt = OnHalt.STOP
    kill_after_s: float = 5.0
    flatten_on_halt: bool = False


@dataclass(frozen=True, slots=True)
class Sections:
    """Every assembly section; ``None`` where not configured."""

    risk: RiskConfig | None = None
    drop_copy: FixConfig | None = None
    market_data: tuple[str, ...] = ()
    breakers: BreakersConfig | None = None
    error_log: Path | None = None
    enforcement: EnforcementConfig = field(default_factory=EnforcementConfig)
    metrics_listen: tuple[str, int] | None = None
    notify_urls_file: Path | None = None
    notify_timeout_s: float = 5.0


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


FIX_KEYS = {"host", "port", "sender_comp_id", "target_comp_id", "account", "heartbeat_s"}
FIX_KEYS |= {"reconnect_s", "store_dir"}
FIX_REQUIRED = {"host", "port", "sender_comp_id", "target_comp_id", "account"}


def _fix(d: dict[str, Any], where: str) -> FixConfig:
    if not isinstance(d["host"], str):
        raise ConfigError(f"{where}.host must be an IP address, got {d['host']!r}")
    host, _port = _listen(f"{d['host']}:1", f"{where}.host")
    return FixConfig(
        host=host,
        port=_int(d["port"], f"{where}.port", 1, 65535),
        sender_comp_id=_str(d["sender_comp_id"], f"{where}.sender_comp_id"),
        target_comp_id=_str(d["target_comp_id"], f"{where}.target_comp_id"),
        account=_str(d["account"], f"{where}.account"),
        heartbeat_s=_int(d.get("heartbeat_s", 30), f"{where}.heartbeat_s", 1, 3600),
        reconnect_s=_number(d.get("reconnect_s", 1.0), f"{where}.reconnect_s", 0.05, 600),
        store_dir=_path(d["store_dir"], f"{where}.store_dir") if "store_dir" in d else None,
    )


RISK_POLICY = {"connect_timeout_s", "cancel_timeout_s", "mass_cancel", "per_order_rounds"}
RISK_POLICY |= {"flatten_timeout_s", "collar_ticks", "default_tick"}


def _risk(data: object, where: str) -> RiskConfig:
    d = _section(data, where, FIX_KEYS | RISK_POLICY, FIX_REQUIRED)
    try:
        tick = Decimal(str(d.get("default_tick", "0.01")))
    except InvalidOperation:
        raise ConfigError(f"{where}.default_tick is not a number") from None
    if not tick.is_finite() or tick <= 0:
        raise ConfigError(f"{where}.default_tick must be above 0, got {tick}")
    return RiskConfig(
        fix=_fix(d, where),
        connect_timeout_s=_number(
            d.get("connect_timeout_s", 5.0), f"{where}.connect_timeout_s", 0.1, 120
        ),
        cancel_timeout_s=_number(
            d.get("cancel_timeout_s", 5.0), f"{where}.cancel_timeout_s", 0.1, 300
        ),
        mass_cancel=_bool(d.get("mass_cancel", True), f"{where}.mass_cancel"),
        per_order_rounds=_int(d.get("per_order_rounds", 3), f"{where}.per_order_rounds", 0, 20),
        flatten_timeout_s=_number(
            d.get("flatten_timeout_s", 15.0), f"{where}.flatten_timeout_s", 0.5, 600
        ),
        collar_ticks=_int(d.get("collar_ticks", 10), f"{where}.collar_ticks", 0, 100_000),
        default_tick=tick,
    )


def _breakers(data: object, where: str) -> tuple[BreakersConfig, Path | None]:
    d = _section(data, where, {"file", "config", "error_log"})
    if ("file" in d) == ("config" in d):
        raise ConfigError(f"{where}: give exactly one of file (a path) or config (inline)")
    try:
        if "file" in d:
            from tradeops.agent.breakerconfig import load_breakers_config

            config = load_breakers_config(_path(d["file"], f"{where}.file"))
        else:
            config = breakers_config_from_dict(d["config"])
    except BreakerConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    error_log = _path(d["error_log"], f"{where}.error_log") if "error_log" in d else None
    if config.error_burst.enabled and error_log is None:
        raise ConfigError(
            f"{where}: error_burst is enabled but no error_log is set: set {where}.error_log"
            " (the file whose lines are counted) or disable error_burst"
        )
    return config, error_log


def _process(data: object, where: str) -> ProcessConfig:
    d = _section(data, where, {"program", "manager", "pidfile"}, {"program", "manager"})
    manager = d["manager"]
    if manager not in MANAGERS:
        raise ConfigError(f"{where}.manager must be one of {', '.join(MANAGERS)}, got {manager!r}")
    pidfile = _path(d["pidfile"], f"{where}.pidfile") if "pidfile" in d else None
    if (manager == "pidfile") != (pidfile is not None):
        raise ConfigError(f"{where}: pidfile is required with manager pidfile, and only there")
    return ProcessConfig(_str(d["program"], f"{where}.program"), manager, pidfile)


def _enforcement(data: object, where: str) -> EnforcementConfig:
    keys = {"processes", "on_halt", "kill_after_s", "flatten_on_halt"}
    d = _section(data, where, keys)
    procs = d.get("processes", [])
    if not isinstance(procs, list) or len(procs) > 64:
        raise ConfigError(f"{where}.processes must be a list of at most 64 programs")
    on_halt = d.get("on_halt", "stop")
    try:
        policy = OnHalt(on_halt)
    except ValueError:
        raise ConfigError(f"{where}.on_halt must be stop, pause or none, got {on_halt!r}") from None
    return EnforcementConfig(
        processes=tuple(_process(p, f"{where}.processes[{i}]") for i, p in enumerate(procs)),
        on_halt=policy,
        kill_after_s=_number(d.get("kill_after_s", 5.0), f"{where}.kill_after_s", 0.0, 600),
        flatten_on_halt=_bool(d.get("flatten_on_halt", False), f"{where}.flatten_on_halt"),
    )


def check_secret_file(path: Path, where: str) -> None:
    """A secrets file must be a regular file of mode 0600 (or stricter)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
        raise ConfigError(
            f"{where}: {path} must be a regular file of mode 0600 (it holds secrets),"
            f" got {stat.S_IMODE(st.st_mode):04o}"
        )


def read_urls(path: Path) -> list[str]:
    """The apprise URLs of ``path``, one a line (blank lines and ``#`` comments skipped)."""
    check_secret_file(path, "notify.urls_file")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def parse_sections(top: dict[str, Any], source: str) -> Sections:
    """The assembly sections of the top-level mapping ``top``."""
    risk = _risk(top["risk"], f"{source}: risk") if top.get("risk") is not None else None
    drop_copy = None
    if top.get("drop_copy") is not None:
        where = f"{source}: drop_copy"
        drop_copy = _fix(_section(top["drop_copy"], where, FIX_KEYS, FIX_REQUIRED), where)
    symbols: tuple[str, ...] = ()
    if top.get("market_data") is not None:
        where = f"{source}: market_data"
        md = _section(top["market_data"], where, {"symbols"}, {"symbols"})
        raw = md["symbols"]
        if not isinstance(raw, list) or not raw or len(raw) > 1000:
            raise ConfigError(f"{where}.symbols must be a list of 1 to 1000 symbols")
        symbols = tuple(_str(s, f"{where}.symbols[{i}]") for i, s in enumerate(raw))
        if risk is None:
            raise ConfigError(
                f"{where}: market data is subscribed on the risk session: configure risk"
                " (the simulator's drop copy is receive-only)"
            )
    breakers, error_log = None, None
    if top.get("breakers") is not None:
        breakers, error_log = _breakers(top["breakers"], f"{source}: breakers")
        if drop_copy is None:
            raise ConfigError(
                f"{source}: breakers need drop_copy: they are computed from the agent's own"
                " drop copy, never from the strategy's figures"
            )
    enforcement = EnforcementConfig()
    if top.get("enforcement") is not None:
        enforcement = _enforcement(top["enforcement"], f"{source}: enforcement")
        if enforcement.flatten_on_halt and risk is None:
            raise ConfigError(f"{source}: enforcement.flatten_on_halt needs risk")
    listen = None
    if top.get("metrics") is not None:
        m = _section(top["metrics"], f"{source}: metrics", {"listen"})
        if "listen" in m:
            listen = _listen(m["listen"], f"{source}: metrics.listen")
    urls_file, timeout = None, 5.0
    if top.get("notify") is not None:
        where = f"{source}: notify"
        n = _section(top["notify"], where, {"urls_file", "timeout_s"}, {"urls_file"})
        urls_file = _path(n["urls_file"], f"{where}.urls_file")
        check_secret_file(urls_file, f"{where}.urls_file")
        timeout = _number(n.get("timeout_s", 5.0), f"{where}.timeout_s", 0.1, 120)
    return Sections(
        risk=risk,
        drop_copy=drop_copy,
        market_data=symbols,
        breakers=breakers,
        error_log=error_log,
        enforcement=enforcement,
        metrics_listen=listen,
        notify_urls_file=urls_file,
        notify_timeout_s=timeout,
    )
