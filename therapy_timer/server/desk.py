"""What the front desk reads from the clinic server: each station's state, the clinic's sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from therapy_timer.errors import InvalidInput
from therapy_timer.server.connection import ServerRefused, answering
from therapy_timer.server.migrations import DESK_GROUP, WORKSTATION_GROUP
from therapy_timer.server.sync import (
    MAX_RECORD_BYTES,
    MAX_SEGMENTS,
    MAX_UNTIMED,
    oversize,
    skew_message,
)

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class WorkstationState:
    """One workstation as the server last heard from it."""

    name: str
    last_sync_utc: datetime | None
    heartbeat_utc: datetime | None
    running: list[dict[str, Any]]
    sessions: int

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "last_sync_utc": None if self.last_sync_utc is None else self.last_sync_utc.isoformat(),
            "heartbeat_utc": None if self.heartbeat_utc is None else self.heartbeat_utc.isoformat(),
            "running": self.running,
            "sessions": self.sessions,
        }


# What a workstation says it is running, as a push writes it (server.local): shown as it is at
# the desk, so only entries of one-line texts and an aware start are kept. A workstation is
# an untrusted writer: any other value (a number, a list of numbers, a start without its
# offset or at an end of the calendar, a value nested too deep to read) is nothing the desk
# can show.
_RUNNING_FIELDS = ("session_id", "patient_ref", "clinician", "code", "furnished_by", "since_utc")


def _running(text: str) -> list[dict[str, Any]]:
    found = _json(text)
    if not isinstance(found, list):
        return []
    return [{name: entry[name] for name in _RUNNING_FIELDS} for entry in found if _shown(entry)]


def _shown(entry: object) -> bool:
    if not isinstance(entry, dict) or not all(
        _one_line(entry.get(name)) for name in _RUNNING_FIELDS
    ):
        return False
    try:
        since = datetime.fromisoformat(entry["since_utc"])
        # Shown in the desk's time zone: a start a day from either end of Python's calendar
        # (0001-01-01T00:00+05:00) has no such moment there.
        return since.tzinfo is not None and 2 <= since.astimezone(UTC).year <= 9998
    except (ValueError, OverflowError):
        return False


def _one_line(value: object) -> bool:
    return isinstance(value, str) and value.isprintable()


def _json(text: str) -> object:
    """A value a workstation wrote, or None when Python cannot read it (nested too deep)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def workstations(conn: Connection) -> list[WorkstationState]:
    """Every workstation this role may see (a workstation sees itself, the desk sees all)."""
    try:
        with answering(), conn.transaction():
            rows = conn.execute(
                "SELECT w.name, w.last_sync_utc, w.heartbeat_utc, w.running::text,"
                " (SELECT count(*) FROM therapy_timer.sessions s WHERE s.workstation = w.name)"
                " FROM therapy_timer.workstations w ORDER BY w.name"
            ).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(f"the clinic server refused: {exc.diag.message_primary}") from None
    return [
        WorkstationState(
            name=str(r[0]),
            last_sync_utc=r[1],
            heartbeat_utc=r[2],
            running=_running(r[3]),
            sessions=int(r[4]),
        )
        for r in rows
    ]


# Where a record came from and what the desk did with it. ``changed_after_export``: its
# workstation amended it after the desk's export, so the day is to be billed again;
# ``content_hash``: the version read, which is the one the desk marks when it bills it. The
# record comes as text with the row's own columns: a workstation is an untrusted writer, and
# a record nested too deep for Python's JSON reader, or naming another session, date, patient,
# discipline or payer than its row, must be refused by name, not read or billed as it says.
_MARKS = (
    "workstation, exported, exported AND exported_content_hash IS DISTINCT FROM content_hash,"
    " content_hash, id::text, to_char(date_of_service, 'YYYY-MM-DD'), patient_ref, discipline,"
    " payer_profile"
)
_ROW_FIELDS = ("id", "date_of_service", "patient_ref", "discipline", "payer_profile")

