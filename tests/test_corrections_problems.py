"""One bad session never blocks its day: it is shown with what to fix, and can be corrected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.fakes import FakeClock
from therapy_timer import rules
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic
from therapy_timer.model import SessionProblem
from therapy_timer.store import DB_FILENAME

WEEKEND = 2940  # Friday 14:00 to Monday 15:00: more minutes than a day holds


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.clock = FakeClock()
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data, self.clock))
        assert result.exit_code == status, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    def listed(self) -> dict[str, str]:
        with Clinic.open(self.data, clock=self.clock) as clinic:
            return {s.patient_ref: s.id for s in clinic.list_sessions()}


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    desk = Desk(tmp_path)
    desk("timer", "start", "97110", "--patient", "GOOD")
    desk.clock.advance(minutes=20)
    desk("session", "end", "--patient", "GOOD")
    desk("timer", "start", "97110", "--patient", "BAD")
    desk.clock.advance(minutes=WEEKEND)
    return desk


def test_a_timer_left_running_over_a_weekend_is_shown_with_what_to_fix(desk: Desk) -> None:
    status = desk("timer", "status", "--patient", "BAD").stdout
    assert "problem: patient BAD" in status and "more than a day holds" in status
    assert json.loads(desk("timer", "status", "--patient", "BAD", "--json").stdout)["problem"]
    ended = desk("session", "end", "--patient", "BAD").stdout
    assert "Session closed" in ended and "patient BAD" in ended and "--minutes" in ended
    bad = desk.listed()["BAD"]
    shown = desk("session", "show", bad[:8]).stdout
    assert "Problem: patient BAD" in shown and "97110" in shown
    as_json: dict[str, Any] = json.loads(desk("session", "show", bad, "--json").stdout)
    assert "timed.97110" in as_json["problem"]
    # Corrected from what show printed, it bills like any other session.
    (segment,) = as_json["segments"]
    desk("session", "edit", segment["id"][:8], "--minutes", "45", "--reason", "left running")
    fixed = json.loads(desk("session", "show", bad, "--json").stdout)
    assert "problem" not in fixed
    assert fixed["lines"] == [{"code": "97110", "units": 3, "modifiers": ["GP"]}]


def test_the_good_sessions_of_the_day_still_get_their_answer(desk: Desk) -> None:
    desk("session", "end", "--patient", "BAD")
    with Clinic.open(desk.data, clock=desk.clock) as clinic:
        sessions = clinic.list_sessions()
        answers = clinic.summaries_or_problems(sessions)
        by_patient = {s.patient_ref: answers[s.id] for s in sessions}
    good, bad = by_patient["GOOD"], by_patient["BAD"]
    assert isinstance(bad, SessionProblem) and bad.session.patient_ref == "BAD"
    assert bad.field == "timed.97110"
    # Independently: 20 minutes of 97110 under the CMS method is one unit.
    assert isinstance(good, rules.Result)
    assert [(line.code, line.units) for line in good.lines] == [("97110", 1)]


def test_a_code_no_longer_in_the_catalogue_is_a_problem_not_a_crash(desk: Desk) -> None:
    desk("session", "end", "--patient", "BAD")
    bad = desk.listed()["BAD"]
    conn = sqlite3.connect(desk.data / DB_FILENAME)
    with conn:  # a clinic code removed from codes.toml after it was recorded
        conn.execute("UPDATE segments SET code = '99999' WHERE session_id = ?", [bad])
    conn.close()
    shown = desk("session", "show", bad).stdout
    assert "Problem: patient BAD" in shown and "99999" in shown and "code file" in shown
