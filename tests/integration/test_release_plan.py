"""tradeops.algo.release_plan on the controller: the ids, and the release's own defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_playbook
from tradeops.releases.artifact import build_artifact
from tradeops.testing.artifacts import rewrite_member

PLAYBOOK = """\
- name: Plan a release
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Plan it
      tradeops.algo.release_plan:
        artifact: "{{ artifact }}"
        version: "{{ version }}"
        workdir: "{{ workdir }}"
    - name: Keep what the hosts will see
      ansible.builtin.copy:
        content: "{{ {'id': release_id, 'defaults': release_defaults} | to_json }}"
        dest: "{{ workdir }}/plan.json"
        mode: "0644"
"""


def plan(tmp_path: Path, artifact: Path, version: str) -> tuple[int, str, dict | None]:
    book = tmp_path / "plan.yml"
    book.write_text(PLAYBOOK)
    run = run_playbook(
        str(book),
        "-e",
        json.dumps({"artifact": str(artifact), "version": version, "workdir": str(tmp_path)}),
    )
    kept = tmp_path / "plan.json"
    return run.rc, run.output, json.loads(kept.read_text()) if kept.exists() else None


def with_defaults(artifact: Path, text: bytes) -> Path:
    """A copy of ``artifact`` whose config/defaults.yml holds ``text``."""
    out = artifact.with_name("changed-defaults.tar.gz")
    return rewrite_member(artifact, out, "config/defaults.yml", lambda _old: text)


def test_a_drill_release_carries_its_fault_mode(tmp_path: Path) -> None:
    built = build_artifact("2.0.0", tmp_path / "a", fault_mode="runaway")
    rc, output, data = plan(tmp_path, built.path, "2.0.0")
    assert rc == 0, output[-3000:]
    assert data is not None
    assert data["id"] == f"2.0.0-{built.digest[:12]}"
    assert data["defaults"]["refapp_fault_mode"] == "runaway"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"- a list\n", "config/defaults.yml must map variable names to values"),
        (b"key: [unclosed\n", "config/defaults.yml is not YAML"),
    ],
)
def test_bad_release_defaults_are_refused(tmp_path: Path, text: bytes, message: str) -> None:
    built = build_artifact("2.0.1", tmp_path / "b")
    rc, output, _data = plan(tmp_path, with_defaults(built.path, text), "2.0.1")
    assert rc != 0
    assert message in " ".join(output.split())
