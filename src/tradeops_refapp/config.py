"""The refapp configuration file (``refapp.yml``): defaults, loading and validation.

Every problem is reported as one :class:`ConfigError` whose message names the key,
e.g. ``config error: symbols must be a non-empty list``. Unknown keys are errors,
so that a typo cannot silently fall back to a default. Relative paths are taken
relative to the directory of the config file.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

FAULT_MODES = ("none", "runaway", "crash", "hang", "slow", "fat_finger", "reject_storm")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9._/-]{1,32}$")
_COMP_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

DEFAULTS: dict[str, Any] = {
    "instance": "refapp",
    "venue": {
        "host": "127.0.0.1",
        "port": 9878,
        "sender_comp_id": "REFAPP",
        "target_comp_id": "SIM",
        "heartbeat_s": 30,
        "store_dir": "fix",
        "connect_timeout_s": 10.0,
        "reconnect_delay_s": 2.0,
    },
    "account": "REFAPP",
    "symbols": ["AAPL", "MSFT"],
    "quoting": {
        "spread_bps": 10,
        "size": 10,
        "requote_bps": 5,
        "tick_size": "0.01",
        "tick_sizes": {},
        "multipliers": {},
        "interval_s": 1.0,
    },
    "limits": {
        "max_position": 100,
        "per_symbol": {},
        "max_order_qty": 1000,
    },
    "db": "sqlite:///refapp.db",
    "http": {"bind": "127.0.0.1", "port": 8480},
    "trading_state_path": "/srv/tradeops/state/trading_state",
    "agent_liveness": {"path": None, "max_age_s": 0.5},
    "agent_heartbeat": {"socket": None, "interval_s": 0.5},
    "marketdata_stale_s": 30.0,
    "shutdown_timeout_s": 10.0,
    "cancel_on_start": True,
    "fault_mode": "none",
    "fault": {
        "after_s": 5.0,
        "after_orders": 0,
        "rate_per_s": 20.0,
        "delay_ms": 500,
        "multiplier": 1000,
        "exit_code": 3,
        "max_orders": 0,
        "ignore_trading_state": False,
    },
    "log_file": None,
}


class ConfigError(ValueError):
    """An invalid configuration; the message says which key and why."""


@dataclass(frozen=True)
class VenueConfig:
    """Where the order-entry FIX session connects."""

    host: str
    port: int
    sender_comp_id: str
    target_comp_id: str
    heartbeat_s: int
    store_dir: str | None
    connect_timeout_s: float
    reconnect_delay_s: float


@dataclass(frozen=True)
class QuotingConfig:
    """How quotes are placed around the mid."""

    spread_bps: Decimal
    size: Decimal
    requote_bps: Decimal
    tick_size: Decimal
    tick_sizes: dict[str, Decimal]
    interval_s: float
    multipliers: dict[str, Decimal] = field(default_factory=dict)

    def tick_for(self, symbol: str) -> Decimal:
        """Return the price grid of ``symbol``."""
        return self.tick_sizes.get(symbol, self.tick_size)

    def multiplier_for(self, symbol: str) -> Decimal:
        """Return the contract multiplier of ``symbol`` (P&L per price point and unit)."""
        return self.multipliers.get(symbol, Decimal(1))


@dataclass(frozen=True)
class LimitsConfig:
    """Per-symbol position limits (working orders count) and the order-size cap."""

    max_position: Decimal
    per_symbol: dict[str, Decimal]
    max_order_qty: Decimal

    def for_symbol(self, symbol: str) -> Decimal:
        """Return the position limit of ``symbol``."""
        return self.per_symbol.get(symbol, self.max_position)


@dataclass(frozen=True)
class FaultConfig:
    """Parameters of the fault modes (see docs/refapp.md)."""

    after_s: float
    after_orders: int
    rate_per_s: float
    delay_ms: int
    multiplier: Decimal
    exit_code: int
    max_orders: int
    ignore_trading_state: bool  # runaway only: Knight's revived code path, no state check


@dataclass(frozen=True)
class RefAppConfig:
    """The validated configuration of one refapp instance."""

    instance: str
    venue: VenueConfig
    account: str
    symbols: list[str]
    quoting: QuotingConfig
    limits: LimitsConfig
    db: str
    http_bind: str
    http_port: int
    trading_state_path: str
    agent_liveness_path: str | None  # None: no kill-switch agent is required on this host
    agent_liveness_max_s: float
    agent_heartbeat_socket: str | None  # the agent's Unix socket; None: send no heartbeat
    agent_heartbeat_interval_s: float
    marketdata_stale_s: float
    shutdown_timeout_s: float
    cancel_on_start: bool
    fault_mode: str
    fault: FaultConfig
    log_file: str | None
    path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    sha256: str | None = None  # of the file's bytes, reported on /status (config drift)

    @property
    def config_dir(self) -> Path | None:
        """The directory of the config file, when loaded from one."""
        return Path(self.path).resolve().parent if self.path else None


def _merge(base: dict[str, Any], override: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown key {name}")
        if isinstance(base[key], dict) and key not in ("per_symbol", "tick_sizes", "multipliers"):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping")
            out[key] = _merge(base[key], value, f"{name}.")
        else:
            out[key] = value
    return out


def _num(value: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f"{name} must be a number")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not dec.is_finite():
        raise ConfigError(f"{name} must be a finite number")
    if positive and dec <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    if minimum is not None and dec < Decimal(str(minimum)):
        raise ConfigError(f"{name} must be at least {minimum}")
    return dec


def _int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return value


def _str(value: Any, name: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"{name} has invalid characters: {value!r}")
    return value


def _path(value: Any, name: str, base: Path | None) -> str:
    text = _str(value, name)
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def _db(value: Any, base: Path | None) -> str:
    dsn = _str(value, "db")
    if dsn.startswith("sqlite:///"):
        rest = dsn[len("sqlite:///") :]
        if not rest:
            raise ConfigError("db: sqlite:/// needs a file path, e.g. sqlite:///refapp.db")
        if rest == ":memory:":
            return dsn
        # sqlite:////abs/path is absolute; sqlite:///rel/path is relative to the config.
        path = Path(rest)
        if not path.is_absolute() and base is not None:
            path = base / path
        return f"sqlite:///{path}"
    if dsn.startswith(("postgresql://", "postgres://")):
        return dsn
    raise ConfigError("db must be sqlite:///PATH or postgresql://... (a libpq URI)")


def _per_symbol(raw: Any, name: str, what: str, symbols: list[str]) -> dict[str, Decimal]:
    """Validate a mapping of quoted symbol to a number greater than 0."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping of symbol to {what}")
    out: dict[str, Decimal] = {}
    for sym, value in raw.items():
        if sym not in symbols:
            raise ConfigError(f"{name}.{sym}: {sym} is not in symbols")
        out[sym] = _num(value, f"{name}.{sym}", positive=True)
    return out


