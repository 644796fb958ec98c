"""SQLite's POSIX locks survive: our code never opens or closes a descriptor on a live file.

Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's too
(https://www.sqlite.org/howtocorrupt.html section 2.2); another process may then reset the
-shm or the -wal under a connection that believes it holds them: SIGBUS, "locking protocol",
lost commits.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from therapy_timer.codes import Discipline, Role
from therapy_timer.store import Store, database_path, restore

ROOT = Path(__file__).resolve().parent.parent
LIVE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def new_session(store: Store, ref: str) -> str:
    return store.create_session(
        date_of_service=date(2025, 3, 10),
        patient_ref=ref,
        clinician="Pat Lee",
        role=Role.PT,
        discipline=Discipline.PT,
        payer_profile="Medicare",
    ).id


@pytest.fixture
def descriptor_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """Every open/close of a descriptor on a live file of the database under tmp_path/data."""
    live = {os.path.realpath(f"{database_path(tmp_path / 'data')}{s}") for s in LIVE_SUFFIXES}
    log: list[str] = []
    real_open, real_close, real_builtin_open = os.open, os.close, builtins.open

    def fd_path(fd: int) -> str:
        try:
            return os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return ""

    def logged_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if isinstance(path, str | Path) and os.path.realpath(path) in live:
            log.append(f"os.open {path}")
        return real_open(path, *args, **kwargs)

    def logged_close(fd: int) -> None:
        if fd_path(fd) in live:
            log.append(f"os.close {fd_path(fd)}")
        real_close(fd)

    def logged_builtin_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path) and os.path.realpath(file) in live:
            log.append(f"open {file}")
        return real_builtin_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", logged_open)
    monkeypatch.setattr(os, "close", logged_close)
    monkeypatch.setattr(builtins, "open", logged_builtin_open)
    yield log


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_no_descriptor_of_a_live_file_is_opened_or_closed(
    tmp_path: Path, descriptor_log: list[str]
) -> None:
    data = tmp_path / "data"
    clock = FakeClock()
    with Store.open(data, clock=clock) as window:
        new_session(window, "A1")
        # Everything a second window or command does while the first one is open.
        with Store.open(data, clock=clock) as command:
            new_session(command, "A2")
            command.write_heartbeat()
            backup = command.daily_backup()
            assert backup is not None
            command.backup(tmp_path / "copy.sqlite3")
        with Store.open(data, clock=clock, read_only=True) as reader:
            assert len(reader.list_sessions()) == 2
        restore(backup, data_dir=data, clock=clock)
        assert len(window.list_sessions()) == 2
    assert descriptor_log == []


def test_loose_modes_of_live_files_are_tightened_by_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = FakeClock()
    with Store.open(data, clock=clock) as store:
        new_session(store, "A1")
        names = [Path(f"{store.path}{s}") for s in ("", "-wal", "-shm")]
        for name in names:
            name.chmod(0o644)
        with Store.open(data, clock=clock):
            assert [oct(n.stat().st_mode & 0o777) for n in names] == ["0o600"] * 3


# ------------------------------------------------------------------------------- stress

PROCESSES = 8
TRANSACTIONS = 30

# Each worker keeps one Store open (a window) and, for every transaction, opens and closes a
# second one (a command) in the same process: the pattern that lost the window's locks.
_WORKER = """
import sys
from datetime import date
from pathlib import Path
from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, Role
from therapy_timer.store import Store

data, worker, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
window = Store.open(data, clock=SystemClock(), busy_timeout_ms=60_000)
print("ready", flush=True)
sys.stdin.readline()
for i in range(rounds):
    with Store.open(data, clock=SystemClock(), busy_timeout_ms=60_000) as command:
        session = command.create_session(
            date_of_service=date(2025, 3, 10), patient_ref=f"W{worker}T{i}",
            clinician=f"C{worker}", role=Role.PT, discipline=Discipline.PT,
            payer_profile="Medicare")
        print("session", session.id, flush=True)
    window.close_session(session.id)
    print("closed", session.id, flush=True)
    entry = window.record_event("stress", entity="stress", entity_id=f"{worker}-{i}")
    print("event", entry.id, flush=True)
