"""The session header: patient reference, clinician, role, discipline, payer and date."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore
from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from therapy_timer.codes import Role
from therapy_timer.explain import PAYER_PROFILE_HELP
from therapy_timer.gui import theme
from therapy_timer.gui.view_state import Draft, HeaderView

if TYPE_CHECKING:  # imported where opened: PySide6 builds a dialog class on first use (issue 13)
    from PySide6.QtWidgets import QMessageBox

ROLE_NAMES = {
    Role.PT: "PT (physical therapist)",
    Role.PTA: "PTA (PT assistant)",
    Role.OT: "OT (occupational therapist)",
    Role.OTA: "OTA (OT assistant)",
    Role.SLP: "SLP (speech-language pathologist)",
}


class SessionHeader(QWidget):
    """Editable until the session opens (by the first tap on a tile), then read-only."""

    draft_edited = Signal(object)  # Draft

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("Initials or MRN")
        self.patient.setMaxLength(20)
        self.patient.setAccessibleName("Patient reference")
        self.patient.setToolTip("A short label such as initials or a record number, not a name")
        self.clinician = QLineEdit()
        self.clinician.setPlaceholderText("Your name")
        self.clinician.setAccessibleName("Clinician")
        self.role = QComboBox()
        self.role.setAccessibleName("Role")
        for role, name in ROLE_NAMES.items():
            self.role.addItem(name, role.value)
        self.discipline = QLabel()
        self.discipline.setAccessibleName("Discipline")
        self.discipline.setToolTip("Follows the role: each discipline bills its own plan of care")
        self.payer = QComboBox()
        self.payer.setAccessibleName("Payer profile")
        self.payer.setToolTip(PAYER_PROFILE_HELP)
        self.payer.setWhatsThis(PAYER_PROFILE_HELP)
        # A tooltip needs a mouse: on a touch screen the "?" beside the box says the same.
        self.payer_help = QToolButton()
        self.payer_help.setText("?")
        self.payer_help.setAccessibleName("What a payer profile decides")
        self.payer_help.setToolTip("What a payer profile decides, and which method to pick")
        self.payer_help.setMinimumSize(theme.TOUCH_MIN, theme.TOUCH_MIN)
        self.payer_help_box: QMessageBox | None = None
        self.date = QDateEdit()
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        self.date.setAccessibleName("Date of service")
        self.status = QLabel()
        self.status.setAccessibleName("Session status")
        self.status.setFont(theme.scaled_font(self, 1.0, bold=True))

        for field in (self.patient, self.clinician, self.role, self.payer, self.date):
            field.setMinimumHeight(theme.TOUCH_MIN)
            field.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        left = QFormLayout()
        left.addRow("&Patient", self.patient)
        left.addRow("C&linician", self.clinician)
        left.addRow("&Role", self.role)
        right = QFormLayout()
        right.addRow("Discipline", self.discipline)
        payer_row = QHBoxLayout()
        payer_row.addWidget(self.payer, 1)
        payer_row.addWidget(self.payer_help)
        # A row of a box and its "?" has no field for a text label to go to: given as text, the
        # label showed "Pa&yer", ampersand and all, and Alt+Y did nothing.
        payer_label = QLabel("Pa&yer")
        payer_label.setBuddy(self.payer)
        right.addRow(payer_label, payer_row)
        right.addRow("&Date", self.date)
        for form in (left, right):
            # By name before the first paint: see controller._repaint_timer.
            form.setProperty("labelAlignment", "AlignRight|AlignVCenter")
        editor = QWidget()
        row = QHBoxLayout(editor)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        # At the top of its column: a column with a stretch below it, as addWidget(..., AlignTop)
        # would need a Qt enum before the first paint (see controller._repaint_timer).
        status_column = QVBoxLayout()
        status_column.addWidget(self.status)
        status_column.addStretch(1)
        row.addLayout(status_column, 2)

        # While a session is open the header is read at a glance, not edited: big plain text
        # instead of greyed-out fields.
        self.summary = QLabel()
        self.summary.setFont(theme.scaled_font(self, 1.5, bold=True))
        self.summary.setAccessibleName("Patient")
        self.details = QLabel()
        self.details.setFont(theme.scaled_font(self, 1.1))
        self.details.setWordWrap(True)
        self.details.setAccessibleName("Session details")
        glance = QWidget()
        lines = QVBoxLayout(glance)
        lines.setContentsMargins(0, 0, 0, 0)
        lines.addWidget(self.summary)
        lines.addWidget(self.details)
        lines.addStretch(1)

        # Shown one at a time (not a QStackedWidget, which would keep the taller page's height).
        self.editor, self.glance = editor, glance
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(editor)
        outer.addWidget(glance)
        glance.hide()

        self.patient.textEdited.connect(self._on_field_edited)
        self.clinician.textEdited.connect(self._on_field_edited)
        self.role.currentIndexChanged.connect(self._on_field_edited)
        self.payer.currentIndexChanged.connect(self._on_field_edited)
        self.date.dateChanged.connect(self._on_field_edited)
        self.payer_help.clicked.connect(self._on_payer_help_clicked)

    def set_view(self, view: HeaderView) -> None:
        self._updating = True
        try:
            if self.payer.count() != len(view.payer_profiles) or [
                self.payer.itemText(i) for i in range(self.payer.count())
            ] != list(view.payer_profiles):
                self.payer.clear()
                self.payer.addItems(list(view.payer_profiles))
            _set_text(self.patient, view.patient_ref)
            _set_text(self.clinician, view.clinician)
            self.role.setCurrentIndex(self.role.findData(view.role.value))
            self.payer.setCurrentText(view.payer_profile)
            self.discipline.setText(view.discipline.value)
            if view.date_of_service is not None:
                day = view.date_of_service
                self.date.setDate(QDate(day.year, day.month, day.day))
            for field in (self.patient, self.clinician, self.role, self.payer, self.date):
                field.setEnabled(not view.session_open)
            self.editor.setVisible(not view.session_open)
            self.glance.setVisible(view.session_open)
            self.status.setText("No session yet:\ntype the patient, then\ntap a code to start")
            if view.session_open:
                self.summary.setText(f"Patient {view.patient_ref}")
                since = f" · open since {view.opened_at:%H:%M}" if view.opened_at else ""
                dos = view.date_of_service.isoformat() if view.date_of_service else ""
                self.details.setText(
                    f"{view.clinician} ({view.role.value}) · {view.discipline.value} plan of "
                    f"care · {view.payer_profile} · {dos}{since}"
                )
        finally:
            self._updating = False

    def draft(self) -> Draft:
        qdate = self.date.date()
        return Draft(
            patient_ref=self.patient.text().strip(),
            clinician=self.clinician.text().strip(),
            role=Role(self.role.currentData() or Role.PT.value),
            payer_profile=self.payer.currentText(),
            date_of_service=qdate.toPython() if qdate.isValid() else None,  # type: ignore[arg-type]
        )

    def _on_field_edited(self) -> None:
        if not self._updating:
            self.draft_edited.emit(self.draft())

    def _on_payer_help_clicked(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(
            QMessageBox.Icon.Information, "Payer profiles", PAYER_PROFILE_HELP, parent=self
        )
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(self._on_payer_help_closed)
        self.payer_help_box = box
        box.open()

    def _on_payer_help_closed(self, _gone: object = None) -> None:
        self.payer_help_box = None


def _set_text(field: QLineEdit, text: str) -> None:
    # Leave what is being typed alone: rewriting it would move the cursor under the user's finger.
    if field.text() != text and not field.hasFocus():
        field.setText(text)
