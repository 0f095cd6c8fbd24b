"""Cost of one drop-copy Execution through the agent's book and every breaker.

Prints the median, p99 and max in microseconds over N events (default 100,000):
a mix of acks, partial fills and cancels on 50 symbols, with a quote between
executions (quotes are not timed). Writes nothing; run it with

    .venv/bin/python bench/bench_breakers.py [N]
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal

from tradeops.agent.breakerconfig import breakers_config_from_dict
from tradeops.agent.breakers import BreakerSet
from tradeops.brokers.base import Execution, Quote, Side

D = Decimal


def events(n: int) -> list[Execution]:
    """N executions: each order gets New, two partial fills, then a cancel."""
    out: list[Execution] = []
    i = 0
    while len(out) < n:
        sym, side = f"S{i % 50:02d}", Side.BUY if i % 2 else Side.SELL
        qty, px = D(100), D(100) + D(i % 7) / 10
        common = dict(order_id=f"O{i}", cl_ord_id=f"C{i}", orig_cl_ord_id=None, symbol=sym,
                      side=side, order_qty=qty, price=px)  # fmt: skip
        out.append(Execution(exec_id=f"N{i}", exec_type="0", ord_status="0", last_qty=D(0),
                             last_px=D(0), cum_qty=D(0), leaves_qty=qty, **common))  # fmt: skip
        for k in (1, 2):
            out.append(Execution(exec_id=f"F{i}.{k}", exec_type="F", ord_status="1",
                                 last_qty=D(10), last_px=px, cum_qty=D(10 * k),
                                 leaves_qty=qty - 10 * k, **common))  # fmt: skip
        out.append(Execution(exec_id=f"X{i}", exec_type="4", ord_status="4", last_qty=D(0),
                             last_px=D(0), cum_qty=D(20), leaves_qty=D(0), **common))  # fmt: skip
        i += 1
    return out[:n]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    # Limits loose enough that nothing trips: the steady path, every breaker computing.
    cfg = breakers_config_from_dict(
        {
            "version": 1,
            "daily_loss": {"max_loss": 10**9},
            "drawdown": {"max_drawdown": 10**9},
            "exposure": {"max_symbol_notional": 10**9, "max_total_notional": 10**10},
            "msg_rate": {"max_messages": 10**6, "max_new_orders": 10**6},
            "child_qty": {"default_intended_qty": 10**9},
        }
    )
    bs = BreakerSet(cfg, 0.0, error_count=lambda: 0)
    bs.book.heartbeat("blue", 0.0)
    execs = events(n)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for k, ex in enumerate(execs):
        now = k * 1e-3  # 1,000 events a second of simulated time
        bs.on_event(Quote(ex.symbol, D(99), D(101)), now)
        bs.book.heartbeat("blue", now)
        t0 = clock()
        bs.on_event(ex, now)
        samples.append(clock() - t0)
    samples.sort()
    med, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    tripped = [s.name for s in bs.status() if s.arm != "armed"]
    print(
        f"book + {len(bs.breakers)} breakers, n={n}: "
        f"p50 {med / 1000:.1f} us, p99 {p99 / 1000:.1f} us, max {samples[-1] / 1000:.1f} us"
        f" (tripped: {', '.join(tripped) or 'none'})"
    )


if __name__ == "__main__":
    main()
