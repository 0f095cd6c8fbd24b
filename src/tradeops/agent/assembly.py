"""The running agent: listeners, risk session, breakers, enforcement, metrics, notifications.

:class:`Assembly` builds every piece the config names and implements the
agent's :class:`~tradeops.agent.hooks.Hooks`:

* a transition to HALTED (a command, a breaker, or a CLI halt adopted at
  start) schedules the halt sequence (:mod:`tradeops.agent.enforce`) after the
  state is published; the command is answered at once;
* REDUCING: no process action; a notification;
* a breaker's new trip trips the state machine (who ``agent:breaker``, why the
  verdict's text); a reset passes ``breakers.holding(now)`` and then re-arms;
* metrics (state, trips, resets, breakers, commands, refusals, risk session,
  venue working orders, liveness) are served on ``metrics.listen`` when set;
* notifications on trip, reset and start, to the apprise URLs of
  ``notify.urls_file`` (secrets: only their schemes are ever logged).

``run(config)`` is what ``tradeops agent run`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Iterable
from typing import Any

from tradeops.agent.book import Input
from tradeops.agent.breakers import BreakerSet, Verdict
from tradeops.agent.config import AgentConfig
from tradeops.agent.enforce import Enforcement, MeteredEnforcer, venue_working
from tradeops.agent.feeds import Feeds, LineCounter, session_config
from tradeops.agent.flatten import FlattenPolicy, RiskEnforcer
from tradeops.agent.metrics import AgentMetrics
from tradeops.agent.notify import Level, Message, Notifier
from tradeops.agent.reasons import Reason
from tradeops.agent.risk import CancelPolicy, RiskSession, RiskSessionError
from tradeops.agent.sections import Sections, read_urls
from tradeops.agent.server import Agent, StartupError, freeze_heap
from tradeops.agent.state import Transition
from tradeops.auditlog import append_audit
from tradeops.brokers.base import SessionRole
from tradeops.log import EventLog, open_log
from tradeops.tradingstate import TradingState

BREAKER_WHO = "agent:breaker"
STOP_WAIT_S = 10.0  # for a running halt sequence, on a graceful stop


class Assembly:
    """Everything around the listeners, built from the config's sections."""

    def __init__(self, config: AgentConfig, log: EventLog | None = None) -> None:
        self.config = config
        self.sections = config.sections or Sections()
        s = self.sections
        self.log = log or (open_log("agent", str(config.log)) if config.log else EventLog("agent"))
        self.metrics = AgentMetrics()
        self.audit_path = config.root / "state" / "audit.jsonl"
        self.agent: Agent | None = None
        self.risk: RiskSession | None = None
        self.enforcer: MeteredEnforcer | None = None
        if s.risk is not None:
            r = s.risk
            self.risk = RiskSession(
                session_config(r.fix, SessionRole.RISK, reconnect=False),
                log=self.log,
                reconnect_s=r.fix.reconnect_s,
                connect_timeout_s=r.connect_timeout_s,
                reset_on_logon=r.fix.store_dir is None,
            )
            cancel = CancelPolicy(mass_cancel=r.mass_cancel, per_order_rounds=r.per_order_rounds)
            flat = FlattenPolicy(
                default_tick=r.default_tick,
                collar_ticks=r.collar_ticks,
                timeout_s=r.flatten_timeout_s,
                cancel_timeout_s=r.cancel_timeout_s,
                cancel=cancel,
            )
            risk_enforcer = RiskEnforcer(self.risk, r.cancel_timeout_s, cancel, flat)
            self.enforcer = MeteredEnforcer(risk_enforcer, self.metrics)
        self.notifier: Notifier | None = None
        if s.notify_urls_file is not None:
            urls = read_urls(s.notify_urls_file)
            self.notifier = Notifier(urls, self.log, timeout_s=s.notify_timeout_s)
        self.breakers: BreakerSet | None = None
        self._stopping = False
        self.feeds: Feeds | None = None
        if s.breakers is not None and s.drop_copy is not None:
            counter = LineCounter(s.error_log) if s.error_log is not None else None
            self.breakers = BreakerSet(s.breakers, time.monotonic(), error_count=counter)
            self.feeds = Feeds(
                breakers=self.breakers,
                drop_copy=s.drop_copy,
                risk=self.risk,
                symbols=s.market_data,
                on_trips=self._breaker_trips,
                metrics=self.metrics,
                log=self.log,
            )
        self.enforcement = Enforcement(
            s.enforcement,
            config.root,
            enforcer=self.enforcer,
            notifier=self.notifier,
            metrics=self.metrics,
            log=self.log,
            audit=self._audit,
            drop_copy=self._drop_copy_view if self.feeds is not None else None,
        )
        self.metrics_address: tuple[str, int] | None = None
        self._metrics_server: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def _drop_copy_view(self) -> tuple[list[str], str | None]:
        """The drop copy's working orders (ClOrdIDs) and why it is down, for the halt's confirm."""
        assert self.feeds is not None
        book = self.feeds.book
        return [o.cl_ord_id for o in book.working.values()], book.input_down(Input.DROP_COPY)

    # ------------------------------------------------------------ lifecycle
    async def start(self, agent: Agent) -> None:
        """Metrics, notifier, risk session, feeds; enforce a CLI halt adopted at start."""
        self.agent = agent
        snap = agent.machine.snapshot
        self.metrics.set_state(snap.state)
        if self.sections.metrics_listen is not None:
            self._serve_metrics(*self.sections.metrics_listen)
        if self.notifier is not None:
            self.notifier.start()
        if self.risk is not None:
            self._tasks.append(asyncio.create_task(self._risk_up(), name="risk-session-up"))
        if self.feeds is not None:
            self.feeds.start()
        self._tasks.append(asyncio.create_task(self._watch_risk(), name="risk-metrics"))
        self._tasks.append(asyncio.create_task(self.enforcement.watch(), name="strategy-pids"))
        self._notify("start", f"agent started {snap.state.name}", Level.INFO, self._describe())
        if agent.machine.adopted_at_start and snap.state is TradingState.HALTED:
            self.log.event("enforce_adopted_halt", who=snap.who, why=snap.why)
            self.enforcement.request(snap.who or "cli", f"adopted at start: {snap.why}")

    async def stop(self) -> None:
        """Let a running halt sequence finish (bounded), then close everything.

        From here on the breakers trip nothing: closing the agent's own sessions
        must not look like a lost feed (a BREAKER_FAULT halt started by a
        stopping agent would freeze the strategies and die half done). The
        strategies' protection while no agent runs is the liveness file.
        """
        self._stopping = True
        await self.enforcement.wait(STOP_WAIT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.feeds is not None:
            await self.feeds.stop()
        if self.risk is not None:
            await self.risk.close()
        if self.notifier is not None:
            await self.notifier.stop()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            thread.join(2.0)

    def _serve_metrics(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(port, addr=host, registry=self.metrics.registry)
        except OSError as exc:
            raise StartupError(f"metrics.listen {host}:{port}: {exc.strerror or exc}") from None
        self._metrics_server = (server, thread)
        self.metrics_address = (host, int(server.server_port))
        self.log.event("metrics_listen", address=f"{host}:{self.metrics_address[1]}")

    async def _risk_up(self) -> None:
        """Log the risk session on (and keep it warm); retry until it works or we stop."""
        assert self.risk is not None
        delay = max(0.05, self.risk.reconnect_s)
        for attempt in range(1, 1_000_000_000):
            try:
                await self.risk.start(attempts=1, keep_warm=True)
                self.log.event("risk_session_up", attempts=attempt)
                return
            except RiskSessionError as exc:
                if attempt == 1 or attempt % 60 == 0:
                    self.log.event("risk_session_down", attempt=attempt, error=str(exc))
            await asyncio.sleep(delay)

    async def _watch_risk(self) -> None:
        while True:
            up = self.risk is not None and self.risk.logged_on
            self.metrics.risk_session_up.set(1 if up else 0)
            await asyncio.sleep(0.5)

    # ---------------------------------------------------------------- hooks
    def tripped(self, transition: Transition, source: str) -> None:
        """Metrics at once; the halt sequence in the background; REDUCING: a notification."""
        before, after = transition.before, transition.after
        self.metrics.set_state(after.state)
        self.metrics.tripped(r.value for r in after.reasons if r not in before.reasons)
        if after.state is TradingState.HALTED and before.state < TradingState.HALTED:
            self.enforcement.request(after.who, after.why)
        elif after.state is TradingState.REDUCING:
            text = f"REDUCING by {after.who}: {after.why}"
            self._notify("trip", "tradeops agent: REDUCING", Level.WARNING, text)

    async def resync(self) -> dict[str, Any]:
        """The breakers' book takes the venue's positions before a reset is judged."""
        if self.feeds is None:
            return {}
        return await self.feeds.resync_positions()

    def holding(self) -> Iterable[Reason]:
        """What the breakers say still holds."""
        return self.breakers.holding(time.monotonic()) if self.breakers is not None else ()

    def reset_done(self, transition: Transition, force: bool) -> dict[str, Any]:
        """Re-arm the breakers; metrics; a notification."""
        self.metrics.set_state(transition.after.state)
        self.metrics.resets.labels(forced=str(force).lower()).inc()
        extra: dict[str, Any] = {}
        if self.breakers is not None:
            rearm = self.breakers.rearm(time.monotonic(), force)
            extra["breakers"] = {
                "rearmed": list(rearm.rearmed),
                "holding": [r.value for r in rearm.holding],
                "suppressed": list(rearm.suppressed),
            }
        after = transition.after
        text = f"{transition.before.state.name} -> {after.state.name} by {after.who}: {after.why}"
        if force:
            text += " (FORCED)"
        self._notify("reset", f"tradeops agent: reset to {after.state.name}", Level.INFO, text)
        return extra

    def heartbeat(self, strategy: str) -> None:
        """A strategy's heartbeat, to the heartbeat breaker."""
        if self.breakers is not None:
            self.breakers.book.heartbeat(strategy, time.monotonic())

    def status(self) -> dict[str, Any]:
        """Risk session, last enforcement, breakers, venue working orders."""
        out: dict[str, Any] = {}
        if self.risk is not None:
            st = self.risk.status()
            out["risk"] = {k: st[k] for k in ("session", "logged_on", "logons", "disconnects")}
            out["risk"]["last_disconnect_reason"] = str(st["last_disconnect_reason"] or "")[:120]
        last = self.enforcement.last
        out["enforcement"] = None if last is None else last.as_dict()
        if self.breakers is not None:
            out["breakers"] = {
                b.name: [b.arm.value, _num(b.value), _num(b.threshold)]
                for b in self.breakers.status()
                if b.enabled
            }
        cancel = self.enforcer.last_cancel if self.enforcer is not None else None
        working = venue_working(cancel) if cancel is not None else -1
        out["venue_working_orders"] = working if working >= 0 else None
        if self.metrics_address is not None:
            out["metrics"] = f"{self.metrics_address[0]}:{self.metrics_address[1]}"
        return out

    def command_done(self, cmd: str, listener: str, seconds: float, code: str | None) -> None:
        """Command latency and refusals."""
        self.metrics.command_seconds.labels(cmd=cmd, listener=listener).observe(seconds)
        if code is not None:
            self.metrics.refused.labels(code=code, listener=listener).inc()

    def refused(self, code: str, listener: str) -> None:
        """A refused frame."""
        self.metrics.refused.labels(code=code, listener=listener).inc()

    def beat(self, now: float) -> None:
        """The liveness file was written."""
        self.metrics.heartbeat_timestamp.set(now)

    # -------------------------------------------------------------- helpers
    def _breaker_trips(self, verdicts: tuple[Verdict, ...]) -> None:
        agent = self.agent
        if agent is None:
            return
        if self._stopping:
            for v in verdicts:
                self.log.event("breaker_trip_ignored", breaker=v.breaker, why="agent stopping")
            return
        for v in verdicts:
            if v.reason is None:
                continue
            self.log.event("breaker_trip", breaker=v.breaker, reason=v.reason.value, text=v.text)
            agent.trip(v.target, v.reason, BREAKER_WHO, v.text, source="breaker")

    def _notify(self, event: str, title: str, level: Level, body: str) -> None:
        if self.notifier is not None:
            self.notifier.post(Message(event, title, body, level))

    def _describe(self) -> str:
        s = self.sections
        parts = [f"root {self.config.root}"]
        if s.risk is not None:
            parts.append(f"risk {s.risk.fix.sender_comp_id}")
        if s.drop_copy is not None:
            parts.append(f"drop copy {s.drop_copy.sender_comp_id}")
        if self.breakers is not None:
            parts.append(f"{len(self.breakers.breakers)} breakers")
        return ", ".join(parts)

    def _audit(self, event: str, **fields: Any) -> None:
        try:
            append_audit(self.audit_path, "agent", event, **fields)
        except OSError as exc:
            self.log.event("audit-failed", audit_event=event, error=str(exc))


def _num(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def run(config: AgentConfig) -> int:
    """Run the assembled agent until SIGTERM or SIGINT; return the exit status."""
    assembly = Assembly(config)
    agent = Agent(config, enforcer=assembly.enforcer, log=assembly.log, hooks=assembly)
    freeze_heap()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        await agent.serve()

    asyncio.run(main())
    return 0
