"""An amendment to any session of an exported claim day makes the day due again (issue 11).

Every amendment path is tried on a day that was exported: the day's status must turn to
"amended after export", and the next written export must bill it again and mark it. A change
that moves a session to another claim day (a new patient reference, another payer) leaves two
days with out-of-date charges, the one it left and the one it joined: both are due again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fakes import FakeClock
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic, Header
from therapy_timer.codes import Role, builtin_catalogue
from therapy_timer.export import AMENDED_AFTER_EXPORT
from therapy_timer.model import AuditEntry, Session
from therapy_timer.store import Store

CATALOGUE = builtin_catalogue()
REASON = "front desk correction"


@dataclass
class Day:
    """MRN1 seen twice (97110 at 14:00; 97140 then 97112 at 15:00), MRN2 once; all exported."""

    clinic: Clinic
    store: Store
    clock: FakeClock
    out: Path
    first: Session
    second: Session
    other: Session

    @property
    def date(self) -> date:
        return self.first.date_of_service

    def statuses(self) -> dict[tuple[str, str], str]:
        """Each claim day's status by (patient, payer)."""
        return {
            (d.patient_ref.upper(), d.payer_profile): d.status
            for d in self.clinic.claim_days(self.date)
        }

    def day_changes(self, session: Session) -> list[AuditEntry]:
        return [
            e
            for e in self.store.audit_entries(entity="session", entity_id=session.id)
            if e.action == "session.day_changed"
        ]

    def export(self) -> int:
        done = self.clinic.export("csv", self.date, out=self.out, force=True)
        return done.marked


@pytest.fixture
def day(tmp_path: Path) -> Iterator[Day]:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock, actor="desk") as store:
        clinic = Clinic(store, CATALOGUE, clock, actor="desk")
        clinic.add_payer_profile("Commercial", "ama", assistant_modifiers=False)
        ann = Header("Ann", Role.PT, "Medicare")

        def visit(ref: str, *stretches: tuple[str, int]) -> Session:
            session = clinic.session_for_command(ref, create=ann)
            for code, minutes in stretches:
                clinic.start(session.id, code)
                clock.advance(minutes=minutes)
            clinic.stop(session.id)
            clock.advance(minutes=10)  # notes written before closing: room to shift later
            return clinic.end_session(session.id)

        first = visit("MRN1", ("97110", 20))
        clock.advance(minutes=30)
        second = visit("MRN1", ("97140", 10), ("97112", 10))
        other = visit("MRN2", ("97110", 20))
        the_day = Day(clinic, store, clock, tmp_path / "day.csv", first, second, other)
        assert the_day.export() == 3
        assert set(the_day.statuses().values()) == {"exported"}
        yield the_day


def segment_of(day: Day, session: Session) -> str:
    return day.clinic.segments(session.id)[0].id


AMENDMENTS: dict[str, Callable[[Day], object]] = {
    "edit segment minutes": lambda d: d.clinic.amend_segment(
        segment_of(d, d.second), minutes=8, reason=REASON
    ),
    "edit segment code": lambda d: d.clinic.amend_segment(
        segment_of(d, d.second), code="97530", reason=REASON
    ),
    "corrections dialog": lambda d: d.clinic.correct_minutes({segment_of(d, d.second): 7}, REASON),
    "add segment": lambda d: d.clinic.add_forgotten_segment(
        d.second.id, "97112", start=time(8, 0), minutes=10, reason=REASON
    ),
    "untimed add": lambda d: d.clinic.add_untimed(d.second.id, "97161", reason=REASON),
    "untimed remove": lambda d: (
        d.clinic.add_untimed(d.second.id, "97161", reason=REASON),
        d.export(),
        d.clinic.remove_untimed(d.second.id, "97161", reason=REASON),
    ),
    "shift later": lambda d: d.clinic.lengthen_segment(
        segment_of(d, d.second), 15, reason=REASON, shift_later=True
    ),
}


@pytest.mark.parametrize("how", sorted(AMENDMENTS))
def test_an_amendment_makes_its_exported_day_due_again(day: Day, how: str) -> None:
    AMENDMENTS[how](day)
    assert day.statuses() == {
        ("MRN1", "Medicare"): AMENDED_AFTER_EXPORT,
        ("MRN2", "Medicare"): "exported",  # another patient's day is untouched
    }
    # Exported again (the range is written whole), the day is settled.
    day.export()
    assert set(day.statuses().values()) == {"exported"}


