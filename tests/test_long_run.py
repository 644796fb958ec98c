"""A timer left running: a 15-minute code that ran more than 2 hours without a stop gives its
claim day an act warning (docs/billing-rules.md, "A timer left running"), in the CSV, the JSON,
the printed report and the session's summary; the units themselves do not change."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from therapy_timer import rules
from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Role
from therapy_timer.model import Session

GIST = "97110 ran 22 h 58 min without a stop: left running?"


class Desk:
    def __init__(self, clinic: Clinic, clock: FakeClock) -> None:
        self.clinic = clinic
        self.clock = clock

    def session(self, *runs: tuple[str, float], close: bool = True) -> Session:
        """JD's session of these codes, each run for so many minutes in turn."""
        session = self.clinic.open_session(
            patient_ref="JD", clinician="Kim", role=Role.PT, payer_profile="Medicare"
        )
        for code, minutes in runs:
            self.clinic.start(session.id, code, FurnishedBy.THERAPIST)
            self.clock.advance(minutes=minutes)
        if close:
            self.clinic.end_session(session.id)
        return session

    def warnings(self, session: Session) -> list[rules.RuleWarning]:
        (day,) = self.clinic.claim_days(session.date_of_service)
        return [w for w in day.result.warnings if w.rule == "R9.4"]

    def csv_rows(self, session: Session) -> list[dict[str, str]]:
        text = self.clinic.export("csv", session.date_of_service).text
        assert text is not None
        return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    clock = FakeClock()
    with Clinic.open(tmp_path, clock=clock) as clinic:
        yield Desk(clinic, clock)


def test_a_timer_left_running_overnight_warns_wherever_the_day_is_billed(desk: Desk) -> None:
    session = desk.session(("97110", 1378))  # 14:00 until 12:58 the next day
    (warning,) = desk.warnings(session)
    assert warning.severity is rules.Severity.ACT and warning.gist == GIST
    assert "probably left running" in warning.message
    (row,) = desk.csv_rows(session)
    assert row["units"] == "92"  # the units are the chart's; the warning asks to look at them
    assert row["warnings"] == f"R9.4: {GIST}"
    text = desk.clinic.export("json", session.date_of_service).text
    assert text is not None
    (day,) = json.loads(text)["claim_days"]
    assert any(w["gist"] == GIST and w["severity"] == "act" for w in day["warnings"])
    summary = desk.clinic.summary(session.id)
    assert [w.gist for w in summary.warnings if w.rule == "R9.4"] == [GIST]


def test_the_printed_report_shows_it(desk: Desk) -> None:
    from therapy_timer.gui.report_pdf import report_html

    session = desk.session(("97110", 1378))
    assert GIST in report_html(desk.clinic.claim_days(session.date_of_service))


@pytest.mark.parametrize(
    ("runs", "warned"),
    [
        ((("97110", 120),), False),  # 2 hours exactly: 8 units, no more
        ((("97110", 121),), True),
        ((("97110", 70), ("97140", 10), ("97110", 70)), False),  # two stretches of one code
        ((("97530", 30), ("97140", 150)), True),  # whichever code it is
        ((("97010", 600),), False),  # untimed: one unit however long
    ],
    ids=["two hours", "a minute more", "two stretches", "another code", "untimed"],
)
def test_only_one_unbroken_stretch_of_a_timed_code_over_two_hours_warns(
    desk: Desk, runs: tuple[tuple[str, float], ...], warned: bool
) -> None:
    session = desk.session(*runs)
    assert bool(desk.warnings(session)) is warned
    csv_warned = any("R9.4" in row["warnings"] for row in desk.csv_rows(session))
    assert csv_warned is warned  # the CSV's plain days say the same as the claim day


def test_a_timer_still_running_counts_up_to_now(desk: Desk) -> None:
    session = desk.session(("97110", 150), close=False)
    (warning,) = desk.warnings(session)
    assert warning.gist == "97110 ran 2 h 30 min without a stop: left running?"


def test_the_warning_names_every_long_run_of_the_day_longest_first(desk: Desk) -> None:
    first = desk.session(("97140", 180))
    desk.session(("97110", 300))  # the same patient's second session: one claim day
    (warning,) = desk.warnings(first)
    assert warning.gist == "97110 ran 5 hours without a stop: left running?"
    assert "97110 5 hours, 97140 3 hours." in warning.message


@pytest.mark.parametrize("close", [True, False], ids=["closed", "still running"])
def test_a_change_of_who_furnishes_a_running_code_does_not_stop_it(desk: Desk, close: bool) -> None:
    # Tapping the running 97110 as the assistant (or the furnished-by switch) closes its
    # segment and opens the next at the same moment: the timer never stopped.
    session = desk.session(("97110", 100), close=False)
    desk.clinic.start(session.id, "97110", FurnishedBy.ASSISTANT)
    desk.clock.advance(minutes=60)
    desk.clinic.set_furnished_by(session.id, FurnishedBy.THERAPIST)
    desk.clock.advance(minutes=50)
    if close:
        desk.clinic.end_session(session.id)
    gist = "97110 ran 3 h 30 min without a stop: left running?"
    assert [w.gist for w in desk.warnings(session)] == [gist]
    if close:  # its 97110-CQ line and its 97110-GP line
        assert [row["warnings"] for row in desk.csv_rows(session)] == [f"R9.4: {gist}"] * 2
    summary = desk.clinic.summary(session.id)
    assert [w.gist for w in summary.warnings if w.rule == "R9.4"] == [gist]


def test_a_stop_between_two_stretches_of_one_code_keeps_them_two(desk: Desk) -> None:
    session = desk.session(("97110", 100), close=False)  # stopped, then started that minute
    desk.clinic.stop(session.id, "97110")
    desk.clinic.start(session.id, "97110", FurnishedBy.THERAPIST)  # at the same minute
    desk.clock.advance(minutes=100)
    desk.clinic.end_session(session.id)
    assert desk.warnings(session) == []
