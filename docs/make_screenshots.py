"""Save PNG screenshots of the window's main states under docs/screenshots/ (offscreen)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget

from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Role, builtin_catalogue
from therapy_timer.errors import TherapyTimerError
from therapy_timer.gui.app import app_icon
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.day_view import DayView
from therapy_timer.gui.main_window import MainWindow
from therapy_timer.gui.report_pdf import write_pdf
from therapy_timer.store import Store

OUT = Path(__file__).resolve().parent / "screenshots"


class ScriptClock:
    """A clock the script moves by hand, so the pictures show the same times every run."""

    def __init__(self) -> None:
        self._now = datetime(2025, 3, 10, 14, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, minutes: float = 0, seconds: float = 0) -> None:
        self._now += timedelta(minutes=minutes, seconds=seconds)


def dark_palette() -> QPalette:
    """A typical dark system palette, to check that nothing is drawn light-only."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e8e8e8",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.AlternateBase: "#2f2f2f",
        QPalette.ColorRole.Text: "#e8e8e8",
        QPalette.ColorRole.Button: "#3a3a3a",
        QPalette.ColorRole.ButtonText: "#e8e8e8",
        QPalette.ColorRole.Highlight: "#3d8ee6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Mid: "#707070",
        QPalette.ColorRole.PlaceholderText: "#a0a0a0",
        QPalette.ColorRole.ToolTipBase: "#3a3a3a",
        QPalette.ColorRole.ToolTipText: "#e8e8e8",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#808080"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#808080"))
    return palette


def save(widget: QWidget, name: str) -> Path:
    QApplication.processEvents()
    path = OUT / name
    widget.grab().save(str(path))
    print(path)
    return path


def shoot(data_dir: Path, suffix: str = "") -> None:
    clock = ScriptClock()
    catalogue = builtin_catalogue()
    store = Store.open(data_dir, clock=clock, actor="screenshots")
    service = Clinic(store, catalogue, clock, actor="screenshots")
    controller = SessionController(service)
    controller.load()
    window = MainWindow(controller, app_icon())
    window.resize(1100, 900)
    window.show()

    header = window.header
    header.patient.setText("JD-1")
    header.clinician.setText("Ann Lee")
    header.payer.setCurrentText("Medicare")
    controller.set_draft(header.draft())
    save(window, f"idle{suffix}.png")

    controller.start_code("97110")
    clock.advance(minutes=14, seconds=12)
    controller.set_untimed("97161", True, 20)
    controller.set_furnished_by(FurnishedBy.ASSISTANT)
    controller.start_code("97140")
    controller.start_code("97012")
    clock.advance(minutes=9, seconds=31)
    controller.tick()
    save(window, f"running-assistant{suffix}.png")

    window.mini_action.trigger()
    window.mini.resize(window.mini.sizeHint())
    save(window.mini, f"mini-view{suffix}.png")
    window.mini.hide()

    window.end_action.trigger()
    dialog = window.summary_dialog
    assert dialog is not None
    dialog.resize(900, 860)
    save(dialog, f"summary{suffix}.png")
    dialog.close()
    controller.stop_background()
    window.hide()
    store.close()


# -- the caseload (issue 12) ----------------------------------------------------------------

CASELOAD_SIZES = (
    # name, window size (a 1366x768 laptop and a 1024x600 tablet, less a title bar), font scale
    ("1366x768", 1366, 728, 1.0),
    ("1024x600", 1024, 560, 1.25),
)


