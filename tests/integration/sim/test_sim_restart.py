"""Sequence numbers across restarts, resend and gap fill, and the CLI: simulator subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from asyncfix import FTag

from tradeops.brokers.base import Execution, NewOrder, OrdType, SessionRole, SessionStatus, Side

from .conftest import REPO, Client, admin, free_port_block, run


def _args(cfg: Path, tmp_path: Path, base: int) -> list[str]:
    return [
        "--config", str(cfg),
        "--port-base", str(base),
        "--admin-port", str(base + 6),
        "--store-dir", str(tmp_path / "sim-store"),
    ]  # fmt: skip


def _session(state: dict, name: str) -> dict:
    return next(s for s in state["sessions"] if s["name"] == name)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_sim_restart_keeps_sequence_numbers(sim_config_file, sim_process, tmp_path, stop_signal):
    base = free_port_block(7)
    args = _args(sim_config_file, tmp_path, base)
    first = sim_process(*args)

    async def scenario():
        c = Client(
            first.port("ACC1_OE"),
            "ACC1_OE",
            store_dir=str(tmp_path / "client-store"),
            extra={"reconnect_s": "0.2"},
        )
        await c.session.connect(10)
        try:
            await c.session.send_order(
                NewOrder("o1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c.wait_for(lambda: [e for e in c.of(Execution) if e.cl_ord_id == "o1"])
            out_before = c.session.next_seq_out
            assert out_before > 2
            rc = await asyncio.to_thread(first.stop, stop_signal)
            await c.wait_for(lambda: not c.session.is_logged_on, what="session down")
            if stop_signal == signal.SIGTERM:
                assert rc == 0
                down = [s for s in c.of(SessionStatus) if s.state == "logged_out"]
                assert down
                assert "shutting down" in down[0].detail
            second = await asyncio.to_thread(sim_process, *args)
            try:
                assert second.port("ACC1_OE") == first.port("ACC1_OE")
                await c.wait_for(lambda: c.session.is_logged_on, 20, "automatic reconnect")
                await c.session.send_order(
                    NewOrder("o2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await c.wait_for(lambda: [e for e in c.of(Execution) if e.cl_ord_id == "o2"])
                oe = _session(await admin(second.admin_url, "GET", "/state"), "ACC1_OE")
                # both ends agree and nothing was reset to 1
                assert oe["next_seq_in"] == c.session.next_seq_out
                assert oe["next_seq_out"] == c.session.next_seq_in
                assert oe["next_seq_in"] > out_before
                logons = [e for e in second.events() if e["event"] == "logon"]
                # continued from the journal (after SIGKILL the last inbound message may
                # not be journaled yet: it is then recovered by resend/gap fill)
                assert logons[0]["next_seq_in"] >= out_before - 1
                assert not [e for e in second.events() if "too low" in json.dumps(e)]
            finally:
                await c.session.close()
                await asyncio.to_thread(second.stop)
        finally:
            await c.session.close()

    run(scenario(), 90)


def test_client_restart_continues_sequence(sim_config_file, sim_process, tmp_path):
    sim = sim_process(*_args(sim_config_file, tmp_path, free_port_block(7)))
    store = str(tmp_path / "client-store")

    async def scenario():
        c1 = Client(sim.port("ACC1_OE"), "ACC1_OE", store_dir=store)
        await c1.session.connect(10)
        for i in range(3):
            await c1.session.send_order(
                NewOrder(f"c{i}", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
        await c1.wait_for(lambda: len(c1.of(Execution)) >= 3)
        await c1.session.close()  # graceful: Logout exchanged

        c2 = Client(sim.port("ACC1_OE"), "ACC1_OE", store_dir=store)
        await c2.session.connect(10)
        assert c2.session.next_seq_out > 5  # Logon continued the journal
        oe = _session(await admin(sim.admin_url, "GET", "/state"), "ACC1_OE")
        assert oe["next_seq_in"] == c2.session.next_seq_out
        assert oe["next_seq_out"] == c2.session.next_seq_in
        assert c2.session.connection.stats["resend_requests_sent"] == 0
        # now a crash: the socket goes away without a Logout, the journal stays
        conn = c2.session.connection
        await conn.drop()
        await conn.stop_tasks()
        conn.close_journal()
        out_at_crash = conn.next_seq_out

        c3 = Client(sim.port("ACC1_OE"), "ACC1_OE", store_dir=store)
        await c3.session.connect(10)
        try:
            assert c3.session.next_seq_out == out_at_crash + 1
            await c3.session.send_order(
                NewOrder("c9", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c3.wait_for(lambda: [e for e in c3.of(Execution) if e.cl_ord_id == "c9"])
            oe = _session(await admin(sim.admin_url, "GET", "/state"), "ACC1_OE")
            assert oe["next_seq_in"] == c3.session.next_seq_out
        finally:
            await c3.session.close()

    run(scenario(), 60)


def test_gap_filled_by_resend_across_sim_restart(sim_config_file, sim_process, tmp_path):
    base = free_port_block(7)
    args = _args(sim_config_file, tmp_path, base)
    first = sim_process(*args)
    dc_store = str(tmp_path / "dc-store")

    async def scenario():
        dc = Client(
            first.port("ACC1_DC"), "ACC1_DC", role=SessionRole.DROP_COPY, store_dir=dc_store
        )
        await dc.session.connect(10)
        await dc.session.close()
        # the drop copy is offline: the simulator journals its ExecutionReports
        oe = Client(first.port("ACC1_OE"), "ACC1_OE")
        await oe.session.connect(10)
        await oe.session.send_order(NewOrder("g1", "ESZ5", Side.BUY, Decimal(2), OrdType.MARKET))
        await oe.session.send_order(NewOrder("g2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90)))
        await oe.wait_for(lambda: len(oe.of(Execution)) >= 3)
        await oe.session.close()
        await oe.session.close()
        await asyncio.to_thread(first.stop)
        second = await asyncio.to_thread(sim_process, *args)
        try:
            dc2 = Client(second.port("ACC1_DC"), "ACC1_DC", role=SessionRole.DROP_COPY,
                         store_dir=dc_store)  # fmt: skip
            await dc2.session.connect(10)
            want = {("g1", "0"), ("g1", "F"), ("g2", "0")}
            await dc2.wait_for(
                lambda: want <= {(e.cl_ord_id, e.exec_type) for e in dc2.of(Execution)},
                what="missed executions resent",
            )
            conn = dc2.session.connection
            # the simulator's own Logon (a session message) is gap-filled, never resent
            await dc2.wait_for(
                lambda: (
                    conn.stats["gap_fills_received"] >= 1 and conn.connection_state.name == "ACTIVE"
                ),
                what="resend complete",
            )
            assert conn.stats["resend_requests_sent"] == 1
            assert conn.stats["possdup_received"] >= 3
            assert all(m[FTag.PossDupFlag] == "Y" for m in dc2.raw_of("8"))
            st = _session(await admin(second.admin_url, "GET", "/state"), "ACC1_DC")
            assert st["next_seq_out"] == dc2.session.next_seq_in
            assert st["next_seq_in"] == dc2.session.next_seq_out
            assert st["stats"]["possdup_sent"] >= 3
            await dc2.session.close()
        finally:
            await asyncio.to_thread(second.stop)

    run(scenario(), 90)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run(
        [sys.executable, "-m", "tradeops.cli.main", "sim", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_drives_the_admin_api(sim_config_file, sim_process, tmp_path):
    sim = sim_process("--config", str(sim_config_file), "--port-base", "0", "--admin-port", "0")
    url = ["--admin-url", sim.admin_url]
    r = _cli("fault", "latency", "--ms", "5", "--session", "ACC1_OE", "--json", *url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ms"] == 5
    r = _cli("fault", "jump", "--symbol", "ESZ5", "--pct", "1", *url)
    assert r.returncode == 0, r.stderr
    assert "fault jump set" in r.stdout
    r = _cli("fault", "stall", *url)
    assert r.returncode == 0, r.stderr
    r = _cli("kill-switch", "on", "--account", "ACC1", *url)
    assert r.returncode == 0, r.stderr
    assert "kill switch on for ACC1" in r.stdout
    r = _cli("state", "--json", *url)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    assert state["kill_switch"]["ACC1"] is True
    assert state["faults"]["latency_ms"] == {"ACC1_OE": 5.0}
    assert state["faults"]["stalled"] == ["*"]
    r = _cli("state", *url)
    assert "ACC1_OE" in r.stdout
    assert "kill switch: ACC1=ON" in r.stdout
    r = _cli("fault", "clear", "--json", *url)
    assert sorted(json.loads(r.stdout)["cleared"]) == ["latency:ACC1_OE", "stall:*"]
    r = _cli("fault", "refuse", "--session", "NOPE", *url)
    assert r.returncode == 1
    assert r.stderr.startswith("tradeops: error:")
    assert "unknown session" in r.stderr
    port = free_port_block(1)
    r = _cli("state", "--admin-url", f"http://127.0.0.1:{port}")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "cannot reach" in r.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("host: 0.0.0.0\n", encoding="utf-8")
    r = _cli("run", "--config", str(bad))
    assert r.returncode == 1
    assert "every interface" in r.stderr
