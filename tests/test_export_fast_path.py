"""The clinic-year export's fast path (issue 13) bills exactly as the full path does.

The fast path sums a session's stopped segments without restoring a stopwatch
(``billing.stopped_totals``) and, for a CSV, takes the rules' answers without their note
(``rules.evaluate_without_note``, memoised). Here generated databases (amended, open,
paused and bad sessions, assistant minutes, overlapping sessions of one clinician (R8.3),
several plans of care and payers, untimed codes, times off the minute, dates under older
rules) are billed both ways: every claim day and the CSV must come out the same. A CSV writes
plain days (closed sessions of stopped segments the rules accept) from their answer without
building a ClaimDay; both kinds of day are checked against the full path.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClock
from therapy_timer import billing, rules
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Role, builtin_catalogue
from therapy_timer.model import PayerProfile, Segment, Session, SessionStatus, UntimedService
from therapy_timer.stopwatch import RoundingPolicy
from therapy_timer.store import Store

CATALOGUE = builtin_catalogue()
MUES = CATALOGUE.extended(
    replace(CATALOGUE.get(code), mue=mue)
    for code, mue in (("97110", 1), ("97140", 2), ("97530", 1))
)
"""A clinic's codes.toml giving MUEs low enough for generated days to exceed (R9.4)."""
DATES = (date(2019, 6, 3), date(2021, 5, 5), date(2025, 3, 10), date(2025, 3, 11))
"""Before CQ/CO, before the 2022 revision, and two days under today's rules."""
NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
CODES = ("97110", "97140", "97530", "97012", "97161", "97165", "97150", "97799")
"""Timed, a supervised modality, PT and OT evaluations, group, and one not in the catalogue."""
PAYERS = ("Medicare", "Commercial (per-code)", "No CQ")
PLUS_ONE = timezone(timedelta(hours=1))

segment = st.fixed_dictionaries(
    {
        # Now and then a code not in the catalogue, or a stretch longer than a day can hold.
        "code": st.sampled_from(CODES[:4] * 6 + CODES[4:]),
        "by": st.sampled_from(("therapist", "assistant", "together")),
        "offset": st.integers(0, 240 * 60_000_000),  # microseconds after the session's hour
        "length": st.integers(0, 19).flatmap(
            lambda n: st.integers(0, (1500 if n == 0 else 40) * 60_000_000)
        ),
    }
)
session = st.fixed_dictionaries(
    {
        "day": st.sampled_from(DATES[2:] * 3 + DATES[:2]),
        "patient": st.sampled_from(("AB", "MRN1", "mrn1", "MRN2")),
        "clinician": st.sampled_from(("Ann", "Bob")),
        "role": st.sampled_from(("PT", "PTA")),
        "discipline": st.sampled_from(("PT", "PT", "PT", "OT")),
        "payer": st.sampled_from(PAYERS[:1] * 4 + PAYERS[1:]),
        "state": st.sampled_from(("closed",) * 5 + ("open", "running", "paused")),
        "amended": st.booleans(),
        "exported": st.booleans(),
        "plus_one": st.integers(0, 9).map(lambda n: n == 0),  # times written at +01:00
        "allocation": st.none() | st.just({"97110": 1}),
        "segments": st.lists(segment, max_size=4),
        "untimed": st.lists(
            st.tuples(
                st.sampled_from(("97150", "97012", "97150", "97012", "97161")),
                st.none() | st.integers(0, 60),
                st.sampled_from(("therapist", "assistant")),
            ),
            max_size=2,
        ),
    }
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data: Path = tmp_path_factory.mktemp("fast") / "data"
    with Store.open(data, clock=FakeClock(NOW), actor="test") as opened:
        Clinic(opened, CATALOGUE, FakeClock(NOW)).add_payer_profile(
            "No CQ", "cms", assistant_modifiers=False
        )
        yield opened


def _moment(at: datetime, plus_one: bool) -> str:
    return (at.astimezone(PLUS_ONE) if plus_one else at).isoformat(timespec="microseconds")


def _load(store: Store, sessions: list[dict[str, object]]) -> None:
    """The generated sessions as rows, written as they are stored (raw SQL: any shape)."""
    conn = store._conn
    with conn:
        for table in ("untimed_services", "segments", "sessions"):
            conn.execute(f"DELETE FROM {table}")
        for n, s in enumerate(sessions):
            sid = f"{n:02d}" + "0" * 30
            day = s["day"]
            assert isinstance(day, date)
            hour = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13)
            state = s["state"]
            running = state == "running"
            segments = list(s["segments"])  # type: ignore[call-overload]
            plus_one = bool(s["plus_one"])
            conn.execute(
                "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role,"
                " discipline, payer_profile, status, amended, exported, created_utc,"
                " closed_utc, paused_utc, resume_json, allocation_json, open_duplicate)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sid,
                    day.isoformat(),
                    s["patient"],
                    s["clinician"],
                    s["role"],
                    s["discipline"],
                    s["payer"],
                    "closed" if state == "closed" else "open",
                    int(bool(s["amended"])),
                    int(bool(s["exported"])),
                    _moment(hour + timedelta(microseconds=n), plus_one),
                    _moment(hour + timedelta(hours=5), plus_one) if state == "closed" else None,
                    _moment(hour + timedelta(hours=4), plus_one) if state == "paused" else None,
                    json.dumps([{"code": "97110", "furnished_by": "therapist"}])
                    if state == "paused"
                    else "[]",
                    None if s["allocation"] is None else json.dumps(s["allocation"]),
                    n,  # open sessions of one patient may repeat here
                ],
            )
            running_codes: set[str] = set()
            for k, g in enumerate(segments):
                start = hour + timedelta(microseconds=g["offset"])
                exclusive = g["code"] not in ("97012",)
                stop: str | None = _moment(start + timedelta(microseconds=g["length"]), plus_one)
                last = k == len(segments) - 1
                if running and last and g["code"] not in running_codes:
                    stop = None
                    running_codes.add(g["code"])
                conn.execute(
                    "INSERT INTO segments (id, session_id, code, furnished_by, exclusive,"
                    " start_utc, stop_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        f"{sid}-{k}",
                        sid,
                        g["code"],
                        g["by"],
                        int(exclusive),
                        _moment(start, plus_one),
                        stop,
                    ],
                )
            for code, minutes, by in s["untimed"]:  # type: ignore[attr-defined]
                conn.execute(
                    "INSERT INTO untimed_services (session_id, code, minutes, furnished_by,"
                    " created_utc) VALUES (?, ?, ?, ?, ?)",
                    [sid, code, minutes, by, _moment(hour, False)],
                )


