"""The exchange simulator: FIX sessions, market loop, engine, faults, admin API.

In-process use (tests, tools)::

    cfg = load_config(None, port_base=0, admin_port=0, store_dir=tmp)
    async with SimServer(cfg) as sim:
        port = sim.ports["ACC1_OE"]
        ...

As a process: ``tradeops sim run`` (see :mod:`tradeops.sim.cli`), which calls
:func:`run_forever`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import IO, Any

from asyncfix import FIXMessage, FMsg, FTag
from asyncfix.protocol import FIXSchema

from tradeops.brokers.base import SessionRole
from tradeops.brokers.fixconn import engine_logger, open_journal
from tradeops.brokers.fixproto import make_protocol
from tradeops.log import EventLog
from tradeops.sim import fixapp
from tradeops.sim.acceptor import SessionAcceptor, SessionListener
from tradeops.sim.admin import AdminServer
from tradeops.sim.capacity import Capacity
from tradeops.sim.config import SimConfig
from tradeops.sim.engine import (
    REJ_BROKER_OPTION,
    REJ_OTHER,
    CancelRejectInfo,
    Engine,
    Report,
)
from tradeops.sim.faults import ALL, CLEARABLE, FaultState
from tradeops.sim.fixapp import BusinessRejectError, SessionRejectError
from tradeops.sim.metrics import SimMetrics
from tradeops.sim.prices import PriceProcess, Tick, derive_seed, make_process
from tradeops.sim.throttle import Verdict

Handler = Callable[[SessionAcceptor, FIXMessage], Awaitable[None]]


def _run_tag() -> str:
    """A short tag unique per run, prefixed to OrderID/ExecID."""
    n = int(time.time() * 1000) % 36**7
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class ReportBurst:
    """A burst's ExecutionReports, each built by ``build`` once, when first asked for."""

    def __init__(self, build: Callable[[Report], FIXMessage], reports: list[Report]) -> None:
        self._build = build
        self._reports = reports
        self._built: dict[int, FIXMessage] = {}

    def message(self, index: int) -> FIXMessage:
        """The message of report ``index`` (a MessageSource for the acceptors)."""
        msg = self._built.get(index)
        if msg is None:
            msg = self._built[index] = self._build(self._reports[index])
        return msg


def _msg_type(msg: FIXMessage) -> str:
    return str(msg.msg_type)