def shoot_caseload(data_dir: Path, suffix: str = "") -> None:
    """Three patients at once: a hot pack running on, manual therapy, an assistant's gait
    training past the forgot-to-stop limit; at both screen sizes."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    base_font = app.font()
    for name, width, height, scale in CASELOAD_SIZES:
        font = base_font
        if scale != 1.0:
            font = type(base_font)(base_font)
            font.setPointSizeF(base_font.pointSizeF() * scale)
        app.setFont(font)
        clock = ScriptClock()
        store = Store.open(data_dir / name, clock=clock, actor="screenshots")
        service = Clinic(store, builtin_catalogue(), clock, actor="screenshots")
        controller = SessionController(service)
        controller.load()
        window = MainWindow(controller, app_icon())
        window.resize(width, height)
        window.show()

        def patient(
            ref: str,
            clinician: str,
            role: Role,
            *codes: str,
            controller: SessionController = controller,
            window: MainWindow = window,
        ) -> None:
            controller.new_patient()
            window.header.patient.setText(ref)
            window.header.clinician.setText(clinician)
            window.header.role.setCurrentText(role.value)
            window.header.payer.setCurrentText("Medicare")
            controller.set_draft(window.header.draft())
            for code in codes:
                controller.start_code(code)

        patient("MRN-4471", "Dee Park", Role.PTA, "97116")  # gait training, runs long
        clock.advance(minutes=20)
        patient("JD-1", "Ann Lee", Role.PT, "97010", "97110")  # hot pack, then exercise
        clock.advance(minutes=11, seconds=40)
        patient("KB-7", "Ann Lee", Role.PT, "97140")  # Ann moves on: JD-1's exercise stops
        clock.advance(minutes=3, seconds=5)
        controller.tick()
        save(window, f"caseload-{name}{suffix}.png")
        window.end_action.trigger()
        dialog = window.summary_dialog
        assert dialog is not None
        dialog.resize(dialog.minimumSizeHint().expandedTo(dialog.minimumSize()))
        save(dialog, f"summary-smallest-{name}{suffix}.png")  # the least room it will take
        dialog.close()
        controller.stop_background()
        window.hide()
        window.deleteLater()
        store.close()
    app.setFont(base_font)


FRONT_DESK_DAY = (
    # patient, clinician, role, payer, [(code, furnished by, minutes)], untimed
    ("JD-1", "Ann Lee", Role.PT, "Medicare",
     [("97110", "assistant", 23), ("97110", "therapist", 13), ("97140", "therapist", 30)], "97161"),
    ("MRN-4471", "Ann Lee", Role.PT, "Medicare", [("97112", "therapist", 20),
                                                  ("97110", "therapist", 20)], None),
    ("KB", "Bo Chen", Role.OTA, "Medicare", [("97530", "assistant", 38)], None),
    ("MRN-5120", "Cy Diaz", Role.OT, "Commercial (per-code)", [("97535", "therapist", 8),
                                                               ("97530", "therapist", 8)], "97165"),
    # Seen again in the afternoon: one claim day per patient, plan of care and payer (R1.2).
    ("MRN-4471", "Dee Park", Role.PTA, "Medicare", [("97110", "assistant", 10)], None),
    ("KB", "Cy Diaz", Role.OT, "Medicare", [("97535", "therapist", 6)], None),
)  # fmt: skip


def record_day(
    service: Clinic, store: Store, clock: ScriptClock, day: tuple = FRONT_DESK_DAY
) -> None:  # type: ignore[type-arg]
    for patient, clinician, role, payer, steps, untimed in day:
        session = service.open_session(
            patient_ref=patient, clinician=clinician, role=role, payer_profile=payer
        )
        for code, by, minutes in steps:
            service.start(session.id, code, FurnishedBy(by))
            clock.advance(minutes=minutes)
        if untimed:
            store.add_untimed(session.id, code=untimed, minutes=30)
        service.end_session(session.id)
        clock.advance(minutes=5)


def shoot_front_desk(data_dir: Path) -> None:
    """The day view and the printed day report on a small, fixed day."""
    clock = ScriptClock()
    catalogue = builtin_catalogue()
    store = Store.open(data_dir, clock=clock, actor="screenshots")
    service = Clinic(store, catalogue, clock, actor="screenshots")
    record_day(service, store, clock)
    service.open_session(patient_ref="LM", clinician="Bo Chen", role=Role.OTA,
                         payer_profile="Medicare")  # fmt: skip
    view = DayView(service)
    view.resize(1280, 600)
    view.show()
    save(view, "day-view.png")
    view.close()
    closed = [d for d in service.claim_days(service.today()) if not d.provisional]
    pdf = OUT / "day-report.pdf"
    write_pdf(closed, pdf)
    pdf.chmod(0o644)  # sample data, not health information: readable on the web
    if shutil.which("pdftoppm"):
        page = OUT / "day-report"
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf), str(page)],
                       check=True)  # fmt: skip
    store.close()


ROOM_2_DAY = (
    ("MRN-6030", "Eve Ruiz", Role.PTA, "Medicare",
     [("97110", "assistant", 25), ("97140", "assistant", 12)], None),
    ("MRN-4471", "Eve Ruiz", Role.PTA, "Medicare", [("97116", "assistant", 16)], None),
)  # fmt: skip


def _scaled(app: QApplication, base: QFont, scale: float) -> None:
    font = QFont(base)
    if scale != 1.0:
        font.setPointSizeF(base.pointSizeF() * scale)
    app.setFont(font)


def _wait(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the day view did not finish reading the clinic server")
        QApplication.processEvents()
        time.sleep(0.02)


def shoot_bundles_and_conflicts(data_dir: Path) -> None:
    """The day view with a version kept aside beside the day, and the two versions side by
    side, at a laptop's and a tablet's size."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    base = app.font()
    for name, width, height, scale in CASELOAD_SIZES:
        _scaled(app, base, scale)
        clock = ScriptClock()
        folder = data_dir / name
        store = Store.open(folder / "desk", clock=clock, actor="front-desk")
        desk = Clinic(store, builtin_catalogue(), clock, actor="front-desk")
        record_day(desk, store, clock)
        room_store = Store.open(folder / "room-2", clock=clock, actor="room-2")
        room = Clinic(room_store, builtin_catalogue(), clock, actor="room-2")
        record_day(room, room_store, clock, ROOM_2_DAY)
        first = room.export("bundle", clock.now().date(), out=folder / "first.json",
                            workstation="room-2")  # fmt: skip
        assert first.path is not None
        desk.import_bundles([first.path])
        # Room 2 finds its gait training stopped late and corrects it after the desk merged it.
        (later,) = [s for s in room.list_sessions(day=clock.now().date())
                    if s.patient_ref == "MRN-6030"]  # fmt: skip
        segment = room.segments(later.id)[1]
        room.amend_segment(segment.id, reason="stopped late: 8 minutes", minutes=8)
        second = room.export("bundle", clock.now().date(), out=folder / "later.json",
                             workstation="room-2")  # fmt: skip
        assert second.path is not None
        desk.import_bundles([second.path])
        view = DayView(desk)
        view.resize(width, height)
        view.show()
        save(view, f"day-view-conflict-{name}.png")
        view.compare_button.click()
        dialog = view.conflict_dialog
        assert dialog is not None
        dialog.resize(min(width, 1100), height)
        save(dialog, f"conflict-{name}.png")
        dialog.close()
        view.close()
        view.deleteLater()
        room_store.close()
        store.close()
    app.setFont(base)


