"""Group therapy recorded in two sessions of one claim day (R8.2): billed once and warned."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.test_claim_days import Stretch, the_days, visit
from therapy_timer import billing
from therapy_timer.clinic import Clinic
from therapy_timer.codes import builtin_catalogue
from therapy_timer.model import Session
from therapy_timer.rules import Severity

CATALOGUE = builtin_catalogue()


def group_warnings(day: billing.ClaimDay) -> list[str]:
    return [w.message for w in day.result.warnings if w.rule == "R8.2"]


def units_of(day: billing.ClaimDay, code: str) -> int:
    return sum(line.units for line in day.result.lines if line.code == code)


def with_untimed(clinic: Clinic, clock: FakeClock, code: str, **kw: object) -> Session:
    session = visit(clinic, clock, [Stretch("97110", 10)], close=False, **kw)  # type: ignore[arg-type]
    clinic.add_untimed(session.id, code, minutes=30)
    clinic.end_session(session.id)
    return session


def test_a_group_code_in_two_sessions_is_one_unit_with_a_warning_to_check(
    clinic: Clinic, clock: FakeClock
) -> None:
    with_untimed(clinic, clock, "97150")
    with_untimed(clinic, clock, "97150", clinician="Bo")
    [day] = the_days(clinic, clock)
    assert units_of(day, "97150") == 1  # pooled: once a day until the biller decides
    [warning] = [w for w in day.result.warnings if w.rule == "R8.2"]
    assert warning.severity is Severity.ACT
    assert "97150" in warning.message and "2 of this claim day's sessions" in warning.message
    assert warning.gist == "97150 in 2 sessions: billed once"


def test_a_group_code_timed_in_one_session_and_entered_in_another_is_warned(
    clinic: Clinic, clock: FakeClock
) -> None:
    visit(clinic, clock, [Stretch("97150", 30)])
    with_untimed(clinic, clock, "97150")
    with_untimed(clinic, clock, "97150")
    [day] = the_days(clinic, clock)
    assert units_of(day, "97150") == 1
    assert ["3 of this claim day's sessions" in m for m in group_warnings(day)] == [True]


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(None, id="group code in one session only"),
        pytest.param("97161", id="an evaluation in the other"),
    ],
)
def test_no_warning_without_group_therapy_in_two_sessions(
    clinic: Clinic, clock: FakeClock, second: str | None
) -> None:
    with_untimed(clinic, clock, "97150")
    if second is None:
        visit(clinic, clock, [Stretch("97140", 10)])
    else:
        with_untimed(clinic, clock, second)
    [day] = the_days(clinic, clock)
    assert group_warnings(day) == []


def test_two_evaluations_in_two_sessions_are_not_a_group_warning(
    clinic: Clinic, clock: FakeClock
) -> None:
    with_untimed(clinic, clock, "97161")
    with_untimed(clinic, clock, "97161")
    [day] = the_days(clinic, clock)
    assert units_of(day, "97161") == 1
    assert group_warnings(day) == []


def test_two_claim_days_each_with_the_group_code_once_are_not_warned(
    clinic: Clinic, clock: FakeClock
) -> None:
    with_untimed(clinic, clock, "97150")
    with_untimed(clinic, clock, "97150", payer="Commercial (per-code)")
    days = the_days(clinic, clock)
    assert len(days) == 2
    assert [group_warnings(d) for d in days] == [[], []]


def test_the_csv_of_such_a_day_carries_the_warning(
    clinic: Clinic, clock: FakeClock, tmp_path: Path
) -> None:
    """A CSV writes most days from memoised answers (Clinic._csv_lines): this day's warning
    is its own, not its request's, so it must not be taken for a plain day's."""
    first = with_untimed(clinic, clock, "97150")
    with_untimed(clinic, clock, "97150")
    clinic.export("csv", first.date_of_service, out=tmp_path / "day.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "day.csv").read_text())))
    assert rows
    assert all("R8.2" in " ".join(row.values()) for row in rows), rows
