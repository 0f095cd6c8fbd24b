"""The kill-switch agent's Prometheus metrics (one registry per agent).

The names are an interface: the alerting rules shipped in
``prometheus/tradeops-agent.rules.yml`` use them, and a test checks that every
name a rule uses is exported here. Renaming one is a breaking change.

* ``tradeops_agent_trading_state``: 1 ACTIVE, 2 REDUCING, 3 HALTED (the values
  of the trading-state file).
* ``tradeops_agent_trips_total{reason}``, ``tradeops_agent_resets_total{forced}``.
* ``tradeops_agent_breaker_value{breaker}`` and
  ``tradeops_agent_breaker_threshold{breaker}``: what each breaker measures and
  where it trips.
* ``tradeops_agent_command_seconds{cmd,listener}``: from a request read to its
  answer written; ``tradeops_agent_commands_refused_total{code,listener}``.
* ``tradeops_agent_risk_session_up``: 1 while the risk session is logged on.
* ``tradeops_agent_venue_working_orders``: the working orders the venue last
  reported for the account (-1 before the first report).
* ``tradeops_agent_heartbeat_timestamp_seconds``: when the agent last wrote its
  liveness file (Unix time).
* ``tradeops_agent_enforcement_steps_total{step,ok}``: the halt sequence's steps
  (freeze, cancel_all, stop, confirm, flatten, notify) and their outcome.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tradeops.tradingstate import TradingState

# From 10 µs (a halt over the Unix socket) to 10 s (a flatten at the venue).
COMMAND_BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    5e-3,
    0.025,
    0.1,
    0.5,
    2.5,
    10.0,
)


class AgentMetrics:
    """The agent's metrics, in a registry of their own (``render`` gives the text format)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.trading_state = Gauge(
            "tradeops_agent_trading_state", "1 ACTIVE, 2 REDUCING, 3 HALTED", registry=r
        )
        self.trips = Counter("tradeops_agent_trips", "Trips by reason code", ["reason"], registry=r)
        self.resets = Counter(
            "tradeops_agent_resets", "Resets, forced or not", ["forced"], registry=r
        )
        self.breaker_value = Gauge(
            "tradeops_agent_breaker_value", "What each breaker measures", ["breaker"], registry=r
        )
        self.breaker_threshold = Gauge(
            "tradeops_agent_breaker_threshold", "Where each breaker trips", ["breaker"], registry=r
        )
        self.command_seconds = Histogram(
            "tradeops_agent_command_seconds",
            "From a request read to its answer written",
            ["cmd", "listener"],
            buckets=COMMAND_BUCKETS,
            registry=r,
        )
        self.refused = Counter(
            "tradeops_agent_commands_refused",
            "Requests refused, by error code and listener",
            ["code", "listener"],
            registry=r,
        )
        self.risk_session_up = Gauge(
            "tradeops_agent_risk_session_up", "1 while the risk session is logged on", registry=r
        )
        self.venue_working_orders = Gauge(
            "tradeops_agent_venue_working_orders",
            "Working orders the venue last reported for the account (-1: no report yet)",
            registry=r,
        )
        self.heartbeat_timestamp = Gauge(
            "tradeops_agent_heartbeat_timestamp_seconds",
            "When the agent last wrote its liveness file",
            registry=r,
        )
        self.enforcement_steps = Counter(
            "tradeops_agent_enforcement_steps",
            "Steps of the halt sequence, by step and outcome",
            ["step", "ok"],
            registry=r,
        )
        self.venue_working_orders.set(-1)
        self.trading_state.set(int(TradingState.HALTED))  # until the agent has loaded its state

    def set_state(self, state: TradingState) -> None:
        """Publish the host's trading state."""
        self.trading_state.set(int(state))

    def tripped(self, reasons: Iterable[str]) -> None:
        """Count a trip once per reason it added."""
        for reason in reasons:
            self.trips.labels(reason=reason).inc()

    def set_breaker(self, name: str, value: float, threshold: float) -> None:
        """Publish one breaker's measure and threshold."""
        self.breaker_value.labels(breaker=name).set(value)
        self.breaker_threshold.labels(breaker=name).set(threshold)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name the registry can export, labelled children or not yet."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in suffixes.get(family.type, ("",))
        }
