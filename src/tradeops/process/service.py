"""Entry point of the ``strategy`` module: bring the strategy process to a state.

Plans first; check mode reports the plan. With ``status_url`` and
``release_id`` it waits (bounded) until the running process itself reports
that release, and fails otherwise: this is the deploy's post-verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.process.managers import (
    Manager,
    ManagerError,
    manager_for,
    read_definition,
    write_definition,
)
from tradeops.process.running import Running, read_running, wait_for_release

STATES = ("started", "restarted", "stopped")


class StrategyError(RuntimeError):
    """The process cannot be brought to the state asked for; the message says why."""


@dataclass
class StrategyRequest:
    """The module's parameters."""

    root: str
    name: str
    state: str = "started"
    manager: str = "auto"
    definition: str | None = None
    status_url: str | None = None
    release_id: str | None = None
    timeout: float = 30.0


@dataclass
class StrategyOutcome:
    """What happened (or would, in check mode)."""

    changed: bool
    result: dict[str, Any]
    diff: list[dict[str, str]]


def _definition_diff(path: Path, before: str | None, after: str) -> dict[str, str]:
    return {
        "before_header": str(path),
        "after_header": str(path),
        "before": before or "",
        "after": after,
    }


def _plan_action(state: str, running: bool, definition_changed: bool) -> str:
    if state == "stopped":
        return "stop" if running else "none"
    if state == "restarted":
        return "restart"
    if not running:
        return "start"
    return "restart" if definition_changed else "none"


def _verify(
    request: StrategyRequest, manager: Manager, before: Running | None, restarted: bool
) -> Running:
    url, rid = str(request.status_url), str(request.release_id)
    not_pid = before.pid if (restarted and before is not None) else None
    reasons: list[str] = []

    def gave_up() -> str | None:
        """The manager's reason when it no longer runs the program (ends the wait)."""
        reason = manager.gave_up(request.name)
        if reason:
            reasons.append(reason)
        return reason

    matched, running = wait_for_release(url, rid, request.timeout, not_pid=not_pid, gave_up=gave_up)
    if not matched:
        if reasons:
            raise StrategyError(
                f"{request.name} does not run {rid}: it stopped at start, {reasons[-1]}"
            )
        seen = (
            f"reports release {running.release_id} (pid {running.pid})"
            if running.release_id is not None
            else f"did not answer ({running.error})"
        )
        raise StrategyError(
            f"{request.name} {seen}, expected {rid} within {request.timeout:g}s: "
            "the process does not run the target release"
        )
    return running


def run_strategy(request: StrategyRequest, check_mode: bool = False) -> StrategyOutcome:
    """Bring ``request.name`` to ``request.state``; see the module docs."""
    if request.state not in STATES:
        raise StrategyError(f"unknown state {request.state!r}: use one of {', '.join(STATES)}")
    if request.release_id and not request.status_url:
        raise StrategyError("release_id needs status_url: the release is read from the process")
    try:
        return _run(request, check_mode)
    except ManagerError as exc:
        raise StrategyError(str(exc)) from exc
    except OSError as exc:
        raise StrategyError(f"{request.name}: {exc}") from exc


def _run(request: StrategyRequest, check_mode: bool) -> StrategyOutcome:
    manager = manager_for(request.manager, Path(request.root))
    diff: list[dict[str, str]] = []
    definition_changed = False
    if request.definition is not None:
        installed = read_definition(manager, request.name)
        definition_changed = installed != request.definition
        if definition_changed:
            path = manager.definition_path(request.name)
            diff.append(_definition_diff(path, installed, request.definition))
    proc = manager.state(request.name)
    if proc.state == "absent" and request.definition is None and request.state != "stopped":
        raise StrategyError(
            f"{request.name} is not defined under {manager.name}: pass its definition"
        )
    action = _plan_action(request.state, proc.running, definition_changed)
    before = read_running(str(request.status_url)) if request.status_url else None
    if action != "none":
        before_state = f"{request.name}: {proc.state} (pid {proc.pid})\n"
        diff.append({"before": before_state, "after": f"{request.name}: {action}\n"})
    changed = definition_changed or action != "none"
    result: dict[str, Any] = {
        "name": request.name,
        "manager": manager.name,
        "action": action,
        "definition_changed": definition_changed,
        "state": proc.state,
        "pid": proc.pid,
    }
    if check_mode:
        result["running"] = before.as_dict() if before else None
        return StrategyOutcome(changed, result, diff)
    started_by_apply = False
    # Load the definition when it changed, or when the manager does not know the
    # program yet (a run interrupted between writing and loading it).
    if request.definition is not None and (definition_changed or proc.state == "absent"):
        write_definition(manager, request.name, request.definition)
        # Loading may start it (supervisord autostart) with the new definition.
        started_by_apply = manager.apply(request.name) and manager.state(request.name).running
    if request.state == "stopped":
        if action == "stop" or started_by_apply:
            manager.stop(request.name)
    elif action in ("start", "restart") and not started_by_apply:
        if action == "restart":
            manager.stop(request.name)
        manager.start(request.name)
    running = before
    if request.release_id and request.state != "stopped":
        running = _verify(request, manager, before, restarted=action in ("start", "restart"))
    elif request.status_url and action != "none":
        running = read_running(request.status_url)
    after = manager.state(request.name)
    result.update(state=after.state, pid=after.pid, running=running.as_dict() if running else None)
    return StrategyOutcome(changed, result, diff)
