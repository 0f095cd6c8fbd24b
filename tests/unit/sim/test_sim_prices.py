from __future__ import annotations

from decimal import Decimal as D  # noqa: N817

import pytest

from tradeops.sim.config import SymbolConfig
from tradeops.sim.prices import CsvReplay, RandomWalk, derive_seed, load_ticks, make_process

SYM = SymbolConfig("ESZ5", D(5000), tick_size=D("0.25"), spread_ticks=2, volatility_ticks=1.5)


def _path(proc, n=200):
    return [proc.next_tick() for _tick in range(n)]


def test_random_walk_is_reproducible_with_a_seed():
    assert _path(RandomWalk(SYM, 42)) == _path(RandomWalk(SYM, 42))
    assert _path(RandomWalk(SYM, 42)) != _path(RandomWalk(SYM, 43))
    other = SymbolConfig("NQZ5", D(5000), tick_size=D("0.25"), spread_ticks=2, volatility_ticks=1.5)
    assert _path(RandomWalk(SYM, 42)) != _path(RandomWalk(other, 42))


def test_seed_derivation_is_stable_across_processes():
    # a literal: Python's salted hash() would change between runs
    assert derive_seed(42, "ESZ5") == int.from_bytes(
        __import__("hashlib").sha256(b"42:ESZ5").digest()[:8], "big"
    )


def test_random_walk_ticks_are_on_the_grid_with_constant_spread():
    for t in _path(RandomWalk(SYM, 1), 500):
        assert t.ask - t.bid == D("0.5")
        assert (t.bid / D("0.25")) % 1 == 0
        assert t.last in (t.bid, t.ask)
        assert t.bid > 0


def test_jump_percent_and_absolute():
    flat = SymbolConfig("X", D(100), tick_size=D("0.25"), spread_ticks=1, volatility_ticks=0)
    walk = RandomWalk(flat, 1)
    assert walk.current().bid == D(100)
    assert walk.jump(pct=D(10)).bid == D("110")
    assert walk.next_tick().bid == D("110")  # the walk continues from there
    assert walk.jump(absolute=D("-5.1")).bid == D("105")  # rounded to the tick
    with pytest.raises(ValueError, match="exactly one"):
        walk.jump()


def test_csv_replay_loops_and_jumps(tmp_path):
    path = tmp_path / "ticks.csv"
    path.write_text("ts,bid,ask,last\n1,10,10.5,10\n2,11,11.5,\n3,12,12.5,12.5\n", encoding="utf-8")
    cfg = SymbolConfig("X", D(1), tick_size=D("0.5"), csv=str(path))
    proc = make_process(cfg, 0)
    assert isinstance(proc, CsvReplay)
    assert proc.current().bid == 10
    seq = [proc.next_tick().bid for _tick in range(4)]
    assert seq == [11, 12, 10, 11]
    assert proc.current().last == D("11.25")  # mid when last is empty
    assert proc.jump(absolute=D(2)).bid == 13
    assert proc.next_tick().bid == 14
    no_loop = CsvReplay(SymbolConfig("X", D(1), csv=str(path), csv_loop=False))
    assert [no_loop.next_tick().bid for _tick in range(4)] == [11, 12, 12, 12]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("price\n1\n", "bid and ask"),
        ("bid,ask\n1,x\n", ":2: not a number"),
        ("bid,ask\n2,1\n", "0 < bid <= ask"),
        ("bid,ask\n", "no ticks"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, content, error):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        load_ticks(path, D(1))
