"""The tradeops.algo.host role on the local inventory (connection local)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ansible_run import BIN, REPO, ansible_env, run_playbook

LOCAL = "inventories/local/hosts.yml"


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """The offline wheelhouse the role installs from (built by `make wheelhouse`)."""
    subprocess.run([str(REPO / "scripts/wheelhouse.sh")], check=True, capture_output=True)
    return REPO / "build" / "wheelhouse"


@pytest.fixture
def root() -> Iterator[Path]:
    """A fresh data root; stops the supervisord the role may have started there.

    Under a short /tmp directory, not ``tmp_path``: supervisord's AF_UNIX
    socket path (``<root>/run/supervisor.sock``) must stay under 108 bytes, and
    pytest-xdist's per-worker directories make ``tmp_path`` longer.
    """
    base = Path(tempfile.mkdtemp(prefix="thr-", dir="/tmp"))
    data_root = base / "srv" / "tradeops"
    yield data_root
    pidfile = data_root / "run" / "supervisord.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().strip())
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
        )
        if str(data_root).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(base, ignore_errors=True)


def bootstrap(root: Path, wheelhouse: Path, *extra: str) -> object:
    return run_playbook(
        "-i",
        LOCAL,
        "tradeops.algo.bootstrap",
        "-e",
        "target_hosts=trading",
        "-e",
        f"tradeops_root={root}",
        "-e",
        f"tradeops_wheelhouse={wheelhouse}",
        *extra,
    )


def test_check_mode_creates_nothing(root: Path, wheelhouse: Path) -> None:
    run = bootstrap(root, wheelhouse, "--check")
    assert run.rc == 0, run.output
    assert run.recap("localhost")["changed"] > 0
    assert not root.exists()


def test_bootstrap_converges_and_is_idempotent(root: Path, wheelhouse: Path) -> None:
    first = bootstrap(root, wheelhouse)
    assert first.rc == 0, first.output
    assert first.recap("localhost")["changed"] > 0
    for rel in ("releases/.staging", "shared/secrets", "state/snapshots", "run"):
        assert (root / rel).is_dir(), rel
    assert (root / "shared/secrets").stat().st_mode & 0o777 == 0o700
    venv_python = root / "venv" / "bin" / "python"
    out = subprocess.run(
        [str(venv_python), "-c", "import tradeops, sys; print(tradeops.__version__, sys.prefix)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[1] == str(root / "venv")
    # A trading host gets the host library and the strategy client, nothing else:
    # no simulator, no test fleet (staging extras), no strategy (it ships in releases).
    names = ("tradeops.releases", "tradeops_client", "tradeops.sim", "tradeops.testing")
    names = (*names, "tradeops_refapp")
    probe = (
        "import importlib.util as u, json; "
        f"print(json.dumps({{m: u.find_spec(m) is not None for m in {names}}}))"
    )
    found = subprocess.run(
        [str(venv_python), "-I", "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(found) == {
        "tradeops.releases": True,
        "tradeops_client": True,
        "tradeops.sim": False,
        "tradeops.testing": False,
        "tradeops_refapp": False,
    }
    sim = subprocess.run(
        [str(root / "venv" / "bin" / "tradeops"), "sim", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert sim.returncode == 2
    assert "staging extra, not installed on this host" in sim.stderr

    second = bootstrap(root, wheelhouse)
    assert second.rc == 0, second.output
    assert second.recap("localhost")["changed"] == 0, second.output

    # The module runs from the host venv and reads the layout.
    adhoc = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            LOCAL,
            "localhost",
            "-m",
            "tradeops.algo.host_info",
            "-a",
            f"root={root} require_layout=true",
            "-e",
            f"ansible_python_interpreter={venv_python}",
            "-o",
        ],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert adhoc.returncode == 0, adhoc.stdout + adhoc.stderr
    result = json.loads(adhoc.stdout.split("=>", 1)[1])
    assert result["layout_ok"] is True
    assert result["python"] == str(venv_python)


def test_bad_variable_fails_at_role_start(root: Path, wheelhouse: Path) -> None:
    run = bootstrap(root, wheelhouse, "-e", "host_service_manager=moon")
    assert run.rc != 0
    assert "value of host_service_manager must be one of: auto, systemd, supervisord" in run.output
    assert "got: moon" in run.output
    assert not root.exists()
