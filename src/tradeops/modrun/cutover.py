"""The ``cutover`` module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradeops.modrun import module_result
from tradeops.process.service import StrategyRequest
from tradeops.releases.cutover import CutoverError, run_cutover
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
    try:
        outcome = run_cutover(params.release(), params.strategy(), check_mode=check_mode)
    except ReleaseServiceError as exc:
        return {"failed": True, "msg": str(exc), "release_id": params.release_id}
    except CutoverError as exc:
        return {**exc.result, "failed": True, "changed": exc.changed, "msg": str(exc)}
    return module_result(outcome, diff)