def _without_note(day: billing.ClaimDay) -> billing.ClaimDay:
    return replace(day, result=replace(day.result, note=""))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sessions=st.lists(session, min_size=1, max_size=12),
    policy=st.sampled_from(list(RoundingPolicy)),
    catalogue=st.sampled_from((CATALOGUE, MUES)),
)
def test_the_fast_export_bills_every_day_as_the_full_path_does(
    store: Store, sessions: list[dict[str, object]], policy: RoundingPolicy, catalogue: Catalogue
) -> None:
    _assert_fast_is_full(store, sessions, policy, catalogue)


paired_segment = segment | st.fixed_dictionaries(
    {
        "code": st.sampled_from(("97750", "97760", "97110", "97150")),
        "by": st.sampled_from(("therapist", "assistant", "together")),
        "offset": st.integers(0, 240 * 60_000_000),
        "length": st.integers(8 * 60_000_000, 40 * 60_000_000),
    }
)
one_patients_date = st.fixed_dictionaries(
    {
        "day": st.just(DATES[3]),
        "patient": st.just("MRN1"),
        "clinician": st.sampled_from(("Ann", "Bob")),
        "role": st.sampled_from(("PT", "PTA", "OT", "OTA")),
        "discipline": st.sampled_from(("PT", "OT")),
        "payer": st.sampled_from(PAYERS[:2]),
        "state": st.sampled_from(("closed",) * 5 + ("open",)),
        "amended": st.booleans(),
        "exported": st.booleans(),
        "plus_one": st.just(False),
        "allocation": st.none(),
        "segments": st.lists(paired_segment, max_size=2),
        "untimed": st.lists(
            st.tuples(
                st.sampled_from(("97150", "97161", "97165", "97164", "97168", "97012")),
                st.none() | st.integers(0, 60),
                st.sampled_from(("therapist", "assistant")),
            ),
            max_size=2,
        ),
    }
)
"""Sessions of one patient on one date: PT and OT plans of care, two payers, codes NCCI
pairs across plans (R9.3: 97750/97760 beside an evaluation or re-evaluation), group therapy
in two sessions (R8.2), timed codes at once in two sessions (R8.1)."""


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sessions=st.lists(one_patients_date, min_size=2, max_size=5),
    policy=st.sampled_from(list(RoundingPolicy)),
    catalogue=st.sampled_from((CATALOGUE, MUES)),
)
def test_the_fast_export_bills_one_patients_date_as_the_full_path_does(
    store: Store, sessions: list[dict[str, object]], policy: RoundingPolicy, catalogue: Catalogue
) -> None:
    _assert_fast_is_full(store, sessions, policy, catalogue)


