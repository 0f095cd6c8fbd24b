"""The agent's risk session: a warm FIX session that empties the account's book.

:class:`RiskSession` owns one :class:`tradeops.brokers.fix.FixSession` on the
account's **risk** session, logs it on at start and keeps it logged on (a
reconnect loop of its own, one connect at a time). ``cancel_all`` does, in
order:

1. make sure the session is logged on (bounded reconnects);
2. OrderMassCancelRequest (q, 530=7: every order of the account, whichever
   session placed it) and, right behind it on the session, an
   OrderMassStatusRequest (AF, 585=7); wait for the OrderMassCancelReport (r)
   and the status's ExecType=I reports until the last one (912=Y). "Clean"
   only when the venue answers zero working orders;
3. if that first answer is not clean (or did not come), ask for the status
   again now that the mass cancel was acknowledged;
4. otherwise an OrderCancelRequest (F) for each order the venue still reports,
   then confirm again (bounded rounds);
5. still not clean: the exchange-side kill switch, when one is injected, then a
   last confirmation.

Every wait is bounded by the call's ``timeout_s``; a lost session is reconnected
and the failed step retried. ``flatten`` is in :mod:`tradeops.agent.flatten`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from asyncfix import FIXMessage, FMsg, FTag

from tradeops.agent.riskreport import (
    CancelReport,
    PositionsAnswer,
    StatusAnswer,
    WorkingOrder,
    status_answer,
)
from tradeops.brokers.base import (
    BrokerEvent,
    CancelReject,
    Execution,
    MassCancelReport,
    NewOrder,
    Position,
    PositionsAck,
    Quote,
    Reject,
    SessionConfig,
    SessionStatus,
)
from tradeops.brokers.fix import FixSession
from tradeops.brokers.fixproto import fix_utc_now
from tradeops.log import EventLog

T = TypeVar("T")
# The exchange-side kill switch: (account, reason) -> True once the venue engaged it.
KillSwitch = Callable[[str, str], Awaitable[bool]]
TERMINAL = frozenset({"2", "3", "4", "8", "C"})  # Filled, DoneForDay, Canceled, Rejected, Expired


class RiskSessionError(Exception):
    """A request of the risk session failed (session down, venue reject, no answer)."""


@dataclass(frozen=True, slots=True)
class CancelPolicy:
    """How ``cancel_all`` works; every count and wait is bounded."""

    mass_cancel: bool = True  # False: venues without OrderMassCancelRequest, per-order only
    per_order_rounds: int = 3  # rounds of per-order cancels, each followed by a confirmation
    per_order_rate_per_s: float = 0.0  # pace per-order cancels (venue throttles); 0 = no pacing
    request_attempts: int = 3  # tries of one request across reconnects
    connect_attempts: int = 5
    use_kill_switch: bool = True  # the last resort, when a kill switch is injected


@dataclass(frozen=True, slots=True)
class MassCancelSent:
    """A mass cancel's acknowledgement and the status answer sent right behind it.

    ``status`` is None when that answer failed (the caller asks again); the
    times are ``time.monotonic()`` values.
    """

    ack: MassCancelReport
    acked_at: float
    status: StatusAnswer | None
    answered_at: float


class _OrderWatch:
    """Waits for an order (or a cancel) of ours to end; sums its fills."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[BrokerEvent] = loop.create_future()
        self.filled = Decimal(0)
        self.last: Execution | None = None


