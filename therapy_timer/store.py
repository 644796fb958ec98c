"""Durable storage of sessions, segments and the audit trail (the only SQLite module)."""

from __future__ import annotations

import contextlib
import errno
import functools
import getpass
import json
import os
import re
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

import sqlite_utils
from sqlite_utils.migrations import Migrations

from therapy_timer.clock import Clock
from therapy_timer.codes import Discipline, FurnishedBy, Method, Role, normalize_code
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
from therapy_timer.paths import DATA_DIR_ENV
from therapy_timer.paths import data_dir as default_data_dir

DB_FILENAME = "therapy-timer.sqlite3"
BACKUP_DIRNAME = "backups"
BACKUPS_KEPT = 14
PATIENT_REF_MAX = 20
APPLICATION_ID = 0x54544D52  # "TTMR": tells our files from other SQLite databases
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._#/-]*$")
_BACKUP_NAME = re.compile(r"^therapy-timer-(\d{8}-\d{6})Z(?:-(\d+))?\.sqlite3$")


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Default of an amendment argument that may legitimately be None: leave the value as it is."""


@dataclass(frozen=True)
class PayerProfile:
    name: str
    method: Method
    assistant_modifiers: bool


@dataclass(frozen=True)
class SegmentSpec:
    """A code to reopen on resume and who furnishes it (stopwatch.Resumable)."""

    code: str
    furnished_by: FurnishedBy


@dataclass(frozen=True)
class Session:
    id: str
    date_of_service: date
    patient_ref: str
    clinician: str
    role: Role
    discipline: Discipline
    payer_profile: str
    status: SessionStatus
    amended: bool
    exported: bool
    created_utc: datetime
    closed_utc: datetime | None
    paused_utc: datetime | None
    """When the stopwatch was paused; None while not paused."""
    resume: tuple[SegmentSpec, ...]
    """What was running at the pause and reopens on resume (empty while not paused)."""
    allocation: Mapping[str, int] | None = None
    """Timed units per code chosen among equally valid CMS splits (R2.8); None = the default."""
    origin: str | None = None
    """The workstation a session was imported from; None for one recorded here."""

    @property
    def is_open(self) -> bool:
        return self.status is SessionStatus.OPEN

    @property
    def is_paused(self) -> bool:
        return self.paused_utc is not None


@dataclass(frozen=True)
class Segment:
    """A stretch of one code furnished by one party; ``stop_utc`` is None while it runs.

    ``exclusive``: a treatment code that runs alone (every code but a supervised modality,
    R8.1); at most one exclusive segment of a session runs at a time.
    """

    id: str
    session_id: str
    code: str
    furnished_by: FurnishedBy
    exclusive: bool
    start_utc: datetime
    stop_utc: datetime | None

    @property
    def running(self) -> bool:
        return self.stop_utc is None


@dataclass(frozen=True)
class UntimedService:
    """An untimed service entered by hand (e.g. an evaluation); minutes are optional."""

    id: int
    session_id: str
    code: str
    minutes: int | None
    furnished_by: FurnishedBy
    created_utc: datetime


@dataclass(frozen=True)
class SegmentStop:
    segment_id: str
    stop_utc: datetime


@dataclass(frozen=True)
class SegmentStart:
    """A segment to open; ``id`` is the stopwatch's segment id (a fresh UUID when None)."""

    code: str
    furnished_by: FurnishedBy
    exclusive: bool
    start_utc: datetime
    id: str | None = None


@dataclass(frozen=True)
class Pause:
    """Mark the session paused at ``at_utc``; ``resume`` is what to reopen later."""

    at_utc: datetime
    resume: tuple[SegmentSpec, ...]


@dataclass(frozen=True)
class StopwatchChange:
    """One stopwatch step, applied atomically: stop these segments, start those, (un)pause.

    ``action`` names the step in the audit log (e.g. "start", "switch", "pause", "resume",
    "furnished_by", "recovery.stop_at_heartbeat"); ``reason`` is optional here.
    """

    session_id: str
    stops: tuple[SegmentStop, ...] = ()
    starts: tuple[SegmentStart, ...] = ()
    pause: Pause | None = None
    clear_pause: bool = False
    action: str = "stopwatch"
    reason: str = ""


@dataclass(frozen=True)
class AppliedChange:
    """What a stopwatch change did: the session after it, the segments it closed and opened."""

    session: Session
    stopped: tuple[Segment, ...]
    started: tuple[Segment, ...]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at_utc: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: Mapping[str, object] | None
    after: Mapping[str, object] | None
    reason: str


# ---------------------------------------------------------------------------------------------
# Schema. Migrations are append-only: never edit one that has shipped, add a new one instead,
# and keep tests/fixtures/store_v1.sql as the first schema so the upgrade path stays tested.

MIGRATIONS = Migrations("therapy_timer")


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


_CHILD_SESSION = "json_extract(coalesce(after_json, before_json), '$.session_id')"
"""The session a segment's or untimed service's audit entry belongs to (its payload says)."""


@MIGRATIONS(name="m005_audit_by_child_session")
def _m005_audit_by_child_session(db: sqlite_utils.Database) -> None:
    # A bundle carries every audit entry of its sessions, also those of discarded segments and
    # removed untimed services whose rows are gone: find them by the session id in their payload
    # without reading the whole log (a year holds hundreds of thousands of entries).
    db.executescript(
        f"CREATE INDEX audit_by_child_session ON audit_log({_CHILD_SESSION})"
        " WHERE entity IN ('segment', 'untimed');"
    )


# Everything is pending on an empty database: that is the list of migrations this version knows.
_KNOWN_MIGRATIONS = frozenset(
    m.name for m in MIGRATIONS.pending(sqlite_utils.Database(memory=True))
)
SCHEMA_VERSION = len(_KNOWN_MIGRATIONS)
"""How many migrations this version knows; stored as PRAGMA user_version after migrating."""


# ---------------------------------------------------------------------------------------------
# Environment errors -> StorageUnavailable, in plain words. Everything else is a bug: propagate.


def database_path(data_dir: Path) -> Path:
    """The database file inside a data folder."""
    return data_dir / DB_FILENAME


def backups_dir(data_dir: Path) -> Path:
    return data_dir / BACKUP_DIRNAME


def _corrupt(db_path: Path, detail: str = "") -> DatabaseCorrupt:
    backup = latest_backup(db_path.parent)
    what = f"The Therapy Timer database {db_path} is damaged and cannot be read"
    what += f" ({detail})." if detail else "."
    if backup is not None:
        advice = (
            f' The latest backup is {backup}. Restore it with: therapy-timer restore "{backup}".'
            " The damaged file is kept as it is."
        )
    else:
        advice = (
            f" There is no backup in {backups_dir(db_path.parent)}."
            " Do not delete the file; ask your IT support to look at it."
        )
    return DatabaseCorrupt(what + advice)


def _read_only(db_path: Path) -> DatabaseReadOnly:
    return DatabaseReadOnly(
        f"Therapy Timer cannot write to {db_path}: the file, its folder or the disk is read-only."
        " Nothing was saved. Check the permissions, or point the "
        f"{DATA_DIR_ENV} setting at a folder you may write to."
    )


def _storage_error(exc: BaseException, db_path: Path, busy_timeout_ms: int) -> Exception | None:
    """The StorageUnavailable for an environment failure, or None if ``exc`` is a bug."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, sqlite3.Error):
        primary = getattr(exc, "sqlite_errorcode", -1) & 0xFF
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return _corrupt(db_path, str(exc))
        if primary == sqlite3.SQLITE_FULL:
            return DiskFull(
                f"The disk holding {db_path.parent} is full, so the last change was not saved."
                " Free some space and try again."
            )
        if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
            return _read_only(db_path)
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return DatabaseLocked(
                f"The database {db_path} stayed locked by another program for more than"
                f" {busy_timeout_ms / 1000:g} seconds, so the last change was not saved."
                " Close other Therapy Timer windows or commands and try again."
            )
        if primary == sqlite3.SQLITE_IOERR:
            return StorageUnavailable(
                f"The disk reported an error while reading or writing {db_path}"
                f" ({getattr(exc, 'sqlite_errorname', 'I/O error')}). Nothing was saved."
                " Check the disk or network drive and try again."
            )
        return None
    if isinstance(exc, OSError):
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return _read_only(db_path)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(
                f"The disk holding {db_path.parent} is full. Free some space and try again."
            )
        if exc.errno == errno.EIO:
            return StorageUnavailable(
                f"The disk reported an error while using {db_path}. Check the disk and try again."
            )
    return None


@contextlib.contextmanager
def _translated(db_path: Path, busy_timeout_ms: int = 5000) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        translated = _storage_error(exc, db_path, busy_timeout_ms)
        if translated is None or translated is exc:
            raise
        raise translated from exc


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(method: Callable[Concatenate[Store, _P], _R]) -> Callable[Concatenate[Store, _P], _R]:
    @functools.wraps(method)
    def wrapper(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _translated(self._path, self._busy_timeout_ms):
            return method(self, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Values <-> columns


def _ts(value: datetime, field: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: a naive datetime; pass an aware one (the store keeps UTC)")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _now(clock: Clock) -> str:
    return _ts(clock.now(), "clock.now()")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def _in_session(segments: Sequence[Segment]) -> list[dict[str, object]]:
    """Segments for an audit entry about their session: the session id is the entry's own."""
    return [
        {
            name: _jsonable(getattr(s, name))
            for name in s.__dataclass_fields__
            if name != "session_id"
        }
        for s in segments
    ]


