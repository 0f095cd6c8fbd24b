"""The ``deploy_lock`` module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops.releases.lock import DeployLock, LockHeldError


@dataclass(frozen=True)
class LockParams:
    """The module's parameters."""

    root: str
    run_id: str
    owner: str
    state: str = "locked"
    release_id: str = ""
    controller_host: str = ""
    controller_pid: int = 0
    ttl: int = 3600
    force: bool = False
    reason: str | None = None


PARAMS = LockParams


def _fail(msg: str, holder: dict[str, Any]) -> dict[str, Any]:
    return {"failed": True, "msg": msg, "holder": holder, "acquired": False}


def run(params: LockParams, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Take or release the per-host deploy lock."""
    del diff  # the lock has no diff
    root = Path(params.root)
    if not (root / "state").is_dir():
        return {"failed": True, "msg": f"{root} is not a bootstrapped tradeops root"}
    lock = DeployLock(
        path=root / "deploy.lock", audit_path=root / "state" / "audit.jsonl", ttl_s=params.ttl
    )
    holder = lock.read()
    holder_dict = holder.as_dict() if holder else {}
    if params.force and not (params.reason or "").strip():
        return {"failed": True, "msg": "force=true needs a reason (it is audited)"}
    if params.state == "locked":
        if holder is not None and holder.run_id != params.run_id:
            return _fail(holder.describe(), holder_dict)
        if holder is not None or check_mode:
            return {"changed": holder is None, "holder": holder_dict, "acquired": True}
        try:
            lock.acquire(
                owner=params.owner,
                release_id=params.release_id,
                run_id=params.run_id,
                pid=params.controller_pid,
                host=params.controller_host,
            )
        except LockHeldError as exc:
            return _fail(str(exc), exc.info.as_dict())
        taken = lock.read()
        return {"changed": True, "holder": taken.as_dict() if taken else {}, "acquired": True}
    if holder is None:
        return {"changed": False, "holder": {}, "acquired": False}
    if holder.run_id != params.run_id and not params.force:
        return _fail(f"{holder.describe()}; set force=true and a reason to release it", holder_dict)
    if not check_mode:
        lock.release(
            params.run_id,
            operator=params.owner,
            reason=params.reason or "",
            force=params.force,
        )
    return {"changed": True, "holder": holder_dict, "acquired": False}