def _assert_fast_is_full(
    store: Store, sessions: list[dict[str, object]], policy: RoundingPolicy, catalogue: Catalogue
) -> None:
    """``sessions`` billed the full way, from summed segments and by the CSV: the same."""
    _load(store, sessions)
    clinic = Clinic(store, catalogue, FakeClock(NOW), policy=policy)
    first, last = DATES[0], DATES[-1]
    # The full path: every session's stopwatch restored, every answer with its note.
    with mock.patch.object(billing, "stopped_totals", return_value=None):
        full = list(clinic.iter_claim_days(first, last))
    assert full, "every generated session belongs to a claim day"
    # Summed stopped segments give the same days, notes included (the day view's path).
    assert list(clinic.iter_claim_days(first, last)) == full
    # The CSV's path: no note, answers memoised; everything else the same.
    fast = list(clinic.iter_claim_days(first, last, note=False))
    assert [_without_note(d) for d in fast] == [_without_note(d) for d in full]
    exported = clinic.export("csv", first, last, include_open=True, mark=False).text
    assert exported == ex.report_text(full, "csv")


def _plain(**changes: object) -> dict[str, object]:
    """A closed session of 97110 23 min and 97140 9 min on the last date, changed as told."""
    made: dict[str, object] = {
        "day": DATES[3],
        "patient": "MRN1",
        "clinician": "Ann",
        "role": "PT",
        "discipline": "PT",
        "payer": "Medicare",
        "state": "closed",
        "amended": False,
        "exported": False,
        "plus_one": False,
        "allocation": None,
        "segments": [
            {"code": "97110", "by": "therapist", "offset": 0, "length": 23 * 60_000_000},
            {"code": "97140", "by": "assistant", "offset": 0, "length": 9 * 60_000_000},
        ],
        "untimed": [],
    }
    return {**made, **changes}


def _later(session: dict[str, object], minutes: int = 60) -> list[dict[str, object]]:
    """``session``'s segments, ``minutes`` later."""
    listed: list[dict[str, object]] = session["segments"]  # type: ignore[assignment]
    return [{**g, "offset": g["offset"] + minutes * 60_000_000} for g in listed]  # type: ignore[operator]


def test_a_csv_writes_plain_days_from_their_answer_and_the_rest_as_claim_days(
    store: Store,
) -> None:
    """Plain days (closed, stopped, no tie choice stored, accepted by the rules) are written
    from the cells of the rules' answer, asked once for all days asking the same, without a
    ClaimDay; open, running, paused, tie-chosen and refused ones go the full way, in the same
    places: the CSV is what csv_rows writes of the full path's days."""
    _load(
        store,
        [
            _plain(),  # pooled with the next: one plain day of two sessions
            # An hour later: Bob timing MRN1 while Ann did is R8.1's day, not a plain one.
            _plain(clinician="Bob", amended=True, exported=True, segments=_later(_plain())),
            _plain(patient="MRN2", state="running"),
            _plain(patient="AB", allocation={"97110": 1}),  # overlaps Ann's MRN1 (R8.3)
            _plain(day=DATES[2], payer="No CQ", discipline="OT", state="paused"),
            _plain(day=DATES[2], segments=[]),  # nothing billable
            _plain(day=DATES[1], segments=[{**_plain()["segments"][0], "code": "97799"}]),  # type: ignore[index]
            _plain(day=DATES[0], exported=True, untimed=[("97012", None, "therapist")]),
            # Two days asking the same question (same minutes, payer, year's rules, no R8.3).
            _plain(day=DATES[2], patient="MRN4", clinician="Cat"),
            _plain(day=DATES[3], patient="MRN5", clinician="Cat"),
        ],
    )
    clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
    first, last = DATES[0], DATES[-1]
    requests: list[rules.Request | None] = []
    answers: list[rules.Result | None] = []
    real_request, real_answer = billing.plain_request, billing.plain_answer

    def plain_request(*args: object, **kwargs: object) -> rules.Request | None:
        requests.append(real_request(*args, **kwargs))  # type: ignore[arg-type]
        return requests[-1]

    def plain_answer(*args: object, **kwargs: object) -> rules.Result | None:
        answers.append(real_answer(*args, **kwargs))  # type: ignore[arg-type]
        return answers[-1]

    with mock.patch.object(billing, "stopped_totals", return_value=None):
        full = list(clinic.iter_claim_days(first, last))
    with (
        mock.patch.object(billing, "plain_request", plain_request),
        mock.patch.object(billing, "plain_answer", plain_answer),
    ):
        exported = clinic.export("csv", first, last, include_open=True, mark=False).text
    assert exported == ex.report_text(full, "csv")
    assert len(full) == 9
    # MRN5's day, one session asking what MRN4's asked, is found by its plain_key alone.
    assert len(requests) == 8
    plain = [r for r in requests if r is not None]
    assert len(plain) == 4  # MRN1's day, nothing billable, 97012 alone, MRN4's
    assert len(answers) == 4 and None not in answers
    assert any(w.rule == "R8.3" for a in answers if a is not None for w in a.warnings)


