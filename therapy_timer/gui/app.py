"""The window's entry point: QApplication, excepthook and the composition root."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6 import QtCore
from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QWidget

from therapy_timer import paths
from therapy_timer.clinic import Clinic, load_catalogue
from therapy_timer.clock import Clock, SystemClock
from therapy_timer.codes import Catalogue
from therapy_timer.errors import DatabaseCorrupt, InvalidInput, StorageUnavailable
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.launch import folder_refusal, resume_collector
from therapy_timer.gui.main_window import MainWindow

if TYPE_CHECKING:
    from therapy_timer.gui.clinic_sync import ClinicSync
    from therapy_timer.gui.day_view import DayView

SMOKE_TEST_TIMEOUT_MS = 20_000
FIRST_PAINT_WAIT_MS = 5_000
"""The longest what waits for the first paint (the collector's pause, the window's lease and
polling, the daily backup, the clinic sync) waits: a window that is never exposed (a hidden
desktop, a screen locked at log-in) never paints, and must still take its lease and back up."""
ICON_SIZES = (16, 32, 48, 64, 128, 256)

ErrorShower = Callable[[str, str], None]
"""Shows a title and a plain-language message to the user."""


def app_icon() -> QIcon:
    """The application icon from ``resources/icons`` (PNG sizes, so no SVG plugin loads)."""
    icon = QIcon()
    try:
        folder = paths.resource_path("icons")
    except FileNotFoundError:
        return icon
    for size in ICON_SIZES:
        png = folder / f"{paths.APP_ID}-{size}.png"
        if png.exists():
            icon.addFile(str(png))
    return icon


def show_error_box(title: str, message: str) -> None:
    """A blocking message box: used before the window exists, when there is nothing else."""
    from PySide6.QtWidgets import QMessageBox  # here: PySide6 builds it on first use (issue 13)

    box = QMessageBox(QMessageBox.Icon.Critical, title, message)
    box.exec()


def install_excepthook(show: ErrorShower) -> None:
    """Show unexpected errors plainly (and print the details) instead of vanishing silently."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        if isinstance(exc, StorageUnavailable):
            show("Therapy Timer cannot reach its data", str(exc))
            return
        show(
            "Something went wrong",
            "Therapy Timer hit an unexpected problem and the last action may not have "
            "happened. Recorded minutes are safe: each step is saved as it happens.\n\n"
            f"Details for support: {exc_type.__name__}: {exc}",
        )

    sys.excepthook = hook


def _non_blocking_box(parent: QWidget | None) -> ErrorShower:
    def show(title: str, message: str) -> None:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.Critical, title, message, parent=parent)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    return show


class _FirstPaint(QObject):
    """Calls ``done`` once, just after the watched window's first paint has been delivered
    (or, with ``wait_at_most``, when that long has passed without one)."""

    def __init__(self, done: Callable[[], None]) -> None:
        super().__init__()
        self._done: Callable[[], None] | None = done
        self._queued = False

    def wait_at_most(self, milliseconds: int) -> None:
        QTimer.singleShot(milliseconds, self._call)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._queued:
            self._queued = True
            # Queued, so the paint that triggered this is finished and flushed first.
            QTimer.singleShot(0, self._call)
        return False

    def _call(self) -> None:
        if self._done is not None:
            done, self._done = self._done, None
            done()


