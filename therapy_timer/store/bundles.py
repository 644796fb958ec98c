"""Many sessions at once: closed sessions as plain records for bundles, and merging them back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import date, datetime
from typing import Any

from therapy_timer.codes import FurnishedBy, Method, normalize_code
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.frozen import frozen_record
from therapy_timer.model import (
    Conflict,
    ConflictStatus,
    Session,
    SessionStatus,
    check_session_record,
    reason_text,
)
from therapy_timer.store._db import (
    dt,
    guarded,
    jsonable,
    norm_ts,
    now_text,
    row_reader,
    session_of,
    to_json,
    ts,
)
from therapy_timer.store.queries import QueriesMixin


@frozen_record
class ImportOutcome:
    """What merging a bundle's session records did (see ``Store.import_session_records``)."""

    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    conflicts: tuple[Mapping[str, Any], ...]
    why: Mapping[str, str] = field(default_factory=dict)
    """Why each conflicting session (by id) was kept aside, in words for the front desk."""
    kept: tuple[int, ...] = ()
    """The ``Store.conflicts`` row of each of ``conflicts``, in order."""

    def __init__(
        self,
        added: tuple[str, ...],
        unchanged: tuple[str, ...],
        conflicts: tuple[Mapping[str, Any], ...],
        why: Mapping[str, str] | None = None,
        kept: tuple[int, ...] = (),
    ) -> None:
        object.__setattr__(self, "added", added)
        object.__setattr__(self, "unchanged", unchanged)
        object.__setattr__(self, "conflicts", conflicts)
        object.__setattr__(self, "why", {} if why is None else why)
        object.__setattr__(self, "kept", kept)


@frozen_record
class RecordBatch:
    """One bundle's session records and where they came from, for ``Store.import_batches``."""

    records: Sequence[object]
    origin: str  # the workstation that made the bundle
    source: str  # the file, named in errors and in the audit

    def __init__(self, records: Sequence[object], origin: str, source: str) -> None:
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "source", source)


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


def _stamp(value: object) -> object:
    """A moment in the one form the store keeps (so 10:00:00+00:00 and 10:00:00.000000+00:00,
    or the same moment in two offsets, are one moment); anything else as it is."""
    if isinstance(value, datetime):
        return ts(value, "timestamp")
    if isinstance(value, str) and "T" in value:
        try:
            return ts(dt(value), "timestamp")
        except ValueError:
            return value
    return value


def _record_content(record: Mapping[str, Any]) -> str:
    """What makes two copies of a session the same: its fields, segments and untimed services.

    Audit entries, the exported flag and where it came from are history, not content.
    """
    content = {name: _stamp(record.get(name)) for name in _RECORD_SESSION_FIELDS}
    content["segments"] = sorted(
        ({k: _stamp(v) for k, v in s.items()} for s in record.get("segments", [])),
        key=lambda s: str(s.get("id")),
    )
    content["untimed"] = [{k: _stamp(v) for k, v in u.items()} for u in record.get("untimed", [])]
    return json.dumps(content, sort_keys=True, default=str)


def _stored_form(checked: Mapping[str, Any]) -> dict[str, Any]:
    """A checked record as the text the store keeps: dates YYYY-MM-DD, moments in UTC."""

    def convert(value: object) -> object:
        if isinstance(value, datetime):
            return ts(value, "timestamp")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Mapping):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    result = convert(checked)
    assert isinstance(result, dict)
    return result


def version_hash(record: Mapping[str, Any]) -> str:
    """Names one version of a session record (its whole content, audit included)."""
    import hashlib  # here: loading OpenSSL costs the window's start ~4 ms (issue 13)

    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@row_reader("import_conflicts")
def _conflict_of(row: Mapping[str, Any]) -> Conflict:
    return Conflict(
        id=int(row["id"]),
        session_id=str(row["session_id"]),
        origin=str(row["origin"]),
        source=str(row["source"]),
        why=str(row["why"]),
        received_utc=dt(row["received_utc"]),
        status=ConflictStatus(row["status"]),
        decided_utc=None if row["decided_utc"] is None else dt(row["decided_utc"]),
        record=json.loads(row["record_json"]),
    )


