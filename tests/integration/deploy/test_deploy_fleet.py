"""The deploy playbook on a 4-host loopback SSH fleet: success, and the Knight family.

Every Knight case must end with zero hosts activated and a report naming the host.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import tradeops
from tests.integration.ansible_run import REPO, run_playbook
from tradeops.modrun.api import API_VERSION
from tradeops.releases.artifact import build_artifact
from tradeops.releases.releaselog import ReleaseLog

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

HOSTS = 4
ROOT = "/srv/tradeops"

EXTRA_VARS = {
    "refapp_venue_host": "{{ ansible_host }}",
    "refapp_venue_port": 9878,
    "refapp_sender_comp_id": "ACC1_OE",
    "refapp_account": "ACC1",
    "refapp_symbols": ["ESZ5"],
    "refapp_http_bind": "{{ ansible_host }}",
    "refapp_http_port": 8480,
    "refapp_db_dsn": f"sqlite:///{ROOT}/state/refapp.db",
    "refapp_fix_store_dir": f"{ROOT}/state/fix",
    "refapp_trading_state_path": f"{ROOT}/state/trading_state",
    "refapp_log_file": f"{ROOT}/shared/log/refapp.jsonl",
    "simulator_host": "{{ ansible_host }}",
}


@pytest.fixture(scope="module")
def stage(module_fleet_factory, tmp_path_factory):
    """A bootstrapped 4-host fleet, each host with its own simulator, and three artifacts."""
    fleet = module_fleet_factory(HOSTS, name="dep")
    work = tmp_path_factory.mktemp("deploy")
    subprocess.run([str(REPO / "scripts/wheelhouse.sh")], check=True, capture_output=True)
    vars_file = work / "vars.json"
    vars_file.write_text(json.dumps(EXTRA_VARS))
    common = ["-i", str(fleet.inventory_path), "-e", f"@{vars_file}", "-e", "target_hosts=dep"]
    boot = run_playbook(
        *common, "tradeops.algo.bootstrap", "-e", f"tradeops_wheelhouse={REPO}/build/wheelhouse"
    )
    assert boot.rc == 0, boot.output[-4000:]
    sim = run_playbook(*common, "tradeops.algo.simulator")
    assert sim.rc == 0, sim.output[-4000:]
    # Every deploy here passes the plan's check of a live kill-switch agent on each host.
    agents = run_playbook(*common, "tradeops.algo.killswitch_agent")
    assert agents.rc == 0, agents.output[-4000:]
    # The simulator role asked for the staging extras: these hosts have them.
    extras = fleet.ssh(fleet.hosts[0], f"{ROOT}/venv/bin/python -c 'import tradeops.sim'")
    assert extras.returncode == 0, extras.stderr
    artifacts = {
        "1.0.0": build_artifact("1.0.0", work / "a").path,
        "1.1.0": build_artifact("1.1.0", work / "b").path,
        # One version per Knight case, so that each starts from a clean slate.
        "1.2.0": build_artifact("1.2.0", work / "c").path,
        "1.3.0": build_artifact("1.3.0", work / "d").path,
        "1.3.0-other": build_artifact("1.3.0", work / "e", fault_mode="runaway").path,
        "1.4.0": build_artifact("1.4.0", work / "f").path,
        "1.5.0": build_artifact("1.5.0", work / "g").path,
        "1.6.0": build_artifact("1.6.0", work / "h").path,
        "1.7.0": build_artifact("1.7.0", work / "i").path,
        "1.8.0": build_artifact("1.8.0", work / "j").path,
        "1.9.0": build_artifact("1.9.0", work / "k").path,
        "2.0.0": build_artifact("2.0.0", work / "l").path,
        "2.1.0": build_artifact("2.1.0", work / "m").path,
        # The host-contract cases (issue 11), one version each.
        "2.2.0": build_artifact("2.2.0", work / "n").path,
        "2.3.0": build_artifact("2.3.0", work / "o").path,
        # The fleet-read cases (issue 10).
        "2.4.0": build_artifact("2.4.0", work / "p").path,
        "2.5.0": build_artifact("2.5.0", work / "q").path,
        "2.6.0": build_artifact("2.6.0", work / "r").path,
        "2.7.0": build_artifact("2.7.0", work / "s").path,
        "2.8.0": build_artifact("2.8.0", work / "t").path,
        # The kill-switch agent required by the plan (issue 13).
        "2.9.0": build_artifact("2.9.0", work / "u").path,
    }
    return fleet, common, artifacts, work


def deploy(stage, version: str, artifact: Path, *extra: str):
    _fleet, common, _artifacts, work = stage
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


def current_of(fleet) -> list[str | None]:
    out = []
    for host in fleet.hosts:
        link = fleet.host_dir(host) / "current"
        out.append(Path(link.readlink()).name if link.is_symlink() else None)
    return out


def running_status(fleet, host) -> dict:
    """What the host's strategy process answers on /status ({} when it does not)."""
    probe = fleet.ssh(host, f"curl -s http://{host.address}:8480/status", timeout=20)
    try:
        return dict(json.loads(probe.stdout))
    except (ValueError, TypeError):
        return {}


def running_release(fleet, host) -> str | None:
    return running_status(fleet, host).get("release_id")


# The phases the user can hook, from the role's one phase list (roles/release/vars/main.yml).
PHASES = tuple(
    phase["name"]
    for phase in yaml.safe_load((REPO / "roles/release/vars/main.yml").read_text())[
        "release_phases"
    ]
    if (REPO / "roles/release/tasks" / f"phase_{phase['name']}.yml").is_file()
)


