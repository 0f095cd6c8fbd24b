"""Both ways a module of the collection runs give the same results.

The action plugins run the modules through ``python -m tradeops.modrun`` on the
host (the fast path); with ``tradeops_modrun: false`` the module files run under
AnsiballZ. Both are driven here by a real playbook on this machine (connection
local, this venv as the host's Python): lock, host facts, stage from the
controller's artifact with a config file, activate with prune, unlock. A third
run keeps the fast path but sends the artifacts as copies, as it does for one
larger than ``tradeops_stream_max_bytes``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_playbook
from tradeops.releases.artifact import build_artifact
from tradeops.releases.layout import LAYOUT_DIRS

PLAYBOOK = """\
- name: Drive every module of the collection once
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
    root: {root}
  tasks:
    - name: Lock
      tradeops.algo.deploy_lock:
        root: "{{{{ root }}}}"
        run_id: run-1
        owner: tester
      register: locked
    - name: Host facts and preflight
      tradeops.algo.host_info:
        root: "{{{{ root }}}}"
        require_layout: true
        min_free_bytes: 1
      register: info
    - name: Stage from the controller's artifact
      tradeops.algo.release:
        root: "{{{{ root }}}}"
        release_id: r1
        src: {artifact}
        config_files:
          - path: "config/{{release_id}}/app.yml"
            content: "answer: 42\\n"
      register: staged
    - name: Stage again
      tradeops.algo.release:
        root: "{{{{ root }}}}"
        release_id: r1
        src: {artifact}
      register: staged_again
    - name: Activate and prune
      tradeops.algo.release:
        root: "{{{{ root }}}}"
        release_id: r1
        state: active
        prune: true
        keep: 1
      register: active
    - name: Stage a second release
      tradeops.algo.release:
        root: "{{{{ root }}}}"
        release_id: r2
        src: {artifact2}
    - name: Cut over to it (swap only, no strategy here)
      tradeops.algo.cutover:
        root: "{{{{ root }}}}"
        release_id: r2
        verify: false
        prune: true
        keep: 1
      register: cutover
    - name: A cutover that needs a program name
      tradeops.algo.cutover:
        root: "{{{{ root }}}}"
        release_id: r2
        status_url: http://127.0.0.1:1/status
      register: cutover_bad
      ignore_errors: true
    - name: A bad argument
      tradeops.algo.release:
        root: "{{{{ root }}}}"
        state: moon
      register: bad
      ignore_errors: true
    - name: Unlock
      tradeops.algo.deploy_lock:
        root: "{{{{ root }}}}"
        state: unlocked
        run_id: run-1
        owner: tester
      register: unlocked
    - name: Report
      ansible.builtin.copy:
        dest: {out}
        content: "{{{{ dict(locked=locked, info=info, staged=staged, again=staged_again,
                   active=active, cutover=cutover, cutover_bad=cutover_bad, bad=bad,
                   unlocked=unlocked) | to_json }}}}"
        mode: "0644"
