"""A throwaway PostgreSQL cluster for tests: Unix socket only, stopped by its PID.

``initdb`` into a temporary directory, ``pg_ctl start`` with
``listen_addresses=''`` (no TCP at all) and the socket in a private directory,
one database created, a DSN ``postgresql://postgres@/DB?host=SOCKETDIR`` handed
out, and ``pg_ctl stop -m fast`` at the end. As root (``initdb`` refuses to run
as root) the tools and the server run as the ``postgres`` OS user via
``runuser``, in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BINARIES = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here (binaries or the OS user missing)."""


class PostgresError(RuntimeError):
    """The throwaway cluster failed to start or answer."""


def find_binaries() -> dict[str, str]:
    """Return the paths of initdb, pg_ctl and postgres; raise PostgresUnavailable."""
    found: dict[str, str] = {}
    extra = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    search = os.pathsep.join([os.environ.get("PATH", ""), *map(str, extra)])
    for name in PG_BINARIES:
        path = shutil.which(name, path=search)
        if path is None:
            raise PostgresUnavailable(f"{name} not found in PATH or /usr/lib/postgresql/*/bin")
        found[name] = path
    return found


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    try:
        find_binaries()
    except PostgresUnavailable as exc:
        return str(exc)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run the server"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@dataclass
class PostgresCluster:
    """A running throwaway cluster."""

    base_dir: Path
    data_dir: Path
    socket_dir: Path
    dbname: str
    pid: int
    user: str = "postgres"

    @property
    def dsn(self) -> str:
        """libpq URI of the test database over the Unix socket."""
        return f"postgresql://{self.user}@/{self.dbname}?host={self.socket_dir}"

    def dsn_for(self, dbname: str) -> str:
        """libpq URI of another database of this cluster."""
        return f"postgresql://{self.user}@/{dbname}?host={self.socket_dir}"


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        _as_postgres(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise PostgresError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _read_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, ValueError, IndexError):
        return None


def start_cluster(dbname: str = "refapp", base_dir: str | None = None) -> PostgresCluster:
    """Create, start and return a cluster with database ``dbname``."""
    reason = unavailable_reason()
    if reason:
        raise PostgresUnavailable(reason)
    bins = find_binaries()
    base = Path(tempfile.mkdtemp(prefix="tradeops-pg-", dir=base_dir))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o700)
    try:
        _run(
            [
                bins["initdb"],
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            "initdb",
        )
        options = (
            f"-k {sock} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=50"
        )
        _run(
            [
                bins["pg_ctl"],
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            "pg_ctl start",
            timeout=START_TIMEOUT_S + 30,
        )
        pid = _read_pid(data)
        if pid is None:
            raise PostgresError("server started but postmaster.pid is unreadable")
        cluster = PostgresCluster(base, data, sock, dbname, pid)
        create_database(cluster, dbname)
        return cluster
    except BaseException:
        _stop_and_remove(data, base, bins)
        raise


def create_database(cluster: PostgresCluster, dbname: str) -> None:
    """Create ``dbname`` in ``cluster`` (through psycopg, over the socket)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _stop_and_remove(data: Path, base: Path, bins: dict[str, str]) -> None:
    pid = _read_pid(data)
    if pid is not None:
        with contextlib.suppress(Exception):
            _run([bins["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], "stop")
        # If pg_ctl could not stop it, stop the postmaster we started, by its PID.
        if _pid_alive(pid) and _read_pid(data) == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
    shutil.rmtree(base, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_cluster(cluster: PostgresCluster) -> None:
    """Stop the cluster (``pg_ctl stop -m fast``) and remove its files."""
    _stop_and_remove(cluster.data_dir, cluster.base_dir, find_binaries())


@contextlib.contextmanager
def postgres_cluster(dbname: str = "refapp") -> Iterator[PostgresCluster]:
    """Run a throwaway cluster for the duration of the ``with`` block."""
    cluster = start_cluster(dbname)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
