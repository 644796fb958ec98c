"""Stored rows and the rounding policy become rules answers, per session and per claim day."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from therapy_timer import rules
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Kind
from therapy_timer.errors import InvalidInput
from therapy_timer.frozen import from_fields, frozen_record
from therapy_timer.model import (
    PayerProfile,
    Segment,
    SegmentTimes,
    Session,
    SessionProblem,
    SessionStatus,
    UntimedService,
    clinician_key,
    helper_time,
)
from therapy_timer.stopwatch import RoundingPolicy, RulesInput, Stopwatch

OTHER_METHOD = {rules.Method.CMS: rules.Method.AMA, rules.Method.AMA: rules.Method.CMS}

ROUNDING_WORDS = {
    RoundingPolicy.DOWN: "rounded down to whole minutes",
    RoundingPolicy.NEAREST: "rounded to the nearest whole minute",
}

STALE_ALLOCATION_REMARK = (
    "The tie choice recorded earlier no longer fits the minutes; "
    "the default allocation applies until a new choice is made."
)


# Python 3.11 reads an enum member off its class through a descriptor: in loops over a
# year's 300,000 segments and codes, module constants (as stopwatch._NEAREST).
_ASSISTANT = FurnishedBy.ASSISTANT
_UNTIMED = Kind.UNTIMED
_OPEN = SessionStatus.OPEN

ExactTotals = tuple[dict[str, timedelta], dict[str, timedelta], set[str]]
"""Exact time per code, the assistant's share, the running codes (``Stopwatch.exact_totals``)."""


class Timing(Protocol):
    """What billing reads of a session's stopwatch: its exact time and minutes per code."""

    def exact_totals(self) -> ExactTotals: ...
    def rules_input(self) -> RulesInput: ...


class StoppedTotals:
    """``exact_totals`` of a session whose segments have all stopped, summed from its stored
    times: no clock, pause or running code changes them, so a closed session is billed
    without restoring a stopwatch (``stopped_totals`` says when that gives the same).

    ``long_run``: its time of some code (any code) adds up to more than LONG_RUN, so one of
    its stretches may have run that long and its claim day may need the warning of
    ``long_runs``: such a day is not plain."""

    __slots__ = ("_assistant", "_catalogue", "_elapsed", "_policy", "long_run")

    def __init__(
        self,
        elapsed: dict[str, timedelta],
        assistant: dict[str, timedelta],
        catalogue: Catalogue,
        policy: RoundingPolicy,
        long_run: bool = False,
    ) -> None:
        self._elapsed = elapsed
        self._assistant = assistant
        self._catalogue = catalogue
        self._policy = policy
        self.long_run = long_run

    def exact_totals(self) -> ExactTotals:
        return self._elapsed, self._assistant, set()

    def rules_input(self) -> RulesInput:
        """``Stopwatch.rules_input``: these totals rounded under the policy."""
        return pooled_input([(self, ())], self._catalogue, self._policy)

    def rounded(self) -> tuple[tuple[str, int, int], ...]:
        """Each code's whole minutes and the assistant's part of them (``code_minutes``), in
        order of code: everything ``rules_input`` takes from these totals, as a memo's key."""
        rounded, assistant = self._policy.minutes, self._assistant
        if not assistant:  # (most sessions) code_minutes of a code without the assistant's time
            found = [(code, rounded(total), 0) for code, total in self._elapsed.items()]
        else:
            found = [
                (code, *code_minutes(total, assistant.get(code), rounded))
                for code, total in self._elapsed.items()
            ]
        found.sort()
        return tuple(found)


def stopped_totals(
    segments: Iterable[SegmentTimes],
    catalogue: Catalogue,
    policy: RoundingPolicy,
    canonical: dict[str, str],
    day: tuple[datetime, datetime] | None = None,
) -> StoppedTotals | None:
    """What the session's restored stopwatch would total, or None when restoring does more
    than add stopped segments up: a running segment, a code not in the catalogue, a time not
    in UTC, a stop before its start (``Stopwatch.restore`` then decides, or refuses).

    ``canonical`` caches each code as the catalogue writes it (as ``restore`` maps it).
    With ``day`` (when the local day of its date of service starts and the next one does,
    ``local_day``), a segment outside it also gives None: the session may have run overnight,
    which its claim day's rows must say, and only a ``ClaimDay`` reads the visit's times.
    """
    elapsed: dict[str, timedelta] = {}
    assistant: dict[str, timedelta] = {}
    for stored_code, furnished_by, start, stop in segments:
        if stop is None or start.tzinfo is not UTC or stop.tzinfo is not UTC or stop < start:
            return None
        if day is not None and (start < day[0] or stop >= day[1]):
            return None
        code = canonical.get(stored_code)
        if code is None:
            if stored_code not in catalogue:
                return None
            code = canonical[stored_code] = catalogue.get(stored_code).code
        length = stop - start
        elapsed[code] = elapsed[code] + length if code in elapsed else length
        if furnished_by is _ASSISTANT:
            assistant[code] = assistant[code] + length if code in assistant else length
    # A stretch is never longer than its code's total: whether segments join into one
    # stretch (``long_runs``) is asked only of the few sessions whose totals pass this.
    long_run = any([total > LONG_RUN for total in elapsed.values()])
    return StoppedTotals(elapsed, assistant, catalogue, policy, long_run)


def local_day(day: date) -> tuple[datetime, datetime]:
    """When a local calendar day starts and the next one does (UTC): dates of service are
    local days."""
    return _local_midnight(day, 0, datetime.min), _local_midnight(day, 1, datetime.max)


def _local_midnight(day: date, days: int, edge: datetime) -> datetime:
    """The local midnight ``days`` after ``day`` began, in UTC; ``edge`` (as UTC) at the ends
    of the calendar, where Python has no such moment: 9999-12-31 has no next day, and
    0001-01-01 began in year 0 in UTC west of Greenwich (a year mistyped in the header, or a
    bundle's: the export ended in a traceback)."""
    try:
        return datetime.combine(day + timedelta(days=days), _MIDNIGHT).astimezone(UTC)
    except (OverflowError, ValueError):
        return edge.replace(tzinfo=UTC)


_MIDNIGHT = datetime.min.time()


def segment_times(segment: Segment) -> SegmentTimes:
    """What billing reads of a segment record (``Store.segment_times_of`` reads only that)."""
    return segment.code, segment.furnished_by, segment.start_utc, segment.stop_utc