"""


def drive(tmp_path: Path, modrun: bool, artifacts: tuple[Path, Path], *extra: str) -> dict:
    root = tmp_path / "root"
    for sub in LAYOUT_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out.json"
    book = tmp_path / "play.yml"
    first, second = artifacts
    book.write_text(
        PLAYBOOK.format(python=sys.executable, root=root, artifact=first, artifact2=second, out=out)
    )
    run = run_playbook(
        str(book),
        "-vvv",
        "-e",
        f"tradeops_modrun={str(modrun).lower()}",
        *extra,
        ANSIBLE_REMOTE_TMP=str(tmp_path / "remote-tmp"),
        ANSIBLE_PIPELINING="true",  # as on the fleet; the local connection's default is off
    )
    assert run.rc == 0, run.output[-4000:]
    # Which path ran, from the commands Ansible logged: 10 module tasks, of which the
    # controller refuses two (the bad argument, the cutover without a program name).
    fast = [
        line for line in run.output.splitlines() if "EXEC" in line and "-m tradeops.modrun" in line
    ]
    assert len(fast) == (8 if modrun else 0), run.output[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("art")
    return build_artifact("7.0.0", where / "a").path, build_artifact("7.1.0", where / "b").path


@pytest.fixture(scope="module")
def artifact(artifacts: tuple[Path, Path]) -> Path:
    return artifacts[0]


@pytest.mark.parametrize(
    ("modrun", "stream_max_bytes", "transfer"),
    [(True, None, "stream"), (False, None, "copy"), (True, 1, "copy")],
    ids=["modrun", "ansiballz", "modrun-copy"],
)
def test_modules_behave_the_same_either_way(
    tmp_path: Path,
    artifacts: tuple[Path, Path],
    modrun: bool,
    stream_max_bytes: int | None,
    transfer: str,
):
    extra = (
        [] if stream_max_bytes is None else ["-e", f"tradeops_stream_max_bytes={stream_max_bytes}"]
    )
    result = drive(tmp_path, modrun, artifacts, *extra)
    assert result["staged"]["transfer"] == transfer
    assert result["again"]["transfer"] == transfer
    assert result["locked"]["acquired"] is True
    assert result["locked"]["changed"] is True
    assert result["info"]["layout_ok"] is True
    assert result["staged"]["changed"] is True
    assert result["staged"]["action"] == "create"
    (path,) = result["staged"]["config_sha256"]
    assert path == "config/r1/app.yml"
    assert result["staged"]["config_sha256"] == result["staged"]["config_expected_sha256"]
    assert result["again"]["changed"] is False
    assert result["active"]["changed"] is True
    assert result["active"]["current"] == "r1"
    assert result["cutover"]["changed"] is True
    assert (result["cutover"]["previous"], result["cutover"]["current"]) == ("r1", "r2")
    assert result["cutover"]["removed"] == []  # r1 is the rollback target
    assert "strategy" not in result["cutover"]
    assert result["cutover_bad"]["failed"] is True
    assert "name" in result["cutover_bad"]["msg"]
    assert result["bad"]["failed"] is True
    assert "moon" in result["bad"]["msg"]
    assert result["unlocked"]["changed"] is True
    root = tmp_path / "root"
    assert (root / "current").resolve() == (root / "releases" / "r2").resolve()
    assert (root / "shared" / "config" / "r1" / "app.yml").read_text() == "answer: 42\n"
    assert not (root / "deploy.lock").exists()
    # The artifact never stays on the host: staged from memory or a removed temp copy.
    assert list((root / "releases" / ".staging").iterdir()) == []
    assert list((tmp_path / "remote-tmp").glob("*")) == []


def stage_once(tmp_path: Path, artifact: Path, title: str, **task_vars: str):
    """Run one ``release`` stage of ``artifact`` as r1, with ``task_vars``; return root, run."""
    root = tmp_path / "root"
    for sub in LAYOUT_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    book = tmp_path / "play.yml"
    book.write_text(
        f"""\
- name: {title}
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Stage
      tradeops.algo.release:
        root: {root}
        release_id: r1
        src: {artifact}
      vars: {json.dumps(task_vars)}
"""
    )
    return root, run_playbook(str(book))


def test_a_stream_limit_that_is_not_a_size_is_refused(tmp_path: Path, artifact: Path) -> None:
    root, run = stage_once(
        tmp_path,
        artifact,
        "Stage with a stream limit that is not a number of bytes",
        ansible_python_interpreter=sys.executable,
        tradeops_stream_max_bytes="64M",
    )
    assert run.rc != 0
    assert "tradeops_stream_max_bytes must be a whole number of bytes >= 0; got '64M'" in run.output
    assert not (root / "releases" / "r1").exists()


def test_a_host_without_the_library_is_told_so(tmp_path: Path, artifact: Path) -> None:
    """The fast path falls back to the module (and its artifact copy), which names the fix."""
    root, run = stage_once(
        tmp_path,
        artifact,
        "Stage on a host whose Python has no tradeops library",
        ansible_python_interpreter="/usr/bin/python3",
    )
    assert run.rc != 0
    assert "tradeops.algo.host role" in run.output, run.output[-3000:]
    assert not (root / "releases" / "r1").exists()
