"""The CSV and the PDF say plainly when a visit ran overnight: the PDF printed '15:30-15:00'."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import NEW_YORK, FakeClock
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.model import Session
from therapy_timer.store import Store

LOCAL = NEW_YORK


# Local days that are not UTC's (conftest.new_york), so a date taken in UTC would show.
pytestmark = pytest.mark.usefixtures("new_york")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 10, 15, 30, tzinfo=LOCAL))


def visit(clinic: Clinic, clock: FakeClock, ref: str, minutes: float) -> Session:
    session = clinic.open_session(
        patient_ref=ref, clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=minutes)
    clinic.end_session(session.id)
    return clinic.get_session(session.id)


def csv_remarks(text: str) -> dict[str, str]:
    return {row["patient_ref"]: row["remark"] for row in csv.DictReader(io.StringIO(text))}


def test_the_csv_says_a_visit_ran_overnight_and_nothing_of_the_others(
    clinic: Clinic, clock: FakeClock
) -> None:
    forgotten = visit(clinic, clock, "MRN-7", 23 * 60 + 30)  # 15:30 to 15:00 the next day
    clock.set(datetime(2025, 3, 10, 23, 50, tzinfo=LOCAL))
    late = visit(clinic, clock, "MRN-8", 20)  # 23:50 to 00:10: twenty minutes, yet overnight
    clock.set(datetime(2025, 3, 10, 9, 0, tzinfo=LOCAL))
    visit(clinic, clock, "MRN-9", 30)
    day = forgotten.date_of_service
    expected = {
        "MRN-7": f"ran overnight: 15:30 to 03-11 15:00 (session {forgotten.id[:8]});"
        " check the minutes before billing",
        "MRN-8": f"ran overnight: 23:50 to 03-11 00:10 (session {late.id[:8]});"
        " check the minutes before billing",
        "MRN-9": "",
    }
    # A range's CSV (its plain days written from their answers), the day view's days (csv_rows).
    assert csv_remarks(clinic.export("csv", day).text or "") == expected
    days = clinic.claim_days(day)
    assert csv_remarks(ex.csv_text(ex.csv_lines(ex.csv_rows(days)))) == expected


def test_a_day_that_bills_nothing_says_why_and_that_it_ran_overnight(
    clinic: Clinic, clock: FakeClock
) -> None:
    clock.set(datetime(2025, 3, 10, 23, 57, tzinfo=LOCAL))
    late = visit(clinic, clock, "MRN-8", 6)
    (row,) = csv.DictReader(io.StringIO(clinic.export("csv", late.date_of_service).text or ""))
    assert row["remark"].startswith("nothing billable: ")
    assert row["remark"].endswith(
        f"; ran overnight: 23:57 to 03-11 00:03 (session {late.id[:8]});"
        " check the minutes before billing"
    )


def test_a_visit_on_another_day_than_its_date_of_service_did_not_run_overnight(
    clinic: Clinic, clock: FakeClock, store: Store
) -> None:
    moved = visit(clinic, clock, "MRN-9", 30)
    day = moved.date_of_service - timedelta(days=1)
    store.amend_session(moved.id, reason="seen the day before", date_of_service=day)
    (row,) = csv.DictReader(io.StringIO(clinic.export("csv", day).text or ""))
    assert (row["patient_ref"], row["remark"]) == ("MRN-9", "")


def test_the_pdf_prints_the_next_days_date_and_says_ran_overnight(
    clinic: Clinic, clock: FakeClock, tmp_path: Path, qtbot: object
) -> None:
    from therapy_timer.gui.report_pdf import NO_BREAK_HYPHEN, WORD_JOINER, report_html

    forgotten = visit(clinic, clock, "MRN-7", 23 * 60 + 30)
    clock.set(datetime(2025, 3, 11, 9, 0, tzinfo=LOCAL))
    html = report_html(clinic.claim_days(forgotten.date_of_service))
    printed = html.replace(NO_BREAK_HYPHEN, "-").replace(WORD_JOINER, "")
    assert "15:30\u201303-11 15:00 Ann Lee (PT)" in printed
    assert "15:30\u201315:00" not in printed
    assert "&#9888; ran overnight" in printed
    assert "ran overnight" not in report_html(clinic.claim_days(clock.now().date()))


@pytest.mark.parametrize("day", [date(9999, 12, 31), date(1, 1, 1)])
def test_a_date_of_service_at_the_end_of_the_calendar_still_exports(
    clinic: Clinic, clock: FakeClock, day: date
) -> None:
    """A year typed wrong in the header's date, or a station's bundle: the local day of 9999-12-31
    has no next midnight Python can hold, nor 0001-01-01 a start west of Greenwich, and the
    export ended in an OverflowError (ValueError) traceback."""
    session = clinic.open_session(
        patient_ref="MRN-1",
        clinician="Ann Lee",
        role=Role.PT,
        payer_profile="Medicare",
        date_of_service=day,
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=20)
    clinic.end_session(session.id)
    text = clinic.export("csv", day).text or ""
    (row,) = csv.DictReader(io.StringIO(text))
    assert (row["patient_ref"], row["code"], row["units"], row["remark"]) == (
        "MRN-1",
        "97110",
        "1",
        "",
    )
    assert f"\n{day.isoformat()},MRN-1," in text


@pytest.mark.parametrize(
    ("start", "minutes", "shown"),
    [
        # The clocks go back at 02:00: 170 minutes from 00:30 end at 02:20 by the clock.
        (datetime(2026, 11, 1, 0, 30, tzinfo=LOCAL), 170, ("00:30 EDT", "02:20 EST")),
        # Forward at 02:00: 60 minutes from 01:30 end at 03:30.
        (datetime(2026, 3, 8, 1, 30, tzinfo=LOCAL), 60, ("01:30 EST", "03:30 EDT")),
        (datetime(2026, 11, 1, 9, 0, tzinfo=LOCAL), 45, ("09:00", "09:45")),  # that day's others
    ],
)
def test_a_visit_across_a_change_of_clocks_says_which_time_its_times_are(
    clinic: Clinic, clock: FakeClock, start: datetime, minutes: int, shown: tuple[str, str]
) -> None:
    """'00:30-02:20' beside 170 minutes reads as an hour too many, '01:30-03:30' beside 60 as
    an hour too few: the desk would correct minutes that are right."""
    from therapy_timer.gui.report_pdf import NO_BREAK_HYPHEN, WORD_JOINER, report_html

    clock.set(start)
    seen = visit(clinic, clock, "MRN-1", minutes)
    (day,) = clinic.claim_days(seen.date_of_service)
    assert day.result.total_timed_minutes == minutes
    (times,) = [ex.visit_times(v) for v in day.visits]
    assert times == (*shown, False)
    printed = report_html([day]).replace(NO_BREAK_HYPHEN, "-").replace(WORD_JOINER, "")
    assert f"{shown[0]}\u2013{shown[1]} Ann Lee (PT)" in printed