def test_deploy_two_releases_everywhere(stage) -> None:
    fleet, _common, artifacts, work = stage
    first = deploy(stage, "1.0.0", artifacts["1.0.0"])
    assert first.rc == 0, first.output[-5000:]
    ids = set(current_of(fleet))
    assert len(ids) == 1
    assert next(iter(ids)).startswith("1.0.0-")
    # The second deploy runs with a hook at every phase: each appends the phase to a
    # file on the host, so the order of phases and hooks is read back from the hosts.
    hooks = {}
    for when in ("before", "after"):
        for phase in PHASES:
            hook = work / f"{when}_{phase}.yml"
            hook.write_text(
                f"""---
- name: Record {when} {phase}
  ansible.builtin.shell:
    cmd: echo {when}_{phase} >> /srv/tradeops/state/hooks.txt
  changed_when: true
"""
            )
            hooks[f"{when}_{phase}"] = str(hook)
    second = deploy(stage, "1.1.0", artifacts["1.1.0"], "-e", json.dumps({"release_hooks": hooks}))
    assert second.rc == 0, second.output[-5000:]
    expected = [f"{when}_{phase}" for phase in PHASES for when in ("before", "after")]
    for host in fleet.hosts:
        seen = (fleet.host_dir(host) / "state" / "hooks.txt").read_text().split()
        assert seen == expected, host.name
    currents = current_of(fleet)
    assert len(set(currents)) == 1
    assert currents[0].startswith("1.1.0-")
    # The running processes report the new release, read from each process.
    assert [running_release(fleet, h) for h in fleet.hosts] == currents
    audit = [
        json.loads(x) for x in (work / "audit" / "deploy-audit.jsonl").read_text().splitlines()
    ]
    phases = {(r["host"], r["phase"]) for r in audit if r["release_id"] == currents[0]}
    for host in fleet.hosts:
        for phase in ("lock", "stage", "gate", "cutover", "verify", "unlock"):
            assert (host.name, phase) in phases, (host.name, phase)
    assert all("deploy.lock" not in str(p) for p in fleet.host_dir(1).iterdir())


def _knight_case(stage, version: str, *extra: str) -> tuple[str, list[str | None]]:
    fleet, _common, artifacts, _work = stage
    before = current_of(fleet)
    run = deploy(stage, version, artifacts[version], *extra)
    (_work / f"knight-{version}.log").write_text(run.output)
    assert run.rc != 0, "the deploy should have stopped"
    assert current_of(fleet) == before, "no host may be activated"
    # The YAML result format folds long messages: compare with white space collapsed.
    return " ".join(run.output.split()), before


def test_one_host_stage_fails(stage) -> None:
    fleet, _common, artifacts, _work = stage
    # Host 3 holds a directory under the release id that is not that release.
    manifest = subprocess.run(
        ["tar", "-xzOf", str(artifacts["1.2.0"]), "MANIFEST"], capture_output=True, check=True
    ).stdout
    rid = "1.2.0-" + json.loads(manifest)["digest"][:12]
    squatter = fleet.host_dir(3) / "releases" / rid
    squatter.mkdir()
    (squatter / "junk").write_text("not a release\n")
    try:
        output, _before = _knight_case(stage, "1.2.0")
        assert "GATE FAILED" in output, output[-8000:]
        assert "dep-3 (failed before the gate" in output, output[output.find("GATE FAILED") :][
            :1500
        ]
        # Plain reports (issue 10, finding 5): each host says what happened to it.
        for name in ("dep-1", "dep-2", "dep-4"):
            assert (
                f"{name} not activated: dep-3 failed the gate (nothing is wrong with this host)"
            ) in output, output[-6000:]
        assert ": : failed" not in output
    finally:
        (squatter / "junk").unlink(missing_ok=True)
        squatter.rmdir()
    for host in fleet.hosts:
        assert not (fleet.host_dir(host) / "deploy.lock").exists()


def test_one_host_gets_another_digest(stage) -> None:
    fleet, _common, artifacts, work = stage
    # Knight: one host of the fleet ends up with other code under the same release id.
    # The artifact is decided once on the controller, so a per-host artifact variable
    # cannot do it any more; here dep-4's staged release is swapped for another build of
    # the same version (other content, other manifest digest) just before the gate.
    other = artifacts["1.3.0-other"]
    hook = work / "swap_dep_4.yml"
    hook.write_text(
        f"""---
- name: Swap dep-4's staged release for other code
  when: inventory_hostname == 'dep-4'
  ansible.builtin.shell:
    cmd: >-
      set -e; d=/srv/tradeops/releases/{{{{ release_id }}}};
      rm -rf "$d"; mkdir "$d"; tar -xzf {other} -C "$d"
  changed_when: true
"""
    )
    before = current_of(fleet)
    output, _before = _knight_case(
        stage, "1.3.0", "-e", json.dumps({"release_hooks": {"before_gate": str(hook)}})
    )
    assert current_of(fleet) == before, "no host may be activated"
    assert "GATE FAILED" in output, output[-8000:]
    reason = output[output.find("dep-4 (") :][:400]
    assert "dep-4 (" in output, output[output.find("GATE FAILED") :][:1500]
    assert "manifest digest" in reason, reason
    for host in ("dep-1", "dep-2", "dep-3"):
        assert f"{host} (" not in output[output.find("GATE FAILED") :][:1500]


def test_one_host_has_a_file_changed_after_staging(stage) -> None:
    fleet, _common, _artifacts, work = stage
    # Knight, quieter: dep-2 staged the right release, then one of its files changed on
    # disk (MANIFEST untouched, so the release id and manifest digest still match). The
    # gate re-hashes every file from disk and must stop the run.
    hook = work / "tamper_dep_2.yml"
    hook.write_text(
        """---
- name: Change one staged file on dep-2
  when: inventory_hostname == 'dep-2'
  ansible.builtin.shell:
    cmd: echo 'other code' >> /srv/tradeops/releases/{{ release_id }}/REVISION
  changed_when: true
"""
    )
    output, _before = _knight_case(
        stage, "2.1.0", "-e", json.dumps({"release_hooks": {"before_gate": str(hook)}})
    )
    assert "GATE FAILED" in output, output[-8000:]
    report = output[output.find("GATE FAILED") :][:1500]
    assert "dep-2 (" in report, report
    assert "fails verification" in report, report
    assert "REVISION" in report, report
    for host in ("dep-1", "dep-3", "dep-4"):
        assert f"{host} (" not in report, report
    for host in fleet.hosts:
        assert not (fleet.host_dir(host) / "deploy.lock").exists()


