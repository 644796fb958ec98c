"""Pushing a workstation's closed sessions, audit entries and running state, idempotently.

Every push is safe to repeat and to cut off anywhere: sessions go in batches, each its own
transaction; a copy the server already holds is compared, never rewritten; and how far the
audit log was pushed is recorded on the server in the same transaction as the last entries,
so a push that dies is simply redone from where the server says it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from therapy_timer.model import NOT_TEXT, AuditEntry, not_text_in
from therapy_timer.server.connection import (
    OLDER_SERVER,
    ServerRefused,
    ServerUnavailable,
    ServerVersionError,
    answering,
    first_line,
)
from therapy_timer.server.migrations import DESK_GROUP, WORKSTATION_GROUP

Connection = psycopg.Connection[tuple[Any, ...]]

BATCH_SESSIONS = 100

# A session of a real clinic is an hour or two of a handful of codes: these are hundreds of
# times what one holds, and refuse what no treatment is (a 300,000-segment record took 7 s
# and 867 MB to read before it was refused) before the desk reads it whole.
MAX_SEGMENTS = 2_000
MAX_UNTIMED = 2_000
MAX_RECORD_BYTES = 8 << 20

MAX_CLOCK_SKEW = timedelta(minutes=2)

OVERSIZE_FIELD = "size"  # HeldBack.field of a record over these limits


def oversize(size: int | None, segments: int | None, untimed: int | None) -> str | None:
    """What makes a session record larger than any treatment (``size``: its JSON's bytes), in
    words, or None."""
    if segments is not None and segments > MAX_SEGMENTS:
        return f"has {segments:,} segments, more than a session may hold ({MAX_SEGMENTS:,})"
    if untimed is not None and untimed > MAX_UNTIMED:
        return f"has {untimed:,} untimed services, more than a session may hold ({MAX_UNTIMED:,})"
    if size is not None and size > MAX_RECORD_BYTES:
        return (
            f"is {size / (1 << 20):,.1f} MiB, more than a session's record may be"
            f" ({MAX_RECORD_BYTES >> 20} MiB)"
        )
    return None


def _record_oversize(record: Mapping[str, Any]) -> str | None:
    segments, untimed = record.get("segments", []), record.get("untimed", [])
    counted = oversize(None, len(segments), len(untimed))
    if counted is not None:
        return counted
    return oversize(len(_canonical(record).encode("utf-8", "surrogatepass")), None, None)


def clock_skew(conn: Connection, now: datetime) -> timedelta:
    """How far this computer's clock (``now``) is ahead of the server's (behind: negative)."""
    with answering():
        found = conn.execute("SELECT now()").fetchone()
    assert found is not None
    server_now: datetime = found[0]
    return now - server_now


def skew_message(skew: timedelta | None) -> str:
    """A plain line when this computer's clock is off by more than MAX_CLOCK_SKEW, else ''."""
    if skew is None or abs(skew) <= MAX_CLOCK_SKEW:
        return ""
    minutes = round(abs(skew).total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    amount = " ".join([f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes))
    way = "ahead of" if skew > timedelta(0) else "behind"
    return (
        f"this computer's clock is {amount} {way} the clinic server's: the times it records"
        " are its own clock's, so set its date and time right (nothing recorded is changed"
        " for it)"
    )


class LocalRecords(Protocol):
    """What a push reads from the workstation's own database (``Clinic`` provides it)."""

    def audit_from(self, first_id: int) -> list[AuditEntry]:
        """Every local audit entry with ``id >= first_id``, oldest first."""
        ...

    def closed_records(self, session_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Bundle records (``Store.session_records``) of the closed sessions among the ids."""
        ...

    def running(self) -> list[dict[str, Any]]:
        """Who is running what right now, as plain JSON data."""
        ...


@dataclass(frozen=True)
class HeldBack:
    """A session the server cannot store as it is recorded (an older version merged a bundle
    whose audit held a NUL or half a surrogate pair, which PostgreSQL's jsonb refuses, or a
    bundle whose session has a segment of another session on the server): it is not sent,
    and is listed at every sync, as what it records is history and never rewritten."""

    session_id: str | None  # None: an audit entry about no session
    field: str  # where, in the user's words: "audit entry 12's after", "segment ID"
    patient_ref: str = ""  # with the date, when the session's record was read
    date_of_service: str = ""
    problem: str = NOT_TEXT  # what the field holds that the server cannot store

    @property
    def message(self) -> str:
        why = f"its {self.field} {self.problem} (the server cannot store it)"
        if self.field == OVERSIZE_FIELD:
            why = f"its record {self.problem} (no treatment is that large; the desk refuses it)"
        if self.session_id is None:
            return (
                f"An audit entry about no session stays on this workstation, not sent to the"
                f" clinic server: {why}. The audit is history and is not rewritten. The"
                " sessions synced."
            )
        who = f" (patient {self.patient_ref}, {self.date_of_service})" * bool(self.patient_ref)
        day = f" --date {self.date_of_service}" if self.date_of_service else ""
        bill = f"bill it from this workstation ('therapy-timer export{day}' here)"
        if self.problem != NOT_TEXT and self.field != OVERSIZE_FIELD:
            # Minutes another session already holds there: billing both would bill them twice.
            bill = f"ask the desk whether it copies that session's minutes before you {bill}"
        return (
            f"Session {self.session_id}{who} stays on this workstation, not sent to the clinic"
            f" server: {why}. What it recorded is history and is not rewritten, so the desk's"
            f" clinic-wide views and exports leave this session out: {bill}. The other"
            " sessions synced."
        )

    def as_json(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "field": self.field,
            "patient_ref": self.patient_ref,
            "date_of_service": self.date_of_service,
            "message": self.message,
        }


@dataclass
class SyncReport:
    """What one push did; ``complete`` when everything of this workstation is on the server."""

    workstation: str = ""
    added: int = 0
    amended: int = 0
    unchanged: int = 0
    conflicts: int = 0
    audit_added: int = 0
    audit_conflicts: int = 0
    resent_all: bool = False
    desk: bool = False  # the front desk's role: it reads the clinic and sends nothing of its own
    disconnected: bool = False  # no server is configured here any more: nothing was pushed
    not_sent: int = 0  # the desk's: closed sessions recorded here, which no push sends
    pushed_audit_id: int = 0
    waiting: int = 0  # this workstation's kept-aside versions the desk has not settled yet
    at_utc: datetime | None = None
    clock_skew: timedelta | None = None  # this computer's clock minus the server's, at the sync
    conflict_ids: list[str] = field(default_factory=list)
    held: list[HeldBack] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return (
            self.conflicts == 0
            and self.audit_conflicts == 0
            and not self.held
            and not self.not_sent
        )

    @property
    def held_sessions(self) -> list[str]:
        return [h.session_id for h in self.held if h.session_id is not None]

    @property
    def clock_message(self) -> str:
        """``skew_message`` of the clock's skew measured (a plain line, or '')."""
        return skew_message(self.clock_skew)

    def as_json(self) -> dict[str, object]:
        return {
            "workstation": self.workstation,
            "added": self.added,
            "amended": self.amended,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "conflict_sessions": list(self.conflict_ids),
            "audit_added": self.audit_added,
            "audit_conflicts": self.audit_conflicts,
            "resent_all": self.resent_all,
            "desk": self.desk,
            "disconnected": self.disconnected,
            "clock_skew_seconds": None
            if self.clock_skew is None
            else round(self.clock_skew.total_seconds()),
            "clock_message": self.clock_message,
            "not_sent": self.not_sent,
            "pushed_audit_id": self.pushed_audit_id,
            "waiting_for_the_desk": self.waiting,
            "at_utc": None if self.at_utc is None else self.at_utc.isoformat(),
            "held_on_this_workstation": [h.as_json() for h in self.held],
            "complete": self.complete,
        }


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _utc_text(value: object) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC).isoformat()


def content_hash(record: Mapping[str, Any]) -> str:
    """What makes two copies of a session the same: everything but its audit trail."""
    content = {k: v for k, v in record.items() if k != "audit"}
    content["segments"] = sorted(record.get("segments", []), key=lambda s: str(s.get("id")))
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


def _entry_fields(entry: AuditEntry | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(entry, AuditEntry):
        raw: dict[str, Any] = {
            "id": entry.id,
            "at_utc": entry.at_utc,
            "actor": entry.actor,
            "action": entry.action,
            "entity": entry.entity,
            "entity_id": entry.entity_id,
            "before": entry.before,
            "after": entry.after,
            "reason": entry.reason,
        }
    else:
        raw = dict(entry)
    raw["at_utc"] = _utc_text(raw["at_utc"])
    # Payloads round-trip through JSON so a tuple and a list (or a date object and its text)
    # hash alike, whichever side read them.
    raw["before"] = json.loads(json.dumps(raw.get("before"), default=str))
    raw["after"] = json.loads(json.dumps(raw.get("after"), default=str))
    raw.setdefault("reason", "")
    return raw


def entry_hash(entry: AuditEntry | Mapping[str, Any]) -> str:
    """An audit entry's fingerprint: the same entry hashes alike from the log or a record."""
    return _fields_hash(_entry_fields(entry))


def _fields_hash(fields: Mapping[str, Any]) -> str:
    # surrogatepass: the push marks how far it read with the last entry's hash, which may be
    # one held back for half a surrogate pair; any other text encodes as plain UTF-8.
    return hashlib.sha256(_canonical(fields).encode("utf-8", "surrogatepass")).hexdigest()


def _not_text(record: Mapping[str, Any]) -> str | None:
    """Where a session's record holds what is not text (``not_text_in``), or None."""
    where = not_text_in({k: v for k, v in record.items() if k != "audit"})
    if where is not None:
        return where
    for entry in record.get("audit", []):
        where = not_text_in(entry)
        if where is not None:
            return f"audit entry {entry.get('id')}'s {where}"
    return None


def session_of_entry(entry: AuditEntry | Mapping[str, Any]) -> str | None:
    """The session an audit entry belongs to: its own id, or a child's payload says."""
    fields = entry if isinstance(entry, Mapping) else _entry_fields(entry)
    owner: object = None
    if fields["entity"] == "session":
        owner = fields["entity_id"]
    elif fields["entity"] in ("segment", "untimed"):
        payload = fields.get("after") or fields.get("before") or {}
        owner = payload.get("session_id") if isinstance(payload, Mapping) else None
    try:
        return None if owner is None else str(uuid.UUID(str(owner)))
    except ValueError:
        return None  # not a session of ours: the entry is still pushed, unattached


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def push(
    conn: Connection,
    local: LocalRecords,
    *,
    now: datetime,
    batch_size: int = BATCH_SESSIONS,
    held: Sequence[str] | None = (),
    before_mark: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Push everything of this workstation the server does not have yet; see the module doc.

    ``held``: sessions an earlier push held back (``SyncReport.held``), read again: the
    audit mark has passed them, and they are listed until they can be sent. None when they
    are not known (the record of earlier pushes lost): everything is sent again.
    ``before_mark`` is called with the report just before the audit mark moves past this
    push's entries: where the caller keeps ``held``, so a push killed after the mark moved
    still names them next time."""
    report = SyncReport(at_utc=now)
    try:
        _push(
            conn,
            local,
            report,
            now=now,
            batch_size=batch_size,
            held=held,
            before_mark=before_mark,
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(
            f"the clinic server refused this workstation's data: {exc.diag.message_primary};"
            " is this role a member of therapy_timer_workstation?"
        ) from None
    except psycopg.errors.UndefinedFunction:
        raise ServerVersionError(OLDER_SERVER) from None
    except psycopg.errors.DiskFull as exc:
        raise ServerRefused(
            f"the clinic server's disk is full ({first_line(exc)}): it stored nothing more of"
            " this sync; what it has is kept, and the next sync resumes once its administrator"
            " frees space"
        ) from None
    except psycopg.errors.QueryCanceled as exc:
        raise ServerRefused(
            f"the clinic server stopped the sync at its time limit ({first_line(exc)}): nothing"
            " is lost and the next sync resumes; if it recurs, its administrator raises this"
            " role's statement_timeout"
        ) from None
    except (
        psycopg.errors.DeadlockDetected,
        psycopg.errors.SerializationFailure,
        psycopg.errors.TransactionRollback,
    ) as exc:
        raise ServerRefused(
            f"the clinic server stopped the sync, which met another connection's changes"
            f" ({first_line(exc)}): nothing is lost and the next sync resumes"
        ) from None
    except psycopg.OperationalError as exc:
        raise ServerUnavailable(
            "the connection to the clinic server was lost during the sync"
            f" ({first_line(exc)}); nothing is lost, the next sync resumes"
        ) from None
    return report


def _push(
    conn: Connection,
    local: LocalRecords,
    report: SyncReport,
    *,
    now: datetime,
    batch_size: int,
    held: Sequence[str] | None,
    before_mark: Callable[[SyncReport], None] | None,
) -> None:
    with conn.transaction():
        report.clock_skew = clock_skew(conn, now)
        me = conn.execute(
            "SELECT current_user, pg_has_role(current_user, %s, 'MEMBER'),"
            " pg_has_role(current_user, %s, 'MEMBER')",
            [DESK_GROUP, WORKSTATION_GROUP],
        ).fetchone()
        assert me is not None
        report.workstation = str(me[0])
        # The desk's role may write none of this: every round of its window was refused.
        if me[1] and not me[2]:
            report.desk = True
            return
        row = conn.execute(
            "SELECT pushed_audit_id, pushed_audit_hash FROM therapy_timer.workstations"
            " WHERE name = current_user"
        ).fetchone()
    mark, mark_hash = (0, None) if row is None else (int(row[0]), row[1])
    entries = local.audit_from(max(mark, 1))
    if mark:
        if (
            held is not None
            and entries
            and entries[0].id == mark
            and entry_hash(entries[0]) == mark_hash
        ):
            entries = entries[1:]
        else:
            # The local log is not the one the server saw (a restored backup, another
            # database), or the sessions held back before the mark are not known: send
            # everything again; what the server holds is compared, not lost, and a session
            # it cannot store is found and named again.
            report.resent_all = True
            entries = local.audit_from(1)
    owners = [session_of_entry(e) for e in entries]
    touched = list(dict.fromkeys([*(s for s in owners if s is not None), *(held or ())]))
    sent: set[int] = set()
    kept: set[str] = set()
    for ids in _chunks(touched, batch_size):
        records = []
        for record in local.closed_records(ids):
            where, problem = _not_text(record), NOT_TEXT
            if where is None:
                too_big = _record_oversize(record)
                where, problem = (OVERSIZE_FIELD, too_big) if too_big else (None, "")
            if where is None:
                records.append(record)
                continue
            # One record jsonb refuses, or the desk would, would end the whole push: it
            # stays here, named.
            kept.add(str(record["id"]))
            report.held.append(
                HeldBack(
                    str(record["id"]),
                    where,
                    str(record["patient_ref"]),
                    str(record["date_of_service"]),
                    problem=problem,
                )
            )
        if records:
            sent |= _push_batch(conn, records, report, kept)
    loose = []
    for entry, owner in zip(entries, owners, strict=True):
        if entry.id in sent or owner in kept:
            continue
        where = not_text_in(_entry_fields(entry))
        if where is None:
            loose.append(entry)
        else:
            if owner is not None:
                kept.add(owner)  # an open session's: its record is read at its close
            report.held.append(HeldBack(owner, f"audit entry {entry.id}'s {where}"))
    if before_mark is not None:
        before_mark(report)
    with conn.transaction():
        _push_audit(conn, loose, report)
        last = entries[-1] if entries else None
        conn.execute(
            "INSERT INTO therapy_timer.workstations AS w (name, last_sync_utc, heartbeat_utc,"
            " running, pushed_audit_id, pushed_audit_hash)"
            " VALUES (current_user, now(), now(), %(running)s, %(mark)s, %(hash)s)"
            " ON CONFLICT (name) DO UPDATE SET last_sync_utc = excluded.last_sync_utc,"
            " heartbeat_utc = excluded.heartbeat_utc, running = excluded.running,"
            " pushed_audit_id = excluded.pushed_audit_id,"
            " pushed_audit_hash = excluded.pushed_audit_hash",
            {
                "running": Jsonb(local.running()),
                "mark": last.id if last else mark,
                "hash": entry_hash(last) if last else mark_hash,
            },
        )
        report.pushed_audit_id = last.id if last else mark
        waiting = conn.execute(
            "SELECT count(*) FROM therapy_timer.conflicts"
            " WHERE workstation = current_user AND resolved_utc IS NULL"
        ).fetchone()
        report.waiting = int(waiting[0]) if waiting else 0


def _push_batch(
    conn: Connection, records: Sequence[Mapping[str, Any]], report: SyncReport, kept: set[str]
) -> set[int]:
    """``_push_sessions`` in one transaction; when a segment id is another session's on the
    server (a bundle merged here reused it; row security hides that session), the batch is
    pushed again one session at a time and the one the server cannot store stays here."""
    before = copy.deepcopy(report)
    try:
        with conn.transaction():
            return _push_sessions(conn, records, report)
    except psycopg.errors.UniqueViolation:
        vars(report).update(vars(before))  # the batch was rolled back: its counts too
    sent: set[int] = set()
    for record in records:
        before = copy.deepcopy(report)
        try:
            with conn.transaction():
                sent |= _push_sessions(conn, [record], report)
        except psycopg.errors.UniqueViolation:
            # Which segment, row security keeps from this role (the error shows no key).
            vars(report).update(vars(before))
            kept.add(str(record["id"]))
            report.held.append(
                HeldBack(
                    str(record["id"]),
                    "segments",
                    str(record["patient_ref"]),
                    str(record["date_of_service"]),
                    problem="reuse the id of a segment another session has there",
                )
            )
    return sent


def _session_row(record: Mapping[str, Any], digest: str) -> dict[str, object]:
    return {
        "id": record["id"],
        "date_of_service": record["date_of_service"],
        "patient_ref": record["patient_ref"],
        "clinician": record["clinician"],
        "role": record["role"],
        "discipline": record["discipline"],
        "payer_profile": record["payer_profile"],
        "amended": bool(record["amended"]),
        "created_utc": record["created_utc"],
        "closed_utc": record["closed_utc"],
        "content_hash": digest,
        "record": dict(record),
    }


_SESSION_COLUMNS = (
    "date_of_service",
    "patient_ref",
    "clinician",
    "role",
    "discipline",
    "payer_profile",
    "amended",
    "created_utc",
    "closed_utc",
    "content_hash",
    "record",
)
_SESSION_TYPES = (
    "id uuid, date_of_service date, patient_ref text, clinician text, role text,"
    " discipline text, payer_profile text, amended boolean, created_utc timestamptz,"
    " closed_utc timestamptz, content_hash text, record jsonb"
)

# Rows go to the server as one JSON parameter per table and statement: a day's push is a
# handful of round trips, not one per row.


def _push_sessions(
    conn: Connection, records: Sequence[Mapping[str, Any]], report: SyncReport
) -> set[int]:
    """Add, amend or keep aside each record; the local audit ids sent along with them."""
    ids = [str(r["id"]) for r in records]
    held = {
        str(i): str(h)
        for i, h in conn.execute(
            "SELECT id::text, content_hash FROM therapy_timer.sessions"
            " WHERE id = ANY(%s::uuid[]) AND workstation = current_user",
            [ids],
        )
    }
    history: dict[str, dict[int, str]] = {}
    for session_id, local_id, digest in conn.execute(
        "SELECT session_id::text, local_id, entry_hash FROM therapy_timer.audit"
        " WHERE session_id = ANY(%s::uuid[]) AND workstation = current_user",
        [ids],
    ):
        history.setdefault(str(session_id), {})[int(local_id)] = str(digest)
    digests = {str(r["id"]): content_hash(r) for r in records}
    new: list[Mapping[str, Any]] = []
    amend: list[Mapping[str, Any]] = []
    for record in records:
        session_id = str(record["id"])
        if session_id not in held:
            new.append(record)
        elif held[session_id] == digests[session_id]:
            report.unchanged += 1
        elif _extends(record, history.get(session_id, {})):
            amend.append(record)  # our own later version: the server's history is a prefix
        else:
            _keep_aside(
                conn,
                record,
                digests[session_id],
                "the server holds another history of this session (was this"
                " workstation's database restored from an older backup?)",
                report,
            )
    if amend:
        settled = {
            str(row[0])
            for row in conn.execute(
                "SELECT therapy_timer.settled_at_desk(%s::uuid[])",
                [[str(r["id"]) for r in amend]],
            )
        }
        for record in [r for r in amend if str(r["id"]) in settled]:
            _keep_aside(
                conn,
                record,
                digests[str(record["id"])],
                "the desk accepted another workstation's version of this session on the server",
                report,
            )
        amend = [r for r in amend if str(r["id"]) not in settled]
    inserted: set[str] = set()
    if new:
        inserted = {
            str(row[0])
            for row in conn.execute(
                f"INSERT INTO therapy_timer.sessions (id, {', '.join(_SESSION_COLUMNS)})"
                f" SELECT * FROM jsonb_to_recordset(%s) AS t({_SESSION_TYPES})"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                [Jsonb([_session_row(r, digests[str(r["id"])]) for r in new])],
            )
        }
    report.added += len(inserted)
    for record in new:
        session_id = str(record["id"])
        if session_id in inserted:
            continue
        owner = conn.execute(
            "SELECT workstation, content_hash FROM therapy_timer.held_elsewhere(%s)", [session_id]
        ).fetchone()
        if owner is not None and owner[1] == digests[session_id]:
            report.unchanged += 1  # a copy, e.g. merged here from that station's bundle
        else:
            who = "another workstation" if owner is None else f"workstation {owner[0]}"
            _keep_aside(
                conn,
                record,
                digests[session_id],
                f"{who} already put another version on the server",
                report,
            )
    written = []
    for record in amend:
        session_id = str(record["id"])
        row = {**_session_row(record, digests[session_id]), "record": Jsonb(dict(record))}
        # Only over the copy this push read: one the desk settled meanwhile stays.
        if conn.execute(
            "UPDATE therapy_timer.sessions SET "
            + ", ".join(f"{c} = %({c})s" for c in _SESSION_COLUMNS)
            + ", pushed_utc = now() WHERE id = %(id)s AND content_hash = %(held)s",
            {**row, "held": held[session_id]},
        ).rowcount:
            written.append(record)
        elif _now_held(conn, session_id) == digests[session_id]:
            report.unchanged += 1  # this workstation's other sync (the window's) wrote it
        else:
            _keep_aside(
                conn,
                record,
                digests[session_id],
                "the server's copy of this session changed while this workstation synced it",
                report,
            )
    amend = written
    if amend:
        replaced = [str(r["id"]) for r in amend]
        conn.execute(
            "DELETE FROM therapy_timer.segments WHERE session_id = ANY(%s::uuid[])", [replaced]
        )
        conn.execute(
            "DELETE FROM therapy_timer.untimed WHERE session_id = ANY(%s::uuid[])", [replaced]
        )
        report.amended += len(amend)
    _insert_children(conn, [r for r in new if str(r["id"]) in inserted] + amend)
    entries = [e for r in records for e in r.get("audit", [])]
    _push_audit(conn, entries, report)
    return {int(e["id"]) for e in entries}


def _now_held(conn: Connection, session_id: str) -> str | None:
    found = conn.execute(
        "SELECT content_hash FROM therapy_timer.sessions WHERE id = %s", [session_id]
    ).fetchone()
    return None if found is None else str(found[0])


def _extends(record: Mapping[str, Any], theirs: Mapping[int, str]) -> bool:
    """Whether every audit entry the server holds for the session is in the record, alike."""
    ours = {int(e["id"]): entry_hash(e) for e in record.get("audit", []) if int(e["id"]) in theirs}
    return all(ours.get(i) == h for i, h in theirs.items())


def _insert_children(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    segments = [
        {**segment, "session_id": record["id"]}
        for record in records
        for segment in record.get("segments", [])
    ]
    if segments:
        conn.execute(
            "INSERT INTO therapy_timer.segments (id, session_id, code, furnished_by,"
            " exclusive, start_utc, stop_utc) SELECT * FROM jsonb_to_recordset(%s) AS t("
            "id uuid, session_id uuid, code text, furnished_by text, exclusive boolean,"
            " start_utc timestamptz, stop_utc timestamptz)",
            [Jsonb(segments)],
        )
    untimed = [
        {**service, "session_id": record["id"], "position": n}
        for record in records
        for n, service in enumerate(record.get("untimed", []))
    ]
    if untimed:
        conn.execute(
            "INSERT INTO therapy_timer.untimed (session_id, position, code, minutes,"
            " furnished_by, created_utc) SELECT * FROM jsonb_to_recordset(%s) AS t("
            "session_id uuid, position integer, code text, minutes integer, furnished_by text,"
            " created_utc timestamptz)",
            [Jsonb(untimed)],
        )


def _keep_aside(
    conn: Connection, record: Mapping[str, Any], digest: str, why: str, report: SyncReport
) -> None:
    """A conflicting copy is never written over what the server holds: it waits for the desk."""
    report.conflicts += 1
    report.conflict_ids.append(str(record["id"]))
    kept = conn.execute(
        "INSERT INTO therapy_timer.conflicts (session_id, content_hash, why, record)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        [record["id"], digest, why, Jsonb(dict(record))],
    ).fetchone()
    if kept is not None:
        conn.execute(
            "INSERT INTO therapy_timer.events (action, entity, entity_id, details)"
            " VALUES ('conflict.kept_aside', 'session', %s, %s)",
            [str(record["id"]), Jsonb({"conflict": kept[0], "why": why})],
        )


def _push_audit(
    conn: Connection, entries: Sequence[AuditEntry | Mapping[str, Any]], report: SyncReport
) -> None:
    unique: dict[int, dict[str, Any]] = {}
    for entry in entries:
        fields = _entry_fields(entry)
        unique.setdefault(int(fields["id"]), fields)
    if not unique:
        return
    rows = [
        {**fields, "session_id": session_of_entry(fields), "entry_hash": _fields_hash(fields)}
        for fields in unique.values()
    ]
    added = conn.execute(
        "INSERT INTO therapy_timer.audit (local_id, session_id, at_utc, actor, action, entity,"
        " entity_id, before, after, reason, entry_hash)"
        " SELECT id, session_id, at_utc, actor, action, entity, entity_id, before, after,"
        " reason, entry_hash FROM jsonb_to_recordset(%s) AS t(id bigint, session_id uuid,"
        " at_utc timestamptz, actor text, action text, entity text, entity_id text,"
        " before jsonb, after jsonb, reason text, entry_hash text)"
        " ON CONFLICT (workstation, local_id) DO NOTHING RETURNING local_id",
        [Jsonb(rows)],
    ).fetchall()
    report.audit_added += len(added)
    if len(added) == len(rows):
        return
    held = {
        int(i): str(h)
        for i, h in conn.execute(
            "SELECT local_id, entry_hash FROM therapy_timer.audit WHERE workstation = current_user"
            " AND local_id = ANY(%s)",
            [list(unique)],
        )
    }
    # The same local id with other content: the log was replaced (a restored backup). The
    # server's entry stays; ours is kept beside it for the desk, once: sent again, it is
    # still counted (the sync is not complete) but the server records nothing new.
    diverged = [row for row in rows if held.get(row["id"]) != row["entry_hash"]]
    if not diverged:
        return
    report.audit_conflicts += len(diverged)
    conn.execute(
        "WITH kept AS (INSERT INTO therapy_timer.diverged_audit (local_id, entry_hash, entry)"
        " SELECT t.id, t.entry_hash, t.entry FROM jsonb_to_recordset(%s)"
        " AS t(id bigint, entry_hash text, entry jsonb)"
        " ON CONFLICT DO NOTHING RETURNING local_id, entry)"
        " INSERT INTO therapy_timer.events (action, entity, entity_id, details)"
        " SELECT 'audit.diverged', 'audit', local_id::text, entry FROM kept",
        [
            Jsonb(
                [
                    {"id": row["id"], "entry_hash": row["entry_hash"], "entry": unique[row["id"]]}
                    for row in diverged
                ]
            )
        ],
    )
