"""Pushing a workstation's closed sessions, audit entries and running state, idempotently.

Every push is safe to repeat and to cut off anywhere: sessions go in batches, each its own
transaction; a copy the server already holds is compared, never rewritten; and how far the
audit log was pushed is recorded on the server in the same transaction as the last entries,
so a push that dies is simply redone from where the server says it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from therapy_timer.model import AuditEntry
from therapy_timer.server.connection import ServerRefused, ServerUnavailable

Connection = psycopg.Connection[tuple[Any, ...]]

BATCH_SESSIONS = 100


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
    pushed_audit_id: int = 0
    at_utc: datetime | None = None
    conflict_ids: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.conflicts == 0 and self.audit_conflicts == 0

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
            "pushed_audit_id": self.pushed_audit_id,
            "at_utc": None if self.at_utc is None else self.at_utc.isoformat(),
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
    fields = _entry_fields(entry)
    return hashlib.sha256(_canonical(fields).encode()).hexdigest()


def session_of_entry(entry: AuditEntry | Mapping[str, Any]) -> str | None:
    """The session an audit entry belongs to: its own id, or a child's payload says."""
    fields = entry if isinstance(entry, Mapping) else _entry_fields(entry)
    if fields["entity"] == "session":
        return str(fields["entity_id"])
    if fields["entity"] in ("segment", "untimed"):
        payload = fields.get("after") or fields.get("before") or {}
        owner = payload.get("session_id") if isinstance(payload, Mapping) else None
        return None if owner is None else str(owner)
    return None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def push(
    conn: Connection,
    local: LocalRecords,
    *,
    now: datetime,
    batch_size: int = BATCH_SESSIONS,
) -> SyncReport:
    """Push everything of this workstation the server does not have yet; see the module doc."""
    report = SyncReport(at_utc=now)
    try:
        _push(conn, local, report, now=now, batch_size=batch_size)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(
            f"the clinic server refused this workstation's data: {exc.diag.message_primary};"
            " is this role a member of therapy_timer_workstation?"
        ) from None
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()
        raise ServerUnavailable(
            "the connection to the clinic server was lost during the sync"
            f" ({text[0] if text else type(exc).__name__}); nothing is lost, the next sync"
            " resumes"
        ) from None
    return report


def _push(
    conn: Connection, local: LocalRecords, report: SyncReport, *, now: datetime, batch_size: int
) -> None:
    with conn.transaction():
        me = conn.execute("SELECT current_user").fetchone()
        assert me is not None
        report.workstation = str(me[0])
        row = conn.execute(
            "SELECT pushed_audit_id, pushed_audit_hash FROM therapy_timer.workstations"
            " WHERE name = current_user"
        ).fetchone()
    mark, mark_hash = (0, None) if row is None else (int(row[0]), row[1])
    entries = local.audit_from(max(mark, 1))
    if mark:
        if entries and entries[0].id == mark and entry_hash(entries[0]) == mark_hash:
            entries = entries[1:]
        else:
            # The local log is not the one the server saw (a restored backup, another
            # database): send everything again; what the server holds is compared, not lost.
            report.resent_all = True
            entries = local.audit_from(1)
    touched = list(dict.fromkeys(s for s in map(session_of_entry, entries) if s is not None))
    for ids in _chunks(touched, batch_size):
        records = local.closed_records(ids)
        if records:
            with conn.transaction():
                _push_sessions(conn, records, report)
    with conn.transaction():
        _push_audit(conn, entries, report)
        last = entries[-1] if entries else None
        conn.execute(
            "INSERT INTO therapy_timer.workstations AS w (name, last_sync_utc, heartbeat_utc,"
            " running, pushed_audit_id, pushed_audit_hash)"
            " VALUES (current_user, %(now)s, %(now)s, %(running)s, %(mark)s, %(hash)s)"
            " ON CONFLICT (name) DO UPDATE SET last_sync_utc = excluded.last_sync_utc,"
            " heartbeat_utc = excluded.heartbeat_utc, running = excluded.running,"
            " pushed_audit_id = excluded.pushed_audit_id,"
            " pushed_audit_hash = excluded.pushed_audit_hash",
            {
                "now": now,
                "running": Jsonb(local.running()),
                "mark": last.id if last else mark,
                "hash": entry_hash(last) if last else mark_hash,
            },
        )
        report.pushed_audit_id = last.id if last else mark


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
        "record": Jsonb(dict(record)),
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