def test_an_untimed_service_of_a_code_the_catalogue_dropped_is_an_error_row_not_a_crash(
    store: Store,
) -> None:
    """A closed session of stopped segments whose untimed service names a code no longer in
    the catalogue (the clinic's codes.toml dropped it) is refused by the rules alone: the
    CSV gives its error row and bills the rest of the day, as the full path does, and marks
    what the full path marks."""
    _load(
        store,
        [
            _plain(untimed=[("97799", 10, "therapist")]),
            _plain(clinician="Bob"),
            _plain(patient="MRN2", untimed=[("97799", None, "assistant")]),
        ],
    )
    clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
    first, last = DATES[0], DATES[-1]
    with mock.patch.object(billing, "stopped_totals", return_value=None):
        full = list(clinic.iter_claim_days(first, last))
    assert [len(d.problems) for d in full] == [1, 1]
    exported = clinic.export("csv", first, last, mark=True)
    assert exported.text == ex.report_text(full, "csv")
    assert exported.marked == 1  # Bob's session: the day billed without Ann's
    assert [s.patient_ref for s in store.list_sessions(start=first, end=last) if s.exported] == [
        "MRN1"
    ]


def test_a_plain_days_own_cells_come_from_the_day_not_from_the_answer_it_shares(
    tmp_path: Path,
) -> None:
    """Plain days asking one question share their answer's cells; what differs from day to
    day must not: R8.3's flag (the same question asked with and without an overlap), the
    clinicians (one listed once for two of their sessions) and the status (a day changed
    after its export)."""
    later = {**_plain()["segments"][0], "offset": 60 * 60_000_000}  # type: ignore[index]
    with Store.open(tmp_path / "data", clock=FakeClock(NOW), actor="test") as store:
        clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
        clinic.add_payer_profile("No CQ", "cms", assistant_modifiers=False)
        _load(
            store,
            [
                _plain(day=DATES[2]),  # the question alone
                _plain(),  # the same question, overlapping AB's (R8.3)
                _plain(patient="AB"),
                _plain(patient="MRN2", clinician="Bob"),  # Bob's two sessions, one day
                _plain(patient="MRN2", clinician="Bob", segments=[later]),
                _plain(day=DATES[1], patient="MRN4", clinician="Cat"),
            ],
        )
        (moved,) = [s for s in store.list_sessions(day=DATES[1])]
        clinic.mark_exported([moved.id])
        clinic.change_payer(moved.id, "No CQ", reason="the wrong payer was chosen")
        first, last = DATES[0], DATES[-1]
        with mock.patch.object(billing, "stopped_totals", return_value=None):
            full = list(clinic.iter_claim_days(first, last))
        billed_in_full: list[billing.ClaimDay] = []
        real_days = billing.claim_days

        def claim_days(*args: object, **kwargs: object) -> Iterator[billing.ClaimDay]:
            for day in real_days(*args, **kwargs):  # type: ignore[arg-type]
                billed_in_full.append(day)
                yield day

        with mock.patch.object(billing, "claim_days", claim_days):
            exported = clinic.export("csv", first, last, mark=False).text
    assert len(full) == 5 and not billed_in_full  # every day plain
    assert exported == ex.report_text(full, "csv")
    assert exported is not None
    rows = list(csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline="")))
    flagged = {(r["date_of_service"], r["patient_ref"]): "R8.3" in r["warnings"] for r in rows}
    assert flagged[(DATES[2].isoformat(), "MRN1")] is False
    assert flagged[(DATES[3].isoformat(), "MRN1")] is flagged[(DATES[3].isoformat(), "AB")] is True
    assert {r["clinicians"] for r in rows if r["patient_ref"] == "MRN2"} == {"Bob (PT)"}
    assert {r["status"] for r in rows if r["patient_ref"] == "MRN4"} == {"amended after export"}


