"""What the listening agent tells the rest of the assembly, and asks of it.

``Agent`` (``server.py``) stays focused on the listeners and the state
machine; everything else (enforcement, breakers, metrics, notifications) is
behind :class:`Hooks`. ``NoHooks`` is the bare agent: what the unit tests and a
config without assembly sections run.

The synchronous hooks run on the command's path: they must be cheap (a
gauge, a counter, ``create_task``) and must not raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from tradeops.agent.reasons import Reason
from tradeops.agent.state import Transition

if TYPE_CHECKING:
    from tradeops.agent.server import Agent


class Hooks(Protocol):
    """The assembly around the agent's listeners."""

    async def start(self, agent: Agent) -> None:
        """The listeners are up and the state is loaded."""

    async def stop(self) -> None:
        """The agent is stopping."""

    def tripped(self, transition: Transition, source: str) -> None:
        """A trip was published (already in the trading-state file)."""

    async def resync(self) -> dict[str, Any]:
        """Before a reset: rebuild what the breakers judge (positions) from the venue."""

    def holding(self) -> Iterable[Reason]:
        """The reasons whose condition holds now (a reset is refused on them)."""

    def reset_done(self, transition: Transition, force: bool) -> dict[str, Any]:
        """A reset was published; what it did beyond the state (added to the answer)."""

    def heartbeat(self, strategy: str) -> None:
        """A strategy's heartbeat command."""

    def status(self) -> dict[str, Any]:
        """What the ``status`` answer gains."""

    def command_done(self, cmd: str, listener: str, seconds: float, code: str | None) -> None:
        """A command was answered (``code``: the refusal's error code, or None)."""

    def refused(self, code: str, listener: str) -> None:
        """A frame was refused before it became a command."""

    def beat(self, now: float) -> None:
        """The liveness file was written at ``now`` (Unix time)."""


class NoHooks:
    """The bare agent: nothing around the listeners."""

    async def start(self, agent: Agent) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def tripped(self, transition: Transition, source: str) -> None:
        """Nothing to enforce."""

    async def resync(self) -> dict[str, Any]:
        """Nothing to rebuild."""
        return {}

    def holding(self) -> Iterable[Reason]:
        """No condition holds."""
        return ()

    def reset_done(self, transition: Transition, force: bool) -> dict[str, Any]:
        """Nothing to re-arm."""
        return {}

    def heartbeat(self, strategy: str) -> None:
        """No breaker reads heartbeats."""

    def status(self) -> dict[str, Any]:
        """Nothing to add."""
        return {}

    def command_done(self, cmd: str, listener: str, seconds: float, code: str | None) -> None:
        """No metrics."""

    def refused(self, code: str, listener: str) -> None:
        """No metrics."""

    def beat(self, now: float) -> None:
        """No metrics."""
