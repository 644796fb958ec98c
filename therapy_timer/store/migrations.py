"""The schema: append-only migrations, and whether a database file is one of ours we understand."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from therapy_timer.errors import DatabaseCorrupt, DatabaseReadOnly, DatabaseTooNew

if TYPE_CHECKING:
    # sqlite_utils pulls in dateutil, pluggy, tabulate... (~90 ms of every start): it is
    # imported only when a database is actually migrated (issue 13), never to open an
    # up-to-date one.
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]

MIGRATIONS_TABLE = "_sqlite_migrations"
"""sqlite_utils.migrations.Migrations.migrations_table (a test checks they agree)."""


class MigrationSet:
    """Migrations in order, registered as with sqlite_utils' ``Migrations`` (``@MIGRATIONS(...)``).

    Only ``apply`` needs sqlite_utils, so a process that opens an up-to-date database never
    imports it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._steps: list[tuple[str, Migration]] = []

    def __call__(self, *, name: str) -> Callable[[Migration], Migration]:
        def register(fn: Migration) -> Migration:
            if name in self.names:
                raise ValueError(f"migration {name} is registered twice")
            self._steps.append((name, fn))
            return fn

        return register

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._steps)

    def apply(self, db: sqlite_utils.Database) -> None:
        """Apply the pending ones with sqlite_utils' runner (which records what it applied)."""
        from sqlite_utils.migrations import Migrations

        runner = Migrations(self.name)
        for name, fn in self._steps:
            runner(name=name)(fn)
        runner.apply(db)


APPLICATION_ID = 0x54544D52  # "TTMR": tells our files from other SQLite databases

# Migrations are append-only: never edit one that has shipped, add a new one instead, and keep
# tests/fixtures/store_v1.sql as the first schema so the upgrade path stays tested.

MIGRATIONS = MigrationSet("therapy_timer")