def validate(data: Any, path: str | None = None) -> RefAppConfig:
    """Validate a parsed config mapping (merged over the defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must hold a mapping at the top level")
    base = Path(path).resolve().parent if path else None
    merged = _merge(DEFAULTS, data)

    v = merged["venue"]
    host = _str(v["host"], "venue.host")
    venue = VenueConfig(
        host=host,
        port=_int(v["port"], "venue.port", minimum=1, maximum=65535),
        sender_comp_id=_str(v["sender_comp_id"], "venue.sender_comp_id", _COMP_ID_RE),
        target_comp_id=_str(v["target_comp_id"], "venue.target_comp_id", _COMP_ID_RE),
        heartbeat_s=_int(v["heartbeat_s"], "venue.heartbeat_s", minimum=1, maximum=3600),
        store_dir=_path(v["store_dir"], "venue.store_dir", base) if v["store_dir"] else None,
        connect_timeout_s=float(
            _num(v["connect_timeout_s"], "venue.connect_timeout_s", positive=True)
        ),
        reconnect_delay_s=float(
            _num(v["reconnect_delay_s"], "venue.reconnect_delay_s", positive=True)
        ),
    )

    symbols = merged["symbols"]
    if not isinstance(symbols, list) or not symbols:
        raise ConfigError("symbols must be a non-empty list")
    for i, sym in enumerate(symbols):
        _str(sym, f"symbols[{i}]", _SYMBOL_RE)
    if len(set(symbols)) != len(symbols):
        raise ConfigError("symbols must not repeat a symbol")

    q = merged["quoting"]
    tick_sizes = _per_symbol(q["tick_sizes"], "quoting.tick_sizes", "tick size", symbols)
    multipliers = _per_symbol(
        q["multipliers"], "quoting.multipliers", "contract multiplier", symbols
    )
    quoting = QuotingConfig(
        spread_bps=_num(q["spread_bps"], "quoting.spread_bps", positive=True),
        size=_num(q["size"], "quoting.size", positive=True),
        requote_bps=_num(q["requote_bps"], "quoting.requote_bps", minimum=0),
        tick_size=_num(q["tick_size"], "quoting.tick_size", positive=True),
        tick_sizes=tick_sizes,
        interval_s=float(_num(q["interval_s"], "quoting.interval_s", positive=True)),
        multipliers=multipliers,
    )

    lim = merged["limits"]
    per_symbol_raw = lim["per_symbol"] or {}
    if not isinstance(per_symbol_raw, dict):
        raise ConfigError("limits.per_symbol must be a mapping of symbol to max position")
    per_symbol: dict[str, Decimal] = {}
    for sym, value in per_symbol_raw.items():
        if sym not in symbols:
            raise ConfigError(f"limits.per_symbol.{sym}: {sym} is not in symbols")
        per_symbol[sym] = _num(value, f"limits.per_symbol.{sym}", minimum=0)
    limits = LimitsConfig(
        max_position=_num(lim["max_position"], "limits.max_position", minimum=0),
        per_symbol=per_symbol,
        max_order_qty=_num(lim["max_order_qty"], "limits.max_order_qty", positive=True),
    )
    if quoting.size > limits.max_order_qty:
        raise ConfigError("quoting.size must not exceed limits.max_order_qty")

    http = merged["http"]
    bind = _str(http["bind"], "http.bind")
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        if bind != "localhost":
            raise ConfigError(f"http.bind must be an IP address, got {bind!r}") from None
    http_port = _int(http["port"], "http.port", minimum=0, maximum=65535)

    fault_mode = merged["fault_mode"]
    if fault_mode is None or fault_mode is False:
        fault_mode = "none"
    if fault_mode not in FAULT_MODES:
        raise ConfigError(f"fault_mode must be one of {', '.join(FAULT_MODES)}; got {fault_mode!r}")
    f = merged["fault"]
    fault = FaultConfig(
        after_s=float(_num(f["after_s"], "fault.after_s", minimum=0)),
        after_orders=_int(f["after_orders"], "fault.after_orders", minimum=0),
        rate_per_s=float(_num(f["rate_per_s"], "fault.rate_per_s", positive=True)),
        delay_ms=_int(f["delay_ms"], "fault.delay_ms", minimum=0),
        multiplier=_num(f["multiplier"], "fault.multiplier", positive=True),
        exit_code=_int(f["exit_code"], "fault.exit_code", minimum=1, maximum=255),
        max_orders=_int(f["max_orders"], "fault.max_orders", minimum=0),
        ignore_trading_state=f["ignore_trading_state"],
    )
    if not isinstance(fault.ignore_trading_state, bool):
        raise ConfigError("fault.ignore_trading_state must be true or false")
    if fault.ignore_trading_state and fault_mode != "runaway":
        raise ConfigError("fault.ignore_trading_state applies to fault_mode runaway only")

    if not isinstance(merged["cancel_on_start"], bool):
        raise ConfigError("cancel_on_start must be true or false")
    liveness = merged["agent_liveness"]
    if not isinstance(liveness, dict):
        raise ConfigError("agent_liveness must be a mapping")
    beat = merged["agent_heartbeat"]
    if not isinstance(beat, dict):
        raise ConfigError("agent_heartbeat must be a mapping")

    return RefAppConfig(
        instance=_str(merged["instance"], "instance", _COMP_ID_RE),
        venue=venue,
        account=_str(merged["account"], "account", _COMP_ID_RE),
        symbols=list(symbols),
        quoting=quoting,
        limits=limits,
        db=_db(merged["db"], base),
        http_bind=bind,
        http_port=http_port,
        trading_state_path=_path(merged["trading_state_path"], "trading_state_path", base),
        agent_liveness_path=(
            _path(liveness["path"], "agent_liveness.path", base) if liveness["path"] else None
        ),
        agent_liveness_max_s=float(
            _num(liveness["max_age_s"], "agent_liveness.max_age_s", positive=True)
        ),
        agent_heartbeat_socket=(
            _path(beat["socket"], "agent_heartbeat.socket", base) if beat["socket"] else None
        ),
        agent_heartbeat_interval_s=float(
            _num(beat["interval_s"], "agent_heartbeat.interval_s", positive=True)
        ),
        marketdata_stale_s=float(
            _num(merged["marketdata_stale_s"], "marketdata_stale_s", positive=True)
        ),
        shutdown_timeout_s=float(
            _num(merged["shutdown_timeout_s"], "shutdown_timeout_s", minimum=0)
        ),
        cancel_on_start=merged["cancel_on_start"],
        fault_mode=fault_mode,
        fault=fault,
        log_file=_path(merged["log_file"], "log_file", base) if merged["log_file"] else None,
        path=str(Path(path).resolve()) if path else None,
        raw=merged,
    )


def load(path: str | Path) -> RefAppConfig:
    """Read and validate the YAML config at ``path``."""
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return dataclasses.replace(validate(data, str(path)), sha256=hashlib.sha256(raw).hexdigest())


DEFAULT_CONFIG_TEXT = """\
# tradeops refapp configuration (see docs/refapp.md for every key).
instance: refapp              # name in logs, metrics and order ids
venue:                        # the FIX order-entry session
  host: 127.0.0.1
  port: 9878
  sender_comp_id: REFAPP
  target_comp_id: SIM
  heartbeat_s: 30
  store_dir: fix              # FIX sequence numbers persist here (null: in memory)
  connect_timeout_s: 10
  reconnect_delay_s: 2
