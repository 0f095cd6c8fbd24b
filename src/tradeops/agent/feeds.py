"""The breakers' inputs: the agent's drop copy, market data on the risk session, a timer.

* The **drop copy** is a FIX session of its own (reconnecting every
  ``reconnect_s``): every ExecutionReport, CancelReject and Reject goes to
  ``BreakerSet.on_event``; its logon, logout and disconnect to
  ``book.on_session``. FIX session-level traffic (Heartbeats) is not an
  application event, so the timer reads the connection's last-received time
  and ``touch``es the book: a quiet account is not a dead feed.
* **Market data** is subscribed on the risk session (the simulator's drop
  copy is receive-only), again at every logon; quotes go to ``on_event``, the
  risk session's status to ``on_session(market_data)``. Without market data
  configured the book does not expect it.
* The **timer** (every ``TICK_S``) calls ``tick(now)``: silence is caught
  there (stale feeds, lost heartbeats, dead inputs), and publishes the breaker
  values to the metrics once a second.

Every evaluation's new trips go to ``on_trips`` (the assembly trips the state
machine). Time is ``time.monotonic()`` throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradeops.agent.book import Input
from tradeops.agent.breakers import BreakerSet, Evaluation, Verdict
from tradeops.agent.metrics import AgentMetrics
from tradeops.agent.risk import RiskSession
from tradeops.agent.sections import FixConfig
from tradeops.brokers.base import BrokerEvent, Quote, SessionConfig, SessionRole, SessionStatus
from tradeops.brokers.fix import FixSession
from tradeops.log import EventLog

TICK_S = 0.1
METRICS_EVERY_S = 1.0
CONNECT_TIMEOUT_S = 5.0
RESYNC_TIMEOUT_S = 3.0  # the venue's answer to a RequestForPositions


def session_config(fix: FixConfig, role: SessionRole, reconnect: bool) -> SessionConfig:
    """A ``SessionConfig`` of one of the agent's FIX sessions."""
    extra = {"reconnect_s": str(fix.reconnect_s)} if reconnect else {}
    return SessionConfig(
        host=fix.host,
        port=fix.port,
        sender_comp_id=fix.sender_comp_id,
        target_comp_id=fix.target_comp_id,
        role=role,
        account=fix.account,
        heartbeat_s=fix.heartbeat_s,
        store_dir=str(fix.store_dir) if fix.store_dir else None,
        extra=extra,
    )


