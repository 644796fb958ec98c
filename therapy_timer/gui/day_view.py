"""The front desk's day view: the claim days of a date range (this workstation's, or the whole
clinic's from the clinic server), filters, the note, exports, bundles and kept-aside versions."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QDate, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from therapy_timer import export as ex
from therapy_timer import rules
from therapy_timer.billing import ClaimDay, lines_text, visit_text
from therapy_timer.clinic import Clinic, ClinicRead
from therapy_timer.errors import NoRoom, TherapyTimerError
from therapy_timer.gui import theme
from therapy_timer.gui.conflict_dialog import ConflictDialog
from therapy_timer.gui.report_pdf import write_pdf
from therapy_timer.gui.view_state import Refusal
from therapy_timer.gui.widgets.corrections import CorrectionsDialog
from therapy_timer.gui.widgets.reason import ReasonDialog
from therapy_timer.model import Conflict, clinician_key

if TYPE_CHECKING:  # psycopg loads only when a clinic server is read
    from therapy_timer.server import KeptAside

COLUMNS = ("Patient", "Sessions", "Billed lines", "Timed min", "Total min", "Status",
           "Warnings")  # fmt: skip
"""One row per claim day (R1.2): a patient's sessions of a date, plan of care and payer."""
ALL = "All"
STATUSES = (ALL, *ex.STATUSES, "imported")
AUTO_READ_DAYS = 31
"""The longest range read as its dates change; a longer one is read on Refresh: a year of a
20-clinician clinic took 27-46 s to read, the view frozen, for a From year stepped by one."""

FileAsker = Callable[[QWidget, str, str], str]
"""(parent, suggested name, filter) -> chosen path or "" — QFileDialog unless a test swaps it."""
FilesAsker = Callable[[QWidget], list[str]]
"""(parent) -> the bundle files chosen to import, or none — QFileDialog unless a test swaps it."""

THIS_WORKSTATION, WHOLE_CLINIC = "This workstation", "Whole clinic"
NO_SERVER = (
    "Whole clinic: no clinic server is set up for this workstation (therapy-timer clinic "
    "connect DSN); these are the sessions recorded here."
)
NO_SERVER_TIP = (
    "No clinic server is set up for this workstation, so the day view shows the sessions "
    "recorded here. To see every workstation's, set one up with: therapy-timer clinic "
    "connect DSN (see docs/clinic-server.md)."
)

OPEN_ADVICE = (
    "Open sessions are never exported: end them at the treatment table first, or leave their "
    "days out with the Status filter (only the days listed are exported)."
)
"""What the desk can do about an open session in the range: the command line's advice,
--include-open, is no help here."""


def _ask_file(parent: QWidget, suggested: str, filter_: str) -> str:
    # The day view asks before replacing a file itself, the same for every format.
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export", suggested, filter_, options=QFileDialog.Option.DontConfirmOverwrite
    )
    return path


def _ask_bundles(parent: QWidget) -> list[str]:
    paths, _ = QFileDialog.getOpenFileNames(
        parent, "Import bundles", "", "Bundles (*.json);;All files (*)"
    )
    return paths


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _pydate(day: QDate) -> dt.date:
    return dt.date(day.year(), day.month(), day.day())


def matches(day: ClaimDay, clinician: str, status: str) -> bool:
    if clinician != ALL and all(
        clinician_key(s.clinician) != clinician_key(clinician) for s in day.sessions
    ):
        return False
    if status == ALL:
        return True
    if status == "imported":
        return any(s.origin is not None for s in day.sessions)
    return day.status == status


def patient_text(day: ClaimDay) -> str:
    text = f"{day.patient_ref} ({day.date_of_service:%m-%d})"
    if day.initials_only:
        # Two people with the same initials would be billed as one: the desk must check.
        text += "\n\N{WARNING SIGN} initials: one person?"
    return text


def sessions_text(day: ClaimDay) -> str:
    """Each session of the day on its own line: in-out, clinician, where it came from."""
    lines = []
    for visit in day.visits:
        session = visit.session
        time_in, time_out, ran_overnight = ex.visit_times(visit)
        times = f"{time_in}\N{EN DASH}{time_out}" if time_in else "not started"
        overnight = " \N{WARNING SIGN} ran overnight" if ran_overnight else ""
        origin = f", from {session.origin}" if session.origin else ""
        still = ", open" if session.is_open else ""
        lines.append(
            f"{times} {session.clinician} ({session.role.value}){still}{origin}{overnight}"
        )
    return "\n".join(lines)