def test_a_clinicians_csv_is_the_full_paths_and_marks_their_days_whole(tmp_path: Path) -> None:
    """``--clinician`` on the fast path: the days that clinician saw the patient, billed and
    marked whole (Bob's session of Ann's day too), and nobody else's; a pooled day written
    under its first session's reference and flagged for R8.3 by its second session alone
    (Bob's MRN1 visit overlaps his MRN2 one)."""
    at_two = {**_plain()["segments"][0], "offset": 60 * 60_000_000}  # type: ignore[index]
    with Store.open(tmp_path / "data", clock=FakeClock(NOW), actor="test") as store:
        clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
        _load(
            store,
            [
                _plain(),
                _plain(patient="mrn1", clinician="Bob", segments=[at_two]),
                _plain(patient="MRN2", clinician="Bob", segments=[at_two]),
            ],
        )
        first, last = DATES[0], DATES[-1]
        for clinician in ("Ann", "Bob"):
            with mock.patch.object(billing, "stopped_totals", return_value=None):
                full = list(clinic.iter_claim_days(first, last, clinician=clinician))
            preview = clinic.export("csv", first, last, clinician=clinician, mark=False).text
            assert preview == ex.report_text(full, "csv")
        assert preview is not None
        rows = list(csv.DictReader(io.StringIO(preview.removeprefix("\ufeff"), newline="")))
        assert {(r["patient_ref"], "R8.3" in r["warnings"]) for r in rows} == {
            ("MRN1", True),
            ("MRN2", True),
        }
        clinic.export("csv", first, last, clinician="Ann", out=tmp_path / "ann.csv")
        listed = store.list_sessions(start=first, end=last)
        assert [(s.patient_ref, s.exported) for s in listed] == [
            ("MRN1", True),
            ("mrn1", True),
            ("MRN2", False),
        ]


def test_a_pooled_days_r83_flag_in_its_memo_is_any_of_its_sessions(tmp_path: Path) -> None:
    """The memo of a plain day's cells is keyed by whether R8.3 flags the day, and a pooled
    day is flagged when any of its sessions is: a day flagged by its second session alone
    (Bob's MRN1 visit overlaps his MRN2 one) and a later one asking the same without an
    overlap (Cat's two visits) must not share their cells."""
    late = [
        {**s, "offset": 60 * 60_000_000}
        for s in _plain()["segments"]  # type: ignore[attr-defined]
    ]
    with Store.open(tmp_path / "data", clock=FakeClock(NOW), actor="test") as store:
        clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
        _load(
            store,
            [
                _plain(day=DATES[2]),
                _plain(day=DATES[2], patient="mrn1", clinician="Bob", segments=late),
                _plain(day=DATES[2], patient="MRN2", clinician="Bob", segments=late),
                _plain(patient="MRN3", clinician="Cat"),
                _plain(patient="MRN3", clinician="Cat", segments=late),
            ],
        )
        first, last = DATES[0], DATES[-1]
        with mock.patch.object(billing, "stopped_totals", return_value=None):
            full = list(clinic.iter_claim_days(first, last))
        exported = clinic.export("csv", first, last, mark=False).text
    assert exported == ex.report_text(full, "csv")
    assert exported is not None
    rows = list(csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline="")))
    assert {(r["patient_ref"], "R8.3" in r["warnings"]) for r in rows} == {
        ("MRN1", True),
        ("MRN2", True),
        ("MRN3", False),
    }


def test_a_days_visit_times_are_its_earliest_start_and_latest_stop(store: Store) -> None:
    """Segments are read in the order their stored start sorts, which is not the order in
    time when offsets differ, and a long early segment can outlast a later one: a visit's
    times are the earliest start and the latest stop all the same (the day view, JSON, PDF)."""
    _load(store, [_plain(day=DATES[3], segments=[])])
    (session,) = store.list_sessions(day=DATES[3])
    hour = datetime.combine(DATES[3], datetime.min.time(), UTC) + timedelta(hours=13)
    stored = [  # start, minutes, offset: listed as 13:00Z, 13:50+01, 14:10+01
        (hour, 60, UTC),
        (hour - timedelta(minutes=10), 2, PLUS_ONE),
        (hour + timedelta(minutes=10), 5, PLUS_ONE),
    ]
    with store._conn as conn:
        for k, (start, minutes, zone) in enumerate(stored):
            conn.execute(
                "INSERT INTO segments (id, session_id, code, furnished_by, exclusive,"
                " start_utc, stop_utc) VALUES (?, ?, '97110', 'therapist', 1, ?, ?)",
                [
                    f"{session.id}-{k}",
                    session.id,
                    start.astimezone(zone).isoformat(),
                    (start + timedelta(minutes=minutes)).astimezone(zone).isoformat(),
                ],
            )
    clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
    (day,) = clinic.claim_days(DATES[3])
    assert (day.time_in, day.time_out) == (hour - timedelta(minutes=10), hour + timedelta(hours=1))