class LineCounter:
    """Lines appended to a file since the agent started (``error_burst``'s counter).

    A file that shrank (rotated) is read from its start again; a missing file
    counts nothing new.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def __call__(self) -> int:
        """The number of lines so far."""
        size = self._size()
        if size < self._offset:
            self._offset = 0
        if size > self._offset:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read(size - self._offset)
            self.count += data.count(b"\n")
            self._offset = size
        return self.count


class Feeds:
    """Drop copy, market data and the timer, feeding one :class:`BreakerSet`."""

    def __init__(
        self,
        *,
        breakers: BreakerSet,
        drop_copy: FixConfig,
        risk: RiskSession | None,
        symbols: tuple[str, ...],
        on_trips: Callable[[tuple[Verdict, ...]], None],
        metrics: AgentMetrics,
        log: EventLog,
    ) -> None:
        self.breakers = breakers
        self.book = breakers.book
        self.risk = risk
        self.symbols = symbols
        self.on_trips = on_trips
        self.metrics = metrics
        self.log = log
        store = drop_copy.store_dir is None
        self.drop_copy = FixSession(
            session_config(drop_copy, SessionRole.DROP_COPY, reconnect=True),
            self._on_drop_copy,
            log=log,
            reset_on_logon=store,
        )
        self._last_seen = 0.0
        self._md_ids = itertools.count(1)
        self._tasks: list[asyncio.Task[Any]] = []
        self.events = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect the drop copy, listen to the risk session, start the timer."""
        now = time.monotonic()
        if self.symbols and self.risk is not None:
            self.risk.listeners.append(self._on_risk)
        else:
            self.book.expect(Input.MARKET_DATA, False, now)
        self._tasks.append(asyncio.create_task(self._connect(), name="drop-copy-connect"))
        self._tasks.append(asyncio.create_task(self._timer(), name="breaker-timer"))

    async def stop(self) -> None:
        """Stop the timer and close the drop copy."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.drop_copy.close()

    async def _connect(self) -> None:
        """First logon of the drop copy (the session reconnects by itself after a drop)."""
        cfg = self.drop_copy.config
        delay = max(0.05, float(cfg.extra.get("reconnect_s", "1")))
        for attempt in itertools.count(1):
            try:
                await self.drop_copy.connect(timeout_s=CONNECT_TIMEOUT_S)
                return
            except (ConnectionError, TimeoutError, OSError) as exc:
                if attempt == 1 or attempt % 60 == 0:
                    self.log.event("drop_copy_connect_failed", attempt=attempt, error=str(exc))
            await asyncio.sleep(delay)

    # --------------------------------------------------------------- inputs
    def _on_drop_copy(self, event: BrokerEvent) -> None:
        now = time.monotonic()
        if isinstance(event, SessionStatus):
            self.book.on_session(Input.DROP_COPY, event.state, now)
            self.log.event("drop_copy_session", state=event.state, detail=event.detail)
            self._judge(self.breakers.evaluate(now))
            return
        self.events += 1
        self._judge(self.breakers.on_event(event, now))

    def _on_risk(self, event: BrokerEvent) -> None:
        now = time.monotonic()
        if isinstance(event, Quote):
            self._judge(self.breakers.on_event(event, now))
        elif isinstance(event, SessionStatus):
            self.book.on_session(Input.MARKET_DATA, event.state, now)
            if event.state == "logged_on":
                task = asyncio.create_task(self._subscribe(), name="md-subscribe")
                self._tasks.append(task)
                resync = asyncio.create_task(self.resync_positions(), name="positions-resync")
                self._tasks.append(resync)
            self._judge(self.breakers.evaluate(now))

    async def _subscribe(self) -> None:
        assert self.risk is not None
        md_req_id = f"AGENTMD{next(self._md_ids)}"
        try:
            await self.risk.fix.subscribe_market_data(md_req_id, list(self.symbols))
        except ConnectionError as exc:
            self.log.event("md_subscribe_failed", error=str(exc))
        else:
            self.log.event("md_subscribed", md_req_id=md_req_id, symbols=len(self.symbols))

    async def resync_positions(self) -> dict[str, Any]:
        """Seed the book with the venue's positions (at each risk logon, before a reset).

        The book counts only the fills it saw since the agent started; the venue
        knows the account's true positions (earlier days, a restart, a flatten).
        A symbol the venue reports nothing for is flat. Not done when the answer
        is incomplete: the book is then left as it was, and says so.
        """
        if self.risk is None or not self.risk.logged_on:
            return {"positions": "not resynced: no risk session logged on"}
        try:
            answer = await self.risk.request_positions(time.monotonic() + RESYNC_TIMEOUT_S)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self.log.event("positions_resync_failed", error=str(exc))
            return {"positions": f"not resynced: {exc}"}
        if not answer.complete:
            self.log.event("positions_resync_failed", error="incomplete answer")
            return {"positions": "not resynced: the venue's answer was incomplete"}
        now = time.monotonic()
        reported = {p.symbol: p for p in answer.positions}
        for symbol in set(self.book.symbols) | set(reported):
            p = reported.get(symbol)
            qty = p.qty if p is not None else Decimal(0)
            px = (p.avg_px or p.settl_px or Decimal(0)) if p is not None else Decimal(0)
            self.book.seed_position(symbol, qty, px, now)
        self.log.event("positions_resynced", symbols=len(reported))
        return {"positions": {s: str(p.qty) for s, p in sorted(reported.items())}}

    def _judge(self, evaluation: Evaluation) -> None:
        if evaluation.new_trips:
            self.on_trips(evaluation.new_trips)

    # ---------------------------------------------------------------- timer
    def _touch_from_session_traffic(self, now: float) -> None:
        """Heartbeats are traffic too: the connection's last-received time (wall clock)."""
        if not self.drop_copy.is_logged_on:
            return
        conn = self.drop_copy.connection
        seen = float(getattr(conn, "_message_last_time", 0.0) or 0.0)  # asyncfix's receive time
        if seen > self._last_seen:
            self._last_seen = seen
            self.book.touch(Input.DROP_COPY, now - max(0.0, time.time() - seen))

    async def _timer(self) -> None:
        next_metrics = 0.0
        while True:
            now = time.monotonic()
            self._touch_from_session_traffic(now)
            self._judge(self.breakers.tick(now))
            if now >= next_metrics:
                self.publish_metrics()
                next_metrics = now + METRICS_EVERY_S
            await asyncio.sleep(TICK_S)

    def publish_metrics(self) -> None:
        """Each breaker's value and threshold to the metrics (NaN: not evaluated yet)."""
        for b in self.breakers.status():
            value = b.value if math.isfinite(b.value) else -1.0
            threshold = b.threshold if math.isfinite(b.threshold) else -1.0
            self.metrics.set_breaker(b.name, value, threshold)
