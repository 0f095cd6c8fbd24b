"""Fault modes: the refapp misbehaving on purpose, for tests and demos.

``fault_mode`` in the config picks one (``fault:`` holds its parameters):

- ``runaway``: instead of quoting, a storm of marketable buys that ignores fills
  and position limits (Knight's Power Peg) -- still subject to the host trading
  state, unless ``fault.ignore_trading_state``: then it is Knight's revived dead
  code, which checks nothing, and only something outside the process (the
  kill-switch agent: its breakers, SIGSTOP, the mass cancel) can stop it.
- ``crash``: exit with ``exit_code`` after ``after_s`` seconds or ``after_orders``
  orders, without any cleanup.
- ``hang``: after ``after_s`` seconds block the event loop for good (``/healthz``
  stops answering, SIGTERM is not handled).
- ``slow``: wait ``delay_ms`` before each order.
- ``fat_finger``: ``after_s`` seconds after activation, one marketable order of
  ``size * multiplier`` (past the position limit and the order-size cap, not past
  the trading state).
- ``reject_storm``: instead of quoting, orders the venue rejects, ``rate_per_s``.

Every order of every mode goes through ``RefApp.place``, so the trading-state
check is never skipped, except by ``runaway`` with ``ignore_trading_state``.
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from tradeops.brokers.base import Side

if TYPE_CHECKING:
    from tradeops_refapp.app import RefApp

# A symbol no venue lists: orders in it are rejected.
INVALID_SYMBOL = "ZZZ-INVALID"


def quotes_normally(app: RefApp) -> bool:
    """Return False for the modes that replace quoting with their own orders."""
    return app.cfg.fault_mode not in ("runaway", "reject_storm")


def start(app: RefApp) -> asyncio.Task[None] | None:
    """Start the task of the configured fault mode, if it has one."""
    runner = {
        "runaway": _runaway,
        "crash": _crash_timer,
        "hang": _hang,
        "fat_finger": _fat_finger,
        "reject_storm": _reject_storm,
    }.get(app.cfg.fault_mode)
    if runner is None:
        return None
    app.log.event("fault_mode_armed", fault_mode=app.cfg.fault_mode)
    return asyncio.create_task(runner(app), name=f"fault:{app.cfg.fault_mode}")


def after_order(app: RefApp) -> None:
    """Count an order sent: ``crash`` exits after ``after_orders`` orders."""
    limit = app.cfg.fault.after_orders
    if app.cfg.fault_mode == "crash" and limit and app.orders_sent >= limit:
        _crash(app, f"{app.orders_sent} orders sent")


def _crash(app: RefApp, why: str) -> None:
    app.log.event("fault_crash", why=why, exit_code=app.cfg.fault.exit_code)
    os._exit(app.cfg.fault.exit_code)


async def _crash_timer(app: RefApp) -> None:
    if app.cfg.fault.after_s <= 0 and app.cfg.fault.after_orders:
        return  # crash by order count only
    await asyncio.sleep(app.cfg.fault.after_s)
    _crash(app, f"{app.cfg.fault.after_s}s elapsed")


async def _hang(app: RefApp) -> None:
    await asyncio.sleep(app.cfg.fault.after_s)
    app.log.event("fault_hang", after_s=app.cfg.fault.after_s)
    while True:
        time.sleep(3600)  # blocks the event loop on purpose


def _trading(app: RefApp) -> bool:
    return app.mode == "active" and app.logged_on


def _marketable_buy_price(app: RefApp, symbol: str) -> Decimal | None:
    quote = app.quotes.get(symbol)
    if quote is None:
        return None
    if quote.ask is not None and quote.ask > 0:
        return quote.ask
    return quote.last if quote.last is not None and quote.last > 0 else None


async def _runaway(app: RefApp) -> None:
    period = 1.0 / app.cfg.fault.rate_per_s
    sent = 0
    i = 0
    while True:
        await asyncio.sleep(period)
        if not _trading(app):
            continue
        symbol = app.cfg.symbols[i % len(app.cfg.symbols)]
        i += 1
        price = _marketable_buy_price(app, symbol)
        if price is None:
            continue
        order = await app.place(
            symbol,
            Side.BUY,
            app.cfg.quoting.size,
            price,
            purpose="runaway",
            enforce_limit=False,
            check_state=not app.cfg.fault.ignore_trading_state,
        )
        if order is not None:
            sent += 1
        if app.cfg.fault.max_orders and sent >= app.cfg.fault.max_orders:
            app.log.event("fault_runaway_done", orders=sent)
            return


async def _fat_finger(app: RefApp) -> None:
    symbol = app.cfg.symbols[0]
    deadline: float | None = None
    while True:
        await asyncio.sleep(0.1)
        if not _trading(app):
            deadline = None
            continue
        if deadline is None:
            deadline = time.monotonic() + app.cfg.fault.after_s
        price = _marketable_buy_price(app, symbol)
        if time.monotonic() < deadline or price is None:
            continue
        qty = app.cfg.quoting.size * app.cfg.fault.multiplier
        app.log.event("fault_fat_finger", symbol=symbol, qty=str(qty), price=str(price))
        await app.place(symbol, Side.BUY, qty, price, purpose="fat_finger", enforce_limit=False)
        return


async def _reject_storm(app: RefApp) -> None:
    period = 1.0 / app.cfg.fault.rate_per_s
    sent = 0
    while True:
        await asyncio.sleep(period)
        if not _trading(app):
            continue
        order = await app.place(
            INVALID_SYMBOL,
            Side.BUY,
            app.cfg.quoting.size,
            Decimal(1),
            purpose="reject_storm",
            enforce_limit=False,
        )
        if order is not None:
            sent += 1
        if app.cfg.fault.max_orders and sent >= app.cfg.fault.max_orders:
            app.log.event("fault_reject_storm_done", orders=sent)
            return