window.close()
print("done", flush=True)
"""


def run_stress(data: Path, processes: int, transactions: int) -> dict[str, Any]:
    """Run the workers at once; what they reported, how they ended, what the file holds."""
    Store.open(data, clock=FakeClock()).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(data), str(w), str(transactions)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for worker in workers:  # all at once
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outs = [worker.communicate(timeout=300) for worker in workers]
    reported = [line.split() for out, _ in outs for line in out.splitlines()]
    conn = sqlite3.connect(database_path(data))
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        sessions = dict(conn.execute("SELECT id, status FROM sessions").fetchall())
        events = {r[0] for r in conn.execute("SELECT id FROM audit_log WHERE action = 'stress'")}
    finally:
        conn.close()
    return {
        "seconds": time.monotonic() - started,
        "returncodes": [w.returncode for w in workers],
        "signals": sum(1 for w in workers if w.returncode < 0),
        "tracebacks": sum(err.count("Traceback") for _, err in outs),
        "stderr": "".join(err for _, err in outs),
        "integrity": integrity,
        "reported_sessions": [r[1] for r in reported if r[0] == "session"],
        "reported_closed": [r[1] for r in reported if r[0] == "closed"],
        "reported_events": [int(r[1]) for r in reported if r[0] == "event"],
        "sessions": sessions,
        "events": events,
    }


def test_many_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    result = run_stress(tmp_path / "data", PROCESSES, TRANSACTIONS)
    print(
        f"{PROCESSES} processes x {TRANSACTIONS} rounds (3 write transactions each) in"
        f" {result['seconds']:.1f} s: signals {result['signals']},"
        f" tracebacks {result['tracebacks']}, integrity {result['integrity']}"
    )
    assert result["stderr"] == ""
    assert result["returncodes"] == [0] * PROCESSES
    assert result["integrity"] == "ok"
    assert len(result["reported_sessions"]) == PROCESSES * TRANSACTIONS
    assert len(result["reported_events"]) == PROCESSES * TRANSACTIONS
    assert set(result["reported_sessions"]) == set(result["sessions"])
    assert all(result["sessions"][s] == "closed" for s in result["reported_closed"])
    assert set(result["reported_events"]) == result["events"]


# ------------------------------------------------------------------------------- one open session

_CREATOR = """
import sys
from datetime import date
from pathlib import Path
from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, Role
from therapy_timer.errors import InvalidOperation
from therapy_timer.store import Store

with Store.open(Path(sys.argv[1]), clock=SystemClock(), busy_timeout_ms=30_000) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        session = store.create_session(
            date_of_service=date(2025, 3, 10), patient_ref=sys.argv[2], clinician="X",
            role=Role.PT, discipline=Discipline.PT, payer_profile="Medicare")
        print("created", session.id, flush=True)
    except InvalidOperation as exc:
        print("refused", exc, flush=True)
"""


def test_three_processes_creating_one_patients_session_make_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Store.open(data, clock=FakeClock()).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refs = ["N2", "N2", "n2"]  # the same initials, typed differently
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, str(data), ref],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for ref in refs
    ]
    for creator in creators:
        assert creator.stdout is not None
        assert creator.stdout.readline().strip() == "ready"
    for creator in creators:
        assert creator.stdin is not None
        creator.stdin.write("go\n")
        creator.stdin.flush()
    outs = [creator.communicate(timeout=60) for creator in creators]
    assert [err for _, err in outs] == ["", "", ""]
    lines = [out.strip() for out, _ in outs]
    created = [line.split()[1] for line in lines if line.startswith("created")]
    refused = [line for line in lines if line.startswith("refused")]
    assert len(created) == 1 and len(refused) == 2
    assert all(f"(session {created[0]})" in line for line in refused)
    assert all("already has an open session" in line for line in refused)
    with Store.open(data, clock=FakeClock()) as store:
        assert [s.id for s in store.list_sessions()] == created
