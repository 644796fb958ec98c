"""Two versions of one session side by side: the one kept here and the one an import kept
aside; the desk keeps one, with a reason (the day view settles it through the Clinic)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from therapy_timer.clinic import ConflictComparison, SessionVersion
from therapy_timer.errors import TherapyTimerError
from therapy_timer.gui import theme
from therapy_timer.gui.widgets.reason import ReasonDialog

KEEP = "drop"
"""Keep the version here: the incoming one is dropped."""
USE = "accept"
"""Use the incoming version: it replaces the one here (kept in the audit log)."""

Decide = Callable[[str, str], None]
"""(KEEP or USE, the reason) -> settles it, or raises; the dialog shows what went wrong."""

DIFFERS = "\N{BLACK DIAMOND} differs"


def version_html(version: SessionVersion | None, differing: frozenset[str]) -> str:
    """A version as a small table; what the other version says otherwise is bold and marked."""
    if version is None:
        return "<p>This session is not here any more.</p>"

    def row(label: str, value: str) -> str:
        mark = f" <i>({DIFFERS})</i>" if label in differing else ""
        text = f"<b>{value}</b>" if label in differing else value
        return f"<tr><td valign=top>{escape(label)}{mark}</td><td>{text}</td></tr>"

    def listed(items: tuple[str, ...]) -> str:
        return "<br>".join(escape(i) for i in items) or "none"

    rows = [row(label, escape(value)) for label, value in version.fields]
    rows.append(row("Timed", listed(version.segments)))
    rows.append(row("Untimed", listed(version.untimed)))
    rows.append(row("Bills", escape(version.billed)))
    return f"<table cellspacing=0 cellpadding=3>{''.join(rows)}</table>"


class ConflictDialog(QDialog):
    """The two versions, a button under each to keep it, and Close to decide later."""

    def __init__(
        self, parent: QWidget | None, comparison: ConflictComparison, decide: Decide
    ) -> None:
        super().__init__(parent)
        self._comparison = comparison
        self._decide = decide
        self.reason_dialog: ReasonDialog | None = None
        conflict = comparison.conflict
        incoming = comparison.incoming
        patient = dict(incoming.fields).get("Patient", "")
        when = dict(incoming.fields).get("Date of service", "")
        self.setWindowTitle(f"Two versions of {patient}'s session of {when}")
        received = conflict.received_utc.astimezone()
        came = (
            f"{conflict.origin} sent the clinic server another version of session"
            if comparison.on_server
            else f"An import from {conflict.origin} brought another version of session"
        )
        kept = "the server's events" if comparison.on_server else "the audit log"
        self.why = QLabel(
            f"{came} {conflict.session_id[:8]} ({conflict.why}) on "
            f"{received:%Y-%m-%d %H:%M}. Nothing was overwritten: keep one of them. Your "
            f"choice and its reason go to {kept}."
        )
        self.why.setWordWrap(True)
        self.why.setAccessibleName("Why two versions")
        differing = comparison.differing
        self.here_text = self._side_text(version_html(comparison.here, differing), "Kept here")
        self.incoming_text = self._side_text(version_html(incoming, differing), "Incoming")
        self.keep_button = QPushButton("&Keep this version")
        self.keep_button.setToolTip("The incoming version is dropped; it stays on record")
        self.use_button = QPushButton("&Use this version instead")
        self.use_button.setToolTip("It replaces the version here, which stays in the audit log")
        # Nothing to replace, or a session still running here: only dropping makes sense.
        here = comparison.here
        self.use_button.setEnabled(here is not None and not here.still_open)
        self.close_button = QPushButton("Decide &later")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Conflict status")
        for button in (self.keep_button, self.use_button, self.close_button):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", ""))

        sides = QHBoxLayout()
        for title, text, button in (
            (here.title if here else "Kept here", self.here_text, self.keep_button),
            (incoming.title, self.incoming_text, self.use_button),
        ):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(text)
            inner.addWidget(scroll, 1)
            inner.addWidget(button)
            sides.addWidget(box, 1)
        column = QVBoxLayout(self)
        column.addWidget(self.why)
        column.addLayout(sides, 1)
        column.addWidget(self.status)
        column.addWidget(self.close_button, alignment=Qt.AlignmentFlag.AlignRight)
        self.setMinimumSize(theme.TOUCH_MIN * 16, theme.TOUCH_MIN * 9)

        self.keep_button.clicked.connect(lambda: self._on_choice_clicked(KEEP))
        self.use_button.clicked.connect(lambda: self._on_choice_clicked(USE))
        self.close_button.clicked.connect(self.reject)

    @staticmethod
    def _side_text(html: str, name: str) -> QLabel:
        label = QLabel(html)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setAccessibleName(f"{name} version")
        return label

    @classmethod
    def show_for(
        cls, parent: QWidget | None, comparison: ConflictComparison, decide: Decide
    ) -> ConflictDialog:
        dialog = cls(parent, comparison, decide)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        theme.settle_layout(dialog)
        dialog.open()
        return dialog

    def _on_choice_clicked(self, decision: str) -> None:
        origin = self._comparison.conflict.origin
        prompt = (
            f"Why is the version here right, not {origin}'s?"
            if decision == KEEP
            else f"Why is {origin}'s version right, not the one here?"
        )

        def settle(reason: str) -> None:
            try:
                self._decide(decision, reason)
            except TherapyTimerError as exc:
                self.status.setText(f"Not settled: {exc}")
                return
            self.accept()

        self.reason_dialog = ReasonDialog.ask(self, prompt, settle)