class DailyBackup(QObject):
    """Today's backup (integrity check, copy, rotation) in a worker thread after first paint.

    On a clinic-year database it takes seconds; run on the GUI thread it delayed the window and
    every tap. The worker opens its OWN connection (an sqlite3 connection must not be shared
    across threads; WAL lets the window write meanwhile) and reports problems back to the GUI
    thread through a queued signal, where ``show`` runs.
    """

    reported = Signal(str, str)
    """(title, message) of a problem; emitted in the worker, delivered in the GUI thread."""
    finished = Signal()
    """Emitted in the GUI thread once the worker is done, whatever happened."""

    _done_in_worker = Signal()

    def __init__(self, folder: Path, clock: Clock, catalogue: Catalogue, show: ErrorShower) -> None:
        super().__init__()
        self._folder = folder
        self._clock = clock
        self._catalogue = catalogue
        self._show = show
        self._thread: threading.Thread | None = None
        # Queued explicitly: the sender is a plain Python thread, and the slots must run where
        # this object lives (the GUI thread), never in the worker.
        self.reported.connect(self._on_reported, QtCore.Qt.ConnectionType.QueuedConnection)
        self._done_in_worker.connect(self.finished, QtCore.Qt.ConnectionType.QueuedConnection)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="daily-backup")
            self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the worker is done (or ``timeout_s``); whether it is done."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        where = f"\n\nData folder: {self._folder}"
        try:
            with Clinic.open(self._folder, clock=self._clock, catalogue=self._catalogue) as own:
                own.daily_backup()
        except DatabaseCorrupt as exc:
            self.reported.emit("Therapy Timer's data is damaged", f"{exc}{where}")
        except StorageUnavailable as exc:
            # The minutes are still safe in the database: say so and carry on.
            self.reported.emit("Today's backup could not be made", f"{exc}{where}")
        except Exception as exc:  # a bug: shown like the excepthook would, never lost in a thread
            traceback.print_exception(exc, file=sys.stderr)
            self.reported.emit(
                "Today's backup could not be made",
                f"Details for support: {type(exc).__name__}: {exc}{where}",
            )
        finally:
            self._done_in_worker.emit()

    @Slot(str, str)
    def _on_reported(self, title: str, message: str) -> None:
        self._show(title, message)


# Named by the app, not a command: `therapy-timer` (the README's) and `therapy-timer-gui`
# (the desktop file's) both open the window.
NO_DISPLAY_MESSAGE = (
    "Therapy Timer: no display was found (DISPLAY and WAYLAND_DISPLAY are not set), so the"
    " window cannot open. Run it on the workstation's desktop, or use the command-line jobs"
    " instead (therapy-timer timer start CODE --patient REF, therapy-timer --help), or draw"
    " off screen with QT_QPA_PLATFORM=offscreen."
)


