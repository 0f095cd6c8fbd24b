"""The deploy's agent check: agent_offenders reads what tradeops.algo.killswitch answers."""

from __future__ import annotations

from pathlib import Path

from tests.collection_files import load
from tests.unit.agent.agentkit import running_agent
from tradeops.modrun.killswitch import KillswitchParams, run

offenders = load("plugins/filter/agent_offenders.py")


def status(root: Path) -> dict:
    return run(KillswitchParams(root=str(root), state="status"), check_mode=False, diff=False)


def test_a_host_whose_agent_answers_and_beats_passes(tmp_path: Path) -> None:
    with running_agent(tmp_path) as agent:
        answer = status(agent.config.root)
    assert offenders.agent_offenders({"h1": answer}) == {}


def test_a_host_without_an_agent_is_named_with_why(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    found = offenders.agent_offenders({"h1": status(tmp_path), "h2": None})
    assert sorted(found) == ["h1", "h2"]
    assert found["h1"].startswith("the agent does not answer on its socket (the agent is not")
    assert found["h2"] == "no answer from the host"


def test_an_agent_that_answers_but_stopped_beating_is_named() -> None:
    answer = {
        "agent_reachable": True,
        "liveness": {"alive": False, "error": "last beat 4.000 s ago (limit 1 s)"},
    }
    found = offenders.agent_offenders({"h1": answer, "h2": {"failed": True, "msg": "boom"}})
    assert found == {
        "h1": "the agent's liveness beat is not fresh (last beat 4.000 s ago (limit 1 s))",
        "h2": "the agent could not be read: boom",
    }
