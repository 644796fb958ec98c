"""The store's files: migrations, bad or hostile files, permissions, backups and restore."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock, new_segment
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.errors import (
    DatabaseCorrupt,
    DatabaseLocked,
    DatabaseReadOnly,
    DatabaseTooNew,
    DiskFull,
    InvalidInput,
    InvalidOperation,
    StorageUnavailable,
)
from therapy_timer.model import Change, Session
from therapy_timer.store import (
    APPLICATION_ID,
    BACKUPS_KEPT,
    SCHEMA_VERSION,
    Store,
    backups_dir,
    database_path,
    latest_backup,
    list_backups,
    restore,
)
from therapy_timer.store import backups as backups_module
from therapy_timer.store._db import storage_error
from therapy_timer.store.migrations import schema_differences

FIXTURES = Path(__file__).parent / "fixtures"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def as_unprivileged_user(test: Callable[..., None]) -> Callable[..., None]:
    """Root ignores file modes, so under root run the test again as ``nobody`` (CI runs as root)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        if not IS_ROOT:
            return test(*args, **kwargs)
        if shutil.which("setpriv") is None:
            pytest.skip("root ignores file modes and setpriv is not installed")
        drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        probe = [*drop, sys.executable, "-c", f"import pytest, therapy_timer; open({__file__!r})"]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            pytest.skip("root ignores file modes and nobody cannot read this checkout")
        base = Path(tempfile.mkdtemp(prefix="therapy-timer-nobody-"))
        base.chmod(0o777)  # nobody's HOME and pytest's basetemp
        try:
            command = [
                *drop, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                f"--basetemp={base / 'tmp'}", f"{__file__}::{test.__name__}",
            ]  # fmt: skip
            env = {**os.environ, "HOME": str(base)}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "1 passed" in done.stdout, done.stdout
        finally:
            shutil.rmtree(base, ignore_errors=True)

    return wrapper


@pytest.fixture
def actor() -> str:
    return "pat"


def new_session(store: Store, ref: str = "JS") -> Session:
    return store.create_session(
        date_of_service=date(2025, 3, 10),
        patient_ref=ref,
        clinician="Pat Lee",
        role=Role.PT,
        discipline=Discipline.PT,
        payer_profile="Medicare",
    )


def make_database(data: Path, clock: FakeClock, sessions: int = 1) -> list[str]:
    with Store.open(data, clock=clock) as store:
        return [new_session(store, f"P{i}").id for i in range(sessions)]


def load_sql(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(script)
    conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------- migrations


def test_migrates_the_first_schema_version_keeping_every_row(data: Path, clock: FakeClock) -> None:
    load_sql(database_path(data), (FIXTURES / "store_v1.sql").read_text())
    with Store.open(data, clock=clock) as store:
        assert store.schema_version() == SCHEMA_VERSION
        closed = store.get_session("0b7c8e2a-6f1e-4d55-9b7a-3c2f1d0e9a11")
        assert (closed.patient_ref, closed.role, closed.status.value) == (
            "JS-1042",
            Role.PT,
            "closed",
        )
        segments = store.segments(closed.id)
        assert [(s.code, s.furnished_by, s.exclusive) for s in segments] == [
            ("97110", FurnishedBy.THERAPIST, True),
            ("97012", FurnishedBy.THERAPIST, False),
            ("97140", FurnishedBy.ASSISTANT, True),
        ]
        assert [u.code for u in store.untimed_services(closed.id)] == ["97161"]
        paused = store.get_session("5d2e9f40-1a3b-4c6d-8e7f-9a0b1c2d3e4f")
        assert paused.is_paused and paused.pause is not None
        assert [r.code for r in paused.pause.resume] == ["97530"]
        assert store.get_setting("rounding") == "down"
        assert store.last_heartbeat() is not None
        assert [e.action for e in store.audit_entries()] == ["session.create", "session.close"]
        # The upgraded file still works and still protects its audit log.
        new_session(store)
    conn = sqlite3.connect(database_path(data))
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"sessions_by_day", "segments_running"} <= indexes
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_a_newer_schema_is_refused_untouched(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    conn = sqlite3.connect(database_path(data), isolation_level=None)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('therapy_timer', 'm999_from_the_future', '2030-01-01')"
    )
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = database_path(data).read_bytes()
    with pytest.raises(DatabaseTooNew, match="newer version of Therapy Timer") as info:
        Store.open(data, clock=clock)
    assert "Traceback" not in str(info.value)
    assert database_path(data).read_bytes() == before


