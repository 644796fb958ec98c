"""Treatment sessions made durable: each stopwatch step committed to the store, crash recovery."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from therapy_timer import rules
from therapy_timer import store as st
from therapy_timer.clock import Clock
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Role
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.stopwatch import (
    Change,
    Paused,
    Resumable,
    RoundingPolicy,
    RulesInput,
    Segment,
    Stopwatch,
)

HEARTBEAT_INTERVAL_SECONDS = 30
"""How often a running app should call ``SessionService.heartbeat`` (at most this much is lost)."""

ROUNDING_SETTING = "rounding_policy"
"""Settings key holding the clinic's ``RoundingPolicy`` value ("down" or "nearest")."""

DEFAULT_PAYER_SETTING = "default_payer"
"""Settings key naming the payer profile a new session starts with."""

MEDICARE_PROFILE = "Medicare"  # seeded by the store's first migration

DISCARD_REASON = "discarded after the app stopped unexpectedly"


class RecoveryChoice(StrEnum):
    """What to do with segments left running when the app stopped without closing them."""

    KEEP_RUNNING = "keep_running"  # the treatment went on: the segments keep counting
    STOP_AT_HEARTBEAT = "stop_at_heartbeat"  # end them at the last moment the app was alive
    DISCARD = "discard"  # the time is not trustworthy: remove them (kept in the audit log)


@dataclass(frozen=True)
class Interrupted:
    """An open session with segments still running, found when the app starts."""

    session: st.Session
    segments: tuple[st.Segment, ...]
    last_heartbeat: datetime | None

    def stop_at(self, segment: st.Segment) -> datetime:
        """Where ``STOP_AT_HEARTBEAT`` ends ``segment``: the heartbeat, never before its start."""
        if self.last_heartbeat is None:
            raise InvalidOperation(
                "the app never recorded a heartbeat, so there is no time to stop at"
            )
        return max(self.last_heartbeat, segment.start_utc)

    @property
    def choices(self) -> tuple[RecoveryChoice, ...]:
        if self.last_heartbeat is None:
            return (RecoveryChoice.KEEP_RUNNING, RecoveryChoice.DISCARD)
        return tuple(RecoveryChoice)


@dataclass(frozen=True)
class Outcome:
    """A committed stopwatch step: the session and stopwatch after it, and what changed.

    ``change`` names segments by the ids stored with them; its ``warnings`` say when the clock
    went backwards. An empty change (e.g. starting the code that already runs) wrote nothing.
    """

    session: st.Session
    change: Change
    stopwatch: Stopwatch