class BundlesMixin(QueriesMixin):
    """Closed sessions out as plain JSON data, and in from other workstations' bundles."""

    @guarded
    def session_records(self, session_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Closed sessions as plain JSON data, in the order asked, read in a few queries.

        Each has its fields, payer profile, segments, untimed services and every audit entry of
        the session and of its segments and untimed services (also of discarded ones).
        """
        ids = list(dict.fromkeys(session_ids))
        rows: dict[str, Session] = {
            row["id"]: session_of(row)
            for row in self._rows_in("SELECT * FROM sessions WHERE id IN ({ids})", ids)
        }
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
                name: jsonable(getattr(session, name)) for name in _RECORD_SESSION_FIELDS
            }
            record["payer"] = jsonable(profiles[session.payer_profile])
            record["segments"] = [
                {
                    "id": seg.id,
                    "code": seg.code,
                    "furnished_by": seg.furnished_by.value,
                    "exclusive": seg.exclusive,
                    "start_utc": seg.start_utc.isoformat(),
                    "stop_utc": jsonable(seg.stop_utc),
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
            record["audit"] = [jsonable(entry) for entry in audit.get(session_id, [])]
            records.append(record)
        return records

    def check_session_records(
        self, records: Sequence[object], *, source: str
    ) -> list[dict[str, Any]]:
        """Check bundle records without writing (``model.check_session_record``, the checks of
        a session recorded here); each in the store's form. InvalidInput names the file."""
        return [
            _stored_form(check_session_record(r, f"{source}: session {i + 1}", source=source))
            for i, r in enumerate(records)
        ]

    @guarded
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

    @guarded
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
                kept: list[int] = []
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
                        kept.append(self._keep_conflict(record, batch, reason, actor))
                outcomes.append(
                    ImportOutcome(
                        tuple(added), tuple(unchanged), tuple(conflicts), why, tuple(kept)
                    )
                )
        return outcomes

    def _keep_conflict(
        self, record: Mapping[str, Any], batch: RecordBatch, why: str, actor: str | None
    ) -> int:
        """Keep a conflicting version (once per content), audited; its row id."""
        digest = version_hash(record)
        row = self._conn.execute(
            "SELECT id FROM import_conflicts WHERE session_id = ? AND content_hash = ?",
            [record["id"], digest],
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._conn.execute(
            "INSERT INTO import_conflicts (session_id, origin, source, why, record_json,"
            " content_hash, received_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                record["id"],
                batch.origin,
                batch.source,
                why,
                json.dumps(record, sort_keys=True),
                digest,
                now_text(self._clock),
            ],
        )
        assert cursor.lastrowid is not None
        self._audit(
            "conflict.keep",
            "conflict",
            str(cursor.lastrowid),
            after={"session_id": record["id"], "origin": batch.origin, "why": why},
            actor=actor,
        )
        return cursor.lastrowid

    # conflicts: another version of a session, for the front desk to accept or drop -------------

    @guarded
    def conflicts(self, *, status: ConflictStatus | None = ConflictStatus.OPEN) -> list[Conflict]:
        """Kept-aside versions, oldest first; every one when ``status`` is None."""
        rows = self._rows(
            "SELECT * FROM import_conflicts WHERE ? IS NULL OR status = ? ORDER BY id",
            [None if status is None else status.value] * 2,
        )
        return [_conflict_of(r) for r in rows]

    @guarded
    def get_conflict(self, conflict_id: int) -> Conflict:
        return self._conflict_row(conflict_id)

    def _conflict_row(self, conflict_id: int) -> Conflict:
        rows = self._rows("SELECT * FROM import_conflicts WHERE id = ?", [conflict_id])
        if not rows:
            raise InvalidInput("conflict", f"there is no kept-aside version {conflict_id}")
        return _conflict_of(rows[0])

    def _open_conflict(self, conflict_id: int) -> Conflict:
        conflict = self._conflict_row(conflict_id)
        if conflict.status is not ConflictStatus.OPEN:
            raise InvalidOperation(f"version {conflict_id} was already {conflict.status.value}")
        return conflict

    def _decide(self, conflict: Conflict, status: ConflictStatus) -> None:
        self._conn.execute(
            "UPDATE import_conflicts SET status = ?, decided_utc = ? WHERE id = ?",
            [status.value, now_text(self._clock), conflict.id],
        )

    @guarded
    def drop_conflict(self, conflict_id: int, *, reason: str, actor: str | None = None) -> Conflict:
        """Keep this station's version; the other one stays recorded as dropped (audited)."""
        why = reason_text(reason)
        with self._write():
            conflict = self._open_conflict(conflict_id)
            self._decide(conflict, ConflictStatus.DROPPED)
            self._audit(
                "conflict.drop",
                "conflict",
                str(conflict_id),
                before={"session_id": conflict.session_id, "status": conflict.status.value},
                after={"session_id": conflict.session_id, "status": "dropped"},
                reason=why,
                actor=actor,
            )
            return self._conflict_row(conflict_id)

    @guarded
    def accept_conflict(
        self, conflict_id: int, *, reason: str, actor: str | None = None
    ) -> Session:
        """Replace this station's version of the session with the kept-aside one, in one
        transaction: the session is marked amended and the old and new content are audited, so
        an export already sent is flagged as out of date."""
        why = reason_text(reason)
        with self._write():
            conflict = self._open_conflict(conflict_id)
            record = conflict.record
            session_id = conflict.session_id
            rows = self._rows("SELECT status FROM sessions WHERE id = ?", [session_id])
            if not rows:
                raise InvalidOperation(
                    f"there is no session {session_id} here to replace: {conflict.why}"
                )
            if rows[0]["status"] != SessionStatus.CLOSED.value:
                raise InvalidOperation(f"session {session_id} is still open here; close it first")
            if not self._import_payer(record["payer"]):
                raise InvalidOperation(
                    f"the payer profile {record['payer_profile']!r} has other rules here;"
                    " make them agree first, or drop this version"
                )
            segment_ids = [str(s["id"]) for s in record["segments"]]
            taken = next(
                (
                    row
                    for row in self._rows_in(
                        "SELECT id, session_id FROM segments WHERE id IN ({ids})", segment_ids
                    )
                    if row["session_id"] != session_id
                ),
                None,
            )
            if taken is not None:
                raise InvalidOperation(
                    f"its segment {taken['id']} belongs to another session here; drop it"
                )
            (before,) = self.session_records([session_id])
            before.pop("audit", None)
            self._conn.execute("DELETE FROM segments WHERE session_id = ?", [session_id])
            self._conn.execute("DELETE FROM untimed_services WHERE session_id = ?", [session_id])
            allocation = record.get("allocation")
            self._conn.execute(
                "UPDATE sessions SET date_of_service = ?, patient_ref = ?, clinician = ?,"
                " role = ?, discipline = ?, payer_profile = ?, created_utc = ?, closed_utc = ?,"
                " allocation_json = ?, amended = 1, origin = ? WHERE id = ?",
                [
                    record["date_of_service"],
                    record["patient_ref"],
                    record["clinician"],
                    record["role"],
                    record["discipline"],
                    record["payer_profile"],
                    record["created_utc"],
                    record["closed_utc"],
                    None if allocation is None else json.dumps(allocation, sort_keys=True),
                    conflict.origin,
                    session_id,
                ],
            )
            self._insert_parts(record)
            self._decide(conflict, ConflictStatus.ACCEPTED)
            (after,) = self.session_records([session_id])
            after.pop("audit", None)
            self._audit(
                "conflict.accept",
                "session",
                session_id,
                before=before,
                after={**after, "conflict": conflict_id, "origin": conflict.origin},
                reason=why,
                actor=actor,
            )
            return self._session_row(session_id)

    def _contents_here(self, session_ids: Sequence[str]) -> dict[str, str | None]:
        status = {
            row["id"]: row["status"]
            for row in self._rows_in(
                "SELECT id, status FROM sessions WHERE id IN ({ids})", session_ids
            )
        }
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
        taken = next(
            self._rows_in("SELECT id FROM segments WHERE id IN ({ids})", segment_ids), None
        )
        if taken is not None:
            return f"its segment {taken['id']} belongs to another session here"
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
        self._insert_row(
            "sessions",
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
                "created_utc": norm_ts(record["created_utc"]),
                "closed_utc": norm_ts(record.get("closed_utc")),
                "paused_utc": None,
                "resume_json": "[]",
                "allocation_json": None
                if allocation is None
                else json.dumps(allocation, sort_keys=True),
                "origin": origin,
            },
        )
        self._insert_parts(record)
        for entry in record.get("audit", []):
            self._conn.execute(
                "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, before_json,"
                " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    norm_ts(entry["at_utc"]),
                    f"{entry['actor']}@{origin}",
                    entry["action"],
                    entry["entity"],
                    entry["entity_id"],
                    to_json(entry.get("before")),
                    to_json(entry.get("after")),
                    entry.get("reason", ""),
                ],
            )

    def _insert_parts(self, record: Mapping[str, Any]) -> None:
        """A checked record's segments and untimed services (already in the stored form)."""
        for segment in record["segments"]:
            self._insert_row(
                "segments",
                {
                    "id": str(segment["id"]),
                    "code": normalize_code(segment["code"], "code"),
                    "furnished_by": FurnishedBy(segment["furnished_by"]).value,
                    "exclusive": int(bool(segment["exclusive"])),
                    "start_utc": norm_ts(segment["start_utc"]),
                    "stop_utc": norm_ts(segment["stop_utc"]),
                    "session_id": record["id"],
                },
            )
        for service in record["untimed"]:
            self._insert_row(
                "untimed_services",
                {
                    "code": normalize_code(service["code"], "code"),
                    "minutes": service["minutes"],
                    "furnished_by": FurnishedBy(service["furnished_by"]).value,
                    "created_utc": norm_ts(service["created_utc"]),
                    "session_id": record["id"],
                },
            )

    def _insert_row(self, table: str, row: Mapping[str, object]) -> None:
        # Plain SQL: sqlite_utils' insert rebuilt its query for every row, most of the time a
        # clinic-year's import (the desk pools every workstation's sessions this way) took.
        self._conn.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
