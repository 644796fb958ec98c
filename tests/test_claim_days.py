"""Claim days (R1.2): every session of a patient, date, plan of care and payer billed as one."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fakes import FakeClock
from therapy_timer import billing, rules
from therapy_timer import export as ex
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Discipline, FurnishedBy, Role, builtin_catalogue
from therapy_timer.errors import InvalidInput
from therapy_timer.model import Session
from therapy_timer.stopwatch import RoundingPolicy
from therapy_timer.store import Store

CATALOGUE = builtin_catalogue()
T, A = FurnishedBy.THERAPIST, FurnishedBy.ASSISTANT
COMMERCIAL = "Commercial (per-code)"


@dataclass(frozen=True)
class Stretch:
    code: str
    minutes: float
    by: FurnishedBy = T


def visit(
    clinic: Clinic,
    clock: FakeClock,
    stretches: Sequence[Stretch],
    *,
    ref: str = "MRN100",
    clinician: str = "Ann",
    role: Role = Role.PT,
    payer: str = "Medicare",
    discipline: Discipline | None = None,
    close: bool = True,
    gap_hours: float = 1,
) -> Session:
    """One session: each stretch timed in turn, then (by default) closed; time moves on."""
    session = clinic.open_session(
        patient_ref=ref, clinician=clinician, role=role, payer_profile=payer, discipline=discipline
    )
    for stretch in stretches:
        clinic.start(session.id, stretch.code, stretch.by)
        clock.advance(minutes=stretch.minutes)
    if close:
        clinic.end_session(session.id)
    else:
        clinic.stop(session.id)
    clock.advance(minutes=gap_hours * 60)
    return clinic.get_session(session.id)


def pooled_by_hand(store: Store, sessions: Sequence[Session]) -> rules.Result:
    """The oracle: sum each code's seconds over the sessions' stored segments, floor once
    (the clinic rounds down by default), and ask the rules engine directly."""
    seconds: dict[str, float] = {}
    assistant: dict[str, float] = {}
    for session in sessions:
        for segment in store.segments(session.id):
            assert segment.stop_utc is not None
            length = (segment.stop_utc - segment.start_utc).total_seconds()
            seconds[segment.code] = seconds.get(segment.code, 0) + length
            if segment.furnished_by is A:
                assistant[segment.code] = assistant.get(segment.code, 0) + length
    timed = {code: int(s // 60) for code, s in seconds.items()}
    # The assistant's share is what is left after the therapist's whole minutes.
    helped = {
        code: timed[code] - min(timed[code], int((seconds[code] - assistant.get(code, 0)) // 60))
        for code in timed
    }
    first = sessions[0]
    profile = store.get_payer_profile(first.payer_profile)
    return rules.evaluate(
        rules.Request(
            method=profile.method,
            discipline=first.discipline,
            timed=timed,
            assistant_minutes={c: m for c, m in helped.items() if m},
            date_of_service=first.date_of_service,
            assistant_modifiers=profile.assistant_modifiers,
        ),
        CATALOGUE,
    )


def lines(result: rules.Result) -> list[tuple[str, int, tuple[str, ...]]]:
    return [(ln.code, ln.units, ln.modifiers) for ln in result.lines]


def the_days(clinic: Clinic, clock: FakeClock) -> list[billing.ClaimDay]:
    return clinic.claim_days(clock.now().astimezone().date())


# -- the table ----------------------------------------------------------------------------------


CASES = {
    # The first example: 10 minutes at 09:00 and 10 at 14:00 are 20 minutes, 1 unit.
    "two sessions, one code": (
        [[Stretch("97110", 10)], [Stretch("97110", 10)]],
        [("97110", 1, ("GP",))],
    ),
    # 5 + 5 minutes of two codes in two sessions: 10 minutes, 1 unit (per session: 0 + 0).
    "two sessions, two codes": (
        [[Stretch("97110", 5)], [Stretch("97140", 5)]],
        [("97110", 1, ("GP",))],
    ),
    "three sessions": (
        [[Stretch("97110", 8)], [Stretch("97110", 8)], [Stretch("97140", 8)]],
        [("97110", 1, ("GP",)), ("97140", 1, ("GP",))],
    ),
    # Seconds pooled before rounding: 7:40 + 7:40 is 15 minutes (per session 7 + 7 = 14).
    "seconds pooled, rounded once": (
        [[Stretch("97110", 7 + 40 / 60)], [Stretch("97110", 7 + 40 / 60)]],
        [("97110", 1, ("GP",))],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_claim_day_bills_the_pooled_minutes(
    name: str, clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    sessions_stretches, expected = CASES[name]
    sessions = [visit(clinic, clock, stretches) for stretches in sessions_stretches]
    (day,) = the_days(clinic, clock)
    assert day.session_ids == tuple(s.id for s in sessions)
    assert day.pooled and not day.provisional and day.status == "closed"
    assert lines(day.result) == expected
    assert lines(day.result) == lines(pooled_by_hand(store, sessions))
    assert "pooled before units were computed (R1.2)" in day.result.note


def test_pt_in_the_morning_and_pta_in_the_afternoon_pool_assistant_minutes(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    # PT 10 minutes, PTA 20 minutes of 97110: 30 minutes, 2 units; the assistant furnished
    # 20 of them, so CQ follows R7.6 on the day, not on either session alone.
    morning = visit(clinic, clock, [Stretch("97110", 10)], gap_hours=5)
    afternoon = visit(clinic, clock, [Stretch("97110", 20, A)], clinician="Bo", role=Role.PTA)
    (day,) = the_days(clinic, clock)
    assert day.clinicians == ("Ann (PT)", "Bo (PTA)")
    (code,) = day.result.codes
    assert (code.minutes, code.assistant_minutes) == (30, 20)
    expected = pooled_by_hand(store, [morning, afternoon])
    assert lines(day.result) == lines(expected)
    assert sum(ln.units for ln in day.result.lines) == 2
    assert any("CQ" in ln.modifiers for ln in day.result.lines)


def test_two_disciplines_are_two_claims(clinic: Clinic, clock: FakeClock) -> None:
    visit(clinic, clock, [Stretch("97110", 5)])
    visit(clinic, clock, [Stretch("97530", 5)], clinician="Cy", role=Role.OT)
    visit(clinic, clock, [Stretch("97140", 5)])
    days = the_days(clinic, clock)
    assert [(d.discipline, len(d.visits)) for d in days] == [
        (Discipline.OT, 1),
        (Discipline.PT, 2),
    ]
    ot, pt = days
    assert lines(pt.result) == [("97110", 1, ("GP",))]  # 5 + 5 minutes of the PT plan
    assert lines(ot.result) == []  # 5 OT minutes alone bill nothing
    assert ot.nothing_billable is not None and "97530 5 min" in ot.nothing_billable


def test_two_payers_are_two_claims(clinic: Clinic, clock: FakeClock) -> None:
    visit(clinic, clock, [Stretch("97110", 10)])
    visit(clinic, clock, [Stretch("97110", 10)], payer=COMMERCIAL)
    days = the_days(clinic, clock)
    assert [(d.payer_profile, len(d.visits)) for d in days] == [
        (COMMERCIAL, 1),
        ("Medicare", 1),
    ]
    assert all(lines(d.result) == [("97110", 1, ("GP",))] for d in days)


def test_per_code_method_pools_each_code_per_day(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    sessions = [
        visit(clinic, clock, [Stretch("97110", 5), Stretch("97140", 4)], payer=COMMERCIAL),
        visit(clinic, clock, [Stretch("97110", 5), Stretch("97140", 3)], payer=COMMERCIAL),
    ]
    (day,) = the_days(clinic, clock)
    # 97110: 5 + 5 = 10 -> 1 unit; 97140: 4 + 3 = 7 -> none (per code, R3.1).
    assert lines(day.result) == [("97110", 1, ("GP",))]
    assert lines(day.result) == lines(pooled_by_hand(store, sessions))


def test_references_differing_in_case_are_one_patient(clinic: Clinic, clock: FakeClock) -> None:
    visit(clinic, clock, [Stretch("97110", 5)], ref="mrn100")
    visit(clinic, clock, [Stretch("97110", 5)], ref="MRN100 ")
    (day,) = the_days(clinic, clock)
    assert len(day.visits) == 2 and lines(day.result) == [("97110", 1, ("GP",))]
    assert not day.initials_only


def test_an_open_session_makes_the_day_provisional(
    clinic: Clinic, store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    closed = visit(clinic, clock, [Stretch("97110", 10)])
    still = visit(clinic, clock, [Stretch("97110", 10)], clinician="Bo", close=False)
    (day,) = the_days(clinic, clock)
    assert day.provisional and day.status == "open"
    assert lines(day.result) == [("97110", 1, ("GP",))]
    assert "Provisional: 1 of the day's sessions still open" in day.result.note
    # The session summaries show their own 10 minutes and say the day bills them together.
    summary = clinic.summary(closed.id)
    assert [c.minutes for c in summary.codes] == [10]
    (pooled,) = [w for w in summary.warnings if w.rule == "R1.2"]
    assert pooled.severity is rules.Severity.INFO
    assert still.id[:8] in pooled.message and "provisional" in pooled.message
    assert "1 \N{MULTIPLICATION SIGN} 97110-GP" in pooled.message and pooled.message in summary.note
    with pytest.raises(ex.OpenSessionsInRange, match="MRN100 \\(Bo\\)"):
        clinic.export("csv", day.date_of_service)
    done = clinic.export("csv", day.date_of_service, include_open=True, out=tmp_path / "open.csv")
    assert done.path is not None  # a CSV file is streamed to disk, its text not kept
    (row,) = csv.DictReader(io.StringIO(done.path.read_text(encoding="utf-8").lstrip("\ufeff")))
    assert (row["units"], row["status"]) == ("1", "open")
    assert row["remark"].startswith("provisional")
    assert done.marked == 0 and not store.get_session(closed.id).exported


def test_an_amendment_after_export_marks_the_whole_day_again(
    clinic: Clinic, store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    first = visit(clinic, clock, [Stretch("97110", 13)])
    second = visit(clinic, clock, [Stretch("97110", 10)])
    day = first.date_of_service
    assert [lines(d.result) for d in clinic.claim_days(day)] == [[("97110", 2, ("GP",))]]
    done = clinic.export("csv", day, out=tmp_path / "a.csv")
    assert done.marked == 2 and [d.status for d in clinic.claim_days(day)] == ["exported"]
    # Only the second session is corrected; the whole day's claim is out of date.
    clinic.amend_segment(store.segments(second.id)[0].id, reason="stopped at 2 minutes", minutes=2)
    (changed,) = clinic.claim_days(day)
    assert changed.status == ex.AMENDED_AFTER_EXPORT
    assert lines(changed.result) == [("97110", 1, ("GP",))]  # 15 minutes now
    again = clinic.export("csv", day, out=tmp_path / "b.csv")
    assert again.marked == 2
    assert [d.status for d in clinic.claim_days(day)] == ["exported"]


def test_a_visit_added_to_an_exported_day_makes_it_due_again(
    clinic: Clinic, clock: FakeClock, tmp_path: Path
) -> None:
    first = visit(clinic, clock, [Stretch("97110", 10)])
    clinic.export("csv", first.date_of_service, out=tmp_path / "a.csv")
    visit(clinic, clock, [Stretch("97110", 10)])
    (day,) = clinic.claim_days(first.date_of_service)
    assert day.status == ex.AMENDED_AFTER_EXPORT


def test_a_one_session_day_is_the_session_summary(clinic: Clinic, clock: FakeClock) -> None:
    only = visit(clinic, clock, [Stretch("97110", 23), Stretch("97140", 9, A)])
    (day,) = the_days(clinic, clock)
    assert not day.pooled
    assert day.result == clinic.summary(only.id)


def test_initials_are_flagged_and_the_desk_can_separate_two_people(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    first = visit(clinic, clock, [Stretch("97110", 5)], ref="JD")
    second = visit(clinic, clock, [Stretch("97110", 5)], ref="jd", clinician="Bo")
    (day,) = the_days(clinic, clock)
    assert day.initials_only and lines(day.result) == [("97110", 1, ("GP",))]
    with pytest.raises(InvalidInput, match="reason"):
        clinic.change_patient_ref(second.id, "MRN200", reason=" ")
    clinic.change_patient_ref(second.id, "MRN200", reason="two patients with initials JD")
    days = the_days(clinic, clock)
    assert [(d.patient_ref, d.session_ids) for d in days] == [
        ("JD", (first.id,)),
        ("MRN200", (second.id,)),
    ]
    assert all(lines(d.result) == [] for d in days)  # 5 minutes each: nothing billable
    (entry,) = [
        e
        for e in store.audit_entries(entity="session", entity_id=second.id)
        if e.reason == "two patients with initials JD"
    ]
    assert entry.before is not None and entry.after is not None
    assert (entry.before["patient_ref"], entry.after["patient_ref"]) == ("jd", "MRN200")
    assert store.get_session(second.id).amended


@pytest.mark.parametrize(
    ("ref", "initials"),
    [("JD", True), ("J.D.", True), ("abc", True), ("ABCD", False), ("J1", False),
     ("MRN100", False), ("X", False)],
)  # fmt: skip
def test_what_looks_like_initials(ref: str, initials: bool) -> None:
    assert billing.looks_like_initials(ref) is initials


def test_nearest_rounding_rounds_the_day_once(store: Store, clock: FakeClock) -> None:
    clinic = Clinic(store, CATALOGUE, clock, policy=RoundingPolicy.NEAREST)
    # 7:20 + 7:20 = 14:40 -> 15 minutes, 1 unit; per session 7 + 7 = 14 would still be 1
    # unit, but the day's minutes must be the pooled ones.
    visit(clinic, clock, [Stretch("97110", 7 + 20 / 60)])
    visit(clinic, clock, [Stretch("97110", 7 + 20 / 60)])
    (day,) = the_days(clinic, clock)
    assert [c.minutes for c in day.result.codes] == [15]


@pytest.mark.parametrize("batch", [1, 2, 2000])
def test_days_come_a_date_at_a_time_in_order(
    clinic: Clinic, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # Rows are read in batches of whole dates: a batch smaller than a date never splits it.
    monkeypatch.setattr("therapy_timer.clinic.CLAIM_DAY_BATCH", batch)
    start = clock.now().astimezone().date()
    visit(clinic, clock, [Stretch("97110", 10)], ref="B2")
    visit(clinic, clock, [Stretch("97110", 10)], ref="A1")
    visit(clinic, clock, [Stretch("97110", 10)], ref="a1", clinician="Bo")
    clock.advance(minutes=24 * 60)
    visit(clinic, clock, [Stretch("97110", 10)], ref="A1")
    days = clinic.claim_days(start, start + timedelta(days=1))
    assert [(d.date_of_service - start).days for d in days] == [0, 0, 1]
    assert [d.patient_ref for d in days] == ["A1", "B2", "A1"]
    assert [len(d.visits) for d in days] == [2, 1, 1]
    assert clinic.claim_days(start, clinician="Nobody") == []
    with pytest.raises(InvalidInput, match="before"):
        clinic.claim_days(start, start - timedelta(days=1))


def test_a_clinician_filter_keeps_the_whole_day(clinic: Clinic, clock: FakeClock) -> None:
    visit(clinic, clock, [Stretch("97110", 5)])
    visit(clinic, clock, [Stretch("97110", 5, A)], clinician="Bo", role=Role.PTA)
    (day,) = clinic.claim_days(clock.now().astimezone().date(), clinician="Bo")
    assert len(day.visits) == 2 and lines(day.result) == [("97110", 1, ("GP", "CQ"))]


# -- the command line, line by line against the rules on minutes summed here ---------------------


def test_cli_export_rows_are_the_rules_on_independently_pooled_minutes(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = CliRunner()
    data = tmp_path / "station"

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), obj=Context(data, clock))
        assert result.exit_code == 0, result.output
        return result.stdout

    plan = [
        ("MRN1", "Ann", [Stretch("97110", 10)]),
        ("MRN2", "Ann", [Stretch("97140", 5), Stretch("97530", 6)]),
        ("MRN1", "Bo", [Stretch("97110", 10)]),
        ("MRN4", "Cy", [Stretch("97110", 10), Stretch("97112", 4)]),
        ("MRN4", "Ann", [Stretch("97112", 5, A)]),
        ("MRN3", "Bo", [Stretch("97116", 3)]),
        ("MRN2", "Cy", [Stretch("97140", 5)]),
    ]
    with Clinic(Store.open(data, clock=clock), CATALOGUE, clock) as clinic:
        sessions = [visit(clinic, clock, s, ref=r, clinician=c) for r, c, s in plan]
        store = clinic._store  # the test reads the rows the oracle needs
        expected: list[dict[str, str]] = []
        for ref in ("MRN1", "MRN2", "MRN3", "MRN4"):
            mine = [s for s in sessions if s.patient_ref == ref]
            result = pooled_by_hand(store, mine)
            ids = " ".join(s.id for s in mine)
            minutes = {c.code: c.minutes for c in result.codes}
            for line in result.lines:
                expected.append(
                    {
                        "patient_ref": ref,
                        "code": line.code,
                        "modifiers": " ".join(line.modifiers),
                        "units": str(line.units),
                        "minutes": str(minutes[line.code]),
                        "session_ids": ids,
                    }
                )
            if not result.lines:
                expected.append(
                    {"patient_ref": ref, "code": "", "modifiers": "", "units": "0",
                     "minutes": str(result.total_timed_minutes), "session_ids": ids}
                )  # fmt: skip
    day = sessions[0].date_of_service.isoformat()
    rows = list(csv.DictReader(io.StringIO(run("export", "--date", day).lstrip("\ufeff"))))
    keys = ("patient_ref", "code", "modifiers", "units", "minutes", "session_ids")
    assert [{k: row[k] for k in keys} for row in rows] == expected
    # The numbers: MRN1 10 + 10 minutes of 97110 is 1 unit; MRN2 5 + 5 of 97140 with
    # 6 of 97530 is 16 minutes, 1 unit; MRN3's 3 minutes bill nothing and still appear.
    assert [(r["patient_ref"], r["code"], r["units"]) for r in rows][:1] == [("MRN1", "97110", "1")]
    assert sum(int(r["units"]) for r in rows if r["patient_ref"] == "MRN2") == 1
    (mrn3,) = [r for r in rows if r["patient_ref"] == "MRN3"]
    assert mrn3["remark"].startswith("nothing billable: 97116 3 min")


def test_include_open_lists_an_open_visit_with_nothing_recorded_yet(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    visit(clinic, clock, [Stretch("97110", 3)], ref="MRN7")
    waiting = clinic.open_session(
        patient_ref="MRN8", clinician="Bo", role=Role.PT, payer_profile="Medicare"
    )
    day = waiting.date_of_service
    done = clinic.export("csv", day, include_open=True, mark=True)
    rows = list(csv.DictReader(io.StringIO((done.text or "").lstrip("\ufeff"))))
    assert [(r["patient_ref"], r["units"], r["status"], r["remark"]) for r in rows] == [
        ("MRN7", "0", "closed", "nothing billable: 97110 3 min: 3 timed minutes for the day, "
         "under the 8 of a unit"),
        ("MRN8", "0", "open", "nothing billable: still open: nothing recorded yet"),
    ]  # fmt: skip
    assert done.marked == 1  # the closed visit only: an open day may still change
    assert not store.get_session(waiting.id).exported
    data = json.loads(clinic.export("json", day, include_open=True).text or "")
    assert [(d["patient_ref"], d["provisional"], d["nothing_billable"] is not None)
            for d in data["claim_days"]] == [("MRN7", False, True), ("MRN8", True, True)]  # fmt: skip