def _lose_host_hook(fleet, path: Path, name: str, when: str) -> Path:
    """Write a hook file that stops host ``name``'s sshd (once, from the controller)."""
    stop = (
        "from tradeops.testing.fleet import Fleet; "
        f"Fleet.from_state('{fleet.state_dir}').stop_host('{name}')"
    )
    path.write_text(
        textwrap.dedent(
            f"""\
            ---
            - name: Lose {name} {when}
              ansible.builtin.command:
                argv:
                  - {sys.executable}
                  - -c
                  - "{stop}"
              delegate_to: localhost
              run_once: true
              changed_when: true
              vars:
                ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
            """
        )
    )
    return path


def _bring_back(stage, name: str) -> None:
    """Start a lost host again as a rebooted host comes back: sshd, then its services."""
    fleet, common, _artifacts, _work = stage
    fleet.up()
    playbooks = (
        "tradeops.algo.bootstrap",
        "tradeops.algo.simulator",
        "tradeops.algo.killswitch_agent",
    )
    for playbook in playbooks:
        again = run_playbook(
            *common, "-l", name, playbook, "-e", f"tradeops_wheelhouse={REPO}/build/wheelhouse"
        )
        assert again.rc == 0, again.output[-4000:]


def test_one_host_unreachable_before_gate(stage) -> None:
    fleet, _common, _artifacts, work = stage
    hook = _lose_host_hook(fleet, work / "lose_host_2.yml", "dep-2", "just before the gate")
    try:
        output, _before = _knight_case(
            stage, "1.4.0", "-e", json.dumps({"release_hooks": {"before_gate": str(hook)}})
        )
        assert "GATE FAILED" in output, output[-8000:]
        assert "dep-2 (failed or unreachable before the gate)" in output
    finally:
        _bring_back(stage, "dep-2")  # so that later tests find a whole host


def _hold_lock(
    fleet,
    host,
    run_id: str,
    owner: str,
    since_offset_s: int = 0,
    controller: str = "ctl-elsewhere",
    pid: int = 424242,
) -> Path:
    """Write a deploy lock on ``host`` as another deploy run would."""
    lock = fleet.host_dir(host) / "deploy.lock"
    record = {
        "owner": owner,
        "pid": pid,
        "host": controller,
        "since": time.time() - since_offset_s,
        "release_id": "0.9.9-aaaaaaaaaaaa",
        "run_id": run_id,
    }
    lock.write_text(json.dumps(record))
    return lock


def test_concurrent_deploy_is_refused(stage) -> None:
    fleet, _common, _artifacts, _work = stage
    lock = _hold_lock(fleet, 2, "other-run", "alice")
    try:
        output, _before = _knight_case(stage, "1.5.0")
        # The plan reads every lock before this run takes any.
        assert "LOCKED: this run locked and staged nothing" in output, output[-8000:]
        assert "dep-2: deploy lock held by alice (run other-run" in output
        assert "its run may still be alive" in output
        assert "Wait for that run to finish" in output
        # The other run's lock is untouched; this run took none.
        assert json.loads(lock.read_text())["run_id"] == "other-run"
        for host in (1, 3, 4):
            assert not (fleet.host_dir(host) / "deploy.lock").exists()
            assert not list((fleet.host_dir(host) / "releases").glob("1.5.0-*"))
    finally:
        lock.unlink(missing_ok=True)


def test_stale_lock_is_reported_with_its_owner(stage) -> None:
    fleet, _common, _artifacts, _work = stage
    lock = _hold_lock(fleet, 4, "crashed-run", "bob", since_offset_s=7200)
    try:
        output, _before = _knight_case(stage, "1.5.0")
        assert "dep-4: deploy lock held by bob" in output, output[-8000:]
        assert "DEAD: it is past its expiry (older than 3600s)" in output
        assert "release_lock_takeover_reason" in output
        assert lock.exists(), "a stale lock is reported, never taken over without a reason"
    finally:
        lock.unlink(missing_ok=True)


def test_a_failed_preflight_stops_every_host_before_staging(stage) -> None:
    fleet, _common, _artifacts, _work = stage
    exabyte = str(10**18)  # more free space than any host has
    output, _before = _knight_case(stage, "1.8.0", "-e", f"release_preflight_bytes={exabyte}")
    for host in fleet.hosts:
        assert f"{host.name} failed before the gate" in output, output[-6000:]
        assert not list((fleet.host_dir(host) / "releases").glob("1.8.0-*")), host.name
        assert not (fleet.host_dir(host) / "deploy.lock").exists(), host.name
    assert "MiB free under /srv/tradeops" in output


def _host_snapshot(fleet) -> list[dict[str, object]]:
    """What a deploy could change on each host, read from the hosts' data roots."""
    snap = []
    for host in fleet.hosts:
        root = fleet.host_dir(host)
        log = root / "release-log.jsonl"
        audit = root / "state" / "audit.jsonl"
        snap.append(
            {
                "current": os.readlink(root / "current")
                if (root / "current").is_symlink()
                else None,
                "releases": sorted(p.name for p in (root / "releases").iterdir()),
                "staging": sorted(p.name for p in (root / "releases" / ".staging").iterdir()),
                "log": log.read_bytes() if log.exists() else b"",
                "lock": (root / "deploy.lock").exists(),
                "configs": sorted(p.name for p in (root / "shared" / "config").iterdir()),
                # The host's own audit of lock breaks and resets; the strategy's
                # database beside it changes as it trades.
                "audit": audit.read_bytes() if audit.exists() else b"",
                "process": running_status(fleet, host).get("pid"),
            }
        )
    return snap