MOVES: dict[str, tuple[Callable[[Day], object], tuple[str, str]]] = {
    # how the second visit leaves MRN1's day: (the change, the day it joins)
    "change patient reference": (
        lambda d: d.clinic.change_patient_ref(d.second.id, "MRN3", reason=REASON),
        ("MRN3", "Medicare"),
    ),
    "change payer": (
        lambda d: d.clinic.change_payer(d.second.id, "Commercial", reason=REASON),
        ("MRN1", "Commercial"),
    ),
    "change reference to a patient with an exported day": (
        lambda d: d.clinic.change_patient_ref(d.second.id, "mrn2", reason=REASON),
        ("MRN2", "Medicare"),
    ),
}


@pytest.mark.parametrize("how", sorted(MOVES))
def test_a_session_moved_off_an_exported_day_makes_both_days_due_again(day: Day, how: str) -> None:
    move, joined = MOVES[how]
    move(day)
    statuses = day.statuses()
    assert statuses[("MRN1", "Medicare")] == AMENDED_AFTER_EXPORT  # the day it left
    assert statuses[joined] == AMENDED_AFTER_EXPORT  # the day it joined
    untouched = {k: v for k, v in statuses.items() if k not in {("MRN1", "Medicare"), joined}}
    assert set(untouched.values()) <= {"exported"}
    day.export()
    assert set(day.statuses().values()) == {"exported"}
    # The audit says why the session that stayed behind is due again.
    (left_behind,) = day.day_changes(day.first)
    assert REASON in left_behind.reason and day.second.id[:8] in left_behind.reason


def test_moving_a_session_off_a_day_never_exported_marks_nothing(day: Day) -> None:
    """A day not yet exported has no charges out of date: nothing to flag, nothing audited."""
    fresh = day.clinic.session_for_command("MRN4", create=Header("Ann", Role.PT, "Medicare"))
    day.clinic.start(fresh.id, "97110")
    day.clock.advance(minutes=20)
    day.clinic.end_session(fresh.id)
    day.clinic.change_patient_ref(fresh.id, "MRN5", reason=REASON)
    assert day.statuses()[("MRN5", "Medicare")] == "amended"
    assert day.day_changes(day.first) == day.day_changes(day.second) == []


def test_the_command_line_moves_a_session_and_both_days_are_due_again(day: Day) -> None:
    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), obj=Context(day.store.data_dir, day.clock))
        assert result.exit_code == 0, result.output
        return result.output

    said = cli("session", "amend", day.second.id[:8], "--payer", "Commercial", "--reason", REASON)
    assert "payer Commercial" in said
    assert day.statuses()[("MRN1", "Medicare")] == AMENDED_AFTER_EXPORT
    assert day.statuses()[("MRN1", "Commercial")] == AMENDED_AFTER_EXPORT
    refused = CliRunner().invoke(
        main,
        ["session", "amend", day.second.id[:8], "--reason", REASON],
        obj=Context(day.store.data_dir, day.clock),
    )
    assert refused.exit_code == 2 and "--patient or --payer" in refused.output


@pytest.mark.parametrize(
    ("option", "named"), [("--patient", "patient's reference"), ("--payer", "payer")]
)
def test_an_empty_patient_or_payer_is_refused_not_taken_for_no_change(
    day: Day, option: str, named: str
) -> None:
    before = day.statuses()
    refused = CliRunner().invoke(
        main,
        ["session", "amend", day.second.id[:8], option, "", "--reason", REASON],
        obj=Context(day.store.data_dir, day.clock),
    )
    assert refused.exit_code == 2, refused.output
    assert named in refused.output and "Traceback" not in refused.output
    assert day.statuses() == before
    assert day.day_changes(day.first) == []


def test_a_tie_choice_after_the_export_makes_the_day_due_again(day: Day) -> None:
    """8 minutes each of 97110 and 97140 bill one unit, either code's (R2.8): choosing the
    other one after the export changes the charge."""
    ann = Header("Ann", Role.PT, "Medicare")
    tie = day.clinic.session_for_command("MRN9", create=ann)
    for code in ("97110", "97140"):
        day.clinic.start(tie.id, code)
        day.clock.advance(minutes=8)
    day.clinic.end_session(tie.id)
    answer = day.clinic.summary(tie.id)
    assert answer.alternatives  # a tie
    day.export()
    assert day.statuses()[("MRN9", "Medicare")] == "exported"
    day.clinic.choose_allocation(tie.id, dict(answer.alternatives[0]), reason=REASON)
    assert day.statuses()[("MRN9", "Medicare")] == AMENDED_AFTER_EXPORT
    assert day.statuses()[("MRN1", "Medicare")] == "exported"