@frozen_record
class SessionRows:
    """Everything the rules need about one session, as read from the store."""

    session: Session
    stopwatch: Timing
    """Its stopwatch, or for a closed session read in bulk its ``StoppedTotals``."""
    untimed: Sequence[UntimedService]
    profile: PayerProfile
    problem: SessionProblem | None = None
    """Set when the stored rows cannot be read as minutes at all (a code no longer in the
    catalogue); the stopwatch is then empty."""

    def __init__(
        self,
        session: Session,
        stopwatch: Timing,
        untimed: Sequence[UntimedService],
        profile: PayerProfile,
        problem: SessionProblem | None = None,
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "stopwatch", stopwatch)
        object.__setattr__(self, "untimed", untimed)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "problem", problem)


def stopped_rows(
    session: Session,
    totals: StoppedTotals,
    untimed: Sequence[UntimedService],
    profile: PayerProfile,
) -> SessionRows:
    """``SessionRows`` of a session summed from its stopped segments, made without
    ``__init__`` (a clinic-year's export makes 100,000)."""
    return from_fields(
        SessionRows,
        {
            "session": session,
            "stopwatch": totals,
            "untimed": untimed,
            "profile": profile,
            "problem": None,
        },
    )


Problem = Callable[[Session, InvalidInput], SessionProblem]
"""Turns a refusal of the rules into what a person does about it (Clinic.session_problem)."""


def rules_input(
    stopwatch: Stopwatch, untimed: Sequence[UntimedService], catalogue: Catalogue
) -> RulesInput:
    """Minutes for ``rules.py``: the stopwatches plus untimed services entered by hand."""
    return pooled_input([(stopwatch, untimed)], catalogue, stopwatch.policy)


def remarks(session: Session, policy: RoundingPolicy) -> list[str]:
    """Sentences for the note that only the stored session knows (R4.3: how minutes were kept)."""
    found = [
        f"Clinician: {session.clinician} ({session.role.value})",
        f"Minutes per code are the stopwatch time {ROUNDING_WORDS[policy]}.",
    ]
    if session.is_open:
        found.append("Provisional: the session is still open.")
    if session.amended:
        found.append("Amended after the session was closed; the audit log has the reasons.")
    return found


def evaluate(
    rows: SessionRows,
    catalogue: Catalogue,
    policy: RoundingPolicy,
    *,
    allocation: Mapping[str, int] | None = None,
    method: rules.Method | None = None,
    concurrent: Sequence[str] = (),
    runs: Sequence[LongRun] = (),
    shared: Sequence[str] = (),
) -> rules.Result:
    """The rules' answer for one session under its payer profile.

    ``allocation`` picks one of the equally valid CMS allocations of a tie (R2.8); without it
    the choice stored with the session applies, else the rules' documented default.
    ``method`` overrides the payer's, to show what the other method would give;
    ``concurrent`` names patients whose timed minutes overlapped this session's (R8.3);
    ``runs`` its timed codes that ran implausibly long (``long_runs``); ``shared`` the
    clinicians timing a code for the patient at the same time (``shared_patients``, R8.1).
    """
    session, profile = rows.session, rows.profile
    minutes = pooled_input([(rows.stopwatch, rows.untimed)], catalogue, policy)
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
        assistant_untimed=tuple(minutes.assistant_untimed),
    )
    stored = session.allocation if allocation is None else None
    result = _answer(request, stored, remarks(session, policy), catalogue, concurrent)
    added = [long_run_warning(runs)] if runs else []
    if shared:
        added.append(rules.shared_time_warning(shared))
    return _with_warnings(result, (*result.warnings, *added)) if added else result


def _answer(
    request: rules.Request,
    stored: Mapping[str, int] | None,
    notes: list[str] | None,
    catalogue: Catalogue,
    concurrent: Sequence[str],
) -> rules.Result:
    """The rules' answer with a stored tie choice if it still fits, plus the R8.3 flag.

    With ``notes`` None the answer has no note (``rules.evaluate_without_note``)."""
    result = None
    if stored is not None:
        try:
            result = _evaluate(replace(request, allocation=stored), catalogue, notes)
        except InvalidInput:
            # The minutes changed since the choice (an amendment): the old choice no longer
            # splits these units, so say so and fall back to the default.
            if notes is not None:
                notes.append(STALE_ALLOCATION_REMARK)
    if result is None:
        result = _evaluate(request, catalogue, notes)
    if not concurrent:
        return result
    return _with_warnings(result, (*result.warnings, rules.concurrent_warning(concurrent)))


def _evaluate(
    request: rules.Request, catalogue: Catalogue, notes: list[str] | None
) -> rules.Result:
    if notes is None:
        return rules.evaluate_without_note(request, catalogue)
    return rules.evaluate(request, catalogue, notes)


def _with_warnings(result: rules.Result, warnings: tuple[rules.RuleWarning, ...]) -> rules.Result:
    """``replace(result, warnings=...)`` without ``replace``'s look at every field (a year's
    export adds an R8.3 flag to most days)."""
    return rules.Result(**{**vars(result), "warnings": warnings})


def concurrent_patients(
    sessions: Sequence[Session],
    segments: Mapping[str, Sequence[SegmentTimes]],
    catalogue: Catalogue,
    now: datetime,
) -> dict[str, tuple[str, ...]]:
    """Patient references whose timed minutes overlap each session's (same clinician, day: R8.3),
    each patient once (its first session's spelling)."""
    found = _overlapping(
        sessions,
        segments,
        catalogue,
        now,
        lambda s: (clinician_key(s.clinician), s.date_of_service),
        # A therapist and the assistant of her session time two patients at once, as the
        # stopwatch lets them: two people's time, flagged as one's split attention.
        helper_time,
    )
    ordered = _in_order(sessions, found)
    named: dict[str, tuple[str, ...]] = {}
    for sid, others in found.items():
        refs: dict[str, str] = {}
        for other in ordered(others):
            refs.setdefault(patient_key(other.patient_ref), other.patient_ref)
        # Another session of the session's own patient is no other patient: R8.1 flags it
        # (shared_patients). R8.3 told its claim day attention was split between patients,
        # naming the patient itself (for MRN1, mrn1: a group code may apply).
        (own,) = ordered([sid])
        refs.pop(patient_key(own.patient_ref), None)
        if refs:
            named[sid] = tuple(sorted(refs.values()))
    return named