def _to_json(value: object) -> str | None:
    return None if value is None else json.dumps(_jsonable(value), sort_keys=True)


def _spec_json(specs: Sequence[SegmentSpec]) -> str:
    return json.dumps([_jsonable(s) for s in specs])


def _specs_from_json(text: str) -> tuple[SegmentSpec, ...]:
    return tuple(
        SegmentSpec(str(d["code"]), FurnishedBy(d["furnished_by"])) for d in json.loads(text)
    )


def _session(row: Mapping[str, Any]) -> Session:
    return Session(
        id=row["id"],
        date_of_service=date.fromisoformat(row["date_of_service"]),
        patient_ref=row["patient_ref"],
        clinician=row["clinician"],
        role=Role(row["role"]),
        discipline=Discipline(row["discipline"]),
        payer_profile=row["payer_profile"],
        status=SessionStatus(row["status"]),
        amended=bool(row["amended"]),
        exported=bool(row["exported"]),
        created_utc=_dt(row["created_utc"]),
        closed_utc=_opt_dt(row["closed_utc"]),
        paused_utc=_opt_dt(row["paused_utc"]),
        resume=_specs_from_json(row["resume_json"]),
        allocation=_allocation_from_json(row.get("allocation_json")),
        origin=row.get("origin"),
    )


@dataclass(frozen=True)
class ImportOutcome:
    """What merging a bundle's session records did (see ``Store.import_session_records``)."""

    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    conflicts: tuple[Mapping[str, Any], ...]
    why: Mapping[str, str] = field(default_factory=dict)
    """Why each conflicting session (by id) was kept aside, in words for the front desk."""


@dataclass(frozen=True)
class RecordBatch:
    """One bundle's session records and where they came from, for ``Store.import_batches``."""

    records: Sequence[object]
    origin: str  # the workstation that made the bundle
    source: str  # the file, named in errors and in the audit


_RECORD_SESSION_FIELDS = (
    "id",
    "date_of_service",
    "patient_ref",
    "clinician",
    "role",
    "discipline",
    "payer_profile",
    "status",
    "amended",
    "created_utc",
    "closed_utc",
    "allocation",
)


def _record_content(record: Mapping[str, Any]) -> str:
    """What makes two copies of a session the same: its fields, segments and untimed services.

    Audit entries, the exported flag and where it came from are history, not content.
    """
    content = {name: record.get(name) for name in _RECORD_SESSION_FIELDS}
    content["segments"] = sorted(record.get("segments", []), key=lambda s: str(s.get("id")))
    content["untimed"] = record.get("untimed", [])
    return json.dumps(content, sort_keys=True)


_T = TypeVar("_T")


def _of_type(value: object, kind: type[_T], name: str) -> _T:
    """A bundle's value of the type we store; TypeError (a damaged record) otherwise."""
    # bool is an int to isinstance: a count must not be True, a flag must not be 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} is {value!r}, not {kind.__name__}")
    return value


def _norm_ts(text: str | None) -> str | None:
    return None if text is None else _ts(_dt(text), "timestamp")


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    """Bound the number of SQL parameters (SQLite allows 32,766 since 3.32; older ones 999)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _allocation_from_json(text: str | None) -> dict[str, int] | None:
    return None if text is None else {str(c): int(u) for c, u in json.loads(text).items()}


def _segment(row: Mapping[str, Any]) -> Segment:
    return Segment(
        id=row["id"],
        session_id=row["session_id"],
        code=row["code"],
        furnished_by=FurnishedBy(row["furnished_by"]),
        exclusive=bool(row["exclusive"]),
        start_utc=_dt(row["start_utc"]),
        stop_utc=_opt_dt(row["stop_utc"]),
    )


def _untimed(row: Mapping[str, Any]) -> UntimedService:
    return UntimedService(
        id=row["id"],
        session_id=row["session_id"],
        code=row["code"],
        minutes=row["minutes"],
        furnished_by=FurnishedBy(row["furnished_by"]),
        created_utc=_dt(row["created_utc"]),
    )


def _profile(row: Mapping[str, Any]) -> PayerProfile:
    return PayerProfile(
        name=row["name"],
        method=Method(row["method"]),
        assistant_modifiers=bool(row["assistant_modifiers"]),
    )


def _audit_entry(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at_utc=_dt(row["at_utc"]),
        actor=row["actor"],
        action=row["action"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        before=None if row["before_json"] is None else json.loads(row["before_json"]),
        after=None if row["after_json"] is None else json.loads(row["after_json"]),
        reason=row["reason"],
    )


def _patient_ref(raw: str) -> str:
    ref = raw.strip() if isinstance(raw, str) else ""
    if not ref or len(ref) > PATIENT_REF_MAX or not _PATIENT_REF.match(ref):
        raise InvalidInput(
            "patient_ref",
            f"{raw!r} is not a patient reference: use initials or a record number"
            f" (up to {PATIENT_REF_MAX} letters, digits or . _ - # /, no spaces),"
            " not a name or other details",
        )
    return ref


def _reason(raw: str) -> str:
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        raise InvalidInput("reason", "a change to recorded time needs a reason (what and why)")
    return reason


def _label(raw: str, field: str, max_len: int = 80) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > max_len or any(ch in text for ch in "\r\n\t\x00"):
        raise InvalidInput(field, f"must be 1 to {max_len} characters on one line, got {raw!r}")
    return text


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Files


def _private_dir(path: Path) -> None:
    """Create ``path`` as 0700, or take group and other access away from an existing folder.

    Explicit chmod because mkdir's mode is filtered by the umask; an existing folder only loses
    bits, so a folder an administrator made read-only stays read-only (and we say so).
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(current & 0o700)
    else:
        path.chmod(_DIR_MODE)


def _private_file(path: Path) -> None:
    """Create ``path`` as 0600, or take group and other access away from an existing file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR)
        wanted = stat.S_IMODE(os.fstat(fd).st_mode) & 0o700
    else:
        wanted = _FILE_MODE
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != wanted:
            os.fchmod(fd, wanted)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _backup_sort_key(path: Path) -> tuple[str, int]:
    match = _BACKUP_NAME.match(path.name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def list_backups(data_dir: Path) -> list[Path]:
    """Rotating backups in the data folder, oldest first."""
    folder = backups_dir(data_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _BACKUP_NAME.match(p.name) and p.is_file()]
    return sorted(found, key=_backup_sort_key)


def latest_backup(data_dir: Path) -> Path | None:
    """The newest rotating backup, offered to the user when the database is damaged."""
    try:
        backups = list_backups(data_dir)
    except OSError:
        return None
    return backups[-1] if backups else None


def _backup_time(path: Path) -> datetime:
    stamp, _ = _backup_sort_key(path)
    return datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def _new_backup_path(data_dir: Path, now: datetime) -> Path:
    folder = backups_dir(data_dir)
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    candidate = folder / f"therapy-timer-{stamp}Z.sqlite3"
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"therapy-timer-{stamp}Z-{n}.sqlite3"
    return candidate


def _copy_with_backup_api(source: sqlite3.Connection, dest: Path) -> None:
    """Write a consistent, self-contained (rollback-journal) copy of ``source`` to ``dest``."""
    _private_dir(dest.parent)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    _private_file(partial)
    try:
        target = sqlite3.connect(partial, isolation_level=None)
        try:
            source.backup(target)
            # The copy would inherit WAL mode; a backup should be one file that opens anywhere.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _applied_migrations(conn: sqlite3.Connection) -> set[str]:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        [Migrations.migrations_table],
    ).fetchone()
    if not has_table:
        return set()
    rows = conn.execute(
        f"SELECT name FROM {Migrations.migrations_table} WHERE migration_set = ?",
        [MIGRATIONS.name],
    )
    return {str(r[0]) for r in rows}


def _check_ours(conn: sqlite3.Connection, db_path: Path) -> set[str]:
    """Raise unless ``conn`` is an empty database or one of ours we understand; return applied."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    n_tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    if app_id != APPLICATION_ID and (app_id != 0 or n_tables):
        raise DatabaseCorrupt(
            f"{db_path} is not a Therapy Timer database (it is some other SQLite file)."
            " Move it away, or choose a Therapy Timer backup to restore."
        )
    applied = _applied_migrations(conn)
    unknown = applied - _KNOWN_MIGRATIONS
    user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if unknown or user_version > SCHEMA_VERSION:
        raise DatabaseTooNew(
            f"The database {db_path} was written by a newer version of Therapy Timer"
            f" (schema {max(user_version, len(applied))}; this version knows {SCHEMA_VERSION})."
            " Install the newer version, or restore a backup made by this version."
        )
    return applied


