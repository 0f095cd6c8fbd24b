"""The deploy's phases are data: one list, and every place that must follow it does."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
TASKS = REPO / "roles" / "release" / "tasks"
PHASES = yaml.safe_load((REPO / "roles/release/vars/main.yml").read_text())["release_phases"]
NAMES = [p["name"] for p in PHASES]
# Phases with the user's before_/after_ hooks: those that run a phase file on each host.
HOOKED = [n for n in NAMES if (TASKS / f"phase_{n}.yml").is_file()]


def tasks(name: str) -> list[dict]:
    return yaml.safe_load((TASKS / name).read_text()) or []


def walk(items: list[dict]):
    for item in items:
        yield item
        for key in ("block", "rescue", "always"):
            yield from walk(item.get(key) or [])


def test_the_hooked_phases_are_the_documented_ones() -> None:
    assert HOOKED == [
        "lock",
        "preflight",
        "snapshot",
        "stage",
        "gate",
        "cutover",
        "verify",
        "unlock",
    ]
    spec = yaml.safe_load((REPO / "roles/release/meta/argument_specs.yml").read_text())
    hooks = spec["argument_specs"]["main"]["options"]["release_hooks"]["description"]
    listed = next(line for line in hooks if line.startswith("Phases are "))
    assert re.findall(r"[a-z]+", listed.removeprefix("Phases are ")) == HOOKED


def _imported(name: str) -> list[str]:
    files = [t.get("ansible.builtin.import_tasks") for t in tasks(name)]
    return [re.fullmatch(r"phase_(\w+)\.yml", f).group(1) for f in files if f]


def _hooked(name: str) -> list[str]:
    return [t["vars"]["release_phase"] for t in tasks(name) if "release_phase" in t.get("vars", {})]


def test_the_phase_files_run_in_the_listed_order() -> None:
    before = _imported("prepare_phases.yml")
    after = _imported("cutover_phases.yml")
    hooks_only = {p["name"] for p in PHASES if p.get("hooks_only")}
    assert before + after == [n for n in HOOKED if n not in hooks_only | {"unlock"}]
    assert _hooked("prepare_hooked.yml") == [n for n in HOOKED if n in {*before, *hooks_only}]
    assert _hooked("cutover_hooked.yml") == after


def test_every_phase_result_is_registered_by_a_task_of_the_role() -> None:
    registered = set()
    for path in TASKS.glob("*.yml"):
        registered.update(t["register"] for t in walk(tasks(path.name)) if "register" in t)
    for phase in PHASES:
        for name in phase["results"]:
            assert name in registered, (phase["name"], name)


def test_every_audit_checkpoint_names_known_phases_in_order() -> None:
    checkpoints = []
    for path in sorted(TASKS.glob("*.yml")):
        for task in walk(tasks(path.name)):
            audit = task.get("tradeops.algo.deploy_audit")
            if audit:
                assert audit["phases"] == "{{ release_phases }}", path.name
                if "record" in audit:  # else it records only the plan's notes
                    checkpoints.append(audit["record"])
                else:
                    assert "notes" in audit, path.name
    assert len(checkpoints) == 4
    for record in checkpoints:
        assert record == [n for n in NAMES if n in record], record
    # Together the checkpoints cover every phase that registers a result.
    covered = {n for record in checkpoints for n in record}
    assert covered == {p["name"] for p in PHASES}