class RiskSession:
    """The account's risk session, kept logged on; cancels and flattens from the venue's view."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        log: EventLog | None = None,
        reconnect_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        kill_switch: KillSwitch | None = None,
        id_prefix: str = "RISK",
        reset_on_logon: bool = False,
    ) -> None:
        extra = dict(config.extra or {})
        extra["reconnect_s"] = "0"  # reconnects are ours: one connect at a time
        self.config = SessionConfig(
            host=config.host,
            port=config.port,
            sender_comp_id=config.sender_comp_id,
            target_comp_id=config.target_comp_id,
            role=config.role,
            account=config.account,
            heartbeat_s=config.heartbeat_s,
            store_dir=config.store_dir,
            extra=extra,
        )
        self.account = config.account or ""
        self.log = (log or EventLog("agent")).bind(risk_session=config.sender_comp_id)
        self.reconnect_s = reconnect_s
        self.connect_timeout_s = connect_timeout_s
        self.kill_switch = kill_switch
        self.fix = FixSession(
            self.config, self._on_event, log=self.log, reset_on_logon=reset_on_logon
        )
        self.quotes: dict[str, Quote] = {}
        # Called with every event after the session's own handling (the agent's breakers
        # read quotes and session status from here); a listener must not block or raise.
        self.listeners: list[Callable[[BrokerEvent], None]] = []
        self._ids = itertools.count(1)
        self._id_base = f"{id_prefix}{time.time_ns() // 1_000_000:x}"
        self._lock = asyncio.Lock()
        self._down = asyncio.Event()
        self._closing = False
        self._warm_task: asyncio.Task[None] | None = None
        self._mass_cancel: dict[str, asyncio.Future[MassCancelReport]] = {}
        self._status: dict[str, tuple[list[Execution], asyncio.Future[None]]] = {}
        self._positions: dict[str, tuple[list[PositionsAck | Position], asyncio.Future[None]]] = {}
        self._orders: dict[str, _OrderWatch] = {}
        self.stats: dict[str, Any] = {
            "logons": 0,
            "disconnects": 0,
            "reconnect_attempts": 0,
            "last_logon": None,
            "last_disconnect": None,
            "last_disconnect_reason": None,
            "last_cancel_all_ms": None,
            "last_cancel_all_clean": None,
        }

    # ------------------------------------------------------------ lifecycle
    @property
    def logged_on(self) -> bool:
        """True while the risk session is logged on."""
        return self.fix.is_logged_on

    def status(self) -> dict[str, Any]:
        """Session status for metrics and ``status`` commands."""
        return {
            "session": self.config.sender_comp_id,
            "account": self.account,
            "logged_on": self.logged_on,
            "keep_warm": self._warm_task is not None and not self._warm_task.done(),
            **self.stats,
        }

    async def start(self, attempts: int = 5, keep_warm: bool = True) -> None:
        """Log on (bounded attempts) and, with ``keep_warm``, reconnect whenever it drops.

        Raises ``RiskSessionError`` when no attempt logged on.
        """
        self._closing = False
        deadline = time.monotonic() + attempts * (self.connect_timeout_s + self.reconnect_s)
        if not await self.ensure_logged_on(deadline, attempts):
            raise RiskSessionError(
                f"risk session {self.config.sender_comp_id} could not log on after"
                f" {attempts} attempts: {self.fix.last_disconnect_reason}"
            )
        if keep_warm and self._warm_task is None:
            self._warm_task = asyncio.create_task(self._keep_warm())

    async def close(self) -> None:
        """Stop reconnecting, log out and close the session."""
        self._closing = True
        task, self._warm_task = self._warm_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_all(RiskSessionError("risk session closed"))
        with contextlib.suppress(Exception):
            await self.fix.close()

    async def _keep_warm(self) -> None:
        """Reconnect after every drop, every ``reconnect_s``, until closed."""
        while not self._closing:
            await self._down.wait()
            if self._closing:
                return
            await asyncio.sleep(self.reconnect_s)
            if self.logged_on:
                self._down.clear()
                continue
            deadline = time.monotonic() + self.connect_timeout_s
            if await self.ensure_logged_on(deadline, attempts=1):
                self._down.clear()

    async def ensure_logged_on(self, deadline: float, attempts: int) -> bool:
        """Log on if needed: at most ``attempts`` connects, none past ``deadline`` (monotonic)."""
        for attempt in range(max(1, attempts)):
            if self.logged_on:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            async with self._lock:
                if self.logged_on:
                    return True
                self.stats["reconnect_attempts"] += 1
                try:
                    await self.fix.connect(timeout_s=min(self.connect_timeout_s, remaining))
                except (ConnectionError, TimeoutError, OSError) as exc:
                    self.log.event("risk_connect_failed", attempt=attempt + 1, error=str(exc))
                else:
                    return True
            pause = min(self.reconnect_s, deadline - time.monotonic())
            if attempt + 1 < attempts and pause > 0:
                await asyncio.sleep(pause)
        return self.logged_on

    # ------------------------------------------------------------------ events
    def _on_event(self, event: BrokerEvent) -> None:
        self._handle(event)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # a listener must never break the risk session
                self.log.event("risk_listener_failed", error=f"{type(exc).__name__}: {exc}")

    def _handle(self, event: BrokerEvent) -> None:
        if isinstance(event, Execution):
            self._on_execution(event)
        elif isinstance(event, MassCancelReport):
            fut = self._mass_cancel.get(event.cl_ord_id)
            if fut is not None and not fut.done():
                fut.set_result(event)
        elif isinstance(event, PositionsAck | Position):
            self._on_position(event)
        elif isinstance(event, CancelReject):
            watch = self._orders.get(event.cl_ord_id)
            if watch is not None and not watch.done.done():
                watch.done.set_result(event)
        elif isinstance(event, Quote):
            self.quotes[event.symbol] = event
        elif isinstance(event, Reject):
            self._on_reject(event)
        elif isinstance(event, SessionStatus):
            self._on_status(event)

    def _on_execution(self, ex: Execution) -> None:
        if ex.mass_status_req_id is not None and ex.exec_type == "I":
            entry = self._status.get(ex.mass_status_req_id)
            if entry is not None:
                entry[0].append(ex)
                if ex.last_rpt_requested and not entry[1].done():
                    entry[1].set_result(None)
            return
        watch = self._orders.get(ex.cl_ord_id)
        if watch is None:
            return
        watch.last = ex
        if ex.exec_type == "F":
            watch.filled += ex.last_qty
        if ex.ord_status in TERMINAL and not watch.done.done():
            watch.done.set_result(ex)

    def _on_position(self, event: PositionsAck | Position) -> None:
        entry = self._positions.get(event.pos_req_id or "")
        if entry is None:
            return
        items, fut = entry
        items.append(event)
        ack = next((i for i in items if isinstance(i, PositionsAck)), None)
        if ack is not None and not fut.done():
            reports = sum(1 for i in items if isinstance(i, Position))
            if ack.refused or ack.complete_with(reports):
                fut.set_result(None)

    def _on_reject(self, event: Reject) -> None:
        self.log.event("risk_reject", ref_msg_type=event.ref_msg_type, reason=event.reason)
        error = RiskSessionError(f"venue rejected {event.ref_msg_type}: {event.reason}")
        if event.ref_msg_type == "q":
            futures: list[asyncio.Future[Any]] = list(self._mass_cancel.values())
        elif event.ref_msg_type == "AF":
            futures = [f for _unused, f in self._status.values()]
        else:
            return  # AN failures come as a PositionsAck; order rejects as ExecutionReports
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)

    def _on_status(self, event: SessionStatus) -> None:
        now = time.time()
        if event.state == "logged_on":
            self.stats["logons"] += 1
            self.stats["last_logon"] = now
            self._down.clear()
            return
        self.stats["disconnects"] += 1
        self.stats["last_disconnect"] = now
        self.stats["last_disconnect_reason"] = event.detail
        self._down.set()
        self._fail_all(ConnectionError(f"risk session {event.state}: {event.detail}"))

    def _fail_all(self, error: Exception) -> None:
        futures: list[asyncio.Future[Any]] = [
            *self._mass_cancel.values(),
            *(f for _unused, f in self._status.values()),
            *(f for _unused, f in self._positions.values()),
        ]
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: a failed wait nobody awaits is not an error

    # --------------------------------------------------------------- requests
    def next_id(self, kind: str) -> str:
        """A request id unique to this process and run (ClOrdIDs must not repeat)."""
        return f"{self._id_base}-{kind}{next(self._ids)}"

    async def _wait(self, fut: asyncio.Future[T], deadline: float, what: str) -> T:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no time left for {what}")
        try:
            return await asyncio.wait_for(asyncio.shield(fut), remaining)
        except TimeoutError:
            raise TimeoutError(f"no answer to {what} in {remaining:.3f}s") from None

    async def request_mass_cancel(self, deadline: float) -> MassCancelSent:
        """Send OrderMassCancelRequest (every order of the account) and a status request.

        The OrderMassStatusRequest goes right behind the cancel, without waiting
        for its report: a venue handles one session's messages in order, so its
        answer normally sees the book after the cancel, a round trip sooner. An
        answer that still lists working orders (a venue that cancels after it
        acknowledges) is only a first look; the caller asks again. Raises
        RiskSessionError when the venue rejects the mass cancel.
        """
        cl_ord_id = self.next_id("MC")
        fut: asyncio.Future[MassCancelReport] = asyncio.get_running_loop().create_future()
        self._mass_cancel[cl_ord_id] = fut
        status: asyncio.Future[StatusAnswer] | None = None
        try:
            await self.fix.mass_cancel(cl_ord_id)
            status = asyncio.ensure_future(self.request_status(deadline))
            ack = await self._wait(fut, deadline, f"mass cancel {cl_ord_id}")
            acked_at = time.monotonic()
            if ack.response == "0":
                raise RiskSessionError(
                    f"mass cancel {cl_ord_id} rejected (reason {ack.reject_reason})"
                )
            try:
                answer: StatusAnswer | None = await status
            except (ConnectionError, TimeoutError, RiskSessionError) as exc:
                self.log.event(
                    "risk_request_failed", what="mass_status_after_cancel", error=str(exc)
                )
                answer = None
            return MassCancelSent(ack, acked_at, answer, time.monotonic())
        finally:
            self._mass_cancel.pop(cl_ord_id, None)
            if status is not None and not status.done():
                status.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await status
            elif status is not None and not status.cancelled():
                status.exception()  # retrieved: a failed status nobody awaited is no error

    async def request_status(self, deadline: float) -> StatusAnswer:
        """Send OrderMassStatusRequest (all orders); collect reports until the last one."""
        req_id = self.next_id("MS")
        reports: list[Execution] = []
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._status[req_id] = (reports, fut)
        try:
            await self.fix.mass_status(req_id)
            await self._wait(fut, deadline, f"mass status {req_id}")
        finally:
            self._status.pop(req_id, None)
        return status_answer(req_id, reports)

    async def request_positions(self, deadline: float) -> PositionsAnswer:
        """Send RequestForPositions; collect the ack and its PositionReports."""
        req_id = self.next_id("PR")
        items: list[PositionsAck | Position] = []
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._positions[req_id] = (items, fut)
        try:
            await self.fix.request_positions(req_id)
            await self._wait(fut, deadline, f"positions {req_id}")
        finally:
            self._positions.pop(req_id, None)
        ack = next((i for i in items if isinstance(i, PositionsAck)), None)
        return PositionsAnswer(req_id, ack, tuple(i for i in items if isinstance(i, Position)))

    def watch(self, cl_ord_id: str) -> _OrderWatch:
        """Start watching ``cl_ord_id`` (call before sending it)."""
        watch = _OrderWatch(asyncio.get_running_loop())
        self._orders[cl_ord_id] = watch
        return watch

    def unwatch(self, cl_ord_id: str) -> None:
        """Stop watching ``cl_ord_id``."""
        self._orders.pop(cl_ord_id, None)

    async def send_order(self, order: NewOrder) -> None:
        """Send a NewOrderSingle on the risk session (the agent's own flattening orders)."""
        await self.fix.send_order(order)

    async def cancel_order(self, order: WorkingOrder, cl_ord_id: str) -> None:
        """OrderCancelRequest for a venue-reported order, by OrderID and ClOrdID."""
        msg = FIXMessage(FMsg.ORDERCANCELREQUEST)
        msg[FTag.OrigClOrdID] = order.cl_ord_id
        msg[FTag.OrderID] = order.order_id
        msg[FTag.ClOrdID] = cl_ord_id
        if self.account:
            msg[FTag.Account] = self.account
        msg[FTag.Symbol] = order.symbol
        msg[FTag.Side] = str(order.side)
        msg[FTag.TransactTime] = fix_utc_now()
        await self.fix.send_raw(msg)

    async def retrying(
        self,
        what: str,
        call: Callable[[float], Awaitable[T]],
        deadline: float,
        policy: CancelPolicy,
        report: CancelReport | None = None,
    ) -> T:
        """Run ``call(deadline)``; on a lost session or no answer, reconnect and try again."""
        last: Exception | None = None
        for attempt in range(max(1, policy.request_attempts)):
            if not self.logged_on:
                before = self.stats["logons"]
                await self.ensure_logged_on(deadline, policy.connect_attempts)
                if report is not None and self.stats["logons"] > before:
                    report.reconnects += self.stats["logons"] - before
            try:
                return await call(deadline)
            except (ConnectionError, TimeoutError, RiskSessionError) as exc:
                last = exc
                self.log.event(
                    "risk_request_failed", what=what, attempt=attempt + 1, error=str(exc)
                )
                if report is not None:
                    report.errors.append(f"{what}: {exc}")
                if time.monotonic() >= deadline:
                    break
        raise RiskSessionError(f"{what} failed: {last}")

    # -------------------------------------------------------------- cancel all
    async def cancel_all(
        self, who: str, why: str, timeout_s: float = 5.0, policy: CancelPolicy | None = None
    ) -> CancelReport:
        """Cancel every working order of the account and confirm zero at the venue.

        Never raises for a venue or session failure: the report says what was
        done and ``clean`` is False unless the venue confirmed zero working orders.
        """
        policy = policy or CancelPolicy()
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        report = CancelReport(who=who, why=why, account=self.account)
        self.log.event("cancel_all_start", who=who, why=why, timeout_s=timeout_s)
        answer: StatusAnswer | None = None
        try:
            answer = await self._cancel_steps(report, policy, t0, deadline)
        except Exception as exc:  # the report must come back whatever happened
            report.errors.append(f"{type(exc).__name__}: {exc}")
        if answer is None or not answer.clean:
            report.exchange_kill_switch_needed = True
            answer = await self._last_resort(report, policy, answer, deadline)
        report.settle(answer, time.monotonic() - t0)
        self.stats["last_cancel_all_ms"] = report.total_ms
        self.stats["last_cancel_all_clean"] = report.clean
        self.log.event("cancel_all_done", **report.to_dict())
        return report

    async def _cancel_steps(
        self, report: CancelReport, policy: CancelPolicy, t0: float, deadline: float
    ) -> StatusAnswer | None:
        step = time.monotonic()
        if not self.logged_on:
            before = self.stats["logons"]
            await self.ensure_logged_on(deadline, policy.connect_attempts)
            report.reconnects += self.stats["logons"] - before
            report.step("connect", time.monotonic() - step)
        if policy.mass_cancel:
            step = time.monotonic()
            try:
                sent = await self.retrying(
                    "mass_cancel", self.request_mass_cancel, deadline, policy, report
                )
            except RiskSessionError as exc:
                report.errors.append(str(exc))
                report.step("mass_cancel", time.monotonic() - step)
            else:
                report.cancelled_by_mass += sent.ack.total_affected
                report.step("mass_cancel", sent.acked_at - step)
                if sent.status is not None:
                    report.step("confirm", max(0.0, sent.answered_at - sent.acked_at))
                    if sent.status.clean:
                        report.confirm_ms = round((sent.answered_at - t0) * 1000.0, 3)
                        return sent.status
        answer: StatusAnswer | None = None
        for round_no in range(policy.per_order_rounds + 1):
            step = time.monotonic()
            answer = await self.retrying(
                "mass_status", self.request_status, deadline, policy, report
            )
            report.step("confirm", time.monotonic() - step)
            if answer.clean:
                report.confirm_ms = round((time.monotonic() - t0) * 1000.0, 3)
                return answer
            if round_no == policy.per_order_rounds or not answer.working:
                return answer  # incomplete answers are retried by the next round only if any
            step = time.monotonic()
            report.cancelled_by_order += await self._cancel_each(answer.working, deadline, policy)
            report.step("per_order", time.monotonic() - step)
        return answer

    async def _cancel_each(
        self, orders: tuple[WorkingOrder, ...], deadline: float, policy: CancelPolicy
    ) -> int:
        """One OrderCancelRequest per order; count those the venue confirmed cancelled."""
        watches: dict[str, _OrderWatch] = {}
        gap = 1.0 / policy.per_order_rate_per_s if policy.per_order_rate_per_s > 0 else 0.0
        try:
            for order in orders:
                cl_ord_id = self.next_id("CX")
                watches[cl_ord_id] = self.watch(cl_ord_id)
                try:
                    await self.cancel_order(order, cl_ord_id)
                except ConnectionError as exc:
                    self.log.event(
                        "per_order_cancel_unsent", order_id=order.order_id, error=str(exc)
                    )
                    break
                if gap:
                    await asyncio.sleep(gap)
            pending = [w.done for w in watches.values()]
            remaining = deadline - time.monotonic()
            if pending and remaining > 0:
                await asyncio.wait(pending, timeout=remaining)
        finally:
            for cl_ord_id in watches:
                self.unwatch(cl_ord_id)
        cancelled = 0
        for watch in watches.values():
            if watch.done.done() and not watch.done.cancelled():
                ev = watch.done.result()
                if isinstance(ev, Execution) and ev.exec_type == "4":
                    cancelled += 1
        return cancelled

    async def _last_resort(
        self,
        report: CancelReport,
        policy: CancelPolicy,
        answer: StatusAnswer | None,
        deadline: float,
    ) -> StatusAnswer | None:
        """Engage the exchange-side kill switch (when injected) and confirm once more."""
        if self.kill_switch is None or not policy.use_kill_switch:
            return answer
        step = time.monotonic()
        try:
            engaged = await asyncio.wait_for(
                self.kill_switch(self.account, f"{report.who}: {report.why}"),
                max(0.5, deadline - time.monotonic()),
            )
        except Exception as exc:
            report.errors.append(f"kill_switch: {type(exc).__name__}: {exc}")
            engaged = False
        report.exchange_kill_switch_used = engaged
        report.step("kill_switch", time.monotonic() - step)
        self.log.event("exchange_kill_switch", account=self.account, engaged=engaged)
        if not engaged:
            return answer
        step = time.monotonic()
        grace = max(deadline, time.monotonic() + 2 * self.connect_timeout_s)
        try:
            answer = await self.retrying("mass_status", self.request_status, grace, policy, report)
        except RiskSessionError as exc:
            report.errors.append(str(exc))
        report.step("confirm", time.monotonic() - step)
        return answer
