"""The front desk's day view: the claim days of a date range, filters, the note, export buttons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDate, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from therapy_timer import export as ex
from therapy_timer import rules
from therapy_timer.billing import ClaimDay, lines_text, visit_text
from therapy_timer.clinic import Clinic
from therapy_timer.errors import TherapyTimerError
from therapy_timer.gui import theme
from therapy_timer.gui.report_pdf import write_pdf
from therapy_timer.gui.widgets.reason import ReasonDialog

COLUMNS = ("Patient", "Sessions", "Billed lines", "Timed min", "Total min", "Status",
           "Warnings")  # fmt: skip
"""One row per claim day (R1.2): a patient's sessions of a date, plan of care and payer."""
ALL = "All"
STATUSES = (ALL, *ex.STATUSES, "imported")

FileAsker = Callable[[QWidget, str, str], str]
"""(parent, suggested name, filter) -> chosen path or "" — QFileDialog unless a test swaps it."""


def _ask_file(parent: QWidget, suggested: str, filter_: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, "Export", suggested, filter_)
    return path


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _pydate(day: QDate) -> dt.date:
    return dt.date(day.year(), day.month(), day.day())


def matches(day: ClaimDay, clinician: str, status: str) -> bool:
    if clinician != ALL and all(s.clinician != clinician for s in day.sessions):
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
        if visit.time_in is None:
            times = "not started"
        else:
            out = visit.time_out or session.closed_utc
            times = f"{visit.time_in.astimezone():%H:%M}\N{EN DASH}" + (
                f"{out.astimezone():%H:%M}" if out else ""
            )
        origin = f", from {session.origin}" if session.origin else ""
        still = ", open" if session.is_open else ""
        lines.append(f"{times} {session.clinician} ({session.role.value}){still}{origin}")
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
        close = QPushButton("Close")
        close.setMinimumHeight(theme.TOUCH_MIN)
        close.setAccessibleName("Close")
        close.clicked.connect(self.accept)
        column = QVBoxLayout(self)
        column.addWidget(self.text)
        column.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)

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


