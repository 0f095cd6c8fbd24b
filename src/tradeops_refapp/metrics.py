"""Prometheus metrics of the refapp, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tradeops_client.tradingstate import TradingState

PREFIX = "tradeops_refapp"
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every metric the refapp exports on ``/metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, version: str, release: str, instance: str, fault_mode: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.info = Gauge(
            f"{PREFIX}_info",
            "Version of the running refapp (always 1).",
            ["version", "release", "instance", "fault_mode"],
            registry=r,
        )
        self.info.labels(version, release, instance, fault_mode).set(1)
        self.orders_sent = Counter(
            f"{PREFIX}_orders_sent",
            "NewOrderSingle messages sent.",
            ["symbol", "side", "purpose"],
            registry=r,
        )
        self.cancels_sent = Counter(
            f"{PREFIX}_cancels_sent", "OrderCancelRequest messages sent.", ["symbol"], registry=r
        )
        self.fills = Counter(f"{PREFIX}_fills", "Fills received.", ["symbol", "side"], registry=r)
        self.filled_qty = Counter(
            f"{PREFIX}_filled_qty", "Quantity filled.", ["symbol", "side"], registry=r
        )
        self.rejects = Counter(
            f"{PREFIX}_rejects",
            "Rejects from the venue: order, cancel or session.",
            ["kind"],
            registry=r,
        )
        self.refusals = Counter(
            f"{PREFIX}_order_refusals",
            "Orders the refapp refused to send, by reason code.",
            ["reason"],
            registry=r,
        )
        self.ack_latency = Histogram(
            f"{PREFIX}_ack_latency_seconds",
            "Time from NewOrderSingle sent to its first ExecutionReport.",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.realized_pnl = Gauge(
            f"{PREFIX}_realized_pnl", "Realized P&L per symbol.", ["symbol"], registry=r
        )
        self.unrealized_pnl = Gauge(
            f"{PREFIX}_unrealized_pnl",
            "Unrealized P&L per symbol at the mid.",
            ["symbol"],
            registry=r,
        )
        self.position = Gauge(
            f"{PREFIX}_position", "Net position per symbol.", ["symbol"], registry=r
        )
        self.working_orders = Gauge(
            f"{PREFIX}_working_orders",
            "Live orders per symbol and side.",
            ["symbol", "side"],
            registry=r,
        )
        self.md_updates = Counter(
            f"{PREFIX}_marketdata_updates", "Market data updates received.", ["symbol"], registry=r
        )
        self.trading_state = Gauge(
            f"{PREFIX}_trading_state",
            "Host trading state as the refapp reads it (1 for the state in force).",
            ["state"],
            registry=r,
        )
        self.standby = Gauge(f"{PREFIX}_standby", "1 while in standby (not trading).", registry=r)
        self.mode = Gauge(
            f"{PREFIX}_mode",
            "Trading mode of the refapp (1 for the current).",
            ["mode"],
            registry=r,
        )
        self.logged_on = Gauge(
            f"{PREFIX}_session_logged_on", "1 while the FIX session is logged on.", registry=r
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 while /readyz reports ready.", registry=r)

    def set_trading_state(self, state: TradingState) -> None:
        """Mark ``state`` as the one in force."""
        for s in TradingState:
            self.trading_state.labels(s.name).set(1 if s is state else 0)

    def set_mode(self, mode: str) -> None:
        """Mark ``mode`` (active, standby, stopping) as current."""
        for m in ("active", "standby", "stopping"):
            self.mode.labels(m).set(1 if m == mode else 0)
        self.standby.set(1 if mode == "standby" else 0)

    def render(self) -> bytes:
        """Return the exposition text."""
        return generate_latest(self.registry)