@MIGRATIONS(name="m001_initial")
def _m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE payer_profiles (
            name TEXT PRIMARY KEY NOT NULL CHECK (length(trim(name)) > 0),
            method TEXT NOT NULL CHECK (method IN ('cms', 'ama')),
            assistant_modifiers INTEGER NOT NULL CHECK (assistant_modifiers IN (0, 1))
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY NOT NULL,
            date_of_service TEXT NOT NULL,
            patient_ref TEXT NOT NULL,
            clinician TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('PT', 'PTA', 'OT', 'OTA', 'SLP')),
            discipline TEXT NOT NULL CHECK (discipline IN ('PT', 'OT', 'SLP')),
            payer_profile TEXT NOT NULL REFERENCES payer_profiles(name) ON UPDATE CASCADE,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
            amended INTEGER NOT NULL DEFAULT 0 CHECK (amended IN (0, 1)),
            exported INTEGER NOT NULL DEFAULT 0 CHECK (exported IN (0, 1)),
            created_utc TEXT NOT NULL,
            closed_utc TEXT,
            paused_utc TEXT,
            resume_json TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE segments (
            id TEXT PRIMARY KEY NOT NULL,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            code TEXT NOT NULL,
            furnished_by TEXT NOT NULL
                CHECK (furnished_by IN ('therapist', 'assistant', 'together')),
            exclusive INTEGER NOT NULL CHECK (exclusive IN (0, 1)),
            start_utc TEXT NOT NULL,
            stop_utc TEXT CHECK (stop_utc IS NULL OR stop_utc >= start_utc)
        );
        CREATE INDEX segments_by_session ON segments(session_id, start_utc);
        -- The last line of defence for R8.1: one running treatment code per session, whatever
        -- the application does; and one stopwatch per code.
        CREATE UNIQUE INDEX segments_one_exclusive_running ON segments(session_id)
            WHERE stop_utc IS NULL AND exclusive = 1;
        CREATE UNIQUE INDEX segments_one_per_code_running ON segments(session_id, code)
            WHERE stop_utc IS NULL;
        CREATE TABLE untimed_services (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            code TEXT NOT NULL,
            minutes INTEGER CHECK (minutes IS NULL OR minutes >= 0),
            furnished_by TEXT NOT NULL
                CHECK (furnished_by IN ('therapist', 'assistant', 'together')),
            created_utc TEXT NOT NULL
        );
        CREATE INDEX untimed_by_session ON untimed_services(session_id);
        CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
        CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at_utc TEXT NOT NULL);
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at_utc TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            entity TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            before_json TEXT,
            after_json TEXT,
            reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_by_entity ON audit_log(entity, entity_id);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be changed');
        END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted');
        END;
        INSERT INTO payer_profiles (name, method, assistant_modifiers) VALUES
            ('Medicare', 'cms', 1),
            ('Commercial (per-code)', 'ama', 0);
        """
    )


@MIGRATIONS(name="m002_list_indexes")
def _m002_list_indexes(db: sqlite_utils.Database) -> None:
    # Listing a day and finding running or open work must not scan a year of sessions.
    db.executescript(
        """
        CREATE INDEX sessions_by_day ON sessions(date_of_service, created_utc);
        CREATE INDEX sessions_open ON sessions(status) WHERE status = 'open';
        CREATE INDEX segments_running ON segments(session_id) WHERE stop_utc IS NULL;
        """
    )


@MIGRATIONS(name="m003_tie_allocation")
def _m003_tie_allocation(db: sqlite_utils.Database) -> None:
    # The therapist's choice among equally valid CMS allocations (R2.8) must reach the front
    # desk's export, so it is stored with the session rather than only in the audit log.
    db.executescript("ALTER TABLE sessions ADD COLUMN allocation_json TEXT;")


@MIGRATIONS(name="m004_session_origin")
def _m004_session_origin(db: sqlite_utils.Database) -> None:
    # Sessions merged from another workstation's bundle say where they came from.
    db.executescript("ALTER TABLE sessions ADD COLUMN origin TEXT;")


CHILD_SESSION = "json_extract(coalesce(after_json, before_json), '$.session_id')"
"""The session a segment's or untimed service's audit entry belongs to (its payload says)."""


@MIGRATIONS(name="m005_audit_by_child_session")
def _m005_audit_by_child_session(db: sqlite_utils.Database) -> None:
    # A bundle carries every audit entry of its sessions, also those of discarded segments and
    # removed untimed services whose rows are gone: find them by the session id in their payload
    # without reading the whole log (a year holds hundreds of thousands of entries).
    db.executescript(
        f"CREATE INDEX audit_by_child_session ON audit_log({CHILD_SESSION})"
        " WHERE entity IN ('segment', 'untimed');"
    )


@MIGRATIONS(name="m006_one_open_session_per_patient")
def _m006_one_open_session_per_patient(db: sqlite_utils.Database) -> None:
    # At most one open session per patient and clinician, whatever the windows and commands do:
    # two would bill the same visit twice. References are compared case-insensitively ("js" and
    # "JS" are the same initials; they are ASCII, so SQLite's upper() suffices) and kept as
    # typed. An older version may have let duplicates in: closing one here would silently end a
    # visit, so each keeps its place instead: the oldest open_duplicate 0, the others 1, 2...
    # (Store.open_duplicates lists them for a person to close). Every new session takes 0.
    db.executescript(
        """
        ALTER TABLE sessions ADD COLUMN open_duplicate INTEGER NOT NULL DEFAULT 0;
        UPDATE sessions SET open_duplicate = (
            SELECT count(*) FROM sessions AS older
            WHERE older.status = 'open'
                AND upper(older.patient_ref) = upper(sessions.patient_ref)
                AND older.clinician = sessions.clinician
                AND (older.created_utc, older.id) < (sessions.created_utc, sessions.id)
        ) WHERE status = 'open';
        CREATE UNIQUE INDEX sessions_one_open_per_patient
            ON sessions(upper(patient_ref), clinician, open_duplicate) WHERE status = 'open';
        """
    )


@MIGRATIONS(name="m007_window_lease")
def _m007_window_lease(db: sqlite_utils.Database) -> None:
    # Which window process shows the running stopwatches, so that only timers of a window that
    # really died are offered for recovery: a timer a foot pedal or a script started while no
    # window ran is running, not interrupted. One row: the process (pid, boot id and its start
    # time, so a reused pid is not taken for it) and its last heartbeat. A window closing
    # normally deletes the row.
    db.executescript(
        """
        CREATE TABLE window_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            boot_id TEXT NOT NULL,
            process_start TEXT NOT NULL,
            at_utc TEXT NOT NULL
        );
        """
    )


@MIGRATIONS(name="m008_import_conflicts")
def _m008_import_conflicts(db: sqlite_utils.Database) -> None:
    # Every other version of a session an import met, kept as received (a second version from
    # the same station must never replace the first one kept aside), until the front desk
    # accepts or drops it; the decision is audited and made once. A version is identified by
    # the hash of its whole record, so importing the same file twice keeps it once.
    db.executescript(
        """
        CREATE TABLE import_conflicts (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            source TEXT NOT NULL,
            why TEXT NOT NULL,
            record_json TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            received_utc TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'accepted', 'dropped')),
            decided_utc TEXT,
            UNIQUE (session_id, content_hash)
        );
        CREATE INDEX import_conflicts_by_status ON import_conflicts(status, session_id);
        CREATE TRIGGER import_conflicts_kept_as_received
            BEFORE UPDATE OF id, session_id, origin, source, why, record_json, content_hash,
                received_utc ON import_conflicts
        BEGIN
            SELECT RAISE(ABORT, 'a conflicting version is kept as it was received');
        END;
        CREATE TRIGGER import_conflicts_decided_once
            BEFORE UPDATE OF status, decided_utc ON import_conflicts WHEN OLD.status != 'open'
        BEGIN
            SELECT RAISE(ABORT, 'this conflicting version was already accepted or dropped');
        END;
        CREATE TRIGGER import_conflicts_no_delete BEFORE DELETE ON import_conflicts
        BEGIN
            SELECT RAISE(ABORT, 'conflicting versions are kept: drop one instead');
        END;
        """
    )


# The migrations this version knows (all of them, also those an older file lacks).
KNOWN_MIGRATIONS = frozenset(MIGRATIONS.names)
SCHEMA_VERSION = len(KNOWN_MIGRATIONS)
"""How many migrations this version knows; stored as PRAGMA user_version after migrating."""


def _applied_migrations(conn: sqlite3.Connection) -> set[str]:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        [MIGRATIONS_TABLE],
    ).fetchone()
    if not has_table:
        return set()
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?",
        [MIGRATIONS.name],
    )
    return {str(r[0]) for r in rows}


def check_ours(conn: sqlite3.Connection, db_path: Path) -> set[str]:
    """Raise unless ``conn`` is an empty database or one of ours we understand; return applied."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    n_tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    if app_id != APPLICATION_ID and (app_id != 0 or n_tables):
        raise DatabaseCorrupt(
            f"{db_path} is not a Therapy Timer database (it is some other SQLite file)."
            " Move it away, or choose a Therapy Timer backup to restore."
        )
    applied = _applied_migrations(conn)
    unknown = applied - KNOWN_MIGRATIONS
    user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if unknown or user_version > SCHEMA_VERSION:
        raise DatabaseTooNew(
            f"The database {db_path} was written by a newer version of Therapy Timer"
            f" (schema {max(user_version, len(applied))}; this version knows {SCHEMA_VERSION})."
            " Install the newer version, or restore a backup made by this version."
        )
    return applied


