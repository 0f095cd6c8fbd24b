"""The agent's configuration file (YAML or JSON), ``format: 1``, read strictly.

Example (every key but ``format`` and ``root`` may be left out)::

    format: 1
    root: /srv/tradeops
    unix:
      path: /srv/tradeops/run/agent.sock     # default <root>/run/agent.sock
      mode: "0660"
      allowed_uids: [1001]                   # operators: every command
      allowed_gids: [1002]
      strategy_gids: [1003]                  # strategies: heartbeat, status, halt, reduce
    tcp:                                     # optional: the controller's fleet-wide kill
      listen: "127.0.0.1:7301"
      keys: {controller-2026: /srv/tradeops/shared/secrets/agent-controller-2026.key}
    liveness:
      path: /srv/tradeops/run/agent-liveness # default <root>/run/agent-liveness
      interval_s: 0.05
    replay_window_s: 5
    scheduling: {policy: fifo, priority: 10, cpus: [0]}  # default: the service manager's
    limits: {max_clients: 64, idle_timeout_s: 30, max_errors_per_connection: 8}
    log: /srv/tradeops/shared/log/agent.jsonl  # default: stderr
    # The assembly sections (all optional; parsed in ``sections.py``):
    risk:                                    # the warm FIX risk session
      host: 127.0.0.1
      port: 9880
      sender_comp_id: ACC1_RISK
      target_comp_id: SIM
      account: ACC1
      heartbeat_s: 30                        # also reconnect_s, store_dir
      cancel_timeout_s: 5                    # also connect_timeout_s, mass_cancel,
                                             # per_order_rounds, flatten_timeout_s,
                                             # collar_ticks, default_tick
    drop_copy: {host: 127.0.0.1, port: 9879, sender_comp_id: ACC1_DC,
                target_comp_id: SIM, account: ACC1, heartbeat_s: 1}
    market_data: {symbols: [ESZ5]}           # subscribed on the risk session
    breakers:                                # needs drop_copy
      file: /srv/tradeops/shared/breakers.yml  # or config: {version: 1, ...} inline
      error_log: /srv/tradeops/shared/log/strategy.err  # counted by error_burst
    enforcement:
      processes: [{program: strategy-blue, manager: supervisord}]  # systemd; pidfile+pidfile:
      on_halt: stop                          # stop | pause | none
      kill_after_s: 5
      flatten_on_halt: false
    metrics: {listen: "127.0.0.1:9301"}      # Prometheus text on /metrics
    notify: {urls_file: /srv/tradeops/shared/secrets/agent-notify.urls}  # mode 0600

A key nobody declared, a value of the wrong type or out of range, is refused
with ``ConfigError`` naming the key: a typo in a kill switch's config must
stop it from starting, not be ignored. Key files are only named here; they
are read (mode 0600 enforced) by ``auth.KeyRing.load`` when the agent starts.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tradeops.agent.protocol import DEFAULT_WINDOW_S
from tradeops.agent.scheduling import MAX_CPU_LATENCY_US, POLICIES, SchedulingConfig
from tradeops.releases.layout import Layout

if TYPE_CHECKING:
    from tradeops.agent.sections import Sections

CONFIG_FORMAT = 1
DEFAULT_SOCKET = "run/agent.sock"
DEFAULT_LIVENESS = "run/agent-liveness"
SECTION_KEYS = frozenset(
    {"risk", "drop_copy", "market_data", "breakers", "enforcement", "metrics", "notify"}
)


class ConfigError(ValueError):
    """A config the agent refuses; the text names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class UnixConfig:
    """The local Unix socket and who may use it (``SO_PEERCRED``)."""

    path: Path
    mode: int = 0o660
    allowed_uids: frozenset[int] = frozenset()
    allowed_gids: frozenset[int] = frozenset()
    # Strategies: heartbeat, status, and the tightening halt and reduce; never a reset.
    strategy_uids: frozenset[int] = frozenset()
    strategy_gids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """The TCP listener for signed commands."""

    host: str
    port: int
    keys: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LivenessConfig:
    """The liveness heartbeat file and its interval."""

    path: Path
    interval_s: float = 0.05


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on connections: a client can hold the agent only this much."""

    max_clients: int = 64
    idle_timeout_s: float = 30.0
    max_errors_per_connection: int = 8
    read_size: int = 4096


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole config, with every default resolved against ``root``."""

    root: Path
    unix: UnixConfig
    liveness: LivenessConfig
    tcp: TcpConfig | None = None
    replay_window_s: float = DEFAULT_WINDOW_S
    limits: Limits = field(default_factory=Limits)
    log: Path | None = None
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)
    sections: Sections | None = None  # risk, drop copy, breakers, ... (None: none of them)

    @property
    def layout(self) -> Layout:
        """The host layout under ``root``."""
        return Layout.at(self.root)


# ------------------------------------------------------------------- reading
def _section(
    data: object, where: str, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    return data


def _number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where} must be between {low} and {high}, got {value!r}")
    return value


def _path(value: object, where: str) -> Path:
    if not isinstance(value, str) or not value or not Path(value).is_absolute():
        raise ConfigError(f"{where} must be an absolute path, got {value!r}")
    return Path(value)


def _ids(value: object, where: str) -> frozenset[int]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of numeric ids, got {value!r}")
    return frozenset(_int(v, f"{where}[{i}]", 0, 2**32 - 2) for i, v in enumerate(value))


