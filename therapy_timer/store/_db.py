"""The connection: opening, write transactions, the audit insert, and environment-error translation.

Also the conversions between records and columns that every part of the store shares.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import getpass
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    # Imported on first use of StoreBase._db only (issue 13): sqlite_utils pulls in dateutil,
    # pluggy, tabulate... (~90 ms), which a command or window that only reads never needs.
    import sqlite_utils

from therapy_timer.clock import Clock
from therapy_timer.codes import Discipline, FurnishedBy, Method, Role
from therapy_timer.errors import (
    DatabaseCorrupt,
    DatabaseLocked,
    DatabaseReadOnly,
    DiskFull,
    InvalidInput,
    StorageUnavailable,
)
from therapy_timer.files import mark_closed, mark_open
from therapy_timer.frozen import from_fields
from therapy_timer.model import (
    AuditEntry,
    Pause,
    PayerProfile,
    Resumable,
    Segment,
    SegmentTimes,
    Session,
    SessionStatus,
    UntimedService,
)
from therapy_timer.paths import DATA_DIR_ENV
from therapy_timer.paths import data_dir as default_data_dir
from therapy_timer.store._files import (
    backups_dir,
    check_database_file,
    database_path,
    latest_backup,
    private_dir,
    tighten,
)
from therapy_timer.store.migrations import prepare_schema

# ---------------------------------------------------------------------------------------------
# Environment errors -> StorageUnavailable, in plain words. Everything else is a bug: propagate.


def corrupt(db_path: Path, detail: str = "") -> DatabaseCorrupt:
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


def sqlite_primary(exc: BaseException) -> int:
    """SQLite's primary result code of ``exc`` (-1 when it carries none)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else int(code) & 0xFF


def storage_error(exc: BaseException, db_path: Path, busy_timeout_ms: int) -> Exception | None:
    """The StorageUnavailable for an environment failure, or None if ``exc`` is a bug."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, sqlite3.Error):
        primary = sqlite_primary(exc)
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return corrupt(db_path, str(exc))
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
        if primary == sqlite3.SQLITE_IOERR and _disk_full(db_path.parent):
            # SQLite reports some writes to a full disk as I/O errors (SQLITE_IOERR_SHMSIZE when
            # the -shm cannot grow, _WRITE or _FSYNC when the file system fails late).
            return DiskFull(
                f"The disk holding {db_path.parent} is full, so the last change was not saved."
                " Free some space and try again."
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


DISK_FULL_BELOW = 1024 * 1024
"""Free bytes under which an I/O error is taken for a full disk (SQLite grows files by pages
and the -shm by 32 KiB, so a write failing with more room than this had another cause)."""


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_BELOW
    except OSError:
        return False


class UnreadableRow(Exception):
    """A stored value that cannot be read back as what its column holds: a row written outside
    Therapy Timer (a SQL tool, a damaged page the checksum-free format let through).
    ``translated`` reports it as a damaged database naming the row, not as a traceback."""


@contextlib.contextmanager
def translated(db_path: Path, busy_timeout_ms: int = 5000) -> Iterator[None]:
    """Raise environment failures inside the block as the StorageUnavailable family."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = storage_error(exc, db_path, busy_timeout_ms)
        if error is None or error is exc:
            raise
        raise error from exc
    except UnreadableRow as exc:
        # Not the damaged-file advice: restoring a backup would lose every minute since it.
        raise DatabaseCorrupt(
            f"The Therapy Timer database {db_path} holds a row it cannot read ({exc}): it was"
            " changed outside Therapy Timer. Nothing was changed. Ask your IT support to"
            f" correct that row; the backups in {backups_dir(db_path.parent)} may hold it as"
            " it was."
        ) from None


