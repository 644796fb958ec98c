"""A throw-away PostgreSQL cluster for the server tests (initdb + pg_ctl on a free local port),
its fixtures, and a data folder driven through the command line."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.fakes import FakeClock
from therapy_timer import server
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic

DAY = date(2025, 3, 10)
MORNING = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)  # 9:00 in the clinic's US time


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major version), or the override."""
    if "THERAPY_TIMER_PG_BIN" in os.environ:
        return Path(os.environ["THERAPY_TIMER_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def binaries_missing() -> str | None:
    """Why no cluster can be started here, or None when it can."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL server binaries not found in {PG_BIN} (apt install postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: Sequence[str]) -> list[str]:
    # initdb refuses to run as root; the cluster belongs to the postgres user then.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


@dataclass
class Cluster:
    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def psql(self, statement: str, dbname: str = "postgres") -> None:
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(dbname=dbname),
                "-c",
                statement,
            ],
            check=True,
            capture_output=True,
        )


def start_cluster() -> Cluster:
    folder = Path(tempfile.mkdtemp(prefix="tt-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = Cluster(folder, _free_port())
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
                str(cluster.data),
            ]
        ),
        check=True,
        capture_output=True,
    )
    cluster.start()
    return cluster


def remove_cluster(cluster: Cluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.folder, ignore_errors=True)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    missing = binaries_missing()
    if missing:
        pytest.skip(missing)
    started = start_cluster()
    try:
        yield started
    finally:
        remove_cluster(started)


_databases = itertools.count(1)


def next_database() -> str:
    """A database name not used yet on the test cluster."""
    return f"clinic_{next(_databases)}"


class Server:
    """One clinic database on the test cluster, set up by init-server with two workstation
    roles and a desk role."""

    def __init__(self, cluster: Cluster, dbname: str) -> None:
        self.cluster = cluster
        self.dbname = dbname

    def dsn(self, role: str = "postgres") -> str:
        return self.cluster.dsn(user=role, dbname=self.dbname)

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn(), autocommit=True)

    def one(self, query: str, params: Any = None) -> Any:
        with self.admin() as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]


@pytest.fixture(scope="session")
def clinic_template(cluster: Cluster) -> str:
    """A database set up by init-server once; each test gets a copy (a file copy: fast)."""
    cluster.psql("CREATE DATABASE clinic_template")
    made = server.init_server(
        cluster.dsn(dbname="clinic_template"),
        workstations=["ws_room1", "ws_room2"],
        desks=["desk_front"],
    )
    assert made.superuser and made.version == server.LATEST_VERSION
    return "clinic_template"


@pytest.fixture
def clinic_server(
    cluster: Cluster, clinic_template: str, monkeypatch: pytest.MonkeyPatch
) -> Server:
    # The stations' FakeClocks stand in 2025 while the test server's runs today: each station
    # here is one whose clock agrees with the server's, unless a test asks for
    # ``clocks_as_they_are``.
    agree = _agreeing_clock_skew
    monkeypatch.setattr("therapy_timer.server.sync.clock_skew", agree)
    monkeypatch.setattr("therapy_timer.server.clock_skew", agree)
    dbname = next_database()
    with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {dbname} TEMPLATE {clinic_template}")
    return Server(cluster, dbname)


_real_clock_skew = server.clock_skew


def _agreeing_clock_skew(conn: psycopg.Connection[tuple[Any, ...]], now: datetime) -> timedelta:
    _real_clock_skew(conn, now)  # the query still runs, as it does for a real station
    return timedelta(0)


@pytest.fixture
def clocks_as_they_are(clinic_server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """``clinic_server`` whose stations' clocks are compared with the server's as they are."""
    monkeypatch.setattr("therapy_timer.server.sync.clock_skew", _real_clock_skew)
    monkeypatch.setattr("therapy_timer.server.clock_skew", _real_clock_skew)
    return clinic_server


class Station:
    """One data folder driven through the command line, with its own fake clock."""

    def __init__(self, data_dir: Path, clock: FakeClock | None = None) -> None:
        self.data_dir = data_dir
        self.clock = clock or FakeClock(MORNING)
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data_dir, self.clock))
        assert result.exit_code == status, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, status: int = 0) -> Any:
        return json.loads(self(*args, status=status).stdout)

    def treat(self, patient: str, clinician: str, role: str, minutes: dict[str, int]) -> None:
        for code, length in minutes.items():
            self(
                "timer",
                "start",
                code,
                "--patient",
                patient,
                "--clinician",
                clinician,
                "--role",
                role,
            )
            self.clock.advance(minutes=length)
        self("session", "end", "--patient", patient)

    def clinic(self) -> Clinic:
        return Clinic.open(self.data_dir, clock=self.clock)


def two_rooms_and_a_desk(server: Server, folder: Path) -> tuple[Station, Station, Station]:
    """Room 1, room 2 and the desk, each its own data folder connected as its own role."""
    room1, room2, desk = (Station(folder / name) for name in ("room1", "room2", "desk"))
    for station, role in ((room1, "ws_room1"), (room2, "ws_room2"), (desk, "desk_front")):
        station("clinic", "connect", server.dsn(role))
    return room1, room2, desk
