"""The host's trading state as the agent owns it: transitions, persistence, audit.

Three states, strictest last: ACTIVE < REDUCING < HALTED.

* A **trip** only tightens (ACTIVE -> REDUCING or HALTED, REDUCING -> HALTED)
  and is never refused; tripping an already tripped host adds its reason.
* A **reset** only loosens, and needs an operator identity and a reason. It
  is refused while a condition that tripped still holds, unless forced with a
  reason (audited as forced). It says what it resets and what it does not: it
  clears the reasons and re-arms the breakers of this host (or, with scope
  ``fleet``, the caller resets each host), and it never reopens positions.
* HALTED is sticky: every transition is written to the trading-state file
  (what strategies read, first, so that a trip is visible at once), then to
  the agent's own state file, then to the audit log, each durably. On start
  the agent comes back in the strictest of what the two files say (the
  trading-state file may be stricter: a crash between the two writes, or a
  halt by the CLI while the agent was down). A file it cannot read makes it
  HALTED (fail closed). A new host starts HALTED.
* Before each trip and reset the trading-state file is read again, and a
  stricter state written there behind the agent's back (the CLI's fallback
  halt while the agent was hung) is adopted first: a later, looser
  transition never overwrites it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tradeops.agent.reasons import Reason
from tradeops.auditlog import append_audit
from tradeops.tradingstate import (
    InPlacePublisher,
    StateRecord,
    TradingState,
    read_state,
    write_state,
)

STATE_FORMAT = 1  # agent-state.json; readers refuse another major
AGENT_STATE = "state/agent-state.json"
TRADING_STATE = "state/trading_state"
AUDIT_LOG = "state/audit.jsonl"
NOT_RESET = ("positions are not reopened", "orders cancelled by the trip are not restored")


class Refused(Exception):
    """A valid command the state machine declines; ``text`` says why and what to do."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state, why (the first reason tripped it), who set it, since when."""

    state: TradingState
    reasons: tuple[Reason, ...] = ()
    who: str = ""
    why: str = ""
    since: float = 0.0
    generation: int = 0
    forced: bool = False

    @property
    def reason(self) -> Reason | None:
        """The reason that tripped the host first, or None when ACTIVE."""
        return self.reasons[0] if self.reasons else None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the agent's state file and ``status``)."""
        return {
            "format": STATE_FORMAT,
            "state": self.state.name,
            "reasons": [r.value for r in self.reasons],
            "who": self.who,
            "why": self.why,
            "since": self.since,
            "generation": self.generation,
            "forced": self.forced,
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """What one command changed (``changed`` False: it was already so)."""

    before: Snapshot
    after: Snapshot
    changed: bool
    cleared: tuple[Reason, ...] = ()
    not_reset: tuple[str, ...] = ()
    scope: str = "host"
    forced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form of the answer to the command."""
        out = {
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "changed": self.changed,
            "scope": self.scope,
        }
        if self.cleared or self.not_reset:
            out["cleared"] = [r.value for r in self.cleared]
            out["rearmed"] = "every breaker of this host"
            out["not_reset"] = list(self.not_reset)
            out["forced"] = self.forced
        return out


def _who_why(who: str, why: str, what: str) -> tuple[str, str]:
    who, why = who.strip(), why.strip()
    if not who or not why:
        raise Refused(f"{what} needs an operator identity (who) and a reason (why)")
    return who, why


class StateMachine:
    """The trading state of one host, persisted under ``root`` (the tradeops root)."""

    def __init__(self, root: str | os.PathLike[str], clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.clock = clock
        self.agent_path = self.root / AGENT_STATE
        self.trading_path = self.root / TRADING_STATE
        self.audit_path = self.root / AUDIT_LOG
        self.adopted_at_start = False  # the start adopted a stricter trading-state file
        # A trip published in place whose durable write is still to do (see ``flush``).
        self._pending: tuple[Snapshot, dict[str, Any]] | None = None
        # A halt written in place by the Unix socket's accept thread (``prepublish_halt``),
        # with the record it replaced, for the trip that follows on the agent's loop.
        self._prepublished: StateRecord | None = None
        self._prepublish_lock = threading.Lock()
        self._publisher = InPlacePublisher(self.trading_path)  # its files kept open
        self.snapshot = self._load()

    # ------------------------------------------------------------- loading
    def _load(self) -> Snapshot:
        """Come back in the strictest persisted state; HALTED if nothing can be read."""
        problems: list[str] = []
        saved = self._read_agent_state(problems)
        record = read_state(self.trading_path) if self.trading_path.exists() else None
        if record is not None and record.error:
            problems.append(f"{self.trading_path}: {record.error}")
            record = None
        if problems or (saved is None and record is None):
            # Nothing readable (a new host), or a file we cannot trust: fail closed.
            reason = Reason.STATE_UNREADABLE if problems else Reason.STARTUP
            why = "; ".join(problems) or "a new host starts HALTED until an operator resets it"
            snap = Snapshot(TradingState.HALTED, (reason,), "agent", why, self.clock())
            return self._persist(snap, "start", problems=problems)
        if record is not None and (saved is None or record.state > saved.state):
            # The trading-state file is stricter: a trip written before the agent's own
            # file, or a halt by the CLI while the agent was down. Adopt it.
            self.adopted_at_start = True
            reason = Reason.parse(record.reason) or Reason.MANUAL
            snap = Snapshot(record.state, (reason,) if record.state > TradingState.ACTIVE else (),
                            record.who or "unknown", f"adopted from {self.trading_path}",
                            self.clock(), record.generation)  # fmt: skip
            return self._persist(snap, "start", adopted=record.as_dict())
        assert saved is not None
        if record is None or record.state != saved.state:
            # The agent's file is stricter (or the trading-state file is missing): rewrite it.
            return self._persist(saved, "start")
        self._audit("start", saved)
        return saved

    def _read_agent_state(self, problems: list[str]) -> Snapshot | None:
        try:
            data = json.loads(self.agent_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            problems.append(f"{self.agent_path}: {type(exc).__name__}: {exc}")
            return None
        try:
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this agent reads {STATE_FORMAT}")
            return Snapshot(
                TradingState[data["state"]],
                tuple(Reason(r) for r in data["reasons"]),
                str(data["who"]),
                str(data["why"]),
                float(data["since"]),
                int(data["generation"]),
                bool(data.get("forced", False)),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{self.agent_path}: {type(exc).__name__}: {exc}")
            return None

    def adopt_external(self) -> bool:
        """Adopt a stricter state written to the trading-state file behind our back.

        True when it did (audited ``adopt``). An unreadable file is left to the
        next write, which replaces it.
        """
        self.flush()
        if not self.trading_path.exists():
            return False
        record = read_state(self.trading_path)
        if record.error or record.state <= self.snapshot.state:
            return False
        self._adopt(record)
        return True

    def _adopt(self, record: StateRecord) -> None:
        """Take the stricter ``record`` (written behind our back) as the state; audited."""
        reason = Reason.parse(record.reason) or Reason.MANUAL
        before = self.snapshot
        reasons = before.reasons if reason in before.reasons else (*before.reasons, reason)
        snap = Snapshot(record.state, reasons, record.who or "unknown",
                        f"adopted from {self.trading_path}", self.clock(),
                        record.generation)  # fmt: skip
        self._write_agent_state(snap)
        self._audit("adopt", snap, before=before.state.name, adopted=record.as_dict())
        self.snapshot = snap

    # ---------------------------------------------------------- persisting
    def _persist(self, snap: Snapshot, event: str, **fields: Any) -> Snapshot:
        """Durably: the trading-state file (what strategies read), then ours, then the audit."""
        reason = snap.reason.value if snap.reason else ""
        # A trip's durable write may run after a halt was published in place (the accept
        # thread's): it must not rename a looser record over it.
        stricter = event == "trip"
        record = write_state(
            self.trading_path, snap.state, reason=reason, who=snap.who, keep_stricter=stricter
        )
        self._publisher.reopen()  # the replaced file is released here, not on a halt's path
        snap = replace(snap, generation=record.generation)
        self._write_agent_state(snap)
        self._audit(event, snap, **fields)
        return snap

    def _write_agent_state(self, snap: Snapshot) -> None:
        self.agent_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.agent_path.with_name(f".{self.agent_path.name}.{os.getpid()}.tmp")
        data = json.dumps(snap.as_dict(), sort_keys=True).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.agent_path)
        dir_fd = os.open(self.agent_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _audit(self, event: str, snap: Snapshot, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v not in (None, [], {})}
        with contextlib.suppress(OSError):  # never let the audit stop a trip
            append_audit(self.audit_path, "agent", event, **{**snap.as_dict(), **fields})

    # ------------------------------------------------------------ commands
    def trip(
        self, target: TradingState, reason: Reason, who: str, why: str, durable: bool = True
    ) -> Transition:
        """Tighten to ``target`` (REDUCING or HALTED); never refused.

        A trip is published in place first, before anything is read: every
        strategy sees it at its next check. ``durable=False`` leaves the
        durable writes (the trading-state file renamed over, the agent's
        file, the audit) to :meth:`flush`, so that the caller can answer
        first; the published record already survives the agent's crash.
        """
        if target is TradingState.ACTIVE:
            raise Refused("a trip goes to REDUCING or HALTED; use reset to loosen")
        self.flush()
        prior = self.snapshot
        published = False
        with self._prepublish_lock:
            early, self._prepublished = self._prepublished, None
        if target is TradingState.HALTED and prior.state is not TradingState.HALTED:
            # Nothing is stricter than HALTED: publish before reading anything else, even
            # when the accept thread already did for this very halt (the flush above may
            # have renamed a new file over its record); the record it replaced counts.
            again = self._publisher.publish(target, reason.value, who or "agent")
            replaced = early or again
            published = replaced is not None
            if replaced is not None and replaced.state > prior.state:
                self._adopt(replaced)  # a halt written behind our back keeps its reason
        else:
            self.adopt_external()
        before = self.snapshot
        state = max(before.state, target)
        reasons = before.reasons if reason in before.reasons else (*before.reasons, reason)
        if state == before.state and reasons == before.reasons:
            self._audit("trip-again", before, reason=reason.value, by=who, because=why)
            return Transition(prior, before, changed=prior != before)
        after = Snapshot(state, reasons, who or "agent", why, self.clock(), before.generation)
        fields = {"requested": target.name, "reason": reason.value}
        if not published:
            r = after.reason.value if after.reason else ""
            published = self._publisher.publish(state, r, after.who) is not None
        if durable or not published:
            after = self._persist(after, "trip", **fields)
        else:
            self._pending = (after, fields)
        self.snapshot = after
        return Transition(prior, after, changed=True)

    def prepublish_halt(self, reason: Reason, who: str) -> None:
        """From another thread: write HALTED in place now, before the trip is carried out.

        The only call that may come from outside the agent's loop: it touches
        the file, never the state in memory. The trip that follows (the same
        halt, on the loop) finds it published and records it as usual.
        """
        with self._prepublish_lock:
            replaced = self._publisher.publish(TradingState.HALTED, reason.value, who or "agent")
            if replaced is not None and self._prepublished is None:
                self._prepublished = replaced

    @property
    def durable(self) -> bool:
        """False while a trip's durable writes are still due."""
        return self._pending is None

    def flush(self) -> None:
        """Do the durable writes of a trip made with ``durable=False`` (no-op if none)."""
        if self._pending is None:
            return
        snap, fields = self._pending
        try:
            self.snapshot = self._persist(snap, "trip", **fields)
        finally:
            self._pending = None

    def reset(
        self,
        target: TradingState,
        who: str,
        why: str,
        holding: Iterable[Reason] = (),
        force: bool = False,
        scope: str = "host",
    ) -> Transition:
        """Loosen to ``target``; refused while a tripping condition in ``holding`` holds."""
        who, why = _who_why(who, why, "reset")
        self.flush()
        with self._prepublish_lock:
            self._prepublished = None
        self.adopt_external()
        before = self.snapshot
        if target > before.state:
            raise Refused(f"reset loosens; {before.state.name} -> {target.name} is a trip")
        if target == before.state:
            return Transition(before, before, changed=False, scope=scope)
        still = [r for r in before.reasons if r in set(holding)]
        if still and not force:
            names = ", ".join(r.value for r in still)
            raise Refused(
                f"refused: {names} still holds; clear the condition first, or force the reset"
                " with a reason (audited as forced)"
            )
        after = Snapshot(target, (), who, why, self.clock(), before.generation, forced=force)
        after = self._persist(
            after, "reset", scope=scope, cleared=[r.value for r in before.reasons],
            still_holding=[r.value for r in still], before=before.state.name,
        )  # fmt: skip
        self.snapshot = after
        return Transition(before, after, True, before.reasons, NOT_RESET, scope, force)