def shared_patients(
    sessions: Sequence[Session],
    segments: Mapping[str, Sequence[SegmentTimes]],
    catalogue: Catalogue,
    now: datetime,
) -> dict[str, tuple[str, ...]]:
    """The clinicians (with their roles) of each session, and of the sessions of the same
    patient and day whose timed minutes overlap its own (R8.1: one timed code at a time for
    a patient; R1.4: two clinicians treating together count the minutes once)."""
    found = _overlapping(
        sessions,
        segments,
        catalogue,
        now,
        lambda s: (patient_key(s.patient_ref), s.date_of_service),
    )
    # Named as the note's "Clinicians:" line names them (``clinician_labels``, in the
    # sessions' order): one person typed two ways (Ann Lee, ann lee) was named twice, as two
    # clinicians treating together.
    ordered = _in_order(sessions, found)
    return {
        sid: tuple(sorted(clinician_labels(ordered((sid, *others)))))
        for sid, others in found.items()
    }


def _in_order(
    sessions: Sequence[Session], found: Mapping[str, set[str]]
) -> Callable[[Iterable[str]], list[Session]]:
    """The sessions of ids ``_overlapping`` found, in the order ``sessions`` lists them (the
    first one's spelling of a name is the one shown). Overlapping is mutual: every id named
    among the others is a key of ``found`` too."""
    listed = [s for s in sessions if s.id in found]
    at = {s.id: index for index, s in enumerate(listed)}
    return lambda ids: [listed[index] for index in sorted(at[i] for i in ids)]


def _overlapping(
    sessions: Sequence[Session],
    segments: Mapping[str, Sequence[SegmentTimes]],
    catalogue: Catalogue,
    now: datetime,
    group_of: Callable[[Session], tuple[str, date]],
    helper: Callable[[Session, FurnishedBy], bool] | None = None,
) -> dict[str, set[str]]:
    """The ids of the sessions whose timed intervals overlap each session's among the sessions
    ``group_of`` puts with it (``rules.concurrent_sessions``). With ``helper``, the segments it
    says an unnamed assistant furnished are compared with the other sessions' assistants' only:
    another person's time (``model.helper_time``)."""
    groups: dict[tuple[str, date], list[Session]] = {}
    for session in sessions:
        groups.setdefault(group_of(session), []).append(session)
    timed: dict[str, bool] = {}
    found: dict[str, set[str]] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        spans: dict[bool, dict[str, list[rules.Interval]]] = {}
        for s in group:
            for code, furnished_by, start, stop in segments.get(s.id, ()):
                is_timed = timed.get(code)
                if is_timed is None:
                    # A code no longer in the catalogue is the session's problem, shown elsewhere.
                    is_timed = timed[code] = code in catalogue and catalogue.get(code).timed
                if is_timed:
                    whose = helper is not None and helper(s, furnished_by)
                    spans.setdefault(whose, {}).setdefault(s.id, []).append((start, stop or now))
        for same in spans.values():
            if len(same) > 1:
                for session_id, others in rules.concurrent_sessions(same).items():
                    found.setdefault(session_id, set()).update(others)
    return found


LONG_RUN = timedelta(hours=2)
"""A timed code that ran longer than this without a stop was most likely left running: its
claim day carries an act warning (docs/billing-rules.md, "A timer left running")."""

LongRun = tuple[str, timedelta]
"""A timed code and how long one of its segments ran without a stop (a running one: so far)."""


def long_runs(
    segments: Mapping[str, Sequence[SegmentTimes]], catalogue: Catalogue, now: datetime
) -> dict[str, tuple[LongRun, ...]]:
    """Each session's unbroken stretches of a timed code (``_stretches``) that ran longer than
    LONG_RUN, longest first.

    Only 15-minute codes: their units come from the minutes alone, so a timer left running
    bills unit after unit; an untimed code bills one unit however long, and a code counted by
    hand (§5.3, work hardening's hours) is looked at by a person anyway.
    """
    found: dict[str, tuple[LongRun, ...]] = {}
    for session_id, listed in segments.items():
        # A stretch is never longer than all the session's time: joining its segments into
        # stretches costs more than this sum, and most sessions' time is under LONG_RUN.
        total = _ZERO
        for _code, _by, start, stop in listed:
            length = (now if stop is None else stop) - start
            if length > _ZERO:
                total += length
        if total <= LONG_RUN:
            continue
        runs = [
            (code, length)
            for code, length in _stretches(listed, now)
            if length > LONG_RUN and code in catalogue and catalogue.get(code).timed
        ]
        if runs:
            found[session_id] = tuple(sorted(runs, key=lambda run: run[1], reverse=True))
    return found


def _stretches(listed: Sequence[SegmentTimes], now: datetime) -> Iterator[LongRun]:
    """Each code's unbroken stretches and their lengths (a running one: up to ``now``).

    When who furnishes a running code changes, the stopwatch closes its segment and opens the
    next at that moment (``Stopwatch.set_furnished_by``): the timer never stopped, so such a
    segment continues its stretch."""
    codes: list[str] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    ending: dict[tuple[str, datetime], tuple[int, FurnishedBy]] = {}
    for code, by, start, stop in sorted(listed, key=_start):
        before = ending.pop((code, start), None)
        if before is not None and before[1] is not by:
            at = before[0]
        else:
            at = len(codes)
            codes.append(code)
            starts.append(start)
            ends.append(start)
        ends[at] = now if stop is None else stop
        if stop is not None:
            ending[(code, stop)] = (at, by)
    for code, start, end in zip(codes, starts, ends, strict=True):
        yield code, end - start


def _start(segment: SegmentTimes) -> datetime:
    return segment[2]


def long_run_warning(runs: Sequence[LongRun]) -> rules.RuleWarning:
    """The act warning of a claim day with a timed code that ran implausibly long (R9.4's
    medically unlikely units, without its per-code values, which are not known)."""
    said = ", ".join(f"{code} {_duration(length)}" for code, length in runs)
    code, length = runs[0]
    return rules.RuleWarning(
        "R9.4",
        f"A timer ran without a stop for longer than {_duration(LONG_RUN)}: {said}. That many "
        "units of one code in one stretch are unlikely; it was probably left running. Check "
        "the minutes against the treatment record and correct them (with a reason) before the "
        "claim goes out.",
        rules.Severity.ACT,
        f"{code} ran {_duration(length)} without a stop: left running?",
    )


