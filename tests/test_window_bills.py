"""The window shows, for each code, what the billing counts of it: real clicks on the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui_support import Bot, Rig, build, type_patient
from therapy_timer.gui.widgets.tiles import tile_lines

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def rig(qtbot: Bot, tmp_path: Path) -> Iterator[Rig]:
    yield from build(qtbot, tmp_path)


def _billed(rig: Rig) -> dict[str, tuple[int, int]]:
    session = rig.controller.session
    assert session is not None
    return {c.code: (c.minutes, c.units) for c in rig.service.summary(session.id).codes}


def test_a_supervised_modalitys_tile_shows_the_minutes_entered_by_hand_it_bills(
    qtbot: Bot, rig: Rig
) -> None:
    """The billing adds a supervised modality's stopwatch minutes and those entered by hand
    for it (``billing.pooled_input``); its tile showed the stopwatch's 10 of the 25 billed."""
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    qtbot.mouseClick(rig.tile("97012"), LEFT)
    rig.clock.advance(minutes=10)
    qtbot.mouseClick(rig.tile("97012"), LEFT)
    session = rig.controller.session
    assert session is not None
    store, clinic = rig.other()
    clinic.add_untimed(session.id, "97012", minutes=15)  # on paper, typed in afterwards
    store.close()
    rig.controller.poll()
    assert _billed(rig)["97012"] == (25, 1)
    tile = rig.tile("97012")
    assert tile.view.minutes == 25
    assert tile.view.units is None
    assert tile.accessibleDescription().endswith(", 25 minutes billed")  # as its line shows
    assert rig.tile("97110").view.minutes == _billed(rig)["97110"][0] == 10


def test_a_supervised_modality_recorded_without_minutes_shows_the_unit_it_bills(
    qtbot: Bot, rig: Rig
) -> None:
    """'untimed add 97012' without minutes (or the desk) bills one unit (R1.1); its tile read
    "beside · 0 min" and was said "0 minutes billed", as if nothing were. Timed on the
    stopwatch afterwards, it shows its minutes as any modality does."""
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=10)
    session = rig.controller.session
    assert session is not None
    store, clinic = rig.other()
    clinic.add_untimed(session.id, "97012")  # no minutes given
    store.close()
    rig.controller.poll()
    assert _billed(rig)["97012"] == (0, 1)
    tile = rig.tile("97012")
    assert tile_lines(tile.view) == ("8  97012", "1 unit · no minutes")
    assert tile.accessibleDescription().endswith(", 1 unit, minutes not recorded")
    assert tile_lines(rig.tile("97110").view) == ("1  97110", "1 unit · 10 min")

    qtbot.mouseClick(tile, LEFT)  # started beside 97110, then stopped
    rig.clock.advance(minutes=6)
    qtbot.mouseClick(tile, LEFT)
    assert _billed(rig)["97012"] == (6, 1)
    assert tile_lines(rig.tile("97012").view) == ("8  97012", "beside · 6 min")


def test_an_evaluation_timed_on_the_stopwatch_shows_ticked_with_its_minutes(
    qtbot: Bot, rig: Rig
) -> None:
    """'timer start 97161' bills one unit of 30 minutes; the window's row showed it unticked,
    as if not billed. It shows it ticked, with the 30 minutes, and a tap on it records
    nothing by hand (which the billing would add: 60)."""
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    session = rig.controller.session
    assert session is not None
    store, clinic = rig.other()
    clinic.start(session.id, "97161")  # the foot pedal, or the command line
    rig.clock.advance(minutes=30)
    clinic.stop(session.id)
    store.close()
    rig.controller.poll()
    assert _billed(rig)["97161"] == (30, 1)
    row = rig.window.untimed.row("97161")
    assert row.toggle.isChecked()
    assert row.minutes.text() == "30 min"
    qtbot.mouseClick(row.toggle, LEFT)
    row.minutes.setFocus()
    qtbot.keyClicks(row.minutes, "5")
    qtbot.keyClick(row.minutes, Qt.Key.Key_Return)
    assert rig.store.untimed_services(session.id) == []
    assert row.toggle.isChecked()
    assert row.minutes.text() == "30 min"
    assert _billed(rig)["97161"] == (30, 1)
