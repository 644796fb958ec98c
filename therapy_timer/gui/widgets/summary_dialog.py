"""The end-of-session summary: lines, plain warnings, tie choice, the note and Copy note."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Protocol

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from therapy_timer import rules
from therapy_timer.gui import theme
from therapy_timer.gui.view_state import Refusal
from therapy_timer.gui.widgets.corrections import CorrectionsDialog
from therapy_timer.gui.widgets.reason import ReasonDialog
from therapy_timer.model import Segment, Session, SessionProblem
from therapy_timer.stopwatch import RoundingPolicy


class SummaryActions(Protocol):
    """What the dialog asks of the window's controller (it never reaches the clinic itself)."""

    def summary(
        self, session_id: str, allocation: Mapping[str, int] | None = None
    ) -> rules.Result | SessionProblem | None: ...

    def get_session(self, session_id: str) -> Session | None: ...

    def close_session(
        self, session_id: str, allocation: Mapping[str, int] | None = None
    ) -> bool: ...

    def choose_allocation(
        self, session_id: str, allocation: Mapping[str, int], reason: str = ""
    ) -> bool: ...

    def segments(self, session_id: str) -> Sequence[Segment]: ...

    def correct_minutes(
        self, changes: Mapping[str, int], reason: str, make_room: bool = False
    ) -> Refusal | None: ...

    @property
    def policy(self) -> RoundingPolicy: ...


COLUMNS = ("Code", "Service", "Minutes", "Units", "Billed as")


OPENING_SIZE = (900, 860)
"""Room for a day's table, its warnings and the whole note; maximized on a smaller screen."""


def allocation_text(allocation: Mapping[str, int]) -> str:
    return ", ".join(
        f"{code} \N{MULTIPLICATION SIGN} {units}" for code, units in allocation.items() if units
    )


class _TapRadio(QRadioButton):
    """A radio button that answers to a tap anywhere on its row, not only on its text."""

    def hitButton(self, pos: QPoint) -> bool:
        return self.rect().contains(pos)