def _validate_for_restore(file: Path) -> None:
    conn = sqlite3.connect(file, isolation_level=None)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise _corrupt_restore_source(file, str(result[0] if result else "no answer"))
        applied = _check_ours(conn, file)
        if "m001_initial" not in applied:
            raise DatabaseCorrupt(
                f"{file} is not a Therapy Timer database (it has none of our tables)."
            )
    finally:
        conn.close()


def _corrupt_restore_source(file: Path, detail: str) -> DatabaseCorrupt:
    return DatabaseCorrupt(
        f"{file} is damaged ({detail}), so it was not restored. Choose another backup."
    )


def restore(
    file: Path,
    *,
    data_dir: Path | None = None,
    clock: Clock,
    actor: str | None = None,
) -> Path | None:
    """Replace the database with ``file`` (validated first); returns the copy kept of the old one.

    Works when the current database is damaged (that is when it is needed most). Raises
    DatabaseCorrupt / DatabaseTooNew if ``file`` is not a Therapy Timer database we can read;
    then nothing is changed. An older schema is migrated after the restore. Returns None when
    there was no database to keep.
    """
    folder = default_data_dir(data_dir)
    db_path = database_path(folder)
    if not Path(file).is_file():
        raise InvalidInput("file", f"{file} does not exist or is not a file")
    now = clock.now()
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    with _translated(db_path):
        _private_dir(folder)
        _private_dir(backups_dir(folder))
        # Validate a private copy, so the source can neither change under us nor be modified
        # by opening it (a WAL-mode file gets -wal/-shm companions when opened).
        staged = backups_dir(folder) / f"restore-staging-{stamp}.sqlite3"
        staged.unlink(missing_ok=True)
        _private_file(staged)
        try:
            shutil.copyfile(file, staged)
            with _translated(Path(file)):
                try:
                    _validate_for_restore(staged)
                except sqlite3.DatabaseError as exc:
                    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
                        sqlite3.SQLITE_CORRUPT,
                        sqlite3.SQLITE_NOTADB,
                    ):
                        raise _corrupt_restore_source(Path(file), str(exc)) from exc
                    raise
            kept = _keep_current(db_path, backups_dir(folder) / f"pre-restore-{stamp}Z.sqlite3")
            _replace_database(staged, db_path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{staged}{suffix}").unlink(missing_ok=True)
    with Store.open(folder, clock=clock, actor=actor) as store:
        store.record_event(
            "database.restore",
            entity="database",
            entity_id=DB_FILENAME,
            reason=f"restored from {file}",
            details={"source": str(file), "previous_copy": str(kept) if kept else None},
        )
    return kept


def _keep_current(db_path: Path, dest: Path) -> Path | None:
    if not db_path.exists() or db_path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
        try:
            _copy_with_backup_api(conn, dest)
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        # Damaged beyond SQLite's reading: keep the raw bytes (and any -wal) for forensics.
        _private_file(dest)
        shutil.copyfile(db_path, dest)
        wal = Path(f"{db_path}-wal")
        if wal.exists():
            _private_file(Path(f"{dest}-wal"))
            shutil.copyfile(wal, Path(f"{dest}-wal"))
    return dest


def _replace_database(staged: Path, db_path: Path) -> None:
    source = sqlite3.connect(staged, isolation_level=None)
    try:
        try:
            # The backup API writes into the live file under SQLite's locks, so any other
            # connection sees the restored data instead of an unlinked file.
            _private_file(db_path)
            target = sqlite3.connect(db_path, isolation_level=None, timeout=5.0)
            try:
                target.execute("PRAGMA journal_mode=WAL")
                source.backup(target)
            finally:
                target.close()
            return
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (
                sqlite3.SQLITE_CORRUPT,
                sqlite3.SQLITE_NOTADB,
            ):
                raise
        # The current file is too damaged to write into: swap files. Its -wal must go too,
        # or SQLite would replay stale frames onto the restored database.
        partial = db_path.with_name(db_path.name + ".partial")
        partial.unlink(missing_ok=True)
        _copy_with_backup_api(source, partial)
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        os.replace(partial, db_path)
        _fsync_dir(db_path.parent)
    finally:
        source.close()


# ---------------------------------------------------------------------------------------------


class Store:
    """An open Therapy Timer database. Every mutating method commits before it returns.

    Errors caused by the environment (damaged, newer, read-only, locked file, full disk) raise the
    ``StorageUnavailable`` family; anything else is a bug and propagates unchanged.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        clock: Clock,
        actor: str,
        busy_timeout_ms: int,
    ) -> None:
        """Use ``Store.open``; this takes an already prepared connection."""
        self._conn = conn
        self._db = sqlite_utils.Database(conn, execute_plugins=False)
        self._path = path
        self._data_dir = path.parent
        self._clock = clock
        self._actor = actor
        self._busy_timeout_ms = busy_timeout_ms

    @classmethod
    def open(
        cls,
        data_dir: Path | None = None,
        *,
        clock: Clock,
        actor: str | None = None,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
    ) -> Store:
        """Open (creating and migrating as needed) the database in ``data_dir``.

        ``data_dir`` None means ``paths.data_dir()``. ``read_only`` opens without any write
        (no creation, no migration); writes then raise DatabaseReadOnly.
        """
        folder = default_data_dir(data_dir)
        db_path = database_path(folder)
        with _translated(db_path, busy_timeout_ms):
            conn = cls._connect(db_path, busy_timeout_ms, read_only)
            try:
                cls._prepare_schema(conn, db_path, read_only)
                if not read_only:
                    for suffix in ("-wal", "-shm"):
                        companion = Path(f"{db_path}{suffix}")
                        if companion.exists():
                            _private_file(companion)
            except BaseException:
                conn.close()
                raise
        return cls(
            conn,
            path=db_path,
            clock=clock,
            actor=actor or _default_actor(),
            busy_timeout_ms=busy_timeout_ms,
        )

    @staticmethod
    def _connect(db_path: Path, busy_timeout_ms: int, read_only: bool) -> sqlite3.Connection:
        if read_only:
            if not db_path.is_file():
                raise StorageUnavailable(f"There is no Therapy Timer database at {db_path}.")
            target = f"file:{quote(str(db_path))}?mode=ro"
        else:
            _private_dir(db_path.parent)
            _private_file(db_path)
            target = f"file:{quote(str(db_path))}?mode=rw"
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, never Python's implicit BEGIN.
        conn = sqlite3.connect(
            target, uri=True, isolation_level=None, timeout=busy_timeout_ms / 1000
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not read_only:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StorageUnavailable(
                        f"The database {db_path} could not be switched to safe-write (WAL)"
                        f" mode (got {mode!r}); it may be on a network drive that does not"
                        " support it. Move the data folder to a local disk."
                    )
            # FULL: in WAL mode a commit is on disk before COMMIT returns, so a screen that says
            # "started" never lies after a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _prepare_schema(conn: sqlite3.Connection, db_path: Path, read_only: bool) -> None:
        if read_only:
            applied = _check_ours(conn, db_path)
            if applied != _KNOWN_MIGRATIONS:
                raise DatabaseReadOnly(
                    f"The database {db_path} needs an upgrade to be used by this version, but it"
                    " was opened read-only. Open it once with write access."
                )
            return
        # IMMEDIATE also proves at once that we may write: a read-only file fails here,
        # not when the first timer starts.
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = _check_ours(conn, db_path)
            if applied != _KNOWN_MIGRATIONS:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db = sqlite_utils.Database(conn, execute_plugins=False)
                MIGRATIONS.apply(db)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @property
    def path(self) -> Path:
        return self._path

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; taken up front so a concurrent writer waits, never interleaves."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _audit(
        self,
        action: str,
        entity: str,
        entity_id: str,
        *,
        before: object = None,
        after: object = None,
        reason: str = "",
        actor: str | None = None,
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, before_json,"
            " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                _now(self._clock),
                actor or self._actor,
                action,
                entity,
                entity_id,
                _to_json(before),
                _to_json(after),
                reason,
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _session_row(self, session_id: str) -> Session:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", [session_id])
        if not rows:
            raise InvalidInput("session", f"there is no session with id {session_id!r}")
        return _session(rows[0])

    def _segment_row(self, segment_id: str) -> Segment:
        rows = self._rows("SELECT * FROM segments WHERE id = ?", [segment_id])
        if not rows:
            raise InvalidInput("segment", f"there is no segment with id {segment_id!r}")
        return _segment(rows[0])

    def _untimed_row(self, untimed_id: int) -> UntimedService:
        rows = self._rows("SELECT * FROM untimed_services WHERE id = ?", [untimed_id])
        if not rows:
            raise InvalidInput("untimed", f"there is no untimed service with id {untimed_id!r}")
        return _untimed(rows[0])

    def _mark_amended_if_closed(self, session: Session) -> None:
        if not session.is_open:
            self._conn.execute("UPDATE sessions SET amended = 1 WHERE id = ?", [session.id])

    def _check_no_exclusive_overlap(
        self, session_id: str, start: str, stop: str | None, ignore_id: str | None
    ) -> None:
        clash = self._conn.execute(
            "SELECT id, code FROM segments WHERE session_id = ? AND exclusive = 1 AND id IS NOT ?"
            " AND (? IS NULL OR start_utc < ?) AND (stop_utc IS NULL OR stop_utc > ?)",
            [session_id, ignore_id, stop, stop, start],
        ).fetchone()
        if clash is not None:
            raise InvalidOperation(
                f"those times overlap treatment code {clash[1]} (segment {clash[0]}) of the same"
                " session; the same minutes cannot be billed twice"
            )

    # database-wide ---------------------------------------------------------------------------

    @_guarded
    def data_version(self) -> int:
        """Changes when another connection commits (``PRAGMA data_version``): poll to refresh."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @_guarded
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @_guarded
    def check_integrity(self) -> None:
        """Raise DatabaseCorrupt unless ``PRAGMA quick_check`` passes."""
        rows = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            raise _corrupt(self._path, "; ".join(rows[:3]))

    # sessions -------------------------------------------------------------------------------

    @_guarded
    def create_session(
        self,
        *,
        date_of_service: date,
        patient_ref: str,
        clinician: str,
        role: Role,
        discipline: Discipline,
        payer_profile: str,
        actor: str | None = None,
    ) -> Session:
        """Insert an open session with a fresh UUID; patient_ref is a short label (InvalidInput)."""
        ref = _patient_ref(patient_ref)
        who = _label(clinician, "clinician")
        role = Role(role)
        discipline = Discipline(discipline)
        if role.discipline is not discipline:
            raise InvalidInput(
                "discipline", f"a {role.value} furnishes {role.discipline.value} services"
            )
        if not isinstance(date_of_service, date) or isinstance(date_of_service, datetime):
            raise InvalidInput("date_of_service", f"not a date: {date_of_service!r}")
        with self._write():
            self._profile_row(payer_profile)
            row = {
                "id": str(uuid.uuid4()),
                "date_of_service": date_of_service.isoformat(),
                "patient_ref": ref,
                "clinician": who,
                "role": role.value,
                "discipline": discipline.value,
                "payer_profile": payer_profile,
                "status": SessionStatus.OPEN.value,
                "amended": 0,
                "exported": 0,
                "created_utc": _now(self._clock),
                "closed_utc": None,
                "paused_utc": None,
                "resume_json": "[]",
            }
            self._db.table("sessions").insert(row)
            session = _session(row)
            self._audit("session.create", "session", session.id, after=session, actor=actor)
        return session

    @_guarded
    def get_session(self, session_id: str) -> Session:
        """The session, or InvalidInput("session", ...) if there is none with that id."""
        return self._session_row(session_id)

    @_guarded
    def list_sessions(
        self,
        *,
        day: date | None = None,
        start: date | None = None,
        end: date | None = None,
        status: SessionStatus | None = None,
        clinician: str | None = None,
    ) -> list[Session]:
        """Sessions of one day, or of ``start``..``end`` inclusive, in order of creation."""
        if day is not None and (start is not None or end is not None):
            raise ValueError("pass either day or start/end, not both")
        where: list[str] = []
        params: list[object] = []
        if day is not None:
            where.append("date_of_service = ?")
            params.append(day.isoformat())
        if start is not None:
            where.append("date_of_service >= ?")
            params.append(start.isoformat())
        if end is not None:
            where.append("date_of_service <= ?")
            params.append(end.isoformat())
        if status is not None:
            where.append("status = ?")
            params.append(SessionStatus(status).value)
        if clinician is not None:
            where.append("clinician = ?")
            params.append(clinician)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY date_of_service, created_utc, id"
        return [_session(r) for r in self._rows(sql, params)]

    @_guarded
    def close_session(
        self, session_id: str, *, stops: Sequence[SegmentStop] = (), actor: str | None = None
    ) -> Session:
        """Stop ``stops`` and close the session in one transaction; refuses if any still runs."""
        with self._write():
            before = self._session_row(session_id)
            if not before.is_open:
                raise InvalidOperation(f"session {session_id} is already closed")
            stopped = self._stop_segments(session_id, stops)
            still = self._conn.execute(
                "SELECT code FROM segments WHERE session_id = ? AND stop_utc IS NULL",
                [session_id],
            ).fetchall()
            if still:
                codes = ", ".join(sorted(str(r[0]) for r in still))
                raise InvalidOperation(f"stop the running codes first ({codes})")
            self._conn.execute(
                "UPDATE sessions SET status = 'closed', closed_utc = ?, paused_utc = NULL,"
                " resume_json = '[]' WHERE id = ?",
                [_now(self._clock), session_id],
            )
            after = self._session_row(session_id)
            self._audit(
                "session.close",
                "session",
                session_id,
                before={"status": before.status, "stopped": _in_session(stopped[0])},
                after={
                    "status": after.status,
                    "closed_utc": after.closed_utc,
                    "stopped": _in_session(stopped[1]),
                },
                actor=actor,
            )
        return after

    @_guarded
    def mark_exported(self, session_ids: Sequence[str], *, actor: str | None = None) -> None:
        with self._write():
            # A session changed after its export goes out again, and that export is audited too.
            again = self._changed_since_export(session_ids)
            for session_id in session_ids:
                session = self._session_row(session_id)
                if session.exported and session_id not in again:
                    continue
                self._conn.execute("UPDATE sessions SET exported = 1 WHERE id = ?", [session_id])
                self._audit(
                    "session.export",
                    "session",
                    session_id,
                    before={"exported": session.exported},
                    after={"exported": True},
                    actor=actor,
                )

    @_guarded
    def amend_session(
        self,
        session_id: str,
        *,
        reason: str,
        patient_ref: str | None = None,
        payer_profile: str | None = None,
        date_of_service: date | None = None,
        actor: str | None = None,
    ) -> Session:
        """Change a session's header; needs a reason; marks a closed session amended."""
        why = _reason(reason)
        changes: dict[str, object] = {}
        if patient_ref is not None:
            changes["patient_ref"] = _patient_ref(patient_ref)
        if date_of_service is not None:
            changes["date_of_service"] = date_of_service.isoformat()
        with self._write():
            before = self._session_row(session_id)
            if payer_profile is not None:
                changes["payer_profile"] = self._profile_row(payer_profile).name
            if not changes:
                return before
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._conn.execute(
                f"UPDATE sessions SET {assignments} WHERE id = ?", [*changes.values(), session_id]
            )
            self._mark_amended_if_closed(before)
            after = self._session_row(session_id)
            self._audit(
                "session.amend",
                "session",
                session_id,
                before=before,
                after=after,
                reason=why,
                actor=actor,
            )
        return after

    @_guarded
    def choose_allocation(
        self,
        session_id: str,
        allocation: Mapping[str, int] | None,
        *,
        reason: str = "",
        actor: str | None = None,
    ) -> Session:
        """Record which valid CMS allocation a tie resolved to (R2.8); None = the default.

        The caller checks validity against the rules. Changing it on a closed session needs a
        reason and marks the session amended, like any other edit after closing.
        """
        stored = None
        if allocation is not None:
            stored = json.dumps(
                {normalize_code(c, "allocation"): int(u) for c, u in allocation.items()},
                sort_keys=True,
            )
        with self._write():
            before = self._session_row(session_id)
            why = reason.strip() if before.is_open else _reason(reason)
            self._conn.execute(
                "UPDATE sessions SET allocation_json = ? WHERE id = ?", [stored, session_id]
            )
            self._mark_amended_if_closed(before)
            after = self._session_row(session_id)
            self._audit(
                "session.allocation",
                "session",
                session_id,
                before={"allocation": before.allocation},
                after={"allocation": after.allocation},
                reason=why,
                actor=actor,
            )
        return after

    # segments -------------------------------------------------------------------------------

    @_guarded
    def get_segment(self, segment_id: str) -> Segment:
        return self._segment_row(segment_id)

    @_guarded
    def segments(self, session_id: str) -> list[Segment]:
        """A session's segments in start order."""
        rows = self._rows(
            "SELECT * FROM segments WHERE session_id = ? ORDER BY start_utc, id", [session_id]
        )
        return [_segment(r) for r in rows]

    @_guarded
    def open_segments(self, session_id: str | None = None) -> list[Segment]:
        """Segments with no stop time (all sessions by default): what to recover after a crash."""
        if session_id is None:
            rows = self._rows("SELECT * FROM segments WHERE stop_utc IS NULL ORDER BY start_utc")
        else:
            rows = self._rows(
                "SELECT * FROM segments WHERE stop_utc IS NULL AND session_id = ?"
                " ORDER BY start_utc",
                [session_id],
            )
        return [_segment(r) for r in rows]

    def _stop_segments(
        self, session_id: str, stops: Sequence[SegmentStop]
    ) -> tuple[list[Segment], list[Segment]]:
        """Inside a transaction: stop each segment; (before, after) records."""
        befores: list[Segment] = []
        afters: list[Segment] = []
        for stop in stops:
            segment = self._segment_row(stop.segment_id)
            if segment.session_id != session_id:
                raise InvalidInput("segment", f"segment {segment.id} belongs to another session")
            if not segment.running:
                raise InvalidOperation(
                    f"{segment.code} was already stopped (perhaps by another window or"
                    " command); refresh and try again"
                )
            stop_text = _ts(stop.stop_utc, "stop_utc")
            if stop.stop_utc < segment.start_utc:
                raise InvalidInput("stop_utc", f"{segment.code} cannot stop before it started")
            self._conn.execute(
                "UPDATE segments SET stop_utc = ? WHERE id = ?", [stop_text, segment.id]
            )
            befores.append(segment)
            afters.append(
                Segment(
                    segment.id,
                    segment.session_id,
                    segment.code,
                    segment.furnished_by,
                    segment.exclusive,
                    segment.start_utc,
                    _dt(stop_text),
                )
            )
        return befores, afters

    @_guarded
    def apply_stopwatch_change(
        self, change: StopwatchChange, *, actor: str | None = None
    ) -> AppliedChange:
        """Apply a stopwatch step in ONE write transaction (BEGIN IMMEDIATE), audited.

        Re-checks inside the transaction that after the change at most one exclusive segment of
        the session runs, so two processes can never both start a treatment code: the loser
        gets InvalidOperation. Segments to stop must still be running (else InvalidOperation:
        another process changed the stopwatch first).
        """
        if change.pause is not None and change.clear_pause:
            raise ValueError("a stopwatch change cannot both pause and resume")
        starts = [
            (normalize_code(s.code, "code"), FurnishedBy(s.furnished_by), bool(s.exclusive), s)
            for s in change.starts
        ]
        start_texts = [_ts(s.start_utc, "start_utc") for s in change.starts]
        session_id = change.session_id
        with self._write():
            before = self._session_row(session_id)
            if not before.is_open:
                raise InvalidOperation("this session is closed; amend it instead")
            # [sessions.py] Re-stating the pause at the same moment changes what will resume
            # (a code stopped, or furnished-by changed, while paused); any other pause is a clash.
            if (
                change.pause is not None
                and before.is_paused
                and change.pause.at_utc != before.paused_utc
            ):
                raise InvalidOperation("the stopwatch is already paused")
            if change.clear_pause and not before.is_paused:
                raise InvalidOperation("the stopwatch is not paused")
            stopping = {s.segment_id for s in change.stops}
            running = [seg for seg in self.open_segments(session_id) if seg.id not in stopping]
            running_codes = {seg.code for seg in running}
            exclusive_running = [seg for seg in running if seg.exclusive]
            new_exclusive = [code for code, _, exclusive, _ in starts if exclusive]
            if len(exclusive_running) + len(new_exclusive) > 1:
                other = exclusive_running[0].code if exclusive_running else new_exclusive[0]
                raise InvalidOperation(
                    f"treatment code {other} is already running in this session (perhaps started"
                    " by another window or command); stop it first"
                )
            new_codes = [code for code, _, _, _ in starts]
            duplicate = running_codes.intersection(new_codes) or (
                set() if len(set(new_codes)) == len(new_codes) else set(new_codes)
            )
            if duplicate:
                raise InvalidOperation(f"{sorted(duplicate)[0]} is already running")
            stopped_before, stopped = self._stop_segments(session_id, change.stops)
            started: list[Segment] = []
            for (code, furnished_by, exclusive, spec), start_text in zip(
                starts, start_texts, strict=True
            ):
                segment_id = spec.id or uuid.uuid4().hex
                self._conn.execute(
                    "INSERT INTO segments (id, session_id, code, furnished_by, exclusive,"
                    " start_utc) VALUES (?, ?, ?, ?, ?, ?)",
                    [segment_id, session_id, code, furnished_by.value, int(exclusive), start_text],
                )
                started.append(
                    Segment(
                        segment_id,
                        session_id,
                        code,
                        furnished_by,
                        exclusive,
                        _dt(start_text),
                        None,
                    )
                )
            if change.pause is not None:
                self._conn.execute(
                    "UPDATE sessions SET paused_utc = ?, resume_json = ? WHERE id = ?",
                    [
                        _ts(change.pause.at_utc, "pause.at_utc"),
                        _spec_json(change.pause.resume),
                        session_id,
                    ],
                )
            elif change.clear_pause:
                self._conn.execute(
                    "UPDATE sessions SET paused_utc = NULL, resume_json = '[]' WHERE id = ?",
                    [session_id],
                )
            after = (
                self._session_row(session_id)
                if change.pause is not None or change.clear_pause
                else before
            )
            self._audit(
                change.action,
                "session",
                session_id,
                before={"stopped": _in_session(stopped_before), "paused_utc": before.paused_utc},
                after={
                    "stopped": _in_session(stopped),
                    "started": _in_session(started),
                    "paused_utc": after.paused_utc,
                },
                reason=change.reason.strip(),
                actor=actor,
            )
        return AppliedChange(after, tuple(stopped), tuple(started))

    @_guarded
    def discard_segment(self, segment_id: str, *, reason: str, actor: str | None = None) -> Segment:
        """Delete a segment (e.g. after a crash), keeping it in the audit log; needs a reason."""
        why = _reason(reason)
        with self._write():
            segment = self._segment_row(segment_id)
            session = self._session_row(segment.session_id)
            self._conn.execute("DELETE FROM segments WHERE id = ?", [segment_id])
            self._mark_amended_if_closed(session)
            self._audit(
                "segment.discard",
                "segment",
                str(segment_id),
                before=segment,
                reason=why,
                actor=actor,
            )
        return segment

    @_guarded
    def amend_segment(
        self,
        segment_id: str,
        *,
        reason: str,
        start_utc: datetime | None = None,
        stop_utc: datetime | None = None,
        code: str | None = None,
        furnished_by: FurnishedBy | None = None,
        exclusive: bool | None = None,
        actor: str | None = None,
    ) -> Segment:
        """Edit a recorded segment after the fact; needs a reason; marks a closed session amended.

        Refuses edits that make two exclusive segments of the session overlap, and a stop time for
        a segment still running (stop it with the stopwatch).
        """
        why = _reason(reason)
        new_code = None if code is None else normalize_code(code, "code")
        with self._write():
            before = self._segment_row(segment_id)
            session = self._session_row(before.session_id)
            if stop_utc is not None and before.running:
                raise InvalidOperation(f"{before.code} is still running; stop it first")
            start = _ts(start_utc if start_utc is not None else before.start_utc, "start_utc")
            new_stop = stop_utc if stop_utc is not None else before.stop_utc
            stop = None if new_stop is None else _ts(new_stop, "stop_utc")
            if stop is not None and _dt(stop) < _dt(start):
                raise InvalidInput("stop_utc", "a segment cannot stop before it starts")
            is_exclusive = before.exclusive if exclusive is None else bool(exclusive)
            if is_exclusive:
                self._check_no_exclusive_overlap(session.id, start, stop, segment_id)
            self._conn.execute(
                "UPDATE segments SET start_utc = ?, stop_utc = ?, code = ?, furnished_by = ?,"
                " exclusive = ? WHERE id = ?",
                [
                    start,
                    stop,
                    new_code or before.code,
                    FurnishedBy(furnished_by or before.furnished_by).value,
                    int(is_exclusive),
                    segment_id,
                ],
            )
            self._mark_amended_if_closed(session)
            after = self._segment_row(segment_id)
            self._audit(
                "segment.amend",
                "segment",
                str(segment_id),
                before=before,
                after=after,
                reason=why,
                actor=actor,
            )
        return after

    @_guarded
    def add_segment(
        self,
        session_id: str,
        *,
        code: str,
        furnished_by: FurnishedBy,
        exclusive: bool,
        start_utc: datetime,
        stop_utc: datetime,
        reason: str,
        actor: str | None = None,
    ) -> Segment:
        """Add a finished segment by hand (a forgotten code); needs a reason."""
        why = _reason(reason)
        clean_code = normalize_code(code, "code")
        start, stop = _ts(start_utc, "start_utc"), _ts(stop_utc, "stop_utc")
        if stop_utc < start_utc:
            raise InvalidInput("stop_utc", "a segment cannot stop before it starts")
        with self._write():
            session = self._session_row(session_id)
            if exclusive:
                self._check_no_exclusive_overlap(session_id, start, stop, None)
            segment_id = uuid.uuid4().hex
            self._conn.execute(
                "INSERT INTO segments (id, session_id, code, furnished_by, exclusive, start_utc,"
                " stop_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    segment_id,
                    session_id,
                    clean_code,
                    FurnishedBy(furnished_by).value,
                    int(exclusive),
                    start,
                    stop,
                ],
            )
            self._mark_amended_if_closed(session)
            after = self._segment_row(segment_id)
            self._audit(
                "segment.add", "segment", str(after.id), after=after, reason=why, actor=actor
            )
        return after

    # untimed services ------------------------------------------------------------------------

    @_guarded
    def segments_of(self, session_ids: Sequence[str]) -> dict[str, list[Segment]]:
        """Segments of many sessions in one query, by session id, each in start order."""
        found: dict[str, list[Segment]] = {}
        for chunk in _chunks(session_ids):
            rows = self._rows(
                f"SELECT * FROM segments WHERE session_id IN ({', '.join('?' * len(chunk))})"
                " ORDER BY session_id, start_utc, id",
                chunk,
            )
            for row in rows:
                found.setdefault(row["session_id"], []).append(_segment(row))
        return found

    @_guarded
    def untimed_services_of(self, session_ids: Sequence[str]) -> dict[str, list[UntimedService]]:
        """Untimed services of many sessions in one query, by session id."""
        found: dict[str, list[UntimedService]] = {}
        for chunk in _chunks(session_ids):
            rows = self._rows(
                "SELECT * FROM untimed_services WHERE session_id IN"
                f" ({', '.join('?' * len(chunk))}) ORDER BY session_id, id",
                chunk,
            )
            for row in rows:
                found.setdefault(row["session_id"], []).append(_untimed(row))
        return found

    @_guarded
    def session_record(self, session_id: str) -> dict[str, Any]:
        """A closed session as plain JSON data, with its segments, untimed services and audit."""
        (record,) = self.session_records([session_id])
        return record

    @_guarded
    def import_session_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        origin: str,
        source: str,
        actor: str | None = None,
    ) -> ImportOutcome:
        """Merge closed sessions from another workstation in one transaction.

        A session already here with the same content is left alone; one with the same id and
        different content is returned as a conflict and not written. Every record is checked
        before anything is written; a malformed one raises InvalidInput naming it.
        """
        batch = RecordBatch(records, origin=origin, source=source)
        return self.import_batches([batch], actor=actor)[0]

    def check_session_records(
        self, records: Sequence[object], *, source: str
    ) -> list[dict[str, Any]]:
        """Check bundle records without writing; InvalidInput names the file and the record."""
        return [
            self._checked_record(r, f"{source}: session {i + 1}") for i, r in enumerate(records)
        ]

    def _checked_record(self, record: object, where: str) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            raise InvalidInput(where, "is not a session record")
        try:
            clean = dict(record)
            uuid.UUID(str(clean["id"]))
            if clean["status"] != SessionStatus.CLOSED.value:
                raise InvalidInput(where, "is an open session; only closed sessions are merged")
            _patient_ref(clean["patient_ref"])
            _label(clean["clinician"], "clinician")
            Role(clean["role"])
            Discipline(clean["discipline"])
            date.fromisoformat(clean["date_of_service"])
            _dt(clean["created_utc"])
            if clean["closed_utc"] is not None:
                _dt(clean["closed_utc"])
            # Written as they come: a wrong type here would fail half-way through the import.
            _of_type(clean["amended"], bool, "amended")
            allocation = clean.get("allocation")
            if allocation is not None:
                _of_type(allocation, dict, "allocation")
                for code, units in allocation.items():
                    _of_type(code, str, "allocation code")
                    _of_type(units, int, "allocation units")
            payer = clean["payer"]
            Method(payer["method"])
            _of_type(payer["assistant_modifiers"], bool, "assistant_modifiers")
            if payer["name"] != clean["payer_profile"]:
                raise InvalidInput(where, "names two different payer profiles")
            for segment in clean["segments"]:
                uuid.UUID(_of_type(segment["id"], str, "segment id"))
                _of_type(segment["exclusive"], bool, "exclusive")
                normalize_code(segment["code"], f"{where} segment code")
                FurnishedBy(segment["furnished_by"])
                start = _dt(segment["start_utc"])
                if segment["stop_utc"] is None or _dt(segment["stop_utc"]) < start:
                    raise InvalidInput(where, "has a segment that is running or ends early")
            for service in clean["untimed"]:
                normalize_code(service["code"], f"{where} untimed code")
                FurnishedBy(service["furnished_by"])
                self._minutes(service["minutes"])
            if not isinstance(clean.get("audit", []), list):
                raise InvalidInput(where, "has a damaged audit trail")
            for entry in clean.get("audit", []):
                _dt(entry["at_utc"])
                for name in ("actor", "action", "entity", "entity_id"):
                    _of_type(entry[name], str, f"audit {name}")
                _of_type(entry.get("reason", ""), str, "audit reason")
        except InvalidInput:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(where, f"is damaged ({type(exc).__name__}: {exc})") from None
        return clean

    def _import_payer(self, payer: Mapping[str, Any]) -> bool:
        """Add a payer profile this station lacks; False if it exists with other rules."""
        rows = self._rows("SELECT * FROM payer_profiles WHERE name = ?", [payer["name"]])
        wanted = {
            "name": payer["name"],
            "method": Method(payer["method"]).value,
            "assistant_modifiers": int(bool(payer["assistant_modifiers"])),
        }
        if not rows:
            self._db.table("payer_profiles").insert(wanted)
            return True
        return rows[0] == wanted

    def _insert_record(self, record: Mapping[str, Any], origin: str) -> None:
        allocation = record.get("allocation")
        self._db.table("sessions").insert(
            {
                "id": record["id"],
                "date_of_service": record["date_of_service"],
                "patient_ref": record["patient_ref"],
                "clinician": record["clinician"],
                "role": record["role"],
                "discipline": record["discipline"],
                "payer_profile": record["payer_profile"],
                "status": SessionStatus.CLOSED.value,
                "amended": int(bool(record["amended"])),
                "exported": 0,
                "created_utc": _norm_ts(record["created_utc"]),
                "closed_utc": _norm_ts(record.get("closed_utc")),
                "paused_utc": None,
                "resume_json": "[]",
                "allocation_json": None
                if allocation is None
                else json.dumps(allocation, sort_keys=True),
                "origin": origin,
            }
        )
        # Timestamps are compared as text (ordering, stop >= start): store them in our one form.
        for segment in record["segments"]:
            self._db.table("segments").insert(
                {
                    "id": str(segment["id"]),
                    "code": normalize_code(segment["code"], "code"),
                    "furnished_by": FurnishedBy(segment["furnished_by"]).value,
                    "exclusive": int(bool(segment["exclusive"])),
                    "start_utc": _norm_ts(segment["start_utc"]),
                    "stop_utc": _norm_ts(segment["stop_utc"]),
                    "session_id": record["id"],
                }
            )
        for service in record["untimed"]:
            self._db.table("untimed_services").insert(
                {
                    "code": normalize_code(service["code"], "code"),
                    "minutes": service["minutes"],
                    "furnished_by": FurnishedBy(service["furnished_by"]).value,
                    "created_utc": _norm_ts(service["created_utc"]),
                    "session_id": record["id"],
                }
            )
        for entry in record.get("audit", []):
            self._conn.execute(
                "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, before_json,"
                " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    _norm_ts(entry["at_utc"]),
                    f"{entry['actor']}@{origin}",
                    entry["action"],
                    entry["entity"],
                    entry["entity_id"],
                    _to_json(entry.get("before")),
                    _to_json(entry.get("after")),
                    entry.get("reason", ""),
                ],
            )

    @_guarded
    def untimed_services(self, session_id: str) -> list[UntimedService]:
        rows = self._rows(
            "SELECT * FROM untimed_services WHERE session_id = ? ORDER BY id", [session_id]
        )
        return [_untimed(r) for r in rows]

    @staticmethod
    def _minutes(minutes: int | None) -> int | None:
        if minutes is None:
            return None
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 1440:
            raise InvalidInput("minutes", f"must be whole minutes from 0 to 1440, got {minutes!r}")
        return minutes

    @_guarded
    def add_untimed(
        self,
        session_id: str,
        *,
        code: str,
        minutes: int | None = None,
        furnished_by: FurnishedBy = FurnishedBy.THERAPIST,
        reason: str = "",
        actor: str | None = None,
    ) -> UntimedService:
        """Record an untimed service; on a closed session it is an amendment and needs a reason."""
        clean_code = normalize_code(code, "code")
        clean_minutes = self._minutes(minutes)
        with self._write():
            session = self._session_row(session_id)
            why = reason.strip() if session.is_open else _reason(reason)
            cursor = self._conn.execute(
                "INSERT INTO untimed_services (session_id, code, minutes, furnished_by,"
                " created_utc) VALUES (?, ?, ?, ?, ?)",
                [
                    session_id,
                    clean_code,
                    clean_minutes,
                    FurnishedBy(furnished_by).value,
                    _now(self._clock),
                ],
            )
            assert cursor.lastrowid is not None
            self._mark_amended_if_closed(session)
            after = self._untimed_row(cursor.lastrowid)
            self._audit(
                "untimed.add", "untimed", str(after.id), after=after, reason=why, actor=actor
            )
        return after

    @_guarded
    def amend_untimed(
        self,
        untimed_id: int,
        *,
        reason: str,
        code: str | None = None,
        minutes: int | _Keep | None = KEEP,
        furnished_by: FurnishedBy | None = None,
        actor: str | None = None,
    ) -> UntimedService:
        why = _reason(reason)
        new_code = None if code is None else normalize_code(code, "code")
        with self._write():
            before = self._untimed_row(untimed_id)
            session = self._session_row(before.session_id)
            new_minutes = before.minutes if isinstance(minutes, _Keep) else self._minutes(minutes)
            self._conn.execute(
                "UPDATE untimed_services SET code = ?, minutes = ?, furnished_by = ? WHERE id = ?",
                [
                    new_code or before.code,
                    new_minutes,
                    FurnishedBy(furnished_by or before.furnished_by).value,
                    untimed_id,
                ],
            )
            self._mark_amended_if_closed(session)
            after = self._untimed_row(untimed_id)
            self._audit(
                "untimed.amend",
                "untimed",
                str(untimed_id),
                before=before,
                after=after,
                reason=why,
                actor=actor,
            )
        return after

    @_guarded
    def remove_untimed(
        self, untimed_id: int, *, reason: str, actor: str | None = None
    ) -> UntimedService:
        why = _reason(reason)
        with self._write():
            before = self._untimed_row(untimed_id)
            session = self._session_row(before.session_id)
            self._conn.execute("DELETE FROM untimed_services WHERE id = ?", [untimed_id])
            self._mark_amended_if_closed(session)
            self._audit(
                "untimed.remove",
                "untimed",
                str(untimed_id),
                before=before,
                reason=why,
                actor=actor,
            )
        return before

    # audit -----------------------------------------------------------------------------------

    @_guarded
    def audit_entries(
        self,
        *,
        entity: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries oldest first (filtered); ``limit`` keeps the newest ones."""
        where: list[str] = []
        params: list[object] = []
        if entity is not None:
            where.append("entity = ?")
            params.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            params.append(entity_id)
        if since is not None:
            where.append("at_utc >= ?")
            params.append(_ts(since, "since"))
        sql = "SELECT * FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_audit_entry(r) for r in reversed(self._rows(sql, params))]

    @_guarded
    def record_event(
        self,
        action: str,
        *,
        entity: str,
        entity_id: str,
        reason: str = "",
        details: Mapping[str, object] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        """Audit a decision that changes no data (e.g. "keep running" after a crash)."""
        with self._write():
            entry_id = self._audit(
                _label(action, "action"),
                entity,
                entity_id,
                after=details,
                reason=reason.strip(),
                actor=actor,
            )
            row = self._rows("SELECT * FROM audit_log WHERE id = ?", [entry_id])[0]
        return _audit_entry(row)

    # heartbeat and settings ------------------------------------------------------------------

    @_guarded
    def write_heartbeat(self, at_utc: datetime | None = None) -> None:
        """Record that the app is alive (not audited: it would flood the log)."""
        at = _ts(at_utc, "at_utc") if at_utc is not None else _now(self._clock)
        with self._write():
            self._conn.execute(
                "INSERT INTO heartbeat (id, at_utc) VALUES (1, ?)"
                " ON CONFLICT(id) DO UPDATE SET at_utc = excluded.at_utc",
                [at],
            )

    @_guarded
    def last_heartbeat(self) -> datetime | None:
        row = self._conn.execute("SELECT at_utc FROM heartbeat WHERE id = 1").fetchone()
        return None if row is None else _dt(row[0])

    @_guarded
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else str(row[0])

    @_guarded
    def set_setting(self, key: str, value: str, *, actor: str | None = None) -> None:
        clean_key = _label(key, "key")
        if not isinstance(value, str):
            raise InvalidInput(clean_key, f"a setting is text, got {value!r}")
        with self._write():
            row = self._conn.execute(
                "SELECT value FROM settings WHERE key = ?", [clean_key]
            ).fetchone()
            old = None if row is None else str(row[0])
            if old == value:
                return
            self._conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [clean_key, value],
            )
            self._audit(
                "setting.set",
                "setting",
                clean_key,
                before=None if old is None else {"value": old},
                after={"value": value},
                actor=actor,
            )

    @_guarded
    def settings(self) -> dict[str, str]:
        return {
            str(k): str(v)
            for k, v in self._conn.execute("SELECT key, value FROM settings ORDER BY key")
        }

    # payer profiles --------------------------------------------------------------------------

    def _profile_row(self, name: str) -> PayerProfile:
        rows = self._rows("SELECT * FROM payer_profiles WHERE name = ?", [name])
        if not rows:
            raise InvalidInput("payer_profile", f"there is no payer profile named {name!r}")
        return _profile(rows[0])

    @_guarded
    def payer_profiles(self) -> list[PayerProfile]:
        return [_profile(r) for r in self._rows("SELECT * FROM payer_profiles ORDER BY name")]

    @_guarded
    def get_payer_profile(self, name: str) -> PayerProfile:
        """The profile, or InvalidInput("payer_profile", ...) if unknown."""
        return self._profile_row(name)

    @_guarded
    def save_payer_profile(
        self, profile: PayerProfile, *, actor: str | None = None
    ) -> PayerProfile:
        """Insert or update a profile by name."""
        clean = PayerProfile(
            name=_label(profile.name, "payer_profile"),
            method=Method(profile.method),
            assistant_modifiers=bool(profile.assistant_modifiers),
        )
        with self._write():
            rows = self._rows("SELECT * FROM payer_profiles WHERE name = ?", [clean.name])
            before = _profile(rows[0]) if rows else None
            if before == clean:
                return clean
            self._conn.execute(
                "INSERT INTO payer_profiles (name, method, assistant_modifiers) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET method = excluded.method,"
                " assistant_modifiers = excluded.assistant_modifiers",
                [clean.name, clean.method.value, int(clean.assistant_modifiers)],
            )
            self._audit(
                "payer_profile.save",
                "payer_profile",
                clean.name,
                before=before,
                after=clean,
                actor=actor,
            )
        return clean

    @_guarded
    def delete_payer_profile(self, name: str, *, actor: str | None = None) -> None:
        """Delete an unused profile; InvalidOperation if sessions refer to it."""
        with self._write():
            before = self._profile_row(name)
            used = int(
                self._conn.execute(
                    "SELECT count(*) FROM sessions WHERE payer_profile = ?", [name]
                ).fetchone()[0]
            )
            if used:
                raise InvalidOperation(
                    f"payer profile {name!r} is used by {used} session(s) and cannot be deleted"
                )
            self._conn.execute("DELETE FROM payer_profiles WHERE name = ?", [name])
            self._audit("payer_profile.delete", "payer_profile", name, before=before, actor=actor)

    # backups ---------------------------------------------------------------------------------

    @_guarded
    def backup(self, dest: Path | None = None) -> Path:
        """Copy the database with SQLite's backup API (0600) to ``dest`` or the backups folder."""
        target = _new_backup_path(self._data_dir, self._clock.now()) if dest is None else dest
        with _translated(target, self._busy_timeout_ms):
            _copy_with_backup_api(self._conn, target)
        return target

    @_guarded
    def daily_backup(self) -> Path | None:
        """Make today's backup unless there is one; keep the newest 14. None if already done.

        Checks integrity first: a damaged database must not push good backups out of the 14.
        """
        now = self._clock.now()
        latest = latest_backup(self._data_dir)
        today = now.astimezone().date()
        if latest is not None and _backup_time(latest).astimezone().date() == today:
            return None
        self.check_integrity()
        made = self.backup()
        for old in list_backups(self._data_dir)[:-BACKUPS_KEPT]:
            old.unlink(missing_ok=True)
        return made

    # bundles: many sessions at once ----------------------------------------------------------

    @_guarded
    def session_records(self, session_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Closed sessions as plain JSON data, in the order asked, read in a few queries.

        Each has its fields, payer profile, segments, untimed services and every audit entry of
        the session and of its segments and untimed services (also of discarded ones).
        """
        ids = list(dict.fromkeys(session_ids))
        rows: dict[str, Session] = {}
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            for row in self._rows(f"SELECT * FROM sessions WHERE id IN ({marks})", chunk):
                rows[row["id"]] = _session(row)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise InvalidInput("session", f"there is no session with id {missing[0]!r}")
        still_open = [rows[i] for i in ids if rows[i].is_open]
        if still_open:
            first = still_open[0]
            raise InvalidOperation(
                f"session {first.id} ({first.patient_ref}) is still open; close it first"
            )
        profiles = {p.name: p for p in self.payer_profiles()}
        segments = self.segments_of(ids)
        untimed = self.untimed_services_of(ids)
        audit = self._audit_of_sessions(ids)
        records = []
        for session_id in ids:
            session = rows[session_id]
            record: dict[str, Any] = {
                name: _jsonable(getattr(session, name)) for name in _RECORD_SESSION_FIELDS
            }
            record["payer"] = _jsonable(profiles[session.payer_profile])
            record["segments"] = [
                {
                    "id": seg.id,
                    "code": seg.code,
                    "furnished_by": seg.furnished_by.value,
                    "exclusive": seg.exclusive,
                    "start_utc": seg.start_utc.isoformat(),
                    "stop_utc": _jsonable(seg.stop_utc),
                }
                for seg in segments.get(session_id, [])
            ]
            record["untimed"] = [
                {
                    "code": u.code,
                    "minutes": u.minutes,
                    "furnished_by": u.furnished_by.value,
                    "created_utc": u.created_utc.isoformat(),
                }
                for u in untimed.get(session_id, [])
            ]
            record["audit"] = [_jsonable(entry) for entry in audit.get(session_id, [])]
            records.append(record)
        return records

    def _audit_of_sessions(self, session_ids: Sequence[str]) -> dict[str, list[AuditEntry]]:
        """Audit entries by session, oldest first: the session's own and its children's.

        Children (segments, untimed services) are found by the session id in the payload,
        through the m005 index, so that entries of deleted children come along too.
        """
        found: dict[str, list[AuditEntry]] = {}
        for chunk in _chunks(session_ids):
            marks = ", ".join("?" * len(chunk))
            rows = self._rows(
                f"SELECT *, entity_id AS owner FROM audit_log WHERE entity = 'session'"
                f" AND entity_id IN ({marks})"
                f" UNION ALL SELECT *, {_CHILD_SESSION} AS owner FROM audit_log"
                f" WHERE entity IN ('segment', 'untimed') AND {_CHILD_SESSION} IN ({marks})"
                " ORDER BY id",
                [*chunk, *chunk],
            )
            for row in rows:
                found.setdefault(row.pop("owner"), []).append(_audit_entry(row))
        return found

    @_guarded
    def import_batches(
        self, batches: Sequence[RecordBatch], *, actor: str | None = None
    ) -> list[ImportOutcome]:
        """Merge several bundles' closed sessions in one transaction; an outcome per batch.

        Every record of every batch is checked before anything is written (a malformed one
        raises InvalidInput naming its file). A session already here with the same content is
        left alone; one with the same id and other content, or whose payer profile has other
        rules here, is returned as a conflict and not written.
        """
        checked = [self.check_session_records(b.records, source=b.source) for b in batches]
        outcomes: list[ImportOutcome] = []
        with self._write():
            # What each id holds here, as _record_content; None: open here, never the same.
            here: dict[str, str | None] = {}
            for batch, records in zip(batches, checked, strict=True):
                here.update(self._contents_here([r["id"] for r in records if r["id"] not in here]))
                added: list[str] = []
                unchanged: list[str] = []
                conflicts: list[Mapping[str, Any]] = []
                why: dict[str, str] = {}
                for record in records:
                    session_id = record["id"]
                    reason = self._import_one(record, batch, here, actor)
                    if reason is None:
                        added.append(session_id)
                    elif reason == "":
                        unchanged.append(session_id)
                    else:
                        conflicts.append(record)
                        why[session_id] = reason
                outcomes.append(
                    ImportOutcome(tuple(added), tuple(unchanged), tuple(conflicts), why)
                )
        return outcomes

    def _contents_here(self, session_ids: Sequence[str]) -> dict[str, str | None]:
        status: dict[str, str] = {}
        for chunk in _chunks(session_ids):
            marks = ", ".join("?" * len(chunk))
            for row in self._rows(f"SELECT id, status FROM sessions WHERE id IN ({marks})", chunk):
                status[row["id"]] = row["status"]
        closed = [i for i, s in status.items() if s == SessionStatus.CLOSED.value]
        contents: dict[str, str | None] = {i: None for i in status}
        for record in self.session_records(closed):
            contents[record["id"]] = _record_content(record)
        return contents

    def _import_one(
        self,
        record: Mapping[str, Any],
        batch: RecordBatch,
        here: dict[str, str | None],
        actor: str | None,
    ) -> str | None:
        """Insert one checked record: None if added, "" if already here, else why not."""
        session_id = record["id"]
        content = _record_content(record)
        if session_id in here:
            if here[session_id] == content:
                return ""
            if here[session_id] is None:
                return "the session is still open here"
            return "a session with this id is already here with other content"
        segment_ids = [str(s["id"]) for s in record["segments"]]
        taken = self._rows(
            f"SELECT id FROM segments WHERE id IN ({', '.join('?' * len(segment_ids))})",
            segment_ids,
        )
        if taken:
            return f"its segment {taken[0]['id']} belongs to another session here"
        if not self._import_payer(record["payer"]):
            return f"the payer profile {record['payer_profile']!r} has other rules here"
        self._insert_record(record, batch.origin)
        self._audit(
            "session.import",
            "session",
            session_id,
            after={"origin": batch.origin, "source": batch.source},
            actor=actor,
        )
        here[session_id] = content
        return None

    @_guarded
    def changed_since_export(self, session_ids: Sequence[str]) -> set[str]:
        """The exported sessions among ``session_ids`` changed after their last export: the
        charges the billing system holds for them are out of date."""
        return self._changed_since_export(session_ids)

    def _changed_since_export(self, session_ids: Sequence[str]) -> set[str]:
        # Every change to a closed session marks it amended, so only those need their audit read.
        suspects: list[str] = []
        for chunk in _chunks(list(dict.fromkeys(session_ids))):
            marks = ", ".join("?" * len(chunk))
            rows = self._rows(
                f"SELECT id FROM sessions WHERE exported = 1 AND amended = 1 AND id IN ({marks})",
                chunk,
            )
            suspects += [row["id"] for row in rows]
        changed = set()
        for session_id, entries in self._audit_of_sessions(suspects).items():
            exports = [e.id for e in entries if e.action == "session.export"]
            if exports and any(e.id > exports[-1] for e in entries):
                changed.add(session_id)
        return changed

    @_guarded
    def segment_spans(
        self, session_ids: Sequence[str]
    ) -> dict[str, tuple[datetime, datetime | None]]:
        """Each session's first segment start and last segment stop (None if none stopped),
        computed by SQLite: a year's export needs the times, not 300,000 segment objects."""
        found: dict[str, tuple[datetime, datetime | None]] = {}
        for chunk in _chunks(session_ids):
            rows = self._conn.execute(
                "SELECT session_id, min(start_utc), max(stop_utc) FROM segments"
                f" WHERE session_id IN ({', '.join('?' * len(chunk))}) GROUP BY session_id",
                chunk,
            ).fetchall()
            for session_id, first, last in rows:
                found[session_id] = (_dt(first), _opt_dt(last))
        return found
