"""Run ansible-playbook from the repo's venv against the in-repo collection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible_env(**extra: str) -> dict[str, str]:
    """Environment for Ansible commands: the in-repo collection path and config."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@dataclass
class PlaybookRun:
    """Outcome of one ansible-playbook run."""

    rc: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        """Return the PLAY RECAP counters of ``host``."""
        match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", self.output, re.MULTILINE)
        assert match, f"no recap for {host} in:\n{self.output[-3000:]}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run_playbook(*args: str, timeout: float = 600, **env: str) -> PlaybookRun:
    """Run ``ansible-playbook ARGS`` from the repo root and capture its output."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=REPO,
        env=ansible_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)
