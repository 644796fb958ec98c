"""The day view exports the days it shows, read when its screen loaded: a session another
station changed since then is not marked exported, and the desk is told."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from tests.fakes import FakeClock
from tests.gui_support import Bot
from tests.test_export import CATALOGUE, generate_day
from therapy_timer.billing import ClaimDay
from therapy_timer.clinic import Clinic
from therapy_timer.gui.day_view import DayView
from therapy_timer.model import Session
from therapy_timer.store import Store

SHOTS = os.environ.get("THERAPY_TIMER_SHOTS")


def _payer_changed_elsewhere(
    other: Store, clock: FakeClock, shown: Sequence[ClaimDay]
) -> tuple[Session, str]:
    """Another station (the command line on the same data folder) corrects the payer of the
    first session the screen shows; the session as the screen read it, and the new payer."""
    changed = shown[0].sessions[0]
    payer = next(p.name for p in other.payer_profiles() if p.name != changed.payer_profile)
    Clinic(other, CATALOGUE, clock).change_payer(changed.id, payer, reason="wrong payer")
    return changed, payer


def _only_the_changed_session_stays_unmarked(
    store: Store, shown: Sequence[ClaimDay], changed: Session
) -> None:
    assert not store.get_session(changed.id).exported
    assert all(store.get_session(s.id).exported for d in shown for s in d.sessions if s != changed)


def _shots(view: DayView, name: str) -> None:
    if SHOTS:
        for width, height in ((1366, 768), (1024, 600)):
            view.resize(width, height)
            view.grab().save(os.path.join(SHOTS, f"{name}-{width}x{height}.png"))


def test_a_session_changed_since_the_screen_loaded_stays_due_and_the_desk_is_told(
    qtbot: Bot, tmp_path: Path
) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    with Store.open(data, clock=clock) as store, Store.open(data, clock=clock) as other:
        service = Clinic(store, CATALOGUE, clock)
        generate_day(service, store, clock, 6)
        asked: list[Path] = []

        def ask_file(_parent: QWidget, suggested: str, _filter: str) -> str:
            asked.append(tmp_path / suggested)
            return str(asked[-1])

        view = DayView(service, ask_file=ask_file)
        qtbot.add_widget(view)
        view.show()
        shown = view.shown
        changed, payer = _payer_changed_elsewhere(other, clock, shown)

        qtbot.mouseClick(view.csv_button, Qt.MouseButton.LeftButton)
        (path,) = asked
        assert payer not in path.read_text(encoding="utf-8")  # the screen's days, as read
        sessions = sum(len(d.visits) for d in shown)
        assert view.message.text() == (
            f"Exported {sessions} session(s) to {path}; {sessions - 1} marked exported."
            " 1 session(s) changed while exporting: the file holds them as they were, so they"
            " stay due for export."
        )
        _only_the_changed_session_stays_unmarked(store, shown, changed)
        _shots(view, "export-race")


def test_marking_shown_days_leaves_a_session_changed_since_the_screen_loaded_due(
    qtbot: Bot, tmp_path: Path
) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    with Store.open(data, clock=clock) as store, Store.open(data, clock=clock) as other:
        service = Clinic(store, CATALOGUE, clock)
        generate_day(service, store, clock, 3)
        view = DayView(service)
        qtbot.add_widget(view)
        view.show()
        shown = view.shown
        changed, _ = _payer_changed_elsewhere(other, clock, shown)

        view.table.selectAll()
        qtbot.mouseClick(view.exported_button, Qt.MouseButton.LeftButton)
        assert view.message.text() == (
            "Marked 2 claim day(s) exported. 1 session(s) changed since this screen was read:"
            " not marked, 1 day(s) stay due for export."
        )
        _only_the_changed_session_stays_unmarked(store, shown, changed)
        _shots(view, "mark-race")
