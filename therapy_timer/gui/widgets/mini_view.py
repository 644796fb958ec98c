"""The compact always-on-top view for small screens: the running code, its time, and keys."""

from __future__ import annotations

from datetime import timedelta

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from therapy_timer.gui import theme
from therapy_timer.gui.view_state import TileState, TileView, WindowView, format_elapsed
from therapy_timer.gui.widgets.tiles import CodeTile

_IDLE = TileView("", "Nothing running", timedelta(0), 0, None, TileState.IDLE, None)


PLAY_MARK = "\N{BLACK RIGHT-POINTING TRIANGLE} "
SHOWN_MARK = "\N{BLACK RIGHT-POINTING POINTER} "
RUNNING_KEY_STYLE = (
    f"QPushButton {{ background-color: {theme.RUNNING_BG.name()};"
    f" color: {theme.ON_STATE_FG.name()}; font-weight: bold; border-radius: 4px; }}"
)


class MiniView(QWidget):
    """A small tool window that stays on top of the EMR; taps go to the same controller."""

    code_tapped = Signal(str)
    pause_tapped = Signal()
    expand_tapped = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint)
        self.setWindowTitle("Therapy Timer (mini)")
        self.setAccessibleName("Mini view")
        self.current = CodeTile(_IDLE, compact=True)
        self.current.setAccessibleName("Running code")
        self.current.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.current.setEnabled(True)
        self.pause = QPushButton("Pause")
        self.expand = QPushButton("Full window")
        for button in (self.pause, self.expand):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text())
        self._keys: dict[str, QPushButton] = {}
        self._keys_grid = QGridLayout()
        self._keys_grid.setSpacing(4)
        controls = QHBoxLayout()
        controls.addWidget(self.pause)
        controls.addWidget(self.expand)
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)
        # Every running patient, one line each: the mini view is all a therapist sees over
        # the EMR, and the other patients' hot packs run on.
        self.patients = QLabel()
        self.patients.setAccessibleName("Running patients")
        self.patients.setTextFormat(Qt.TextFormat.PlainText)
        column.addWidget(self.patients)
        column.addWidget(self.current)
        column.addLayout(self._keys_grid)
        column.addLayout(controls)
        self.pause.clicked.connect(self.pause_tapped)
        self.expand.clicked.connect(self.expand_tapped)

    def set_view(self, view: WindowView) -> None:
        running = view.running
        self.current.set_view(running if running is not None else _IDLE)
        # A time beside a running code alone, as the caseload strip gives it: beside "Paused:"
        # or "Nothing running" it read 00:00, as if nothing had been recorded.
        lines = [
            f"{SHOWN_MARK if e.current else ''}{e.patient_ref}: {e.running}"
            + (f" {format_elapsed(e.elapsed)}" if e.is_running else "")
            for e in view.caseload
            if e.is_running or e.current
        ]
        self.patients.setText("\n".join(lines))
        self.patients.setVisible(bool(lines))
        self.pause.setText("Resume" if view.paused else "Pause")
        self.pause.setAccessibleName(self.pause.text())
        self.pause.setEnabled(running is not None)
        tiles = [t for t in (*view.tiles, *view.beside) if t.number is not None]
        if [t.code for t in tiles] != list(self._keys):
            for button in self._keys.values():
                self._keys_grid.removeWidget(button)
                button.deleteLater()
            self._keys = {}
            for index, tile in enumerate(tiles):
                button = QPushButton(f"{tile.number}\n{tile.code}")
                button.setMinimumSize(theme.TOUCH_MIN + 20, theme.TOUCH_MIN + 8)
                button.setAccessibleName(f"Start {tile.code} {tile.name}")
                button.setToolTip(tile.name)
                button.clicked.connect(lambda _=False, code=tile.code: self.code_tapped.emit(code))
                self._keys_grid.addWidget(button, index // 5, index % 5)
                self._keys[tile.code] = button
        for tile in tiles:
            button = self._keys[tile.code]
            is_running = tile.state is TileState.RUNNING
            if button.property("running") != is_running:
                button.setProperty("running", is_running)
                # Same colour as the running tile, plus bold and a play mark in the text.
                button.setStyleSheet(RUNNING_KEY_STYLE if is_running else "")
                mark = PLAY_MARK if is_running else ""
                button.setText(f"{mark}{tile.number}\n{tile.code}")

    @property
    def key_buttons(self) -> dict[str, QPushButton]:
        return dict(self._keys)