def test_check_mode_changes_nothing_and_diffs_the_symlink(stage) -> None:
    fleet, _common, artifacts, _work = stage
    before = _host_snapshot(fleet)
    run = deploy(stage, "1.6.0", artifacts["1.6.0"], "--check", "--diff")
    assert run.rc == 0, run.output[-6000:]
    assert _host_snapshot(fleet) == before
    output = " ".join(run.output.split())
    assert "/srv/tradeops/current -> releases/1.6.0-" in output


def test_one_host_fails_post_verify_and_every_host_switches_back(stage) -> None:
    fleet, _common, artifacts, _work = stage
    before = current_of(fleet)
    assert len(set(before)) == 1, before
    assert before[0] is not None
    targets_before = [
        ReleaseLog(fleet.host_dir(h) / "release-log.jsonl").rollback_target(before[0])
        for h in fleet.hosts
    ]
    # dep-2's and dep-3's config for the new release names a fault mode the strategy
    # does not know: there the new process exits at start and never reports the release.
    host_vars = fleet.inventory_path.parent / "host_vars"
    host_vars.mkdir(exist_ok=True)
    broken = ("dep-2", "dep-3")
    for name in broken:
        (host_vars / f"{name}.yml").write_text("refapp_fault_mode: no-such-mode\n")
    try:
        # Keep every release, so that the cutover's prune leaves the rollback target
        # that 1.7.0's predecessor had (checked below).
        run = deploy(
            stage,
            "1.7.0",
            artifacts["1.7.0"],
            "-e",
            "release_verify_timeout=10",
            "-e",
            "release_keep=50",
        )
    finally:
        for name in broken:
            (host_vars / f"{name}.yml").unlink()
    output = " ".join(run.output.split())
    assert run.rc != 0, output[-6000:]
    report = output[output.find("DEPLOY FAILED after cutover") :][:3000]
    assert "every host that switched was switched back" in report, output[-6000:]
    assert "not verified on: dep-2, dep-3" in report, report
    # Each failed host's own reason, from supervisord, with the strategy's last words.
    for name in broken:
        assert f"{name}: refapp does not run 1.7.0-" in report, report
    assert "it stopped at start, supervisord:" in report, report
    assert "fault_mode must be one of" in report, report
    # Every host runs the release it ran before, read from the process.
    assert current_of(fleet) == before
    assert [running_release(fleet, h) for h in fleet.hosts] == before
    for host in fleet.hosts:
        root = fleet.host_dir(host)
        log = ReleaseLog(root / "release-log.jsonl")
        failed = [rid for rid in log.releases() if rid.startswith("1.7.0-")]
        assert len(failed) == 1, (host.name, failed)
        # Every host switched (the whole batch cut over) and went back: the failed
        # release is logged rolled-back and can never be the rollback target.
        assert log.releases()[failed[0]].status == "rolled-back", host.name
    # The rollback target of the release running again is the one it had before
    # (the failed release, logged rolled-back, never takes its place).
    assert [
        ReleaseLog(fleet.host_dir(h) / "release-log.jsonl").rollback_target(before[0])
        for h in fleet.hosts
    ] == targets_before
    for host in fleet.hosts:
        assert not (fleet.host_dir(host) / "deploy.lock").exists(), host.name


def test_in_serial_batches_a_failed_batch_stops_the_next_and_switches_back(stage) -> None:
    fleet, _common, artifacts, _work = stage
    before = current_of(fleet)
    assert len(set(before)) == 1, before
    # Batches of 2: dep-1 and dep-2 first. dep-1's new release cannot start.
    host_vars = fleet.inventory_path.parent / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / "dep-1.yml").write_text("refapp_fault_mode: no-such-mode\n")
    try:
        run = deploy(
            stage,
            "1.9.0",
            artifacts["1.9.0"],
            *("-e", "release_serial=2", "-e", "release_verify_timeout=10"),
        )
    finally:
        (host_vars / "dep-1.yml").unlink()
    output = " ".join(run.output.split())
    assert run.rc != 0, output[-6000:]
    report = output[output.find("DEPLOY FAILED after cutover") :][:2000]
    assert "not verified on: dep-1" in report, report
    assert current_of(fleet) == before
    assert [running_release(fleet, h) for h in fleet.hosts] == before
    statuses = []
    for host in fleet.hosts:
        log = ReleaseLog(fleet.host_dir(host) / "release-log.jsonl")
        (new,) = [rid for rid in log.releases() if rid.startswith("1.9.0-")]
        statuses.append(log.releases()[new].status)
        assert not (fleet.host_dir(host) / "deploy.lock").exists(), host.name
    # The first batch cut over and went back; the second batch was never activated.
    assert statuses == ["rolled-back", "rolled-back", "staged", "staged"]