def test_a_stop_before_its_start_in_utc_is_an_error_row_not_minutes_taken_off(
    store: Store,
) -> None:
    """The schema compares stored times as text, so a start written with a space for the 'T'
    (as another program may) lets a stop before it in. Summed as it is, the stretch would take
    its minutes off the session's others; the session is an error row, as restoring its
    stopwatch makes it."""
    _load(store, [_plain(), _plain(patient="MRN2")])
    session, _other = store.list_sessions(day=DATES[3])
    start = datetime.combine(DATES[3], datetime.min.time(), UTC) + timedelta(hours=15)
    with store._conn as conn:
        conn.execute(
            "INSERT INTO segments (id, session_id, code, furnished_by, exclusive, start_utc,"
            " stop_utc) VALUES (?, ?, '97110', 'therapist', 1, ?, ?)",
            [
                f"{session.id}-back",
                session.id,
                start.isoformat(sep=" "),
                (start - timedelta(minutes=10)).isoformat(),
            ],
        )
    clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
    with mock.patch.object(billing, "stopped_totals", return_value=None):
        full = list(clinic.iter_claim_days(DATES[3]))
    assert [[p.session.id for p in d.problems] for d in full] == [[session.id], []]
    exported = clinic.export("csv", DATES[3], mark=False).text
    assert exported == ex.report_text(full, "csv")


def test_an_assistants_time_of_a_code_is_summed_over_its_segments_on_the_fast_path(
    store: Store,
) -> None:
    """A closed session's assistant time of one code in two segments (2 and 2 minutes of
    97110 after the therapist's 6) is summed before it is rounded, on the CSV's path as on
    the full one: 4 of 10 minutes make the unit CQ, where either segment alone would not.
    The generated sessions above seldom hold two such segments whose sum changes the answer:
    a sum that kept only a code's last assistant segment passed them."""
    minute = 60_000_000
    therapist = {"code": "97110", "by": "therapist", "offset": 0, "length": 6 * minute}
    helped = [
        {"code": "97110", "by": "assistant", "offset": start * minute, "length": 2 * minute}
        for start in (6, 8)
    ]
    _load(store, [_plain(segments=[therapist, *helped])])
    clinic = Clinic(store, CATALOGUE, FakeClock(NOW))
    with mock.patch.object(billing, "stopped_totals", return_value=None):
        full = list(clinic.iter_claim_days(DATES[3]))
    assert [(n.code, n.modifiers, n.units) for d in full for n in d.result.lines] == [
        ("97110", ("GP", "CQ"), 1)
    ]
    exported = clinic.export("csv", DATES[3], mark=False).text
    assert exported == ex.report_text(full, "csv")


ASKED = rules.Request(
    method=rules.Method.CMS,
    discipline=Discipline.PT,
    timed={"97110": 23, "97140": 9},
    assistant_minutes={"97110": 12},
    date_of_service=date(2025, 3, 10),
)
"""A CMS request with an assistant's share, for the tests of an answer's reuse."""


def test_an_answer_without_its_note_is_the_answer_under_each_dates_rules() -> None:
    """The memo answers for every date alike only where the same rules apply."""
    for day in (*DATES, date(2019, 12, 31), date(2020, 1, 1), date(2022, 1, 1), None):
        request = replace(ASKED, date_of_service=day)
        full = rules.evaluate(request, CATALOGUE, ["a remark"])
        assert rules.evaluate_without_note(request, CATALOGUE) == replace(full, note="")