def warnings_text(day: ClaimDay) -> str:
    """The gist of each warning to act on; information only counts (the note has it)."""
    warnings = day.result.warnings
    act = [w for w in warnings if w.severity is rules.Severity.ACT]
    shown = [f"{w.rule}: {w.gist or ex.first_sentence(w.message)}" for w in act]
    info = len(warnings) - len(act)
    if info:
        shown.append(f"{info} for information")
    return "\n".join(shown)


class NoteDialog(QDialog):
    """A session's note, read-only, for the front desk to check or copy."""

    def __init__(self, parent: QWidget | None, title: str, note: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumSize(theme.TOUCH_MIN * 14, theme.TOUCH_MIN * 10)
        self.text = QPlainTextEdit(note)
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Note text")
        # Opened to be pasted into the EMR: all of it is selected, so Ctrl+C copies the note
        # (with nothing selected it copied nothing).
        self.text.selectAll()
        self.text.setFocus()
        self.copy_button = QPushButton("&Copy note")
        close = QPushButton("Close")
        row = QHBoxLayout()
        row.addStretch(1)
        for button in (self.copy_button, close):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", ""))
            row.addWidget(button)
        self.copy_button.clicked.connect(self._on_copy_clicked)
        close.clicked.connect(self.accept)
        column = QVBoxLayout(self)
        column.addWidget(self.text)
        column.addLayout(row)

    def _on_copy_clicked(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())

    @classmethod
    def show_for(cls, parent: QWidget | None, title: str, note: str) -> NoteDialog:
        dialog = cls(parent, title, note)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog


class PatientRefDialog(QDialog):
    """Give one session of a claim day another patient reference (two people shared one)."""

    def __init__(self, parent: QWidget | None, day: ClaimDay) -> None:
        super().__init__(parent)
        self.setWindowTitle("Separate a session: another patient reference")
        self._day = day
        self.session = QComboBox()
        self.session.setAccessibleName("Session to move")
        for visit in day.visits:
            self.session.addItem(visit_text(visit), visit.session.id)
        self.session.setCurrentIndex(len(day.visits) - 1)
        self.reference = QLineEdit()
        self.reference.setAccessibleName("New patient reference")
        self.reference.setPlaceholderText("The other patient's record number (MRN)")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        for widget in (self.session, self.reference, *self.buttons.buttons()):
            widget.setMinimumHeight(theme.TOUCH_MIN)
        self.ok_button.setEnabled(False)
        explain = QLabel(
            f"Sessions billed together as {day.patient_ref} on {day.date_of_service.isoformat()}."
            " Choose the one that belongs to another person and give that person's reference;"
            " the change is kept in the audit log with a reason."
        )
        explain.setWordWrap(True)
        column = QVBoxLayout(self)
        column.addWidget(explain)
        column.addWidget(self.session)
        column.addWidget(self.reference)
        column.addWidget(self.buttons)
        self.reference.textChanged.connect(self._on_reference_text_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    @property
    def ok_button(self) -> QPushButton:
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert button is not None
        return button

    @property
    def chosen(self) -> tuple[str, str]:
        """(session id, new reference) as chosen."""
        return str(self.session.currentData()), self.reference.text().strip()

    @classmethod
    def ask(
        cls, parent: QWidget | None, day: ClaimDay, on_chosen: Callable[[str, str], None]
    ) -> PatientRefDialog:
        dialog = cls(parent, day)
        dialog.accepted.connect(lambda: on_chosen(*dialog.chosen))
        dialog.finished.connect(dialog.deleteLater)
        theme.settle_layout(dialog)
        dialog.open()
        return dialog

    def _on_reference_text_changed(self, text: str) -> None:
        self.ok_button.setEnabled(bool(text.strip()))


def conflict_text(conflict: Conflict) -> str:
    """One kept-aside version in the list beside the day: whose, which day, from where, why."""
    record = conflict.record
    return (
        f"{record.get('patient_ref')} {record.get('date_of_service')}, from {conflict.origin}:"
        f" {conflict.why}"
    )


def kept_text(kept: KeptAside) -> str:
    """A version the clinic server kept aside, in the list beside the whole clinic's days."""
    record = kept.record
    return (
        f"{record.get('patient_ref')} {record.get('date_of_service')}, from {kept.workstation}:"
        f" {kept.why}"
    )


def _ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "never"
    minutes = int((now - moment).total_seconds() // 60)
    when = f"{moment.astimezone():%H:%M}"
    if moment.astimezone().date() != now.astimezone().date():
        when = f"{moment.astimezone():%Y-%m-%d %H:%M}"
    return f"{when} ({minutes} min ago)" if 0 <= minutes < 24 * 60 else when


def stations_text(read: ClinicRead, now: dt.datetime) -> str:
    """Each workstation's last sync and who is running what there right now."""
    lines = []
    for station in read.workstations:
        running = "; ".join(
            f"{r.get('clinician')}: {r.get('patient_ref')} {r.get('code')}"
            f" since {_ago(_utc(r.get('since_utc')), now).split(' (')[0]}"
            for r in station.running
        )
        lines.append(
            f"{station.name}: last sync {_ago(station.last_sync_utc, now)}; "
            + (f"running {running}" if running else "nothing running")
        )
    return "\n".join(lines) or "No workstation has synced to the clinic server yet."


def _utc(raw: object) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return None


class DayView(QWidget):
    """Claim days of a date range: what is billable, amended, pooled or needs a look."""

    server_read = Signal(int, object)  # (request number, Future[ClinicRead]) from the worker

    def __init__(
        self,
        clinic: Clinic,
        parent: QWidget | None = None,
        ask_file: FileAsker = _ask_file,
        ask_bundles: FilesAsker = _ask_bundles,
    ) -> None:
        super().__init__(parent)
        self._clinic = clinic
        self._ask_file = ask_file
        self._ask_bundles = ask_bundles
        self._days: list[ClaimDay] = []
        self._shown: list[ClaimDay] = []
        self._conflicts: list[Conflict] = []
        # One worker reads the clinic server, so the window's timers never wait on the network.
        self._worker: ThreadPoolExecutor | None = None
        self._request = 0
        self._read: ClinicRead | None = None
        self._then = ""
        self._unread = False  # a range chosen too long to read as it changed
        self.note_dialog: NoteDialog | None = None
        self.ref_dialog: PatientRefDialog | None = None
        self.reason_dialog: ReasonDialog | None = None
        self.corrections_dialog: CorrectionsDialog | None = None
        self.conflict_dialog: ConflictDialog | None = None
        self.replace_box: QMessageBox | None = None
        self.setWindowTitle("Therapy Timer - day view")
        # Fits a 1024x600 screen at 125% scale (819x480 device-independent pixels): the
        # table and the side list scroll, the buttons stay.
        self.setMinimumSize(theme.TOUCH_MIN * 16, theme.TOUCH_MIN * 9)

        today = clinic.today()
        self.from_date = QDateEdit(_qdate(today))
        self.to_date = QDateEdit(_qdate(today))
        for edit in (self.from_date, self.to_date):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setCalendarPopup(True)
        self.clinician = QComboBox()
        self.status = QComboBox()
        self.status.addItems(list(STATUSES))
        self.here_button = QPushButton(THIS_WORKSTATION)
        self.clinic_button = QPushButton(WHOLE_CLINIC)
        self.scope = QButtonGroup(self)
        for button in (self.here_button, self.clinic_button):
            button.setCheckable(True)
            self.scope.addButton(button)
        self.here_button.setChecked(True)
        self.scope_note = QLabel()
        self.scope_note.setWordWrap(True)
        self.scope_note.setAccessibleName("Whole clinic status")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setTabKeyNavigation(False)  # Tab on to the buttons; arrows move in the table
        self.table.setWordWrap(False)  # one billed line per text line; rows as tall as needed
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # Every column as wide as its text: nothing is cut short ("1 x 9711..."); a narrow
        # screen scrolls sideways to the warnings.
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Versions an import kept aside, beside the day until the desk settles them.
        self.conflict_list = QListWidget()
        self.conflict_list.setWordWrap(True)
        self.conflict_list.setAccessibleName("Kept-aside versions")
        self.compare_button = QPushButton("Co&mpare and settle…")
        self.conflict_panel = QWidget()
        panel = QVBoxLayout(self.conflict_panel)
        panel.setContentsMargins(0, 0, 0, 0)
        self.conflict_title = QLabel()
        self.conflict_title.setWordWrap(True)
        panel.addWidget(self.conflict_title)
        panel.addWidget(self.conflict_list, 1)
        panel.addWidget(self.compare_button)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Day view status")
        self.refresh_button = QPushButton("&Refresh")
        # Other stations close sessions all day; F5 as in every list a front desk knows.
        self.refresh_button.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.note_button = QPushButton("Show &note")
        # The selected rows only: marking everything shown would hide a row never billed.
        self.exported_button = QPushButton("Mark selected &exported")
        # Two people sharing a reference (initials) would be billed as one claim.
        self.separate_button = QPushButton("&Separate a session…")
        # A timer a therapist forgot to stop is found here, at the desk, after the session
        # closed: the window's corrections only reach the session it has just ended.
        self.correct_button = QPushButton("C&orrect minutes…")
        self.csv_button = QPushButton("Export &CSV…")
        self.pdf_button = QPushButton("Export &PDF…")
        self.json_button = QPushButton("Export &JSON…")
        self.bundle_button = QPushButton("Export &bundle…")
        self.import_button = QPushButton("&Import bundles…")
        names = {
            self.from_date: "From date",
            self.to_date: "To date",
            self.clinician: "Clinician filter",
            self.status: "Status filter",
            self.table: "Claim days",
        }
        for widget, name in names.items():
            widget.setAccessibleName(name)
            widget.setMinimumHeight(theme.TOUCH_MIN)
        day_buttons = (self.refresh_button, self.note_button, self.correct_button,
                       self.separate_button, self.exported_button)  # fmt: skip
        file_buttons = (self.csv_button, self.pdf_button, self.json_button, self.bundle_button,
                        self.import_button)  # fmt: skip
        for button in (*day_buttons, *file_buttons, self.compare_button,
                       self.here_button, self.clinic_button):  # fmt: skip
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", "").rstrip("…"))

        filters = QHBoxLayout()
        for label, widget in (("From", self.from_date), ("to", self.to_date),
                              ("Clinician", self.clinician), ("Status", self.status)):  # fmt: skip
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addStretch(1)
        # Where the days come from, beside the words saying so: on the filters' row they made
        # the day view wider than a 1024x600 screen at 125% scale.
        scope = QHBoxLayout()
        scope.addWidget(self.scope_note, 1)
        scope.addWidget(self.here_button)
        scope.addWidget(self.clinic_button)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.table)
        self.split.addWidget(self.conflict_panel)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)
        column = QVBoxLayout(self)
        column.addLayout(filters)
        column.addLayout(scope)
        column.addWidget(self.split, 1)
        column.addWidget(self.message)
        for row_buttons in (day_buttons, file_buttons):
            actions = QHBoxLayout()
            for button in row_buttons:
                actions.addWidget(button)
            actions.addStretch(1)
            column.addLayout(actions)

        # A range read once the date steps queued meanwhile are in: each arrow key press read
        # its range in turn, and on a 20-clinician clinic's month a press took 0.2-0.9 s, so
        # 14 presses held down kept the desk waiting 12 s, reading 16 ranges it never saw.
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(0)
        self._range_timer.timeout.connect(self._on_range_timer_timeout)
        self.from_date.dateChanged.connect(self._on_range_changed)
        self.to_date.dateChanged.connect(self._on_range_changed)
        self.clinician.currentTextChanged.connect(self._on_filter_changed)
        self.status.currentTextChanged.connect(self._on_filter_changed)
        self.here_button.clicked.connect(self._on_scope_clicked)
        self.clinic_button.clicked.connect(self._on_scope_clicked)
        self.server_read.connect(self._on_server_read)
        self.refresh_button.clicked.connect(self._on_refresh_clicked)
        self.note_button.clicked.connect(self._on_note_clicked)
        self.table.cellDoubleClicked.connect(lambda _row, _col: self._on_note_clicked())
        self.exported_button.clicked.connect(self._on_mark_exported_clicked)
        self.separate_button.clicked.connect(self._on_separate_clicked)
        self.correct_button.clicked.connect(self._on_correct_clicked)
        self.csv_button.clicked.connect(lambda: self._on_export_clicked("csv"))
        self.pdf_button.clicked.connect(lambda: self._on_export_clicked("pdf"))
        self.json_button.clicked.connect(lambda: self._on_export_clicked("json"))
        self.bundle_button.clicked.connect(self._on_bundle_clicked)
        self.import_button.clicked.connect(self._on_import_clicked)
        self.compare_button.clicked.connect(self._on_compare_clicked)
        self.conflict_list.itemDoubleClicked.connect(lambda _item: self._on_compare_clicked())
        self._show_scope_state()
        self.reload()

    def sizeHint(self) -> QSize:
        """Room for every column and row of the days listed, the size the main window opens it
        at (maximized where the screen is smaller): its layout's hint counts the table at a
        table's default size, and a 1366x768 screen showed three of the seven columns."""
        hint = super().sizeHint()
        table, header = self.table, self.table.horizontalHeader()
        frame = 2 * table.frameWidth()
        bar = table.verticalScrollBar().sizeHint().width()
        width = frame + bar + header.length()
        rows = sum(map(table.rowHeight, range(table.rowCount())))
        height = frame + bar + header.sizeHint().height() + rows
        margins = self.contentsMargins() + self.layout().contentsMargins()  # type: ignore[union-attr]
        return QSize(
            max(hint.width(), width + margins.left() + margins.right()),
            hint.height() + max(0, height - table.sizeHint().height()),
        )

    # -- data --------------------------------------------------------------------------------

    @property
    def shown(self) -> list[ClaimDay]:
        return list(self._shown)

    @property
    def whole_clinic(self) -> bool:
        return self.clinic_button.isChecked()

    def reload(self, then: str = "") -> None:
        """Read the days again; ``then`` is said once they are shown (what an action did)."""
        self._range_timer.stop()  # this read is of the range now chosen
        self._unread = False
        self._then = then
        self._reload_conflicts()
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        self._request += 1
        if self.whole_clinic:
            dsn = self._clinic.server_dsn()
            if dsn is not None:
                self.message.setText("Reading the whole clinic from the clinic server…")
                request = self._request
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desk")
                future = self._worker.submit(Clinic.read_clinic_server, dsn, start, end)
                future.add_done_callback(lambda done: self.server_read.emit(request, done))
                return
            self.here_button.setChecked(True)  # disconnected meanwhile
            self._show_scope_state()
        try:
            days = self._clinic.claim_days(start, end)
        except TherapyTimerError as exc:
            days = []
            self.message.setText(str(exc))
        self._show_days(days)
        if then:
            self.message.setText(then)

    def _show_days(self, days: list[ClaimDay]) -> None:
        self._days = days
        # One entry per person, under the first spelling of their name the days show.
        people: dict[str, str] = {}
        for s in (s for d in self._days for s in d.sessions):
            people.setdefault(clinician_key(s.clinician), s.clinician)
        current = self.clinician.currentText() or ALL
        self.clinician.blockSignals(True)
        self.clinician.clear()
        self.clinician.addItems([ALL, *sorted(people.values())])
        kept = ALL if current == ALL else people.get(clinician_key(current), ALL)
        self.clinician.setCurrentText(kept)
        self.clinician.blockSignals(False)
        self._fill()

    def _reload_conflicts(self) -> None:
        if self.whole_clinic:
            self._show_conflicts([], "")  # the server's list comes with its read
            return
        try:
            self._conflicts = self._clinic.conflicts()
        except TherapyTimerError as exc:
            self._conflicts = []
            self.message.setText(str(exc))
        self._show_conflicts(
            [(c.id, conflict_text(c)) for c in self._conflicts],
            "by imports: compare each with the session here and keep one.",
        )

    def _show_conflicts(self, items: list[tuple[int, str]], where: str) -> None:
        self.conflict_list.clear()
        for number, text in items:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, number)
            self.conflict_list.addItem(item)
        if items:
            self.conflict_list.setCurrentRow(0)
        count = len(items)
        self.conflict_title.setText(f"<b>{count} version(s) kept aside</b> {where}")
        self.conflict_panel.setVisible(bool(count))
        if count and self.split.sizes()[1] == 0:
            # Hidden when the splitter first shared the width out: give it a fifth now.
            width = max(self.split.width(), theme.TOUCH_MIN * 16)
            side = max(width // 5, theme.TOUCH_MIN * 4)
            self.split.setSizes([width - side, side])

    def _show_scope_state(self) -> None:
        # A tick on the one that is on: a checked button's shade alone is easy to misread
        # (the furnished-by switch does the same).
        for button, name in ((self.here_button, THIS_WORKSTATION),
                             (self.clinic_button, WHOLE_CLINIC)):  # fmt: skip
            button.setText(f"\N{CHECK MARK} {name}" if button.isChecked() else name)
        connected = self._clinic.server_dsn() is not None
        self.clinic_button.setEnabled(connected)
        self.clinic_button.setToolTip(
            "The sessions of every workstation, from the clinic server"
            if connected
            else NO_SERVER_TIP
        )
        if not connected:
            self.scope_note.setText(NO_SERVER)
        elif not self.whole_clinic:
            self.scope_note.setText("")
        self.scope_note.setVisible(bool(self.scope_note.text()))
        # These change this workstation's own records: the whole clinic is read-only here.
        local_only = "Works on this workstation's sessions: switch to This workstation"
        for button in (self.exported_button, self.separate_button, self.correct_button,
                       self.bundle_button):  # fmt: skip
            button.setEnabled(not self.whole_clinic)
            button.setToolTip(local_only if self.whole_clinic else "")

    def _fill(self) -> None:
        clinician, status = self.clinician.currentText(), self.status.currentText()
        self._shown = [d for d in self._days if matches(d, clinician, status)]
        # Fitted once, when every cell is in: fitting the columns to their contents as each
        # cell was put in measured the whole table per cell, and a busy day (400 claim days)
        # took over a minute to refresh.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setRowCount(len(self._shown))
        for row, day in enumerate(self._shown):
            result = day.result
            lines = lines_text(result).replace(", ", "\n") or (
                f"nothing billable: {day.nothing_billable}"
            )
            status_text = day.status + (" (provisional)" if day.provisional else "")
            cells = (
                patient_text(day),
                sessions_text(day),
                lines,
                str(result.total_timed_minutes),
                str(result.total_treatment_minutes),
                status_text,
                warnings_text(day),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
            if result.warnings:
                # The gists fit the row; the words are a hover (or the note dialog) away.
                self.table.item(row, len(cells) - 1).setToolTip(  # type: ignore[union-attr]
                    "\n".join(
                        f"{w.rule} ({w.gist}): {w.message}" if w.gist else f"{w.rule}: {w.message}"
                        for w in result.warnings
                    )
                )
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.resizeRowsToContents()
        sessions = sum(len(d.visits) for d in self._shown)
        summary = f"{len(self._shown)} claim day(s), {sessions} session(s)"
        if self.whole_clinic:
            summary += " on the clinic server"
        pooled = sum(d.pooled for d in self._shown)
        if pooled:
            summary += f", {pooled} pooling several sessions"
        initials = sum(d.initials_only for d in self._shown)
        if initials:
            summary += f", {initials} pooled under initials: check it is one person"
        opened = sum(s.is_open for d in self._shown for s in d.sessions)
        if opened:
            summary += f", {opened} session(s) still open (never exported silently)"
        self.message.setText(summary)

    def _selected(self) -> ClaimDay | None:
        row = self.table.currentRow()
        return self._shown[row] if 0 <= row < len(self._shown) else None

    def _selected_all(self) -> list[ClaimDay]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._shown[row] for row in rows if row < len(self._shown)]

    def _then_write(self, path: str, write: Callable[[bool], None]) -> None:
        """Ask before replacing an existing file (the same for every format), then write."""
        if not Path(path).exists():
            write(False)
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Replace the file?",
            f"{path} already exists. Replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: int) -> None:
            self.replace_box = None
            if button == QMessageBox.StandardButton.Yes:
                write(True)
            else:
                self.message.setText(f"Not exported: {path} was left as it was.")

        box.finished.connect(answered)
        self.replace_box = box
        box.open()

    # -- slots -------------------------------------------------------------------------------

    def _on_range_changed(self) -> None:
        if self.to_date.date() < self.from_date.date():
            self.to_date.setDate(self.from_date.date())
        self._range_timer.start()

    def _on_range_timer_timeout(self) -> None:
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        days = (end - start).days + 1
        if days <= AUTO_READ_DAYS:
            self.reload()
            return
        self._request += 1  # a clinic server's read of the range before is not shown
        self._unread = True
        self._show_days([])  # nothing shown that the dates do not say
        self.message.setText(
            f"{start.isoformat()} to {end.isoformat()} is {days} days: press Refresh (F5) to"
            " read them all (a long range takes a while on a busy clinic)."
        )

    def _settle_range(self) -> None:
        """Read a range chosen but not read yet: an export names the dates the edits show."""
        if self._range_timer.isActive() or self._unread:
            self.reload()

    def _on_filter_changed(self) -> None:
        self._fill()

    def _on_scope_clicked(self) -> None:
        self._show_scope_state()
        self.reload()

    def _on_server_read(self, request: int, done: Future[ClinicRead]) -> None:
        if request != self._request or not self.whole_clinic:
            return  # the range or the switch changed while it was read
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        try:
            read = done.result()
            days = self._clinic.pooled_claim_days(read, start, end)
        except TherapyTimerError as exc:
            # Say so plainly and go on with what this workstation has.
            self.here_button.setChecked(True)
            self._show_scope_state()
            self.reload()
            self.message.setText(
                f"The whole clinic could not be read ({exc}); showing this workstation's "
                "sessions instead."
            )
            return
        self._read = read
        self.scope_note.setText(stations_text(read, self._clinic.clock.now()))
        self.scope_note.setVisible(True)
        self._show_conflicts(
            [(k.id, kept_text(k)) for k in read.kept_aside],
            "on the clinic server: compare each with the server's copy and keep one.",
        )
        self._show_days(days)
        if self._then:
            self.message.setText(f"{self._then} {self.message.text()}.")

    def _on_refresh_clicked(self) -> None:
        self.reload()

    def _on_note_clicked(self) -> None:
        day = self._selected()
        if day is None:
            self.message.setText("Choose a claim day first.")
            return
        title = f"{day.patient_ref} - {day.date_of_service.isoformat()}"
        self.note_dialog = NoteDialog.show_for(self, title, day.result.note)

    def _on_mark_exported_clicked(self) -> None:
        chosen = self._selected_all()
        if not chosen:
            self.message.setText("Choose the claim days to mark first (Ctrl+A: all shown).")
            return
        # A provisional day may still change, and a session the rules refuse is not billed
        # (its day is billed without it): neither is marked.
        closed = [sid for d in chosen if not d.provisional for sid in d.billed_session_ids]
        # What the screen showed is what was billed: a session changed since stays due.
        read = {
            sid: d.read_mark
            for d in chosen
            if d.read_mark is not None
            for sid in d.billed_session_ids
        }
        try:
            changed = self._clinic.mark_exported(closed, read_marks=read)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        provisional = sum(d.provisional for d in chosen)
        held = sum(not d.provisional and not changed.isdisjoint(d.session_ids) for d in chosen)
        already = sum(d.status == "exported" for d in chosen)  # read before this mark
        text = f"Marked {len(chosen) - provisional - held - already} claim day(s) exported."
        if already:
            text += f" {already} already exported, unchanged."
        if provisional:
            text += f" {provisional} still open, not marked."
        if changed:
            text += (
                f" {len(changed)} session(s) changed since this screen was read: not marked,"
                f" {held} day(s) stay due for export."
            )
        self.reload(then=text)

    def _on_separate_clicked(self) -> None:
        day = self._selected()
        if day is None:
            self.message.setText("Choose the claim day whose sessions belong to two people.")
            return
        if not day.pooled:
            self.message.setText("This claim day has one session: nothing to separate.")
            return

        def chosen(session_id: str, patient_ref: str) -> None:
            def apply(reason: str) -> None:
                try:
                    self._clinic.change_patient_ref(session_id, patient_ref, reason=reason)
                except TherapyTimerError as exc:
                    self.message.setText(f"Not changed: {exc}")
                    return
                self.reload(
                    then=f"Session {session_id[:8]} is now billed as {patient_ref}; "
                    "the change is in the audit log."
                )

            self.reason_dialog = ReasonDialog.ask(
                self,
                f"Why does session {session_id[:8]} belong to {patient_ref}, not "
                f"{day.patient_ref}?",
                apply,
            )

        self.ref_dialog = PatientRefDialog.ask(self, day, chosen)

    def _on_correct_clicked(self) -> None:
        day = self._selected()
        if day is None:
            self.message.setText("Choose the claim day whose minutes are wrong first.")
            return
        if any(s.is_open for s in day.sessions):
            self.message.setText(
                f"A session of {day.patient_ref} on this day is still open: end it in the "
                "main window first, then correct its minutes here."
            )
            return
        try:
            segments = [seg for s in day.sessions for seg in self._clinic.segments(s.id)]
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return

        def save(changes: dict[str, int], reason: str, make_room: bool) -> Refusal | None:
            try:
                # Read as it is saved, not when the corrections opened: another workstation
                # may have exported the day meanwhile, and it is due again all the same.
                exported = any(self._clinic.get_session(s.id).exported for s in day.sessions)
                self._clinic.correct_minutes(changes, reason, make_room=make_room)
            except TherapyTimerError as exc:
                return Refusal(str(exc), isinstance(exc, NoRoom))
            self.reload(
                then=f"Corrected {len(changes)} segment(s) of {day.patient_ref} on "
                f"{day.date_of_service.isoformat()}"
                + (" and moved its session's later codes later to make room" if make_room else "")
                + "; the change is in the audit log."
                + (" The day is due for export again." if exported else "")
            )
            return None

        self.corrections_dialog = CorrectionsDialog.show_for(
            self, segments, save, self._clinic.policy
        )

    def _on_export_clicked(self, fmt: str) -> None:
        self._settle_range()
        try:
            ex.refuse_open(self._shown, OPEN_ADVICE)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        filters = {"csv": "CSV (*.csv)", "pdf": "PDF (*.pdf)", "json": "JSON (*.json)"}
        scope = "clinic-" if self.whole_clinic else ""
        path = self._ask_file(self, f"therapy-timer-{scope}{start.isoformat()}.{fmt}", filters[fmt])
        if not path:
            return
        whole_clinic = self.whole_clinic
        clinician = self.clinician.currentText()

        def write(force: bool) -> None:
            try:
                if whole_clinic:
                    # Every workstation's days of the range, marked exported on the server.
                    done = self._clinic.clinic_export(
                        fmt,
                        start,
                        end,
                        out=Path(path),
                        clinician=None if clinician == ALL else clinician,
                        force=force,
                        render_pdf=write_pdf,
                    )
                else:
                    done = self._clinic.export(
                        fmt,
                        start,
                        end,
                        out=Path(path),
                        force=force,
                        days=self._shown,
                        render_pdf=write_pdf,
                    )
            except TherapyTimerError as exc:
                self.message.setText(f"Could not export: {exc}")
                return
            where = " of the whole clinic" if whole_clinic else ""
            self.reload(
                then=f"Exported {done.sessions} session(s){where} to {done.path}; "
                f"{done.marked} marked exported."
                + (f" {done.changed_note}." if done.changed else "")
            )

        self._then_write(path, write)

    def _on_bundle_clicked(self) -> None:
        self._settle_range()
        days = self._shown
        try:
            ex.refuse_open(days, OPEN_ADVICE)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        start = _pydate(self.from_date.date())
        path = self._ask_file(
            self, f"therapy-timer-bundle-{start.isoformat()}.json", "Bundle (*.json)"
        )
        if not path:
            return

        def write(force: bool) -> None:
            try:
                done = self._clinic.export(
                    "bundle",
                    start,
                    _pydate(self.to_date.date()),
                    out=Path(path),
                    force=force,
                    days=days,
                    workstation=socket.gethostname(),
                )
            except TherapyTimerError as exc:
                self.message.setText(f"Could not export the bundle: {exc}")
                return
            self.message.setText(
                f"Wrote a bundle of {done.sessions} session(s) to {done.path}: import it on "
                "another workstation (a bundle bills nothing and marks nothing exported)."
            )

        self._then_write(path, write)

    def _on_import_clicked(self) -> None:
        paths = self._ask_bundles(self)
        if not paths:
            return
        try:
            report = self._clinic.import_bundles([Path(p) for p in paths])
        except TherapyTimerError as exc:
            self.message.setText(f"Nothing imported: {exc}")
            return
        text = (
            f"Imported {len(paths)} bundle(s): {len(report.added)} session(s) added, "
            f"{len(report.unchanged)} already here."
        )
        if report.conflicts:
            text += (
                f" {len(report.conflicts)} differ from the session here: kept aside, listed "
                "beside the day to compare and settle."
            )
        self.reload(then=text)

    def _on_compare_clicked(self) -> None:
        item = self.conflict_list.currentItem()
        if item is None:
            self.message.setText("Choose a kept-aside version first.")
            return
        number = int(item.data(Qt.ItemDataRole.UserRole))
        on_server = self.whole_clinic and self._read is not None
        try:
            if on_server:
                assert self._read is not None
                comparison = self._clinic.compare_server_conflict(self._read, number)
            else:
                comparison = self._clinic.compare_conflict(number)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        origin = comparison.conflict.origin

        def decide(decision: str, reason: str) -> None:
            if on_server:
                # The server keeps the copy it replaces, and the decision in its events.
                done = {"accept": "accepted", "drop": "dropped"}[decision]
                session_id = self._clinic.settle_server_conflict(number, done, reason)
                said = f"The version from {origin} was {done} on the clinic server"
                said += f" (session {session_id[:8]}); the decision is in its events."
            elif decision == "accept":
                session = self._clinic.accept_conflict(number, reason)
                said = f"The version from {origin} now holds session {session.id[:8]}"
                said += f" ({session.patient_ref}); the replaced one is audited."
            else:
                self._clinic.drop_conflict(number, reason)
                said = f"Kept the version here; the one from {origin} is recorded as dropped."
            self.reload(then=said)

        self.conflict_dialog = ConflictDialog.show_for(self, comparison, decide)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._request += 1  # a read still under way is ignored when it lands
        self._range_timer.stop()  # the window reloads the view when it opens it again
        if self._worker is not None:  # the window may open this view again: a new one then
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None
        super().closeEvent(event)
