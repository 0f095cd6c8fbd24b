"""Prometheus metrics of the simulator (its own registry, served at GET /metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

if TYPE_CHECKING:
    from tradeops.sim.server import SimServer


class SimMetrics:
    """Counters updated as messages flow; gauges refreshed at scrape time."""

    def __init__(self) -> None:
        self._children: dict[tuple[Any, ...], Any] = {}
        r = self.registry = CollectorRegistry()
        self.messages_in = Counter(
            "sim_messages_in", "Inbound application messages.", ["session", "msg_type"], registry=r
        )
        self.messages_out = Counter(
            "sim_messages_out",
            "Outbound application messages; delivered=false when journaled for a later resend.",
            ["session", "msg_type", "delivered"],
            registry=r,
        )
        self.exec_reports = Counter(
            "sim_exec_reports", "ExecutionReports produced.", ["account", "exec_type"], registry=r
        )
        self.rejects = Counter(
            "sim_rejects",
            "Rejects sent: session (3), business (j), order, cancel, throttle, fault.",
            ["session", "kind"],
            registry=r,
        )
        self.throttle = Counter(
            "sim_throttle_events", "Messaging-control actions.", ["session", "action"], registry=r
        )
        self.logons = Counter("sim_logons", "Completed logons.", ["session"], registry=r)
        self.refused_logons = Counter(
            "sim_refused_logons", "Logons refused by fault injection.", ["session"], registry=r
        )
        self.ticks = Counter("sim_ticks", "Price ticks.", ["symbol"], registry=r)
        self.logged_on = Gauge(
            "sim_session_logged_on", "1 while the session is logged on.", ["session"], registry=r
        )
        self.seq_in = Gauge(
            "sim_session_next_seq_in", "Next expected inbound MsgSeqNum.", ["session"], registry=r
        )
        self.seq_out = Gauge(
            "sim_session_next_seq_out", "Next outbound MsgSeqNum.", ["session"], registry=r
        )
        self.kill_switch = Gauge(
            "sim_kill_switch", "1 while the account's kill switch is on.", ["account"], registry=r
        )
        self.working_orders = Gauge(
            "sim_working_orders", "Working orders.", ["account"], registry=r
        )
        self.position = Gauge(
            "sim_position_qty", "Net position.", ["account", "symbol"], registry=r
        )
        self.realized = Gauge(
            "sim_realized_pnl", "Realized P&L.", ["account", "symbol"], registry=r
        )
        self.unrealized = Gauge(
            "sim_unrealized_pnl", "Unrealized P&L at the mid.", ["account", "symbol"], registry=r
        )
        self.faults = Gauge("sim_faults_active", "Faults in force.", ["kind"], registry=r)

    def count(self, counter: Counter, *labels: str) -> None:
        """``counter.labels(*labels).inc()``, with the labelled child cached (hot path)."""
        key = (id(counter), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc()

    def refresh(self, sim: SimServer) -> None:
        """Update the gauges from the simulator's state."""
        for acc in sim.acceptors.values():
            self.logged_on.labels(acc.name).set(1 if acc.is_live else 0)
            self.seq_in.labels(acc.name).set(acc.next_seq_in)
            self.seq_out.labels(acc.name).set(acc.next_seq_out)
        for account, on in sim.engine.kill_switch.items():
            self.kill_switch.labels(account).set(1 if on else 0)
            self.working_orders.labels(account).set(len(sim.engine.working_orders(account)))
            for view in sim.engine.position_views(account):
                self.position.labels(account, view.symbol).set(float(view.qty))
                self.realized.labels(account, view.symbol).set(float(view.realized_pnl))
                self.unrealized.labels(account, view.symbol).set(float(view.unrealized_pnl))
        for kind, n in sim.faults.active.items():
            self.faults.labels(kind).set(n)

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