class SimServer:
    """One simulator: every configured session, the market and the admin API."""

    def __init__(
        self, config: SimConfig, log: EventLog | None = None, *, run_tag: str | None = None
    ) -> None:
        self.config = config
        self._extensions = config.fix.venue_extensions
        self.capacity = Capacity()
        self.log = log or EventLog("sim")
        self.faults = FaultState()
        self.engine = Engine(config, run_tag or _run_tag())
        self.metrics = SimMetrics()
        self.processes: dict[str, PriceProcess] = {
            s.symbol: make_process(s, config.seed) for s in config.symbols
        }
        self.ticks: dict[str, int] = {s.symbol: 0 for s in config.symbols}
        self._fault_rng = random.Random(derive_seed(config.seed, "__faults__"))
        self.protocol = make_protocol(config.fix.repeating_groups, config.fix.begin_string)
        self.schema = FIXSchema(config.fix.data_dictionary) if config.fix.data_dictionary else None
        self.acceptors: dict[str, SessionAcceptor] = {}
        self.listeners: dict[str, SessionListener] = {}
        self.admin: AdminServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._report_n = 0
        self._started = False
        self._handlers: dict[str, Handler] = {
            "D": self._on_new_order,
            "F": self._on_cancel,
            "G": self._on_replace,
            "q": self._on_mass_cancel,
            "AF": self._on_mass_status,
            "AN": self._on_positions,
            "V": self._on_market_data_request,
        }

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open journals, bind every listener and the admin API, start the market."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        self.log.event(
            "sim_start",
            pid=os.getpid(),
            run_tag=self.engine.run_tag,
            seed=cfg.seed,
            store_dir=cfg.store_dir,
        )
        try:
            for spec in cfg.sessions:
                journal = open_journal(cfg.store_dir, spec.sim_comp_id, spec.client_comp_id)
                acceptor = SessionAcceptor(
                    spec,
                    self,
                    self.protocol,
                    journal,
                    cfg.host,
                    cfg.heartbeat_s,
                    engine_logger(f"sim.{spec.name}", self.log.bind(session=spec.name)),
                    max_frame_bytes=cfg.fix.max_frame_bytes,
                )
                self.acceptors[spec.name] = acceptor
                listener = SessionListener(acceptor, cfg.host, spec.port)
                await listener.start()
                self.listeners[spec.name] = listener
                self.log.event(
                    "listening",
                    session=spec.name,
                    role=str(spec.role),
                    account=spec.account,
                    address=cfg.host,
                    port=listener.port,
                    next_seq_in=acceptor.next_seq_in,
                    next_seq_out=acceptor.next_seq_out,
                )
            for symbol, proc in self.processes.items():
                self.engine.on_tick(symbol, proc.current())
            self.admin = AdminServer(self, cfg.admin_host, cfg.admin_port)
            self.admin.start(loop)
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.create_task(self._market_loop(), name="sim-market"))
        self._started = True

    async def stop(self) -> None:
        """Log every session out (bounded), close listeners, journals and the admin API."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for listener in self.listeners.values():
            await listener.stop()
        await asyncio.gather(
            *(a.shutdown("simulator shutting down") for a in self.acceptors.values()),
            return_exceptions=True,
        )
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        if self._started:
            self.log.event("sim_stop", orders=len(self.engine.orders), fills=self.engine.fills)
        self._started = False

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each session, by session name."""
        return {name: lst.port for name, lst in self.listeners.items()}

    @property
    def admin_port(self) -> int:
        """Bound port of the admin API."""
        assert self.admin is not None
        return self.admin.port

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        host = self.config.admin_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.admin_port}"

    def ready_info(self) -> dict[str, Any]:
        """What ``tradeops sim run`` prints once listening."""
        return {
            "event": "ready",
            "pid": os.getpid(),
            "host": self.config.host,
            "admin_port": self.admin_port,
            "admin_url": self.admin_url,
            "sessions": {
                name: {
                    "port": self.listeners[name].port,
                    "role": str(acc.spec.role),
                    "account": acc.spec.account,
                    "sim_comp_id": acc.spec.sim_comp_id,
                    "client_comp_id": acc.spec.client_comp_id,
                }
                for name, acc in self.acceptors.items()
            },
        }

    # ---------------------------------------------------------- market loop
    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.tick_interval_ms / 1000.0
        next_t = loop.time()
        while True:
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            if loop.time() - next_t > 10 * interval:
                next_t = loop.time()  # far behind (e.g. suspended): do not burst
            for symbol, proc in self.processes.items():
                try:
                    await self._apply_tick(symbol, proc.next_tick())
                except Exception as exc:
                    self.log.event(
                        "market_error", symbol=symbol, error=f"{type(exc).__name__}: {exc}"
                    )

    async def _apply_tick(self, symbol: str, tick: Tick) -> None:
        self.ticks[symbol] += 1
        self.metrics.ticks.labels(symbol).inc()
        reports = self.engine.on_tick(symbol, tick)
        if reports:
            await self._route(reports)
        if self.faults.is_stalled(symbol):
            return
        rpt_seq = self.ticks[symbol]
        for acc in self.acceptors.values():
            if not acc.md_subs or not acc.is_live:
                continue
            for md_req_id, symbols in list(acc.md_subs.items()):
                if symbol in symbols:
                    msg = fixapp.md_incremental(md_req_id, symbol, tick, rpt_seq, self._extensions)
                    await acc.send_app(msg, store_if_down=False)

    # -------------------------------------------------------------- routing
    def _drop_copies(self, account: str) -> list[SessionAcceptor]:
        return [
            a
            for a in self.acceptors.values()
            if a.spec.account == account and a.spec.role == SessionRole.DROP_COPY
        ]

    def _report_message(self, rep: Report) -> FIXMessage:
        """The ExecutionReport message of ``rep``; counted and logged (once per report)."""
        msg = fixapp.exec_report(rep)
        self.metrics.count(self.metrics.exec_reports, rep.account, rep.exec_type)
        if not rep.status_only:
            self.log.event(
                "exec",
                account=rep.account,
                exec_id=rep.exec_id,
                order_id=rep.order_id,
                cl_ord_id=rep.cl_ord_id,
                symbol=rep.symbol,
                side=rep.side,
                exec_type=rep.exec_type,
                ord_status=rep.ord_status,
                last_qty=str(rep.last_qty),
                last_px=str(rep.last_px),
                leaves_qty=str(rep.leaves_qty),
                text=rep.text,
            )
        return msg

    def _targets(self, rep: Report) -> list[SessionAcceptor]:
        """The sessions that get ``rep``: its recipients, then the account's drop copies."""
        targets = [self.acceptors[n] for n in sorted(rep.recipients) if n in self.acceptors]
        if not rep.status_only:
            targets += [a for a in self._drop_copies(rep.account) if a not in targets]
        return targets

    async def _route(self, reports: list[Report]) -> None:
        """Send each ExecutionReport to its recipients and the account's drop copies."""
        for rep in reports:
            msg = self._report_message(rep)
            for acc in self._targets(rep):
                await acc.send_app(msg)

    def _route_burst(self, reports: list[Report]) -> None:
        """Hand ``reports`` to the writer task of each session that gets some; return at once.

        A venue's fan-out of a mass cancel's reports does not hold back the next
        message on the session that asked (its mass status). Each session still
        gets its reports in order, before anything sent to it later; each report
        is built, counted and logged once, when the first session writes it.
        """
        burst = ReportBurst(self._report_message, reports)
        per_session: dict[str, tuple[SessionAcceptor, list[int]]] = {}
        for index, rep in enumerate(reports):
            targets = self._targets(rep)
            if not targets:
                burst.message(index)  # nobody gets it: still counted and logged
            for acc in targets:
                per_session.setdefault(acc.name, (acc, []))[1].append(index)
        for acc, indices in per_session.values():
            acc.send_burst(burst, indices)

    def _next_report_id(self, prefix: str) -> str:
        self._report_n += 1
        return f"{self.engine.run_tag}-{prefix}{self._report_n}"

    # -------------------------------------------------- acceptor callbacks
    def logon_refusal(self, acceptor: SessionAcceptor) -> str | None:
        """Refuse the logon while a ``refuse`` fault is set for the session."""
        if self.faults.is_refused(acceptor.name):
            self.metrics.refused_logons.labels(acceptor.name).inc()
            self.log.event("logon_refused", session=acceptor.name, reason="fault: refuse")
            return f"logon refused: session {acceptor.name} is refused (fault injection)"
        return None

    def latency_s(self, acceptor: SessionAcceptor) -> float:
        """Injected outbound latency of the session."""
        return self.faults.latency_s(acceptor.name)

    async def on_session_connected(self, acceptor: SessionAcceptor, peer: Any) -> None:
        """Log the TCP connection."""
        self.log.event("session_connected", session=acceptor.name, peer=str(peer))

    async def on_session_logon(self, acceptor: SessionAcceptor) -> None:
        """Log the logon."""
        self.metrics.logons.labels(acceptor.name).inc()
        self.log.event(
            "logon",
            session=acceptor.name,
            role=str(acceptor.spec.role),
            state=acceptor.state_name,
            next_seq_in=acceptor.next_seq_in,
            next_seq_out=acceptor.next_seq_out,
        )

    async def on_session_down(self, acceptor: SessionAcceptor) -> None:
        """Log the disconnect."""
        self.log.event(
            "session_down",
            session=acceptor.name,
            logout_text=acceptor.last_logout_text,
            reason=acceptor.last_disconnect_reason,
            next_seq_in=acceptor.next_seq_in,
            next_seq_out=acceptor.next_seq_out,
        )

    def count_out(self, acceptor: SessionAcceptor, msg: FIXMessage, sent: bool) -> None:
        """Count an outbound application message."""
        self.metrics.count(
            self.metrics.messages_out, acceptor.name, _msg_type(msg), "true" if sent else "false"
        )

    # ------------------------------------------------------ inbound messages
    async def handle_message(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        """Dispatch one inbound application message; never raises; time it (capacity)."""
        started = time.perf_counter()
        try:
            await self._handle_message(acc, msg)
        finally:
            self.capacity.add(_msg_type(msg), time.perf_counter() - started)

    async def _handle_message(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        mt = _msg_type(msg)
        seq = msg.get(FTag.MsgSeqNum, None)
        self.metrics.count(self.metrics.messages_in, acc.name, mt)
        try:
            verdict = acc.throttle.check()
            if verdict is Verdict.DISCONNECT:
                t = acc.spec.throttle
                text = (
                    f"throttle: more than {t.disconnect_limit} messages in {t.window_ms} ms,"
                    " logging out"
                )
                self.metrics.throttle.labels(acc.name, "disconnect").inc()
                self.log.event("throttle_disconnect", session=acc.name, msg_type=mt)
                await acc.drop(text)
                return
            if verdict is Verdict.REJECT:
                self.metrics.throttle.labels(acc.name, "reject").inc()
                await self._throttle_reject(acc, msg, mt, seq)
                return
            if not isinstance(msg.msg_type, FMsg):
                raise SessionRejectError(fixapp.SR_INVALID_MSGTYPE, f"invalid MsgType {mt!r}")
            handler = self._handlers.get(mt)
            if handler is None:
                raise BusinessRejectError(
                    fixapp.BR_UNSUPPORTED_MSGTYPE, f"unsupported MsgType {mt}"
                )
            if acc.spec.role == SessionRole.DROP_COPY:
                raise BusinessRejectError(
                    fixapp.BR_UNSUPPORTED_MSGTYPE,
                    f"drop copy session is receive-only: MsgType {mt} not accepted",
                )
            if self.schema is not None:
                try:
                    self.schema.validate(msg)
                except Exception as exc:
                    raise SessionRejectError(fixapp.SR_OTHER, f"data dictionary: {exc}") from None
            await handler(acc, msg)
        except SessionRejectError as exc:
            self.metrics.rejects.labels(acc.name, "session").inc()
            self.log.event(
                "bad_message", session=acc.name, msg_type=mt, seq=seq, reject="3", text=exc.text
            )
            await acc.send_app(fixapp.session_reject(seq, mt, exc.reason, exc.text, exc.tag))
        except BusinessRejectError as exc:
            self.metrics.rejects.labels(acc.name, "business").inc()
            self.log.event(
                "bad_message", session=acc.name, msg_type=mt, seq=seq, reject="j", text=exc.text
            )
            await acc.send_app(fixapp.business_reject(seq, mt, exc.reason, exc.text, exc.ref_id))
        except Exception as exc:
            self.log.event(
                "app_error",
                session=acc.name,
                msg_type=mt,
                seq=seq,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=8),
            )
            with contextlib.suppress(Exception):
                await acc.send_app(
                    fixapp.business_reject(
                        seq, mt, fixapp.BR_OTHER, f"internal error: {type(exc).__name__}"
                    )
                )

    async def _throttle_reject(
        self, acc: SessionAcceptor, msg: FIXMessage, mt: str, seq: str | None
    ) -> None:
        t = acc.spec.throttle
        text = f"throttle: more than {t.reject_limit} messages in {t.window_ms} ms"
        self.metrics.rejects.labels(acc.name, "throttle").inc()
        self.log.event("throttle_reject", session=acc.name, msg_type=mt, seq=seq)
        if mt == "D":
            try:
                req = fixapp.parse_new_order(msg, acc.spec.account)
            except (SessionRejectError, BusinessRejectError):
                req = None
            if req is not None:
                await self._route([self.engine.reject_new(req, acc.name, REJ_OTHER, text)])
                return
        if mt in ("F", "G"):
            info = CancelRejectInfo(
                session=acc.name,
                cl_ord_id=str(msg.get(FTag.ClOrdID, "") or "NONE"),
                orig_cl_ord_id=str(msg.get(FTag.OrigClOrdID, "") or "NONE"),
                order_id=None,
                ord_status="8",
                response_to="1" if mt == "F" else "2",
                reason="99",
                text=text,
                account=acc.spec.account,
            )
            await acc.send_app(fixapp.cancel_reject(info))
            return
        await acc.send_app(fixapp.business_reject(seq, mt, fixapp.BR_OTHER, text))

    async def _send_cancel_reject(self, acc: SessionAcceptor, info: CancelRejectInfo) -> None:
        self.metrics.rejects.labels(acc.name, "cancel").inc()
        self.log.event(
            "cancel_reject",
            session=acc.name,
            cl_ord_id=info.cl_ord_id,
            orig_cl_ord_id=info.orig_cl_ord_id,
            reason=info.reason,
            text=info.text,
        )
        await acc.send_app(fixapp.cancel_reject(info))

    async def _on_new_order(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        req = fixapp.parse_new_order(msg, acc.spec.account)
        if req.account != acc.spec.account:
            text = f"account {req.account} is not permitted on this session"
            await self._route([self.engine.reject_new(req, acc.name, REJ_OTHER, text)])
            return
        prob = self.faults.reject_prob(req.account)
        if prob > 0 and self._fault_rng.random() < prob:
            self.metrics.rejects.labels(acc.name, "fault").inc()
            text = "fault: injected reject"
            await self._route([self.engine.reject_new(req, acc.name, REJ_BROKER_OPTION, text)])
            return
        reports = self.engine.new_order(req, acc.name)
        if reports and reports[0].exec_type == "8":
            self.metrics.rejects.labels(acc.name, "order").inc()
        await self._route(reports)

    async def _on_cancel(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        result = self.engine.cancel(fixapp.parse_cancel(msg, acc.spec.account), acc.name)
        if isinstance(result, CancelRejectInfo):
            await self._send_cancel_reject(acc, result)
        else:
            await self._route(result)

    async def _on_replace(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        result = self.engine.replace(fixapp.parse_replace(msg, acc.spec.account), acc.name)
        if isinstance(result, CancelRejectInfo):
            await self._send_cancel_reject(acc, result)
        else:
            await self._route(result)

    async def _on_mass_cancel(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        cl_ord_id = fixapp.req(msg, FTag.ClOrdID)
        req_type = fixapp.get_enum(msg, FTag.MassCancelRequestType, "1234567")
        assert req_type is not None
        account = fixapp.check_account(msg, acc.spec.account)
        report_id = self._next_report_id("MC")
        symbol: str | None = None
        if req_type == "1":
            symbol = fixapp.req(msg, FTag.Symbol)
            if symbol not in self.engine.quotes:
                await acc.send_app(
                    fixapp.mass_cancel_report(
                        report_id, cl_ord_id, req_type, "0", [], "1", f"unknown symbol {symbol}"
                    )
                )
                return
        elif req_type != "7":
            await acc.send_app(
                fixapp.mass_cancel_report(
                    report_id,
                    cl_ord_id,
                    req_type,
                    "0",
                    [],
                    "0",
                    f"MassCancelRequestType {req_type} not supported (use 1 or 7)",
                )
            )
            return
        reports = self.engine.mass_cancel(account, acc.name, symbol)
        self.log.event(
            "mass_cancel",
            session=acc.name,
            account=account,
            symbol=symbol,
            request_type=req_type,
            affected=len(reports),
        )
        await acc.send_app(
            fixapp.mass_cancel_report(report_id, cl_ord_id, req_type, req_type, reports)
        )
        self._route_burst(reports)

    async def _on_mass_status(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        req_id = fixapp.req(msg, FTag.MassStatusReqID)
        req_type = fixapp.get_enum(msg, FTag.MassStatusReqType, "12345678")
        account = fixapp.check_account(msg, acc.spec.account)
        symbol = None
        if req_type == "1":
            symbol = fixapp.req(msg, FTag.Symbol)
            if symbol not in self.engine.quotes:
                raise BusinessRejectError(
                    fixapp.BR_UNKNOWN_SECURITY, f"unknown symbol {symbol}", req_id
                )
        elif req_type not in ("7", "8"):
            raise BusinessRejectError(
                fixapp.BR_OTHER, f"MassStatusReqType {req_type} not supported (use 1, 7)", req_id
            )
        reports = self.engine.status_reports(account, acc.name, req_id, symbol)
        self.log.event(
            "mass_status",
            session=acc.name,
            account=account,
            symbol=symbol,
            mass_status_req_id=req_id,
            reports=reports[0].tot_num_reports,
        )
        await self._route(reports)

    async def _on_positions(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        pos_req_id = fixapp.req(msg, FTag.PosReqID)
        pos_req_type = fixapp.req(msg, FTag.PosReqType)
        account = fixapp.check_account(msg, acc.spec.account)
        report_id = self._next_report_id("P")
        if pos_req_type != "0":
            await acc.send_app(
                fixapp.positions_ack(
                    report_id,
                    pos_req_id,
                    account,
                    0,
                    "4",
                    f"PosReqType {pos_req_type} not supported (use 0)",
                )
            )
            return
        views = self.engine.position_views(account)
        await acc.send_app(fixapp.positions_ack(report_id, pos_req_id, account, len(views)))
        for view in views:
            await acc.send_app(
                fixapp.position_report(
                    self._next_report_id("P"), pos_req_id, len(views), view, self._extensions
                )
            )

    async def _on_market_data_request(self, acc: SessionAcceptor, msg: FIXMessage) -> None:
        md_req_id = fixapp.req(msg, FTag.MDReqID)
        sub_type = fixapp.get_enum(msg, FTag.SubscriptionRequestType, "012")
        if sub_type == "2":
            acc.md_subs.pop(md_req_id, None)
            return
        symbols = fixapp.group_values(msg, FTag.NoRelatedSym, FTag.Symbol)
        unknown = [s for s in symbols if s not in self.processes]
        if unknown:
            await acc.send_app(
                fixapp.md_reject(md_req_id, "0", f"unknown symbol(s): {', '.join(unknown)}"),
                store_if_down=False,
            )
            return
        if sub_type == "1":
            acc.md_subs[md_req_id] = set(symbols)
        for symbol in symbols:
            if self.faults.is_stalled(symbol):
                continue
            tick = self.processes[symbol].current()
            await acc.send_app(
                fixapp.md_snapshot(md_req_id, symbol, tick, self.ticks[symbol], self._extensions),
                store_if_down=False,
            )

    # ------------------------------------------------------------ admin ops
    def state(self) -> dict[str, Any]:
        """Everything the admin ``GET /state`` shows."""
        eng = self.engine.state()
        return {
            "pid": os.getpid(),
            "run_tag": self.engine.run_tag,
            "host": self.config.host,
            "admin_port": self.admin.port if self.admin else None,
            "capacity": self.capacity.report(),
            "sessions": [
                {
                    "name": acc.name,
                    "role": str(acc.spec.role),
                    "account": acc.spec.account,
                    "client_comp_id": acc.spec.client_comp_id,
                    "sim_comp_id": acc.spec.sim_comp_id,
                    "port": self.listeners[acc.name].port if acc.name in self.listeners else None,
                    "state": acc.state_name,
                    "connected": acc.is_connected,
                    "logged_on": acc.is_live,
                    "logons": acc.logons,
                    "next_seq_in": acc.next_seq_in,
                    "next_seq_out": acc.next_seq_out,
                    "md_subscriptions": {k: sorted(v) for k, v in acc.md_subs.items()},
                    "throttle_window_count": acc.throttle.count(),
                    "last_logout_text": acc.last_logout_text,
                    "refused": self.faults.is_refused(acc.name),
                    "stats": dict(acc.stats),
                }
                for acc in self.acceptors.values()
            ],
            **eng,
            "ticks": dict(self.ticks),
            "faults": self.faults.to_dict(),
        }

    async def set_kill_switch(self, account: str, on: bool) -> dict[str, Any]:
        """Turn an account's kill switch on (cancelling its working orders) or off."""
        if account not in self.engine.kill_switch:
            raise ValueError(f"unknown account {account!r}")
        reports = self.engine.set_kill_switch(account, on)
        self.log.event("kill_switch", account=account, on=on, cancelled=len(reports))
        await self._route(reports)
        return {"ok": True, "account": account, "kill_switch": on, "cancelled": len(reports)}

    def _session(self, name: Any) -> SessionAcceptor:
        if not isinstance(name, str) or name not in self.acceptors:
            raise ValueError(f"unknown session {name!r}; sessions: {', '.join(self.acceptors)}")
        return self.acceptors[name]

    def _symbol(self, symbol: Any) -> str:
        if not isinstance(symbol, str) or symbol not in self.processes:
            raise ValueError(f"unknown symbol {symbol!r}; symbols: {', '.join(self.processes)}")
        return symbol

    async def set_fault(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Inject a fault; see :mod:`tradeops.sim.faults`."""
        f = self.faults
        result: dict[str, Any] = {"ok": True, "fault": kind}
        if kind == "latency":
            ms = float(params.get("ms", -1))
            if not 0 <= ms <= 60_000:
                raise ValueError("latency: ms must be between 0 and 60000")
            target = ALL if params.get("session") is None else self._session(params["session"]).name
            f.latency_ms[target] = ms
            result.update(session=target, ms=ms)
        elif kind == "reject":
            p = float(params.get("probability", -1))
            if not 0 <= p <= 1:
                raise ValueError("reject: probability must be between 0 and 1")
            account = params.get("account")
            if account is not None and account not in self.engine.kill_switch:
                raise ValueError(f"unknown account {account!r}")
            target = ALL if account is None else str(account)
            f.reject_probability[target] = p
            result.update(account=target, probability=p)
        elif kind == "drop":
            acc = self._session(params.get("session"))
            was = acc.is_connected
            await acc.drop("dropped by fault injection" if params.get("logout") else None)
            result.update(session=acc.name, was_connected=was)
        elif kind == "refuse":
            acc = self._session(params.get("session"))
            f.refused.add(acc.name)
            result.update(session=acc.name)
            if params.get("drop", True) and acc.is_connected:
                await acc.drop("logon refused (fault injection)")
        elif kind == "stall":
            target = ALL if params.get("symbol") is None else self._symbol(params["symbol"])
            f.stalled.add(target)
            result.update(symbol=target, ticks=dict(self.ticks))
        elif kind == "jump":
            symbol = self._symbol(params.get("symbol"))
            pct, absolute = params.get("pct"), params.get("abs")
            if (pct is None) == (absolute is None):
                raise ValueError("jump: give exactly one of pct and abs")
            proc = self.processes[symbol]
            before = proc.current()
            tick = proc.jump(
                pct=None if pct is None else Decimal(str(pct)),
                absolute=None if absolute is None else Decimal(str(absolute)),
            )
            await self._apply_tick(symbol, tick)
            result.update(
                symbol=symbol,
                before={"bid": str(before.bid), "ask": str(before.ask)},
                after={"bid": str(tick.bid), "ask": str(tick.ask)},
                tick=self.ticks[symbol],
            )
        else:
            raise ValueError(f"unknown fault {kind!r}")
        self.log.event("fault_set", **{k: v for k, v in result.items() if k != "ok"})
        return result

    async def clear_fault(self, kind: str | None, target: str | None) -> dict[str, Any]:
        """Clear faults; see :meth:`FaultState.clear`."""
        if kind is not None and kind not in CLEARABLE:
            raise ValueError(f"cannot clear {kind!r}: one of {', '.join(CLEARABLE)}")
        cleared = self.faults.clear(kind, target)
        self.log.event("fault_clear", kind=kind, target=target, cleared=cleared)
        return {"ok": True, "cleared": cleared, "ticks": dict(self.ticks)}

    async def admin_request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Serve one admin API request; returns (HTTP status, JSON payload or bytes)."""
        params = body if isinstance(body, dict) else {}
        try:
            if method == "GET":
                if path == "/health":
                    return 200, {"ok": True}
                if path == "/state":
                    return 200, self.state()
                if path == "/faults":
                    return 200, self.faults.to_dict()
                if path == "/metrics":
                    self.metrics.refresh(self)
                    return 200, self.metrics.render()
            elif method == "POST":
                if path == "/kill-switch":
                    account = params.get("account")
                    st = params.get("state", params.get("on"))
                    if st in ("on", True):
                        on = True
                    elif st in ("off", False):
                        on = False
                    else:
                        raise ValueError('kill-switch: "state" must be "on" or "off"')
                    return 200, await self.set_kill_switch(str(account), on)
                if path == "/faults/clear":
                    return 200, await self.clear_fault(params.get("kind"), params.get("target"))
                if path.startswith("/faults/"):
                    return 200, await self.set_fault(path.removeprefix("/faults/"), params)
            else:
                return 405, {"ok": False, "error": f"method {method} not allowed"}
        except (ValueError, TypeError, KeyError) as exc:
            return 400, {"ok": False, "error": str(exc)}
        return 404, {"ok": False, "error": f"no such endpoint: {method} {path}"}


async def run_forever(config: SimConfig, log: EventLog, ready_stream: IO[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT, then shut down cleanly; print the ready line when up."""
    import json

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sim = SimServer(config, log)
    await sim.start()
    try:
        info = sim.ready_info()
        log.event(
            "ready",
            address=info["host"],
            admin_port=info["admin_port"],
            sessions={k: v["port"] for k, v in info["sessions"].items()},
        )
        stream = ready_stream or sys.stdout
        stream.write(json.dumps(info, sort_keys=True) + "\n")
        stream.flush()
        await stop.wait()
        log.event("signal", detail="stopping")
    finally:
        await sim.stop()
    return 0