def prepare_schema(conn: sqlite3.Connection, db_path: Path, read_only: bool) -> None:
    """Check ``conn`` is ours and migrate it (in one IMMEDIATE transaction) unless read-only."""
    if read_only:
        applied = check_ours(conn, db_path)
        if applied != KNOWN_MIGRATIONS:
            raise DatabaseReadOnly(
                f"The database {db_path} needs an upgrade to be used by this version, but it"
                " was opened read-only. Open it once with write access."
            )
        return
    # IMMEDIATE also proves at once that we may write: a read-only file fails here,
    # not when the first timer starts.
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = check_ours(conn, db_path)
        if applied != KNOWN_MIGRATIONS:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            from sqlite_utils import Database  # only here: see the note at the imports

            MIGRATIONS.apply(Database(conn, execute_plugins=False))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------------------------
# The schema a file must have: a restored backup without the audit triggers or the unique
# indexes would let the audit log be edited and two treatment codes run at once.

_BOOKKEEPING = (MIGRATIONS_TABLE,)
SchemaObject = tuple[str, str, str, str]
"""(type, name, table, SQL with its whitespace collapsed) of a table, index or trigger."""


def schema_of(conn: sqlite3.Connection) -> set[SchemaObject]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE type IN ('table', 'index', 'trigger', 'view') AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {
        (str(kind), str(name), str(table), " ".join(str(sql or "").split()))
        for kind, name, table, sql in rows
        if table not in _BOOKKEEPING
    }


@functools.cache
def expected_schema() -> frozenset[SchemaObject]:
    """The schema the migrations make in a new database."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        prepare_schema(conn, Path(":memory:"), read_only=False)
        return frozenset(schema_of(conn))
    finally:
        conn.close()


def schema_differences(conn: sqlite3.Connection) -> list[str]:
    """What differs from the migrations' schema, in words ('the trigger x is missing')."""
    found = schema_of(conn)
    expected = expected_schema()
    named_found = {(obj[0], obj[1]): obj for obj in found}
    problems = []
    for kind, name, table, sql in sorted(expected):
        other = named_found.get((kind, name))
        if other is None:
            problems.append(f"the {kind} {name} is missing")
        elif other != (kind, name, table, sql):
            problems.append(f"the {kind} {name} was changed")
    expected_names = {(kind, name) for kind, name, *_ in expected}
    problems += [
        f"it has an extra {k} {n}" for k, n in sorted(named_found) if (k, n) not in expected_names
    ]
    return problems
