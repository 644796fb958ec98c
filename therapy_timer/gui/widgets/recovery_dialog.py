"""The start-up choice for timers left running when the app stopped: keep, stop or discard."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from therapy_timer.gui import theme
from therapy_timer.model import Interrupted, RecoveryChoice


def describe(interrupted: Interrupted) -> str:
    """Plain words: whose session, which codes since when, when the app was last seen."""
    session = interrupted.session
    lines = [
        f"Therapy Timer stopped while timers were running for patient {session.patient_ref} "
        f"({session.clinician}, {session.date_of_service.isoformat()}):"
    ]
    for segment in interrupted.segments:
        lines.append(
            f"  \N{BULLET} {segment.code}, started at {segment.start_utc.astimezone():%H:%M}"
        )
    if interrupted.last_heartbeat is not None:
        seen = interrupted.last_heartbeat.astimezone()
        lines.append(f"The app was last seen running at {seen:%H:%M}.")
    else:
        lines.append("The app never recorded when it was last running.")
    lines.append("What happened to the treatment?")
    return "\n".join(lines)


class RecoveryDialog(QDialog):
    """One button per choice the session service offers; the choice goes to ``on_choice``."""

    def __init__(
        self,
        parent: QWidget | None,
        interrupted: Interrupted,
        on_choice: Callable[[RecoveryChoice], None],
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Timers were left running")
        self._on_choice = on_choice
        self.text = QLabel(describe(interrupted))
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setFont(theme.scaled_font(self, 1.1))
        self.buttons: dict[RecoveryChoice, QPushButton] = {}
        labels = {
            RecoveryChoice.KEEP_RUNNING: ("&Keep running", "The treatment is still going on"),
            RecoveryChoice.STOP_AT_HEARTBEAT: (
                "&Stop at last seen"
                + (
                    f" ({interrupted.last_heartbeat.astimezone():%H:%M})"
                    if interrupted.last_heartbeat
                    else ""
                ),
                "End the timers when the app was last running; later minutes are not counted",
            ),
            RecoveryChoice.DISCARD: (
                "&Discard these timers",
                "Remove the running stretches (they stay in the audit log)",
            ),
        }
        row = QHBoxLayout()
        for choice in interrupted.choices:
            label, tip = labels[choice]
            button = QPushButton(label)
            button.setToolTip(tip)
            button.setAccessibleName(label.replace("&", ""))
            button.setAccessibleDescription(tip)
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.clicked.connect(lambda _=False, choice=choice: self._choose(choice))
            self.buttons[choice] = button
            row.addWidget(button)
        column = QVBoxLayout(self)
        column.addWidget(self.text)
        column.addLayout(row)

    @classmethod
    def show_for(
        cls,
        parent: QWidget | None,
        interrupted: Interrupted,
        on_choice: Callable[[RecoveryChoice], None],
    ) -> RecoveryDialog:
        """Open the choice without blocking (window-modal) and return the dialog."""
        dialog = cls(parent, interrupted, on_choice)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        theme.settle_layout(dialog)
        dialog.open()
        return dialog

    def reject(self) -> None:
        # Escape or the title bar's close button would leave the timers undecided: a choice is
        # required, and "keep running" is one tap away.
        return

    def _choose(self, choice: RecoveryChoice) -> None:
        self._on_choice(choice)
        self.accept()
