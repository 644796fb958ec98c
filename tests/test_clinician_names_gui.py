"""The window and the day view take Kim, kim and a fullwidth K (U+FF2B) for one clinician."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.fakes import FakeClock
from tests.gui_support import Bot, Rig, type_patient
from tests.test_clinician_names import FULLWIDTH_KIM, open_for
from tests.test_export import CATALOGUE
from therapy_timer.clinic import Clinic
from therapy_timer.gui.day_view import DayView
from therapy_timer.gui.report_pdf import report_html
from therapy_timer.store import Store


def _day_of_three(clinic: Clinic, clock: FakeClock) -> None:
    """Kim sees AA-1, then (typed kim) BB-2; Bo Chen sees CC-3."""
    for ref, who in (("AA-1", "Kim"), ("BB-2", "kim"), ("CC-3", "Bo Chen")):
        session = open_for(clinic, ref, who)
        clinic.start(session.id, "97110")
        clock.advance(minutes=10)
        clinic.end_session(session.id)


def test_the_day_views_clinician_filter_lists_a_person_once_and_finds_every_spelling(
    qtbot: Bot, tmp_path: Path
) -> None:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        clinic = Clinic(store, CATALOGUE, clock)
        _day_of_three(clinic, clock)
        view = DayView(clinic, ask_file=lambda *_: "")
        qtbot.add_widget(view)
        view.show()
        items = [view.clinician.itemText(i) for i in range(view.clinician.count())]
        assert items == ["All", "Bo Chen", "Kim"]
        view.clinician.setCurrentText("Kim")
        assert sorted(d.patient_ref for d in view.shown) == ["AA-1", "BB-2"]


def test_the_printed_totals_count_a_person_once(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        clinic = Clinic(store, CATALOGUE, clock)
        _day_of_three(clinic, clock)
        html = report_html(clinic.claim_days(clinic.today()))
    totals = html[html.index("Totals per clinician") :]
    assert "kim (PT)" not in totals
    assert "<tr><td>Kim (PT)</td><td align=right>2</td><td align=right>2</td>" in totals


def test_the_window_will_not_open_a_second_session_under_another_spelling(
    qtbot: Bot, rig: Rig
) -> None:
    kims = open_for(rig.service, "MRN-1", "Kim")
    rig.service.start(kims.id, "97110")
    type_patient(qtbot, rig, ref="MRN-1", clinician="")
    # Pasted: a fullwidth letter is not a key QTest can type.
    QApplication.clipboard().setText(FULLWIDTH_KIM)
    qtbot.keyClick(rig.window.header.clinician, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert rig.window.header.clinician.text() == FULLWIDTH_KIM
    qtbot.mouseClick(rig.tile("97140"), Qt.MouseButton.LeftButton)
    assert "MRN-1 already has an open session with Kim" in rig.window.message_banner.text.text()
    assert [s.id for s in rig.service.open_sessions()] == [kims.id]


def test_the_window_shows_the_clinicians_favourites_under_another_spelling(
    qtbot: Bot, rig: Rig
) -> None:
    rig.service.save_favourites("Kim Lee", ["97530", "97140"])
    type_patient(qtbot, rig, ref="MRN-2", clinician="KIM  LEE")
    assert [t.code for t in rig.window.tiles.tiles][:2] == ["97530", "97140"]