def _mode(value: object, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value, 8)
    mode = _int(value, where, 0, 0o777)
    if mode & 0o007:
        raise ConfigError(f"{where}: {mode:04o} lets others reach the socket; use 0660 or 0600")
    return mode


def _listen(value: object, where: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{where} must be 'address:port', got {value!r}")
    host, _unused, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{where}: {host!r} is not an IP address (bind an address, not a name)"
        ) from None
    if not port.isdigit():
        raise ConfigError(f"{where}: port {port!r} is not a number")
    return host, _int(int(port), f"{where} port", 0, 65535)


def _scheduling(data: object, where: str) -> SchedulingConfig:
    s = _section(data, where, {"policy", "priority", "nice", "cpus", "cpu_latency_us"})
    policy = s.get("policy", "other")
    if policy not in POLICIES:
        raise ConfigError(f"{where}.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    cpus = s.get("cpus")
    try:
        return SchedulingConfig(
            policy=policy,
            priority=_int(s.get("priority", 0), f"{where}.priority", 0, 99),
            nice=None if s.get("nice") is None else _int(s["nice"], f"{where}.nice", -20, 19),
            cpus=None if cpus is None else _ids(cpus, f"{where}.cpus"),
            cpu_latency_us=None
            if s.get("cpu_latency_us") is None
            else _int(s["cpu_latency_us"], f"{where}.cpu_latency_us", 0, MAX_CPU_LATENCY_US),
        )
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def parse_config(data: object, source: str = "config") -> AgentConfig:
    """Validate the loaded document ``data``; raise ``ConfigError`` on anything wrong."""
    top = _section(
        data,
        source,
        {"format", "root", "unix", "tcp", "liveness", "replay_window_s", "limits", "log"}
        | {"scheduling"}
        | SECTION_KEYS,
        {"format", "root"},
    )
    if top["format"] != CONFIG_FORMAT or isinstance(top["format"], bool):
        raise ConfigError(
            f"{source}: format {top['format']!r}; this agent reads format {CONFIG_FORMAT}"
        )
    root = _path(top["root"], f"{source}: root")

    unix_keys = {"path", "mode", "allowed_uids", "allowed_gids", "strategy_uids", "strategy_gids"}
    u = _section(top.get("unix", {}), f"{source}: unix", unix_keys)
    unix = UnixConfig(
        _path(u["path"], f"{source}: unix.path") if "path" in u else root / DEFAULT_SOCKET,
        _mode(u.get("mode", 0o660), f"{source}: unix.mode"),
        _ids(u.get("allowed_uids", []), f"{source}: unix.allowed_uids"),
        _ids(u.get("allowed_gids", []), f"{source}: unix.allowed_gids"),
        _ids(u.get("strategy_uids", []), f"{source}: unix.strategy_uids"),
        _ids(u.get("strategy_gids", []), f"{source}: unix.strategy_gids"),
    )

    tcp = None
    if top.get("tcp") is not None:
        t = _section(top["tcp"], f"{source}: tcp", {"listen", "keys"}, {"listen", "keys"})
        host, port = _listen(t["listen"], f"{source}: tcp.listen")
        keys = t["keys"]
        if not isinstance(keys, dict) or not keys:
            raise ConfigError(f"{source}: tcp.keys must map at least one key id to a key file")
        tcp = TcpConfig(
            host, port, {str(k): _path(v, f"{source}: tcp.keys.{k}") for k, v in keys.items()}
        )

    lv = _section(top.get("liveness", {}), f"{source}: liveness", {"path", "interval_s"})
    liveness = LivenessConfig(
        _path(lv["path"], f"{source}: liveness.path") if "path" in lv else root / DEFAULT_LIVENESS,
        _number(lv.get("interval_s", 0.05), f"{source}: liveness.interval_s", 0.001, 10.0),
    )

    lim_keys = {"max_clients", "idle_timeout_s", "max_errors_per_connection", "read_size"}
    lim = _section(top.get("limits", {}), f"{source}: limits", lim_keys)
    limits = Limits(
        _int(lim.get("max_clients", 64), f"{source}: limits.max_clients", 1, 10_000),
        _number(lim.get("idle_timeout_s", 30.0), f"{source}: limits.idle_timeout_s", 0.01, 3600),
        _int(
            lim.get("max_errors_per_connection", 8),
            f"{source}: limits.max_errors_per_connection",
            1,
            1000,
        ),
        _int(lim.get("read_size", 4096), f"{source}: limits.read_size", 64, 65536),
    )
    log = top.get("log")
    scheduling = _scheduling(top.get("scheduling", {}), f"{source}: scheduling")
    sections = None
    if SECTION_KEYS & set(top):
        from tradeops.agent.sections import parse_sections

        sections = parse_sections(top, source)
    return AgentConfig(
        root=root,
        unix=unix,
        liveness=liveness,
        tcp=tcp,
        replay_window_s=_number(
            top.get("replay_window_s", DEFAULT_WINDOW_S), f"{source}: replay_window_s", 0.1, 3600
        ),
        limits=limits,
        log=None if log is None else _path(log, f"{source}: log"),
        scheduling=scheduling,
        sections=sections,
    )


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read ``path`` (``.json`` as JSON, anything else as YAML) and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the agent config ({exc.strerror})") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    return parse_config(data, str(path))
