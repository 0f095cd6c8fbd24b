"""The ``cutover`` module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradeops.modrun import module_result
from tradeops.process.service import StrategyRequest
from tradeops.releases.cutover import CutoverError, run_cutover
from tradeops.releases.layout import Layout
from tradeops.releases.lock import DeployLock
from tradeops.releases.service import ReleaseRequest, ReleaseServiceError


@dataclass(frozen=True)
class CutoverParams:
    """The module's parameters: an activation, then the strategy restarted on it."""

    root: str
    release_id: str
    manifest_digest: str | None = None
    shared_links: dict[str, str] | None = None
    verify: bool = True
    keep: int = 5
    prune: bool = False
    replaced: str = "previous"
    name: str | None = None
    manager: str = "auto"
    definition: str | None = None
    status_url: str | None = None
    timeout: float = 30.0
    config_sha256: str | None = None  # the config the process must report (else restarted)
    run_id: str | None = None  # the deploy run; its lock must be held here (a fence)

    def release(self) -> ReleaseRequest:
        """The activation this cutover asks for."""
        return ReleaseRequest(
            root=self.root,
            state="active",
            release_id=self.release_id,
            manifest_digest=self.manifest_digest,
            shared_links=self.shared_links,
            verify=self.verify,
            keep=self.keep,
            prune=self.prune,
            replaced=self.replaced,
        )

    def strategy(self) -> StrategyRequest | None:
        """The restart that follows it, when a strategy is named."""
        if not self.name:
            return None
        return StrategyRequest(
            root=self.root,
            name=self.name,
            state="restarted",
            manager=self.manager or "auto",
            definition=self.definition,
            status_url=self.status_url,
            release_id=self.release_id if self.status_url else None,
            timeout=30.0 if self.timeout is None else self.timeout,
        )


PARAMS = CutoverParams


def run(params: CutoverParams, check_mode: bool, diff: bool) -> dict[str, Any]:
    """Activate ``params.release_id``, then restart the strategy on it."""
    fenced = None if check_mode else _fence(params)  # check mode takes no lock
    if fenced:
        return {"failed": True, "changed": False, "msg": fenced, "release_id": params.release_id}
    try:
        outcome = run_cutover(
            params.release(),
            params.strategy(),
            check_mode=check_mode,
            config_sha256=params.config_sha256,
        )
    except ReleaseServiceError as exc:
        return {"failed": True, "msg": str(exc), "release_id": params.release_id}
    except CutoverError as exc:
        return {**exc.result, "failed": True, "changed": exc.changed, "msg": str(exc)}
    return module_result(outcome, diff)


def _fence(params: CutoverParams) -> str | None:
    """Why this run may not cut the host over: its deploy lock is not held by ``run_id``.

    A run whose controller died and whose locks another run took over must not
    swap ``current`` any more: an orphaned remote call of the dead run is refused.
    """
    if not params.run_id:
        return None
    try:
        held = DeployLock(Layout.at(params.root).deploy_lock).read()
    except (OSError, ValueError, RuntimeError) as exc:
        return f"cannot read the deploy lock: {exc}; not cutting over"
    if held is None:
        return (
            f"run {params.run_id} does not hold this host's deploy lock (none is held): "
            "not cutting over"
        )
    if held.run_id != params.run_id:
        return (
            f"this host's deploy lock is held by run {held.run_id}, not by run {params.run_id} "
            "(taken over?): not cutting over"
        )
    return None