class SessionService:
    """Drives the stopwatches of stored sessions; every step is committed before it returns.

    The store is the single source of truth: each operation rebuilds the session's stopwatch
    from it, so a command run from another program (a foot pedal, a script) is never overwritten
    with stale state, and nothing unsaved is ever reported as done.
    """

    def __init__(
        self,
        store: st.Store,
        catalogue: Catalogue,
        clock: Clock,
        *,
        policy: RoundingPolicy | None = None,
        actor: str | None = None,
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._clock = clock
        self._policy = policy
        self._actor = actor
        # Who furnishes the next code of a session with nothing running or paused: no segment
        # records it and the store has no column for it, so it lives only in this process.
        self._furnished_by: dict[str, FurnishedBy] = {}

    @property
    def policy(self) -> RoundingPolicy:
        """The rounding policy given, else the clinic's setting, else round down."""
        if self._policy is not None:
            return self._policy
        value = self._store.get_setting(ROUNDING_SETTING)
        try:
            return RoundingPolicy(value) if value else RoundingPolicy.DOWN
        except ValueError:
            raise InvalidInput(
                ROUNDING_SETTING, f"{value!r} is not a rounding policy (down or nearest)"
            ) from None

    def today(self) -> date:
        """The local calendar date: dates of service are local days (R1.2)."""
        return self._clock.now().astimezone().date()

    # -- sessions ----------------------------------------------------------------------------

    def open_session(
        self,
        *,
        patient_ref: str,
        clinician: str,
        role: Role,
        payer_profile: str,
        discipline: Discipline | None = None,
        date_of_service: date | None = None,
    ) -> st.Session:
        """Create an open session (today, the role's discipline unless given)."""
        return self._store.create_session(
            date_of_service=self.today() if date_of_service is None else date_of_service,
            patient_ref=patient_ref,
            clinician=clinician,
            role=role,
            discipline=role.discipline if discipline is None else discipline,
            payer_profile=payer_profile,
            actor=self._actor,
        )

    def default_payer_profile(self) -> str:
        """The clinic's default profile if it still exists, else Medicare, else the first one."""
        names = [p.name for p in self._store.payer_profiles()]
        chosen = self._store.get_setting(DEFAULT_PAYER_SETTING)
        if chosen in names:
            return str(chosen)
        if MEDICARE_PROFILE in names:
            return MEDICARE_PROFILE
        return names[0] if names else ""

    def open_sessions(self) -> list[st.Session]:
        return self._store.list_sessions(status=st.SessionStatus.OPEN)

    def stale_sessions(self) -> list[st.Session]:
        """Open sessions from an earlier day: flagged for a person to close, never closed here."""
        today = self.today()
        return [s for s in self.open_sessions() if s.date_of_service < today]

    def end_session(self, session_id: str) -> st.Session:
        """Stop whatever runs and close the session, in one transaction."""
        session = self._open(session_id)
        stopwatch = self._restore(session)
        stops: tuple[st.SegmentStop, ...] = ()
        if stopwatch.running:
            stops = _store_change(session_id, stopwatch.stop(), "stop", self._catalogue).stops
        closed = self._store.close_session(session_id, stops=stops, actor=self._actor)
        self._furnished_by.pop(session_id, None)
        return closed

    def stopwatch(self, session_id: str) -> Stopwatch:
        """The session's stopwatch as stored now (for display; operations go through here)."""
        return self._restore(self._store.get_session(session_id))

    def rules_input(self, session_id: str) -> RulesInput:
        """Minutes for ``rules.py``: the stopwatches plus untimed services entered by hand."""
        session = self._store.get_session(session_id)
        return self._rules_input(self._restore(session), self._store.untimed_services(session_id))

    def _rules_input(
        self, stopwatch: Stopwatch, untimed: Sequence[st.UntimedService]
    ) -> RulesInput:
        result = stopwatch.rules_input()
        for service in untimed:
            code = self._catalogue.get(service.code).code
            if code not in result.untimed:
                result.untimed.append(code)
            if service.minutes is None:
                continue
            result.untimed_minutes[code] = result.untimed_minutes.get(code, 0) + service.minutes
            if service.furnished_by is FurnishedBy.ASSISTANT:
                result.assistant_minutes[code] = (
                    result.assistant_minutes.get(code, 0) + service.minutes
                )
        result.untimed.sort(key=self._catalogue.rank)
        return result

    def summary(self, session_id: str, allocation: Mapping[str, int] | None = None) -> rules.Result:
        """The billing answer and note for a session, under its payer profile's method.

        ``allocation`` picks one of the equally valid CMS allocations of a tie (R2.8); without
        it the choice stored with the session applies, else the rules' documented default.
        """
        session = self._store.get_session(session_id)
        same_day = self._store.list_sessions(
            day=session.date_of_service, clinician=session.clinician
        )
        concurrent = self._concurrent(same_day, self._store.segments_of([s.id for s in same_day]))
        return self.summarize(
            session,
            self._restore(session),
            self._store.untimed_services(session_id),
            self._store.get_payer_profile(session.payer_profile),
            allocation,
            concurrent=concurrent.get(session.id, ()),
        )

    def summaries(self, sessions: Sequence[st.Session]) -> dict[str, rules.Result]:
        """``summary`` for many sessions at once (a day or a year for the front desk).

        Segments and untimed services come in one query each rather than per session.
        """
        ids = [s.id for s in sessions]
        segments = self._store.segments_of(ids)
        untimed = self._store.untimed_services_of(ids)
        profiles = {p.name: p for p in self._store.payer_profiles()}
        heartbeat = self._store.last_heartbeat()
        concurrent = self._concurrent(sessions, segments)
        return {
            session.id: self.summarize(
                session,
                self._restore(session, segments.get(session.id, []), heartbeat),
                untimed.get(session.id, []),
                profiles[session.payer_profile],
                concurrent=concurrent.get(session.id, ()),
            )
            for session in sessions
        }

    def _concurrent(
        self, sessions: Sequence[st.Session], segments: Mapping[str, Sequence[st.Segment]]
    ) -> dict[str, tuple[str, ...]]:
        """Patient references whose timed minutes overlap each session's (same clinician, day)."""
        now = self._clock.now()
        groups: dict[tuple[str, date], list[st.Session]] = {}
        for session in sessions:
            groups.setdefault((session.clinician, session.date_of_service), []).append(session)
        found: dict[str, tuple[str, ...]] = {}
        for group in groups.values():
            if len(group) < 2:
                continue
            spans = {
                s.id: [
                    (seg.start_utc, seg.stop_utc or now)
                    for seg in segments.get(s.id, [])
                    if self._catalogue.get(seg.code).timed
                ]
                for s in group
            }
            refs = {s.id: s.patient_ref for s in group}
            for session_id, others in rules.concurrent_sessions(spans).items():
                found[session_id] = tuple(sorted(refs[o] for o in others))
        return found

    def summarize(
        self,
        session: st.Session,
        stopwatch: Stopwatch,
        untimed: Sequence[st.UntimedService],
        profile: st.PayerProfile,
        allocation: Mapping[str, int] | None = None,
        method: rules.Method | None = None,
        concurrent: Sequence[str] = (),
    ) -> rules.Result:
        """The rules' answer from rows the caller already holds (a window repainting each second).

        ``method`` overrides the payer's, to show what the other method would give;
        ``concurrent`` names patients whose timed minutes overlapped this session's (R8.3).
        """
        result = self._evaluate(session, stopwatch, untimed, profile, allocation, method)
        if not concurrent:
            return result
        return replace(result, warnings=(*result.warnings, rules.concurrent_warning(concurrent)))

    def _evaluate(
        self,
        session: st.Session,
        stopwatch: Stopwatch,
        untimed: Sequence[st.UntimedService],
        profile: st.PayerProfile,
        allocation: Mapping[str, int] | None,
        method: rules.Method | None,
    ) -> rules.Result:
        minutes = self._rules_input(stopwatch, untimed)
        request = rules.Request(
            method=profile.method if method is None else method,
            discipline=session.discipline,
            timed=minutes.timed,
            assistant_minutes={c: m for c, m in minutes.assistant_minutes.items() if m},
            untimed=tuple(minutes.untimed),
            untimed_minutes=minutes.untimed_minutes,
            date_of_service=session.date_of_service,
            assistant_modifiers=profile.assistant_modifiers,
            allocation=allocation,
        )
        remarks = self._remarks(session)
        if allocation is None and session.allocation is not None:
            try:
                return rules.evaluate(
                    replace(request, allocation=session.allocation), self._catalogue, remarks
                )
            except InvalidInput:
                # The minutes changed since the choice (an amendment): the old choice no longer
                # splits these units, so say so and fall back to the default.
                remarks.append(
                    "The tie choice recorded earlier no longer fits the minutes; "
                    "the default allocation applies until a new choice is made."
                )
        return rules.evaluate(request, self._catalogue, remarks)

    def choose_allocation(
        self, session_id: str, allocation: Mapping[str, int] | None, *, reason: str = ""
    ) -> rules.Result:
        """Store a tie choice (R2.8) after checking the rules accept it; returns the new answer.

        On a closed session it needs a reason and marks the session amended (the store's rule).
        """
        result = self.summary(session_id, allocation)
        chosen = None if allocation is None else dict(result.allocation)
        self._store.choose_allocation(session_id, chosen, reason=reason, actor=self._actor)
        return self.summary(session_id)

    def _remarks(self, session: st.Session) -> list[str]:
        rounding = {
            RoundingPolicy.DOWN: "rounded down to whole minutes",
            RoundingPolicy.NEAREST: "rounded to the nearest whole minute",
        }[self.policy]
        remarks = [
            f"Clinician: {session.clinician} ({session.role.value})",
            f"Minutes per code are the stopwatch time {rounding}.",
        ]
        if session.is_open:
            remarks.append("Provisional: the session is still open.")
        if session.amended:
            remarks.append("Amended after the session was closed; the audit log has the reasons.")
        return remarks

    def amend_segment(
        self,
        segment_id: str,
        *,
        reason: str,
        minutes: int | None = None,
        code: str | None = None,
        furnished_by: FurnishedBy | None = None,
    ) -> st.Segment:
        """Correct a recorded stretch of time after the fact (audited, needs a reason).

        ``minutes`` sets its length from its start; a code is checked against the catalogue so a
        supervised modality stays allowed beside a timed code and a timed code does not.
        """
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0
        ):
            raise InvalidInput("minutes", f"must be a whole number of minutes, got {minutes!r}")
        if minutes is not None and minutes > rules.MAX_DAY_MINUTES:
            raise InvalidInput("minutes", f"{minutes} minutes is more than a day holds")
        entry = None if code is None else self._catalogue.get(code, "code")
        start = self._store.get_segment(segment_id).start_utc
        stop = None if minutes is None else start + timedelta(minutes=minutes)
        return self._store.amend_segment(
            segment_id,
            reason=reason,
            stop_utc=stop,
            code=None if entry is None else entry.code,
            furnished_by=furnished_by,
            exclusive=None if entry is None else not entry.supervised_modality,
            actor=self._actor,
        )

    # -- stopwatch steps ---------------------------------------------------------------------

    def start(self, session_id: str, code: str, furnished_by: FurnishedBy | None = None) -> Outcome:
        """Start ``code``; a treatment code stops the one running (R8.1)."""
        return self._step(session_id, "start", lambda sw: sw.start(code, furnished_by))

    def stop(self, session_id: str, code: str | None = None) -> Outcome:
        """Stop ``code``, or everything running when ``code`` is None."""
        return self._step(session_id, "stop", lambda sw: sw.stop(code))

    def pause(self, session_id: str) -> Outcome:
        return self._step(session_id, "pause", lambda sw: sw.pause())

    def resume(self, session_id: str) -> Outcome:
        return self._step(session_id, "resume", lambda sw: sw.resume())

    def set_furnished_by(self, session_id: str, furnished_by: FurnishedBy) -> Outcome:
        """Change who furnishes the running codes: closes their segments and opens new ones."""
        return self._step(session_id, "furnished_by", lambda sw: sw.set_furnished_by(furnished_by))

    # -- heartbeat and crash recovery --------------------------------------------------------

    def heartbeat(self) -> datetime:
        """Record that the app is alive now; crash recovery can stop timers at this moment."""
        now = self._clock.now()
        self._store.write_heartbeat(now)
        return now

    def interrupted(self) -> list[Interrupted]:
        """Open sessions with running segments: call at start-up and offer ``choices``.

        A segment also stays open when a command started it and no window was running, so
        "keep running" is always a choice; nothing is changed until ``recover`` is called.
        """
        heartbeat = self._store.last_heartbeat()
        by_session: dict[str, list[st.Segment]] = {}
        for segment in self._store.open_segments():
            by_session.setdefault(segment.session_id, []).append(segment)
        return [
            Interrupted(self._store.get_session(session_id), tuple(segments), heartbeat)
            for session_id, segments in by_session.items()
        ]

    def recover(
        self, session_id: str, choice: RecoveryChoice, *, reason: str = ""
    ) -> tuple[st.Segment, ...]:
        """Apply the user's choice for a session's running segments; the store audits it.

        Returns the segments as they are afterwards (kept, stopped, or the discarded ones).
        """
        found = [i for i in self.interrupted() if i.session.id == session_id]
        if not found:
            raise InvalidOperation(f"session {session_id} has no running segments to recover")
        interrupted = found[0]
        if choice is RecoveryChoice.KEEP_RUNNING:
            self._store.record_event(
                "recovery.keep_running",
                entity="session",
                entity_id=session_id,
                reason=reason,
                details={
                    "segments": [s.id for s in interrupted.segments],
                    "last_heartbeat": _iso(interrupted.last_heartbeat),
                },
                actor=self._actor,
            )
            return interrupted.segments
        if choice is RecoveryChoice.STOP_AT_HEARTBEAT:
            applied = self._store.apply_stopwatch_change(
                st.StopwatchChange(
                    session_id=session_id,
                    stops=tuple(
                        st.SegmentStop(s.id, interrupted.stop_at(s)) for s in interrupted.segments
                    ),
                    action="recovery.stop_at_heartbeat",
                    reason=reason,
                ),
                actor=self._actor,
            )
            return applied.stopped
        return tuple(
            self._store.discard_segment(s.id, reason=reason or DISCARD_REASON, actor=self._actor)
            for s in interrupted.segments
        )

    # -- internals ---------------------------------------------------------------------------

    def _open(self, session_id: str) -> st.Session:
        session = self._store.get_session(session_id)
        if not session.is_open:
            raise InvalidOperation(
                f"session {session_id} is closed; change it with an amendment and a reason"
            )
        return session

    def _restore(
        self,
        session: st.Session,
        segments: Sequence[st.Segment] | None = None,
        heartbeat: datetime | None = None,
    ) -> Stopwatch:
        """The session's stopwatch from stored rows (read here unless the caller has them)."""
        if segments is None:
            segments = self._store.segments(session.id)
            heartbeat = self._store.last_heartbeat()
        paused = None
        if session.paused_utc is not None:
            paused = Paused(
                session.paused_utc,
                tuple(Resumable(r.code, r.furnished_by) for r in session.resume),
            )
        furnished_by = self._furnished_by.get(session.id)
        if furnished_by is None and session.resume:
            furnished_by = session.resume[0].furnished_by
        return Stopwatch.restore(
            self._catalogue,
            self._clock,
            [_from_store(s) for s in segments],
            paused=paused,
            furnished_by=furnished_by,
            policy=self.policy,
            not_before=heartbeat,
        )

    def _step(
        self, session_id: str, action: str, operation: Callable[[Stopwatch], Change]
    ) -> Outcome:
        # Read, change, write. Another process may write between our read and the store's
        # transaction; the store then refuses (InvalidOperation) and one retry on fresh state
        # settles it, e.g. a start then stops the code the other process started.
        for attempt in range(2):
            session = self._open(session_id)
            stopwatch = self._restore(session)
            change = operation(stopwatch)
            request = _store_change(session_id, change, action, self._catalogue)
            if not (request.stops or request.starts or request.pause or request.clear_pause):
                if change.furnished_by_changed:
                    # Nothing runs, so no segment records it: remember it for the next start.
                    self._furnished_by[session_id] = change.furnished_by_after
                return Outcome(session, change, stopwatch)
            try:
                applied = self._store.apply_stopwatch_change(request, actor=self._actor)
            except InvalidOperation:
                if attempt:
                    raise
                continue
            # The segments now say who furnishes; a remembered value would only go stale.
            self._furnished_by.pop(session_id, None)
            committed = replace(
                change,
                closed=tuple(_from_store(s) for s in applied.stopped),
                opened=tuple(_from_store(s) for s in applied.started),
            )
            return Outcome(applied.session, committed, self._restore(applied.session))
        raise AssertionError("unreachable")  # pragma: no cover


