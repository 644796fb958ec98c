"""Changing the store: each change is one audited write transaction; edits after closing amend."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from enum import Enum
from typing import TypeVar

from therapy_timer.codes import Discipline, FurnishedBy, Method, Role, normalize_code
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.model import (
    AuditEntry,
    Change,
    PayerProfile,
    Segment,
    Session,
    SessionStatus,
    UntimedService,
    clinician_key,
    clinician_name,
    exclusive_clash,
    label_text,
    patient_ref,
    reason_text,
    untimed_minutes,
)
from therapy_timer.store._db import (
    audit_entry_of,
    dt,
    guarded,
    in_session,
    now_text,
    profile_of,
    session_of,
    spec_json,
    ts,
)
from therapy_timer.store.queries import QueriesMixin, WindowLease

_T = TypeVar("_T")


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Default of an amendment argument that may legitimately be None: leave the value as it is."""

SETTING_KEY_MAX = 2000
"""Characters of a setting's key. A clinician's favourites are kept under their folded name
(``clinician_key``), which NFKC and case folding make up to 18 times as long as the 80
characters a name may have: at 80, a 71-character name kept no favourites."""


class WritesMixin(QueriesMixin):
    """Every change ``Store`` makes to sessions, segments, services, settings and payers."""

    def _mark_amended_if_closed(self, session: Session) -> None:
        if not session.is_open:
            self._conn.execute("UPDATE sessions SET amended = 1 WHERE id = ?", [session.id])

    def _amended(
        self,
        session: Session,
        action: str,
        entity: str,
        entity_id: str,
        *,
        after: Callable[[], _T],
        before: object = None,
        reason: str,
        actor: str | None,
    ) -> _T:
        """After changing ``session`` or a part of it: mark it amended if closed, read the
        result with ``after`` (so it shows the mark), audit before and after; return the result.
        """
        self._mark_amended_if_closed(session)
        result = after()
        self._audit(
            action, entity, entity_id, before=before, after=result, reason=reason, actor=actor
        )
        return result

    def _check_no_open_session(self, ref: str, clinician: str, other_than: str = "") -> None:
        """InvalidOperation if ``clinician`` (however spelled: ``clinician_key``) has an open
        session for patient ``ref``.

        Inside the write transaction, so two processes cannot both pass; the database's unique
        index (m006) backs it up for names spelled alike (SQL cannot fold them as NFKC does).
        """
        who = clinician_key(clinician)
        rows = self._rows(
            "SELECT id, patient_ref, clinician FROM sessions WHERE status = 'open'"
            " AND upper(patient_ref) = upper(?) AND id != ? ORDER BY created_utc",
            [ref, other_than],
        )
        theirs = next((row for row in rows if clinician_key(row["clinician"]) == who), None)
        if theirs is not None:
            raise InvalidOperation(
                f"patient {theirs['patient_ref']} already has an open session with"
                f" {theirs['clinician']} (session {theirs['id']}); continue or close that one"
                " instead"
            )

    def _check_no_exclusive_overlap(self, mine: Segment) -> None:
        """The session's segments with ``mine`` as it will be pass ``model.exclusive_clash``, the
        check an imported session passes; InvalidOperation names the segment in the way."""
        others = [s for s in self.segments(mine.session_id) if s.id != mine.id]
        # Pair by pair: an old overlap between two other segments must not block every edit.
        other = next((o for o in others if exclusive_clash([mine, o]) is not None), None)
        if other is not None:
            raise InvalidOperation(
                f"those times overlap treatment code {other.code} (segment {other.id}) of the same"
                " session; the same minutes cannot be billed twice"
            )

    def _check_happened(self, session: Session, stop: str | None) -> None:
        """A recorded segment ends by the session's close, or by now while it is open."""
        if stop is None:
            return
        end = session.closed_utc if session.closed_utc is not None else self._clock.now()
        if dt(stop) > end:
            raise InvalidOperation(
                "a segment cannot end after its session closed"
                if session.closed_utc is not None
                else "a segment of an open session cannot end after now (that has not happened)"
            )

    # sessions -------------------------------------------------------------------------------

    @guarded
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
        import uuid  # here: ~3 ms of the window's start, which creates nothing (issue 13)

        ref = _patient_ref(patient_ref)
        who = clinician_name(clinician)
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
            self._check_no_open_session(ref, who)
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
                "created_utc": now_text(self._clock),
                "closed_utc": None,
                "paused_utc": None,
                "resume_json": "[]",
            }
            self._db.table("sessions").insert(row)
            session = session_of(row)
            self._audit("session.create", "session", session.id, after=session, actor=actor)
        return session

    @guarded
    def close_session(
        self, session_id: str, *, stops: Sequence[Segment] = (), actor: str | None = None
    ) -> Session:
        """Stop ``stops`` (segments as closed, with their stop) and close the session in one
        transaction; refuses if any still runs."""
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
            # A clock put back (a dead CMOS battery) reads earlier than what the session
            # recorded: it closes at the latest moment it recorded, where its timers are held
            # (Clinic.clock_warning). Closed before it was created, no desk would import it.
            recorded = [
                moment
                for segment in self.segments(session_id)
                for moment in (segment.start_utc, segment.stop_utc)
                if moment is not None
            ]
            closed = max([self._clock.now(), before.created_utc, *recorded])
            self._conn.execute(
                "UPDATE sessions SET status = 'closed', closed_utc = ?, paused_utc = NULL,"
                " resume_json = '[]' WHERE id = ?",
                [ts(closed, "closed_utc"), session_id],
            )
            after = self._session_row(session_id)
            self._audit(
                "session.close",
                "session",
                session_id,
                before={"status": before.status, "stopped": in_session(stopped[0])},
                after={
                    "status": after.status,
                    "closed_utc": after.closed_utc,
                    "stopped": in_session(stopped[1]),
                },
                actor=actor,
            )
        return after

    @guarded
    def mark_exported(
        self,
        session_ids: Sequence[str],
        *,
        actor: str | None = None,
        read_marks: Mapping[str, int] | None = None,
    ) -> set[str]:
        """Mark ``session_ids`` exported; return those left unmarked because they changed
        after the ``audit_mark`` in ``read_marks`` (taken before the export read them): the
        file holds what they were, so they stay due for export."""
        with self._write():
            meanwhile = self._changed_after_read(read_marks or {})
            # Read in chunks, not a query per session: a clinic-year's export marks 100,000.
            exported: dict[str, bool] = {}
            suspects = []
            for session_id, was_exported, amended in self._tuples_in(
                "SELECT id, exported, amended FROM sessions WHERE id IN ({ids})",
                list(dict.fromkeys(session_ids)),
            ):
                exported[session_id] = bool(was_exported)
                if was_exported and amended:
                    suspects.append(session_id)
            # A session changed after its export goes out again, and that export is audited too.
            again = self._changed_among(suspects)
            for session_id in session_ids:
                if session_id not in exported:
                    raise InvalidInput("session", f"there is no session with id {session_id!r}")
                if session_id in meanwhile or (exported[session_id] and session_id not in again):
                    continue
                self._conn.execute("UPDATE sessions SET exported = 1 WHERE id = ?", [session_id])
                self._audit(
                    "session.export",
                    "session",
                    session_id,
                    before={"exported": exported[session_id]},
                    after={"exported": True},
                    actor=actor,
                )
                exported[session_id] = True
        return meanwhile.intersection(exported)

    @guarded
    def mark_changed_after_export(self, session_ids: Sequence[str], *, where: str) -> None:
        """Exported sessions whose content changed ``where`` (e.g. at a workstation of the clinic
        server) after the export: due to be exported again, as an amendment here would be."""
        with self._write():
            for session_id in dict.fromkeys(session_ids):
                updated = self._conn.execute(
                    "UPDATE sessions SET amended = 1 WHERE id = ? AND exported = 1", [session_id]
                )
                if updated.rowcount != 1:
                    raise InvalidInput(
                        "session", f"there is no exported session with id {session_id!r}"
                    )
                self._audit(
                    "session.changed_after_export",
                    "session",
                    session_id,
                    after={"amended": True},
                    reason=f"amended {where} after the export",
                )

    @guarded
    def amend_session(
        self,
        session_id: str,
        *,
        reason: str,
        patient_ref: str | None = None,
        payer_profile: str | None = None,
        date_of_service: date | None = None,
        actor: str | None = None,
        left_behind: Sequence[str] = (),
    ) -> Session:
        """Change a session's header; needs a reason; marks a closed session amended.

        ``left_behind``: the other sessions of its claim day. When the change takes it off that
        day, each of them that was exported is marked amended and audited
        ("session.day_changed") in the same transaction, so the day it left is exported again.
        """
        why = reason_text(reason)
        changes: dict[str, object] = {}
        if patient_ref is not None:
            changes["patient_ref"] = _patient_ref(patient_ref)
        if date_of_service is not None:
            changes["date_of_service"] = date_of_service.isoformat()
        with self._write():
            before = self._session_row(session_id)
            if before.is_open and "patient_ref" in changes:
                self._check_no_open_session(
                    str(changes["patient_ref"]), before.clinician, before.id
                )
            if payer_profile is not None:
                changes["payer_profile"] = self._profile_row(payer_profile).name
            # What it already says is no change: an exported session stays exported.
            current = {
                "patient_ref": before.patient_ref,
                "payer_profile": before.payer_profile,
                "date_of_service": before.date_of_service.isoformat(),
            }
            changes = {k: v for k, v in changes.items() if current[k] != v}
            if not changes:
                return before
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._conn.execute(
                f"UPDATE sessions SET {assignments} WHERE id = ?", [*changes.values(), session_id]
            )
            after = self._session_row(session_id)
            moved = _claim_day_part(after) != _claim_day_part(before)
            for other_id in left_behind if moved else ():
                other = self._session_row(other_id)
                if not other.exported:
                    continue  # nothing billed yet, nothing out of date
                self._amended(
                    other,
                    "session.day_changed",
                    "session",
                    other_id,
                    after=lambda: None,
                    reason=f"{why} (session {session_id[:8]} left this claim day)",
                    actor=actor,
                )
            return self._amended(
                before,
                "session.amend",
                "session",
                session_id,
                after=lambda: self._session_row(session_id),
                before=before,
                reason=why,
                actor=actor,
            )

    @guarded
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
            why = reason.strip() if before.is_open else reason_text(reason)
            self._conn.execute(
                "UPDATE sessions SET allocation_json = ? WHERE id = ?", [stored, session_id]
            )
            # The audit shows the allocation alone: the rest of the session did not change.
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

    def _stop_segments(
        self,
        session_id: str,
        stops: Sequence[Segment],
        running: Mapping[str, Segment] | None = None,
    ) -> tuple[list[Segment], list[Segment]]:
        """Inside a transaction: stop each running segment at the stop ``stops`` gives it;
        (before, after) records. ``running``: the session's running segments by id, when the
        transaction has just read them (one read less per stop); others are read here."""
        befores: list[Segment] = []
        afters: list[Segment] = []
        for stop in stops:
            if stop.stop_utc is None:
                raise ValueError(f"segment {stop.id} to stop has no stop time")
            found = None if running is None else running.get(stop.id)
            segment = found if found is not None else self._segment_row(stop.id)
            if segment.session_id != session_id:
                raise InvalidInput("segment", f"segment {segment.id} belongs to another session")
            if not segment.running:
                raise InvalidOperation(
                    f"{segment.code} was already stopped (perhaps by another window or"
                    " command); refresh and try again"
                )
            stop_text = ts(stop.stop_utc, "stop_utc")
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
                    dt(stop_text),
                )
            )
        return befores, afters

    @guarded
    def apply_stopwatch_change(
        self,
        change: Change,
        *,
        action: str = "stopwatch",
        reason: str = "",
        actor: str | None = None,
    ) -> Session:
        """Apply a stopwatch step in ONE write transaction (BEGIN IMMEDIATE), audited; return
        the session after it.

        ``closed`` segments are stopped at their stop, ``opened`` ones inserted with their ids, a
        changed pause written. ``action`` names the step in the audit log (e.g. "start",
        "switch", "pause", "recovery.stop_at_heartbeat"); ``reason`` is optional here.

        Re-checks inside the transaction that after the change at most one exclusive segment of
        the session runs, so two processes can never both start a treatment code: the loser
        gets InvalidOperation. Segments to stop must still be running (else InvalidOperation:
        another process changed the stopwatch first).
        """
        pause = change.paused_after if change.pause_changed else None
        clear_pause = change.paused_before is not None and change.paused_after is None
        starts = [
            replace(
                s, code=normalize_code(s.code, "code"), furnished_by=FurnishedBy(s.furnished_by)
            )
            for s in change.opened
        ]
        start_texts = [ts(s.start_utc, "start_utc") for s in starts]
        session_id = change.session_id
        with self._write():
            before = self._session_row(session_id)
            if not before.is_open:
                raise InvalidOperation("this session is closed; amend it instead")
            # Re-stating the pause at the same moment changes what will resume (a code stopped,
            # or furnished-by changed, while paused); any other pause is a clash.
            if (
                pause is not None
                and before.pause is not None
                and pause.at_utc != before.pause.at_utc
            ):
                raise InvalidOperation("the stopwatch is already paused")
            if clear_pause and not before.is_paused:
                raise InvalidOperation("the stopwatch is not paused")
            stopping = {s.id for s in change.closed}
            open_now = {seg.id: seg for seg in self.open_segments(session_id)}
            running = [seg for seg in open_now.values() if seg.id not in stopping]
            running_codes = {seg.code for seg in running}
            exclusive_running = [seg for seg in running if seg.exclusive]
            new_exclusive = [s.code for s in starts if s.exclusive]
            if len(exclusive_running) + len(new_exclusive) > 1:
                other = exclusive_running[0].code if exclusive_running else new_exclusive[0]
                raise InvalidOperation(
                    f"treatment code {other} is already running in this session (perhaps started"
                    " by another window or command); stop it first"
                )
            new_codes = [s.code for s in starts]
            duplicate = running_codes.intersection(new_codes) or (
                set() if len(set(new_codes)) == len(new_codes) else set(new_codes)
            )
            if duplicate:
                raise InvalidOperation(f"{sorted(duplicate)[0]} is already running")
            stopped_before, stopped = self._stop_segments(session_id, change.closed, open_now)
            started: list[Segment] = []
            for segment, start_text in zip(starts, start_texts, strict=True):
                self._conn.execute(
                    "INSERT INTO segments (id, session_id, code, furnished_by, exclusive,"
                    " start_utc) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        segment.id,
                        session_id,
                        segment.code,
                        segment.furnished_by.value,
                        int(segment.exclusive),
                        start_text,
                    ],
                )
                started.append(
                    replace(segment, session_id=session_id, start_utc=dt(start_text), stop_utc=None)
                )
            if pause is not None:
                self._conn.execute(
                    "UPDATE sessions SET paused_utc = ?, resume_json = ? WHERE id = ?",
                    [ts(pause.at_utc, "pause.at_utc"), spec_json(pause.resume), session_id],
                )
            elif clear_pause:
                self._conn.execute(
                    "UPDATE sessions SET paused_utc = NULL, resume_json = '[]' WHERE id = ?",
                    [session_id],
                )
            after = self._session_row(session_id) if pause is not None or clear_pause else before
            self._audit(
                action,
                "session",
                session_id,
                before={"stopped": in_session(stopped_before), "paused_utc": _paused_utc(before)},
                after={
                    "stopped": in_session(stopped),
                    "started": in_session(started),
                    "paused_utc": _paused_utc(after),
                },
                reason=reason.strip(),
                actor=actor,
            )
        return after

    @guarded
    def discard_segment(self, segment_id: str, *, reason: str, actor: str | None = None) -> Segment:
        """Delete a segment (e.g. after a crash), keeping it in the audit log; needs a reason."""
        why = reason_text(reason)
        with self._write():
            segment = self._segment_row(segment_id)
            session = self._session_row(segment.session_id)
            self._conn.execute("DELETE FROM segments WHERE id = ?", [segment_id])
            self._amended(
                session,
                "segment.discard",
                "segment",
                str(segment_id),
                after=_gone,
                before=segment,
                reason=why,
                actor=actor,
            )
        return segment

    @guarded
    def reopen_segment(self, segment_id: str, *, reason: str, actor: str | None = None) -> Segment:
        """Make a stopped segment of an open session run again from its own start, as if it
        had never stopped (an undone stop); audited. Refused when the session is paused or a
        segment it excludes has started since (the time is then another code's)."""
        why = reason_text(reason)
        with self._write():
            before = self._segment_row(segment_id)
            session = self._session_row(before.session_id)
            if not session.is_open or session.is_paused or before.running:
                raise InvalidOperation(f"{before.code} cannot run again in this session now")
            running = replace(before, stop_utc=None)
            if before.exclusive:
                self._check_no_exclusive_overlap(running)
            self._conn.execute("UPDATE segments SET stop_utc = NULL WHERE id = ?", [segment_id])
            return self._amended(
                session,
                "segment.reopen",
                "segment",
                str(segment_id),
                after=lambda: self._segment_row(segment_id),
                before=before,
                reason=why,
                actor=actor,
            )

    @guarded
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
        why = reason_text(reason)
        new_code = None if code is None else normalize_code(code, "code")
        with self._write():
            before = self._segment_row(segment_id)
            session = self._session_row(before.session_id)
            if stop_utc is not None and before.running:
                raise InvalidOperation(f"{before.code} is still running; stop it first")
            start = ts(start_utc if start_utc is not None else before.start_utc, "start_utc")
            new_stop = stop_utc if stop_utc is not None else before.stop_utc
            stop = None if new_stop is None else ts(new_stop, "stop_utc")
            if stop is not None and dt(stop) < dt(start):
                raise InvalidInput("stop_utc", "a segment cannot stop before it starts")
            is_exclusive = before.exclusive if exclusive is None else bool(exclusive)
            if stop != (None if before.stop_utc is None else ts(before.stop_utc, "stop_utc")):
                self._check_happened(session, stop)
            if is_exclusive:
                self._check_no_exclusive_overlap(
                    replace(
                        before,
                        code=new_code or before.code,
                        exclusive=True,
                        start_utc=dt(start),
                        stop_utc=None if stop is None else dt(stop),
                    )
                )
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
            return self._amended(
                session,
                "segment.amend",
                "segment",
                str(segment_id),
                after=lambda: self._segment_row(segment_id),
                before=before,
                reason=why,
                actor=actor,
            )

    @guarded
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
        import uuid  # here, as in create_session

        why = reason_text(reason)
        clean_code = normalize_code(code, "code")
        start, stop = ts(start_utc, "start_utc"), ts(stop_utc, "stop_utc")
        if stop_utc < start_utc:
            raise InvalidInput("stop_utc", "a segment cannot stop before it starts")
        with self._write():
            session = self._session_row(session_id)
            segment_id = uuid.uuid4().hex
            if exclusive:
                self._check_no_exclusive_overlap(
                    Segment(
                        segment_id,
                        session_id,
                        clean_code,
                        FurnishedBy(furnished_by),
                        True,
                        dt(start),
                        dt(stop),
                    )
                )
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
            return self._amended(
                session,
                "segment.add",
                "segment",
                segment_id,
                after=lambda: self._segment_row(segment_id),
                reason=why,
                actor=actor,
            )

    # untimed services ------------------------------------------------------------------------

    @guarded
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
        """Record an untimed service; on a closed session it is an amendment and needs a reason.

        A code the session already records is refused (InvalidInput naming it): an untimed
        code is one service, billed once (R1.1), so a second row would only add its minutes
        to the first, as when a command was run twice.
        """
        clean_code = normalize_code(code, "code")
        clean_minutes = untimed_minutes(minutes)
        with self._write():
            session = self._session_row(session_id)
            why = reason.strip() if session.is_open else reason_text(reason)
            recorded = self._rows(
                "SELECT minutes FROM untimed_services WHERE session_id = ? AND code = ? LIMIT 1",
                [session_id, clean_code],
            )
            if recorded:
                took = recorded[0]["minutes"]
                raise InvalidInput(
                    "code",
                    f"{clean_code} is already recorded on this session"
                    + ("" if took is None else f" ({took} min)")
                    + "; an untimed code is one service, billed once (R1.1). To change its"
                    " minutes, remove it and add it again",
                )
            cursor = self._conn.execute(
                "INSERT INTO untimed_services (session_id, code, minutes, furnished_by,"
                " created_utc) VALUES (?, ?, ?, ?, ?)",
                [
                    session_id,
                    clean_code,
                    clean_minutes,
                    FurnishedBy(furnished_by).value,
                    now_text(self._clock),
                ],
            )
            untimed_id = cursor.lastrowid
            assert untimed_id is not None
            return self._amended(
                session,
                "untimed.add",
                "untimed",
                str(untimed_id),
                after=lambda: self._untimed_row(untimed_id),
                reason=why,
                actor=actor,
            )

    @guarded
    def amend_untimed(
        self,
        untimed_id: int,
        *,
        reason: str,
        minutes: int | _Keep | None = KEEP,
        furnished_by: FurnishedBy | None = None,
        actor: str | None = None,
    ) -> UntimedService:
        # No code change here: a row given another code could join a row of that code
        # already on the session, and a code's rows are one service (R1.1).
        why = reason_text(reason)
        with self._write():
            before = self._untimed_row(untimed_id)
            session = self._session_row(before.session_id)
            new_minutes = before.minutes if isinstance(minutes, _Keep) else untimed_minutes(minutes)
            self._conn.execute(
                "UPDATE untimed_services SET minutes = ?, furnished_by = ? WHERE id = ?",
                [
                    new_minutes,
                    FurnishedBy(furnished_by or before.furnished_by).value,
                    untimed_id,
                ],
            )
            return self._amended(
                session,
                "untimed.amend",
                "untimed",
                str(untimed_id),
                after=lambda: self._untimed_row(untimed_id),
                before=before,
                reason=why,
                actor=actor,
            )

    @guarded
    def remove_untimed(
        self, untimed_id: int, *, reason: str, actor: str | None = None
    ) -> UntimedService:
        why = reason_text(reason)
        with self._write():
            before = self._untimed_row(untimed_id)
            session = self._session_row(before.session_id)
            self._conn.execute("DELETE FROM untimed_services WHERE id = ?", [untimed_id])
            self._amended(
                session,
                "untimed.remove",
                "untimed",
                str(untimed_id),
                after=_gone,
                before=before,
                reason=why,
                actor=actor,
            )
        return before

    # audit, heartbeat and settings -----------------------------------------------------------

    @guarded
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
                label_text(action, "action"),
                entity,
                entity_id,
                after=details,
                reason=reason.strip(),
                actor=actor,
            )
            row = self._rows("SELECT * FROM audit_log WHERE id = ?", [entry_id])[0]
        return audit_entry_of(row)

    @guarded
    def write_heartbeat(self, at_utc: datetime | None = None) -> None:
        """Record that the app is alive (not audited: it would flood the log)."""
        at = ts(at_utc, "at_utc") if at_utc is not None else now_text(self._clock)
        with self._write():
            self._conn.execute(
                "INSERT INTO heartbeat (id, at_utc) VALUES (1, ?)"
                " ON CONFLICT(id) DO UPDATE SET at_utc = excluded.at_utc",
                [at],
            )

    # -- window lease --------------------------------------------------------------------------

    @guarded
    def hold_window_lease(self, lease: WindowLease) -> None:
        """Record that this window process shows the stopwatches, with the heartbeat, in one
        transaction (not audited: it is written every half minute)."""
        at = ts(lease.at_utc, "at_utc")
        with self._write():
            self._conn.execute(
                "INSERT INTO heartbeat (id, at_utc) VALUES (1, ?)"
                " ON CONFLICT(id) DO UPDATE SET at_utc = excluded.at_utc",
                [at],
            )
            self._conn.execute(
                "INSERT INTO window_lease (id, pid, boot_id, process_start, at_utc)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pid = excluded.pid,"
                " boot_id = excluded.boot_id, process_start = excluded.process_start,"
                " at_utc = excluded.at_utc",
                [int(lease.pid), lease.boot_id, lease.process_start, at],
            )

    @guarded
    def release_window_lease(self, lease: WindowLease) -> bool:
        """Forget the lease if it is still this process's (a window closing normally)."""
        with self._write():
            cursor = self._conn.execute(
                "DELETE FROM window_lease WHERE id = 1 AND pid = ? AND boot_id = ?"
                " AND process_start = ?",
                [int(lease.pid), lease.boot_id, lease.process_start],
            )
        return cursor.rowcount > 0

    @guarded
    def set_setting(self, key: str, value: str, *, actor: str | None = None) -> None:
        clean_key = label_text(key, "key", SETTING_KEY_MAX)
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

    # payer profiles --------------------------------------------------------------------------

    @guarded
    def save_payer_profile(
        self, profile: PayerProfile, *, actor: str | None = None
    ) -> PayerProfile:
        """Insert or update a profile by name."""
        clean = PayerProfile(
            name=label_text(profile.name, "payer_profile"),
            method=Method(profile.method),
            assistant_modifiers=bool(profile.assistant_modifiers),
        )
        with self._write():
            rows = self._rows("SELECT * FROM payer_profiles WHERE name = ?", [clean.name])
            before = profile_of(rows[0]) if rows else None
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


def _claim_day_part(session: Session) -> tuple[str, str, date]:
    """What of a session's header puts it on its claim day (billing.day_key; the discipline
    never changes after it is opened): the reference as compared, the payer, the date."""
    return (session.patient_ref.strip().lower(), session.payer_profile, session.date_of_service)


def _gone() -> None:
    """What is left of a deleted row, for its audit entry."""
    return None


# create_session and amend_session take a ``patient_ref`` argument, which hides the function.
_patient_ref = patient_ref


def _paused_utc(session: Session) -> datetime | None:
    """The audit log's record of a stopwatch step names the pause by its moment."""
    return None if session.pause is None else session.pause.at_utc
