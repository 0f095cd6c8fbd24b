"""Price processes of the simulator: seeded random walk, or replay of a CSV of ticks.

A process yields one :class:`Tick` (top of book and last trade) per call of
:meth:`next_tick`. The random walk is reproducible: the same seed and symbol
give the same ticks in any process (the per-symbol seed is derived with
SHA-256, not Python's salted ``hash``).
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

from tradeops.sim.config import SymbolConfig


@dataclass(frozen=True, slots=True)
class Tick:
    """Top of book and last trade of one symbol."""

    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_size: Decimal
    ask_size: Decimal

    @property
    def mid(self) -> Decimal:
        """Mid price."""
        return (self.bid + self.ask) / 2


class PriceProcess(Protocol):
    """What the market needs from a price process."""

    def current(self) -> Tick:
        """The last tick produced."""

    def next_tick(self) -> Tick:
        """Advance one step and return the new tick."""

    def jump(self, pct: Decimal | None = None, absolute: Decimal | None = None) -> Tick:
        """Move the price by ``pct`` percent of the mid or by ``absolute``; return the tick."""


def derive_seed(seed: int, symbol: str) -> int:
    """A per-symbol seed that is stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _jump_delta(mid: Decimal, pct: Decimal | None, absolute: Decimal | None) -> Decimal:
    if (pct is None) == (absolute is None):
        raise ValueError("give exactly one of pct and absolute")
    if pct is not None:
        return mid * pct / Decimal(100)
    assert absolute is not None
    return absolute


class RandomWalk:
    """Mid moves by a rounded Gaussian number of ticks per step; constant spread."""

    def __init__(self, cfg: SymbolConfig, seed: int) -> None:
        self.cfg = cfg
        self._rng = random.Random(derive_seed(seed, cfg.symbol))
        start = (cfg.price / cfg.tick_size).to_integral_value(ROUND_HALF_EVEN)
        self._bid_ticks = max(1, int(start) - cfg.spread_ticks // 2)
        self._last_ticks = self._bid_ticks
        self._tick = self._make()

    def _make(self) -> Tick:
        ts = self.cfg.tick_size
        return Tick(
            bid=self._bid_ticks * ts,
            ask=(self._bid_ticks + self.cfg.spread_ticks) * ts,
            last=self._last_ticks * ts,
            bid_size=self.cfg.size,
            ask_size=self.cfg.size,
        )

    def current(self) -> Tick:
        """The last tick produced."""
        return self._tick

    def next_tick(self) -> Tick:
        """Advance one step."""
        vol = self.cfg.volatility_ticks
        step = round(self._rng.gauss(0.0, vol)) if vol > 0 else 0
        self._bid_ticks = max(1, self._bid_ticks + step)
        at_ask = self._rng.random() < 0.5
        self._last_ticks = self._bid_ticks + (self.cfg.spread_ticks if at_ask else 0)
        self._tick = self._make()
        return self._tick

    def jump(self, pct: Decimal | None = None, absolute: Decimal | None = None) -> Tick:
        """Shift the price; the walk continues from the new level."""
        delta = _jump_delta(self._tick.mid, pct, absolute)
        ticks = int((delta / self.cfg.tick_size).to_integral_value(ROUND_HALF_EVEN))
        self._bid_ticks = max(1, self._bid_ticks + ticks)
        self._last_ticks = max(1, self._last_ticks + ticks)
        self._tick = self._make()
        return self._tick


class CsvReplay:
    """Replay ticks from a CSV file.

    The header must name ``bid`` and ``ask``, optionally ``last``, ``bid_size`` and
    ``ask_size`` (other columns such as ``ts`` are ignored). At the end it starts
    again (``csv_loop``) or keeps the last row. A jump shifts every later tick.
    """

    def __init__(self, cfg: SymbolConfig) -> None:
        assert cfg.csv is not None
        self.cfg = cfg
        self._rows = load_ticks(Path(cfg.csv), cfg.size)
        self._i = 0
        self._offset = Decimal(0)
        self._tick = self._shifted(self._rows[0])

    def _shifted(self, t: Tick) -> Tick:
        o = self._offset
        return Tick(t.bid + o, t.ask + o, t.last + o, t.bid_size, t.ask_size)

    def current(self) -> Tick:
        """The last tick produced."""
        return self._tick

    def next_tick(self) -> Tick:
        """Next row of the file."""
        self._i += 1
        if self._i >= len(self._rows):
            self._i = 0 if self.cfg.csv_loop else len(self._rows) - 1
        self._tick = self._shifted(self._rows[self._i])
        return self._tick

    def jump(self, pct: Decimal | None = None, absolute: Decimal | None = None) -> Tick:
        """Shift this and every later tick."""
        delta = _jump_delta(self._tick.mid, pct, absolute)
        delta = (delta / self.cfg.tick_size).to_integral_value(ROUND_HALF_EVEN) * self.cfg.tick_size
        self._offset += delta
        self._tick = self._shifted(self._rows[self._i])
        return self._tick


def load_ticks(path: Path, default_size: Decimal) -> list[Tick]:
    """Read a tick CSV; raise ValueError naming the line on bad data."""
    rows: list[Tick] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if not {"bid", "ask"} <= fields:
            raise ValueError(f"{path}: header must have bid and ask columns")
        for n, row in enumerate(reader, start=2):
            try:
                bid = Decimal(row["bid"])
                ask = Decimal(row["ask"])
                last = Decimal(row["last"]) if row.get("last") else (bid + ask) / 2
                bid_size = Decimal(row["bid_size"]) if row.get("bid_size") else default_size
                ask_size = Decimal(row["ask_size"]) if row.get("ask_size") else default_size
            except (InvalidOperation, TypeError):
                raise ValueError(f"{path}:{n}: not a number") from None
            if bid <= 0 or ask < bid:
                raise ValueError(f"{path}:{n}: need 0 < bid <= ask")
            rows.append(Tick(bid, ask, last, bid_size, ask_size))
    if not rows:
        raise ValueError(f"{path}: no ticks")
    return rows


def make_process(cfg: SymbolConfig, seed: int) -> PriceProcess:
    """The process configured for ``cfg``: CSV replay if ``csv`` is set, else a random walk."""
    if cfg.csv:
        return CsvReplay(cfg)
    return RandomWalk(cfg, seed)
