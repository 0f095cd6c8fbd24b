"""RiskSession.cancel_all sends its first mass status right behind the mass cancel.

A scripted venue stands in for the FIX session: it records what the risk
session sent, in order, and answers a little later (a network in between), in
the order it was asked, as a venue handling one session's messages would. "Clean" must still come
only from a status answer that lists zero working orders.
"""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

from tradeops.agent.risk import RiskSession
from tradeops.brokers.base import (
    Execution,
    MassCancelReport,
    Reject,
    SessionConfig,
    SessionRole,
    Side,
)
from tradeops.log import EventLog


class ScriptedVenue:
    """A FixSession stand-in: one account's book, cancelled when and as scripted."""

    def __init__(
        self, risk: RiskSession, working: int, cancel_after_ack: bool, reject_first_status: bool
    ) -> None:
        self.risk = risk
        self.book = [f"O{i}" for i in range(working)]
        self.cancel_after_ack = cancel_after_ack
        self.reject_first_status = reject_first_status
        self.sent: list[str] = []
        self.answered: list[str] = []  # what had reached the risk session when each was sent
        self.is_logged_on = True

    def _answer(self, what: str, *events: object) -> None:
        def deliver() -> None:
            self.answered.append(what)
            for event in events:
                self.risk._on_event(event)  # type: ignore[arg-type]

        asyncio.get_running_loop().call_later(0.01, deliver)

    def _send(self, what: str) -> None:
        self.sent.append(f"{what} (answered: {', '.join(self.answered) or 'nothing'})")

    async def mass_cancel(self, cl_ord_id: str, symbol: str | None = None) -> None:
        self._send("mass_cancel")
        affected = len(self.book)
        if not self.cancel_after_ack:
            self.book.clear()
        self._answer("mass_cancel", MassCancelReport(cl_ord_id, "7", "7", affected))

    async def mass_status(self, req_id: str) -> None:
        self._send("mass_status")
        first = sum(s.startswith("mass_status") for s in self.sent) == 1
        if self.reject_first_status and first:
            self._answer("mass_status", Reject("AF", "status not available now"))
            return
        orders = list(self.book) or ["NONE"]
        if self.cancel_after_ack:
            self.book.clear()  # the venue's cancel completes after this answer
        self._answer(
            "mass_status",
            *(
                Execution(
                    exec_id=f"X{req_id}-{n}",
                    order_id=order_id,
                    cl_ord_id=f"C-{order_id}",
                    orig_cl_ord_id=None,
                    symbol="S00",
                    side=Side.BUY,
                    exec_type="I",
                    ord_status="0" if order_id != "NONE" else "4",
                    order_qty=Decimal(1),
                    last_qty=Decimal(0),
                    last_px=Decimal(0),
                    cum_qty=Decimal(0),
                    leaves_qty=Decimal(1) if order_id != "NONE" else Decimal(0),
                    price=Decimal(99),
                    account="ACC1",
                    mass_status_req_id=req_id,
                    tot_num_reports=0 if orders == ["NONE"] else len(orders),
                    last_rpt_requested=n == len(orders) - 1,
                )
                for n, order_id in enumerate(orders)
            ),
        )

    async def send_raw(self, msg: object) -> None:
        self._send("cancel_order")


def cancel_all(working: int, cancel_after_ack: bool = False, reject_first_status: bool = False):
    config = SessionConfig(
        host="127.0.0.1",
        port=1,
        sender_comp_id="ACC1_RISK",
        target_comp_id="SIM",
        role=SessionRole.RISK,
        account="ACC1",
    )
    risk = RiskSession(config, log=EventLog("agent", io.StringIO()))
    venue = ScriptedVenue(risk, working, cancel_after_ack, reject_first_status)
    risk.fix = venue  # type: ignore[assignment]

    async def scenario():
        return await risk.cancel_all("oncall", "test", timeout_s=5)

    return asyncio.run(scenario()), venue


FIRST_TWO = ["mass_cancel (answered: nothing)", "mass_status (answered: nothing)"]


def test_the_status_goes_out_behind_the_mass_cancel_and_confirms_at_once() -> None:
    report, venue = cancel_all(working=7)
    assert venue.sent == FIRST_TWO  # the status went out before the cancel's report came
    assert report.clean, report
    assert report.cancelled_by_mass == 7
    assert list(report.steps_ms) == ["mass_cancel", "confirm"]
    assert report.confirm_ms is not None


def test_a_venue_that_cancels_after_its_ack_is_asked_again() -> None:
    report, venue = cancel_all(working=3, cancel_after_ack=True)
    assert report.clean, report
    assert report.cancelled_by_mass == 3
    assert report.cancelled_by_order == 0
    # the first answer still listed 3 working orders: asked again, no per-order cancel yet
    assert venue.sent == [*FIRST_TWO, "mass_status (answered: mass_cancel, mass_status)"]
    assert list(report.steps_ms) == ["mass_cancel", "confirm", "confirm_2"]


def test_a_rejected_first_status_is_asked_again() -> None:
    report, venue = cancel_all(working=4, reject_first_status=True)
    assert report.clean, report
    assert venue.sent == [*FIRST_TWO, "mass_status (answered: mass_cancel, mass_status)"]
    assert list(report.steps_ms) == ["mass_cancel", "confirm"]


def test_an_empty_book_is_clean_from_the_first_answer() -> None:
    report, venue = cancel_all(working=0)
    assert report.clean, report
    assert report.cancelled_by_mass == 0
    assert venue.sent == FIRST_TWO
