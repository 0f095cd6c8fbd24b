"""Simulator configuration: a YAML or JSON file, CLI overrides, strict validation.

Every problem is reported as one :class:`ConfigError` naming the key. The
shipped default (``default.yml`` beside this module) has one account, ``ACC1``,
with an order-entry, a drop-copy and a risk session.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from tradeops.brokers.base import SessionRole
from tradeops.brokers.fixframing import DEFAULT_MAX_FRAME_BYTES

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yml")

_COMP_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MIN_FRAME_BYTES = 1024  # below this a Logon with credentials may not fit
MAX_FRAME_BYTES_LIMIT = 1 << 26
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,32}$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ThrottleConfig:
    """Messaging controls of one session: application messages per sliding window."""

    window_ms: int = 1000
    reject_limit: int = 0  # 0 = off
    disconnect_limit: int = 0  # 0 = off


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One FIX session the simulator accepts."""

    name: str
    role: SessionRole
    account: str
    client_comp_id: str  # the client's SenderCompID
    sim_comp_id: str  # the simulator's SenderCompID
    port: int  # 0 = any free port
    throttle: ThrottleConfig


@dataclass(frozen=True, slots=True)
class SymbolConfig:
    """One instrument and its price process."""

    symbol: str
    price: Decimal
    tick_size: Decimal = Decimal("0.01")
    spread_ticks: int = 1
    volatility_ticks: float = 1.0
    size: Decimal = Decimal(10)
    lot_size: Decimal = Decimal(1)
    multiplier: Decimal = Decimal(1)
    csv: str | None = None
    csv_loop: bool = True


@dataclass(frozen=True, slots=True)
class FillConfig:
    """How orders fill."""

    max_qty_per_tick: Decimal = Decimal(0)  # 0 = no limit
    ratio: Decimal = Decimal(1)  # share of the leaves quantity filled per tick
    market_slippage_ticks: int = 0


@dataclass(frozen=True, slots=True)
class FixConfig:
    """FIX data dictionary settings (as far as asyncfix allows)."""

    begin_string: str = "FIX.4.4"
    repeating_groups: dict[str, list[str]] = field(default_factory=dict)
    data_dictionary: str | None = None  # QuickFIX-format XML; None = no schema validation
    venue_extensions: bool = False  # RptSeq in W/X, tags 9101-9103 in AP (FIX44-venue.xml)
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES  # a longer inbound frame is garbled


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One trading account."""

    account: str
    kill_switch: bool = False
    cancel_on_kill: bool = True


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The whole simulator configuration."""

    host: str
    port_base: int
    admin_host: str
    admin_port: int
    seed: int
    store_dir: str | None
    sim_comp_id: str
    heartbeat_s: int
    tick_interval_ms: int
    fix: FixConfig
    fill: FillConfig
    symbols: tuple[SymbolConfig, ...]
    accounts: tuple[AccountConfig, ...]
    sessions: tuple[SessionSpec, ...]

    def session(self, name: str) -> SessionSpec:
        """Return the session called ``name`` (its client CompID by default)."""
        for spec in self.sessions:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def symbol(self, symbol: str) -> SymbolConfig:
        """Return the configuration of ``symbol``."""
        for sym in self.symbols:
            if sym.symbol == symbol:
                return sym
        raise KeyError(symbol)


