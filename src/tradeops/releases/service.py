"""One entry point for the ``release`` module: plan, then (unless check mode) act.

Every state is planned first with the ``plan_*`` functions, which read only;
check mode returns the plan. Failures become ReleaseServiceError with a
message an operator can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeops.releases.activation import ActivationError, activate, plan_activate
from tradeops.releases.config_files import ConfigFileError, parse_config_files, sync_config_files
from tradeops.releases.layout import Layout
from tradeops.releases.manifest import ManifestError
from tradeops.releases.prune import plan_prune, prune, remove_release
from tradeops.releases.releaselog import ReleaseLog
from tradeops.releases.staging import (
    StageError,
    plan_by_digest,
    plan_stage,
    resolve_links,
    stage,
    validate_release_id,
)


class ReleaseServiceError(RuntimeError):
    """The requested state cannot be reached; the message says why."""


@dataclass
class ReleaseRequest:
    """The module's parameters."""

    root: str
    state: str
    release_id: str | None = None
    artifact: str | None = None
    shared_links: dict[str, str] | None = None
    keep: int = 5
    reason: str | None = None
    verify: bool = True
    manifest_digest: str | None = None  # the controller's; plans check mode without the artifact
    version: str | None = None
    config_files: list[dict[str, Any]] | None = None  # rendered on the controller
    prune: bool = False  # with state=active: prune to ``keep`` after activating
    replaced: str = "previous"  # with state=active: the status of the release replaced


@dataclass
class Outcome:
    """What happened (or would happen in check mode)."""

    changed: bool
    result: dict[str, Any]
    diff: dict[str, Any] | list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _links(request: ReleaseRequest, release_id: str) -> dict[str, str]:
    return resolve_links(request.shared_links, release_id)


def _ensure_link_targets(layout: Layout, links: dict[str, str]) -> None:
    for sub in links.values():
        (layout.shared / sub).mkdir(parents=True, exist_ok=True)


def _staged(layout: Layout, request: ReleaseRequest, check_mode: bool) -> Outcome:
    rid = str(request.release_id)
    links = _links(request, rid)
    artifact = Path(request.artifact) if request.artifact else None
    if check_mode and request.manifest_digest and (artifact is None or not artifact.is_file()):
        # Check mode before the artifact was copied, and the deploy gate's live
        # re-check: plan from the controller's digest, re-hashing with verify.
        plan = plan_by_digest(
            layout,
            rid,
            str(request.manifest_digest),
            request.version or "",
            links,
            verify=request.verify,
        )
    elif artifact is None:
        raise ReleaseServiceError(f"staging {rid} needs the artifact (artifact or src)")
    else:
        plan = plan_stage(layout, artifact, rid, links, verify=request.verify)
        if request.manifest_digest and plan.digest != request.manifest_digest:
            # Refused before anything is written or logged: a release id once logged
            # with the wrong content could never be staged right afterwards.
            raise ReleaseServiceError(
                f"the artifact's manifest digest {plan.digest[:12]} is not the "
                f"{str(request.manifest_digest)[:12]} the release id {rid} was computed "
                "from: the artifact changed after the plan; nothing staged"
            )
    if plan.changed and not check_mode and artifact is not None:
        _ensure_link_targets(layout, links)
        plan = stage(layout, artifact, rid, links)
    result: dict[str, Any] = {
        "release_id": rid,
        "version": plan.version,
        "manifest_digest": plan.digest,
        "action": plan.action,
        "path": plan.path,
        "current": layout.current_release(),
        **plan.details,  # linked_files, written_files: what a create did
    }
    diff: list[dict[str, str]] = []
    if plan.action == "create":
        diff.append({"before": "", "after": f"{plan.path}/ (verified, {plan.version})\n"})
    changed = plan.changed
    if request.config_files is not None:
        files = parse_config_files(request.config_files, rid)
        written, digests = sync_config_files(layout, files, check_mode)
        result["config_sha256"] = digests
        result["config_expected_sha256"] = {item.path: item.sha256 for item in files}
        result["config_changed"] = written
        changed = changed or bool(written)
        # Config may hold secrets: the diff names files and digests, never content.
        for item in files:
            if item.path in written:
                diff.append({"before": "", "after": f"shared/{item.path} sha256 {item.sha256}\n"})
    return Outcome(changed, result, diff or None)


def diff_list(outcome: Outcome | None) -> list[dict[str, Any]]:
    """An outcome's diff as a list (empty without one), to combine several."""
    if outcome is None or not outcome.diff:
        return []
    return list(outcome.diff) if isinstance(outcome.diff, list) else [outcome.diff]