def test_a_host_lost_after_cutover_is_named_as_not_switched_back(stage) -> None:
    fleet, _common, artifacts, work = stage
    before = current_of(fleet)
    assert len(set(before)) == 1, before
    hook = _lose_host_hook(
        fleet, work / "lose_host_2_after_cutover.yml", "dep-2", "right after its cutover"
    )
    try:
        run = deploy(
            stage,
            "2.0.0",
            artifacts["2.0.0"],
            "-e",
            json.dumps({"release_hooks": {"after_cutover": str(hook)}}),
        )
        output = " ".join(run.output.split())
        assert run.rc != 0, output[-6000:]
        report = output[output.find("DEPLOY FAILED after cutover") :][:2000]
        # Knight: the one host that may still run the new code is named, loudly.
        assert "NOT SWITCHED BACK (unreachable" in report, report
        assert "check them by hand): dep-2;" in report, report
        assert "every other host that switched was switched back" in report, report
        currents = current_of(fleet)
        assert currents[1] is not None
        assert currents[1].startswith("2.0.0-")  # dep-2 could not be switched back
        assert [c for i, c in enumerate(currents) if i != 1] == [before[0]] * 3
    finally:
        _bring_back(stage, "dep-2")
    # dep-2 still holds the lost run's lock: the on-call engineer breaks it on the record.
    breaker = work / "break_lock.yml"
    breaker.write_text(
        textwrap.dedent(
            f"""\
            ---
            - name: Break the lost run's lock on dep-2
              hosts: dep-2
              gather_facts: false
              tasks:
                - name: Unlock, forced, with the reason
                  tradeops.algo.deploy_lock:
                    root: {ROOT}
                    state: unlocked
                    run_id: manual
                    owner: on-call
                    force: true
                    reason: dep-2 lost mid-deploy, checked by hand
                  vars:
                    ansible_python_interpreter: {ROOT}/venv/bin/python
            """
        )
    )
    broken = run_playbook(*stage[1], str(breaker))
    assert broken.rc == 0, broken.output[-4000:]
    audit = (fleet.host_dir(2) / "state" / "audit.jsonl").read_text()
    assert "dep-2 lost mid-deploy, checked by hand" in audit
    # Put dep-2 back on the fleet's release: deploying it again converges the fleet,
    # and the hosts that already ran it keep trading (same process, not restarted).
    good = [h for h in fleet.hosts if h.name != "dep-2"]
    pids = [running_status(fleet, h).get("pid") for h in good]
    again = deploy(stage, before[0].split("-")[0], artifacts[before[0].split("-")[0]])
    assert again.rc == 0, again.output[-5000:]
    assert current_of(fleet) == before
    assert [running_release(fleet, h) for h in fleet.hosts] == before
    assert [running_status(fleet, h).get("pid") for h in good] == pids


# The host contract (issue 11): a host one library behind is refused before anything
# is locked or staged, and a no_log value never leaves the file it was rendered into.

OLD_LIBRARY_COMMIT = "6a908a2"  # tradeops 0.1.0, the last library before the host API
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")


def _old_library_wheel(work: Path) -> Path:
    """Build the wheel of tradeops 0.1.0 from this repository's history."""
    src = work / "old-library"
    if not src.is_dir():
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", OLD_LIBRARY_COMMIT, "pyproject.toml", "src"],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            pytest.fail(f"cannot read {OLD_LIBRARY_COMMIT} from git: {archive.stderr!r}")
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        (src / "README.md").write_text("tradeops 0.1.0\n")
    out = work / "old-wheel"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("tradeops-0.1.0-*.whl")
    return wheel


def _install_on(fleet, host, wheel: Path) -> None:
    (fleet.host_dir(host) / wheel.name).write_bytes(wheel.read_bytes())
    pip = (
        f"{ROOT}/venv/bin/python -m pip install -q --no-deps --force-reinstall {ROOT}/{wheel.name}"
    )
    done = fleet.ssh(host, pip, timeout=300)
    assert done.returncode == 0, done.stderr
    (fleet.host_dir(host) / wheel.name).unlink()


def test_a_host_with_an_older_library_is_refused_before_anything_is_staged(stage) -> None:
    fleet, _common, _artifacts, work = stage
    host = fleet.hosts[1]
    _install_on(fleet, host, _old_library_wheel(work))
    try:
        output, _before = _knight_case(stage, "2.2.0")
    finally:
        (current,) = (REPO / "build" / "wheelhouse").glob("tradeops-*.whl")
        _install_on(fleet, host, current)
    assert "HOST LIBRARY MISMATCH: nothing was locked or staged on any host" in output
    assert (
        f"{host.name}: its library is tradeops 0.1.0 (host API none: it predates the "
        f"versioned host API); the collection needs tradeops {tradeops.__version__} (host API "
        f"{API_VERSION})"
    ) in output, output[-4000:]
    other = [h.name for h in fleet.hosts if h.name != host.name]
    assert all(f"{name}: its library" not in output for name in other)
    for each in fleet.hosts:
        assert not list((fleet.host_dir(each) / "releases").glob("2.2.0-*")), each.name
        assert not (fleet.host_dir(each) / "deploy.lock").exists(), each.name


