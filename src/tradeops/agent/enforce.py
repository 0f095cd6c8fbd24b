"""What a halt does after the state is published: the slow steps, in a background task.

``Enforcement.request`` is called on the command's path right after
``StateMachine.trip`` published HALTED; it only schedules the sequence, so the
command is answered at once. The sequence never runs twice concurrently: a
halt arriving while it runs queues one more run after it. Steps, in order:

1. ``freeze``: SIGSTOP every strategy pid at once (their managers give the
   pids); a runaway cannot send one more order. The kernel stops a process
   when it next runs, so the step waits (at most ``FREEZE_CONFIRM_S``) until
   ``/proc`` shows each one stopped, and is ok only then. Skipped with
   ``on_halt: none``. The pids are asked of the managers ahead of time (every
   ``WATCH_S``, ``watch``): a halt SIGSTOPs the known ones at once (a
   supervisord or systemd query costs tens of ms), then asks the managers
   again and SIGSTOPs any pid it did not know (a restart in between).
2. ``cancel_all``: mass cancel on the warm risk session, confirmed by the
   venue's mass status (clean only when the venue says zero working orders),
   then by the drop copy when one is configured: its book must show no
   working order within ``DROP_COPY_CONFIRM_S`` (the cancels reach it as
   execution reports). A drop copy that is down, or still shows orders,
   makes the step not ok, and its detail says which.
3. ``stop`` (``on_halt: stop``): each manager stops its program without restart
   (in a thread); whatever is still alive after ``kill_after_s`` gets SIGKILL.
   A frozen process never runs again before it dies. ``pause`` leaves them
   frozen. Then ``confirm``: a second ``cancel_all`` (a manager may SIGCONT
   what it stops: systemd does), which must also be clean.
4. ``flatten`` when ``flatten_on_halt``.
5. ``notify``.

Each step's outcome is logged, audited, counted in
``tradeops_agent_enforcement_steps_total{step,ok}`` and kept for ``status``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeops.agent.flatten import RiskEnforcer
from tradeops.agent.metrics import AgentMetrics
from tradeops.agent.notify import Level, Message, Notifier
from tradeops.agent.procs import Pid, freeze, kill_if_alive, manager, proc_state, resolve
from tradeops.agent.riskreport import CancelReport
from tradeops.agent.sections import EnforcementConfig, OnHalt
from tradeops.agent.state import Refused
from tradeops.log import EventLog

DETAIL_CHARS = 160  # of a step's detail kept for ``status`` (one frame holds the answer)
POLL_S = 0.02
DEATH_WAIT_S = 5.0  # after SIGKILL
FREEZE_CONFIRM_S = 0.1  # until /proc shows every SIGSTOPped process stopped
FREEZE_POLL_S = 0.0005
WATCH_S = 1.0  # the strategies' pids are asked of their managers this often
DROP_COPY_CONFIRM_S = 1.0  # after the venue's mass status, for the drop copy's book
DROP_COPY_POLL_S = 0.002
# () -> (working orders in the drop copy's book, why it is down or None)
DropCopyView = Callable[[], tuple[list[str], str | None]]


@dataclass(slots=True)
class Step:
    """One step's outcome."""

    name: str
    ok: bool
    ms: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """Compact JSON form (for ``status``)."""
        return {"ok": self.ok, "ms": self.ms, "detail": self.detail[:DETAIL_CHARS]}


@dataclass(slots=True)
class EnforcementReport:
    """One run of the halt sequence."""

    who: str
    why: str
    started: float
    steps: list[Step] = field(default_factory=list)
    running: bool = True
    total_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """Every step succeeded."""
        return all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """JSON form, per step with ms."""
        return {
            "who": self.who,
            "why": self.why[:DETAIL_CHARS],
            "started": self.started,
            "running": self.running,
            "ok": self.ok,
            "total_ms": self.total_ms,
            "steps": {s.name: s.as_dict() for s in self.steps},
        }


def cancel_summary(report: CancelReport) -> str:
    """One line of a cancel report: verdict, counts, what is left."""
    text = (
        f"clean={report.clean} mass={report.cancelled_by_mass} "
        f"per_order={report.cancelled_by_order} still_working={len(report.still_working)} "
        f"venue_ms={report.confirm_ms}"
    )
    if report.errors:
        text += f" errors={report.errors[0]}"
    return text


def _frozen(pids: list[Pid]) -> list[tuple[Pid, str]]:
    done = freeze(pids)
    return [(p, done[p.program]) for p in pids]


def venue_working(report: CancelReport) -> int:
    """Working orders the venue reported in ``report``; -1 when it gave no complete answer."""
    if report.clean:
        return 0
    return len(report.still_working) if report.still_working else -1