REFUSED = "refused"
"""The key a record the desk cannot read as its row says carries instead of its content:
why, in words. Such a record has only its row's ``id`` and ``date_of_service`` besides."""


# A record larger than any treatment (a workstation is an untrusted writer) is refused by its
# size, measured by the server: its text never comes here to be parsed. Its arrays are counted
# only when the text is long enough to hold more elements than the limits allow (each takes 3
# bytes at least: '{}, '), so the reads of real records pay for no count.
_COUNTED_FROM = 3 * min(MAX_SEGMENTS, MAX_UNTIMED)
_SIZED = (
    " LATERAL (SELECT {record}::text AS text OFFSET 0) AS r,"
    " LATERAL (SELECT octet_length(r.text) AS size) AS z,"
    " LATERAL (SELECT"
    + "".join(
        f" CASE WHEN z.size > {_COUNTED_FROM} AND jsonb_typeof(record) = 'object'"
        f" AND jsonb_typeof(record->'{name}') = 'array'"
        f" THEN jsonb_array_length(record->'{name}') END AS {name},"
        for name in ("segments", "untimed")
    ).rstrip(",")
    + ") AS n"
)
_SIZED_TEXT = (
    f"CASE WHEN z.size > {MAX_RECORD_BYTES} OR n.segments > {MAX_SEGMENTS}"
    f" OR n.untimed > {MAX_UNTIMED} THEN NULL ELSE r.text END, z.size, n.segments, n.untimed"
)


def _sized(record: str) -> str:
    return _SIZED.format(record=record)


def _with_marks(row: tuple[Any, ...]) -> dict[str, Any]:
    text, size, segments, untimed, workstation, exported, changed, content_hash, *columns = row
    marks = {
        "workstation": workstation,
        "exported": exported,
        "changed_after_export": changed,
        "content_hash": content_hash,
    }
    own = dict(zip(_ROW_FIELDS, columns, strict=True))
    too_big = oversize(size, segments, untimed)
    if too_big is not None:
        return {**_refused(own, f"its record {too_big}"), **marks}
    record = _json(text)
    if not isinstance(record, dict):
        why = "cannot be read (nested too deep)" if record is None else "is not a session record"
        return {**_refused(own, f"its record {why}"), **marks}
    for name, value in own.items():
        if record.get(name) != value:
            return {**_refused(own, f"its record's {name} is not its row's"), **marks}
    return {**record, **marks}


def _refused(own: Mapping[str, str], why: str) -> dict[str, Any]:
    return {"id": own["id"], "date_of_service": own["date_of_service"], REFUSED: why}


# ``-`` fails on a record that is not an object (a scalar a workstation wrote): read it whole.
_WITHOUT_AUDIT = "CASE WHEN jsonb_typeof(record) = 'object' THEN record - 'audit' ELSE record END"


def clinic_records(conn: Connection, start: date, end: date) -> list[dict[str, Any]]:
    """The session records of ``start``..``end`` this role may read, oldest first, each with
    ``workstation``, the desk's ``exported`` flag and ``changed_after_export`` added
    (``stream_clinic_records``, whole)."""
    return [r for chunk in stream_clinic_records(conn, start, end) for r in chunk]


def stream_clinic_records(
    conn: Connection, start: date, end: date, *, batch: int = 2000
) -> Iterator[list[dict[str, Any]]]:
    """``clinic_records`` ``batch`` at a time through a server-side cursor: a clinic-year is
    never held whole, neither by the server's reply nor here.

    Without their audit entries: those stay on the server (``therapy_timer.audit``), and
    nothing the desk bills or shows reads them; sending them made a clinic-year's read and
    pooling several times slower."""
    try:
        with answering(), conn.transaction(), conn.cursor(name="clinic_records") as cursor:
            cursor.execute(
                f"SELECT {_SIZED_TEXT}, {_MARKS} FROM therapy_timer.sessions,"
                f"{_sized(_WITHOUT_AUDIT)}"
                " WHERE date_of_service BETWEEN %s AND %s"
                " ORDER BY date_of_service, created_utc, id",
                [start, end],
            )
            while rows := cursor.fetchmany(batch):
                yield [_with_marks(r) for r in rows]
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(f"the clinic server refused: {exc.diag.message_primary}") from None