def _push_sessions(
    conn: Connection, records: Sequence[Mapping[str, Any]], report: SyncReport
) -> None:
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
    fresh: list[Mapping[str, Any]] = []
    for record in records:
        session_id = str(record["id"])
        digest = content_hash(record)
        if session_id in held:
            if held[session_id] == digest:
                report.unchanged += 1
                continue
            theirs = history.get(session_id, {})
            ours = {int(e["id"]): entry_hash(e) for e in record.get("audit", [])}
            if any(ours.get(i) != h for i, h in theirs.items()):
                _keep_aside(
                    conn,
                    record,
                    digest,
                    "the server holds another history of this session (was this"
                    " workstation's database restored from an older backup?)",
                    report,
                )
                continue
            # Our own later version: the server's history is a prefix of ours.
            row = _session_row(record, digest)
            conn.execute(
                "UPDATE therapy_timer.sessions SET "
                + ", ".join(f"{c} = %({c})s" for c in _SESSION_COLUMNS)
                + ", pushed_utc = now() WHERE id = %(id)s",
                row,
            )
            conn.execute("DELETE FROM therapy_timer.segments WHERE session_id = %s", [session_id])
            conn.execute("DELETE FROM therapy_timer.untimed WHERE session_id = %s", [session_id])
            fresh.append(record)
            report.amended += 1
            continue
        inserted = conn.execute(
            "INSERT INTO therapy_timer.sessions (id, "
            + ", ".join(_SESSION_COLUMNS)
            + ") VALUES (%(id)s, "
            + ", ".join(f"%({c})s" for c in _SESSION_COLUMNS)
            + ") ON CONFLICT (id) DO NOTHING RETURNING id",
            _session_row(record, digest),
        ).fetchone()
        if inserted is not None:
            fresh.append(record)
            report.added += 1
            continue
        owner = conn.execute(
            "SELECT workstation, content_hash FROM therapy_timer.held_elsewhere(%s)", [session_id]
        ).fetchone()
        if owner is not None and owner[1] == digest:
            report.unchanged += 1  # a copy, e.g. merged here from that station's bundle
        else:
            who = "another workstation" if owner is None else f"workstation {owner[0]}"
            _keep_aside(
                conn, record, digest, f"{who} already put another version on the server", report
            )
    _insert_children(conn, fresh)
    _push_audit(conn, [e for r in records for e in r.get("audit", [])], report)


def _insert_children(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    segments = [
        {**segment, "session_id": record["id"]}
        for record in records
        for segment in record.get("segments", [])
    ]
    if segments:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO therapy_timer.segments (id, session_id, code, furnished_by,"
                " exclusive, start_utc, stop_utc) VALUES (%(id)s, %(session_id)s, %(code)s,"
                " %(furnished_by)s, %(exclusive)s, %(start_utc)s, %(stop_utc)s)",
                segments,
            )
    untimed = [
        {**service, "session_id": record["id"], "position": n}
        for record in records
        for n, service in enumerate(record.get("untimed", []))
    ]
    if untimed:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO therapy_timer.untimed (session_id, position, code, minutes,"
                " furnished_by, created_utc) VALUES (%(session_id)s, %(position)s, %(code)s,"
                " %(minutes)s, %(furnished_by)s, %(created_utc)s)",
                untimed,
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
        {
            **fields,
            "session_id": session_of_entry(fields),
            "before": Jsonb(fields["before"]) if fields["before"] is not None else None,
            "after": Jsonb(fields["after"]) if fields["after"] is not None else None,
            "entry_hash": entry_hash(fields),
        }
        for fields in unique.values()
    ]
    ids = list(unique)
    before = conn.execute(
        "SELECT count(*) FROM therapy_timer.audit WHERE workstation = current_user"
        " AND local_id = ANY(%s)",
        [ids],
    ).fetchone()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO therapy_timer.audit (local_id, session_id, at_utc, actor, action, entity,"
            " entity_id, before, after, reason, entry_hash) VALUES (%(id)s,"
            " %(session_id)s::uuid, %(at_utc)s, %(actor)s, %(action)s, %(entity)s,"
            " %(entity_id)s, %(before)s, %(after)s, %(reason)s, %(entry_hash)s)"
            " ON CONFLICT (workstation, local_id) DO NOTHING",
            rows,
        )
    held = {
        int(i): str(h)
        for i, h in conn.execute(
            "SELECT local_id, entry_hash FROM therapy_timer.audit WHERE workstation = current_user"
            " AND local_id = ANY(%s)",
            [ids],
        )
    }
    report.audit_added += len(ids) - int(before[0] if before else 0)
    for row in rows:
        if held.get(row["id"]) != row["entry_hash"]:
            # The same local id with other content: the log was replaced (a restored backup).
            # The server's entry stays; ours is recorded beside it for the desk to see.
            report.audit_conflicts += 1
            conn.execute(
                "INSERT INTO therapy_timer.events (action, entity, entity_id, details)"
                " VALUES ('audit.diverged', 'audit', %s, %s)",
                [str(row["id"]), Jsonb(unique[row["id"]])],
            )
