"""The local PostgreSQL: Debian's server (or any ``pg_ctl`` on PATH) on loopback.

Used only when ``WCS_AUDIT_DATABASE_URL`` is not set. The cluster lives under
``<state_dir>/postgres`` and survives restarts; it trusts loopback connections of the
``wcs_audit`` role, so it is for a developer's machine and CI, not for production.
As root, the server runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from wcs_audit.settings import Settings
from wcs_audit.stack.process import StackError, tail

ROLE = "wcs_audit"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class PostgresPaths:
    """Where the local cluster's data, sockets and log live."""

    home: Path

    @classmethod
    def of(cls, settings: Settings) -> PostgresPaths:
        return cls(home=settings.state_dir / "postgres")

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def sockets(self) -> Path:
        return self.home / "run"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"


def libpq_conninfo(url: str, dbname: str | None = None) -> str:
    """Turns a SQLAlchemy URL into a libpq connection string, optionally for another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if dbname is not None:
        parsed = parsed.set(database=dbname)
    return parsed.render_as_string(hide_password=False)


def find_bindir() -> Path | None:
    """The directory of the newest PostgreSQL server binaries, or None if there are none."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve()))
    return Path(candidates[0]).parent if candidates else None


def install_server() -> Path:
    """Installs Debian's PostgreSQL server (Debian and root only); returns its bindir."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            "no PostgreSQL server found: install one (Debian: apt-get install postgresql) "
            "or set WCS_AUDIT_DATABASE_URL to a server you run"
        )
    print("stack: installing Debian's postgresql …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed:\n{tail(result.stdout + result.stderr)}")
    bindir = find_bindir()
    if bindir is None:
        raise StackError("apt-get installed postgresql but no pg_ctl was found")
    return bindir


def as_server_user(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root, as ourselves otherwise."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


def run_server_tool(argv: Sequence[str]) -> None:
    """Runs a PostgreSQL tool; raises :class:`StackError` with its output if it fails."""
    result = subprocess.run(as_server_user(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{Path(argv[0]).name} failed:\n{tail(result.stdout + result.stderr)}")


def prepare_dirs(paths: PostgresPaths) -> None:
    """Creates the cluster's directories, owned by the server's user."""
    for directory in (paths.home, paths.sockets):
        directory.mkdir(parents=True, exist_ok=True)
    paths.log.touch()
    if os.geteuid() == 0:
        shutil.chown(paths.home, "postgres", "postgres")
        shutil.chown(paths.sockets, "postgres", "postgres")
        shutil.chown(paths.log, "postgres", "postgres")


def init_cluster(bindir: Path, paths: PostgresPaths) -> None:
    """Runs initdb once; a cluster that exists is kept."""
    if (paths.data / "PG_VERSION").exists():
        return
    run_server_tool(
        [
            str(bindir / "initdb"),
            "-D",
            str(paths.data),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
    )


def accepts_connections(url: str, dbname: str = "postgres") -> bool:
    """True when the server behind ``url`` accepts a connection to ``dbname`` within 2 s."""
    try:
        psycopg.connect(libpq_conninfo(url, dbname), connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def start_postgres(settings: Settings, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
    """Starts the local server unless it already answers, then creates the database if missing.

    Blocks until the server accepts connections (``pg_ctl -w``).
    """
    if not accepts_connections(settings.database_url):
        bindir = find_bindir() or install_server()
        paths = PostgresPaths.of(settings)
        if server_running(bindir, paths):  # slow to answer, not gone: never start it twice
            wait_for_connections(settings.database_url, ready_timeout_s, paths.log)
            create_database(settings.database_url)
            return
        prepare_dirs(paths)
        init_cluster(bindir, paths)
        # track_commit_timestamp: when each row became visible, which bench.projector_lag
        # reads to measure every hook's lag exactly (a few bytes per transaction).
        # shared_buffers and max_wal_size: the projector writes every hook into indexed
        # tables; with the defaults (128 MB, 1 GB) its backends evicted dirty pages themselves
        # and a bench.projector run forced two checkpoints. Larger, it projected 3-7 % more
        # events per second in 4 of 4 alternating runs.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {settings.postgres_port} "
            f"-c unix_socket_directories={paths.sockets} -c max_connections=200 "
            "-c track_commit_timestamp=on -c shared_buffers=1GB -c max_wal_size=4GB"
        )
        run_server_tool(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(paths.data),
                "-l",
                str(paths.log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
    create_database(settings.database_url)


def server_running(bindir: Path, paths: PostgresPaths) -> bool:
    """True when ``pg_ctl status`` finds a live server on the cluster's data directory."""
    if not (paths.data / "postmaster.pid").exists():
        return False
    status = [str(bindir / "pg_ctl"), "-D", str(paths.data), "status"]
    return subprocess.run(as_server_user(status), capture_output=True, check=False).returncode == 0


def wait_for_connections(url: str, timeout_s: float, log: Path) -> None:
    """Polls until the server accepts connections; raises :class:`StackError` with its log."""
    deadline = time.monotonic() + timeout_s
    while not accepts_connections(url):
        if time.monotonic() > deadline:
            raise StackError(
                f"PostgreSQL runs but refused connections for {timeout_s:.0f}s; {log}:\n"
                f"{tail(log.read_text())}"
            )
        time.sleep(0.5)


def create_database(url: str) -> None:
    """Creates the database named in ``url`` if it does not exist (needs CREATEDB)."""
    name = make_url(url).database
    assert name, "the database URL must name a database"
    with psycopg.connect(libpq_conninfo(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    """Drops the database named in ``url`` (closing its connections); absent is fine."""
    name = make_url(url).database
    assert name, "the database URL must name a database"
    with psycopg.connect(libpq_conninfo(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def stop_postgres(settings: Settings) -> bool:
    """Stops the local server (fast shutdown); False when it was not running."""
    paths = PostgresPaths.of(settings)
    bindir = find_bindir()
    if bindir is None or not (paths.data / "postmaster.pid").exists():
        return False
    run_server_tool([str(bindir / "pg_ctl"), "-D", str(paths.data), "-m", "fast", "-w", "stop"])
    return True


def postgres_running(settings: Settings) -> bool:
    """True when the local (or configured) server accepts connections."""
    return accepts_connections(settings.database_url)
