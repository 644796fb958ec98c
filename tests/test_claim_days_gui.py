"""Claim days in the window: the summary names the pooled day; corrections round as the clinic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt

from tests.gui_support import Bot, Rig, type_patient
from tests.test_gui_summary import end_session, run_codes
from therapy_timer.codes import FurnishedBy, Role
from therapy_timer.gui.widgets.corrections import CorrectionsDialog
from therapy_timer.model import Segment
from therapy_timer.stopwatch import RoundingPolicy

LEFT = Qt.MouseButton.LeftButton


# The offscreen platform has no window manager to pass size hints to.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_summary_says_its_codes_are_billed_on_a_pooled_day(qtbot: Bot, rig: Rig) -> None:
    morning = rig.service.open_session(
        patient_ref="MRN100", clinician="Bo Chen", role=Role.PTA, payer_profile="Medicare"
    )
    rig.service.start(morning.id, "97110", FurnishedBy.ASSISTANT)
    rig.clock.advance(minutes=10)
    rig.service.end_session(morning.id)
    rig.clock.advance(minutes=60)
    type_patient(qtbot, rig, ref="mrn100")
    run_codes(qtbot, rig, {"97110": 10})
    dialog = end_session(qtbot, rig)
    # The session's own 10 minutes (0 units alone), and the day's line: 20 minutes, 1 unit.
    assert dialog.table.item(0, 2).text() == "10"  # type: ignore[union-attr]
    shown = dialog.warnings.text()
    assert "one claim day with 1 other session(s) of MRN100" in shown  # one patient
    assert "Bo Chen (PTA)" in shown and morning.id[:8] in shown
    # Still open while the summary shows: the day's line is provisional and says so.
    assert (
        "lines (provisional: a session of the day is still open): 1 \N{MULTIPLICATION SIGN} 97110-GP"
        in shown
    )
    qtbot.mouseClick(dialog.copy_button, LEFT)  # closes the session
    assert "The day's lines: 1 \N{MULTIPLICATION SIGN} 97110-GP." in dialog.warnings.text()
    assert "billed on one claim day" in dialog.note.toPlainText()


@pytest.mark.parametrize(
    ("policy", "shown"), [(RoundingPolicy.NEAREST, 8), (RoundingPolicy.DOWN, 7)]
)
def test_corrections_show_minutes_with_the_clinics_rounding(
    qtbot: Bot, policy: RoundingPolicy, shown: int
) -> None:
    start = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
    stretch = timedelta(minutes=7, seconds=40)  # 7:40 is 8 minutes to the nearest, 7 down
    segments = [
        Segment(f"g{n}", "s1", "97110", FurnishedBy.THERAPIST, True, begin, begin + stretch)
        for n, begin in enumerate((start, start + timedelta(minutes=30)))
    ]
    dialog = CorrectionsDialog(None, segments, lambda _changes, _reason, _room: None, policy)
    qtbot.add_widget(dialog)
    assert [spin.value() for spin in dialog.spins.values()] == [shown, shown]
    assert dialog.changes() == {}  # shown as the policy rounds: nothing to save


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_summary_hands_the_clinics_rounding_to_the_corrections(qtbot: Bot, rig: Rig) -> None:
    rig.store.set_setting("rounding_policy", "nearest")
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=7, seconds=40)
    qtbot.mouseClick(rig.tile("97110"), LEFT)  # stop
    dialog = end_session(qtbot, rig)
    qtbot.mouseClick(dialog.copy_button, LEFT)
    qtbot.mouseClick(dialog.correct_button, LEFT)
    corrections = dialog.corrections_dialog
    assert corrections is not None
    (spin,) = corrections.spins.values()
    assert spin.value() == 8  # as the summary counts it: 7:40 to the nearest minute
    assert dialog.answer is not None and dialog.answer.codes[0].minutes == 8


def test_the_printed_report_has_one_row_per_claim_day(qtbot: Bot, rig: Rig) -> None:
    from therapy_timer.gui.report_pdf import report_html

    for clinician, role, by in (("Ann Lee", Role.PT, FurnishedBy.THERAPIST),
                                ("Bo Chen", Role.PTA, FurnishedBy.ASSISTANT)):  # fmt: skip
        session = rig.service.open_session(
            patient_ref="JD", clinician=clinician, role=role, payer_profile="Medicare"
        )
        rig.service.start(session.id, "97110", by)
        rig.clock.advance(minutes=5)
        rig.service.end_session(session.id)
    (day,) = rig.service.claim_days(rig.clock.now().astimezone().date())
    html = report_html([day])
    assert html.count("<tr><td style='white-space: nowrap'>JD") == 1  # one claim, one row
    assert "Ann Lee (PT)" in html and "Bo Chen (PTA)" in html
    assert "initials:<br>one person?" in html
    # 5 + 5 minutes: one unit; the assistant furnished 5 of 10, so CQ applies (R7.6).
    assert "1 \N{MULTIPLICATION SIGN} 97110-GP-CQ" in html
    assert "1 claim(s), 2 session(s), 1 pooling several sessions" in html