def session_records(conn: Connection, session_ids: list[str]) -> list[dict[str, Any]]:
    """The server's copy of each of these sessions this role may read, as ``clinic_records``
    gives them (a kept-aside version is compared with it, whatever its date)."""
    if not session_ids:
        return []
    try:
        with answering(), conn.transaction():
            rows = conn.execute(
                f"SELECT {_SIZED_TEXT}, {_MARKS} FROM therapy_timer.sessions,{_sized('record')}"
                " WHERE id = ANY(%s::uuid[]) ORDER BY id",
                [session_ids],
            ).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(f"the clinic server refused: {exc.diag.message_primary}") from None
    return [_with_marks(r) for r in rows]


@dataclass(frozen=True)
class ServerStatus:
    """``clinic status``: the server as this workstation sees it, reachable or not."""

    dsn: str | None
    reachable: bool
    problem: str
    role: str
    last_sync_utc: datetime | None
    pushed_audit_id: int
    pending_sessions: int
    pending_audit: int
    workstations: tuple[WorkstationState, ...]
    held: tuple[str, ...] = ()
    """Sessions the last sync held back, as the server cannot store them (``SyncReport.held``)."""
    desk: bool = False
    """The front desk's role: it pushes nothing, so ``pending_sessions`` stay here."""
    refused: bool = False
    """The server answered and refused (the login, a grant): ``problem`` says what."""
    tls_warning: str = ""
    """``connection.tls_warning`` of the remembered address: said at every status."""
    clock_skew: timedelta | None = None
    """This computer's clock minus the server's, measured now (None: not reachable)."""

    @property
    def clock_message(self) -> str:
        """``skew_message`` of the clock's skew measured (a plain line, or '')."""
        return skew_message(self.clock_skew)

    def as_json(self) -> dict[str, object]:
        return {
            "server": self.dsn,
            "reachable": self.reachable,
            "problem": self.problem,
            "role": self.role,
            "last_sync_utc": None if self.last_sync_utc is None else self.last_sync_utc.isoformat(),
            "pushed_audit_id": self.pushed_audit_id,
            "pending_sessions": self.pending_sessions,
            "pending_audit_entries": self.pending_audit,
            "held_on_this_workstation": list(self.held),
            "desk": self.desk,
            "refused": self.refused,
            "tls_warning": self.tls_warning,
            "clock_skew_seconds": None
            if self.clock_skew is None
            else round(self.clock_skew.total_seconds()),
            "clock_message": self.clock_message,
            "workstations": [w.as_json() for w in self.workstations],
        }


def pushed_mark(conn: Connection) -> tuple[str, int, datetime | None, bool]:
    """This role's name, how far its audit log is on the server, when it last synced, and
    whether it is the front desk's role (which reads and pushes nothing)."""
    with answering(), conn.transaction():
        row = conn.execute(
            "SELECT current_user, w.pushed_audit_id, w.last_sync_utc,"
            " pg_has_role(current_user, %s, 'MEMBER')"
            " AND NOT pg_has_role(current_user, %s, 'MEMBER')"
            " FROM (SELECT 1) one"
            " LEFT JOIN therapy_timer.workstations w ON w.name = current_user",
            [DESK_GROUP, WORKSTATION_GROUP],
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1] or 0), row[2], bool(row[3])


DayKey = tuple[str, str, str, str]
"""A claim day as the server keys it: date of service (YYYY-MM-DD), the patient reference as
the store compares it (stripped, lower case), discipline and payer profile."""