class SummaryDialog(QDialog):
    """Shows the rules' answer for one session and closes it when the note is copied.

    While the session is open the note would say "provisional", so the main button closes the
    session first and then copies the final note. After closing, changing the tie choice is an
    edit of a closed session and asks for a reason.
    """

    def __init__(self, parent: QWidget | None, controller: SummaryActions, session_id: str) -> None:
        super().__init__(parent)
        self._controller = controller
        self._session_id = session_id
        self._result: rules.Result | None = None
        self._allocation: dict[str, int] | None = None
        self._option_list: list[dict[str, int]] = []
        self._closed = False
        self.reason_dialog: ReasonDialog | None = None
        self.corrections_dialog: CorrectionsDialog | None = None
        self.setWindowTitle("End of session")
        # Fits a 1024x600 screen at 125% font scale: the parts scroll, the buttons stay (their
        # row sets the least width, below, so no label is ever cut).

        self.title = QLabel()
        self.title.setFont(theme.scaled_font(self, 1.3, bold=True))
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setAccessibleName("Codes, minutes and units")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Tab leaves the table (arrows move between its cells): Tab from cell to cell went
        # round and round, and the buttons below were out of the keyboard's reach.
        self.table.setTabKeyNavigation(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.totals = QLabel()
        self.totals.setWordWrap(True)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings.setAccessibleName("Warnings")
        self.ties = QGroupBox("The extra unit may go to either code: choose")
        self.ties.setAccessibleName("Equally valid ways to share the units")
        self._tie_group = QButtonGroup(self)
        self._tie_layout = QVBoxLayout(self.ties)
        self.note = QPlainTextEdit()
        self.note.setReadOnly(True)
        self.note.setAccessibleName("Note text")
        self.note.installEventFilter(self)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Summary status")
        self.status.setFont(theme.scaled_font(self, 1.1, bold=True))

        # Named for what they do (issue 12): next to "Close session and copy note", a bare
        # "Done" read as finishing the session while it left it open.
        self.back_button = QPushButton("&Back to treatment (session stays open)")
        self.back_button.setToolTip("Keep the session open; restart a timer if you need to")
        self.copy_button = QPushButton()
        self.copy_button.setDefault(True)
        self.done_button = QPushButton("C&lose summary")
        self.done_button.setToolTip(
            "The session is closed; back to the window for the next patient"
        )
        self.correct_button = QPushButton("Correct &minutes…")
        self.correct_button.setToolTip("Fix recorded minutes of the closed session (asks why)")
        buttons = QHBoxLayout()
        for button in (self.back_button, self.correct_button, self.copy_button, self.done_button):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setMinimumWidth(theme.TOUCH_MIN * 3)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.correct_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.done_button)

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.title)
        column.addWidget(self.table, 2)
        column.addWidget(self.totals)
        column.addWidget(self.warnings)
        column.addWidget(self.ties)
        note_caption = QLabel("&Note (paste into the EMR):")
        note_caption.setBuddy(self.note)
        column.addWidget(note_caption)
        column.addWidget(self.note, 3)
        # On a small screen the table, warnings and note scroll; the buttons never leave it.
        self.body = QScrollArea()
        self.body.setWidgetResizable(True)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        # The dialog opened with the keys here, where nothing shows them: its parts take the
        # focus themselves, and it still scrolls to the one that has it.
        self.body.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.body.setWidget(body)
        self.table.setMinimumHeight(theme.TOUCH_MIN * 2)
        self.note.setMinimumHeight(theme.TOUCH_MIN * 2)
        outer = QVBoxLayout(self)
        outer.addWidget(self.body, 1)
        # What the last button did ("the note is on the clipboard") stays in view above the
        # buttons: below the note it was out of sight at the size the dialog opens.
        outer.addWidget(self.status)
        outer.addLayout(buttons)

        self.copy_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), self)
        self.copy_shortcut.activated.connect(self._on_copy_requested)
        self.copy_button.clicked.connect(self._on_copy_requested)
        self.back_button.clicked.connect(self.reject)
        self.correct_button.clicked.connect(self._on_correct_clicked)
        self.done_button.clicked.connect(self.accept)
        self._tie_group.idClicked.connect(self._on_tie_clicked)
        # Never narrower than its words (the longest it shows): a label cut short on a small
        # screen hides what the button does. Set once: a shown window resized by its hints
        # makes the offscreen platform warn.
        self.copy_button.setText("Close session and &copy note")
        for button in (self.back_button, self.correct_button, self.copy_button, self.done_button):
            button.setMinimumWidth(max(theme.TOUCH_MIN * 3, button.sizeHint().width()))
        # The widest row of buttons it will show (open, then closed) fixes the least width, so
        # showing or hiding a button never changes the window's hints.
        rows = (
            (self.back_button, self.copy_button),
            (self.correct_button, self.copy_button, self.done_button),
        )
        spacing = max(0, buttons.spacing())
        margins = outer.contentsMargins()
        widest = max(sum(b.minimumWidth() + spacing for b in row) for row in rows)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.setMinimumSize(widest + margins.left() + margins.right(), 360)
        self._refresh()

    @classmethod
    def show_for(
        cls, parent: QWidget | None, controller: SummaryActions, session_id: str
    ) -> SummaryDialog:
        """Open the summary without blocking (window-modal) and return it."""
        dialog = cls(parent, controller, session_id)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        theme.settle_layout(dialog)
        # Its size hint is its least size (the parts scroll): opened at it, on a 1366x768
        # screen it showed one line of the note and cut the warnings.
        theme.fit_to_screen(dialog, *OPENING_SIZE)
        dialog.open()
        return dialog

    @property
    def answer(self) -> rules.Result | None:
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def tie_buttons(self) -> list[QRadioButton]:
        return [b for b in self._tie_group.buttons() if isinstance(b, QRadioButton)]

    # -- events ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Ctrl+C in the note copies the selection when there is one, else the whole note: the
        # text box would otherwise swallow the shortcut and copy nothing.
        if (
            watched is self.note
            and event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and event.matches(QKeySequence.StandardKey.Copy)
            and not self.note.textCursor().hasSelection()
        ):
            event.ignore()
            return True
        return super().eventFilter(watched, event)

    def _on_copy_requested(self) -> None:
        if not self._closed:
            # The tie choice shown is stored with the session: the export must bill it.
            chosen = None
            if self._result is not None and self._result.alternatives:
                chosen = self._result.allocation
            if not self._controller.close_session(self._session_id, chosen):
                self.status.setText("The session could not be closed; see the message above.")
                return
            self._closed = True
            self._refresh()
        if self._result is None:
            if self._closed:
                self.status.setText("Session closed. Correct it before copying a note.")
            return
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(self._result.note)
        self.status.setText("Session closed. The note is on the clipboard: paste it into the EMR.")

    def _on_correct_clicked(self) -> None:
        def save(changes: dict[str, int], reason: str, make_room: bool) -> Refusal | None:
            refused = self._controller.correct_minutes(changes, reason, make_room)
            if refused is not None:
                return refused
            self._allocation = None  # the minutes changed: offer the ties afresh
            self.status.setText("Corrected. Copy the note again to paste the amended version.")
            self._refresh()
            return None

        self.corrections_dialog = CorrectionsDialog.show_for(
            self, self._controller.segments(self._session_id), save, self._controller.policy
        )

    def _on_tie_clicked(self, index: int) -> None:
        options = self._options()
        if not 0 <= index < len(options):
            return
        chosen = options[index]
        if chosen == dict(self._result.allocation if self._result else {}):
            return
        if not self._closed:
            self._allocation = chosen
            self._refresh()
            return

        def apply(reason: str) -> None:
            self._allocation = chosen
            self._controller.choose_allocation(self._session_id, chosen, reason)
            self._refresh()
            self.status.setText("Changed. Copy the note again to paste the corrected version.")

        self.reason_dialog = ReasonDialog.ask(
            self,
            "The session is closed. Why are you changing how the units are shared?",
            apply,
            on_cancel=self._refresh,
        )

    # -- rendering -------------------------------------------------------------------------

    def _show_problem(self, problem: SessionProblem) -> None:
        """A session the rules refuse as recorded: say what and how to correct it; it can still
        be closed (nothing to copy until it is corrected)."""
        self._result = None
        self._option_list = []
        self.table.setRowCount(0)
        self.totals.setText("Cannot be billed as recorded: no units until it is corrected.")
        where = f"{problem.field}: " if problem.field else ""
        self.warnings.setText(
            f"\N{WARNING SIGN} Patient {problem.session.patient_ref}: {where}{problem.message}. "
            + (
                "Use Correct minutes… to put the right minutes on it."
                if self._closed
                else "Close the session, then use Correct minutes… to put the right minutes on it."
            )
        )
        self.ties.setVisible(False)
        self.note.setPlainText("")
        self.back_button.setVisible(not self._closed)
        self.done_button.setVisible(self._closed)
        self.correct_button.setVisible(self._closed)
        self.copy_button.setVisible(not self._closed)
        self.copy_button.setText("Close &session")
        self.copy_button.setAccessibleName("Close session")

    def _options(self) -> list[dict[str, int]]:
        """The default allocation first, then the equally valid ones (fixed once computed)."""
        return self._option_list

    def _refresh(self) -> None:
        result = self._controller.summary(self._session_id, self._allocation)
        session = self._controller.get_session(self._session_id)
        if result is None or session is None:
            self.status.setText("The summary could not be read from the database.")
            return
        self._closed = not session.is_open
        self.title.setText(
            f"Patient {session.patient_ref} · {session.date_of_service.isoformat()} · "
            f"{session.clinician} ({session.role.value}) · {session.payer_profile}"
        )
        if isinstance(result, SessionProblem):
            self._show_problem(result)
            return
        self._result = result
        if self._allocation is None:
            self._option_list = [dict(result.allocation), *(dict(a) for a in result.alternatives)]
        self._fill_table(result)
        self.totals.setText(
            f"Total timed minutes {result.total_timed_minutes} · timed units "
            f"{result.total_timed_units} · total treatment minutes "
            f"{result.total_treatment_minutes} · {rules.METHOD_NAME[result.method]}"
        )
        if result.warnings:
            self.warnings.setText(
                "\n".join(f"\N{WARNING SIGN} {w.message}" for w in result.warnings)
            )
        else:
            self.warnings.setText("No warnings.")
        self._fill_ties(result)
        self.note.setPlainText(result.note)
        self.copy_button.setVisible(True)
        self.back_button.setVisible(not self._closed)
        self.done_button.setVisible(self._closed)
        self.correct_button.setVisible(self._closed)
        if self._closed:
            self.copy_button.setText("&Copy note")
            self.copy_button.setAccessibleName("Copy note")
        else:
            self.copy_button.setText("Close session and &copy note")
            self.copy_button.setAccessibleName("Close session and copy note")
        for button in (self.back_button, self.done_button, self.correct_button):
            button.setAccessibleName(button.text().replace("&", "").rstrip("…"))

    def _fill_table(self, result: rules.Result) -> None:
        lines: dict[str, list[str]] = {}
        for line in result.lines:
            lines.setdefault(line.code, []).append(line.label)
        self.table.setRowCount(len(result.codes))
        for row, code in enumerate(result.codes):
            minutes = str(code.minutes) if code.minutes_recorded else "\N{EN DASH}"
            if code.assistant_minutes:
                minutes += f" (assistant {code.assistant_minutes})"
            cells = (
                code.code,
                code.description,
                minutes,
                str(code.units),
                ", ".join(lines.get(code.code, [])) or "not billed",
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))

    def _fill_ties(self, result: rules.Result) -> None:
        for button in self._tie_group.buttons():
            self._tie_group.removeButton(button)
            self._tie_layout.removeWidget(button)
            button.deleteLater()
        options = self._options()
        self.ties.setVisible(len(options) > 1)
        current = dict(result.allocation)
        for index, option in enumerate(options):
            label = allocation_text(option)
            if index == 0:
                label += "  (default: more minutes first, then catalogue order)"
            button = _TapRadio(label)
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(f"Share the units as {allocation_text(option)}")
            button.setChecked(option == current)
            self._tie_group.addButton(button, index)
            self._tie_layout.addWidget(button)
        # Above the note, so after the table and before the note in the Tab chain: made after
        # them, they came after the buttons at the bottom.
        chain = [self.table, *self.tie_buttons, self.note]
        for first, second in pairwise(chain):
            QWidget.setTabOrder(first, second)
