"""Drop copy, kill switch, throttles, fault injection, admin API, bind address, bad input."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from asyncfix import FTag

from tradeops.brokers.base import (
    CancelReject,
    Execution,
    NewOrder,
    OrdType,
    Quote,
    SessionStatus,
    Side,
)
from tradeops.brokers.fixproto import parse_fix_time
from tradeops.sim.admin import AdminClient, AdminError

from .conftest import Client, admin, connected, run, sim_log, start_sim


def _execs(client, cl_ord_id: str, exec_type: str | None = None) -> list[Execution]:
    return [
        e
        for e in client.of(Execution)
        if e.cl_ord_id == cl_ord_id and (exec_type is None or e.exec_type == exec_type)
    ]


def test_drop_copy_sees_every_execution_of_its_account(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_DC") as dc,
            connected(sim, "ACC1_OE") as oe,
            connected(sim, "ACC1_RISK") as risk,
            connected(sim, "ACC2_OE") as oe2,
        ):
            await oe.session.send_order(
                NewOrder("d1", "ESZ5", Side.BUY, Decimal(2), OrdType.MARKET)
            )
            await oe.session.send_order(
                NewOrder("d2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await risk.session.send_order(
                NewOrder("d3", "ESZ5", Side.SELL, Decimal(1), price=Decimal(110))
            )
            await oe2.session.send_order(
                NewOrder("x1", "ESZ5", Side.BUY, Decimal(1), OrdType.MARKET)
            )
            await oe2.wait_for(lambda: _execs(oe2, "x1", "F"), what="ACC2 fill")
            await risk.session.mass_cancel("dmc")
            want = {("d1", "0"), ("d1", "F"), ("d2", "0"), ("d3", "0"), ("d2", "4"), ("d3", "4")}
            await dc.wait_for(
                lambda: want <= {(e.cl_ord_id, e.exec_type) for e in dc.of(Execution)},
                what="drop copies",
            )
            assert all(e.account == "ACC1" for e in dc.of(Execution))  # nothing of ACC2
            assert not _execs(oe, "d3")  # the OE session does not see the risk session's order
            assert _execs(risk, "d3", "0")

    run(scenario())


def test_kill_switch_rejects_new_orders_until_reset_cancels_allowed(sim_config_file):
    async def scenario():
        async with (
            start_sim(sim_config_file) as sim,
            connected(sim, "ACC1_OE") as c1,
            connected(sim, "ACC2_OE") as c2,
        ):
            url = sim.admin_url
            await c1.session.send_order(
                NewOrder("k1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c2.session.send_order(
                NewOrder("k2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c2.session.send_order(
                NewOrder("k3", "ESZ5", Side.BUY, Decimal(1), price=Decimal(91))
            )
            await c1.wait_for(lambda: _execs(c1, "k1", "0"))
            await c2.wait_for(lambda: _execs(c2, "k3", "0"))
            res = await admin(url, "POST", "/kill-switch", {"account": "ACC1", "state": "on"})
            assert res["cancelled"] == 1  # ACC1 cancels working orders on kill
            cancel = (await c1.wait_for(lambda: _execs(c1, "k1", "4")))[0]
            assert cancel.text == "kill switch"
            await c1.session.send_order(
                NewOrder("k4", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            rej = (await c1.wait_for(lambda: _execs(c1, "k4", "8")))[0]
            assert rej.ord_status == "8"
            assert "kill switch" in (rej.text or "")
            raw = next(m for m in c1.raw_of("8") if m.get(FTag.ClOrdID) == "k4")
            assert raw[FTag.OrdRejReason] == "99"
            # ACC2 (cancel_on_kill: false): orders stay, cancels work, replaces do not
            await admin(url, "POST", "/kill-switch", {"account": "ACC2", "state": "on"})
            await c2.session.send_order(
                NewOrder("k5", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c2.wait_for(lambda: _execs(c2, "k5", "8"))
            await c2.session.cancel_order("k2-c", "k2", "ESZ5", Side.BUY)
            await c2.wait_for(lambda: _execs(c2, "k2-c", "4"), what="cancel under kill switch")
            await c2.session.replace_order("k3-r", "k3", "ESZ5", Side.BUY, Decimal(2), Decimal(91))
            crej = (await c2.wait_for(lambda: c2.of(CancelReject)))[0]
            assert "kill switch" in crej.reason
            state = await admin(url, "GET", "/state")
            assert state["kill_switch"] == {"ACC1": True, "ACC2": True}
            await admin(url, "POST", "/kill-switch", {"account": "ACC1", "state": "off"})
            await c1.session.send_order(
                NewOrder("k6", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c1.wait_for(lambda: _execs(c1, "k6", "0"), what="accepted after reset")

    run(scenario())


def test_throttle_rejects_then_logs_out(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim:
            spec = sim.config.session("ACC1_THR")
            c = Client(sim.ports["ACC1_THR"], spec.client_comp_id)
            await c.session.connect(10)
            try:
                for i in range(6):  # limits: reject above 3, log out above 6 (10 min window)
                    await c.session.send_order(
                        NewOrder(f"t{i}", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                    )
                await c.wait_for(lambda: len(c.of(Execution)) >= 6, what="6 reports")
                types = [(e.cl_ord_id, e.exec_type) for e in c.of(Execution)]
                assert types == [("t0", "0"), ("t1", "0"), ("t2", "0"), ("t3", "8"), ("t4", "8"),
                                 ("t5", "8")]  # fmt: skip
                assert all("throttle" in (e.text or "") for e in c.of(Execution)[3:])
                await c.session.cancel_order("t0-c", "t0", "ESZ5", Side.BUY)
                await c.wait_for(lambda: not c.session.is_logged_on, what="logout")
                status = await c.wait_for(
                    lambda: [s for s in c.of(SessionStatus) if s.state != "logged_on"]
                )
                assert status[0].state == "logged_out"
                assert "throttle" in status[0].detail
                assert not c.of(CancelReject)
            finally:
                await c.session.close()
            events = [e["event"] for e in sim_log(sim)]
            assert events.count("throttle_reject") == 3
            assert "throttle_disconnect" in events

    run(scenario())


def test_fault_latency_delays_outbound_messages(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            res = await admin(
                sim.admin_url, "POST", "/faults/latency", {"ms": 300, "session": "ACC1_OE"}
            )
            assert res["ms"] == 300
            await c.session.send_order(
                NewOrder("l1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            raw = (await c.wait_raw("8"))[0]
            # stamped when produced, sent after the delay
            sent = parse_fix_time(raw[FTag.SendingTime])
            produced = parse_fix_time(raw[FTag.TransactTime])
            assert (sent - produced).total_seconds() >= 0.29
            await admin(sim.admin_url, "POST", "/faults/clear", {"kind": "latency"})
            assert (await admin(sim.admin_url, "GET", "/faults"))["latency_ms"] == {}

    run(scenario())


def test_fault_reject_probability(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            await admin(sim.admin_url, "POST", "/faults/reject", {"probability": 1.0})
            await c.session.send_order(
                NewOrder("f1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            rej = (await c.wait_for(lambda: _execs(c, "f1", "8")))[0]
            assert "fault" in (rej.text or "")
            await admin(sim.admin_url, "POST", "/faults/clear", {"kind": "reject"})
            await c.session.send_order(
                NewOrder("f2", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c.wait_for(lambda: _execs(c, "f2", "0"))

    run(scenario())


def test_fault_drop_and_refuse_sessions(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim:
            c = Client(sim.ports["ACC1_OE"], "ACC1_OE")
            await c.session.connect(10)
            try:
                await admin(sim.admin_url, "POST", "/faults/drop", {"session": "ACC1_OE"})
                await c.wait_for(
                    lambda: [s for s in c.of(SessionStatus) if s.state == "disconnected"],
                    what="disconnected",
                )
                assert not c.session.is_logged_on
                await admin(sim.admin_url, "POST", "/faults/refuse", {"session": "ACC1_OE"})
                with pytest.raises(ConnectionError, match="refused"):
                    await c.session.connect(10)
                assert c.of(SessionStatus)[-1].state == "logged_out"
                await admin(sim.admin_url, "POST", "/faults/clear", {"kind": "refuse"})
                await c.session.connect(10)
                assert c.session.is_logged_on
                await c.session.send_order(
                    NewOrder("after", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await c.wait_for(lambda: _execs(c, "after", "0"))
            finally:
                await c.session.close()

    run(scenario())


def test_fault_stall_market_data_and_resume(sim_config_file):
    with sim_config_file.open("a", encoding="utf-8") as f:
        f.write("fix: {venue_extensions: true}\n")  # RptSeq shows the gap

    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            await c.session.subscribe_market_data("md", ["ESZ5"])
            await c.wait_raw("X", 2)
            res = await admin(sim.admin_url, "POST", "/faults/stall", {"symbol": "ESZ5"})
            stalled_at = res["ticks"]["ESZ5"]
            for _attempt in range(200):  # let 5 more ticks pass, bounded
                if sim.ticks["ESZ5"] >= stalled_at + 5:
                    break
                await asyncio.sleep(0.05)
            assert sim.ticks["ESZ5"] >= stalled_at + 5
            assert max(int(m.get_group_list(FTag.NoMDEntries)[0][FTag.RptSeq])
                       for m in c.raw_of("X")) <= stalled_at  # fmt: skip
            await admin(sim.admin_url, "POST", "/faults/clear", {"kind": "stall"})
            await c.wait_for(
                lambda: any(
                    int(m.get_group_list(FTag.NoMDEntries)[0][FTag.RptSeq]) > stalled_at + 5
                    for m in c.raw_of("X")
                ),
                what="market data resumes",
            )

    run(scenario())


def test_fault_price_jump_moves_market_and_fills_resting_order(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            await c.session.subscribe_market_data("md", ["ESZ5"])
            await c.wait_raw("W")
            await c.session.send_order(
                NewOrder("j1", "ESZ5", Side.SELL, Decimal(2), price=Decimal(105))
            )
            await c.wait_for(lambda: _execs(c, "j1", "0"))
            res = await admin(sim.admin_url, "POST", "/faults/jump", {"symbol": "ESZ5", "pct": 10})
            assert Decimal(res["after"]["bid"]) == Decimal(110)
            fill = (await c.wait_for(lambda: _execs(c, "j1", "F")))[0]
            assert fill.last_px == Decimal(105)  # the resting order's price
            await c.wait_for(
                lambda: any(q.bid == Decimal(110) for q in c.of(Quote)), what="jumped quote"
            )
            res = await admin(sim.admin_url, "POST", "/faults/jump", {"symbol": "ESZ5", "abs": -20})
            assert Decimal(res["after"]["bid"]) == Decimal(90)

    run(scenario())


def test_admin_api_endpoints_and_errors(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            url = sim.admin_url
            assert await admin(url, "GET", "/health") == {"ok": True}
            await c.session.send_order(
                NewOrder("a1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
            )
            await c.wait_for(lambda: _execs(c, "a1", "0"))
            state = await admin(url, "GET", "/state")
            oe = next(s for s in state["sessions"] if s["name"] == "ACC1_OE")
            assert oe["logged_on"] is True
            assert oe["next_seq_in"] == c.session.next_seq_out
            assert oe["next_seq_out"] == c.session.next_seq_in
            assert [o["cl_ord_id"] for o in state["orders"]] == ["a1"]
            metrics = await asyncio.to_thread(AdminClient(url).metrics)
            assert 'sim_session_logged_on{session="ACC1_OE"} 1.0' in metrics
            assert "sim_messages_in_total" in metrics
            assert 'sim_working_orders{account="ACC1"} 1.0' in metrics
            for method, path, body in [
                ("POST", "/faults/latency", {"ms": -1}),
                ("POST", "/faults/drop", {"session": "NOPE"}),
                ("POST", "/faults/jump", {"symbol": "ESZ5"}),
                ("POST", "/faults/bogus", {}),
                ("POST", "/kill-switch", {"account": "NOPE", "state": "on"}),
                ("POST", "/faults/clear", {"kind": "jump"}),
            ]:
                with pytest.raises(AdminError, match="HTTP 400"):
                    await admin(url, method, path, body)
            with pytest.raises(AdminError, match="HTTP 404"):
                await admin(url, "GET", "/nope")

            def bad_json() -> int:
                req = urllib.request.Request(url + "/faults/stall", data=b"{", method="POST")
                try:
                    urllib.request.urlopen(req, timeout=5)
                except urllib.error.HTTPError as exc:
                    return exc.code
                return 200

            assert await asyncio.to_thread(bad_json) == 400
            assert json.dumps(state)  # the state is JSON all the way down

    run(scenario())


def test_listeners_bind_only_the_configured_address(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim:
            for name, listener in sim.listeners.items():
                names = listener.socknames()
                assert names, name
                assert all(n[0] == "127.0.0.1" for n in names)
            assert sim.admin is not None
            assert sim.admin.sockname()[0] == "127.0.0.1"
            for port in [*sim.ports.values(), sim.admin_port]:
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("127.0.0.2", port)
            # and the configured address does answer
            _reader, w = await asyncio.open_connection("127.0.0.1", sim.ports["ACC1_OE"])
            w.close()
            await w.wait_closed()
        # another configured address is honoured too
        async with start_sim(sim_config_file, host="127.0.0.3") as sim3:
            port = sim3.ports["ACC1_OE"]
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", port)
            c = Client(port, "ACC1_OE", host="127.0.0.3")
            await c.session.connect(10)
            await c.session.close()

    run(scenario())


def test_bad_input_never_crashes_the_simulator(sim_config_file):
    async def scenario():
        async with start_sim(sim_config_file) as sim:
            port = sim.ports["ACC1_OE"]
            garbage = [
                b"hello\r\n",
                b"\x00\xff" * 100,
                b"8=FIX.4.4\x019=5\x0135=D\x0110=000\x01",  # bad length and checksum
                b"8=FIX.4.2\x019=12\x0135=0\x0149=X\x0110=123\x01",  # wrong version
                b"8=FIX.4.4\x019=40\x0135=A\x0149=ACC1_OE\x0156=SIM\x0134=abc\x0152=x\x0110=010\x01",
            ]
            for blob in garbage:
                _reader, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(blob)
                await w.drain()
                w.close()
                await w.wait_closed()
            # wrong CompIDs are logged out
            c = Client(port, "SOMEONE_ELSE")
            with pytest.raises((ConnectionError, TimeoutError)):
                await c.session.connect(3)
            await c.session.close()
            async with connected(sim, "ACC1_OE") as ok:
                # a repeated tag is a session Reject 13, not a crash
                from asyncfix import FIXMessage, FMsg

                tags = {FTag.ClOrdID: "r", FTag.Symbol: "ESZ5", FTag.Side: "1"}
                msg = FIXMessage(FMsg.NEWORDERSINGLE, {**tags, FTag.OrderQty: "1"})
                msg[FTag.OrdType] = "1"
                msg.tags["55"] = "ESZ5\x0155=NQZ5"  # the same tag twice on the wire
                await ok.session.send_raw(msg)
                rej = (await ok.wait_raw("3"))[0]
                assert rej[FTag.SessionRejectReason] == "13"
                await ok.session.send_order(
                    NewOrder("fine", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90))
                )
                await ok.wait_for(lambda: _execs(ok, "fine", "0"))
            assert not [e for e in sim_log(sim) if e["event"] == "app_error"]

    run(scenario())


def test_data_dictionary_validation(sim_config_file):
    text = sim_config_file.read_text(encoding="utf-8")
    sim_config_file.write_text(text + "fix: {data_dictionary: builtin}\n", encoding="utf-8")

    async def scenario():
        async with start_sim(sim_config_file) as sim, connected(sim, "ACC1_OE") as c:
            assert sim.schema is not None
            s = c.session
            await s.send_order(NewOrder("v1", "ESZ5", Side.BUY, Decimal(1), price=Decimal(90)))
            await s.cancel_order("v1-c", "v1", "ESZ5", Side.BUY)
            await s.subscribe_market_data("md", ["ESZ5"])
            await s.mass_status("ms")
            await s.request_positions("pos")
            await s.mass_cancel("mc")
            await c.wait_for(lambda: _execs(c, "v1-c", "4"), what="valid messages pass")
            await c.wait_raw("W")
            await c.wait_raw("AP", 2)
            from asyncfix import FIXMessage, FMsg

            msg = FIXMessage(FMsg.NEWORDERSINGLE, {FTag.ClOrdID: "v2", FTag.Symbol: "ESZ5"})
            msg[FTag.Side] = "1"
            msg[FTag.OrderQty] = "1"
            msg[FTag.OrdType] = "1"
            msg["9999"] = "x"  # not in the dictionary
            await s.send_raw(msg)
            rej = (await c.wait_raw("3"))[0]
            assert "data dictionary" in rej[FTag.Text]
            assert rej[FTag.SessionRejectReason] == "99"
            assert not c.raw_of("j")

    run(scenario())