def display_available(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> bool:
    """Whether Qt can open a window here: on Linux without a display or a chosen platform
    plugin it would abort the process with a misleading hint about libxcb-cursor0."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return True
    return any(env.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run(
    data_dir: Path | None = None,
    *,
    smoke_test: bool = False,
    argv: Sequence[str] | None = None,
    clock: Clock | None = None,
    show_error: ErrorShower | None = None,
) -> int:
    """Build the app against the data folder and run it; the process exit status."""
    if not smoke_test and QApplication.instance() is None and not display_available():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return 2
    started = time.perf_counter()
    if smoke_test and sys.platform.startswith("linux"):
        # Without a display Qt aborts the process (machine-notes.md); a smoke test on a
        # headless build machine should draw offscreen instead.
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv if argv is not None else sys.argv[:1]))
    assert isinstance(app, QApplication)
    app.setApplicationName("Therapy Timer")
    QGuiApplication.setDesktopFileName(paths.APP_ID)

    def report(title: str, message: str) -> None:
        if smoke_test:
            print(f"{title}: {message}", file=sys.stderr)
        else:
            (show_error or show_error_box)(title, message)

    folder = paths.data_dir(data_dir)
    refused = folder_refusal(str(folder))  # as the setting gives it: the options refuse it
    if refused is not None:
        report(
            "Therapy Timer cannot open its data",
            f"{paths.DATA_DIR_ENV} (or --data-dir): {refused}. Nothing was changed.",
        )
        return 2
    clock = clock or SystemClock()
    try:
        catalogue = load_catalogue(folder)
    except InvalidInput as exc:
        report("The clinic's code file has a problem", str(exc))
        return 1
    try:
        clinic = Clinic.open(folder, clock=clock, catalogue=catalogue)
    except StorageUnavailable as exc:
        report("Therapy Timer cannot open its data", f"{exc}\n\nData folder: {folder}")
        return 1
    backup: DailyBackup | None = None
    sync: ClinicSync | None = None
    try:
        controller = SessionController(clinic)
        try:
            controller.load()
        except StorageUnavailable as exc:
            report("Therapy Timer cannot open its data", f"{exc}\n\nData folder: {folder}")
            return 1
        window = MainWindow(controller, app_icon, lambda: _day_view(clinic))
        if smoke_test:  # a smoke test only looks; it leaves no backup behind
            return _smoke_test(app, window, started)
        shower = show_error or _non_blocking_box(window)
        install_excepthook(shower)

        def after_first_paint() -> None:
            nonlocal backup
            resume_collector()
            # The window's lease (a committed, fsynced write) and the polling, then the backup
            # in its worker: none of them makes the first paint wait (nor its queued
            # connections, which name Qt enums: theme.pen).
            controller.start_background()
            backup = DailyBackup(folder, clock, catalogue, shower)
            backup.start()
            window.finish_start()  # if nothing has yet: the menus' actions, the tray, the icon
            if window.tray is not None:
                window.tray.show()

        watcher = _FirstPaint(after_first_paint)
        window.installEventFilter(watcher)
        if clinic.server_dsn() is not None:  # the sync's module loads only with a server
            from therapy_timer.gui.clinic_sync import ClinicSync

            sync = ClinicSync.attach(clinic, controller, window)
        if sync is not None:
            sync_watcher = _FirstPaint(sync.start)
            window.installEventFilter(sync_watcher)
            sync_watcher.wait_at_most(FIRST_PAINT_WAIT_MS)
        window.show()
        watcher.wait_at_most(FIRST_PAINT_WAIT_MS)
        window.offer_recovery()
        return app.exec()
    finally:
        if sync is not None:
            sync.finish()  # one last push, bounded: quitting never hangs on the network
        if backup is not None:
            backup.wait()  # a half-made backup is never left behind (it is written then renamed)
        clinic.close()


def _day_view(clinic: Clinic) -> DayView:
    """The day view, imported on first use: it and its PDF writer cost a start ~30 ms."""
    from therapy_timer.gui.day_view import DayView

    return DayView(clinic)


def _smoke_test(app: QApplication, window: MainWindow, started: float) -> int:
    """Show the window, wait for its first paint, print ``{"ready_ms": N, "painted_at": T}``.

    ``ready_ms`` counts from ``run()``; ``painted_at`` is the wall clock (``time.time()``) at the
    first paint, so a benchmark can count from the moment it spawned the process.
    """
    outcome: dict[str, float] = {}

    def painted() -> None:
        resume_collector()
        outcome["painted_at"] = time.time()
        outcome["ready_ms"] = round((time.perf_counter() - started) * 1000, 1)
        # exit(), not quit(): Qt 6's quit() first asks the windows to close, and the window
        # refuses (it asks the user) while a stopwatch is running.
        app.exit(0)

    watcher = _FirstPaint(painted)
    window.installEventFilter(watcher)
    # A timer of its own, stopped once the loop ends: a one-shot left pending would call exit()
    # later, outside any exec(), and Qt then ends every event loop of the process at once.
    give_up = QTimer()
    give_up.setSingleShot(True)
    give_up.timeout.connect(lambda: app.exit(1))
    give_up.start(SMOKE_TEST_TIMEOUT_MS)
    window.show()
    app.exec()
    give_up.stop()
    window.removeEventFilter(watcher)
    window.hide()
    if "ready_ms" not in outcome:
        print(f"the window did not paint within {SMOKE_TEST_TIMEOUT_MS} ms", file=sys.stderr)
        return 1
    print(json.dumps(outcome), flush=True)
    return 0
