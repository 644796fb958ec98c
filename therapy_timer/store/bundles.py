"""Many sessions at once: closed sessions as plain records for bundles, and merging them back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from therapy_timer.codes import Discipline, FurnishedBy, Method, Role, normalize_code
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.model import (
    Session,
    SessionStatus,
    label_text,
    patient_ref,
    untimed_minutes,
)
from therapy_timer.store._db import dt, guarded, jsonable, norm_ts, session_of, to_json
from therapy_timer.store.queries import QueriesMixin


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


def _checked_record(record: object, where: str) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise InvalidInput(where, "is not a session record")
    try:
        clean = dict(record)
        uuid.UUID(str(clean["id"]))
        if clean["status"] != SessionStatus.CLOSED.value:
            raise InvalidInput(where, "is an open session; only closed sessions are merged")
        patient_ref(clean["patient_ref"])
        label_text(clean["clinician"], "clinician")
        Role(clean["role"])
        Discipline(clean["discipline"])
        date.fromisoformat(clean["date_of_service"])
        dt(clean["created_utc"])
        if clean["closed_utc"] is not None:
            dt(clean["closed_utc"])
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
            start = dt(segment["start_utc"])
            if segment["stop_utc"] is None or dt(segment["stop_utc"]) < start:
                raise InvalidInput(where, "has a segment that is running or ends early")
        for service in clean["untimed"]:
            normalize_code(service["code"], f"{where} untimed code")
            FurnishedBy(service["furnished_by"])
            untimed_minutes(service["minutes"])
        if not isinstance(clean.get("audit", []), list):
            raise InvalidInput(where, "has a damaged audit trail")
        for entry in clean.get("audit", []):
            dt(entry["at_utc"])
            for name in ("actor", "action", "entity", "entity_id"):
                _of_type(entry[name], str, f"audit {name}")
            _of_type(entry.get("reason", ""), str, "audit reason")
    except InvalidInput:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(where, f"is damaged ({type(exc).__name__}: {exc})") from None
    return clean


class BundlesMixin(QueriesMixin):
    """Closed sessions out as plain JSON data, and in from other workstations' bundles."""

    @guarded
    def session_record(self, session_id: str) -> dict[str, Any]:
        """A closed session as plain JSON data, with its segments, untimed services and audit."""
        (record,) = self.session_records([session_id])
        return record

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
        """Check bundle records without writing; InvalidInput names the file and the record."""
        return [_checked_record(r, f"{source}: session {i + 1}") for i, r in enumerate(records)]

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
                "created_utc": norm_ts(record["created_utc"]),
                "closed_utc": norm_ts(record.get("closed_utc")),
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
                    "start_utc": norm_ts(segment["start_utc"]),
                    "stop_utc": norm_ts(segment["stop_utc"]),
                    "session_id": record["id"],
                }
            )
        for service in record["untimed"]:
            self._db.table("untimed_services").insert(
                {
                    "code": normalize_code(service["code"], "code"),
                    "minutes": service["minutes"],
                    "furnished_by": FurnishedBy(service["furnished_by"]).value,
                    "created_utc": norm_ts(service["created_utc"]),
                    "session_id": record["id"],
                }
            )
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
