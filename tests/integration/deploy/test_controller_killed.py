"""A controller SIGKILLed in the first 0.3 s of an 8-host cutover (issue 10, finding 4).

At each of 10 moments, ``ansible-playbook`` is killed (its main process only, as
a crash or an OOM kill would) right after the cutover starts. Its orphaned
workers are let finish. Then the same deploy runs again without consent: it
must report what it found (a split fleet, the dead run's locks) and change
nothing. Then once more with the operator's reason: it must converge every host
on the release and leave no lock. No run may exit 0 with a lock left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.ansible_run import BIN, REPO, ansible_env, run_playbook
from tests.integration.deploy.test_deploy_fleet import EXTRA_VARS
from tradeops.releases.artifact import build_artifact

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

HOSTS = 8
# 0 s .. 0.3 s after the cutover starts, every 60 ms. Each trial is three deploys on 8
# hosts (about 23 s): six points cover the window that ten did (issue 10) in 60% of the time.
MOMENTS = [round(i * 0.06, 3) for i in range(6)]
ORPHANS_S = 120.0  # the killed run's workers finish their remote calls within this


@pytest.fixture(scope="module")
def killed(module_fleet_factory, tmp_path_factory):
    """8 bootstrapped hosts (no strategy process: the cutover is the swap), two artifacts."""
    fleet = module_fleet_factory(HOSTS, name="kil")
    work = tmp_path_factory.mktemp("killed")
    subprocess.run([str(REPO / "scripts/wheelhouse.sh")], check=True, capture_output=True)
    vars_file = work / "vars.json"
    # No strategy process (nothing trades here), so no kill-switch agent is required either.
    no_trading = {"release_manage_process": False, "release_require_agent": False}
    vars_file.write_text(json.dumps({**EXTRA_VARS, **no_trading}))
    common = ["-i", str(fleet.inventory_path), "-e", f"@{vars_file}", "-e", "target_hosts=kil"]
    boot = run_playbook(
        *common, "tradeops.algo.bootstrap", "-e", f"tradeops_wheelhouse={REPO}/build/wheelhouse"
    )
    assert boot.rc == 0, boot.output[-4000:]
    artifacts = {
        "3.2.0": build_artifact("3.2.0", work / "a").path,
        "3.3.0": build_artifact("3.3.0", work / "b").path,
    }
    first = deploy(fleet, common, work, "3.2.0", artifacts["3.2.0"])
    assert first.rc == 0, first.output[-4000:]
    return fleet, common, work, artifacts


def deploy(fleet, common, work: Path, version: str, artifact: Path, *extra: str):
    del fleet
    return run_playbook(
        *common,
        "tradeops.algo.deploy",
        "-e",
        f"release_version={version}",
        "-e",
        f"release_artifact={artifact}",
        *extra,
        TRADEOPS_AUDIT_DIR=str(work / "audit"),
    )


def currents(fleet) -> dict[str, str | None]:
    out = {}
    for host in fleet.hosts:
        link = fleet.host_dir(host) / "current"
        out[host.name] = Path(link.readlink()).name if link.is_symlink() else None
    return out


def locks(fleet) -> list[str]:
    return [h.name for h in fleet.hosts if (fleet.host_dir(h) / "deploy.lock").exists()]


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _group_gone(pgid: int, timeout_s: float) -> bool:
    """Wait (bounded) until no process of the killed run's process group is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def kill_during_cutover(killed, version: str, moment: float, trial: int) -> str:
    """Start the deploy, SIGKILL ansible-playbook ``moment`` s after its cutover starts."""
    _fleet, common, work, artifacts = killed
    marker = work / f"cutover-started-{trial}"
    hook = work / f"before_cutover_{trial}.yml"
    hook.write_text(
        f"""---
- name: Tell the test that the cutover starts
  ansible.builtin.file:
    path: {marker}
    state: touch
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""
    )
    log = work / f"killed-{trial}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # its own session: the test stops only what it started
            [
                str(BIN / "ansible-playbook"),
                *common,
                "tradeops.algo.deploy",
                "-e",
                f"release_version={version}",
                "-e",
                f"release_artifact={artifacts[version]}",
                "-e",
                json.dumps({"release_hooks": {"before_cutover": str(hook)}}),
            ],
            env=ansible_env(TRADEOPS_AUDIT_DIR=str(work / "audit")),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            started = _wait_for(marker, proc, 300.0)
            if started:
                time.sleep(moment)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if not _group_gone(proc.pid, ORPHANS_S):
                os.killpg(proc.pid, signal.SIGKILL)  # our own session only
                _group_gone(proc.pid, 30.0)
    assert started, log.read_text()[-4000:]
    return log.read_text()


def settled(fleet, quiet_s: float = 3.0, timeout_s: float = 60.0) -> dict[str, str | None]:
    """The hosts' releases once no orphaned remote call changes them any more.

    The killed controller's remote module processes run on in the hosts' sshd
    sessions and may still finish a swap after the controller is gone (issue 10
    saw it in 13 of 18 trials); what the next run finds is what they leave.
    """
    deadline = time.monotonic() + timeout_s
    last, since = currents(fleet), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = currents(fleet)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"the hosts kept changing for {timeout_s} s: {last}")


@pytest.mark.timeout(600)  # about 230 s idle with its 8-host fixture
def test_a_controller_killed_in_the_cutover_is_reported_then_converged_on_consent(
    killed,
) -> None:
    fleet, common, work, artifacts = killed
    outcomes = []
    for trial, moment in enumerate(MOMENTS):
        version = "3.3.0" if trial % 2 == 0 else "3.2.0"
        kill_during_cutover(killed, version, moment, trial)
        found = settled(fleet)
        split = len(set(found.values())) > 1
        held = locks(fleet)
        # The next run, without consent: it reports what it found and changes nothing.
        again = deploy(fleet, common, work, version, artifacts[version])
        text = " ".join(again.output.split())
        where = f"trial {trial} (killed {moment} s into the cutover)"
        if again.rc == 0:
            assert not locks(fleet), f"{where}: a run exited 0 leaving locks: {text[-3000:]}"
        assert held, f"{where}: the killed run released its locks?"
        assert again.rc != 0, f"{where}: {text[-3000:]}"
        assert "LOCKED: this run locked and staged nothing" in text, f"{where}: {text[-4000:]}"
        assert text.count("DEAD: its controller process is gone") >= len(held), where
        if split:
            assert "SPLIT FLEET:" in text, f"{where}: the split was not reported"
        assert currents(fleet) == found, f"{where}: the refused run changed a host"
        assert sorted(locks(fleet)) == sorted(held), f"{where}: the refused run touched a lock"
        # With the operator's reason: the dead run's locks are taken over, one release.
        fixed = deploy(
            fleet,
            common,
            work,
            version,
            artifacts[version],
            "-e",
            json.dumps({"release_lock_takeover_reason": f"controller killed (trial {trial})"}),
        )
        assert fixed.rc == 0, f"{where}: {fixed.output[-4000:]}"
        now = set(currents(fleet).values())
        assert len(now) == 1, f"{where}: {now}"
        assert next(iter(now)).startswith(f"{version}-"), f"{where}: {now}"
        assert not locks(fleet), f"{where}: locks left after the converging run"
        outcomes.append({"moment_s": moment, "split": split, "locked_hosts": len(held)})
    (work / "outcomes.json").write_text(json.dumps(outcomes, indent=1))
    print("controller-killed outcomes:", json.dumps(outcomes))
    audit = [
        json.loads(x) for x in (work / "audit" / "deploy-audit.jsonl").read_text().split("\n") if x
    ]
    taken = [a for a in audit if a.get("event") == "lock-taken-over"]
    assert len({a["run_id"] for a in taken}) == len(MOMENTS)
