"""Drop-copy and market-data events for the book and breaker tests."""

from __future__ import annotations

import itertools
from decimal import Decimal

from tradeops.brokers.base import Execution, Quote, Side

_ids = itertools.count(1)
D = Decimal
ZERO = Decimal(0)


class Order:
    """One order's life on the drop copy: each method returns the next Execution."""

    def __init__(
        self,
        cl: str,
        symbol: str = "AAA",
        side: Side = Side.BUY,
        qty: int | str = 100,
        price: int | str | None = 10,
        order_id: str | None = None,
    ) -> None:
        self.cl, self.symbol, self.side = cl, symbol, side
        self.qty = D(qty)
        self.price = None if price is None else D(price)
        self.order_id = order_id or f"O-{cl}"
        self.cum = D(0)

    def _ex(self, exec_type: str, status: str, last_qty: D = ZERO, last_px: D = ZERO) -> Execution:
        leaves = D(0) if status in ("2", "4", "8", "C") else self.qty - self.cum
        return Execution(
            exec_id=f"E{next(_ids)}",
            order_id="NONE" if exec_type == "8" else self.order_id,
            cl_ord_id=self.cl,
            orig_cl_ord_id=None,
            symbol=self.symbol,
            side=self.side,
            exec_type=exec_type,
            ord_status=status,
            order_qty=self.qty,
            last_qty=last_qty,
            last_px=last_px,
            cum_qty=self.cum,
            leaves_qty=leaves,
            price=self.price,
        )

    def pending(self) -> Execution:
        return self._ex("A", "A")

    def new(self) -> Execution:
        return self._ex("0", "0")

    def reject(self) -> Execution:
        return self._ex("8", "8")

    def fill(self, qty: int | str, px: int | str) -> Execution:
        self.cum += D(qty)
        status = "2" if self.cum >= self.qty else "1"
        return self._ex("F", status, D(qty), D(px))

    def cancel(self) -> Execution:
        return self._ex("4", "4")


def quote(symbol: str = "AAA", bid: int | str = 10, ask: int | str = 10) -> Quote:
    return Quote(symbol, D(bid), D(ask))