# --------------------------------------------------------------------- parsing
def _check_keys(d: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: must be <= {maximum}, got {value}")
    return int(value)


def _dec(value: Any, where: str, positive: bool = False, minimum: Decimal | None = None) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not d.is_finite():
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if positive and d <= 0:
        raise ConfigError(f"{where}: must be > 0, got {value}")
    if minimum is not None and d < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {value}")
    return d


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _str(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"{where}: invalid value {value!r}")
    return value


def _address(value: Any, where: str) -> str:
    text = _str(value, where)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{where}: expected an IP address, got {text!r}") from None
    if addr.is_unspecified:
        raise ConfigError(f"{where}: {text} would listen on every interface; name one address")
    return text


def _throttle(raw: Any, where: str, default: ThrottleConfig) -> ThrottleConfig:
    d = _dict(raw, where)
    _check_keys(d, {"window_ms", "reject_limit", "disconnect_limit"}, where)
    t = ThrottleConfig(
        window_ms=_int(d.get("window_ms", default.window_ms), f"{where}.window_ms", 1),
        reject_limit=_int(d.get("reject_limit", default.reject_limit), f"{where}.reject_limit", 0),
        disconnect_limit=_int(
            d.get("disconnect_limit", default.disconnect_limit), f"{where}.disconnect_limit", 0
        ),
    )
    if t.reject_limit and t.disconnect_limit and t.disconnect_limit < t.reject_limit:
        raise ConfigError(f"{where}: disconnect_limit must be >= reject_limit")
    return t


def _symbol(raw: Any, where: str, base_dir: Path | None) -> SymbolConfig:
    d = _dict(raw, where)
    _check_keys(
        d,
        {
            "symbol",
            "price",
            "tick_size",
            "spread_ticks",
            "volatility_ticks",
            "size",
            "lot_size",
            "multiplier",
            "csv",
            "csv_loop",
        },
        where,
    )
    csv = d.get("csv")
    if csv is not None:
        csv_path = Path(_str(csv, f"{where}.csv"))
        if not csv_path.is_absolute() and base_dir is not None:
            csv_path = base_dir / csv_path
        csv = str(csv_path)
    if "price" not in d and csv is None:
        raise ConfigError(f"{where}: needs price (random walk) or csv (replay)")
    vol = d.get("volatility_ticks", 1.0)
    if isinstance(vol, bool) or not isinstance(vol, int | float) or vol < 0:
        raise ConfigError(f"{where}.volatility_ticks: expected a number >= 0, got {vol!r}")
    return SymbolConfig(
        symbol=_str(d.get("symbol"), f"{where}.symbol", _SYMBOL_RE),
        price=_dec(d.get("price", 1), f"{where}.price", positive=True),
        tick_size=_dec(d.get("tick_size", "0.01"), f"{where}.tick_size", positive=True),
        spread_ticks=_int(d.get("spread_ticks", 1), f"{where}.spread_ticks", 1),
        volatility_ticks=float(vol),
        size=_dec(d.get("size", 10), f"{where}.size", positive=True),
        lot_size=_dec(d.get("lot_size", 1), f"{where}.lot_size", positive=True),
        multiplier=_dec(d.get("multiplier", 1), f"{where}.multiplier", positive=True),
        csv=csv,
        csv_loop=_bool(d.get("csv_loop", True), f"{where}.csv_loop"),
    )


_TOP_KEYS = {
    "host",
    "port_base",
    "admin",
    "seed",
    "store_dir",
    "sim_comp_id",
    "heartbeat_s",
    "tick_interval_ms",
    "fix",
    "fill",
    "throttle",
    "symbols",
    "accounts",
}


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> SimConfig:
    """Validate a configuration mapping and return the :class:`SimConfig`."""
    d = _dict(raw, "config")
    _check_keys(d, _TOP_KEYS, "config")
    host = _address(d.get("host", "127.0.0.1"), "host")
    port_base = _int(d.get("port_base", 9878), "port_base", 0, 65535)
    admin = _dict(d.get("admin"), "admin")
    _check_keys(admin, {"host", "port"}, "admin")
    admin_host = _address(admin.get("host") or host, "admin.host")
    admin_port = _int(admin.get("port", 9877), "admin.port", 0, 65535)
    sim_comp_id = _str(d.get("sim_comp_id", "SIM"), "sim_comp_id", _COMP_ID_RE)

    fix_raw = _dict(d.get("fix"), "fix")
    _check_keys(
        fix_raw,
        {
            "begin_string",
            "repeating_groups",
            "data_dictionary",
            "venue_extensions",
            "max_frame_bytes",
        },
        "fix",
    )
    begin_string = _str(fix_raw.get("begin_string", "FIX.4.4"), "fix.begin_string")
    if begin_string != "FIX.4.4":
        raise ConfigError("fix.begin_string: only FIX.4.4 is supported by the FIX engine")
    groups: dict[str, list[str]] = {}
    for tag, members in _dict(fix_raw.get("repeating_groups"), "fix.repeating_groups").items():
        where = f"fix.repeating_groups.{tag}"
        if not isinstance(members, list) or not members:
            raise ConfigError(f"{where}: expected a list of member tags")
        groups[str(_int(tag, where, 1))] = [str(_int(m, where, 1)) for m in members]
    dictionary = fix_raw.get("data_dictionary")
    if dictionary is not None:
        dict_path = Path(_str(dictionary, "fix.data_dictionary"))
        if dictionary == "builtin":
            dict_path = Path(__file__).with_name("FIX44-sim.xml")
        elif not dict_path.is_absolute() and base_dir is not None:
            dict_path = base_dir / dict_path
        dictionary = str(dict_path)
    extensions = _bool(fix_raw.get("venue_extensions", False), "fix.venue_extensions")
    max_frame = _int(
        fix_raw.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES),
        "fix.max_frame_bytes",
        MIN_FRAME_BYTES,
        MAX_FRAME_BYTES_LIMIT,
    )
    fix = FixConfig(begin_string, groups, dictionary, extensions, max_frame)

    fill_raw = _dict(d.get("fill"), "fill")
    _check_keys(fill_raw, {"max_qty_per_tick", "ratio", "market_slippage_ticks"}, "fill")
    ratio = _dec(fill_raw.get("ratio", 1), "fill.ratio", positive=True)
    if ratio > 1:
        raise ConfigError("fill.ratio: must be <= 1")
    fill = FillConfig(
        max_qty_per_tick=_dec(
            fill_raw.get("max_qty_per_tick", 0), "fill.max_qty_per_tick", minimum=Decimal(0)
        ),
        ratio=ratio,
        market_slippage_ticks=_int(
            fill_raw.get("market_slippage_ticks", 0), "fill.market_slippage_ticks", 0
        ),
    )
    default_throttle = _throttle(d.get("throttle"), "throttle", ThrottleConfig(1000, 0, 0))

    symbols_raw = d.get("symbols")
    if not isinstance(symbols_raw, list) or not symbols_raw:
        raise ConfigError("symbols: expected a non-empty list")
    symbols = tuple(_symbol(s, f"symbols[{i}]", base_dir) for i, s in enumerate(symbols_raw))
    names = [s.symbol for s in symbols]
    if len(set(names)) != len(names):
        raise ConfigError("symbols: duplicate symbol")

    accounts_raw = d.get("accounts")
    if not isinstance(accounts_raw, list) or not accounts_raw:
        raise ConfigError("accounts: expected a non-empty list")
    accounts: list[AccountConfig] = []
    sessions: list[SessionSpec] = []
    index = 0
    for i, acc_raw in enumerate(accounts_raw):
        where = f"accounts[{i}]"
        acc = _dict(acc_raw, where)
        _check_keys(acc, {"account", "kill_switch", "cancel_on_kill", "sessions"}, where)
        account = _str(acc.get("account"), f"{where}.account", _COMP_ID_RE)
        accounts.append(
            AccountConfig(
                account=account,
                kill_switch=_bool(acc.get("kill_switch", False), f"{where}.kill_switch"),
                cancel_on_kill=_bool(acc.get("cancel_on_kill", True), f"{where}.cancel_on_kill"),
            )
        )
        sess_raw = acc.get("sessions")
        if not isinstance(sess_raw, list) or not sess_raw:
            raise ConfigError(f"{where}.sessions: expected a non-empty list")
        for j, s_raw in enumerate(sess_raw):
            sw = f"{where}.sessions[{j}]"
            s = _dict(s_raw, sw)
            _check_keys(s, {"name", "role", "comp_id", "sim_comp_id", "port", "throttle"}, sw)
            try:
                role = SessionRole(_str(s.get("role"), f"{sw}.role"))
            except ValueError:
                roles = ", ".join(r.value for r in SessionRole)
                raise ConfigError(f"{sw}.role: expected one of {roles}") from None
            comp_id = _str(s.get("comp_id"), f"{sw}.comp_id", _COMP_ID_RE)
            if s.get("port") is not None:
                port = _int(s["port"], f"{sw}.port", 0, 65535)
            else:
                port = 0 if port_base == 0 else port_base + index
                if port > 65535:
                    raise ConfigError(f"{sw}.port: port_base + {index} is beyond 65535")
            sessions.append(
                SessionSpec(
                    name=_str(s.get("name", comp_id), f"{sw}.name", _COMP_ID_RE),
                    role=role,
                    account=account,
                    client_comp_id=comp_id,
                    sim_comp_id=_str(s.get("sim_comp_id", sim_comp_id), f"{sw}.sim_comp_id"),
                    port=port,
                    throttle=_throttle(s.get("throttle"), f"{sw}.throttle", default_throttle),
                )
            )
            index += 1
    if len({a.account for a in accounts}) != len(accounts):
        raise ConfigError("accounts: duplicate account")
    if len({s.name for s in sessions}) != len(sessions):
        raise ConfigError("accounts[].sessions: duplicate session name")
    if len({s.client_comp_id for s in sessions}) != len(sessions):
        raise ConfigError("accounts[].sessions: duplicate comp_id")
    fixed_ports = [s.port for s in sessions if s.port] + ([admin_port] if admin_port else [])
    if len(set(fixed_ports)) != len(fixed_ports):
        raise ConfigError("ports: two listeners share a port (sessions and admin.port)")

    store_dir = d.get("store_dir")
    if store_dir is not None:
        store_path = Path(_str(store_dir, "store_dir"))
        if not store_path.is_absolute() and base_dir is not None:
            store_path = base_dir / store_path
        store_dir = str(store_path)
    return SimConfig(
        host=host,
        port_base=port_base,
        admin_host=admin_host,
        admin_port=admin_port,
        seed=_int(d.get("seed", 0), "seed"),
        store_dir=store_dir,
        sim_comp_id=sim_comp_id,
        heartbeat_s=_int(d.get("heartbeat_s", 30), "heartbeat_s", 1, 3600),
        tick_interval_ms=_int(d.get("tick_interval_ms", 250), "tick_interval_ms", 1),
        fix=fix,
        fill=fill,
        symbols=symbols,
        accounts=tuple(accounts),
        sessions=tuple(sessions),
    )


def read_raw(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML or JSON configuration file (the shipped default when None)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise ConfigError(f"{p}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return data


def load_config(
    path: str | Path | None = None,
    *,
    host: str | None = None,
    port_base: int | None = None,
    admin_port: int | None = None,
    seed: int | None = None,
    store_dir: str | None = None,
) -> SimConfig:
    """Load ``path`` (default: the shipped config) and apply the CLI overrides."""
    raw = copy.deepcopy(read_raw(path))
    if host is not None:
        raw["host"] = host
        raw.setdefault("admin", {})
        if isinstance(raw["admin"], dict):
            raw["admin"].pop("host", None)
    if port_base is not None:
        raw["port_base"] = port_base
    if admin_port is not None:
        raw.setdefault("admin", {})
        if not isinstance(raw["admin"], dict):
            raw["admin"] = {}
        raw["admin"]["port"] = admin_port
    if seed is not None:
        raw["seed"] = seed
    if store_dir is not None:
        raw["store_dir"] = str(Path(store_dir).resolve())
    base_dir = Path(path).resolve().parent if path is not None else None
    return parse_config(raw, base_dir)
