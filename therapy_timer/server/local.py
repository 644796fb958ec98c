"""The workstation's side of a push: its audit log, closed sessions and running codes, read
through the store's public methods (matched by shape: the server never imports the store)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from therapy_timer.errors import InvalidInput
from therapy_timer.model import AuditEntry, Segment, Session
from therapy_timer.server.sync import session_of_entry


class StoreReader(Protocol):
    """The few ``Store`` reads a push needs."""

    def audit_entries(self, *, limit: int | None = None) -> list[AuditEntry]: ...

    def get_session(self, session_id: str) -> Session: ...

    def session_records(self, session_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def open_segments(self, session_id: str | None = None) -> list[Segment]: ...


_FIRST_READ = 256


class StoreRecords:
    """``LocalRecords`` over a workstation's store."""

    def __init__(self, store: StoreReader) -> None:
        self._store = store

    def audit_from(self, first_id: int) -> list[AuditEntry]:
        if first_id <= 1:
            return self._store.audit_entries()
        # The store reads the newest entries by count: widen until the first wanted one is in.
        limit = _FIRST_READ
        while True:
            entries = self._store.audit_entries(limit=limit)
            if len(entries) < limit or not entries or entries[0].id <= first_id:
                return [e for e in entries if e.id >= first_id]
            limit *= 4

    def closed_ids(self, session_ids: Sequence[str]) -> list[str]:
        closed = []
        for session_id in session_ids:
            try:
                session = self._store.get_session(session_id)
            except InvalidInput:
                continue  # an audit entry about a session that is gone (discarded while open)
            if not session.is_open:
                closed.append(session_id)
        return closed

    def closed_records(self, session_ids: Sequence[str]) -> list[dict[str, Any]]:
        closed = self.closed_ids(session_ids)
        return self._store.session_records(closed) if closed else []

    def running(self) -> list[dict[str, Any]]:
        sessions: dict[str, Session] = {}
        now_running = []
        for segment in self._store.open_segments():
            if segment.session_id not in sessions:
                sessions[segment.session_id] = self._store.get_session(segment.session_id)
            session = sessions[segment.session_id]
            now_running.append(
                {
                    "session_id": session.id,
                    "patient_ref": session.patient_ref,
                    "clinician": session.clinician,
                    "code": segment.code,
                    "furnished_by": segment.furnished_by.value,
                    "since_utc": segment.start_utc.isoformat(),
                }
            )
        return now_running


def pending(local: StoreRecords, pushed_audit_id: int) -> tuple[int, int]:
    """Closed sessions and audit entries changed after ``pushed_audit_id``: what a push sends."""
    entries = local.audit_from(pushed_audit_id + 1)
    touched = list(dict.fromkeys(s for s in map(session_of_entry, entries) if s is not None))
    return len(local.closed_ids(touched)), len(entries)
