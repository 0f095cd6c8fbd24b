"""Why a host is not ACTIVE: reason codes, an enum and never free text.

A reason code goes into the trading-state record (20 bytes: every code fits),
the agent's state file, the audit log and the metrics. A new code may be
added in a minor version; a reader that does not know a code still reads the
state, which is what strategies act on.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why the host was tripped to REDUCING or HALTED (or what set it)."""

    MANUAL = "MANUAL"  # an operator, through the agent or the CLI
    STARTUP = "STARTUP"  # a new host starts HALTED until someone resets it
    AGENT_DOWN = "AGENT_DOWN"  # halted by the CLI while the agent was not answering
    DEPLOY = "DEPLOY"  # a deploy or a blue/green handover
    ROLLBACK = "ROLLBACK"  # an execution rollback
    DAILY_LOSS = "DAILY_LOSS"
    DRAWDOWN = "DRAWDOWN"
    WORKING_EXPOSURE = "WORKING_EXPOSURE"  # position plus working orders beyond a limit
    MSG_RATE = "MSG_RATE"
    REJECT_RATE = "REJECT_RATE"
    CHILD_EXCEEDS_PARENT = "CHILD_EXCEEDS_PARENT"  # the Knight pattern
    FEED_STALE = "FEED_STALE"
    ACK_LATENCY = "ACK_LATENCY"
    HEARTBEAT_LOST = "HEARTBEAT_LOST"  # a strategy's dead man's switch
    ERROR_BURST = "ERROR_BURST"
    BREAKER_FAULT = "BREAKER_FAULT"  # a breaker lost its inputs or failed: fail closed
    STATE_UNREADABLE = "STATE_UNREADABLE"  # the persisted state could not be read: fail closed

    @classmethod
    def parse(cls, text: str) -> Reason | None:
        """The code ``text`` names, or None (an older or newer writer's text)."""
        try:
            return cls(text.strip().upper())
        except ValueError:
            return None