def test_a_higher_user_version_alone_counts_as_newer(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    conn = sqlite3.connect(database_path(data), isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(DatabaseTooNew):
        Store.open(data, clock=clock)


# ------------------------------------------------------------------------------- bad files


def test_random_bytes_are_a_corrupt_database(data: Path, clock: FakeClock) -> None:
    data.mkdir(parents=True)
    garbage = os.urandom(8192)
    database_path(data).write_bytes(garbage)
    with pytest.raises(DatabaseCorrupt, match="damaged") as info:
        Store.open(data, clock=clock)
    assert "There is no backup" in str(info.value)
    assert database_path(data).read_bytes() == garbage


def test_a_corrupt_database_names_the_latest_backup(data: Path, clock: FakeClock) -> None:
    with Store.open(data, clock=clock) as store:
        new_session(store)
        store.daily_backup()
        clock.advance(minutes=60 * 24)
        newest = store.daily_backup()
    assert newest is not None
    database_path(data).write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    with pytest.raises(DatabaseCorrupt) as info:
        Store.open(data, clock=clock)
    assert str(newest) in str(info.value)
    assert f'therapy-timer restore "{newest}"' in str(info.value)


def test_a_truncated_database_is_corrupt(data: Path, clock: FakeClock) -> None:
    make_database(data, clock, sessions=300)
    path = database_path(data)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(DatabaseCorrupt):
        store = Store.open(data, clock=clock)
        store.check_integrity()


def test_another_programs_sqlite_file_is_not_ours(data: Path, clock: FakeClock) -> None:
    load_sql(database_path(data), "CREATE TABLE photos (id INTEGER PRIMARY KEY);")
    with pytest.raises(DatabaseCorrupt, match="not a Therapy Timer database"):
        Store.open(data, clock=clock)


def test_read_only_database_reads_but_refuses_writes(data: Path, clock: FakeClock) -> None:
    (session_id,) = make_database(data, clock)
    # mode=ro works as root too, where file permissions would not stop us.
    with Store.open(data, clock=clock, read_only=True) as store:
        assert store.get_session(session_id).patient_ref == "P0"
        with pytest.raises(DatabaseReadOnly, match="read-only") as info:
            new_session(store)
        assert "Nothing was saved" in str(info.value)
        with pytest.raises(DatabaseReadOnly):
            store.write_heartbeat()
    with Store.open(data, clock=clock) as store:
        assert len(store.list_sessions()) == 1


@as_unprivileged_user
def test_read_only_file_is_refused_at_open(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    database_path(data).chmod(0o400)
    try:
        with pytest.raises(DatabaseReadOnly):
            Store.open(data, clock=clock)
    finally:
        database_path(data).chmod(0o600)


@as_unprivileged_user
def test_read_only_folder_is_refused_at_open(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    data.chmod(0o500)  # WAL needs to create its -wal and -shm files here
    try:
        with pytest.raises(DatabaseReadOnly):
            Store.open(data, clock=clock)
        assert mode(data) == 0o500  # not "fixed" behind the administrator's back
    finally:
        data.chmod(0o700)


@as_unprivileged_user
def test_data_folder_that_cannot_be_created_is_read_only(tmp_path: Path, clock: FakeClock) -> None:
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    try:
        with pytest.raises(DatabaseReadOnly):
            Store.open(parent / "data", clock=clock)
    finally:
        parent.chmod(0o700)


def test_a_lock_held_too_long_is_database_locked(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    holder = sqlite3.connect(database_path(data), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseLocked, match="locked by another program"):
            Store.open(data, clock=clock, busy_timeout_ms=50)
    finally:
        holder.execute("ROLLBACK")
    with Store.open(data, clock=clock, busy_timeout_ms=50) as store:
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseLocked):
                new_session(store)
        finally:
            holder.execute("ROLLBACK")
        assert len(store.list_sessions()) == 1
        new_session(store)  # the store is usable again once the lock is gone
    holder.close()


def test_a_full_disk_saves_nothing_half_way(store: Store) -> None:
    # A page limit makes SQLite report SQLITE_FULL exactly as a full disk would.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DiskFull, match="full"):
        for i in range(10_000):
            new_session(store, f"P{i}")
    sessions = store.list_sessions()
    audited = store.audit_entries(entity="session")
    assert sessions  # some fitted
    assert sorted(s.id for s in sessions) == sorted(e.entity_id for e in audited)
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    new_session(store, "after")


def test_bugs_are_not_disguised_as_storage_errors(store: Store) -> None:
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("DROP TABLE untimed_services")
    conn.close()
    session = new_session(store)
    with pytest.raises(sqlite3.OperationalError, match="no such table") as info:
        store.untimed_services(session.id)
    assert not isinstance(info.value, StorageUnavailable)


# ------------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_files_are_private_whatever_the_umask(tmp_path: Path, clock: FakeClock, umask: int) -> None:
    data = tmp_path / "data"
    old = os.umask(umask)
    try:
        with Store.open(data, clock=clock) as store:
            new_session(store)
            backup = store.daily_backup()
            assert backup is not None
            wal, shm = Path(f"{store.path}-wal"), Path(f"{store.path}-shm")
            assert wal.exists() and shm.exists()
            assert mode(wal) == 0o600
            assert mode(shm) == 0o600
    finally:
        os.umask(old)
    assert mode(data) == 0o700
    assert mode(database_path(data)) == 0o600
    assert mode(backups_dir(data)) == 0o700
    assert mode(backup) == 0o600


def test_loose_permissions_are_tightened_on_open(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    data.chmod(0o755)
    database_path(data).chmod(0o644)
    Store.open(data, clock=clock).close()
    assert (mode(data), mode(database_path(data))) == (0o700, 0o600)


# ------------------------------------------------------------------------------- backups


def test_daily_backup_once_a_day_keeping_fourteen(store: Store, clock: FakeClock) -> None:
    new_session(store)
    first = store.daily_backup()
    assert first is not None
    assert store.daily_backup() is None  # same day
    made = [first]
    for _ in range(20):
        clock.advance(minutes=24 * 60)
        backup = store.daily_backup()
        assert backup is not None
        made.append(backup)
    kept = list_backups(store.data_dir)
    assert len(kept) == BACKUPS_KEPT
    assert kept == made[-BACKUPS_KEPT:]
    assert latest_backup(store.data_dir) == made[-1]


def test_backup_is_a_self_contained_copy(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    session = new_session(store)
    dest = store.backup(tmp_path / "elsewhere" / "copy.sqlite3")
    assert mode(dest) == 0o600
    assert not Path(f"{dest}-wal").exists()
    conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("SELECT id FROM sessions").fetchall() == [(session.id,)]
    conn.close()


def test_two_backups_in_one_second_do_not_collide(store: Store) -> None:
    assert store.backup() != store.backup()
    assert len(list_backups(store.data_dir)) == 2


def test_daily_backup_refuses_to_rotate_in_a_damaged_copy(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged() -> None:
        raise DatabaseCorrupt("damaged")

    monkeypatch.setattr(store, "check_integrity", damaged)
    with pytest.raises(DatabaseCorrupt):
        store.daily_backup()
    assert list_backups(store.data_dir) == []


def test_a_daily_backup_that_fails_says_so_not_that_a_change_was_lost(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during the copy read "The disk … is full, so the last change was not saved",
    after a command's change had been saved (the copy is the whole database, a change a page)."""
    new_session(store)

    def full(source: sqlite3.Connection, dest: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(backups_module, "_copy_with_backup_api", full)
    with pytest.raises(StorageUnavailable) as refused:
        store.daily_backup()
    said = str(refused.value)
    assert f"Today's backup could not be made in {backups_dir(store.data_dir)}" in said
    assert "No space left on device" in said and "nothing in the database was lost" in said
    assert "not saved" not in said
    assert len(store.list_sessions()) == 1


@as_unprivileged_user
def test_an_unreadable_backups_folder_is_named_not_the_database(
    store: Store, clock: FakeClock
) -> None:
    """It said the database could not be written, and nothing was saved."""
    new_session(store)
    backups_dir(store.data_dir).mkdir(mode=0o000)
    try:
        with pytest.raises(StorageUnavailable) as refused:
            store.daily_backup()
    finally:
        backups_dir(store.data_dir).chmod(0o700)
    said = str(refused.value)
    assert str(backups_dir(store.data_dir)) in said and "Permission denied" in said
    assert "cannot write to" not in said


# ------------------------------------------------------------------------------- restore


def test_restore_brings_back_a_backup_and_keeps_the_current_database(
    data: Path, clock: FakeClock
) -> None:
    with Store.open(data, clock=clock) as store:
        kept_session = new_session(store, "KEEP")
        backup = store.backup()
        clock.advance(minutes=5)
        later_session = new_session(store, "LATER")
        # Another window keeps its connection open across the restore.
        with Store.open(data, clock=clock) as window:
            clock.advance(minutes=5)
            previous = restore(backup, data_dir=data, clock=clock, actor="admin")
            assert [s.id for s in window.list_sessions()] == [kept_session.id]
        assert [s.id for s in store.list_sessions()] == [kept_session.id]
        entry = store.audit_entries(limit=1)[0]
        assert (entry.action, entry.actor) == ("database.restore", "admin")
        assert str(backup) in entry.reason
    assert previous is not None and mode(previous) == 0o600
    conn = sqlite3.connect(previous)
    assert {r[0] for r in conn.execute("SELECT id FROM sessions")} == {
        kept_session.id,
        later_session.id,
    }
    conn.close()


def test_restore_replaces_a_corrupt_database(data: Path, clock: FakeClock) -> None:
    with Store.open(data, clock=clock) as store:
        session = new_session(store)
        backup = store.daily_backup()
    assert backup is not None
    garbage = os.urandom(10_000)
    database_path(data).write_bytes(garbage)
    Path(f"{database_path(data)}-wal").write_bytes(os.urandom(100))
    previous = restore(backup, data_dir=data, clock=clock)
    assert previous is not None and previous.read_bytes() == garbage
    with Store.open(data, clock=clock) as store:
        assert [s.id for s in store.list_sessions()] == [session.id]
        store.check_integrity()


def test_restore_migrates_an_older_backup(data: Path, tmp_path: Path, clock: FakeClock) -> None:
    old = tmp_path / "old.sqlite3"
    load_sql(old, (FIXTURES / "store_v1.sql").read_text())
    make_database(data, clock)
    restore(old, data_dir=data, clock=clock)
    with Store.open(data, clock=clock) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert len(store.list_sessions()) == 2


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("garbage", DatabaseCorrupt),
        ("other-app", DatabaseCorrupt),
        ("newer", DatabaseTooNew),
    ],
)
def test_restore_refuses_bad_files_and_changes_nothing(
    data: Path, tmp_path: Path, clock: FakeClock, content: str, error: type[Exception]
) -> None:
    (session_id,) = make_database(data, clock)
    bad = tmp_path / "bad.sqlite3"
    if content == "garbage":
        bad.write_bytes(os.urandom(5000))
    elif content == "other-app":
        load_sql(bad, "CREATE TABLE photos (id INTEGER PRIMARY KEY);")
    else:
        load_sql(bad, (FIXTURES / "store_v1.sql").read_text())
        load_sql(bad, f"PRAGMA user_version = {SCHEMA_VERSION + 1};")
    with pytest.raises(error):
        restore(bad, data_dir=data, clock=clock)
    with Store.open(data, clock=clock) as store:
        assert [s.id for s in store.list_sessions()] == [session_id]
    assert [p.name for p in backups_dir(data).iterdir()] == []


def test_restore_of_a_copy_taken_in_use_keeps_what_its_wal_holds(
    data: Path, tmp_path: Path, clock: FakeClock
) -> None:
    """A database copied with its -wal while a window had it open: the last changes are in the
    -wal, and restore staged the main file alone, so they were lost without a word."""
    station = tmp_path / "station"
    copy = tmp_path / "usb" / "therapy-timer.sqlite3"
    copy.parent.mkdir()
    with Store.open(station, clock=clock) as window:
        first = new_session(window, "FIRST")
        later = new_session(window, "LATER")
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{database_path(station)}{suffix}", f"{copy}{suffix}")
    assert Path(f"{copy}-wal").stat().st_size > 0
    restore(copy, data_dir=data, clock=clock)
    with Store.open(data, clock=clock) as store:
        assert {s.id for s in store.list_sessions()} == {first.id, later.id}
        store.check_integrity()
    assert Path(f"{copy}-wal").exists()  # the copy itself is left as it was


def test_restore_of_a_missing_file(data: Path, tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(InvalidInput):
        restore(tmp_path / "nope.sqlite3", data_dir=data, clock=clock)


# ------------------------------------------------------------------------------- two writers


def test_two_connections_never_run_two_treatment_codes(data: Path, clock: FakeClock) -> None:
    with Store.open(data, clock=clock) as window, Store.open(data, clock=clock) as pedal:
        session = new_session(window)
        now = clock.now()
        window.apply_stopwatch_change(
            Change(session.id, opened=(new_segment(session.id, "97110", now),))
        )
        with pytest.raises(Exception, match="already running"):
            pedal.apply_stopwatch_change(
                Change(session.id, opened=(new_segment(session.id, "97140", now),))
            )
        assert [s.code for s in pedal.open_segments()] == ["97110"]


def test_opening_an_empty_folder_twice_at_once_is_safe(data: Path, clock: FakeClock) -> None:
    a = Store.open(data, clock=clock)
    b = Store.open(data, clock=clock)
    assert a.schema_version() == b.schema_version() == SCHEMA_VERSION
    a.close()
    b.close()
    assert list_backups(data) == []
    assert not any(p.name.endswith(".partial") for p in data.iterdir())


# ------------------------------------------------------------------------------- plain refusals


def open_and_read(data: Path, clock: FakeClock, read_only: bool = False) -> None:
    with Store.open(data, clock=clock, read_only=read_only) as store:
        store.list_sessions()
        store.check_integrity()


def refusal(data: Path, clock: FakeClock, read_only: bool = False) -> StorageUnavailable:
    """The StorageUnavailable opening ``data`` raises, within 20 s (a pipe could block)."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            open_and_read(data, clock, read_only)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert outcome, "opening the database hung"
    error = outcome[0]
    assert isinstance(error, StorageUnavailable), f"not a plain refusal: {error!r}"
    assert "Traceback" not in str(error)
    return error


def test_a_database_with_two_names_is_refused(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    os.link(database_path(data), data / "copy-by-link.sqlite3")
    for read_only in (False, True):
        error = refusal(data, clock, read_only)
        assert str(database_path(data)) in str(error)
        assert "hard links" in str(error)
    assert not Path(f"{database_path(data)}-wal").exists()


def test_a_data_folder_linked_to_an_unmounted_share_is_refused(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = tmp_path / "data"
    data.symlink_to(tmp_path / "share" / "therapy-timer")  # not mounted
    error = refusal(data, clock)
    assert str(data) in str(error) and "not there" in str(error)
    nested = data / "station-2"
    assert str(data) in str(refusal(nested, clock))


def test_a_database_linked_to_nothing_is_refused(data: Path, clock: FakeClock) -> None:
    data.mkdir(parents=True)
    database_path(data).symlink_to(data / "elsewhere" / "therapy-timer.sqlite3")
    for read_only in (False, True):
        assert str(database_path(data)) in str(refusal(data, clock, read_only))


def test_a_folder_in_place_of_the_database_is_refused(data: Path, clock: FakeClock) -> None:
    database_path(data).mkdir(parents=True)
    error = refusal(data, clock)
    assert str(database_path(data)) in str(error) and "is a folder" in str(error)


def test_a_file_in_place_of_the_data_folder_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    data = tmp_path / "data"
    data.write_text("not a folder")
    assert str(data) in str(refusal(data, clock))


def test_a_data_folder_inside_a_file_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "afile").write_text("not a folder")
    error = refusal(tmp_path / "afile" / "data", clock)
    assert str(tmp_path / "afile" / "data") in str(error) and "cannot be made" in str(error)


def test_a_pipe_in_place_of_the_database_is_refused(data: Path, clock: FakeClock) -> None:
    data.mkdir(parents=True)
    os.mkfifo(database_path(data))
    error = refusal(data, clock)
    assert str(database_path(data)) in str(error) and "not an ordinary file" in str(error)


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
@pytest.mark.parametrize("kind", ["folder", "link", "link to nothing", "pipe"])
def test_a_journal_that_is_no_file_is_named_not_called_read_only(
    data: Path, clock: FakeClock, tmp_path: Path, suffix: str, kind: str
) -> None:
    """SQLite cannot open a -wal or -shm that is a folder or a link, and the refusal said the
    database was read-only: the person checked permissions that were fine."""
    make_database(data, clock)
    before = database_path(data).read_bytes()
    victim = tmp_path / "someone's file"
    victim.write_bytes(b"kept")
    companion = Path(f"{database_path(data)}{suffix}")
    if kind == "folder":
        companion.mkdir()
    elif kind == "pipe":
        os.mkfifo(companion)
    else:
        companion.symlink_to(victim if kind == "link" else tmp_path / "nothing")
    for read_only in (False, True):
        error = str(refusal(data, clock, read_only))
        assert str(companion) in error and "not an ordinary file" in error, error
    assert database_path(data).read_bytes() == before
    assert victim.read_bytes() == b"kept"


@as_unprivileged_user
def test_an_unreadable_database_is_refused(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    database_path(data).chmod(0o000)
    try:
        error = refusal(data, clock)
        assert str(database_path(data)) in str(error) and "may not read" in str(error)
    finally:
        database_path(data).chmod(0o600)


def test_another_users_unreadable_database_names_the_owner(
    data: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_database(data, clock)
    # Root reads everything, so pretend to be another account that may not read the file.
    monkeypatch.setattr(os, "access", lambda *_args, **_kwargs: False)
    monkeypatch.setattr(os, "geteuid", lambda: database_path(data).stat().st_uid + 1)
    error = refusal(data, clock)
    assert "another user account" in str(error) and str(database_path(data)) in str(error)


@pytest.mark.parametrize("keep", [10, 100, 1000, 4096, 8192, "half"])
def test_a_truncated_database_is_refused_in_plain_words(
    data: Path, clock: FakeClock, keep: int | str
) -> None:
    make_database(data, clock, sessions=300)
    path = database_path(data)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2 if keep == "half" else int(keep))
    error = refusal(data, clock)
    assert isinstance(error, DatabaseCorrupt) and str(path) in str(error)


def test_an_emptied_database_with_backups_is_not_taken_for_a_new_one(
    data: Path, clock: FakeClock
) -> None:
    with Store.open(data, clock=clock) as store:
        new_session(store)
        backup = store.daily_backup()
    database_path(data).write_bytes(b"")
    error = refusal(data, clock)
    assert isinstance(error, DatabaseCorrupt) and str(backup) in str(error)
    assert database_path(data).stat().st_size == 0  # left as it is for a person to look at


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 640 KiB file system (tmpfs), to fill up for real."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs to fill up needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * chunk)
    finally:
        os.close(fd)


def test_a_full_disk_is_called_full_when_writing(small_disk: Path, clock: FakeClock) -> None:
    with Store.open(small_disk / "data", clock=clock) as store:
        fill(small_disk)
        with pytest.raises(DiskFull, match="full") as info:
            new_session(store, "FULL")
        assert str(small_disk / "data") in str(info.value)


def test_a_full_disk_is_called_full_when_the_shared_memory_cannot_grow(
    small_disk: Path, clock: FakeClock
) -> None:
    data = small_disk / "data"
    make_database(data, clock, sessions=3)  # closed: no -shm until the next open
    fill(small_disk)
    error = refusal(data, clock)
    assert isinstance(error, DiskFull) and str(data) in str(error)
    assert isinstance(error.__cause__, sqlite3.OperationalError)


@pytest.mark.parametrize(
    ("name", "free", "expected"),
    [
        ("SQLITE_IOERR_SHMSIZE", 0, DiskFull),
        ("SQLITE_IOERR_WRITE", 4096, DiskFull),
        ("SQLITE_IOERR_WRITE", 10 * 1024**3, StorageUnavailable),
    ],
)
def test_io_errors_on_a_full_disk_say_full(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    free: int,
    expected: type[StorageUnavailable],
) -> None:
    codes = {"SQLITE_IOERR_SHMSIZE": 4874, "SQLITE_IOERR_WRITE": 778}
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = codes[name]
    exc.sqlite_errorname = name
    usage = shutil._ntuple_diskusage(10 * 1024**3, 10 * 1024**3 - free, free)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage)
    error = storage_error(exc, tmp_path / "db.sqlite3", 5000)
    assert type(error) is expected
    assert str(tmp_path) in str(error)


# ------------------------------------------------------------------------------- restore checks


def drop_trigger(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TRIGGER audit_log_no_update")


def drop_unique_index(conn: sqlite3.Connection) -> None:
    conn.execute("DROP INDEX segments_one_exclusive_running")


def defuse_trigger(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END"
    )


def add_trigger(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TRIGGER forget AFTER INSERT ON sessions BEGIN"
        " UPDATE sessions SET patient_ref = 'X' WHERE id = new.id; END"
    )


@pytest.mark.parametrize(
    "tamper",
    [drop_trigger, drop_unique_index, defuse_trigger, add_trigger],
    ids=["dropped-trigger", "dropped-unique-index", "defused-trigger", "extra-trigger"],
)
def test_restore_refuses_a_backup_whose_schema_was_changed(
    data: Path, tmp_path: Path, clock: FakeClock, tamper: Callable[[sqlite3.Connection], None]
) -> None:
    (session_id,) = make_database(data, clock)
    with Store.open(data, clock=clock) as store:
        backup = store.backup(tmp_path / "tampered.sqlite3")
    conn = sqlite3.connect(backup, isolation_level=None)
    tamper(conn)
    conn.close()
    before = database_path(data).read_bytes()
    with pytest.raises(DatabaseCorrupt, match="was not restored") as info:
        restore(backup, data_dir=data, clock=clock)
    assert str(backup) in str(info.value)
    assert database_path(data).read_bytes() == before
    assert list(backups_dir(data).iterdir()) == []
    with Store.open(data, clock=clock) as store:
        assert [s.id for s in store.list_sessions()] == [session_id]


def test_restore_refuses_the_live_database_itself(data: Path, clock: FakeClock) -> None:
    make_database(data, clock)
    with pytest.raises(InvalidInput, match="in use"):
        restore(database_path(data), data_dir=data, clock=clock)


def test_a_migrated_old_database_has_exactly_the_new_schema(data: Path, clock: FakeClock) -> None:
    load_sql(database_path(data), (FIXTURES / "store_v1.sql").read_text())
    Store.open(data, clock=clock).close()
    conn = sqlite3.connect(database_path(data))
    try:
        assert schema_differences(conn) == []
    finally:
        conn.close()


# ------------------------------------------------------------------------------- a wrong clock


def test_a_backup_from_a_wrong_clock_does_not_wipe_the_history(
    store: Store, clock: FakeClock
) -> None:
    new_session(store)
    real = []
    for _ in range(BACKUPS_KEPT):
        made = store.daily_backup()
        assert made is not None
        real.append(made)
        clock.advance(minutes=24 * 60)
    clock.advance(minutes=-24 * 60)  # back to the day of the last backup
    today = clock.now()
    # One run while the clock read 2036 (a dead CMOS battery, a bad NTP answer).
    clock.set(datetime(2036, 2, 7, 6, 28, tzinfo=UTC))
    future = store.daily_backup()
    assert future is not None
    # The clock is right again: today's backup exists, and runs all day make no more.
    clock.set(today)
    for _ in range(20):
        clock.advance(minutes=1)
        assert store.daily_backup() is None
    assert store.future_backups() == [future]
    assert list_backups(store.data_dir) == [*real[1:], future]
    # The following days rotate the real ones and keep the future one for a person to see.
    for _ in range(5):
        clock.advance(minutes=24 * 60)
        real.append(store.daily_backup())  # type: ignore[arg-type]
    kept = list_backups(store.data_dir)
    assert kept == [*real[-BACKUPS_KEPT:], future]
    assert store.future_backups() == [future]


def test_a_clock_set_in_the_past_keeps_the_newer_backups(store: Store, clock: FakeClock) -> None:
    new_session(store)
    made = [store.daily_backup()]
    clock.advance(minutes=24 * 60)
    made.append(store.daily_backup())
    clock.set(datetime(2020, 1, 1, 12, tzinfo=UTC))
    past = store.daily_backup()
    assert past is not None
    assert store.daily_backup() is None
    assert store.future_backups() == made
    assert list_backups(store.data_dir) == [past, *made]


# ------------------------------------------------------------------------------- one open session


def test_duplicate_open_sessions_of_an_older_version_migrate_and_are_listed(
    data: Path, clock: FakeClock
) -> None:
    script = (FIXTURES / "store_v1.sql").read_text()
    load_sql(database_path(data), script)
    conn = sqlite3.connect(database_path(data), isolation_level=None)
    for session_id, ref, created in [
        ("7e1d0c2b-0000-4000-8000-000000000001", "MK", "2025-03-10T15:05:00.000000+00:00"),
        ("7e1d0c2b-0000-4000-8000-000000000002", "mk", "2025-03-10T15:06:00.000000+00:00"),
    ]:
        conn.execute(
            "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role, discipline,"
            " payer_profile, status, created_utc) VALUES (?, '2025-03-10', ?, 'Sam Ortiz', 'PTA',"
            " 'PT', 'Medicare', 'open', ?)",
            [session_id, ref, created],
        )
    conn.close()
    with Store.open(data, clock=clock) as store:
        (group,) = store.open_duplicates()
        oldest = "5d2e9f40-1a3b-4c6d-8e7f-9a0b1c2d3e4f"
        assert [s.id for s in group] == [
            oldest,
            "7e1d0c2b-0000-4000-8000-000000000001",
            "7e1d0c2b-0000-4000-8000-000000000002",
        ]
        assert all(s.is_open for s in group)  # nothing closed behind anyone's back
        with pytest.raises(InvalidOperation, match=oldest):
            store.create_session(
                date_of_service=date(2025, 3, 11),
                patient_ref="Mk",
                clinician="Sam Ortiz",
                role=Role.PTA,
                discipline=Discipline.PT,
                payer_profile="Medicare",
            )
        # Once a person closed the extra ones, the database holds the line on its own.
        for extra in group[1:]:
            store.close_session(extra.id)
        assert store.open_duplicates() == []
    conn = sqlite3.connect(database_path(data), isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="sessions_one_open_per_patient"):
        conn.execute(
            "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role, discipline,"
            " payer_profile, status, created_utc) VALUES ('x', '2025-03-12', 'MK', 'Sam Ortiz',"
            " 'PTA', 'PT', 'Medicare', 'open', '2025-03-12T09:00:00.000000+00:00')"
        )
    conn.close()


# ------------------------------------------------------------- rows written outside the app


@pytest.mark.parametrize(
    ("table", "insert", "read", "named"),
    [
        (
            "untimed_services",
            "INSERT INTO untimed_services (session_id, code, minutes, furnished_by, created_utc)"
            " VALUES ('{ID}', '97161', NULL, 'therapist', 'this morning')",
            lambda store, session_id: store.untimed_services(session_id),
            "Invalid isoformat string: 'this morning'",
        ),
        (
            "audit_log",
            "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, after_json)"
            " VALUES ('2025-03-10T09:00:00+00:00', 'x', 'session.x', 'session', '{ID}', '{{')",
            lambda store, session_id: store.audit_entries(),
            "Expecting property name",
        ),
        (
            "import_conflicts",
            "INSERT INTO import_conflicts (session_id, origin, source, why, record_json,"
            " content_hash, received_utc) VALUES ('{ID}', 'a', 'b', 'c', '{{}}', 'h', 'noon')",
            lambda store, session_id: store.conflicts(),
            "Invalid isoformat string: 'noon'",
        ),
    ],
)
def test_a_row_another_program_wrote_is_named_in_plain_words(
    store: Store, table: str, insert: str, read: Callable[[Store, str], object], named: str
) -> None:
    session = new_session(store)
    with sqlite3.connect(store.path) as conn:
        conn.execute(insert.format(ID=session.id))
    conn.close()
    with pytest.raises(DatabaseCorrupt) as refused:
        read(store, session.id)
    message = str(refused.value)
    assert f"holds a row it cannot read ({table} row " in message and named in message
    assert str(store.path) in message and "restore" not in message
