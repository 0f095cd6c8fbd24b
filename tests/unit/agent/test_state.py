"""The agent's trading state: trips tighten, resets loosen with a reason, HALTED is sticky."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeops.agent.reasons import Reason
from tradeops.agent.state import AGENT_STATE, AUDIT_LOG, TRADING_STATE, Refused, StateMachine
from tradeops.tradingstate import TradingState, read_state, write_state

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def _audit(root: Path) -> list[dict]:
    lines = (root / AUDIT_LOG).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _active(root: Path) -> StateMachine:
    machine = StateMachine(root)
    machine.reset(ACTIVE, "alice", "first day")
    return machine


def test_a_new_host_starts_halted_until_an_operator_resets_it(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path)
    assert machine.snapshot.state is HALTED
    assert machine.snapshot.reason is Reason.STARTUP
    record = read_state(tmp_path / TRADING_STATE)
    assert (record.state, record.reason) == (HALTED, "STARTUP")
    assert _audit(tmp_path)[-1]["event"] == "start"


def test_a_trip_is_visible_to_strategies_and_survives_a_restart(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    result = machine.trip(HALTED, Reason.DAILY_LOSS, "breaker", "loss 51000 > 50000")
    assert result.changed
    record = read_state(tmp_path / TRADING_STATE)
    assert (record.state, record.reason, record.who) == (HALTED, "DAILY_LOSS", "breaker")

    again = StateMachine(tmp_path)  # the agent restarts (or was SIGKILLed)
    assert again.snapshot.state is HALTED
    assert again.snapshot.reasons == (Reason.DAILY_LOSS,)
    assert again.snapshot.who == "breaker"


def test_a_trip_only_tightens_and_records_every_reason(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    machine.trip(REDUCING, Reason.REJECT_RATE, "breaker", "12 rejects in 1 s")
    machine.trip(HALTED, Reason.MSG_RATE, "breaker", "900 msgs/s")
    lower = machine.trip(REDUCING, Reason.FEED_STALE, "breaker", "no quote for 3 s")
    assert machine.snapshot.state is HALTED  # a REDUCING trip never loosens a HALTED host
    assert lower.after.reasons == (Reason.REJECT_RATE, Reason.MSG_RATE, Reason.FEED_STALE)
    same = machine.trip(HALTED, Reason.MSG_RATE, "breaker", "still 900 msgs/s")
    assert not same.changed
    assert _audit(tmp_path)[-1]["event"] == "trip-again"
    with pytest.raises(Refused, match="use reset"):
        machine.trip(ACTIVE, Reason.MANUAL, "alice", "no")


def test_a_reset_needs_who_and_why_and_says_what_it_does_not_reset(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    machine.trip(HALTED, Reason.MANUAL, "bob", "suspicious fills")
    with pytest.raises(Refused, match="operator identity"):
        machine.reset(ACTIVE, "", "done")
    with pytest.raises(Refused, match="operator identity"):
        machine.reset(ACTIVE, "alice", "  ")
    with pytest.raises(Refused, match="is a trip"):
        _active(tmp_path / "other").reset(HALTED, "alice", "a reset never tightens")
    result = machine.reset(ACTIVE, "alice", "checked with the broker")
    assert result.changed
    assert result.cleared == (Reason.MANUAL,)
    assert "positions are not reopened" in result.not_reset
    assert result.as_dict()["rearmed"] == "every breaker of this host"
    assert read_state(tmp_path / TRADING_STATE).state is ACTIVE


def test_a_reset_is_refused_while_the_condition_holds_unless_forced(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    machine.trip(HALTED, Reason.DAILY_LOSS, "breaker", "loss 51000 > 50000")
    with pytest.raises(Refused, match="DAILY_LOSS still holds"):
        machine.reset(ACTIVE, "alice", "go", holding=[Reason.DAILY_LOSS])
    assert machine.snapshot.state is HALTED
    result = machine.reset(ACTIVE, "alice", "limit raised by risk", [Reason.DAILY_LOSS], force=True)
    assert result.forced
    record = _audit(tmp_path)[-1]
    assert (record["event"], record["forced"], record["still_holding"]) == (
        "reset",
        True,
        ["DAILY_LOSS"],
    )


def test_a_halt_written_by_the_cli_while_the_agent_was_down_is_adopted(tmp_path: Path) -> None:
    _active(tmp_path)
    write_state(tmp_path / TRADING_STATE, HALTED, reason="AGENT_DOWN", who="oncall")
    machine = StateMachine(tmp_path)
    assert machine.snapshot.state is HALTED
    assert machine.snapshot.reasons == (Reason.AGENT_DOWN,)
    assert machine.snapshot.who == "oncall"
    saved = json.loads((tmp_path / AGENT_STATE).read_text(encoding="utf-8"))
    assert saved["state"] == "HALTED"


def test_a_halt_written_behind_a_running_agent_is_never_loosened_by_its_next_trip(
    tmp_path: Path,
) -> None:
    machine = _active(tmp_path)
    machine.trip(REDUCING, Reason.DRAWDOWN, "agent:breaker", "drawdown")
    # The agent hangs; the CLI's fallback halt writes the file behind its back.
    write_state(tmp_path / TRADING_STATE, HALTED, reason="AGENT_DOWN", who="oncall")
    trip = machine.trip(REDUCING, Reason.MSG_RATE, "agent:breaker", "msg rate")
    assert trip.changed
    assert trip.before.state is REDUCING
    assert trip.after.state is HALTED
    assert trip.after.reasons == (Reason.DRAWDOWN, Reason.AGENT_DOWN, Reason.MSG_RATE)
    assert read_state(tmp_path / TRADING_STATE).state is HALTED
    assert any(r["event"] == "adopt" for r in _audit(tmp_path))
    # A reset to REDUCING now loosens from HALTED (it is no longer a no-op).
    done = machine.reset(REDUCING, "alice", "checked", force=True)
    assert done.changed
    assert done.before.state is HALTED
    assert read_state(tmp_path / TRADING_STATE).state is REDUCING


def test_a_reset_adopts_a_halt_written_behind_the_agent_first(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    write_state(tmp_path / TRADING_STATE, HALTED, reason="AGENT_DOWN", who="oncall")
    done = machine.reset(ACTIVE, "alice", "no-op reset")
    assert done.changed
    assert done.before.state is HALTED
    assert Reason.AGENT_DOWN in done.cleared


def test_the_agent_file_stricter_than_the_trading_file_is_written_again(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    machine.trip(HALTED, Reason.MANUAL, "bob", "stop")
    write_state(tmp_path / TRADING_STATE, ACTIVE, reason="", who="someone")  # out of band
    assert StateMachine(tmp_path).snapshot.state is HALTED
    assert read_state(tmp_path / TRADING_STATE).state is HALTED


@pytest.mark.parametrize("broken", [AGENT_STATE, TRADING_STATE])
def test_a_persisted_file_that_cannot_be_read_fails_closed(tmp_path: Path, broken: str) -> None:
    _active(tmp_path)
    (tmp_path / broken).write_bytes(b"\x00garbage")
    machine = StateMachine(tmp_path)
    assert machine.snapshot.state is HALTED
    assert machine.snapshot.reason is Reason.STATE_UNREADABLE
    assert broken.split("/")[-1] in machine.snapshot.why


def test_every_reason_code_fits_the_state_record() -> None:
    assert max(len(r.value.encode()) for r in Reason) <= 20
    assert Reason.parse(" daily_loss ") is Reason.DAILY_LOSS
    assert Reason.parse("A_NEWER_CODE") is None


def test_a_deferred_trip_is_published_at_once_and_made_durable_by_flush(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    before = read_state(tmp_path / TRADING_STATE).generation
    trip = machine.trip(HALTED, Reason.MANUAL, "ops", "drill", durable=False)
    assert trip.changed
    # Strategies see HALTED now (the record written in place), before any fsync.
    published = read_state(tmp_path / TRADING_STATE)
    assert (published.state, published.generation) == (HALTED, before + 1)
    assert not machine.durable
    assert json.loads((tmp_path / AGENT_STATE).read_text())["state"] == "ACTIVE"
    assert [r["event"] for r in _audit(tmp_path)][-1] != "trip"
    # An agent killed here comes back HALTED from the published record.
    assert StateMachine(tmp_path).snapshot.state is HALTED
    machine.flush()
    assert machine.durable
    assert json.loads((tmp_path / AGENT_STATE).read_text())["state"] == "HALTED"
    assert read_state(tmp_path / TRADING_STATE).generation > before + 1


def test_a_reset_makes_a_deferred_trip_durable_first(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    machine.trip(HALTED, Reason.MANUAL, "ops", "drill", durable=False)
    machine.reset(ACTIVE, "alice", "after the drill")
    events = [r["event"] for r in _audit(tmp_path)]
    assert events[-2:] == ["trip", "reset"]
    assert machine.durable
    assert read_state(tmp_path / TRADING_STATE).state is ACTIVE


def test_a_halt_keeps_the_reason_of_a_halt_written_behind_its_back(tmp_path: Path) -> None:
    machine = _active(tmp_path)
    write_state(tmp_path / TRADING_STATE, HALTED, reason="AGENT_DOWN", who="oncall")
    trip = machine.trip(HALTED, Reason.MANUAL, "ops", "drill", durable=False)
    machine.flush()
    assert trip.after.state is HALTED
    assert trip.after.reasons == (Reason.AGENT_DOWN, Reason.MANUAL)
    assert "adopt" in [r["event"] for r in _audit(tmp_path)]


def test_a_halt_published_early_survives_the_late_durable_write_of_an_earlier_trip(
    tmp_path: Path,
) -> None:
    """REDUCE (durable write still due), then the accept thread publishes a HALT in place."""
    machine = _active(tmp_path)
    machine.trip(TradingState.REDUCING, Reason.REJECT_RATE, "bob", "rejects", durable=False)
    machine.prepublish_halt(Reason.MANUAL, "alice")
    path = tmp_path / TRADING_STATE
    assert read_state(path).state is TradingState.HALTED
    machine.flush()  # the loop's call_soon: REDUCING's rename must not undo the halt
    assert read_state(path).state is TradingState.HALTED
    machine.trip(TradingState.HALTED, Reason.MANUAL, "alice", "drill", durable=False)
    assert read_state(path).state is TradingState.HALTED
    machine.flush()
    assert read_state(path).state is TradingState.HALTED
    assert machine.snapshot.state is TradingState.HALTED


def test_the_trip_of_an_early_halt_publishes_again_after_its_own_flush(tmp_path: Path) -> None:
    """The same, with the earlier trip's durable write left to the halt's trip itself."""
    machine = _active(tmp_path)
    machine.trip(TradingState.REDUCING, Reason.REJECT_RATE, "bob", "rejects", durable=False)
    machine.prepublish_halt(Reason.MANUAL, "alice")
    machine.trip(TradingState.HALTED, Reason.MANUAL, "alice", "drill", durable=False)
    assert read_state(tmp_path / TRADING_STATE).state is TradingState.HALTED


def test_a_late_trip_write_keeps_a_stricter_record_but_a_reset_loosens(tmp_path: Path) -> None:
    path = tmp_path / "ts"
    write_state(path, TradingState.HALTED, "MANUAL", "alice")
    kept = write_state(path, TradingState.REDUCING, "REJECT_RATE", "bob", keep_stricter=True)
    assert (kept.state, kept.reason, kept.who) == (TradingState.HALTED, "MANUAL", "alice")
    assert write_state(path, TradingState.ACTIVE, "", "carol").state is TradingState.ACTIVE
