"""The trading-state file across versions: the oldest supported strategy reader and the newest.

The oldest supported reader is the one in releases built by tradeops 0.1.0
(commit ``OLDEST``): its ``tradeops.tradingstate`` ships inside every release
built then. The test rebuilds such a release from this repository's history,
runs its reader in a process of its own (only the release's ``site/`` on the
path, as the launcher runs it), and checks it against files written by the
newest writer, by a future minor version, and by a future major version; and
the newest reader against a file written by that release's own writer.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.ci import unavailable
from tradeops import tradingstate as ts

REPO = Path(__file__).resolve().parents[2]
OLDEST = "6a908a2"  # tradeops 0.1.0: the first library whose releases read the state file

READ = """
import json, sys
from tradeops.tradingstate import TradingStateReader, read_state
path = sys.argv[1]
once = read_state(path)
reader = TradingStateReader(path)
mapped = reader.record()
reader.close()
module = sys.modules["tradeops.tradingstate"].__file__
print(json.dumps({"read": once.as_dict(), "mapped": mapped.as_dict(), "module": module}))
"""

WRITE = """
import sys
from tradeops.tradingstate import write_state
write_state(sys.argv[1], sys.argv[2], reason=sys.argv[3], who=sys.argv[4])
"""


def _old_source(base: Path) -> Path:
    """The oldest supported library's source tree, from git."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", OLDEST, "src/tradeops", "pyproject.toml"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        unavailable(f"cannot read commit {OLDEST} from git: {archive.stderr.decode()[-200:]}")
    base.mkdir()
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    return base / "src"


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release built by tradeops 0.1.0's own builder, unpacked: its ``site/`` directory."""
    work = tmp_path_factory.mktemp("oldest")
    src = _old_source(work / "source")
    build = (
        "import sys; from pathlib import Path; "
        "from tradeops.releases.artifact import build_artifact; "
        "print(build_artifact('0.1.0', Path(sys.argv[1])).path)"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    made = subprocess.run(
        [sys.executable, "-c", build, str(work / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    unpacked = work / "release"
    with tarfile.open(made.stdout.strip()) as tar:
        tar.extractall(unpacked, filter="data")
    assert (unpacked / "site" / "tradeops" / "tradingstate.py").is_file()
    return unpacked / "site"


def run_in_release(site: Path, script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(site)!r})\n{script}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def old_reads(site: Path, path: Path) -> dict[str, Any]:
    seen = json.loads(run_in_release(site, READ, str(path)))
    assert seen["module"].startswith(str(site)), "the release's own reader must run"
    assert seen["read"] == seen["mapped"]
    return dict(seen["read"])


def rewrite(path: Path, offset: int, value: bytes, extra: bytes = b"") -> None:
    """Change bytes of a valid record and recompute its CRC (a well-formed other version)."""
    raw = bytearray(path.read_bytes()[: ts.RECORD_SIZE])
    raw[offset : offset + len(value)] = value
    head = bytearray(raw[:60])
    head[ts.SUPERSEDED_OFFSET] = 0
    raw[60:64] = struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw) + extra)


@pytest.mark.parametrize("state", list(ts.TradingState))
def test_the_oldest_release_reads_the_newest_writers_file(
    old_release: Path, tmp_path: Path, state: ts.TradingState
) -> None:
    path = tmp_path / "trading_state"
    ts.write_state(path, ts.TradingState.HALTED, reason="boot", who="host-role")
    written = ts.write_state(path, state, reason="MANUAL: drill", who="alice")
    seen = old_reads(old_release, path)
    assert seen["error"] is None
    assert seen["state"] == state.name
    assert (seen["generation"], seen["who"], seen["reason"]) == (2, "alice", "MANUAL: drill")
    assert seen["updated_ns"] == written.updated_ns


def test_the_oldest_release_reads_a_future_minor_version(old_release: Path, tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    ts.write_state(path, ts.TradingState.REDUCING, reason="DRAWDOWN", who="agent")
    # Minor 7, with 64 bytes of fields the old reader has never heard of.
    rewrite(path, ts.MINOR_OFFSET, b"\x07", extra=b"\xa5" * 64)
    seen = old_reads(old_release, path)
    assert (seen["state"], seen["error"], seen["reason"]) == ("REDUCING", None, "DRAWDOWN")
    newest = ts.read_state(path)
    assert (newest.state, newest.error, newest.format_minor) == (ts.TradingState.REDUCING, None, 7)


def test_a_future_major_version_fails_closed_in_the_oldest_and_the_newest(
    old_release: Path, tmp_path: Path
) -> None:
    path = tmp_path / "trading_state"
    ts.write_state(path, ts.TradingState.ACTIVE, reason="reset", who="alice")
    rewrite(path, 4, bytes([ts.FORMAT_VERSION + 1]))
    seen = old_reads(old_release, path)
    assert seen["state"] == "HALTED"
    assert "format version" in seen["error"]
    newest = ts.read_state(path)
    assert newest.state is ts.TradingState.HALTED
    assert newest.error is not None


def test_a_corrupt_file_fails_closed_in_the_oldest_release(
    old_release: Path, tmp_path: Path
) -> None:
    path = tmp_path / "trading_state"
    ts.write_state(path, ts.TradingState.ACTIVE)
    raw = bytearray(path.read_bytes())
    raw[30] ^= 0xFF  # in "who", under the CRC
    path.write_bytes(bytes(raw))
    seen = old_reads(old_release, path)
    assert (seen["state"], seen["error"]) == ("HALTED", "checksum mismatch")


def test_the_newest_reader_reads_the_oldest_writers_file(old_release: Path, tmp_path: Path) -> None:
    path = tmp_path / "trading_state"
    run_in_release(old_release, WRITE, str(path), "REDUCING", "MANUAL", "bob")
    record = ts.read_state(path)
    assert (record.state, record.error) == (ts.TradingState.REDUCING, None)
    assert (record.generation, record.who, record.reason) == (1, "bob", "MANUAL")
    assert record.format_minor == 0
    reader = ts.TradingStateReader(path)
    try:
        assert reader.current() is ts.TradingState.REDUCING
    finally:
        reader.close()
