"""``baseline_ansible_halt_ms``: the same halt as ``trip_to_halted_us``, through Ansible.

A real agent on a temporary root (``killswitch_trip.agent``) and the same
observer process spinning on the trading-state file. For each trial the
benchmark takes ``time.monotonic_ns()`` and runs ``ansible-playbook
tradeops.algo.kill`` (the module ``tradeops.algo.killswitch``, over the
agent's Unix socket) on a local inventory (``ansible_connection=local``, the
repo's collection path and ``ansible.cfg``); the figure is until the observer
reads HALTED. ``playbook_exit`` is until ``ansible-playbook`` exits. Then a
reset over the socket, and the observer reads ACTIVE before the next trial.
Bounded: ``n`` trials, each with a time limit; processes stopped by PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from killswitch_trip import REPO, Observer, agent, summary

from tradeops.agent.client import AgentClient, checked
from tradeops.agent.protocol import Command
from tradeops.tradingstate import TradingState

BIN = Path(sys.executable).parent
PLAYBOOK_TIMEOUT_S = 120.0


def ansible_env(tmp: Path) -> dict[str, str]:
    """The repo's collection path and config, the audit under ``tmp``."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        TRADEOPS_AUDIT_DIR=str(tmp / "audit"),
        PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def baseline(n: int = 10) -> dict[str, Any]:
    """``n`` halts through ``ansible-playbook tradeops.algo.kill``."""
    with tempfile.TemporaryDirectory(prefix="bench-ks-ansible-") as tmpdir:
        tmp = Path(tmpdir)
        inventory = tmp / "hosts.yml"
        inventory.write_text(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n",
            encoding="utf-8",
        )
        with agent(tmp) as ag:
            client = AgentClient(socket_path=ag.socket, timeout_s=5.0)
            checked(client.request(Command.RESET, who="bench", reason="start"))
            cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), "tradeops.algo.kill"]
            cmd += ["-e", "target_hosts=all", "-e", f"tradeops_root={ag.root}"]
            cmd += ["-e", f"tradeops_python={sys.executable}", "-e", "kill_who=bench"]
            cmd += ["-e", "kill_reason=baseline through Ansible"]
            observer = Observer(ag.state_file, PLAYBOOK_TIMEOUT_S * (n + 1))
            halted: list[int] = []
            exited: list[int] = []
            try:
                state, _unused = observer.next()
                if state != TradingState.ACTIVE:
                    raise RuntimeError(f"the observer starts in state {state}, not ACTIVE")
                for i in range(n):
                    observer.arm()
                    started = time.monotonic_ns()
                    proc = subprocess.Popen(
                        cmd,
                        cwd=REPO,
                        env=ansible_env(tmp),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    )
                    state, seen = observer.next(PLAYBOOK_TIMEOUT_S)
                    out = proc.communicate(timeout=PLAYBOOK_TIMEOUT_S)[0]
                    exited.append(time.monotonic_ns() - started)
                    if proc.returncode != 0 or state != TradingState.HALTED:
                        tail = out.decode(errors="replace")[-2000:]
                        raise RuntimeError(f"trial {i}: rc {proc.returncode}, {state}:\n{tail}")
                    halted.append(seen - started)
                    checked(client.request(Command.RESET, who="bench", reason=f"trial {i}"))
                    observer.arm()
                    state, _unused = observer.next()
                    if state != TradingState.ACTIVE:
                        raise RuntimeError(f"trial {i}: the observer read {state} after the reset")
            finally:
                observer.close()
    figures = summary(halted, unit_ns=1e6)
    figures["playbook_exit"] = summary(exited, unit_ns=1e6)
    return figures
