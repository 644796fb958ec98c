"""The caseload in the window: several patients, switching, one-on-one time in one place."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.gui_support import Bot, Rig, type_patient
from therapy_timer.codes import Role

LEFT = Qt.MouseButton.LeftButton
CTRL = Qt.KeyboardModifier.ControlModifier


def running(rig: Rig) -> dict[str, set[str]]:
    """What the database says runs, by patient, read through a second connection."""
    store, _ = rig.other()
    try:
        refs = {s.id: s.patient_ref for s in store.list_sessions()}
        found: dict[str, set[str]] = {}
        for segment in store.open_segments():
            found.setdefault(refs[segment.session_id], set()).add(segment.code)
        return found
    finally:
        store.close()


def start_patient(qtbot: Bot, rig: Rig, ref: str, *codes: str, clinician: str = "Ann Lee") -> None:
    """New patient from the caseload strip, type them in, tap their codes."""
    if rig.controller.session is not None:
        qtbot.mouseClick(rig.window.caseload.new_button, LEFT)
    header = rig.window.header
    header.patient.clear()
    header.clinician.clear()
    type_patient(qtbot, rig, ref, clinician)
    for code in codes:
        qtbot.mouseClick(rig.tile(code), LEFT)


def test_two_patients_overlap_and_the_hot_pack_keeps_running(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97010", "97110")  # hot pack, then exercise
    rig.clock.advance(minutes=9)
    start_patient(qtbot, rig, "BB-2", "97140")  # manual therapy for the next patient
    assert running(rig) == {"AA-1": {"97010"}, "BB-2": {"97140"}}
    banner = rig.window.undo_banner
    assert banner.isVisible()
    assert "97110 for AA-1" in banner.text.text() and "BB-2" in banner.text.text()
    strip = rig.window.caseload
    assert [b.text().splitlines()[0] for b in strip.buttons.values()] == [
        "Ctrl+1  AA-1 (Ann Lee)",
        "Ctrl+2  BB-2 (Ann Lee)",
    ]
    # AA's line: the hot pack still runs, 9 minutes of exercise made 1 unit (8-minute rule).
    aa = next(iter(strip.buttons.values())).text().splitlines()[1]
    assert aa.startswith("97010 09:00") and aa.endswith("1 unit"), aa
    rig.clock.advance(seconds=5)
    rig.controller.tick()
    assert "97010 09:05" in next(iter(strip.buttons.values())).text()


def test_undo_gives_the_time_back_to_the_first_patient(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97110")
    started = rig.clock.now()
    rig.clock.advance(minutes=9)
    start_patient(qtbot, rig, "BB-2", "97140")
    assert running(rig) == {"BB-2": {"97140"}}
    rig.clock.advance(seconds=6)  # the therapist notices the wrong patient
    qtbot.mouseClick(rig.window.undo_banner.primary, LEFT)
    assert running(rig) == {"AA-1": {"97110"}}
    assert not rig.window.undo_banner.isVisible()
    # As if never stopped: AA's 97110 has run since it started, the 6 seconds included.
    rig.clock.advance(minutes=1)
    aa = next(s for s in rig.store.list_sessions() if s.patient_ref == "AA-1")
    assert rig.service.stopwatch(aa.id).elapsed("97110") == rig.clock.now() - started


def test_the_undo_offer_goes_after_a_few_seconds(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97110")
    start_patient(qtbot, rig, "BB-2", "97140")
    assert rig.window.undo_banner.isVisible()
    qtbot.waitUntil(lambda: not rig.window.undo_banner.isVisible(), timeout=12_000)
    assert running(rig) == {"BB-2": {"97140"}}


def test_a_tap_or_ctrl_digit_switches_the_main_view(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97010")
    rig.clock.advance(seconds=1)  # the strip lists patients in the order they came
    start_patient(qtbot, rig, "BB-2", "97012")
    first, second = rig.window.caseload.buttons.values()
    qtbot.mouseClick(first, LEFT)
    assert rig.controller.session is not None and rig.controller.session.patient_ref == "AA-1"
    assert rig.tile("97010").view.state.value == "running"
    assert first.isChecked() and not second.isChecked()
    qtbot.keyClick(rig.window, Qt.Key.Key_2, CTRL)
    assert rig.controller.session.patient_ref == "BB-2"
    assert rig.tile("97012").view.state.value == "running"
    assert rig.tile("97010").view.state.value == "idle"  # AA's hot pack is AA's
    # A digit without Ctrl still starts a tile of the shown patient, as before.
    assert running(rig) == {"AA-1": {"97010"}, "BB-2": {"97012"}}


def test_ctrl_e_ends_the_patient_just_chosen_in_the_strip(qtbot: Bot, rig: Rig) -> None:
    # The strip's entry keeps the focus after a tap; the window's keys must still reach the window.
    start_patient(qtbot, rig, "AA-1", "97010")
    rig.clock.advance(seconds=1)
    start_patient(qtbot, rig, "BB-2", "97012")
    first, _second = rig.window.caseload.buttons.values()
    qtbot.mouseClick(first, LEFT)
    qtbot.keyClick(first, Qt.Key.Key_E, CTRL)
    dialog = rig.window.summary_dialog
    assert dialog is not None and dialog.isVisible()
    assert "AA-1" in dialog.title.text() and "BB-2" not in dialog.title.text()


def test_a_pt_and_a_pta_run_one_on_one_time_at_once(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97110")
    qtbot.mouseClick(rig.window.caseload.new_button, LEFT)
    header = rig.window.header
    header.role.setCurrentText(Role.PTA.value)
    header.patient.clear()
    header.clinician.clear()
    type_patient(qtbot, rig, "BB-2", "Bo Diaz")
    qtbot.mouseClick(rig.tile("97530"), LEFT)
    assert running(rig) == {"AA-1": {"97110"}, "BB-2": {"97530"}}
    assert not rig.window.undo_banner.isVisible()


def test_new_patient_keeps_the_clinician(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97110")
    qtbot.mouseClick(rig.window.caseload.new_button, LEFT)
    header = rig.window.header
    assert header.patient.text() == ""
    assert header.clinician.text() == "Ann Lee"  # chosen once per workstation session
    qtbot.mouseClick(header.patient, LEFT)
    qtbot.keyClicks(header.patient, "BB-2")
    qtbot.mouseClick(rig.tile("97140"), LEFT)
    session = rig.controller.session
    assert session is not None and (session.patient_ref, session.clinician) == ("BB-2", "Ann Lee")


def test_switch_clinician_is_one_step(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97010")
    rig.window.switch_clinician_action.trigger()
    header = rig.window.header
    assert header.clinician.hasFocus() and header.clinician.selectedText() == "Ann Lee"
    qtbot.keyClicks(header.clinician, "Cy Moss")
    qtbot.mouseClick(header.patient, LEFT)
    qtbot.keyClicks(header.patient, "CC-3")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    session = rig.controller.session
    assert session is not None and session.clinician == "Cy Moss"
    assert running(rig) == {"AA-1": {"97010"}, "CC-3": {"97110"}}


# Qt raises a tool window when it is shown; the offscreen platform cannot, and says so.
@pytest.mark.qt_log_ignore("This plugin does not support (raise|propagateSizeHints)")
def test_the_tray_and_the_mini_view_list_every_running_patient(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97010")
    rig.clock.advance(seconds=1)  # the strip lists patients in the order they came
    start_patient(qtbot, rig, "BB-2", "97110")
    rig.window.mini_action.trigger()
    text = rig.window.mini.patients.text()
    assert "AA-1: 97010" in text and "BB-2: 97110" in text
    from therapy_timer.gui.main_window import caseload_summary

    lines = caseload_summary(rig.controller.view).splitlines()
    assert [line.split(":")[0] for line in lines] == ["AA-1", "BB-2"]
    # The tray's menu lists them too, and a tap there shows that patient.
    menu = rig.window.tray_menu
    patients = [a for a in menu.actions() if a in rig.window.tray_patient_actions]
    assert [a.text().split(":")[0] for a in patients] == ["AA-1", "BB-2"]
    assert "97010" in patients[0].text() and "97110" in patients[1].text()
    assert menu.actions().index(patients[-1]) < menu.actions().index(rig.window.tray_show_action)
    patients[0].trigger()
    session = rig.controller.session
    assert session is not None and session.patient_ref == "AA-1"
    rig.clock.advance(seconds=1)
    rig.controller.tick()
    assert [a.text().split(":")[0] for a in rig.window.tray_patient_actions] == ["AA-1", "BB-2"]


def test_a_long_run_turns_the_strip_entry_to_the_warning_colour(qtbot: Bot, rig: Rig) -> None:
    start_patient(qtbot, rig, "AA-1", "97110")
    rig.clock.advance(seconds=1)
    start_patient(qtbot, rig, "BB-2", "97010")
    rig.controller.switch_to(rig.controller.view.caseload[1].session_id)
    rig.clock.advance(minutes=rig.controller.forgot_to_stop_minutes)
    rig.controller.tick()
    aa, bb = rig.controller.view.caseload
    assert aa.long_running and not bb.long_running  # a modality is not one-on-one time
    button = rig.window.caseload.buttons[aa.session_id]
    assert "a4262c" in button.styleSheet().lower()
    assert button.text().splitlines()[1].startswith("\N{WARNING SIGN}")
