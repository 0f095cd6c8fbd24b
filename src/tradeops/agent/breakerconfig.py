"""Breaker thresholds: typed dataclasses, documented defaults and a strict loader.

The file is YAML (or any mapping) with a ``version`` key and one section per
breaker; every key is optional except ``version``. Unknown keys, wrong types
and out-of-range values are refused with the path of the offending key, so a
typo never silently leaves a breaker at a default. See ``docs/agent-breakers.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from tradeops.tradingstate import TradingState

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """The breaker config cannot be used; the text names the key and why."""


class Action(enum.StrEnum):
    """What a trip does to the host."""

    REDUCE = "reduce"
    HALT = "halt"

    @property
    def state(self) -> TradingState:
        """The trading state this action trips to."""
        return TradingState.REDUCING if self is Action.REDUCE else TradingState.HALTED


def _positive(name: str, value: float | Decimal | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be above 0, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """What every breaker has: on or off, its action, how long its inputs may be silent."""

    enabled: bool = True
    action: Action = Action.HALT
    input_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        _positive("input_timeout_s", self.input_timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyLossConfig(BreakerConfig):
    """Trip when realized + unrealized P&L of the day falls below ``-max_loss``."""

    max_loss: Decimal = Decimal(50_000)

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_loss", self.max_loss)


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawdownConfig(BreakerConfig):
    """Trip when equity falls more than ``max_drawdown`` below its intraday peak."""

    action: Action = Action.REDUCE
    max_drawdown: Decimal = Decimal(25_000)

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_drawdown", self.max_drawdown)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposureConfig(BreakerConfig):
    """Notional (and optionally quantity) limits counting working orders."""

    action: Action = Action.REDUCE
    max_symbol_notional: Decimal = Decimal(1_000_000)
    max_total_notional: Decimal = Decimal(5_000_000)
    max_symbol_qty: Decimal | None = None

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_symbol_notional", self.max_symbol_notional)
        _positive("max_total_notional", self.max_total_notional)
        _positive("max_symbol_qty", self.max_symbol_qty)


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgRateConfig(BreakerConfig):
    """At most ``max_messages`` drop-copy messages and ``max_new_orders`` per window."""

    window_s: float = 1.0
    max_messages: int = 1_000
    max_new_orders: int = 200

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        for name in ("window_s", "max_messages", "max_new_orders"):
            _positive(name, getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectRateConfig(BreakerConfig):
    """Rejects / new orders over the window, judged once ``min_orders`` were sent."""

    window_s: float = 10.0
    max_ratio: float = 0.5
    min_orders: int = 20

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("window_s", self.window_s)
        _positive("min_orders", self.min_orders)
        if not 0 < self.max_ratio <= 1:
            raise ValueError(f"max_ratio must be in (0, 1], got {self.max_ratio}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildQtyConfig(BreakerConfig):
    """The Knight pattern: filled + working child quantity beyond the intended quantity.

    ``intended_qty`` maps a symbol to the most it may trade per side and parent in a
    day; ``default_intended_qty`` covers the others (None: only the per-order check).
    ``parent_pattern`` is a regex with a ``parent`` group applied to the first ClOrdID
    of each order; None groups all orders of a symbol and side as one parent.
    """

    intended_qty: dict[str, Decimal] = field(default_factory=dict)
    default_intended_qty: Decimal | None = None
    parent_pattern: str | None = None
    max_ratio: float = 1.0

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("default_intended_qty", self.default_intended_qty)
        _positive("max_ratio", self.max_ratio)
        for symbol, qty in self.intended_qty.items():
            _positive(f"intended_qty.{symbol}", qty)
        if self.parent_pattern is not None:
            try:
                pattern = re.compile(self.parent_pattern)
            except re.error as exc:
                raise ValueError(f"parent_pattern is not a regex: {exc}") from exc
            if "parent" not in pattern.groupindex:
                raise ValueError("parent_pattern needs a named group (?P<parent>...)")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStaleConfig(BreakerConfig):
    """Trip when a watched symbol has had no quote for ``max_age_s``.

    Watched: ``symbols`` plus every symbol with a position or a working order.
    """

    max_age_s: float = 2.0
    symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_age_s", self.max_age_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class AckLatencyConfig(BreakerConfig):
    """PendingNew -> New latency (max over the window) or age of an unacked order."""

    max_latency_s: float = 0.5
    window_s: float = 10.0

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_latency_s", self.max_latency_s)
        _positive("window_s", self.window_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatConfig(BreakerConfig):
    """Trip when a strategy's heartbeat is older than ``max_age_s``.

    ``required`` strategies count from the book's start even if never heard from.
    """

    max_age_s: float = 2.0
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("max_age_s", self.max_age_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorBurstConfig(BreakerConfig):
    """Trip on more than ``max_errors`` error-log lines within ``window_s``."""

    window_s: float = 10.0
    max_errors: int = 50

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        _positive("window_s", self.window_s)
        _positive("max_errors", self.max_errors)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakersConfig:
    """Every breaker's config; ``fault_action`` is what BREAKER_FAULT does."""

    version: int = CONFIG_VERSION
    fault_action: Action = Action.HALT
    daily_loss: DailyLossConfig = field(default_factory=DailyLossConfig)
    drawdown: DrawdownConfig = field(default_factory=DrawdownConfig)
    exposure: ExposureConfig = field(default_factory=ExposureConfig)
    msg_rate: MsgRateConfig = field(default_factory=MsgRateConfig)
    reject_rate: RejectRateConfig = field(default_factory=RejectRateConfig)
    child_qty: ChildQtyConfig = field(default_factory=ChildQtyConfig)
    feed_stale: FeedStaleConfig = field(default_factory=FeedStaleConfig)
    ack_latency: AckLatencyConfig = field(default_factory=AckLatencyConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    error_burst: ErrorBurstConfig = field(default_factory=ErrorBurstConfig)

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ValueError(f"version {self.version} is not supported (this agent reads 1)")


# ------------------------------------------------------------------ loading
def load_breakers_config(path: str | Path) -> BreakersConfig:
    """Read and check a YAML breaker config file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return breakers_config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def breakers_config_from_dict(data: Any) -> BreakersConfig:
    """Build a :class:`BreakersConfig` from a mapping; strict about keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"breakers: expected a mapping, got {type(data).__name__}")
    if "version" not in data:
        raise ConfigError(f"breakers.version: missing (this agent reads {CONFIG_VERSION})")
    return _build(BreakersConfig, data, "breakers")


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        names, choices = ", ".join(map(repr, unknown)), ", ".join(sorted(known))
        raise ConfigError(f"{where}: unknown key {names} (known: {choices})")
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        none_type = type(None)
        (inner,) = [a for a in args if a is not none_type]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {
            _convert(args[0], k, where): _convert(args[1], v, f"{where}.{k}")
            for k, v in value.items()
        }
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{where}: must be one of {choices}, got {value!r}") from None
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if isinstance(value, bool) and hint is not bool:
        raise ConfigError(f"{where}: expected {hint.__name__}, got a boolean")
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is int and isinstance(value, int):
        return value
    if hint is float and isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if hint is Decimal and isinstance(value, int | float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{where}: not a number: {value!r}") from None
        if number.is_finite():
            return number
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
