"""The front desk's day view: every session of a date range, filters, the note, export buttons."""

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
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.errors import TherapyTimerError
from therapy_timer.gui import theme
from therapy_timer.gui.report_pdf import write_pdf

COLUMNS = ("Patient", "Clinician", "In\N{EN DASH}out", "Billed lines", "Timed min",
           "Total min", "Status", "Warnings")  # fmt: skip
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


def matches(report: ex.SessionReport, clinician: str, status: str) -> bool:
    if clinician != ALL and report.session.clinician != clinician:
        return False
    if status == ALL:
        return True
    if status == "imported":
        return report.session.origin is not None
    return report.status == status


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


class DayView(QWidget):
    """Sessions of a date range with what is billable, amended or needs a look."""

    def __init__(
        self,
        clinic: Clinic,
        parent: QWidget | None = None,
        ask_file: FileAsker = _ask_file,
    ) -> None:
        super().__init__(parent)
        self._clinic = clinic
        self._ask_file = ask_file
        self._reports: list[ex.SessionReport] = []
        self._shown: list[ex.SessionReport] = []
        self.note_dialog: NoteDialog | None = None
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
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Day view status")
        self.refresh_button = QPushButton("&Refresh")
        # Other stations close sessions all day; F5 as in every list a front desk knows.
        self.refresh_button.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.note_button = QPushButton("Show &note")
        # The selected rows only: marking everything shown would hide a row never billed.
        self.exported_button = QPushButton("Mark selected &exported")
        self.csv_button = QPushButton("Export &CSV…")
        self.pdf_button = QPushButton("Export &PDF…")
        self.json_button = QPushButton("Export &JSON…")
        names = {
            self.from_date: "From date",
            self.to_date: "To date",
            self.clinician: "Clinician filter",
            self.status: "Status filter",
            self.table: "Sessions of the day",
        }
        for widget, name in names.items():
            widget.setAccessibleName(name)
            widget.setMinimumHeight(theme.TOUCH_MIN)
        buttons = (
            self.refresh_button,
            self.note_button,
            self.exported_button,
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
        self.csv_button.clicked.connect(lambda: self._on_export_clicked("csv"))
        self.pdf_button.clicked.connect(lambda: self._on_export_clicked("pdf"))
        self.json_button.clicked.connect(lambda: self._on_export_clicked("json"))
        self.reload()

    # -- data --------------------------------------------------------------------------------

    @property
    def shown(self) -> list[ex.SessionReport]:
        return list(self._shown)

    def reload(self) -> None:
        start, end = _pydate(self.from_date.date()), _pydate(self.to_date.date())
        try:
            self._reports = self._clinic.day_reports(start, end)
        except TherapyTimerError as exc:
            self._reports = []
            self.message.setText(str(exc))
        names = sorted({r.session.clinician for r in self._reports})
        current = self.clinician.currentText() or ALL
        self.clinician.blockSignals(True)
        self.clinician.clear()
        self.clinician.addItems([ALL, *names])
        self.clinician.setCurrentText(current if current in names else ALL)
        self.clinician.blockSignals(False)
        self._fill()

    def _fill(self) -> None:
        clinician, status = self.clinician.currentText(), self.status.currentText()
        self._shown = [r for r in self._reports if matches(r, clinician, status)]
        self.table.setRowCount(len(self._shown))
        for row, report in enumerate(self._shown):
            session, result = report.session, report.result
            times = (
                "\N{EN DASH}".join(
                    f"{t.astimezone():%H:%M}" if t else ""
                    for t in (report.time_in, report.time_out)
                )
                if report.time_in
                else "not started"
            )
            billed = [
                f"{ln.units} \N{MULTIPLICATION SIGN} {'-'.join((ln.code, *ln.modifiers))}"
                for ln in result.lines
            ]
            lines = "\n".join(billed) or "nothing billable"
            rules_hit = sorted({w.rule for w in result.warnings})
            warned = f"{len(result.warnings)}: {', '.join(rules_hit)}" if rules_hit else ""
            status_text = report.status + (f", from {session.origin}" if session.origin else "")
            cells = (
                f"{session.patient_ref} ({session.date_of_service:%m-%d})",
                f"{session.clinician} ({session.role.value})",
                times,
                lines,
                str(result.total_timed_minutes),
                str(result.total_treatment_minutes),
                status_text,
                warned,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
            if result.warnings:
                # The count fits the row; the words are a hover (or the note dialog) away.
                self.table.item(row, len(cells) - 1).setToolTip(  # type: ignore[union-attr]
                    "\n".join(f"{w.rule}: {w.message}" for w in result.warnings)
                )
        self.table.resizeRowsToContents()
        opened = sum(r.session.is_open for r in self._shown)
        summary = f"{len(self._shown)} session(s)"
        if opened:
            summary += f", {opened} still open (never exported silently)"
        self.message.setText(summary)

    def _selected(self) -> ex.SessionReport | None:
        row = self.table.currentRow()
        return self._shown[row] if 0 <= row < len(self._shown) else None

    def _selected_all(self) -> list[ex.SessionReport]:
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
        report = self._selected()
        if report is None:
            self.message.setText("Choose a session first.")
            return
        title = f"{report.session.patient_ref} - {report.session.date_of_service.isoformat()}"
        self.note_dialog = NoteDialog.show_for(self, title, report.result.note)

    def _on_mark_exported_clicked(self) -> None:
        chosen = self._selected_all()
        if not chosen:
            self.message.setText("Choose the sessions to mark first (Ctrl+A: all shown).")
            return
        closed = [r.session.id for r in chosen if not r.session.is_open]
        try:
            self._clinic.mark_exported(closed)
        except TherapyTimerError as exc:
            self.message.setText(str(exc))
            return
        self.reload()
        text = f"Marked {len(closed)} session(s) exported."
        if len(closed) < len(chosen):
            text += f" {len(chosen) - len(closed)} still open, not marked."
        self.message.setText(text)

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
                reports=self._shown,
                render_pdf=write_pdf,
            )
        except TherapyTimerError as exc:
            self.message.setText(f"Could not export: {exc}")
            return
        self.reload()
        self.message.setText(f"Exported {done.sessions} session(s) to {done.path}.")