def _active(layout: Layout, request: ReleaseRequest, check_mode: bool) -> Outcome:
    rid = str(request.release_id)
    if request.prune and request.keep < 1:
        # Refused before the swap: a prune that fails after it would leave the host moved.
        raise ReleaseServiceError(f"keep must be at least 1, got {request.keep}")
    staged: Outcome | None = None
    # Stage first when given the artifact; in check mode, plan that stage from the
    # controller's manifest digest (the deploy's cutover in a --check run).
    if request.artifact or (check_mode and request.manifest_digest):
        staged = _staged(layout, request, check_mode)
        if check_mode and staged.result["action"] == "create":
            # Not on disk yet: activation would follow a successful stage.
            current = layout.current_release()
            diff = {
                "before": f"{layout.current} -> releases/{current}\n" if current else "",
                "after": f"{layout.current} -> releases/{rid}\n",
            }
            result = {**staged.result, "action": "stage+activate", "previous": current}
            return Outcome(True, result, diff)
    names = frozenset(_links(request, rid))
    # activate() plans (and verifies) itself and writes nothing when nothing changes.
    if check_mode:
        plan = plan_activate(layout, rid, names, verify=request.verify)
    else:
        plan = activate(layout, rid, names, verify=request.verify, replaced=request.replaced)
    action = "activate" if plan.previous or not plan.log_repair else "repair-log"
    if not plan.changed:
        action = "none"
    result = {
        "release_id": rid,
        "version": plan.version,
        "manifest_digest": plan.digest,
        "action": action,
        "previous": plan.previous,
        "current": rid if not check_mode else layout.current_release(),
    }
    changed = plan.changed or bool(staged and staged.changed)
    diffs = diff_list(staged)
    if plan.swap:
        diffs.append(plan.diff(layout))
    if request.prune:
        pruned = _pruned(layout, request, check_mode)
        result.update(removed=pruned.result["removed"], kept=pruned.result["kept"])
        changed = changed or pruned.changed
        diffs.extend(diff_list(pruned))
    if staged is not None:
        for key in ("config_sha256", "config_expected_sha256", "config_changed"):
            if key in staged.result:
                result[key] = staged.result[key]
    return Outcome(changed, result, diffs or None)


def _bad(layout: Layout, request: ReleaseRequest, check_mode: bool) -> Outcome:
    rid = str(request.release_id)
    log = ReleaseLog(layout.release_log)
    before = log.status_of(rid)
    changed = before != "bad"
    if changed and not check_mode:
        log.append(rid, "bad", reason=request.reason or "")
    result = {
        "release_id": rid,
        "action": "mark-bad" if changed else "none",
        "current": layout.current_release(),
    }
    diff = {"before": f"{rid}: {before}\n", "after": f"{rid}: bad\n"} if changed else None
    return Outcome(changed, result, diff)


def _absent(layout: Layout, request: ReleaseRequest, check_mode: bool) -> Outcome:
    rid = str(request.release_id)
    release_dir = layout.releases / rid
    current = layout.current_release()
    log = ReleaseLog(layout.release_log)
    if rid == current:
        raise ReleaseServiceError(f"release {rid} is active: activate another one first")
    if rid == log.rollback_target(current):
        raise ReleaseServiceError(f"release {rid} is the rollback target: refusing to remove it")
    changed = release_dir.exists()
    if changed and not check_mode:
        remove_release(layout, log, rid, reason=request.reason or "state=absent")
    result: dict[str, Any] = {
        "release_id": rid,
        "action": "remove" if changed else "none",
        "current": current,
        "removed": [rid] if changed else [],
    }
    diff = {"before": f"{release_dir}/\n", "after": ""} if changed else None
    return Outcome(changed, result, diff)


def _pruned(layout: Layout, request: ReleaseRequest, check_mode: bool) -> Outcome:
    plan = plan_prune(layout, request.keep)
    if plan.changed and not check_mode:
        plan = prune(layout, request.keep)
    result = {
        "action": "prune" if plan.changed else "none",
        "removed": plan.remove,
        "kept": plan.keep,
        "unknown": plan.unknown,
        "unfinished": plan.unfinished,
        "current": layout.current_release(),
    }
    diff = None
    if plan.changed:
        diff = {
            "before": "".join(f"releases/{r}/\n" for r in [*plan.keep, *plan.remove]),
            "after": "".join(f"releases/{r}/\n" for r in plan.keep),
        }
    return Outcome(plan.changed, result, diff)


HANDLERS = {
    "staged": _staged,
    "active": _active,
    "bad": _bad,
    "absent": _absent,
    "pruned": _pruned,
}


def run_release(request: ReleaseRequest, check_mode: bool = False) -> Outcome:
    """Bring the release named in ``request`` to its state; see the module docs."""
    handler = HANDLERS.get(request.state)
    if handler is None:
        raise ReleaseServiceError(f"unknown state {request.state!r}")
    try:
        layout = Layout.at(request.root)
        if not layout.releases.is_dir():
            raise ReleaseServiceError(
                f"{layout.releases} does not exist: bootstrap the host with tradeops.algo.host"
            )
        if request.release_id is not None:
            validate_release_id(request.release_id)
        return handler(layout, request, check_mode)
    except (StageError, ActivationError, ManifestError, ConfigFileError, ValueError) as exc:
        raise ReleaseServiceError(str(exc)) from exc
    except OSError as exc:
        raise ReleaseServiceError(f"{request.state} {request.release_id or ''}: {exc}") from exc
