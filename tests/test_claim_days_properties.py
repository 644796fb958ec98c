"""Properties of claim days: a day's lines never depend on how its minutes fell into sessions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClock
from therapy_timer import billing, rules
from therapy_timer.codes import Discipline, FurnishedBy, Method, Role, builtin_catalogue
from therapy_timer.model import PayerProfile, Segment, Session, SessionStatus, UntimedService
from therapy_timer.stopwatch import RoundingPolicy, Stopwatch

CATALOGUE = builtin_catalogue()
CODES = ("97110", "97112", "97140", "97530", "97035", "97010")
DAY = date(2025, 3, 10)
START = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
PROFILES = (
    PayerProfile("Medicare", Method.CMS, assistant_modifiers=True),
    PayerProfile("Commercial (per-code)", Method.AMA, assistant_modifiers=False),
)

# A stretch of time: code, who furnished it, exact length in seconds (a second up to 25 min).
stretches = st.lists(
    st.tuples(st.sampled_from(CODES), st.sampled_from(list(FurnishedBy)), st.integers(1, 1500)),
    min_size=1,
    max_size=8,
)


def session(number: int, profile: PayerProfile) -> Session:
    return Session(
        id=f"s{number}",
        date_of_service=DAY,
        patient_ref="MRN100" if number % 2 else "mrn100",  # one patient, as the store compares
        clinician=f"Clin {number}",
        role=Role.PT,
        discipline=Discipline.PT,
        payer_profile=profile.name,
        status=SessionStatus.CLOSED,
        amended=False,
        exported=False,
        created_utc=START,
        closed_utc=START,
        pause=None,
    )


def day_rows(
    pieces: list[tuple[str, FurnishedBy, int]],
    untimed: list[tuple[int, FurnishedBy]],
    owners: list[int],
    untimed_owners: list[int],
    sessions: int,
    profile: PayerProfile,
    policy: RoundingPolicy,
) -> list[billing.SessionRows]:
    """The same stretches (laid end to end, in the same order) shared out among sessions."""
    segments: dict[int, list[Segment]] = {n: [] for n in range(sessions)}
    moment = START
    for index, ((code, by, seconds), owner) in enumerate(zip(pieces, owners, strict=True)):
        stop = moment + timedelta(seconds=seconds)
        exclusive = not CATALOGUE.get(code).supervised_modality
        segments[owner % sessions].append(
            Segment(f"g{index}", f"s{owner % sessions}", code, by, exclusive, moment, stop)
        )
        moment = stop + timedelta(minutes=1)
    clock = FakeClock(moment + timedelta(hours=1))
    services: dict[int, list[UntimedService]] = {n: [] for n in range(sessions)}
    for index, ((minutes, by), owner) in enumerate(zip(untimed, untimed_owners, strict=True)):
        services[owner % sessions].append(
            UntimedService(index, f"s{owner % sessions}", "97150", minutes, by, START)
        )
    return [
        billing.SessionRows(
            session(n, profile),
            Stopwatch.restore(CATALOGUE, clock, segments[n], session_id=f"s{n}", policy=policy),
            services[n],
            profile,
        )
        for n in range(sessions)
    ]


def billed(result: rules.Result) -> rules.Result:
    """Everything the day bills; the note also lists the sessions, and R8.2's warning is about
    them (group therapy recorded in several: ``group_gists``), so both are left out."""
    return replace(result, note="", warnings=tuple(w for w in result.warnings if w.rule != "R8.2"))


def group_gists(result: rules.Result) -> list[str]:
    return [w.gist for w in result.warnings if w.rule == "R8.2"]


@settings(max_examples=250, deadline=None)
@given(
    pieces=stretches,
    untimed=st.lists(st.tuples(st.integers(0, 60), st.sampled_from(list(FurnishedBy))), max_size=2),
    split=st.data(),
    sessions=st.integers(2, 4),
    profile=st.sampled_from(PROFILES),
    policy=st.sampled_from(list(RoundingPolicy)),
)
def test_a_days_lines_never_depend_on_how_its_minutes_are_split_into_sessions(
    pieces: list[tuple[str, FurnishedBy, int]],
    untimed: list[tuple[int, FurnishedBy]],
    split: st.DataObject,
    sessions: int,
    profile: PayerProfile,
    policy: RoundingPolicy,
) -> None:
    owners = split.draw(st.lists(st.integers(0, 3), min_size=len(pieces), max_size=len(pieces)))
    untimed_owners = split.draw(
        st.lists(st.integers(0, 3), min_size=len(untimed), max_size=len(untimed))
    )
    together = day_rows(pieces, untimed, [0] * len(pieces), [0] * len(untimed), 1, profile, policy)
    apart = day_rows(pieces, untimed, owners, untimed_owners, sessions, profile, policy)
    one = billing.evaluate_day(together, CATALOGUE, policy)
    many = billing.evaluate_day(apart, CATALOGUE, policy)
    assert billed(many) == billed(one)
    # Only whether group therapy (the untimed 97150s) was recorded in several sessions shows.
    recording = len({owner % sessions for owner in untimed_owners})
    assert group_gists(one) == []
    assert group_gists(many) == (
        [f"97150 in {recording} sessions: billed once"] if recording > 1 else []
    )
    # And one session's day is exactly that session's own answer (the summary's).
    (alone,) = together
    assert one == billing.evaluate(alone, CATALOGUE, policy)
    (day,) = billing.claim_days(apart, CATALOGUE, policy)
    assert day.session_ids == tuple(f"s{n}" for n in range(sessions))
    assert billed(day.result) == billed(one)


@settings(max_examples=200, deadline=None)
@given(pieces=stretches, policy=st.sampled_from(list(RoundingPolicy)))
def test_pooled_minutes_of_one_session_are_the_stopwatchs(
    pieces: list[tuple[str, FurnishedBy, int]], policy: RoundingPolicy
) -> None:
    (rows,) = day_rows(pieces, [], [0] * len(pieces), [], 1, PROFILES[0], policy)
    pooled = billing.pooled_input([(rows.stopwatch, [])], CATALOGUE, policy)
    assert pooled == rows.stopwatch.rules_input()