_S = TypeVar("_S", bound="StoreBase")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def guarded(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """A public Store method whose environment failures become StorageUnavailable."""

    @functools.wraps(method)
    def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with translated(self._path, self._busy_timeout_ms):
            return method(self, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Values <-> columns


def ts(value: datetime, field: str) -> str:
    """The stored form of a moment: UTC ISO-8601 with microseconds (compared as text)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: a naive datetime; pass an aware one (the store keeps UTC)")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def now_text(clock: Clock) -> str:
    return ts(clock.now(), "clock.now()")


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def norm_ts(text: str | None) -> str | None:
    return None if text is None else ts(dt(text), "timestamp")


def jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def in_session(segments: Sequence[Segment]) -> list[dict[str, object]]:
    """Segments for an audit entry about their session: the session id is the entry's own."""
    return [
        {
            name: jsonable(getattr(s, name))
            for name in s.__dataclass_fields__
            if name != "session_id"
        }
        for s in segments
    ]


def to_json(value: object) -> str | None:
    return None if value is None else json.dumps(jsonable(value), sort_keys=True)


def spec_json(specs: Sequence[Resumable]) -> str:
    return json.dumps([jsonable(s) for s in specs])


def _specs_from_json(text: str) -> tuple[Resumable, ...]:
    return tuple(
        Resumable(str(d["code"]), FurnishedBy(d["furnished_by"])) for d in json.loads(text)
    )


def _allocation_from_json(text: str | None) -> dict[str, int] | None:
    return None if text is None else {str(c): int(u) for c, u in json.loads(text).items()}


_ROLES = {r.value: r for r in Role}
_DISCIPLINES = {d.value: d for d in Discipline}
_STATUSES = {s.value: s for s in SessionStatus}
_FURNISHERS = {f.value: f for f in FurnishedBy}
_parse = datetime.fromisoformat

_SESSION_FIELDS = (
    "id",
    "date_of_service",
    "patient_ref",
    "clinician",
    "role",
    "discipline",
    "payer_profile",
    "status",
    "amended",
    "exported",
    "created_utc",
    "closed_utc",
    "paused_utc",
    "resume_json",
)
_LATER_FIELDS = ("allocation_json", "origin")  # columns later migrations added
SESSION_COLUMNS = ", ".join((*_SESSION_FIELDS, *_LATER_FIELDS))
"""A session row's columns in the order ``session_from`` takes them."""


def session_of(row: Mapping[str, Any]) -> Session:
    return session_from([*(row[c] for c in _SESSION_FIELDS), *map(row.get, _LATER_FIELDS)])


def session_from(values: Sequence[Any]) -> Session:
    """A session from its row's values in SESSION_COLUMNS order (a bulk read's tuples)."""
    try:
        (
            session_id,
            day,
            patient_ref,
            clinician,
            role,
            discipline,
            payer_profile,
            status,
            amended,
            exported,
            created,
            closed,
            paused,
            resume,
            allocation,
            origin,
        ) = values
        created_utc = _parse(created)
        closed_utc = None if closed is None else _parse(closed)
        pause = None if paused is None else Pause(_parse(paused), _specs_from_json(resume))
        session: Session = from_fields(
            Session,
            {
                "id": session_id,
                "date_of_service": date.fromisoformat(day),
                "patient_ref": patient_ref,
                "clinician": clinician,
                "role": _ROLES.get(role) or Role(role),
                "discipline": _DISCIPLINES.get(discipline) or Discipline(discipline),
                "payer_profile": payer_profile,
                "status": _STATUSES.get(status) or SessionStatus(status),
                "amended": bool(amended),
                "exported": bool(exported),
                "created_utc": created_utc,
                "closed_utc": closed_utc,
                "pause": pause,
                "allocation": None if allocation is None else _allocation_from_json(allocation),
                "origin": origin,
            },
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise UnreadableRow(f"sessions row {values[0]!r}: {exc}") from None
    # (Spelt out, not any() over the three: a clinic-year's export reads 100,000 rows.)
    if (
        created_utc.tzinfo is None
        or (closed_utc is not None and closed_utc.tzinfo is None)
        or (pause is not None and pause.at_utc.tzinfo is None)
    ):
        raise UnreadableRow(f"sessions row {session_id!r}: a time without its UTC offset")
    return session


SEGMENT_COLUMNS = "id, session_id, code, furnished_by, exclusive, start_utc, stop_utc"
"""A segment row's columns in the order ``segment_from`` takes them."""


def segment_of(row: Mapping[str, Any]) -> Segment:
    return segment_from(
        (
            row["id"],
            row["session_id"],
            row["code"],
            row["furnished_by"],
            row["exclusive"],
            row["start_utc"],
            row["stop_utc"],
        )
    )


def segment_from(values: Sequence[Any]) -> Segment:
    """A segment from its row's values in SEGMENT_COLUMNS order (a bulk read's tuples)."""
    segment_id, session_id, code, furnished_by, exclusive, start, stop = values
    code, furnisher, start_utc, stop_utc = segment_times_from(code, furnished_by, start, stop)
    return from_fields(
        Segment,
        {
            "id": segment_id,
            "session_id": session_id,
            "code": code,
            "furnished_by": furnisher,
            "exclusive": bool(exclusive),
            "start_utc": start_utc,
            "stop_utc": stop_utc,
        },
    )


def segment_times_from(code: str, furnished_by: str, start: str, stop: str | None) -> SegmentTimes:
    """A segment's code, furnisher, start and stop from those columns' stored values."""
    try:
        start_utc = _parse(start)
        stop_utc = None if stop is None else _parse(stop)
        furnisher = _FURNISHERS.get(furnished_by) or FurnishedBy(furnished_by)
    except (TypeError, ValueError) as exc:
        raise UnreadableRow(f"a segments row of code {code!r}: {exc}") from None
    if start_utc.tzinfo is None or (stop_utc is not None and stop_utc.tzinfo is None):
        raise UnreadableRow(
            f"a segments row of code {code!r}, start_utc {start!r}, stop_utc {stop!r}:"
            " a time without its UTC offset"
        )
    return code, furnisher, start_utc, stop_utc


_Record = TypeVar("_Record")


def row_reader(
    table: str,
) -> Callable[[Callable[[Mapping[str, Any]], _Record]], Callable[[Mapping[str, Any]], _Record]]:
    """A reader of ``table``'s rows whose unreadable value is an UnreadableRow naming the row."""

    def wrap(
        read: Callable[[Mapping[str, Any]], _Record],
    ) -> Callable[[Mapping[str, Any]], _Record]:
        @functools.wraps(read)
        def reader(row: Mapping[str, Any]) -> _Record:
            try:
                return read(row)
            except (TypeError, ValueError) as exc:
                raise UnreadableRow(f"{table} row {row['id']!r}: {exc}") from None

        return reader

    return wrap


@row_reader("untimed_services")
def untimed_of(row: Mapping[str, Any]) -> UntimedService:
    return UntimedService(
        id=row["id"],
        session_id=row["session_id"],
        code=row["code"],
        minutes=row["minutes"],
        furnished_by=FurnishedBy(row["furnished_by"]),
        created_utc=dt(row["created_utc"]),
    )


def profile_of(row: Mapping[str, Any]) -> PayerProfile:
    return PayerProfile(
        name=row["name"],
        method=Method(row["method"]),
        assistant_modifiers=bool(row["assistant_modifiers"]),
    )


@row_reader("audit_log")
def audit_entry_of(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at_utc=dt(row["at_utc"]),
        actor=row["actor"],
        action=row["action"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        before=None if row["before_json"] is None else json.loads(row["before_json"]),
        after=None if row["after_json"] is None else json.loads(row["after_json"]),
        reason=row["reason"],
    )


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


_CHUNK = 500


def _chunked(sql: str, ids: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """``sql`` for a bounded chunk of ``ids`` at a time: each ``{ids}`` becomes ``?, ?, ...``."""
    slots = sql.count("{ids}")
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        yield sql.replace("{ids}", ", ".join("?" * len(chunk))), chunk * slots


"""Bound on SQL parameters per query (SQLite allows 32,766 since 3.32; older ones 999)."""


# ---------------------------------------------------------------------------------------------


class StoreBase:
    """An open connection and the plumbing every part of ``Store`` shares."""

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
        # sqlite_utils.Database(conn) turns this on; the connection keeps it whether or not
        # the lazy ``_db`` below is ever built, so behaviour never depends on which ran first.
        conn.execute("PRAGMA recursive_triggers = on")
        self._path = path
        self._data_dir = path.parent
        self._clock = clock
        self._actor = actor
        self._busy_timeout_ms = busy_timeout_ms
        self._open = True
        self._opened: tuple[tuple[int, int], ...] = ()
        self._together = False  # inside ``together``: its transaction holds every write

    @classmethod
    def open(
        cls,
        data_dir: Path | None = None,
        *,
        clock: Clock,
        actor: str | None = None,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
    ) -> Self:
        """Open (creating and migrating as needed) the database in ``data_dir``.

        ``data_dir`` None means ``paths.data_dir()``. ``read_only`` opens without any write
        (no creation, no migration); writes then raise DatabaseReadOnly.
        """
        folder = default_data_dir(data_dir)
        db_path = database_path(folder)
        with translated(db_path, busy_timeout_ms):
            conn = _connect(db_path, busy_timeout_ms, read_only)
        store = cls(
            conn,
            path=db_path,
            clock=clock,
            actor=actor or _default_actor(),
            busy_timeout_ms=busy_timeout_ms,
        )
        # Its journals too: no name linked to one may bring a sweep or a restore to open it.
        store._opened = mark_open(Path(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm"))
        return store

    @functools.cached_property
    def _db(self) -> sqlite_utils.Database:
        """sqlite_utils over the same connection, built (and imported) on first use."""
        from sqlite_utils import Database

        return Database(self._conn, recursive_triggers=False, execute_plugins=False)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def close(self) -> None:
        if self._open:
            self._open = False
            self._conn.close()
            mark_closed(self._opened)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # database-wide ---------------------------------------------------------------------------

    @guarded
    def data_version(self) -> int:
        """Changes when another connection commits (``PRAGMA data_version``): poll to refresh."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @guarded
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @guarded
    def check_integrity(self) -> None:
        """Raise DatabaseCorrupt unless ``PRAGMA quick_check`` passes."""
        rows = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            raise corrupt(self._path, "; ".join(rows[:3]))

    # plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """The writes (and reads) inside as one transaction: all of them, or none; an error
        inside rolls back every one, so the caller must let it propagate.

        For a front-door operation made of several writes (a correction moving the later codes
        of its session): one failing, or the disk filling, left the ones before it written.
        """
        if self._together:
            yield  # joins the one already open
            return
        with translated(self._path, self._busy_timeout_ms), self._write():
            self._together = True
            try:
                yield
            finally:
                self._together = False

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; taken up front so a concurrent writer waits, never interleaves."""
        if self._together:
            yield  # ``together``'s transaction commits, or rolls back, all of it
            return
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

    def _rows_in(self, sql: str, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Rows of ``sql`` for many ids, a bounded chunk of ids per query.

        Each ``{ids}`` in ``sql`` becomes ``?, ?, ...`` and takes the chunk's ids as parameters;
        ``ORDER BY`` holds within a chunk only.
        """
        for query, params in _chunked(sql, ids):
            yield from self._rows(query, params)

    def _tuples_in(self, sql: str, ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``_rows_in`` as plain tuples in the order ``sql`` selects (bulk reads of a year)."""
        for query, params in _chunked(sql, ids):
            yield from self._conn.execute(query, params)

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
                now_text(self._clock),
                actor or self._actor,
                action,
                entity,
                entity_id,
                to_json(before),
                to_json(after),
                reason,
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _session_row(self, session_id: str) -> Session:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", [session_id])
        if not rows:
            raise InvalidInput("session", f"there is no session with id {session_id!r}")
        return session_of(rows[0])

    def _segment_row(self, segment_id: str) -> Segment:
        rows = self._rows("SELECT * FROM segments WHERE id = ?", [segment_id])
        if not rows:
            raise InvalidInput("segment", f"there is no segment with id {segment_id!r}")
        return segment_of(rows[0])

    def _untimed_row(self, untimed_id: int) -> UntimedService:
        rows = self._rows("SELECT * FROM untimed_services WHERE id = ?", [untimed_id])
        if not rows:
            raise InvalidInput("untimed", f"there is no untimed service with id {untimed_id!r}")
        return untimed_of(rows[0])

    def _profile_row(self, name: str) -> PayerProfile:
        rows = self._rows("SELECT * FROM payer_profiles WHERE name = ?", [name])
        if not rows:
            raise InvalidInput("payer_profile", f"there is no payer profile named {name!r}")
        return profile_of(rows[0])


def _connect(db_path: Path, busy_timeout_ms: int, read_only: bool) -> sqlite3.Connection:
    """A connection to ``db_path``, schema checked and migrated, files 0600.

    Our code never opens a descriptor on the database or its companions (see ``_files``): new
    files are made private by the umask while SQLite creates them (SQLite gives -wal and -shm
    the database's mode), existing ones by chmod.
    """
    if read_only:
        if not check_database_file(db_path):
            raise StorageUnavailable(f"There is no Therapy Timer database at {db_path}.")
        target = f"file:{quote(str(db_path))}?mode=ro"
    else:
        private_dir(db_path.parent)
        if check_database_file(db_path):
            if not os.access(db_path, os.W_OK):
                raise _read_only(db_path)
            if os.stat(db_path).st_size == 0 and latest_backup(db_path.parent) is not None:
                # SQLite would take an empty file for a new database and we would migrate it:
                # with backups beside it, it is a database that lost its contents.
                raise corrupt(db_path, "the file is empty, although backups of it exist")
        target = f"file:{quote(str(db_path))}?mode=rwc"
    # The umask is per process: another thread creating a file meanwhile gets 0600 too.
    umask = os.umask(0o077)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, never Python's implicit one.
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
            # FULL: in WAL mode a commit is on disk before COMMIT returns, so a screen that
            # says "started" never lies after a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            prepare_schema(conn, db_path, read_only)
            if not read_only:
                # Files an older version or another program made readable to others.
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        name = Path(f"{db_path}{suffix}")
                        tighten(name, os.stat(name).st_mode)
        except BaseException:
            conn.close()
            raise
    finally:
        os.umask(umask)
    return conn