class MeteredEnforcer:
    """The ``cancel-all`` / ``flatten`` commands on the risk session, feeding the metrics."""

    def __init__(self, risk: RiskEnforcer, metrics: AgentMetrics) -> None:
        self.risk = risk
        self.metrics = metrics
        self.last_cancel: CancelReport | None = None

    async def cancel(self, who: str, why: str) -> CancelReport:
        """Cancel everything; remember the venue's count."""
        r = self.risk
        report = await r.risk.cancel_all(who, why, r.cancel_timeout_s, r.cancel_policy)
        self.last_cancel = report
        self.metrics.venue_working_orders.set(venue_working(report))
        return report

    async def cancel_all(self, who: str, why: str) -> Mapping[str, Any]:
        """The ``cancel-all`` command."""
        return (await self.cancel(who, why)).to_dict()

    async def flatten(self, who: str, why: str) -> Mapping[str, Any]:
        """The ``flatten`` command (cancels first)."""
        report = await self.risk.flatten(who, why)
        cancel = report.get("cancel")
        if isinstance(cancel, dict) and cancel.get("clean"):
            self.metrics.venue_working_orders.set(0)
        return report


class Enforcement:
    """The halt sequence of one host (see the module docstring)."""

    def __init__(
        self,
        config: EnforcementConfig,
        root: Path,
        *,
        enforcer: MeteredEnforcer | None,
        notifier: Notifier | None,
        metrics: AgentMetrics,
        log: EventLog,
        audit: Callable[..., None],
        drop_copy: DropCopyView | None = None,
    ) -> None:
        self.config = config
        self.drop_copy = drop_copy
        self.managers = {p.program: manager(p, root) for p in config.processes}
        self.enforcer = enforcer
        self.notifier = notifier
        self.metrics = metrics
        self.log = log
        self.audit = audit
        self.last: EnforcementReport | None = None
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._again: tuple[str, str] | None = None
        self._known: list[Pid] = []  # the pids of the last resolve (``watch``)

    async def watch(self) -> None:
        """Keep the strategies' pids known, so that a freeze needs no manager query."""
        if not self.managers:
            return
        while True:
            if not self.running:
                self._known = await asyncio.to_thread(self._resolve)
            await asyncio.sleep(WATCH_S)

    @property
    def running(self) -> bool:
        """A sequence is running."""
        return self._task is not None and not self._task.done()

    def request(self, who: str, why: str) -> None:
        """Schedule the halt sequence (one more run if one is under way); returns at once."""
        if self.running:
            self._again = (who, why)
            return
        self._task = asyncio.create_task(self._loop(who, why), name="halt-enforcement")

    async def wait(self, timeout_s: float) -> None:
        """Wait (bounded) for a running sequence (for a graceful stop)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout_s)

    async def _loop(self, who: str, why: str) -> None:
        for _run in range(16):  # bounded: a halt storm collapses into few runs
            await self.run(who, why)
            if self._again is None:
                return
            (who, why), self._again = self._again, None

    async def run(self, who: str, why: str) -> EnforcementReport:
        """The whole sequence once; never raises."""
        t0 = time.monotonic()
        report = EnforcementReport(who, why, time.time())
        self.last, self.runs = report, self.runs + 1
        self.log.event("enforce_start", who=who, why=why, on_halt=self.config.on_halt.value)
        frozen: list[Pid] = []
        if self.config.on_halt is not OnHalt.NONE and self.managers:
            frozen = await self._step(report, "freeze", self._freeze)
        await self._step(report, "cancel_all", lambda: self._cancel(who, why))
        if self.config.on_halt is OnHalt.STOP and self.managers:
            await self._step(report, "stop", lambda: self._stop(frozen))
            await self._step(report, "confirm", lambda: self._cancel(who, f"{why} (after stop)"))
        if self.config.flatten_on_halt:
            await self._step(report, "flatten", lambda: self._flatten(who, why))
        await self._step(report, "notify", lambda: self._notify(report))
        report.running = False
        report.total_ms = round((time.monotonic() - t0) * 1000, 3)
        self.log.event("enforce_done", ok=report.ok, total_ms=report.total_ms)
        self.audit("enforce_done", who=who, why=why, ok=report.ok, total_ms=report.total_ms)
        return report

    async def _step(self, report: EnforcementReport, name: str, call: Callable[[], Any]) -> Any:
        t = time.monotonic()
        value: Any = None
        try:
            value, ok, detail = await call()
        except Refused as exc:
            ok, detail = False, exc.text
        except Exception as exc:  # a step's failure must not stop the next ones
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        step = Step(name, ok, round((time.monotonic() - t) * 1000, 3), detail)
        report.steps.append(step)
        self.metrics.enforcement_steps.labels(step=name, ok=str(ok).lower()).inc()
        self.log.event("enforce_step", step=name, ok=ok, ms=step.ms, detail=detail)
        self.audit("enforce_step", step=name, ok=ok, ms=step.ms, detail=detail)
        return value

    async def _freeze(self) -> tuple[list[Pid], bool, str]:
        sent = time.monotonic()
        known = [p for p in self._known if p.alive()]  # the same process (pid and start time)
        done = freeze(known)
        fresh = await asyncio.to_thread(self._resolve)  # a restart since the last watch
        new = [p for p in fresh if p not in known]
        done.update({p.program: v + " (not known before the halt)" for p, v in _frozen(new)})
        pids = known + new
        running = list(pids)
        for _attempt in range(int(FREEZE_CONFIRM_S / FREEZE_POLL_S) + 1):
            running = [p for p in running if not p.cannot_run()]
            if not running or time.monotonic() - sent > FREEZE_CONFIRM_S:
                break
            await asyncio.sleep(FREEZE_POLL_S)
        waited = round((time.monotonic() - sent) * 1000, 3)
        for p in running:
            done[p.program] += f" (not stopped after {waited} ms: state {proc_state(p.pid)})"
        missing = sorted(set(self.managers) - {p.program for p in pids})
        detail = "; ".join(f"{k}: {v}" for k, v in done.items())
        if pids and not running:
            detail += f"; stopped within {waited} ms"
        if missing:
            detail += ("; " if detail else "") + f"not running: {', '.join(missing)}"
        return pids, not running, detail or "no process"

    def _resolve(self) -> list[Pid]:
        """Each program's pid from its manager (a thread: the managers block)."""
        pids = []
        for program, mgr in self.managers.items():
            try:
                pid = resolve(program, mgr)
            except Exception as exc:  # a manager that cannot answer: say so, go on
                self.log.event("enforce_resolve_failed", program=program, error=str(exc))
                continue
            if pid is not None:
                pids.append(pid)
        return pids

    async def _cancel(self, who: str, why: str) -> tuple[None, bool, str]:
        if self.enforcer is None:
            return None, False, "no risk session configured: nothing was cancelled"
        report = await self.enforcer.cancel(who, why)
        if not report.clean or self.drop_copy is None:
            return None, report.clean, cancel_summary(report)
        confirmed, text = await self._drop_copy_confirms()
        return None, confirmed, f"{cancel_summary(report)}; {text}"

    async def _drop_copy_confirms(self) -> tuple[bool, str]:
        """Wait (bounded) until the drop copy's book shows no working order too."""
        assert self.drop_copy is not None
        t0 = time.monotonic()
        working: list[str] = []
        down: str | None = None
        for _attempt in range(int(DROP_COPY_CONFIRM_S / DROP_COPY_POLL_S) + 1):
            working, down = self.drop_copy()
            if down is not None or not working or time.monotonic() - t0 > DROP_COPY_CONFIRM_S:
                break
            await asyncio.sleep(DROP_COPY_POLL_S)
        ms = round((time.monotonic() - t0) * 1000, 3)
        if down is not None:
            return False, f"drop copy down ({down}): not confirmed by it"
        if working:
            shown = ", ".join(working[:5])
            return False, f"drop copy still shows {len(working)} working after {ms} ms: {shown}"
        return True, f"drop copy: 0 working ({ms} ms)"

    async def _stop(self, frozen: list[Pid]) -> tuple[None, bool, str]:
        stops = [
            asyncio.ensure_future(asyncio.to_thread(mgr.stop, program))
            for program, mgr in self.managers.items()
        ]
        deadline = time.monotonic() + self.config.kill_after_s
        for _attempt in range(int(self.config.kill_after_s / POLL_S) + 2):
            if not any(p.alive() for p in frozen) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        killed = [p for p in frozen if p.alive() and kill_if_alive(p)]
        end = time.monotonic() + DEATH_WAIT_S
        for _attempt in range(int(DEATH_WAIT_S / POLL_S) + 2):
            if not any(p.alive() for p in frozen) or time.monotonic() >= end:
                break
            await asyncio.sleep(POLL_S)
        alive = [p for p in frozen if p.alive()]
        done, pending = await asyncio.wait(stops, timeout=DEATH_WAIT_S)
        errors = [str(t.exception()) for t in done if t.exception() is not None]
        parts = [f"killed {', '.join(f'{p.program}={p.pid}' for p in killed)}" if killed else ""]
        if alive:
            parts.append(f"STILL ALIVE {', '.join(f'{p.program}={p.pid}' for p in alive)}")
        if pending:
            parts.append(f"{len(pending)} manager stop(s) still running")
        parts += [f"manager: {e}" for e in errors]
        detail = "; ".join(p for p in parts if p) or f"stopped {len(frozen)} process(es)"
        return None, not alive, detail

    async def _flatten(self, who: str, why: str) -> tuple[None, bool, str]:
        if self.enforcer is None:
            return None, False, "no risk session configured: nothing was flattened"
        report = await self.enforcer.flatten(who, why)
        flat = bool(report.get("flat"))
        return None, flat, f"flat={flat} still_open={report.get('still_open')}"

    async def _notify(self, report: EnforcementReport) -> tuple[None, bool, str]:
        if self.notifier is None:
            return None, True, "no notifier configured"
        steps = ", ".join(
            f"{s.name} {'ok' if s.ok else 'FAILED'} {s.ms:g} ms" for s in report.steps
        )
        body = f"HALTED by {report.who}: {report.why}\n{steps}"
        level = Level.FAILURE if not report.ok else Level.WARNING
        queued = self.notifier.post(Message("trip", "tradeops agent: HALTED", body, level))
        return None, queued, "queued" if queued else "dropped (queue full or no target)"