PROFILES = {
    "Medicare": PayerProfile("Medicare", rules.Method.CMS, True),
    "Commercial (per-code)": PayerProfile("Commercial (per-code)", rules.Method.AMA, True),
    "No CQ": PayerProfile("No CQ", rules.Method.CMS, False),
}
alone = st.fixed_dictionaries(
    {
        "day": st.sampled_from(DATES),
        "discipline": st.sampled_from(("PT", "OT")),
        "payer": st.sampled_from(tuple(PROFILES)),
        # Not plain: open, a tie choice stored, an untimed service entered by hand.
        "kind": st.sampled_from(("plain",) * 6 + ("open", "allocation", "untimed")),
        # Who furnished each of the example's stretches, and how far past its whole minutes
        # it ran: on the minute, just under and over half a minute, just under a minute.
        "by": st.lists(
            st.sampled_from(("therapist", "assistant", "together")), min_size=3, max_size=3
        ),
        "micros": st.lists(
            st.sampled_from((0, 29_999_999, 30_000_000, 59_999_999)), min_size=3, max_size=3
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    # Each example's days share codes and whole minutes (two timed codes and an untimed one,
    # about the edges of a unit), so that many of them ask the same or nearly the same.
    stretches=st.lists(
        st.tuples(st.sampled_from(("97110", "97140", "97012")), st.sampled_from((0, 7, 8, 22))),
        max_size=3,
    ),
    days=st.lists(alone, min_size=2, max_size=24),
    policy=st.sampled_from(list(RoundingPolicy)),
)
def test_a_one_session_days_plain_key_asks_what_its_request_asks(
    stretches: list[tuple[str, int]], days: list[dict[str, Any]], policy: RoundingPolicy
) -> None:
    """``billing.plain_key`` (the CSV's memo of a day of one closed session, made from its
    summed times) holds exactly what ``plain_request`` and ``rules.answer_key`` make of the
    day: equal keys ask the same question (else a day would be written with another's
    lines), and the same question has one key (else the memo would ask again); a day that
    is not plain, or has an untimed service entered by hand, has none. A memo of these keys
    serves one catalogue: under a clinic's MUEs (R9.4) equal keys get equal answers, and
    each is the full answer's."""
    keys: dict[object, object] = {}
    questions: dict[object, object] = {}
    answers: dict[object, object] = {}
    for n, made in enumerate(days):
        start = datetime.combine(made["day"], datetime.min.time(), UTC) + timedelta(hours=13)
        times = []
        for (code, minutes), by, micros in zip(stretches, made["by"], made["micros"], strict=False):
            stop = start + timedelta(minutes=minutes, microseconds=micros)
            times.append((code, FurnishedBy(by), start, stop))
            start = stop
        totals = billing.stopped_totals(times, CATALOGUE, policy, {})
        assert totals is not None
        kind = made["kind"]
        session = Session(
            f"{n:032d}",
            made["day"],
            "MRN1",
            "Ann",
            Role.PT,
            Discipline(made["discipline"]),
            made["payer"],
            SessionStatus.OPEN if kind == "open" else SessionStatus.CLOSED,
            False,
            False,
            start,
            None if kind == "open" else start,
            None,
            {"97110": 1} if kind == "allocation" else None,
        )
        untimed = (
            [UntimedService(n, session.id, "97150", 15, FurnishedBy.THERAPIST, start)]
            if kind == "untimed"
            else []
        )
        row = billing.SessionRows(session, totals, untimed, PROFILES[made["payer"]])
        key = billing.plain_key(row)
        if kind != "plain":
            assert key is None
            continue
        request = billing.plain_request([row], CATALOGUE, policy)
        assert key is not None and request is not None
        question = rules.answer_key(request)
        assert keys.setdefault(key, question) == question
        assert questions.setdefault(question, key) == key
        answer = billing.plain_answer(request, MUES, [])
        assert answer is not None
        full = rules.evaluate(request, MUES)
        assert answer == replace(full, note="")
        undated = replace(answer, date_of_service=None)
        assert answers.setdefault(key, undated) == undated


span = st.tuples(st.integers(0, 600), st.none() | st.integers(0, 60))


@settings(max_examples=300, deadline=None)
@given(
    sessions=st.lists(
        st.tuples(
            st.sampled_from(("Ann", "Bob")),
            st.lists(st.tuples(span, st.sampled_from(CODES)), max_size=3),
        ),
        max_size=8,
    )
)
def test_overlapping_patients_are_those_found_by_checking_every_pair(
    sessions: list[tuple[str, list[tuple[tuple[int, int | None], str]]]],
) -> None:
    """R8.3 checks pairs only among sessions whose first start to last stop overlap; what it
    finds must be what checking every pair of a clinician's day finds."""
    hour = datetime(2025, 3, 10, 13, tzinfo=UTC)
    now = hour + timedelta(minutes=630)
    listed, segments = [], {}
    for n, (clinician, spans) in enumerate(sessions):
        sid = f"s{n}"
        listed.append(
            Session(
                sid,
                DATES[2],
                f"P{n}",
                clinician,
                Role.PT,
                Discipline.PT,
                "Medicare",
                SessionStatus.CLOSED,
                False,
                False,
                hour,
                None,
                None,
            )
        )
        segments[sid] = [
            Segment(
                f"{sid}-{k}",
                sid,
                code,
                FurnishedBy.THERAPIST,
                True,
                hour + timedelta(minutes=start),
                None if length is None else hour + timedelta(minutes=start + length),
            )
            for k, ((start, length), code) in enumerate(spans)
        ]
    expected: dict[str, tuple[str, ...]] = {}
    for clinician in ("Ann", "Bob"):
        theirs = [s for s in listed if s.clinician == clinician]
        every = {
            s.id: [
                (g.start_utc, g.stop_utc or now)
                for g in segments[s.id]
                if g.code in CATALOGUE and CATALOGUE.get(g.code).timed
            ]
            for s in theirs
        }
        for sid, mine in every.items():  # every pair of intervals, by R8.3's definition
            others = [
                o
                for o, theirs in every.items()
                if o != sid and any(a0 < b1 and b0 < a1 for a0, a1 in mine for b0, b1 in theirs)
            ]
            if others:
                expected[sid] = tuple(sorted(f"P{o[1:]}" for o in others))
    times = {sid: [billing.segment_times(g) for g in listed] for sid, listed in segments.items()}
    assert billing.concurrent_patients(listed, times, CATALOGUE, now) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.text(alphabet=st.sampled_from(',"\r\n\t a=é\u00a0'), max_size=4), max_size=5),
        max_size=4,
    )
)
def test_csv_lines_are_what_the_csv_writer_writes(rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    assert "".join(ex.csv_lines(rows)) == out.getvalue()


hostile = st.text(alphabet=st.sampled_from(',"\r\n\t a=é\u00a0;'), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    day=st.lists(hostile, min_size=6, max_size=6),
    lines=st.lists(st.tuples(hostile, hostile, st.just("2"), st.just("23")), max_size=3),
    why=st.none() | hostile,
)
def test_a_days_lines_are_what_the_csv_writer_writes_of_its_rows(
    day: list[str], lines: list[tuple[str, str, str, str]], why: str | None
) -> None:
    ref, payer, clinicians, billed, warnings, remark = day
    texts = tuple(",".join(cells) for cells in lines)
    clean = not any(c in "".join(x for cells in lines for x in cells) for c in ',"\r\n')
    answer = ex.AnswerCells(tuple(lines), "31", "40", warnings, texts if clean else None)
    common = ["2025-03-10", ref, "PT", payer]
    tail = ["31", "40", clinicians, billed, "no", warnings, "closed"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in ex.day_rows(common, answer, tail, remark, why):
        writer.writerow(row)
    with mock.patch.object(ex, "csv_lines", wraps=ex.csv_lines) as writer_used:
        assert "".join(ex.day_lines(common, answer, tail, remark, why)) == out.getvalue()
    # Only a day with a cell to quote goes row by row.
    needs_quotes = any(
        c in "".join([*day, *(x for cells in lines for x in cells)]) for c in ',"\r\n'
    )
    assert writer_used.called == needs_quotes


def test_an_answers_line_texts_are_its_cells_joined_or_none_when_one_needs_quotes() -> None:
    result = rules.evaluate(ASKED, CATALOGUE)
    answer = ex.answer_cells(result)
    minutes = {c.code: c.minutes for c in result.codes}
    assert answer.line_texts == tuple(
        f"{line.code},{' '.join(line.modifiers)},{line.units},{minutes[line.code]}"
        for line in result.lines
    )
    assert len(answer.line_texts) == 2
    # A code needing quotes (a clinic's own catalogue cannot name one; the writer still could).
    line, code = result.lines[0], result.codes[0]
    odd = replace(
        result, lines=(replace(line, code='97"110'),), codes=(replace(code, code='97"110'),)
    )
    assert ex.answer_cells(odd).line_texts is None
    assert ex.answer_cells(odd).lines[0][0] == '97"110'


def test_a_patients_plain_claim_days_of_one_date_are_held_to_the_mue_summed(
    store: Store,
) -> None:
    """R9.4 across claims: MRN1's PT and OT days, plain alone, bill 97110 x 1 each against a
    MUE of 1, and each carries the warning of the units summed, which no plain answer has;
    the CSV writes them as the full path does (they leave the plain-day path). MRN2's one
    day, the same question, stays plain and unwarned; without MUEs nothing changes."""
    _load(store, [_plain(), _plain(discipline="OT", role="OT"), _plain(patient="MRN2")])
    first, last = DATES[0], DATES[-1]
    for catalogue, warned in ((MUES, [True, True, False]), (CATALOGUE, [False] * 3)):
        clinic = Clinic(store, catalogue, FakeClock(NOW))
        full = list(clinic.iter_claim_days(first, last))
        assert [any(w.rule == "R9.4" for w in d.result.warnings) for d in full] == warned
        exported = clinic.export("csv", first, last, mark=False).text
        assert exported == ex.report_text(full, "csv")
