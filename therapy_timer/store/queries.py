"""Reading the store: sessions, segments, untimed services, audit, settings, heartbeat, payers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from therapy_timer.frozen import frozen_record
from therapy_timer.model import (
    AuditEntry,
    PayerProfile,
    Segment,
    SegmentTimes,
    Session,
    SessionStatus,
    UntimedService,
    clinician_key,
)
from therapy_timer.store._db import (
    SEGMENT_COLUMNS,
    SESSION_COLUMNS,
    StoreBase,
    audit_entry_of,
    dt,
    guarded,
    profile_of,
    segment_from,
    segment_of,
    segment_times_from,
    session_from,
    session_of,
    ts,
    untimed_of,
)
from therapy_timer.store.migrations import CHILD_SESSION


@frozen_record
class WindowLease:
    """A window process that shows the running stopwatches, and its last heartbeat.

    ``boot_id`` and ``process_start`` tell this process from a later one with the same pid.
    """

    pid: int
    boot_id: str
    process_start: str
    at_utc: datetime

    def __init__(self, pid: int, boot_id: str, process_start: str, at_utc: datetime) -> None:
        object.__setattr__(self, "pid", pid)
        object.__setattr__(self, "boot_id", boot_id)
        object.__setattr__(self, "process_start", process_start)
        object.__setattr__(self, "at_utc", at_utc)


class QueriesMixin(StoreBase):
    """Every read of ``Store``; nothing here writes."""

    # sessions -------------------------------------------------------------------------------

    @guarded
    def get_session(self, session_id: str) -> Session:
        """The session, or InvalidInput("session", ...) if there is none with that id."""
        return self._session_row(session_id)

    @guarded
    def list_sessions(
        self,
        *,
        day: date | None = None,
        start: date | None = None,
        end: date | None = None,
        status: SessionStatus | None = None,
        clinician: str | None = None,
    ) -> list[Session]:
        """Sessions of one day, or of ``start``..``end`` inclusive, in order of creation;
        with ``clinician``, theirs however the name was spelled (``clinician_key``)."""
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
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY date_of_service, created_utc, id"
        sessions = [session_from(values) for values in self._conn.execute(sql, params)]
        if clinician is None:
            return sessions
        who = clinician_key(clinician)
        return [s for s in sessions if clinician_key(s.clinician) == who]

    @guarded
    def sessions_per_date(self, start: date, end: date) -> list[tuple[date, int]]:
        """How many sessions each date from ``start`` to ``end`` has, in date order: a range
        can then be read a few whole dates at a time instead of all at once."""
        rows = self._conn.execute(
            "SELECT date_of_service, count(*) FROM sessions WHERE date_of_service BETWEEN ? AND ?"
            " GROUP BY date_of_service ORDER BY date_of_service",
            [start.isoformat(), end.isoformat()],
        ).fetchall()
        return [(date.fromisoformat(day), count) for day, count in rows]

    @guarded
    def open_duplicates(self) -> list[list[Session]]:
        """Open sessions of one patient (references compared case-insensitively) and clinician
        (``clinician_key``), in groups, oldest first: only an older version could let them in
        (m006), or spell one person's name two ways. A person should close or correct all but
        one; nothing closes them silently."""
        groups: dict[tuple[str, str], list[Session]] = {}
        for row in self._rows(
            "SELECT * FROM sessions WHERE status = 'open'"
            " ORDER BY upper(patient_ref), created_utc, id"
        ):
            key = (row["patient_ref"].upper(), clinician_key(row["clinician"]))
            groups.setdefault(key, []).append(session_of(row))
        return [group for group in groups.values() if len(group) > 1]

    # segments -------------------------------------------------------------------------------

    @guarded
    def get_segment(self, segment_id: str) -> Segment:
        return self._segment_row(segment_id)

    @guarded
    def segments(self, session_id: str) -> list[Segment]:
        """A session's segments in start order."""
        rows = self._rows(
            "SELECT * FROM segments WHERE session_id = ? ORDER BY start_utc, id", [session_id]
        )
        return [segment_of(r) for r in rows]

    @guarded
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
        return [segment_of(r) for r in rows]

    @guarded
    def segments_of(self, session_ids: Sequence[str]) -> dict[str, list[Segment]]:
        """Segments of many sessions in one query, by session id, each in start order."""
        found: dict[str, list[Segment]] = {}
        for values in self._tuples_in(
            f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE session_id IN ({{ids}})"
            " ORDER BY session_id, start_utc, id",
            session_ids,
        ):
            found.setdefault(values[1], []).append(segment_from(values))
        return found

    @guarded
    def segment_times_of(self, session_ids: Sequence[str]) -> dict[str, list[SegmentTimes]]:
        """``segments_of`` as billing reads closed sessions in bulk: each segment's code,
        furnisher, start and stop, converted as ``segments_of`` converts them, in start order.

        Segments starting together come in no set order (sums, overlaps and first and last
        times do not depend on it): the index's order alone spares a year's read a sort.
        """
        found: dict[str, list[SegmentTimes]] = {}
        for session_id, code, furnished_by, start, stop in self._tuples_in(
            "SELECT session_id, code, furnished_by, start_utc, stop_utc FROM segments"
            " WHERE session_id IN ({ids}) ORDER BY session_id, start_utc",
            session_ids,
        ):
            times = segment_times_from(code, furnished_by, start, stop)
            listed = found.get(session_id)
            if listed is None:
                found[session_id] = [times]
            else:
                listed.append(times)
        return found

    # untimed services ------------------------------------------------------------------------

    @guarded
    def untimed_services(self, session_id: str) -> list[UntimedService]:
        rows = self._rows(
            "SELECT * FROM untimed_services WHERE session_id = ? ORDER BY id", [session_id]
        )
        return [untimed_of(r) for r in rows]

    @guarded
    def untimed_services_of(self, session_ids: Sequence[str]) -> dict[str, list[UntimedService]]:
        """Untimed services of many sessions in one query, by session id."""
        found: dict[str, list[UntimedService]] = {}
        for row in self._rows_in(
            "SELECT * FROM untimed_services WHERE session_id IN ({ids}) ORDER BY session_id, id",
            session_ids,
        ):
            found.setdefault(row["session_id"], []).append(untimed_of(row))
        return found

    # audit -----------------------------------------------------------------------------------

    @guarded
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
            params.append(ts(since, "since"))
        sql = "SELECT * FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [audit_entry_of(r) for r in reversed(self._rows(sql, params))]

    def _audit_of_sessions(self, session_ids: Sequence[str]) -> dict[str, list[AuditEntry]]:
        """Audit entries by session, oldest first: the session's own and its children's.

        Children (segments, untimed services) are found by the session id in the payload,
        through the m005 index, so that entries of deleted children come along too.
        """
        found: dict[str, list[AuditEntry]] = {}
        for row in self._rows_in(
            "SELECT *, entity_id AS owner FROM audit_log WHERE entity = 'session'"
            " AND entity_id IN ({ids})"
            f" UNION ALL SELECT *, {CHILD_SESSION} AS owner FROM audit_log"
            f" WHERE entity IN ('segment', 'untimed') AND {CHILD_SESSION} IN ({{ids}})"
            " ORDER BY id",
            session_ids,
        ):
            found.setdefault(row.pop("owner"), []).append(audit_entry_of(row))
        return found

    @guarded
    def changed_since_export(self, session_ids: Sequence[str]) -> set[str]:
        """The exported sessions among ``session_ids`` changed after their last export: the
        charges the billing system holds for them are out of date."""
        return self._changed_since_export(session_ids)

    def _changed_since_export(self, session_ids: Sequence[str]) -> set[str]:
        # Every change to a closed session marks it amended, so only those need their audit read.
        suspects = [
            row[0]
            for row in self._tuples_in(
                "SELECT id FROM sessions WHERE exported = 1 AND amended = 1 AND id IN ({ids})",
                list(dict.fromkeys(session_ids)),
            )
        ]
        return self._changed_among(suspects)

    @guarded
    def audit_mark(self) -> int:
        """The newest audit entry's id (0 before any). Taken just before sessions are read, it
        dates the read: the log's ids only grow, so an entry after it is a change the read may
        not hold (``_changed_after_read``)."""
        row = self._conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
        return int(row[0])

    def _changed_after_read(self, read_marks: Mapping[str, int]) -> set[str]:
        """Those of ``read_marks``' sessions changed (their own or their children's entries,
        anything but an export) after the ``audit_mark`` taken before they were read.

        One scan of the entries after the oldest mark, not a lookup per session: an export
        takes seconds, so few entries follow its reads, while it may mark 100,000 sessions."""
        if not read_marks:
            return set()
        changed = set()
        for entry_id, owner in self._conn.execute(
            f"SELECT id, CASE entity WHEN 'session' THEN entity_id ELSE {CHILD_SESSION} END"
            " FROM audit_log WHERE id > ? AND action != 'session.export'"
            " AND entity IN ('session', 'segment', 'untimed')",
            [min(read_marks.values())],
        ):
            if entry_id > read_marks.get(owner, entry_id):
                changed.add(owner)
        return changed

    def _changed_among(self, suspects: Sequence[str]) -> set[str]:
        """Those of ``suspects`` (exported, amended sessions) changed after their last export."""
        changed = set()
        for session_id, entries in self._audit_of_sessions(suspects).items():
            exports = [e.id for e in entries if e.action == "session.export"]
            if exports and any(e.id > exports[-1] for e in entries):
                changed.add(session_id)
        return changed

    # heartbeat and settings ------------------------------------------------------------------

    @guarded
    def last_heartbeat(self) -> datetime | None:
        row = self._conn.execute("SELECT at_utc FROM heartbeat WHERE id = 1").fetchone()
        return None if row is None else dt(row[0])

    # -- window lease --------------------------------------------------------------------------

    @guarded
    def window_lease(self) -> WindowLease | None:
        """The window process that last showed the stopwatches, unless it closed normally."""
        row = self._conn.execute(
            "SELECT pid, boot_id, process_start, at_utc FROM window_lease WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return WindowLease(int(row[0]), str(row[1]), str(row[2]), dt(row[3]))

    @guarded
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else str(row[0])

    @guarded
    def settings(self) -> dict[str, str]:
        return {
            str(k): str(v)
            for k, v in self._conn.execute("SELECT key, value FROM settings ORDER BY key")
        }

    # payer profiles --------------------------------------------------------------------------

    @guarded
    def payer_profiles(self) -> list[PayerProfile]:
        return [profile_of(r) for r in self._rows("SELECT * FROM payer_profiles ORDER BY name")]

    @guarded
    def get_payer_profile(self, name: str) -> PayerProfile:
        """The profile, or InvalidInput("payer_profile", ...) if unknown."""
        return self._profile_row(name)

    # -- lookups by prefix --------------------------------------------------------------------

    @guarded
    def sessions_by_prefix(self, prefix: str, limit: int = 20) -> list[Session]:
        """Sessions whose id starts with ``prefix`` (case-insensitive), at most ``limit``."""
        return [
            session_of(r)
            for r in self._rows(
                "SELECT * FROM sessions WHERE id LIKE ? ESCAPE '\\'"
                " ORDER BY date_of_service, created_utc, id LIMIT ?",
                [_like_prefix(prefix), int(limit)],
            )
        ]

    @guarded
    def segments_by_prefix(self, prefix: str, limit: int = 20) -> list[Segment]:
        """Segments whose id starts with ``prefix`` (case-insensitive), at most ``limit``."""
        return [
            segment_of(r)
            for r in self._rows(
                "SELECT * FROM segments WHERE id LIKE ? ESCAPE '\\' ORDER BY start_utc, id LIMIT ?",
                [_like_prefix(prefix), int(limit)],
            )
        ]


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching ``prefix`` literally: a typed % or _ is not a wildcard."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