account: REFAPP
symbols: [AAPL, MSFT]
quoting:
  spread_bps: 10              # quoted width around the mid, in basis points
  size: 10                    # quantity of each quote
  requote_bps: 5              # move a quote when the target moved this much
  tick_size: "0.01"           # price grid of every symbol ...
  tick_sizes: {}              # ... unless given here, e.g. {ESZ5: 0.25}
  multipliers: {}             # contract multipliers for P&L (default 1), e.g. {ESZ5: 50}
  interval_s: 1.0             # longest time between two quoting passes
limits:
  max_position: 100           # per symbol, counting working orders
  per_symbol: {}              # e.g. {AAPL: 50}
  max_order_qty: 1000
db: sqlite:///refapp.db       # or postgresql://user@/dbname?host=/run/postgresql
http:
  bind: 127.0.0.1             # /healthz /readyz /metrics /status, POST /activate /standby
  port: 8480
trading_state_path: /srv/tradeops/state/trading_state
agent_liveness:               # the kill-switch agent's heartbeat file
  path: null                  # e.g. /srv/tradeops/run/agent-liveness; null: no agent required
  max_age_s: 0.5              # an agent silent longer than this: act as HALTED
agent_heartbeat:              # the dead man's switch: tell the agent this process is alive
  socket: null                # e.g. /srv/tradeops/run/agent.sock; null: send none
  interval_s: 0.5             # the agent's heartbeat breaker trips after its own limit
marketdata_stale_s: 30        # /readyz needs a quote per symbol this recent
shutdown_timeout_s: 10        # SIGTERM: wait this long for cancel acks
cancel_on_start: true         # cancel orders left open by a previous run
fault_mode: none              # none|runaway|crash|hang|slow|fat_finger|reject_storm
fault:
  after_s: 5
  after_orders: 0
  rate_per_s: 20
  delay_ms: 500
  multiplier: 1000
  exit_code: 3
  max_orders: 0               # 0: unbounded
  ignore_trading_state: false # runaway only: skip the state check (Knight's dead code)
log_file: null                # JSON lines; null: stderr
"""