class DayView(QWidget):
    """Claim days of a date range: what is billable, amended, pooled or needs a look."""

    def __init__(
        self,
        clinic: Clinic,
        parent: QWidget | None = None,
        ask_file: FileAsker = _ask_file,
    ) -> None:
        super().__init__(parent)
        self._clinic = clinic
        self._ask_file = ask_file
        self._days: list[ClaimDay] = []
        self._shown: list[ClaimDay] = []
        self.note_dialog: NoteDialog | None = None
        self.ref_dialog: PatientRefDialog | None = None
        self.reason_dialog: ReasonDialog | None = None
        self.setWindowTitle("Therapy Timer - day view")
        self.setMinimumSize(theme.TOUCH_MIN * 22, theme.TOUCH_MIN * 12)

        today = clinic.today()
        self.from_date = QDateEdit(_qdate(today))
        self.to_date = QDateEdit(_qdate(today))
        for edit in (self.from_date, self.to_date):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setCalendarPopup(True)
        self.clinician = QComboBox()
        self.status = QComboBox()
        self.status.addItems(list(STATUSES))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(False)  # one billed line per text line; rows as tall as needed
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
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
        self.csv_button = QPushButton("Export &CSV…")
        self.pdf_button = QPushButton("Export &PDF…")
        self.json_button = QPushButton("Export &JSON…")
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
        buttons = (
            self.refresh_button,
            self.note_button,
            self.exported_button,
            self.separate_button,
            self.csv_button,
            self.pdf_button,
            self.json_button,
        )
        for button in buttons:
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", "").rstrip("…"))

        filters = QHBoxLayout()
        for label, widget in (("From", self.from_date), ("to", self.to_date),
                              ("Clinician", self.clinician), ("Status", self.status)):  # fmt: skip
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addStretch(1)
        actions = QHBoxLayout()
        for button in buttons:
            actions.addWidget(button)
        actions.addStretch(1)
        column = QVBoxLayout(self)
        column.addLayout(filters)
        column.addWidget(self.table, 1)
        column.addWidget(self.message)
        column.addLayout(actions)

        self.from_date.dateChanged.connect(self._on_range_changed)
        self.to_date.dateChanged.connect(self._on_range_changed)
        self.clinician.currentTextChanged.connect(self._on_filter_changed)
        self.status.currentTextChanged.connect(self._on_filter_changed)
        self.refresh_button.clicked.connect(self._on_refresh_clicked)
        self.note_button.clicked.connect(self._on_note_clicked)
        self.table.cellDoubleClicked.connect(lambda _row, _col: self._on_note_clicked())
        self.exported_button.clicked.connect(self._on_mark_exported_clicked)
        self.separate_button.clicked.connect(self._on_separate_clicked)
        self.csv_button.clicked.connect(lambda: self._on_export_clicked("csv"))
        self.pdf_button.clicked.connect(lambda: self._on_export_clicked("pdf"))
        self.json_button.clicked.connect(lambda: self._on_export_clicked("json"))
        self.reload()

    # -- data --------------------------------------------------------------------------------

    @property
    def shown(self) -> list[ClaimDay]:
        return list(self._shown)

    def reload(self) -> None:
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        try:
            self._days = self._clinic.claim_days(start, end)
        except TherapyTimerError as exc:
            self._days = []
            self.message.setText(str(exc))
        names = sorted({s.clinician for d in self._days for s in d.sessions})
        current = self.clinician.currentText() or ALL
        self.clinician.blockSignals(True)
        self.clinician.clear()
        self.clinician.addItems([ALL, *names])
        self.clinician.setCurrentText(current if current in names else ALL)
        self.clinician.blockSignals(False)
        self._fill()

    def _fill(self) -> None:
        clinician, status = self.clinician.currentText(), self.status.currentText()
        self._shown = [d for d in self._days if matches(d, clinician, status)]
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
                    "\n".join(f"{w.rule}: {w.message}" for w in result.warnings)
                )
        self.table.resizeRowsToContents()
        sessions = sum(len(d.visits) for d in self._shown)
        summary = f"{len(self._shown)} claim day(s), {sessions} session(s)"
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

    # -- slots -------------------------------------------------------------------------------

    def _on_range_changed(self) -> None:
        if self.to_date.date() < self.from_date.date():
            self.to_date.setDate(self.from_date.date())
        self.reload()

    def _on_filter_changed(self) -> None:
        self._fill()

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
        # A provisional day may still change: none of its sessions is marked.
        closed = [sid for d in chosen if not d.provisional for sid in d.session_ids]
        try:
            self._clinic.mark_exported(closed)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        self.reload()
        provisional = sum(d.provisional for d in chosen)
        text = f"Marked {len(chosen) - provisional} claim day(s) exported."
        if provisional:
            text += f" {provisional} still open, not marked."
        self.message.setText(text)

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
                self.reload()
                self.message.setText(
                    f"Session {session_id[:8]} is now billed as {patient_ref}; "
                    "the change is in the audit log."
                )

            self.reason_dialog = ReasonDialog.ask(
                self,
                f"Why does session {session_id[:8]} belong to {patient_ref}, not "
                f"{day.patient_ref}?",
                apply,
            )

        self.ref_dialog = PatientRefDialog.ask(self, day, chosen)

    def _on_export_clicked(self, fmt: str) -> None:
        try:
            ex.refuse_open(self._shown)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        start = _pydate(self.from_date.date())
        filters = {"csv": "CSV (*.csv)", "pdf": "PDF (*.pdf)", "json": "JSON (*.json)"}
        path = self._ask_file(self, f"therapy-timer-{start.isoformat()}.{fmt}", filters[fmt])
        if not path:
            return
        try:
            # The file dialog has already asked before replacing a file.
            done = self._clinic.export(
                fmt,
                start,
                _pydate(self.to_date.date()),
                out=Path(path),
                force=True,
                days=self._shown,
                render_pdf=write_pdf,
            )
        except TherapyTimerError as exc:
            self.message.setText(f"Could not export: {exc}")
            return
        days = len(self._shown)
        self.reload()
        self.message.setText(
            f"Exported {days} claim day(s), {done.sessions} session(s), to {done.path}."
        )