def _agent(fleet, host, action: str) -> None:
    done = fleet.ssh(
        host, f"{ROOT}/venv/bin/supervisorctl -c {ROOT}/supervisor/supervisord.conf {action} agent"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_host_without_a_live_agent_is_refused_before_anything_is_locked(stage) -> None:
    fleet, _common, _artifacts, _work = stage
    host = fleet.hosts[2]
    _agent(fleet, host, "stop")
    try:
        output, _before = _knight_case(stage, "2.9.0")
    finally:
        _agent(fleet, host, "start")
    assert "NO LIVE KILL-SWITCH AGENT: nothing was locked or staged on any host" in output
    assert f"{host.name}: the agent does not answer on its socket" in output, output[-4000:]
    other = [h.name for h in fleet.hosts if h.name != host.name]
    assert all(f"{name}: the agent" not in output for name in other)
    for each in fleet.hosts:
        assert not list((fleet.host_dir(each) / "releases").glob("2.9.0-*")), each.name
        assert not (fleet.host_dir(each) / "deploy.lock").exists(), each.name


def test_a_no_log_value_stays_in_the_config_it_was_rendered_into(stage) -> None:
    fleet, _common, artifacts, work = stage
    secret = f"planted-{secrets.token_hex(8)}"  # made now: in no file of the repo before
    run = deploy(
        stage, "2.3.0", artifacts["2.3.0"], "-vv", "-e", f"refapp_managed_comment={secret}"
    )
    assert run.rc == 0, run.output[-5000:]
    assert secret not in run.output
    where = [str(work), str(REPO), *(str(fleet.host_dir(h)) for h in fleet.hosts)]
    skip = ("venv", "wheelhouse", ".venv", ".venv-core", ".git")
    found = subprocess.run(
        ["grep", "-rlF", *(f"--exclude-dir={d}" for d in skip), secret, *where],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    rid = current_of(fleet)[0]
    expected = sorted(
        str(fleet.host_dir(h) / "shared/config" / rid / "refapp.yml") for h in fleet.hosts
    )
    assert sorted(found) == expected


# As a user gets it: the collection from its Galaxy tarball, installed outside this
# repository, run by ansible-runner from a project with the user's own ansible.cfg.

USER_CFG = """[defaults]
collections_path = {collections}
forks = 5
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of this repo's Ansible or audit settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANSIBLE_", "TRADEOPS_", "PYTEST_")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def user_project(stage, tmp_path_factory) -> Path:
    """An ansible-runner private data dir using the collection installed from its tarball."""
    fleet, _common, _artifacts, _work = stage
    base = tmp_path_factory.mktemp("as-a-user")
    galaxy = str(Path(sys.executable).parent / "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", "--output-path", str(base / "dist"), str(REPO)],
        cwd=base,
        env=_clean_env(),
        check=True,
        capture_output=True,
    )
    (tarball,) = (base / "dist").glob("tradeops-algo-*.tar.gz")
    collections = base / "collections"
    subprocess.run(
        [galaxy, "collection", "install", "--offline", "-p", str(collections), str(tarball)],
        cwd=base,
        env=_clean_env(),
        check=True,
        capture_output=True,
    )
    assert (collections / "ansible_collections/tradeops/algo/MANIFEST.json").is_file()
    private = base / "runner"
    (private / "project").mkdir(parents=True)
    (private / "inventory").mkdir()
    (private / "env").mkdir()
    (private / "project" / "ansible.cfg").write_text(USER_CFG.format(collections=collections))
    (private / "project" / "deploy.yml").write_text(
        "---\n- name: Deploy\n  ansible.builtin.import_playbook: tradeops.algo.deploy\n"
    )
    (private / "inventory" / "hosts.yml").write_text(fleet.inventory_path.read_text())
    envvars = {"TRADEOPS_AUDIT_DIR": str(base / "audit")}
    (private / "env" / "envvars").write_text(json.dumps(envvars))
    # The only tradeops.algo this project sees is the one installed from the tarball.
    listed = subprocess.run(
        [galaxy, "collection", "list", "tradeops.algo", "--format", "json"],
        cwd=private / "project",
        env=_clean_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert list(json.loads(listed)) == [str(collections / "ansible_collections")], listed
    return private


def run_as_a_user(private: Path, version: str, artifact: Path) -> tuple[int, str]:
    extravars = {
        **EXTRA_VARS,
        "target_hosts": "dep",
        "release_version": version,
        "release_artifact": str(artifact),
    }
    (private / "env" / "extravars").write_text(json.dumps(extravars))
    runner = str(Path(sys.executable).parent / "ansible-runner")
    done = subprocess.run(
        [runner, "run", str(private), "-p", "deploy.yml", "--ident", f"deploy-{version}"],
        cwd=private.parent,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    stdout = private / "artifacts" / f"deploy-{version}" / "stdout"
    output = stdout.read_text() if stdout.is_file() else done.stdout + done.stderr
    return done.returncode, " ".join(output.split())


def _audit_lines(private: Path, release_prefix: str) -> list[dict]:
    path = private.parent / "audit" / "deploy-audit.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
    return [ln for ln in lines if str(ln.get("release_id")).startswith(release_prefix)]


def test_as_a_user_the_installed_collection_deploys_audits_and_refuses(
    stage, user_project: Path
) -> None:
    fleet, _common, _artifacts, work = stage
    good = build_artifact("3.0.0", work / "user-good").path
    rc, output = run_as_a_user(user_project, "3.0.0", good)
    assert rc == 0, output[-5000:]
    currents = current_of(fleet)
    assert len(set(currents)) == 1
    assert currents[0].startswith("3.0.0-")
    audit = _audit_lines(user_project, "3.0.0-")
    for host in fleet.hosts:
        phases = [ln["phase"] for ln in audit if ln["host"] == host.name]
        expected = ["plan", "lock", "preflight", "stage", "gate", "cutover", "verify", "unlock"]
        assert phases == expected, (host.name, phases)
    (run_id,) = {ln["run_id"] for ln in audit}
    gate = json.loads((user_project.parent / "audit" / f"gate-{run_id}.json").read_text())
    assert gate["passed"] is True
    assert sorted(gate["hosts"]) == sorted(h.name for h in fleet.hosts)

    # A bad host is still refused: dep-2 holds a directory under the new release id.
    bad = build_artifact("3.1.0", work / "user-bad").path
    manifest = subprocess.run(
        ["tar", "-xzOf", str(bad), "MANIFEST"], capture_output=True, check=True
    ).stdout
    squatter = fleet.host_dir(2) / "releases" / ("3.1.0-" + json.loads(manifest)["digest"][:12])
    squatter.mkdir()
    try:
        rc, output = run_as_a_user(user_project, "3.1.0", bad)
    finally:
        squatter.rmdir()
    assert rc != 0
    assert "GATE FAILED" in output, output[-5000:]
    assert current_of(fleet) == currents, "no host may be activated"
    audit = _audit_lines(user_project, "3.1.0-")
    failed = [(ln["host"], ln["phase"]) for ln in audit if ln["outcome"] == "failed"]
    assert ("dep-2", "stage") in failed, audit
    (run_id,) = {ln["run_id"] for ln in audit}
    gate = json.loads((user_project.parent / "audit" / f"gate-{run_id}.json").read_text())
    assert gate["passed"] is False
    assert list(gate["offenders"]) == ["dep-2"]


# The fleet read (issue 10): drift refused, a dead run's locks reported and taken
# over only with a reason, and a run never exits 0 leaving a lock behind.


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_drift_is_refused_before_anything_is_locked_or_staged(stage) -> None:
    fleet, _common, artifacts, _work = stage
    host = fleet.host_dir(2)
    if not (host / "current").is_symlink():  # run alone: give the fleet a release first
        assert deploy(stage, "1.0.0", artifacts["1.0.0"]).rc == 0
    active = Path((host / "current").readlink()).name
    log_before = (host / "release-log.jsonl").read_text()
    # Finding 1: a hand-made copy of the active release, swapped in with a rename.
    copy = host / "releases" / f"{active}-hotfix"
    subprocess.run(["cp", "-a", str(host / "releases" / active), str(copy)], check=True)
    (host / "current.tmp").symlink_to(f"releases/{copy.name}")
    os.replace(host / "current.tmp", host / "current")
    try:
        output, _before = _knight_case(stage, "2.4.0")
    finally:
        (host / "current.tmp").symlink_to(f"releases/{active}")
        os.replace(host / "current.tmp", host / "current")
        subprocess.run(["rm", "-rf", str(copy)], check=True)
    assert "DRIFT: nothing was locked or staged on any host" in output, output[-6000:]
    assert (
        f"dep-2: current -> {copy.name}, a release directory the release log has never staged"
    ) in output
    assert (host / "release-log.jsonl").read_text() == log_before, "the log adopted nothing"
    for each in fleet.hosts:
        assert not list((fleet.host_dir(each) / "releases").glob("2.4.0-*")), each.name
        assert not (fleet.host_dir(each) / "deploy.lock").exists(), each.name


def test_a_dead_runs_locks_are_reported_then_taken_over_with_a_reason(stage) -> None:
    fleet, _common, artifacts, _work = stage
    # Finding 4: a controller on this machine died holding the lock on every host.
    dead = _dead_pid()
    locks = [
        _hold_lock(
            fleet, h, "run-of-a-dead-controller", "carol", controller=socket.gethostname(), pid=dead
        )
        for h in fleet.hosts
    ]
    try:
        refused = deploy(stage, "2.5.0", artifacts["2.5.0"])
        text = " ".join(refused.output.split())
        assert refused.rc != 0
        assert "LOCKED: this run locked and staged nothing" in text, text[-6000:]
        for h in fleet.hosts:
            assert f"{h.name}: deploy lock held by carol (run run-of-a-dead-controller" in text
        assert "DEAD: its controller process is gone" in text
        assert all(lock.exists() for lock in locks)

        taken = deploy(
            stage,
            "2.5.0",
            artifacts["2.5.0"],
            "-e",
            json.dumps({"release_lock_takeover_reason": "controller died"}),
        )
        assert taken.rc == 0, taken.output[-6000:]
    finally:
        for lock in locks:
            lock.unlink(missing_ok=True)
    assert {Path(c).name[:6] for c in current_of(fleet)} == {"2.5.0-"}
    for h in fleet.hosts:
        assert not (fleet.host_dir(h) / "deploy.lock").exists(), "no run leaves a lock behind"
        audit = (fleet.host_dir(h) / "state" / "audit.jsonl").read_text()
        assert "controller died" in audit, h.name


def test_the_status_playbook_shows_a_split_fleet_and_a_lock(stage) -> None:
    fleet, common, artifacts, _work = stage
    host = fleet.host_dir(4)
    releases = [p for p in (host / "releases").iterdir() if not p.name.startswith(".")]
    if len(set(current_of(fleet))) != 1 or None in current_of(fleet) or len(releases) < 2:
        for version in ("1.0.0", "1.1.0"):  # run alone: two releases on every host
            assert deploy(stage, version, artifacts[version]).rc == 0
    active = Path((host / "current").readlink()).name
    other = next(
        p.name for p in (host / "releases").iterdir() if p.name not in (active, ".staging")
    )
    (host / "current.tmp").symlink_to(f"releases/{other}")
    os.replace(host / "current.tmp", host / "current")
    lock = _hold_lock(fleet, 1, "run-elsewhere", "dave")
    try:
        run = run_playbook(*common, "tradeops.algo.status")
    finally:
        lock.unlink(missing_ok=True)
        (host / "current.tmp").symlink_to(f"releases/{active}")
        os.replace(host / "current.tmp", host / "current")
    assert run.rc == 0, run.output[-4000:]
    text = " ".join(run.output.split())
    assert f"dep-4: current {other}" in text, text[-4000:]
    assert f"interrupted activation: current -> {other}, while the release log still says" in text
    assert "dep-1: current " in text
    assert "LOCK: deploy lock held by dave (run run-elsewhere" in text
    assert f"fleet: SPLIT: {active} on dep-1, dep-2, dep-3; {other} on dep-4" in text or (
        f"{other} on dep-4; {active} on dep-1, dep-2, dep-3" in text
    )


def _swap_current(host: Path, name: str) -> None:
    (host / "current.tmp").symlink_to(f"releases/{name}")
    os.replace(host / "current.tmp", host / "current")


def _log_view(host: Path) -> dict:
    return ReleaseLog(host / "release-log.jsonl").releases()


def test_drift_is_deployed_over_only_with_a_reason_and_never_becomes_a_rollback_target(
    stage,
) -> None:
    fleet, _common, artifacts, work = stage
    host = fleet.host_dir(2)
    if len(set(current_of(fleet))) != 1 or None in current_of(fleet):
        assert deploy(stage, "1.0.0", artifacts["1.0.0"]).rc == 0
    active = Path((host / "current").readlink()).name
    copy = f"{active}-hotfix"
    subprocess.run(
        ["cp", "-a", str(host / "releases" / active), str(host / "releases" / copy)], check=True
    )
    _swap_current(host, copy)
    run = deploy(
        stage,
        "2.6.0",
        artifacts["2.6.0"],
        "-e",
        json.dumps({"release_drift_repair_reason": "INC-7"}),
    )
    text = " ".join(run.output.split())
    assert run.rc == 0, text[-6000:]
    assert f"DRIFT REPAIR (INC-7): dep-2: current -> {copy}, a release directory" in text
    currents = current_of(fleet)
    assert len(set(currents)) == 1, currents
    assert currents[0].startswith("2.6.0-"), currents
    # The hand-made copy is logged rolled-back; dep-2 goes back where the others go.
    view = _log_view(host)
    assert view[copy].status == "rolled-back"
    targets = {
        ReleaseLog(fleet.host_dir(h) / "release-log.jsonl").rollback_target(currents[0])
        for h in fleet.hosts
    }
    assert targets == {active}, targets
    audit = [
        json.loads(x) for x in (work / "audit" / "deploy-audit.jsonl").read_text().splitlines()
    ]
    repaired = [a for a in audit if a.get("event") == "drift-repaired"]
    assert repaired
    assert repaired[-1]["host"] == "dep-2"
    assert "INC-7" in repaired[-1]["detail"]
    subprocess.run(["rm", "-rf", str(host / "releases" / copy)], check=True)


def _config_of(fleet, host) -> tuple[str | None, int | None]:
    status = running_status(fleet, host)
    return status.get("config_sha256"), status.get("pid")


def test_config_drift_under_the_same_release_is_reported_and_converged(stage) -> None:
    fleet, _common, artifacts, _work = stage
    first = deploy(stage, "2.7.0", artifacts["2.7.0"])
    assert first.rc == 0, first.output[-5000:]
    rid = current_of(fleet)[0]
    before = {h.name: _config_of(fleet, h) for h in fleet.hosts}
    assert all(sha for sha, _pid in before.values()), before
    # Finding 2: the same release deployed with another value, then the value put back.
    other = deploy(stage, "2.7.0", artifacts["2.7.0"], "-e", json.dumps({"refapp_spread_bps": 7}))
    text = " ".join(other.output.split())
    assert other.rc == 0, text[-5000:]
    assert f"CONVERGE: dep-1 has {rid} but config on disk differs: config/{rid}/refapp.yml" in text
    changed = {h.name: _config_of(fleet, h) for h in fleet.hosts}
    for name, (sha, pid) in changed.items():
        assert sha != before[name][0], name
        assert pid != before[name][1], name
    back = deploy(stage, "2.7.0", artifacts["2.7.0"])
    assert back.rc == 0, back.output[-5000:]
    assert "CONVERGE: dep-1 has" in " ".join(back.output.split())
    assert {h.name: _config_of(fleet, h)[0] for h in fleet.hosts} == {
        n: sha for n, (sha, _pid) in before.items()
    }
    # A hand edit of one host's config is found and repaired there only.
    settled = {h.name: _config_of(fleet, h) for h in fleet.hosts}
    config = fleet.host_dir(3) / "shared" / "config" / rid / "refapp.yml"
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("# edited by hand\n")
    fix = deploy(stage, "2.7.0", artifacts["2.7.0"])
    text = " ".join(fix.output.split())
    assert fix.rc == 0, text[-5000:]
    assert f"CONVERGE: dep-3 has {rid} but config on disk differs" in text, text[-5000:]
    assert "dep-1 has" not in text[text.find("CONVERGE:") :][:600]
    assert "# edited by hand" not in config.read_text()
    # dep-3's process had loaded the right config before the edit: the file is put
    # back and every process, dep-3's included, is left trading.
    assert {h.name: _config_of(fleet, h) for h in fleet.hosts} == settled
    again = deploy(stage, "2.7.0", artifacts["2.7.0"])
    assert again.rc == 0
    quiet = " ".join(again.output.split())
    assert "already runs" in quiet
    assert "with its config: nothing to do" in quiet


def test_a_live_release_changed_on_disk_is_refused_and_a_staged_change_never_reaches_it(
    stage,
) -> None:
    fleet, _common, _artifacts, work = stage
    host = fleet.host_dir(3)
    active = Path((host / "current").readlink()).name
    victim = host / "releases" / active / "site" / "tradeops_refapp" / "__init__.py"
    original = victim.read_bytes()
    # Finding 3, first half: a byte flipped, in place, in a file of the staged release
    # that the live release has alike. The gate stops it; the live release is untouched.
    hook = work / "flip_staged_dep_3.yml"
    hook.write_text(
        """---
- name: Flip one byte, in place, of a staged file the live release has alike
  when: inventory_hostname == 'dep-3'
  ansible.builtin.shell:
    cmd: >-
      printf X | dd of=/srv/tradeops/releases/{{ release_id }}/site/tradeops_refapp/__init__.py
      bs=1 seek=0 conv=notrunc status=none
  changed_when: true
"""
    )
    output, _before = _knight_case(
        stage, "2.8.0", "-e", json.dumps({"release_hooks": {"before_gate": str(hook)}})
    )
    assert "GATE FAILED" in output, output[-6000:]
    assert "dep-3 (" in output, output[-6000:]
    assert victim.read_bytes() == original, "the live release changed with the staged one"
    verify = fleet.ssh(
        fleet.hosts[2], f"{ROOT}/venv/bin/tradeops release verify {ROOT}/releases/{active}"
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Second half: the live release itself changed on disk is refused, naming the file.
    with open(victim, "r+b") as handle:
        handle.write(bytes([original[0] ^ 0x01]))
    try:
        output, _before = _knight_case(stage, "2.8.0")
    finally:
        victim.write_bytes(original)
    assert "LIVE RELEASE ALTERED: nothing was locked or staged on any host" in output, output[
        -6000:
    ]
    assert f"dep-3: {active}: changed on disk since it was staged" in output
    assert "site/tradeops_refapp/__init__.py" in output
    for each in fleet.hosts:
        assert not (fleet.host_dir(each) / "deploy.lock").exists(), each.name
