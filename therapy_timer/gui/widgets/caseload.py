"""The caseload strip: a button per open session (patient, what runs, time, units), New patient."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QWidget,
)

from therapy_timer.gui import theme
from therapy_timer.gui.view_state import CaseloadEntry, format_elapsed

# Every entry has its own frame, so neighbours of one colour never read as one block; the
# shown patient's frame is thick and in the highlight colour.
_FRAME = "border-radius: 6px; padding: 2px 10px; border: {width}px solid {colour};"
_FILL = "background-color: {bg}; color: {fg};"
LONG_RUNNING_FILL = _FILL.format(bg=theme.ALERT_BG.name(), fg=theme.ON_STATE_FG.name())
RUNNING_FILL = _FILL.format(bg=theme.RUNNING_BG.name(), fg=theme.ON_STATE_FG.name())


def entry_style(entry: CaseloadEntry) -> str:
    if entry.long_running:
        fill = LONG_RUNNING_FILL
    elif entry.is_running:
        fill = RUNNING_FILL
    else:
        fill = ""
    if entry.current:
        frame = _FRAME.format(width=4, colour="palette(highlight)") + " font-weight: bold;"
    else:
        frame = _FRAME.format(width=1, colour="palette(mid)")
    return f"QPushButton {{ {fill} {frame} }}"


WARNING_MARK = "\N{WARNING SIGN} "
CLINICIAN_CHARS = 20
"""A clinician's name in an entry is cut to this (whole in its tooltip): at full length one
long name took 600 pixels and pushed the shown patient off a 1024-pixel strip."""


def short_name(name: str) -> str:
    if len(name) <= CLINICIAN_CHARS:
        return name
    return name[: CLINICIAN_CHARS - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"


def entry_text(entry: CaseloadEntry) -> str:
    """Two short lines: the patient (and key), then what runs, its time and the units so far."""
    key = f"Ctrl+{entry.number}  " if entry.number is not None else ""
    mark = WARNING_MARK if entry.long_running else ""
    units = f"{entry.units} unit{'s' * (entry.units != 1)}"
    time = f" {format_elapsed(entry.elapsed)}" if entry.is_running else ""
    return (
        f"{key}{entry.patient_ref} ({short_name(entry.clinician)})\n"
        f"{mark}{entry.running}{time} · {units}"
    )


def entry_spoken(entry: CaseloadEntry) -> str:
    parts = [f"Patient {entry.patient_ref}", entry.running]
    if entry.long_running:
        parts.append("a timed code has run long")
    parts.append(f"{entry.units} units so far")
    if entry.current:
        parts.append("shown")
    return ", ".join(parts)


class CaseloadStrip(QFrame):
    """Every open session at a glance; a tap shows that patient. Scrolls sideways when full."""

    session_chosen = Signal(str)  # session id
    new_patient_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Caseload")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.new_button = QPushButton("+ &New patient")
        self.new_button.setAccessibleName("New patient")
        self.new_button.setToolTip("Open a session for another patient; the others keep running")
        self.new_button.setMinimumHeight(theme.TOUCH_MIN)
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(6)
        self._row.addStretch(1)
        inner = QWidget()
        inner.setLayout(self._row)
        self._scroll = QScrollArea()
        self._scroll.setWidget(inner)
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Enum properties by name before the first paint: see controller._repaint_timer.
        self._scroll.setProperty("verticalScrollBarPolicy", "ScrollBarAlwaysOff")
        self._scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(self._scroll, 1)
        outer.addWidget(self.new_button)
        self.buttons: dict[str, QPushButton] = {}
        self._entries: tuple[CaseloadEntry, ...] = ()
        self.new_button.clicked.connect(self.new_patient_requested)
        self._fit_height()

    @property
    def scroll_area(self) -> QScrollArea:
        """The strip's scroll area, which holds the entries."""
        return self._scroll

    def _fit_height(self) -> None:
        # Two lines of text plus the scroll bar a full strip needs; fixed, so the tiles below
        # keep their room on a 600-pixel-high screen.
        lines = self.fontMetrics().lineSpacing() * 2 + 16
        bar = self._scroll.horizontalScrollBar().sizeHint().height()
        self._scroll.setFixedHeight(max(theme.TOUCH_MIN, lines) + bar)

    def set_entries(self, entries: tuple[CaseloadEntry, ...]) -> None:
        if entries == self._entries:
            return
        self._entries = entries
        ids = [e.session_id for e in entries]
        if ids != list(self.buttons):
            for button in self.buttons.values():
                self._row.removeWidget(button)
                button.hide()  # deleteLater waits for the event loop; it must not show meanwhile
                button.deleteLater()
            self.buttons = {}
            for index, entry in enumerate(entries):
                button = QPushButton()
                button.setCheckable(True)
                button.setMinimumHeight(theme.TOUCH_MIN)
                button.setProperty("focusPolicy", "TabFocus")
                button.clicked.connect(
                    lambda _=False, sid=entry.session_id: self._on_button_clicked(sid)
                )
                self._row.insertWidget(index, button)
                self.buttons[entry.session_id] = button
        for entry in entries:
            button = self.buttons[entry.session_id]
            button.setText(entry_text(entry))
            button.setAccessibleName(entry_spoken(entry))
            button.setToolTip(f"{entry.patient_ref} ({entry.clinician})")
            button.setChecked(entry.current)
            style = entry_style(entry)
            if button.styleSheet() != style:
                button.setStyleSheet(style)

    def _on_button_clicked(self, session_id: str) -> None:
        button = self.buttons.get(session_id)
        if button is not None:
            # The view decides which entry is shown; a click must not leave a stale check.
            entry = next((e for e in self._entries if e.session_id == session_id), None)
            button.setChecked(entry is not None and entry.current)
        self.session_chosen.emit(session_id)
