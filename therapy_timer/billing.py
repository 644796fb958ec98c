"""Stored rows and the rounding policy become rules requests and answers, one or many at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from therapy_timer import rules
from therapy_timer.codes import Catalogue, FurnishedBy
from therapy_timer.errors import InvalidInput
from therapy_timer.model import PayerProfile, Segment, Session, UntimedService
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


@dataclass(frozen=True)
class SessionRows:
    """Everything the rules need about one session, as read from the store."""

    session: Session
    stopwatch: Stopwatch
    untimed: Sequence[UntimedService]
    profile: PayerProfile


def rules_input(
    stopwatch: Stopwatch, untimed: Sequence[UntimedService], catalogue: Catalogue
) -> RulesInput:
    """Minutes for ``rules.py``: the stopwatches plus untimed services entered by hand."""
    result = stopwatch.rules_input()
    for service in untimed:
        code = catalogue.get(service.code).code
        if code not in result.untimed:
            result.untimed.append(code)
        if service.minutes is None:
            continue
        result.untimed_minutes[code] = result.untimed_minutes.get(code, 0) + service.minutes
        if service.furnished_by is FurnishedBy.ASSISTANT:
            result.assistant_minutes[code] = result.assistant_minutes.get(code, 0) + service.minutes
    result.untimed.sort(key=catalogue.rank)
    return result


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
) -> rules.Result:
    """The rules' answer for one session under its payer profile.

    ``allocation`` picks one of the equally valid CMS allocations of a tie (R2.8); without it
    the choice stored with the session applies, else the rules' documented default.
    ``method`` overrides the payer's, to show what the other method would give;
    ``concurrent`` names patients whose timed minutes overlapped this session's (R8.3).
    """
    session, profile = rows.session, rows.profile
    minutes = rules_input(rows.stopwatch, rows.untimed, catalogue)
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
    notes = remarks(session, policy)
    result = None
    if allocation is None and session.allocation is not None:
        try:
            result = rules.evaluate(
                replace(request, allocation=session.allocation), catalogue, notes
            )
        except InvalidInput:
            # The minutes changed since the choice (an amendment): the old choice no longer
            # splits these units, so say so and fall back to the default.
            notes.append(STALE_ALLOCATION_REMARK)
    if result is None:
        result = rules.evaluate(request, catalogue, notes)
    if not concurrent:
        return result
    return replace(result, warnings=(*result.warnings, rules.concurrent_warning(concurrent)))


def concurrent_patients(
    sessions: Sequence[Session],
    segments: Mapping[str, Sequence[Segment]],
    catalogue: Catalogue,
    now: datetime,
) -> dict[str, tuple[str, ...]]:
    """Patient references whose timed minutes overlap each session's (same clinician, day: R8.3)."""
    groups: dict[tuple[str, date], list[Session]] = {}
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
                if catalogue.get(seg.code).timed
            ]
            for s in group
        }
        refs = {s.id: s.patient_ref for s in group}
        for session_id, others in rules.concurrent_sessions(spans).items():
            found[session_id] = tuple(sorted(refs[o] for o in others))
    return found


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
