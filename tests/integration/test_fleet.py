"""The loopback SSH test fleet, with real sshd and real ssh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tradeops.testing.fleet import (
    Fleet,
    FleetUnavailable,
    check_prerequisites,
    mount_namespace,
    process_start_time,
    real_root_mounts,
)

ANSIBLE = Path(sys.executable).parent / "ansible"


@pytest.fixture(scope="module")
def fleet3(module_fleet_factory) -> Fleet:
    return module_fleet_factory(3, name="tf")


def _pids(fleet: Fleet) -> dict[str, int]:
    return {row["name"]: row["pid"] for row in fleet.status()}


def _running(pid: int, start_time: int | None = None) -> bool:
    """Tell whether ``pid`` exists, is not a zombie and (if given) started at ``start_time``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if start_time is not None and process_start_time(pid) != start_time:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _alive_in(namespaces: set[str]) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and mount_namespace(entry.name) in namespaces
        and _running(int(entry.name))
    ]


def _wait_dead(pid: int, start_time: int) -> None:
    for _attempt in range(200):
        if not _running(pid, start_time):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still running")


def test_not_root_message_names_what_is_missing():
    with pytest.raises(FleetUnavailable, match="root") as info:
        check_prerequisites(euid=1000, which=lambda tool: f"/usr/bin/{tool}", exists=lambda p: True)
    assert "openssh-server" not in str(info.value)

    with pytest.raises(FleetUnavailable, match="install openssh-server"):
        check_prerequisites(euid=0, which=lambda tool: f"/usr/bin/{tool}", exists=lambda p: False)


@pytest.mark.fleet
def test_three_hosts_answer_with_their_own_hostname(fleet3):
    assert [h.name for h in fleet3.hosts] == ["tf-1", "tf-2", "tf-3"]
    for host in fleet3.hosts:
        result = fleet3.ssh(host, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == host.name
    assert all(row["running"] and row["accepting"] for row in fleet3.status())


@pytest.mark.fleet
def test_data_root_is_private_to_each_host(fleet3):
    one, two, three = fleet3.hosts
    root = fleet3.data_root
    assert fleet3.ssh(one, f"echo hello > {root}/only-on-one").returncode == 0
    assert (fleet3.host_dir(one) / "only-on-one").read_text() == "hello\n"
    for other in (two, three):
        assert fleet3.ssh(other, f"test -e {root}/only-on-one").returncode == 1
        assert not (fleet3.host_dir(other) / "only-on-one").exists()
    assert not (Path(root) / "only-on-one").exists()


@pytest.mark.fleet
def test_users_are_private_to_each_host(fleet3):
    one, two = fleet3.hosts[:2]
    user = "tofleetuser"
    created = fleet3.ssh(one, f"useradd --no-create-home {user} && getent passwd {user}")
    assert created.returncode == 0, created.stderr
    assert fleet3.ssh(two, f"getent passwd {user}").returncode == 2
    assert user not in Path("/etc/passwd").read_text()


@pytest.mark.fleet
def test_useradd_on_all_hosts_at_once(fleet3):
    user = "tofleetpar"

    def add(host):
        return fleet3.ssh(host, f"useradd --no-create-home {user} && getent passwd {user}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(add, fleet3.hosts))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]


@pytest.mark.fleet
def test_up_twice_reuses_running_hosts(fleet3):
    before = _pids(fleet3)
    fleet3.up()
    assert _pids(fleet3) == before
    again = Fleet.from_state(fleet3.state_dir).up()
    assert _pids(again) == before


@pytest.mark.fleet
def test_ansible_ping_over_the_fleet(fleet3):
    argv = [str(ANSIBLE), "-i", str(fleet3.inventory_path), "all", "-f", "8", "-o"]
    result = subprocess.run(
        [*argv, "-m", "ansible.builtin.ping"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 3, result.stdout


@pytest.mark.fleet
def test_dead_host_is_restarted_by_up(fleet_factory):
    fleet = fleet_factory(2, name="tr")
    before = _pids(fleet)
    host2 = fleet.hosts[1]
    # Crash host 2: kill its sshd (started by this test process) by pid.
    pid = before[host2.name]
    start = process_start_time(pid)
    assert start is not None
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid, start)
    assert not fleet.status()[1]["running"]
    fleet.up()
    after = _pids(fleet)
    assert after[fleet.hosts[0].name] == before[fleet.hosts[0].name]
    assert after[host2.name] != before[host2.name]
    assert fleet.ssh(host2, "hostname").stdout.strip() == host2.name


@pytest.mark.fleet
def test_down_leaves_nothing_behind(fleet_factory):
    fleet = fleet_factory(2, name="td")
    one = fleet.hosts[0]
    # A daemon started "on the host", detached from the ssh session.
    started = fleet.ssh(one, "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
    assert started.returncode == 0, started.stderr
    rows = fleet.status()
    namespaces = {row["mnt_ns"] for row in rows}
    recorded = {row["pid"]: row["start_time"] for row in rows}
    assert len(namespaces) == 2
    assert mount_namespace("self") not in namespaces
    daemon = int(started.stdout.strip())
    assert daemon in _alive_in(namespaces), "the daemon runs inside a host's namespace"
    daemon_start = process_start_time(daemon)

    fleet.down()

    assert not _running(daemon, daemon_start), "down() stops what runs on the hosts"
    assert [pid for pid, start in recorded.items() if _running(pid, start)] == []
    assert _alive_in(namespaces) == []
    assert fleet.data_root not in real_root_mounts()
    assert not any(m.startswith(str(fleet.state_dir)) for m in real_root_mounts())
    assert not fleet.state_dir.exists()
    fleet.down()  # a second down is harmless
    assert not fleet.state_dir.exists()