def _store_change(
    session_id: str, change: Change, action: str, catalogue: Catalogue
) -> st.StopwatchChange:
    if action == "start" and change.stopped_codes:
        action = "switch"
    pause = None
    if change.paused_after is not None and change.pause_changed:
        pause = st.Pause(
            at_utc=change.paused_after.since,
            resume=tuple(
                st.SegmentSpec(r.code, r.furnished_by) for r in change.paused_after.resume
            ),
        )
    return st.StopwatchChange(
        session_id=session_id,
        stops=tuple(_stop(s) for s in change.closed),
        starts=tuple(
            st.SegmentStart(
                s.code,
                s.furnished_by,
                exclusive=not catalogue.get(s.code).supervised_modality,
                start_utc=s.start,
                id=s.id,  # the stopwatch's id, so the change it reported names the stored rows
            )
            for s in change.opened
        ),
        pause=pause,
        clear_pause=change.paused_before is not None and change.paused_after is None,
        action=action,
    )


def _stop(segment: Segment) -> st.SegmentStop:
    assert segment.stop is not None, "only closed segments are written as stops"
    return st.SegmentStop(segment.id, segment.stop)


def _from_store(segment: st.Segment) -> Segment:
    return Segment(
        id=segment.id,
        code=segment.code,
        furnished_by=segment.furnished_by,
        start=segment.start_utc,
        stop=segment.stop_utc,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
