"""Correct a closed session's recorded minutes: one row per segment, saved with a reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from therapy_timer.codes import MAX_DAY_MINUTES
from therapy_timer.gui import theme
from therapy_timer.gui.view_state import Refusal
from therapy_timer.gui.widgets.reason import ReasonDialog
from therapy_timer.model import Segment
from therapy_timer.stopwatch import RoundingPolicy


def _minutes(segment: Segment, policy: RoundingPolicy) -> int:
    # The clinic's rounding, as the summary applies it: a plain floor would show two 7:40
    # stretches as 7 + 7 beside a summary that (rounding to nearest) bills 8 + 8.
    if segment.stop_utc is None:
        return 0
    return policy.minutes(segment.stop_utc - segment.start_utc)


class CorrectionsDialog(QDialog):
    """Shows each recorded segment's minutes; Save asks why and hands the changes on.

    ``on_save`` receives {segment id: new minutes}, the reason and whether to make room; the
    caller applies them through the controller (this view holds no rules or storage of its
    own) and returns None, or why they were refused: the dialog then stays open with the
    minutes as typed and says why. A longer segment refused for a later code of its session
    in the way is offered room: the same change saved again moving the later codes later.
    ``policy`` is the clinic's rounding, so the minutes shown are the ones the summary counts.
    """

    def __init__(
        self,
        parent: QWidget | None,
        segments: Sequence[Segment],
        on_save: Callable[[dict[str, int], str, bool], Refusal | None],
        policy: RoundingPolicy,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Correct recorded minutes")
        self.setMinimumWidth(theme.TOUCH_MIN * 11)
        self._on_save = on_save
        self._original = {s.id: _minutes(s, policy) for s in segments}
        self.spins: dict[str, QSpinBox] = {}
        self.reason_dialog: ReasonDialog | None = None
        self._room_for: tuple[dict[str, int], str] | None = None  # the change and its reason

        grid = QGridLayout()
        for index, title in enumerate(("Code", "Furnished by", "Started (local)", "Minutes")):
            grid.addWidget(QLabel(f"<b>{title}</b>"), 0, index)
        for row, segment in enumerate(segments, start=1):
            grid.addWidget(QLabel(segment.code), row, 0)
            grid.addWidget(QLabel(segment.furnished_by.value), row, 1)
            grid.addWidget(QLabel(f"{segment.start_utc.astimezone():%H:%M}"), row, 2)
            spin = QSpinBox()
            spin.setRange(0, MAX_DAY_MINUTES)
            spin.setValue(self._original[segment.id])
            spin.setEnabled(segment.stop_utc is not None)
            spin.setMinimumSize(theme.TOUCH_MIN * 2, theme.TOUCH_MIN)
            spin.setAccessibleName(
                f"Minutes of {segment.code} started {segment.start_utc.astimezone():%H:%M}"
            )
            spin.valueChanged.connect(self._on_spin_value_changed)
            self.spins[segment.id] = spin
            grid.addWidget(spin, row, 3)

        self.save_button = QPushButton("&Save changes…")
        self.cancel_button = QPushButton("Cancel")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.save_button, self.cancel_button):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", "").rstrip("…"))
            buttons.addWidget(button)
        column = QVBoxLayout(self)
        hint = QLabel("The session is closed: each change is kept in the audit log with a reason.")
        hint.setWordWrap(True)
        column.addWidget(hint)
        self.refusal = QLabel()
        self.refusal.setWordWrap(True)
        self.refusal.hide()
        column.addWidget(self.refusal)
        # The command line's --shift-later, where a desk can reach it: the window cannot move
        # a code's start, so a refusal that said "move that one first" left nothing to do.
        self.make_room_button = QPushButton("&Make room: move the later codes later")
        self.make_room_button.setMinimumHeight(theme.TOUCH_MIN)
        self.make_room_button.setAccessibleName("Make room: move the later codes later")
        self.make_room_button.hide()
        room_row = QHBoxLayout()
        room_row.addWidget(self.make_room_button)
        room_row.addStretch(1)
        column.addLayout(room_row)
        # The rows scroll, the buttons stay: a session a timer ran all day in holds dozens of
        # segments, and as a grid alone 65 of them made the dialog 3,356 pixels tall, Save
        # past the bottom of any screen.
        rows = QWidget()
        rows.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        self.rows = QScrollArea()
        self.rows.setWidgetResizable(True)
        self.rows.setFrameShape(QFrame.Shape.NoFrame)
        self.rows.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the spin boxes take the keys
        self.rows.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rows.setWidget(rows)
        bar = self.rows.verticalScrollBar().sizeHint().width()
        self.rows.setMinimumWidth(rows.minimumSizeHint().width() + bar)
        column.addWidget(self.rows, 1)
        column.addLayout(buttons)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.make_room_button.clicked.connect(self._on_make_room_clicked)
        self.cancel_button.clicked.connect(self.reject)

    @classmethod
    def show_for(
        cls,
        parent: QWidget | None,
        segments: Sequence[Segment],
        on_save: Callable[[dict[str, int], str, bool], Refusal | None],
        policy: RoundingPolicy,
    ) -> CorrectionsDialog:
        """Open without blocking and return the dialog (tests drive it directly)."""
        dialog = cls(parent, segments, on_save, policy)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        theme.settle_layout(dialog)
        dialog.open()
        return dialog

    def changes(self) -> dict[str, int]:
        return {
            segment_id: spin.value()
            for segment_id, spin in self.spins.items()
            if spin.value() != self._original[segment_id]
        }

    def _on_save_clicked(self) -> None:
        changes = self.changes()
        if not changes:
            self.reject()
            return

        def save(reason: str) -> None:
            self._settle(changes, reason, self._on_save(changes, reason, False))

        self.reason_dialog = ReasonDialog.ask(
            self, "The session is closed. Why are these minutes being corrected?", save
        )

    def _on_make_room_clicked(self) -> None:
        # Taken once: a second click queued while the first one saved (another program's write
        # holding the file) reached the hidden dialog and saved the change again.
        room_for, self._room_for = self._room_for, None
        if room_for is not None:
            changes, reason = room_for
            self._settle(changes, reason, self._on_save(changes, reason, True))

    def _on_spin_value_changed(self) -> None:
        # The offer was for the minutes refused; others typed since are saved afresh.
        self._room_for = None
        self.make_room_button.hide()

    def _settle(self, changes: dict[str, int], reason: str, refused: Refusal | None) -> None:
        if refused is None:
            self.accept()
            return
        # The minutes stay as typed: one of them is to be changed, not all typed again.
        text = f"⚠ Not corrected: {refused.text}"
        offer = refused.room and len(changes) == 1
        if refused.room and not offer:
            text += ". To move the later codes to make room, save that change on its own."
        self._room_for = (changes, reason) if offer else None
        self.refusal.setText(text)
        self.refusal.show()
        self.make_room_button.setVisible(offer)