def _duration(length: timedelta) -> str:
    hours, minutes = divmod(int(length.total_seconds() // 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} hours"


def minutes_to_next_unit(result: rules.Result, running_code: str | None) -> int | None:
    """Minutes of the running timed code until the payer's method gives one more unit.

    Information for the therapist, never a prompt to treat longer. The arithmetic is the
    rules module's (R2.2 unit chart, R3.1 midpoint); this only searches the next minute.
    """
    if running_code is None:
        return None
    if result.method is rules.Method.CMS:
        total = result.total_timed_minutes
        now_units = rules.cms_total_units(total)
        return next(k for k in range(1, 16) if rules.cms_total_units(total + k) > now_units)
    minutes = next((c.minutes for c in result.codes if c.code == running_code), 0)
    now_units = rules.ama_units(minutes)
    return next(k for k in range(1, 16) if rules.ama_units(minutes + k) > now_units)


# --------------------------------------------------------------------------------------------
# Claim days (R1.2): the unit of reckoning is the code x calendar day, for one patient and one
# plan of care, so every session of a day is pooled before units are computed.

_INITIALS = re.compile(r"^(?:[A-Za-z]\.?){2,3}$")
_ZERO = timedelta(0)

DayKey = tuple[date, str, Discipline, str]
"""Date of service, normalised patient reference, discipline (plan of care), payer profile."""


def patient_key(ref: str) -> str:
    """A reference as the store compares it (model.patient_ref): stripped, ASCII case folded."""
    return ref.strip().lower()


def looks_like_initials(ref: str) -> bool:
    """Two or three letters (dots allowed), no digits: two patients may well share it."""
    return bool(_INITIALS.match(ref.strip()))


def day_key(session: Session) -> DayKey:
    return (
        session.date_of_service,
        patient_key(session.patient_ref),
        session.discipline,
        session.payer_profile,
    )


@frozen_record
class Visit:
    """One session of a claim day, with its first segment start and last stop (UTC)."""

    session: Session
    time_in: datetime | None = None
    time_out: datetime | None = None

    def __init__(
        self, session: Session, time_in: datetime | None = None, time_out: datetime | None = None
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "time_in", time_in)
        object.__setattr__(self, "time_out", time_out)


@frozen_record
class ClaimDay:
    """Every session of one patient, date of service, discipline and payer, billed as one.

    ``result`` is the rules' answer on the day's pooled minutes; while any session is open it
    is provisional. ``changed_after_export``: a session of the day changed after it was
    exported, so the billing system holds out-of-date charges for the whole day.

    ``problems``: sessions of the day the rules refuse as recorded (a timer left running over
    a weekend, a code no longer in the catalogue). Their minutes are left out of ``result``,
    which says so in an *act* warning (R1.2: the day is billed without them); they are never
    marked exported, so once corrected the day is exported again, whole.

    ``read_mark``: the store's audit mark taken before its sessions were read (None: not read
    from a store); an export of the day leaves a session changed after it due again.
    """

    visits: tuple[Visit, ...]
    result: rules.Result
    changed_after_export: bool = False
    problems: tuple[SessionProblem, ...] = ()
    read_mark: int | None = field(default=None, compare=False)

    def __init__(
        self,
        visits: tuple[Visit, ...],
        result: rules.Result,
        changed_after_export: bool = False,
        problems: tuple[SessionProblem, ...] = (),
        read_mark: int | None = None,
    ) -> None:
        object.__setattr__(self, "visits", visits)
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "changed_after_export", changed_after_export)
        object.__setattr__(self, "problems", problems)
        object.__setattr__(self, "read_mark", read_mark)

    @property
    def sessions(self) -> tuple[Session, ...]:
        return tuple([v.session for v in self.visits])

    @property
    def session_ids(self) -> tuple[str, ...]:
        return tuple([v.session.id for v in self.visits])

    @property
    def billed_session_ids(self) -> tuple[str, ...]:
        """The sessions whose minutes ``result`` bills (all but the ``problems``)."""
        if not self.problems:
            return self.session_ids
        held = {p.session.id for p in self.problems}
        return tuple(i for i in self.session_ids if i not in held)

    @property
    def key(self) -> DayKey:
        return day_key(self.visits[0].session)

    @property
    def patient_ref(self) -> str:
        return self.visits[0].session.patient_ref

    @property
    def date_of_service(self) -> date:
        return self.visits[0].session.date_of_service

    @property
    def discipline(self) -> Discipline:
        return self.visits[0].session.discipline

    @property
    def payer_profile(self) -> str:
        return self.visits[0].session.payer_profile

    @property
    def pooled(self) -> bool:
        return len(self.visits) > 1

    @property
    def provisional(self) -> bool:
        """Some session of the day is still open: its lines may still change."""
        return any([v.session.is_open for v in self.visits])

    @property
    def initials_only(self) -> bool:
        """A pooled day under a reference that looks like initials: maybe two people."""
        return self.pooled and looks_like_initials(self.patient_ref)

    @property
    def clinicians(self) -> tuple[str, ...]:
        return clinician_labels(self.sessions)

    @property
    def time_in(self) -> datetime | None:
        return min((v.time_in for v in self.visits if v.time_in), default=None)

    @property
    def time_out(self) -> datetime | None:
        return max((v.time_out for v in self.visits if v.time_out), default=None)

    @property
    def status(self) -> str:
        """open / amended after export / exported / amended / closed (``day_status``)."""
        if self.problems:
            held = {p.session.id for p in self.problems}
            sessions = [s for s in self.sessions if s.id not in held]
        else:
            sessions = list(self.sessions)
        return day_status(sessions, provisional=self.provisional, changed=self.changed_after_export)

    @property
    def nothing_billable(self) -> str | None:
        """Why the day bills no line, in words; None when it bills something."""
        return nothing_billable(
            self.result, problems=bool(self.problems), provisional=self.provisional
        )


def day_status(billed: Sequence[Session], *, provisional: bool, changed: bool) -> str:
    """A claim day's status, the most telling first, from the sessions its answer bills.

    A day some of whose sessions were exported and some not (a visit added later) was
    billed on other minutes than it has now: exported again, like an amendment.
    """
    if provisional:
        return "open"
    if not billed:
        return "needs correction"
    exported = [s.exported for s in billed]
    if changed or (any(exported) and not all(exported)):
        return "amended after export"
    if all(exported):
        return "exported"
    return "amended" if any(s.amended for s in billed) else "closed"


def nothing_billable(result: rules.Result, *, problems: bool, provisional: bool) -> str | None:
    """Why a claim day's answer bills no line, in words; None when it bills something."""
    if result.lines:
        return None
    if problems and not result.codes:
        return "its session(s) cannot be billed until corrected"
    if provisional and not result.codes:
        return "still open: nothing recorded yet"
    if not result.codes:
        return "no minutes or services recorded"
    recorded = ", ".join(f"{c.code} {c.minutes} min" for c in result.codes)
    if result.method is rules.Method.CMS:
        why = f"{result.total_timed_minutes} timed minutes for the day, under the 8 of a unit"
    else:
        why = "each code under the 8 minutes of a unit"
    return f"{recorded}: {why}"


def pooled_input(
    parts: Sequence[tuple[Timing, Sequence[UntimedService]]],
    catalogue: Catalogue,
    policy: RoundingPolicy,
) -> RulesInput:
    """Minutes for ``rules.py`` from several sessions' stopwatches and untimed services.

    Each code's exact time (and the assistant's share) is summed over every segment first and
    rounded once, exactly as ``Stopwatch.totals`` rounds one session: rounding per session
    and adding would turn two 7:40 stretches into 16 minutes under "nearest" and 14 under "down".
    """
    elapsed: dict[str, timedelta] = {}
    assistant: dict[str, timedelta] = {}
    if len(parts) == 1:  # most claim days: one session, nothing to add up
        elapsed, assistant, _running = parts[0][0].exact_totals()
    else:
        for stopwatch, _untimed in parts:
            exact, helped, _running = stopwatch.exact_totals()
            for code, total in exact.items():
                elapsed[code] = elapsed.get(code, _ZERO) + total
                assistant[code] = assistant.get(code, _ZERO) + helped.get(code, _ZERO)
    result = RulesInput({}, {}, [], {})
    rounded = policy.minutes
    for code in sorted(elapsed, key=catalogue.rank):
        minutes, result.assistant_minutes[code] = code_minutes(
            elapsed[code], assistant.get(code), rounded
        )
        if catalogue.get(code).kind is _UNTIMED:
            result.untimed.append(code)
            result.untimed_minutes[code] = minutes
        else:
            result.timed[code] = minutes
    for _stopwatch, untimed in parts:
        _add_entered(result, untimed, catalogue)
    result.untimed.sort(key=catalogue.rank)
    return result


def entered_minutes(untimed: Sequence[UntimedService], catalogue: Catalogue) -> dict[str, int]:
    """Each untimed code's minutes entered by hand, as billed: a code an older version stored
    twice adds up its rows' minutes (one service, R1.1)."""
    result = RulesInput({}, {}, [], {})
    _add_entered(result, untimed, catalogue)
    return result.untimed_minutes


def _add_entered(
    result: RulesInput, untimed: Sequence[UntimedService], catalogue: Catalogue
) -> None:
    for service in untimed:
        code = catalogue.get(service.code).code
        if code not in result.untimed:
            result.untimed.append(code)
        if service.minutes is None:
            # An assistant's service without minutes still takes CQ/CO (R7.4): say it was theirs.
            if service.furnished_by is _ASSISTANT and code not in result.assistant_untimed:
                result.assistant_untimed.append(code)
            continue
        result.untimed_minutes[code] = result.untimed_minutes.get(code, 0) + service.minutes
        if service.furnished_by is FurnishedBy.ASSISTANT:
            result.assistant_minutes[code] = result.assistant_minutes.get(code, 0) + service.minutes


def code_minutes(
    elapsed: timedelta, assistant: timedelta | None, rounded: Callable[[timedelta], int]
) -> tuple[int, int]:
    """A code's exact time in whole minutes (``RoundingPolicy.minutes``) and how many of them
    are the assistant's, whose exact share of it is ``assistant``.

    As in Stopwatch.totals: the therapist's share is rounded and the rest is the assistant's,
    so a rounding remainder never becomes therapist time (R7.6)."""
    minutes = rounded(elapsed)
    therapist = minutes if not assistant else min(minutes, rounded(elapsed - assistant))
    return minutes, minutes - therapist


def clinician_labels(sessions: Sequence[Session]) -> tuple[str, ...]:
    """Who saw the patient ("Kim Lee (PT)"): each person and role once (names compared by
    ``clinician_key``), under the spelling of their first session. (A StrEnum formats as its
    value, without .value's descriptor call: a clinic-year's CSV asks 100,000 times.)"""
    if len(sessions) == 1:  # most days: no name to compare
        return (clinician_label(sessions[0]),)
    labels: dict[tuple[str, str], str] = {}
    for s in sessions:
        labels.setdefault((clinician_key(s.clinician), s.role), clinician_label(s))
    return tuple(labels.values())


def clinician_label(session: Session) -> str:
    """Who furnished a session, as notes and CSVs name them: "Kim Lee (PT)"."""
    return f"{session.clinician} ({session.role})"


def day_remarks(sessions: Sequence[Session], policy: RoundingPolicy) -> list[str]:
    """The note's sentences about how a claim day was kept (a one-session day: as before)."""
    if len(sessions) == 1:
        return remarks(sessions[0], policy)
    who = clinician_labels(sessions)
    found = [
        f"Claim day: {len(sessions)} sessions of this patient, date of service and plan of "
        "care are billed together; their minutes were pooled before units were computed (R1.2).",
        f"Clinicians: {', '.join(who)}",
        f"Minutes per code are the day's stopwatch time over all its sessions, "
        f"{ROUNDING_WORDS[policy]} once.",
    ]
    still_open = sum(s.is_open for s in sessions)
    if still_open:
        found.append(
            f"Provisional: {still_open} of the day's sessions still open; the lines may change."
        )
    amended = sum(s.amended for s in sessions)
    if amended:
        found.append(f"{amended} session(s) amended after closing; the audit log has the reasons.")
    return found


def evaluate_day(
    rows: Sequence[SessionRows],
    catalogue: Catalogue,
    policy: RoundingPolicy,
    *,
    concurrent: Sequence[str] = (),
    problems: Sequence[SessionProblem] = (),
    note: bool = True,
) -> rules.Result:
    """The rules' answer for one claim day: every session's minutes pooled, rounded once.

    The day is billed under its payer profile; a tie choice (R2.8) stored with its latest
    session that chose one applies while it still fits the pooled minutes. The minutes of
    ``problems`` (sessions of the day the rules refuse) are left out, and an act warning and
    the note say which and why. Without ``note`` the answer's note is empty.
    """
    if not rows:
        raise ValueError("a claim day has at least one session")
    first = rows[0]
    billed = rows
    if problems:
        held = {p.session.id for p in problems}
        billed = [r for r in rows if r.session.id not in held]
    sessions = [r.session for r in billed]
    request = day_request(first, billed, catalogue, policy)
    stored = None  # the tie choice of the latest session that made one
    for s in sessions:
        if s.allocation is not None:
            stored = s.allocation
    left_out = [_left_out(p, partial=bool(billed)) for p in problems]
    notes = None
    if note:
        notes = [*day_remarks(sessions or [first.session], policy), *(w.message for w in left_out)]
    result = _answer(request, stored, notes, catalogue, concurrent)
    groups = [group_sessions_warning(code, n) for code, n in group_sessions(billed, catalogue)]
    if left_out or groups:
        return _with_warnings(result, (*left_out, *result.warnings, *groups))
    return result


def group_sessions(rows: Sequence[SessionRows], catalogue: Catalogue) -> list[tuple[str, int]]:
    """Each group therapy code (R8.2) recorded in more than one of a claim day's sessions,
    timed or entered, and in how many, in the catalogue's order.

    Pooling bills an untimed code once a day (R1.1), but group therapy is one unit per patient
    per session: two groups the patient attended are two units, one group two clinicians both
    recorded is one. The minutes cannot tell which, so the day is billed once and warned."""
    if len(rows) < 2:
        return []
    seen: dict[str, int] = {}
    for row in rows:
        codes = recorded_codes(row)
        for code in {catalogue.get(c).code for c in codes if c in catalogue}:
            if catalogue.get(code).group:
                seen[code] = seen.get(code, 0) + 1
    return sorted(((c, n) for c, n in seen.items() if n > 1), key=lambda cn: catalogue.rank(cn[0]))


def recorded_codes(row: SessionRows) -> set[str]:
    """The codes a session records, timed on its stopwatch or entered as untimed services."""
    return {u.code for u in row.untimed}.union(row.stopwatch.exact_totals()[0])


def group_sessions_warning(code: str, sessions: int) -> rules.RuleWarning:
    """The act warning of a claim day whose sessions record group therapy ``code`` more than
    once (``group_sessions``)."""
    return rules.RuleWarning(
        "R8.2",
        f"{code} (group therapy) is recorded in {sessions} of this claim day's sessions and is "
        "billed as 1 unit. Group therapy is 1 unit per patient per session: if the patient "
        f"attended {sessions} separate groups, the claim may carry a unit for each; if the "
        "sessions record the same group, 1 unit is right. Check the treatment record.",
        rules.Severity.ACT,
        f"{code} in {sessions} sessions: billed once",
    )


def day_request(
    first: SessionRows,
    billed: Sequence[SessionRows],
    catalogue: Catalogue,
    policy: RoundingPolicy,
) -> rules.Request:
    """The rules' request for a claim day: the ``billed`` sessions' minutes pooled, under the
    payer profile, plan of care and date of its ``first`` session."""
    minutes = pooled_input([(r.stopwatch, r.untimed) for r in billed], catalogue, policy)
    profile, session = first.profile, first.session
    return rules.Request(
        profile.method,
        session.discipline,
        minutes.timed,
        {c: m for c, m in minutes.assistant_minutes.items() if m},
        tuple(minutes.untimed),
        minutes.untimed_minutes,
        session.date_of_service,
        profile.assistant_modifiers,
        assistant_untimed=tuple(minutes.assistant_untimed),
    )


def _left_out(problem: SessionProblem, *, partial: bool) -> rules.RuleWarning:
    """The act warning of a claim day billed without one of its sessions."""
    rest = (
        "The day's other sessions are billed without its minutes; once it is corrected the "
        "day is exported again, whole."
        if partial
        else "Nothing is billed for it until it is corrected."
    )
    return rules.RuleWarning(
        "R1.2",
        f"Cannot be billed as recorded: {problem.text}. {rest}",
        rules.Severity.ACT,
        # The short id in the gist: a day view shows only the gist, and the desk must find it.
        f"Session {problem.session.id[:8]} not billed until corrected",
    )


def bill_day(
    rows: Sequence[SessionRows],
    catalogue: Catalogue,
    policy: RoundingPolicy,
    *,
    concurrent: Sequence[str] = (),
    problem: Problem | None = None,
    note: bool = True,
) -> tuple[rules.Result, tuple[SessionProblem, ...]]:
    """``evaluate_day``, and with ``problem`` the sessions it had to leave out: those the rules
    refuse alone or, when each is fine alone but together they hold more minutes than a day
    can, all that remain."""
    problems = [r.problem for r in rows if r.problem is not None]
    while True:
        try:
            result = evaluate_day(
                rows, catalogue, policy, concurrent=concurrent, problems=problems, note=note
            )
            return result, tuple(problems)
        except InvalidInput as whole:
            held = {p.session.id for p in problems}
            readable = [r for r in rows if r.session.id not in held]
            if problem is None or not readable:
                raise
            alone = []
            for row in readable:
                try:
                    evaluate(row, catalogue, policy)
                except InvalidInput as exc:
                    alone.append(problem(row.session, exc))
            problems.extend(alone or [problem(r.session, whole) for r in readable])


def claim_days(
    rows: Iterable[SessionRows],
    catalogue: Catalogue,
    policy: RoundingPolicy,
    *,
    concurrent: Mapping[str, Sequence[str]] | None = None,
    spans: Mapping[str, tuple[datetime | None, datetime | None]] | None = None,
    stale: Iterable[str] = (),
    problem: Problem | None = None,
    note: bool = True,
    read_mark: int | None = None,
    runs: Mapping[str, Sequence[LongRun]] | None = None,
    shared: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[ClaimDay]:
    """Group sessions into claim days and bill each day once, a date at a time.

    ``rows`` come in order of date of service (as the store lists them), so only one date's
    sessions are held at once; each date's days come by patient, discipline and payer.
    ``concurrent`` names each session's overlapping patients (R8.3), ``spans`` its first start
    and last stop, ``stale`` the sessions changed after their export. With ``problem``, a
    session the rules refuse becomes one of its day's ``problems`` and the rest of the day is
    billed; without it the refusal is raised. Without ``note`` the days' answers have no
    note (a CSV never shows it, and the rest of an answer is then memoised); ``read_mark`` is
    each day's (``ClaimDay.read_mark``). ``runs`` names each session's timed codes that ran
    implausibly long (``long_runs``): their day carries ``long_run_warning``; ``shared`` the
    clinicians timing a code for a session's patient at the same time (``shared_patients``):
    their day carries R8.1's warning. Under a
    catalogue with MUEs, a patient's days of one date are held to them together
    (``over_mue_across``).
    """
    overlaps = concurrent or {}
    long = runs or {}
    clashes = shared or {}
    times = spans or {}
    changed = set(stale)
    groups = day_groups(rows)
    # R9.4 caps a code per patient and date across claims: with MUEs, a patient's days of a
    # date are billed together (day_groups yields them one after another).
    for together in patient_dates(groups):
        days = []
        for members in together:
            ids = [r.session.id for r in members]
            result, problems = bill_day(
                members,
                catalogue,
                policy,
                concurrent=day_concurrent(ids, overlaps),
                problem=problem,
                note=note,
            )
            if long:
                day_runs = sorted(
                    [run for i in ids for run in long.get(i, ())],
                    key=lambda run: run[1],
                    reverse=True,
                )
                if day_runs:
                    result = _with_warnings(result, (*result.warnings, long_run_warning(day_runs)))
            if clashes and (clinicians := day_concurrent(ids, clashes)):
                result = _with_warnings(
                    result, (*result.warnings, rules.shared_time_warning(clinicians))
                )
            days.append(
                ClaimDay(
                    visits=tuple(
                        [Visit(r.session, *times.get(r.session.id, _NO_SPAN)) for r in members]
                    ),
                    result=result,
                    changed_after_export=bool(changed) and any([i in changed for i in ids]),
                    problems=problems,
                    read_mark=read_mark,
                )
            )
        if len(days) > 1:
            days = pairs_across(over_mue_across(days, catalogue) if catalogue.mues else days)
        yield from days


def day_groups(rows: Iterable[SessionRows]) -> Iterator[list[SessionRows]]:
    """Sessions (in order of date of service) grouped into claim days, a date at a time, each
    date's days by patient, discipline and payer: only one date's sessions are held at once."""
    current: date | None = None
    groups: dict[DayKey, list[SessionRows]] = {}
    for row in rows:
        day = row.session.date_of_service
        if current is not None and day < current:
            raise ValueError("claim_days needs sessions in order of date of service")
        if day != current:
            yield from [groups[key] for key in sorted(groups, key=_day_order)]
            groups.clear()
            current = day
        groups.setdefault(day_key(row.session), []).append(row)
    yield from [groups[key] for key in sorted(groups, key=_day_order)]


def patient_dates(
    groups: Iterable[list[SessionRows]],
) -> Iterator[tuple[list[SessionRows], ...]]:
    """Claim days' sessions (``day_groups``) with each patient's days of one date together,
    patients compared as claim days compare them (``day_key``)."""
    together: list[list[SessionRows]] = []
    for members in groups:
        if together and day_key(together[0][0].session)[:2] != day_key(members[0].session)[:2]:
            yield tuple(together)
            together = []
        together.append(members)
    if together:
        yield tuple(together)


def over_mue_across(days: Sequence[ClaimDay], catalogue: Catalogue) -> list[ClaimDay]:
    """A patient's claim days of one date billed to one payer (two plans of care), each billing
    a code whose units summed over them exceed its MUE carrying R9.4's act warning: the MUE
    caps a code per patient and date of service across that payer's claims. Another payer's
    claims are not its to deny, so days under different payers are never summed. A day over
    the MUE alone already carries the rules' own warning (it is the same denial) and gets no
    second one."""
    billed: dict[tuple[str, str], list[tuple[int, int]]] = {}  # (payer, code): (day, units)
    for n, day in enumerate(days):
        units: dict[str, int] = {}
        for line in day.result.lines:  # a code's CQ/CO lines counted together, as the rules do
            units[line.code] = units.get(line.code, 0) + line.units
        for code, count in units.items():
            billed.setdefault((day.payer_profile, code), []).append((n, count))
    extra: dict[int, list[rules.RuleWarning]] = {}
    for (payer, code), counts in billed.items():
        entry = catalogue.lookup(code)
        mue = None if entry is None else entry.mue
        total = sum(count for _n, count in counts)
        if mue is None or len(counts) < 2 or total <= mue:
            continue
        shares = "; ".join(
            f"{days[n].discipline.value} under {days[n].payer_profile}: {rules.units_text(count)}"
            for n, count in counts
        )
        warning = rules.RuleWarning(
            "R9.4",
            f"{code}: {rules.units_text(total)} on this date of service, summed over the "
            f"patient's claim days of that date billed to {payer} ({shares}), over its "
            f"medically unlikely edit (MUE) of {mue} in the clinic's codes.toml; the MUE caps a "
            "code per patient and date across a payer's claims, and units above it are denied. "
            "The units are billed as counted: check the records and the payer's edit before "
            "the claims go out.",
            rules.Severity.ACT,
            "Over the MUE",
        )
        for n, count in counts:
            if count <= mue:
                extra.setdefault(n, []).append(warning)
    return [
        replace(day, result=_with_warnings(day.result, (*day.result.warnings, *extra[n])))
        if n in extra
        else day
        for n, day in enumerate(days)
    ]


def pairs_across(days: Sequence[ClaimDay]) -> list[ClaimDay]:
    """A patient's claim days of one date (``patient_dates``), each carrying R9.3's warnings
    for the codes it bills that NCCI pairs with codes another of them bills under another plan
    of care to the same payer (``rules.pairs_across_disciplines``): a payer's edits apply to
    its own claims of a date, not to another payer's."""
    billed = [{line.code for line in day.result.lines} for day in days]
    extra: dict[int, list[rules.RuleWarning]] = {}
    for n, day in enumerate(days):
        for m, other in enumerate(days):
            if other.discipline != day.discipline and other.payer_profile == day.payer_profile:
                found = rules.pairs_across_disciplines(
                    day.discipline, billed[n], other.discipline, billed[m]
                )
                if found:
                    extra.setdefault(n, []).extend(found)
    return [
        replace(day, result=_with_warnings(day.result, (*day.result.warnings, *extra[n])))
        if n in extra
        else day
        for n, day in enumerate(days)
    ]


def may_pair_across(together: Sequence[Sequence[SessionRows]]) -> bool:
    """Whether ``pairs_across`` may warn on these claim days of a patient and date (each a
    list of its sessions), by the codes they record: a code billed is a code recorded, so a
    day this says no to is billed as if alone."""
    recorded = [
        (members[0].session, set().union(*(recorded_codes(row) for row in members)))
        for members in together
    ]
    return any(
        rules.pairs_across_disciplines(s.discipline, codes, o.discipline, others)
        for s, codes in recorded
        for o, others in recorded
        if o.discipline != s.discipline and o.payer_profile == s.payer_profile
    )


def day_concurrent(ids: Sequence[str], overlaps: Mapping[str, Sequence[str]]) -> list[str]:
    """The patients overlapping any of a claim day's sessions (R8.3), or the clinicians
    timing codes for its patient at once (R8.1), from each session's."""
    return sorted({p for i in ids for p in overlaps.get(i, ())}) if overlaps else []


def day_flagged(ids: Sequence[str], overlaps: Mapping[str, Sequence[str]]) -> bool:
    """Whether ``day_concurrent`` names anyone, without naming them."""
    return any([overlaps.get(i) for i in ids])


def plain_request(
    members: Sequence[SessionRows], catalogue: Catalogue, policy: RoundingPolicy
) -> rules.Request | None:
    """A plain claim day's request, or None when the day is not plain.

    Plain: every session closed, summed from stopped segments (``StoppedTotals``: no pause,
    no running timer, nothing the stopwatch must check, no code's time over LONG_RUN, whose
    day may carry ``long_run_warning``), without a stored tie choice and without group
    therapy recorded in two of its sessions (``group_sessions``: the day's warning). Such
    a day, if the rules accept its request (``plain_answer``), has no problems, is not
    provisional and bills every session, so a CSV can write its rows from that answer alone
    (``Clinic`` does, without building a ``ClaimDay``); any other day goes through
    ``claim_days``, which gives the same answer for a plain one (``bill_day`` with nothing
    left out and nothing stored is ``_answer`` of this request). A day whose minutes cannot
    even be pooled (an untimed service of a code no longer in the catalogue) is not plain
    either: ``claim_days`` gives that session its error row and bills the rest.
    """
    for row in members:
        session = row.session
        if row.problem is not None or session.is_open or session.allocation is not None:
            return None
        if not isinstance(row.stopwatch, StoppedTotals) or row.stopwatch.long_run:
            return None
    if group_sessions(members, catalogue):  # its warning is the day's, not the request's
        return None
    try:
        return day_request(members[0], members, catalogue, policy)
    except InvalidInput:
        return None


def plain_key(row: SessionRows) -> tuple[object, ...] | None:
    """What ``plain_request`` would ask of a claim day of ``row``'s session alone, as a memo's
    key (equal keys, equal ``rules.answer_key``s), or None when that session is not plain or
    has untimed services (``plain_request`` then decides).

    Made straight from the summed times (``StoppedTotals.rounded``), without pooling them
    into a request: most days of a clinic-year are one closed session each, and building
    their requests cost more than the rules' memoised answers. Like ``rules.answer_key`` it
    holds no catalogue, though a clinic's codes.toml changes answers (its MUEs, R9.4): a memo
    of these keys serves one catalogue, as ``Clinic._csv_lines`` keeps one per export."""
    session, totals = row.session, row.stopwatch
    if (
        type(totals) is not StoppedTotals
        or totals.long_run
        or row.problem is not None
        or row.untimed
        or session.allocation is not None
        or session.status is _OPEN
    ):
        return None
    profile = row.profile
    return (
        profile.method,
        profile.assistant_modifiers,
        session.discipline,
        rules.rules_in_force(session.date_of_service),
        totals.rounded(),
    )


def plain_answer(
    request: rules.Request, catalogue: Catalogue, concurrent: Sequence[str]
) -> rules.Result | None:
    """The answer without a note to a plain day's ``request`` (R8.3's flag for the patients
    ``concurrent`` names), or None when the rules refuse it (``claim_days`` then says why)."""
    try:
        return _answer(request, None, None, catalogue, concurrent)
    except InvalidInput:
        return None


_NO_SPAN = (None, None)


def _day_order(key: DayKey) -> tuple[str, str, str]:
    """A date's claim days by patient, plan of care and payer (a StrEnum compares as its
    value)."""
    return key[1], key[2], key[3]


def lines_text(result: rules.Result) -> str:
    """A result's billed lines in one line of text, e.g. "1 x 97110-GP, 2 x 97140-GP-CQ"."""
    return ", ".join(line.label for line in result.lines)


def visit_text(visit: Visit) -> str:
    """A session of a day as a person finds it: start time, clinician, short id."""
    session = visit.session
    moment = visit.time_in or session.created_utc
    return (
        f"{moment.astimezone():%H:%M} {session.clinician} ({session.role.value}), {session.id[:8]}"
    )


def with_claim_day(result: rules.Result, session_id: str, day: ClaimDay) -> rules.Result:
    """A session's own answer, told that its codes are billed on a pooled claim day.

    The session keeps its own minutes and lines (what the therapist did); the claim carries
    the day's lines, so the note and the window say which sessions share it and what it bills.
    """
    others = [visit_text(v) for v in day.visits if v.session.id != session_id]
    billed = lines_text(day.result) or f"nothing billable ({day.nothing_billable})"
    provisional = " (provisional: a session of the day is still open)" if day.provisional else ""
    held = [p.session.id[:8] for p in day.problems if p.session.id != session_id]
    partial = (
        f" Until session {', '.join(held)} is corrected, its minutes are left out of them."
        if held
        else ""
    )
    message = (
        f"These codes are billed on one claim day with {len(others)} other session(s) of "
        f"{day.patient_ref} on {day.date_of_service.isoformat()} ({'; '.join(others)}): minutes "
        f"are pooled for the day (R1.2). The day's lines{provisional}: {billed}.{partial}"
    )
    warning = rules.RuleWarning("R1.2", message, rules.Severity.INFO, "Billed on a pooled day")
    return replace(
        result,
        warnings=(*result.warnings, warning),
        note=f"{result.note.rstrip()}\n\n{message}\n",
    )