def shoot_whole_clinic(data_dir: Path) -> None:
    """The desk's Whole clinic view: two workstations on a real local PostgreSQL (Debian's
    binaries, as the tests start it), a patient seen at both, one code running in room 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.server_support import binaries_missing, remove_cluster, start_cluster

    missing = binaries_missing()
    if missing:
        print(f"skipped the whole-clinic screenshots: {missing}")
        return
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    base = app.font()
    cluster = start_cluster()
    try:
        for n, (name, width, height, scale) in enumerate(CASELOAD_SIZES):
            _scaled(app, base, scale)
            database = f"clinic_{n}"
            cluster.psql(f"CREATE DATABASE {database}")
            Clinic.init_server(
                cluster.dsn(dbname=database),
                workstations=["ws_room1", "ws_room2"],
                desks=["desk_front"],
            )
            clock = ScriptClock()
            stores = []
            bundle = data_dir / name / "room1.json"
            for station, day in (("ws_room1", FRONT_DESK_DAY), ("ws_room2", ROOM_2_DAY)):
                station_store = Store.open(data_dir / name / station, clock=clock, actor=station)
                stores.append(station_store)
                here = Clinic(station_store, builtin_catalogue(), clock, actor=station)
                here.connect_server(cluster.dsn(user=station, dbname=database))
                record_day(here, station_store, clock, day)
                if station == "ws_room1":
                    here.export("bundle", clock.now().date(), out=bundle, workstation="ws_room1")
                    running = here.open_session(patient_ref="KB-7", clinician="Ann Lee",
                                                role=Role.PT, payer_profile="Medicare")  # fmt: skip
                    here.start(running.id, "97140")
                    clock.advance(minutes=6)
                else:
                    # Room 2 merged room 1's bundle and corrected a session of it: the
                    # server keeps that version aside for the desk.
                    here.import_bundles([bundle])
                    (copy,) = [s for s in here.list_sessions(day=clock.now().date())
                               if s.patient_ref == "MRN-5120"]  # fmt: skip
                    first = here.segments(copy.id)[0]
                    here.amend_segment(first.id, reason="started late", minutes=6)
                try:
                    here.sync_server()
                except TherapyTimerError as exc:  # the version kept aside: said, not raised
                    print(f"{station}: {exc}")
                clock.advance(minutes=3)
            desk_store = Store.open(data_dir / name / "desk", clock=clock, actor="front-desk")
            stores.append(desk_store)
            desk = Clinic(desk_store, builtin_catalogue(), clock, actor="front-desk")
            desk.connect_server(cluster.dsn(user="desk_front", dbname=database))
            view = DayView(desk)
            view.resize(width, height)
            view.show()
            view.clinic_button.click()
            _wait(lambda view=view: "on the clinic server" in view.message.text())
            save(view, f"whole-clinic-{name}.png")
            view.close()
            view.deleteLater()
            for opened in stores:
                opened.close()
    finally:
        remove_cluster(cluster)
        app.setFont(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dark", action="store_true", help="also shoot with a dark palette")
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    app.setStyle(QStyleFactory.create("Fusion"))
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        shoot(Path(folder) / "light")
        shoot_caseload(Path(folder) / "caseload")
        shoot_front_desk(Path(folder) / "desk")
        shoot_bundles_and_conflicts(Path(folder) / "bundles")
        shoot_whole_clinic(Path(folder) / "clinic")
    if args.dark:
        app.setPalette(dark_palette())
        with tempfile.TemporaryDirectory() as folder:
            shoot(Path(folder) / "dark", suffix="-dark")
            shoot_caseload(Path(folder) / "caseload", suffix="-dark")


if __name__ == "__main__":
    main()
