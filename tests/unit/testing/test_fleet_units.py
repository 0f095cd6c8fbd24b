"""Pure helpers of the loopback SSH test fleet (no processes started)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from tradeops.testing.fleet import (
    MAX_CONTROL_DIR_LEN,
    Fleet,
    FleetHost,
    FleetUnavailable,
    check_prerequisites,
    control_dir_for,
    fleet_hosts,
    host_address,
    parse_start_time,
    render_host_script,
    render_inventory,
    render_sshd_config,
    set_root_home,
)
from tradeops.testing.fleet_cli import add_actions, default_state_dir


def _which_all(tool: str) -> str:
    return f"/usr/bin/{tool}"


# ---------------------------------------------------------------- prerequisites


def test_prerequisites_met():
    check_prerequisites(euid=0, which=_which_all, exists=lambda p: True)


def test_not_root_is_named():
    with pytest.raises(FleetUnavailable, match=r"root privileges") as info:
        check_prerequisites(euid=1000, which=_which_all, exists=lambda p: True)
    assert "unshare" not in str(info.value)


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("unshare", "the unshare command"),
        ("ssh", "the ssh command (install openssh-client)"),
        ("ssh-keygen", "the ssh-keygen command"),
    ],
)
def test_missing_tool_is_named(missing, expected):
    def which(tool):
        return None if tool == missing else _which_all(tool)

    with pytest.raises(FleetUnavailable) as info:
        check_prerequisites(euid=0, which=which, exists=lambda p: True)
    assert expected in str(info.value)


def test_missing_sshd_says_install_openssh_server():
    with pytest.raises(FleetUnavailable, match=r"/usr/sbin/sshd \(install openssh-server\)"):
        check_prerequisites(euid=0, which=_which_all, exists=lambda p: False)


def test_everything_missing_is_listed_at_once():
    with pytest.raises(FleetUnavailable) as info:
        check_prerequisites(euid=1000, which=lambda t: None, exists=lambda p: False)
    message = str(info.value)
    for word in ("root", "unshare", "openssh-server", "ssh-keygen"):
        assert word in message


# ---------------------------------------------------------------- addresses


def test_host_address_counts_from_first():
    assert host_address("127.0.0.11", 1) == "127.0.0.11"
    assert host_address("127.0.0.11", 8) == "127.0.0.18"


def test_host_address_carries_into_next_octet():
    assert host_address("127.0.0.250", 10) == "127.0.1.3"


@pytest.mark.parametrize(
    ("first", "index"),
    [("10.0.0.1", 1), ("127.255.255.250", 6), ("127.0.0.11", 0), ("128.0.0.1", 1)],
)
def test_host_address_stays_in_loopback(first, index):
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8|index"):
        host_address(first, index)


def test_fleet_hosts_names_and_ports():
    hosts = fleet_hosts("web", 3, "127.0.5.11", 2200)
    assert hosts == [
        FleetHost("web-1", 1, "127.0.5.11", 2200),
        FleetHost("web-2", 2, "127.0.5.12", 2200),
        FleetHost("web-3", 3, "127.0.5.13", 2200),
    ]
    assert fleet_hosts("web", 0, "127.0.5.11", 2200) == []


def test_control_dir_is_short():
    assert control_dir_for(Path("/tmp/tof-abc")) == Path("/tmp/tof-abc/cp")
    long_dir = Path("/very/long/" + "x" * 80)
    short = control_dir_for(long_dir)
    assert len(str(short)) <= MAX_CONTROL_DIR_LEN
    assert short == control_dir_for(long_dir)  # stable, so down() finds it again
    assert short != control_dir_for(Path("/very/long/" + "y" * 80))


def test_parse_start_time_with_odd_comm():
    fields = ["S", *[str(n) for n in range(4, 22)], "987654", "0"]
    stat = "1234 (we ird) (name) " + " ".join(fields)
    assert parse_start_time(stat) == 987654


# ---------------------------------------------------------------- rendering


def _config_dict(text: str) -> dict[str, str]:
    pairs = [line.split(None, 1) for line in text.splitlines() if line and line[0] != "#"]
    return dict(pairs)


def test_sshd_config():
    text = render_sshd_config(
        address="127.0.0.12",
        port=2222,
        host_key=Path("/s/hosts/f-2/ssh_host_ed25519_key"),
        pid_file=Path("/s/hosts/f-2/sshd.pid"),
        authorized_keys=Path("/s/authorized_keys"),
    )
    conf = _config_dict(text)
    assert conf["ListenAddress"] == "127.0.0.12:2222"
    assert conf["HostKey"] == "/s/hosts/f-2/ssh_host_ed25519_key"
    assert conf["PidFile"] == "/s/hosts/f-2/sshd.pid"
    assert conf["AuthorizedKeysFile"] == "/s/authorized_keys"
    assert conf["PermitRootLogin"] == "prohibit-password"
    assert conf["PasswordAuthentication"] == "no"
    assert conf["UsePAM"] == "no"
    assert conf["StrictModes"] == "no"
    assert conf["UseDNS"] == "no"
    assert int(conf["MaxSessions"]) >= 16
    assert int(conf["MaxStartups"].split(":")[0]) >= 16
    assert "Port" not in conf


def test_host_script_mounts_then_execs_sshd():
    script = render_host_script(
        data_dir=Path("/s/hosts/f-1/data"),
        data_root="/srv/tradeops",
        etc_dir=Path("/s/hosts/f-1/etc"),
        hostname="f-1",
        sshd_config=Path("/s/hosts/f-1/sshd_config"),
    )
    steps = script.split("; ")
    assert steps == [
        "set -e",
        "mount --bind /s/hosts/f-1/data /srv/tradeops",
        "mount --bind /s/hosts/f-1/etc /etc",
        "hostname f-1",
        "exec /usr/sbin/sshd -D -e -f /s/hosts/f-1/sshd_config",
    ]
    shared = render_host_script(
        data_dir=Path("/a b/data"),
        data_root="/srv/x",
        etc_dir=None,
        hostname="f-1",
        sshd_config=Path("/a b/sshd_config"),
    )
    assert "/etc" not in shared
    assert shlex.quote("/a b/data") in shared


def test_root_home_is_the_hosts_own(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/root:/bin/sh\n")
    set_root_home(passwd, Path("/s/hosts/f-1/root"))
    assert passwd.read_text().splitlines() == [
        "root:x:0:0:root:/s/hosts/f-1/root:/bin/bash",
        "bob:x:1000:1000::/root:/bin/sh",
    ]


def test_inventory():
    hosts = fleet_hosts("fleet", 2, "127.0.0.11", 2222)
    text = render_inventory(
        name="fleet",
        hosts=hosts,
        private_key=Path("/s/id_ed25519"),
        known_hosts=Path("/s/known_hosts"),
        control_dir=Path("/s/cp"),
        data_root="/srv/tradeops",
    )
    group = yaml.safe_load(text)["all"]["children"]["fleet"]
    assert group["vars"] == {"tradeops_root": "/srv/tradeops"}
    assert list(group["hosts"]) == ["fleet-1", "fleet-2"]
    host = group["hosts"]["fleet-2"]
    assert host["ansible_host"] == "127.0.0.12"
    assert host["ansible_port"] == 2222
    assert host["ansible_user"] == "root"
    assert host["ansible_ssh_private_key_file"] == "/s/id_ed25519"
    assert host["ansible_ssh_pipelining"] is True
    assert host["ansible_python_interpreter"] == "/usr/bin/python3"
    args = shlex.split(host["ansible_ssh_common_args"])
    assert "UserKnownHostsFile=/s/known_hosts" in args
    assert "StrictHostKeyChecking=yes" in args
    assert "ControlPath=/s/cp/%C" in args


# ---------------------------------------------------------------- Fleet object and CLI


def test_fleet_paths_without_starting(tmp_path):
    fleet = Fleet(tmp_path / "st", 3, name="x", first_address="127.0.3.1", port=2300)
    assert [h.address for h in fleet.hosts] == ["127.0.3.1", "127.0.3.2", "127.0.3.3"]
    assert fleet.inventory_path == tmp_path / "st" / "inventory.yml"
    assert fleet.host_dir("x-2") == tmp_path / "st" / "hosts" / "x-2" / "data"
    assert fleet.host_dir(3) == fleet.host_dir(fleet.hosts[2])
    with pytest.raises(KeyError):
        fleet.host_dir("x-4")


@pytest.mark.parametrize("data_root", ["/", "relative/dir"])
def test_fleet_rejects_bad_data_root(tmp_path, data_root):
    with pytest.raises(ValueError, match="data_root"):
        Fleet(tmp_path, 1, data_root=data_root)


def test_down_without_state_is_a_no_op(tmp_path):
    Fleet(tmp_path / "never-up", 2).down()
    assert not (tmp_path / "never-up").exists()


def test_cli_parses_up_options():
    import argparse

    parser = argparse.ArgumentParser()
    add_actions(parser)
    args = parser.parse_args(
        ["up", "--size", "8", "--name", "n", "--state-dir", "/tmp/x", "--port", "2300", "--json"]
    )
    assert (args.size, args.name, args.state_dir, args.port, args.json) == (
        8,
        "n",
        "/tmp/x",
        2300,
        True,
    )
    assert args.first_address == "127.0.0.11"
    assert args.data_root == "/srv/tradeops"


def test_default_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADEOPS_FLEET_DIR", str(tmp_path))
    assert default_state_dir("f") == tmp_path / "f"
    monkeypatch.delenv("TRADEOPS_FLEET_DIR")
    assert default_state_dir("f").parts[-2:] == (".fleet", "f")
