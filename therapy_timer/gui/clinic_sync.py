"""The window's clinic-server sync: a worker thread pushing every few seconds and at every
close, and a status-bar line saying when it last synced or that the server is away."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QMainWindow

from therapy_timer.gui import theme

if TYPE_CHECKING:
    from therapy_timer.clinic import Clinic
    from therapy_timer.gui.controller import SessionController
    from therapy_timer.server import BackgroundSync

INTERVAL_S = 5.0
"""How often the window pushes when nothing closes: the desk sees a station a few seconds late."""

FINAL_ROUND_S = 5.0
"""How long quitting waits for the last push; a server that hangs is left behind (the next
start pushes what it did not)."""


@dataclass(frozen=True)
class SyncView:
    """What the status line shows: a short text, the details in its tooltip, and whether it
    is a warning (the server is away or refused)."""

    text: str
    details: str
    warning: bool


def sync_view(
    *,
    last_sync_utc: datetime | None,
    problem: str,
    unreachable: bool,
    kept_aside: int,
    busy: bool,
    held: Sequence[str] = (),
    desk: bool = False,
    not_sent: int = 0,
    disconnected: bool = False,
    here: bool = False,
    clock: str = "",
) -> SyncView:
    """The status line for the worker's last round, in the clinic's local time; ``held``:
    what the round said of each session it kept here (``SyncReport.held``); ``here``: the
    round failed on this computer, not at the server; ``clock``: the round's
    ``SyncReport.clock_message``."""
    view = _sync_view(
        last_sync_utc=last_sync_utc,
        problem=problem,
        unreachable=unreachable,
        kept_aside=kept_aside,
        busy=busy,
        held=held,
        desk=desk,
        not_sent=not_sent,
        disconnected=disconnected,
        here=here,
    )
    if not clock or problem:
        return view
    # Said beside whatever else the round said: a wrong clock writes wrong times into
    # every session until it is set right.
    details = f"{clock[0].upper()}{clock[1:]}." + (f"\n\n{view.details}" if view.details else "")
    return SyncView(f"{view.text} · this computer's clock is wrong", details, True)


def _sync_view(
    *,
    last_sync_utc: datetime | None,
    problem: str,
    unreachable: bool,
    kept_aside: int,
    busy: bool,
    held: Sequence[str],
    desk: bool,
    not_sent: int,
    disconnected: bool,
    here: bool,
) -> SyncView:
    last = "never" if last_sync_utc is None else last_sync_utc.astimezone().strftime("%H:%M")
    if problem and unreachable:
        return SyncView(
            f"Clinic server unreachable · last synced {last} · recording continues here",
            problem,
            True,
        )
    if problem and here:
        return SyncView(
            f"Clinic server sync stopped on this computer · last synced {last}", problem, True
        )
    if problem:
        return SyncView(f"Clinic server refused the sync · last synced {last}", problem, True)
    if disconnected:
        return SyncView(
            "Clinic server: disconnected here (clinic connect to sync again)", "", False
        )
    if desk and not_sent:
        return SyncView(
            f"Clinic server: the front desk · {not_sent} session(s) recorded here are not on it",
            "The desk's role reads every workstation and sends nothing: bill these sessions"
            " from this computer's own export, or connect it as a workstation role.",
            True,
        )
    if desk:
        return SyncView("Clinic server: the front desk (reads every workstation)", "", False)
    if last_sync_utc is None:
        return SyncView(
            "Clinic server: syncing…" if busy else "Clinic server: not synced yet", "", False
        )
    if held:
        noun = "session stays" if len(held) == 1 else "sessions stay"
        return SyncView(
            f"Clinic server: synced {last} · {len(held)} {noun} here: the server cannot store"
            f" {'it' if len(held) == 1 else 'them'}",
            "\n\n".join(held),
            True,
        )
    if kept_aside:
        noun = "session" if kept_aside == 1 else "sessions"
        return SyncView(
            f"Clinic server: synced {last} · {kept_aside} {noun} kept aside for the desk",
            "The server holds another version of these sessions; the desk settles them"
            " (therapy-timer clinic conflicts).",
            True,
        )
    return SyncView(f"Clinic server: synced {last}", "", False)


class ClinicSync(QObject):
    """Runs the clinic's background sync beside a window and shows how it goes.

    The worker opens the data folder in its own thread, so a tap never waits for the server
    (even one that accepts and never answers); the status line is refreshed from a queued
    signal after each round and only reads what the round left behind.
    """

    changed = Signal(object)  # SyncView, delivered in the GUI thread
    _round_done = Signal()  # emitted in the worker thread
    _loaded = Signal()  # emitted in the loading thread

    def __init__(self, clinic: Clinic, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__()
        self._clinic = clinic
        self._interval_s = interval_s
        self.label = QLabel()
        self.label.setObjectName("clinic-sync-status")
        self.label.setAccessibleName("Clinic server sync")
        self._worker: BackgroundSync | None = None
        self._loader: threading.Thread | None = None
        self._finished = False
        self._loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)
        # Queued explicitly: the sender is a plain Python thread; the label is the GUI thread's.
        self._round_done.connect(self._on_round_done, Qt.ConnectionType.QueuedConnection)
        self._show(
            sync_view(last_sync_utc=None, problem="", unreachable=False, kept_aside=0, busy=True)
        )

    @classmethod
    def attach(
        cls,
        clinic: Clinic,
        controller: SessionController,
        window: QMainWindow,
        *,
        interval_s: float = INTERVAL_S,
    ) -> ClinicSync | None:
        """Wire a sync to the window when a clinic server is configured (None otherwise): a
        push at every close, the status in the window's status bar. ``start()`` it once the
        window is painted (psycopg loads then, not before the first paint)."""
        if clinic.server_dsn() is None:
            return None
        sync = cls(clinic, interval_s=interval_s)
        controller.session_closed.connect(sync.request)
        window.statusBar().addPermanentWidget(sync.label)
        return sync

    def start(self) -> None:
        """Load the server code in a thread (psycopg takes ~120 ms to import: a tap must not
        wait for it), then start the worker from the GUI thread."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="clinic-sync-load", daemon=True)
            self._loader.start()

    def _load(self) -> None:
        type(self._clinic).load_server_support()
        self._loaded.emit()

    @Slot()
    def _on_loaded(self) -> None:
        if self._worker is None and not self._finished:
            self._worker = self._clinic.background_sync(
                self._interval_s, on_round=self._round_done.emit
            )

    @property
    def worker(self) -> BackgroundSync | None:
        return self._worker

    @property
    def view(self) -> SyncView:
        return self._view

    @Slot()
    @Slot(str)
    def request(self, _closed_session: str = "") -> None:
        """Push now (a session was closed); returns at once."""
        if self._worker is not None:
            self._worker.request()

    def finish(self, timeout_s: float = FINAL_ROUND_S) -> bool:
        """On quitting: one last push, waited for at most ``timeout_s``; whether it ended."""
        self._finished = True
        if self._worker is None:
            return True
        return self._worker.stop(timeout_s, last_round=True)

    @Slot()
    def _on_round_done(self) -> None:
        worker = self._worker
        if worker is None:
            return
        report = worker.last_report
        self._show(
            sync_view(
                last_sync_utc=worker.last_sync_utc,
                problem=worker.problem,
                unreachable=worker.unreachable,
                kept_aside=0 if report is None else report.waiting,
                busy=worker.busy,
                held=() if report is None else [h.message for h in report.held],
                desk=report is not None and report.desk,
                not_sent=0 if report is None else report.not_sent,
                disconnected=report is not None and report.disconnected and not worker.problem,
                here=worker.here,
                clock="" if report is None else report.clock_message,
            )
        )

    def _show(self, view: SyncView) -> None:
        self._view = view
        self.label.setText(view.text)
        self.label.setToolTip(view.details)
        # The alert colour (white on red, as the banners) only while something is wrong.
        self.label.setAutoFillBackground(view.warning)
        palette = self.label.palette()
        if view.warning:
            palette.setColor(QPalette.ColorRole.Window, theme.ALERT_BG)
            palette.setColor(QPalette.ColorRole.WindowText, theme.ON_STATE_FG)
        else:
            palette = QPalette()
        self.label.setPalette(palette)
        self.changed.emit(view)