def mark_exported(conn: Connection, days: Mapping[DayKey, Mapping[str, str]]) -> int:
    """The desk marks sessions exported on the server (audited there), each as the version
    it read and billed, by the claim day it billed them in (session id: its ``content_hash``);
    how many changed. A session synced anew since that read stays due: its new version was in
    no file; one that left its day since leaves the rest of that day due too."""
    rows = [
        (i, read, Jsonb(list(day))) for day, billed in days.items() for i, read in billed.items()
    ]
    if not rows:
        return 0
    ids, hashes, keys = (list(column) for column in zip(*rows, strict=True))
    try:
        with answering(), conn.transaction():
            changed = conn.execute(
                "SELECT therapy_timer.mark_exported(%s::uuid[], %s::text[], %s::jsonb[])",
                [ids, hashes, keys],
            ).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(
            f"only the desk role may mark sessions exported ({exc.diag.message_primary})"
        ) from None
    return len(changed)


@dataclass(frozen=True)
class KeptAside:
    """A version of a session the server would not write over, waiting for the desk."""

    id: int
    workstation: str
    session_id: str
    why: str
    received_utc: datetime
    resolution: str | None
    record: dict[str, Any]

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "workstation": self.workstation,
            "session_id": self.session_id,
            "why": self.why,
            "received_utc": self.received_utc.isoformat(),
            "resolution": self.resolution,
            "patient_ref": self.record.get("patient_ref"),
            "date_of_service": self.record.get("date_of_service"),
        }


def kept_aside(conn: Connection, *, settled: bool = False) -> list[KeptAside]:
    """The kept-aside versions this role may see (the desk: all), waiting ones by default."""
    try:
        with answering(), conn.transaction():
            rows = conn.execute(
                "SELECT id, workstation, session_id::text, why, received_utc, resolution,"
                f" {_SIZED_TEXT} FROM therapy_timer.conflicts,{_sized('record')}"
                " WHERE %s OR resolved_utc IS NULL ORDER BY id",
                [settled],
            ).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(f"the clinic server refused: {exc.diag.message_primary}") from None
    return [_kept(*row) for row in rows]


def _kept(
    number: int,
    workstation: str,
    session_id: str,
    why: str,
    received_utc: datetime,
    resolution: str | None,
    text: str | None,
    size: int | None,
    segments: int | None,
    untimed: int | None,
) -> KeptAside:
    """A kept-aside version as the desk may show it: its reason and the patient and date it
    names are printed as they are, so a record that cannot be read, or names them in other
    than one-line texts, is shown as that, without its content (it can only be dropped)."""
    said = "".join(ch if ch.isprintable() else "\ufffd" for ch in why)
    too_big = oversize(size, segments, untimed)
    if too_big is not None:
        return KeptAside(
            number,
            workstation,
            session_id,
            f"its record {too_big}; {said}",
            received_utc,
            resolution,
            {},
        )
    record = _json(text or "")
    if not isinstance(record, dict) or not all(
        _one_line(record.get(name)) for name in ("patient_ref", "date_of_service")
    ):
        record, said = {}, f"its record cannot be read as a session record; {said}"
    return KeptAside(number, workstation, session_id, said, received_utc, resolution, record)


def settle(conn: Connection, conflict_id: int, decision: str, reason: str) -> str:
    """Accept (it replaces the server's copy, which is kept) or drop a kept-aside version."""
    try:
        with answering(), conn.transaction():
            row = conn.execute(
                "SELECT therapy_timer.settle_conflict(%s, %s, %s)",
                [conflict_id, decision, reason],
            ).fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(f"the clinic server refused: {exc.diag.message_primary}") from None
    except (psycopg.errors.NoDataFound, psycopg.errors.InvalidParameterValue) as exc:
        raise InvalidInput("conflict", str(exc.diag.message_primary)) from None
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        # A workstation writes its kept-aside versions itself: one whose segment is another
        # session's (row security hides which) cannot become the session; nothing changed.
        raise InvalidInput(
            "conflict",
            f"kept-aside version {conflict_id} cannot be written as its session on the server"
            f" ({exc.diag.message_primary}); drop it with a reason",
        ) from None
    assert row is not None
    return str(row[0])
