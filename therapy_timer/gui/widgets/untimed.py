"""Untimed services as toggles, each with optional minutes."""

from __future__ import annotations

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSpinBox, QWidget

from therapy_timer.codes import MAX_DAY_MINUTES
from therapy_timer.gui import theme
from therapy_timer.gui.view_state import UntimedView

NO_MINUTES = "min: \N{EN DASH}"
TIMED_SUFFIX = " \N{MIDDLE DOT} timed"
TOGGLE_TIP = "Tap to record this service (one unit); tap again to remove it"
TIMED_TIP = (
    "Timed on the stopwatch: billed once with these minutes. Correct them with Correct "
    "minutes\N{HORIZONTAL ELLIPSIS} in the session's summary once it has ended."
)


class _Row:
    def __init__(self, view: UntimedView, parent: QWidget) -> None:
        self.code = view.code
        self.toggle = QPushButton(f"{view.code}  {view.name}", parent)
        self.toggle.setCheckable(True)
        self.toggle.setMinimumHeight(theme.TOUCH_MIN)
        self.toggle.setAccessibleName(f"{view.code} {view.name}, untimed service")
        self.toggle.setToolTip(TOGGLE_TIP)
        self.label = f"{view.code}  {view.name}"
        self.toggle.setStyleSheet(
            "QPushButton { text-align: left; padding: 4px 12px; } " + theme.CHECKED_STYLE
        )
        self.minutes = QSpinBox(parent)
        # As many as a service may record (the store's bound): a box that held fewer showed a
        # longer one cut down, and wrote that back when the focus merely passed through it.
        self.minutes.setRange(0, MAX_DAY_MINUTES)
        self.minutes.setSuffix(" min")
        self.minutes.setSpecialValueText(NO_MINUTES)  # 0 shows as "not recorded"
        self.minutes.setMinimumHeight(theme.TOUCH_MIN)
        self.minutes.setMinimumWidth(theme.TOUCH_MIN * 3)
        self.minutes.setAccessibleName(f"Minutes of {view.code} (optional)")


class UntimedList(QWidget):
    """Forwards ticks and minutes; the controller records them."""

    toggled = Signal(str, bool, object)  # code, checked, minutes or None
    minutes_edited = Signal(str, object)  # code, minutes or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict[str, _Row] = {}
        self._columns = 2
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(0, 1)
        self._grid.setColumnStretch(2, 1)
        self._empty = QLabel("No untimed services on this screen; add one with the search box.")
        self._grid.addWidget(self._empty, 0, 0)

    def row(self, code: str) -> _Row:
        return self._rows[code]

    @property
    def codes(self) -> list[str]:
        return list(self._rows)

    def set_views(self, views: tuple[UntimedView, ...]) -> None:
        if [v.code for v in views] != list(self._rows):
            self._rebuild(views)
        for view in views:
            row = self._rows[view.code]
            row.toggle.blockSignals(True)
            row.toggle.setChecked(view.checked)
            row.toggle.blockSignals(False)
            mark = theme.CHECK_MARK if view.checked else ""
            row.toggle.setText(mark + row.label + (TIMED_SUFFIX if view.timed else ""))
            # A tick or minutes typed here would record by hand what the stopwatch already
            # bills: the billing would add them up (R1.1).
            row.toggle.setEnabled(not view.timed)
            row.minutes.setEnabled(not view.timed)
            row.toggle.setToolTip(TIMED_TIP if view.timed else TOGGLE_TIP)
            row.minutes.setToolTip(TIMED_TIP if view.timed else "")
            if not row.minutes.hasFocus():
                row.minutes.blockSignals(True)
                row.minutes.setValue(view.minutes or 0)
                row.minutes.blockSignals(False)

    def minimumSizeHint(self) -> QSize:
        # As narrow as one service per row: two per row only where they fit (resizeEvent), so a
        # 1024x600 screen at 125% font never scrolls sideways to reach a button.
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self._width_for(1)), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        columns = 2 if event.size().width() >= self._width_for(2) else 1
        if columns != self._columns:
            self._columns = columns
            self._place()

    def _width_for(self, columns: int) -> int:
        """The least width of ``columns`` services per row, each at its natural width."""
        spacing = max(0, self._grid.horizontalSpacing())
        widest = max(
            (
                r.toggle.sizeHint().width() + spacing + r.minutes.minimumWidth()
                for r in self._rows.values()
            ),
            default=0,
        )
        return columns * widest + (columns - 1) * spacing

    def _place(self) -> None:
        for row in self._rows.values():
            self._grid.removeWidget(row.toggle)
            self._grid.removeWidget(row.minutes)
        for index, row in enumerate(self._rows.values()):
            line, column = divmod(index, self._columns)
            self._grid.addWidget(row.toggle, line + 1, column * 2)
            self._grid.addWidget(row.minutes, line + 1, column * 2 + 1)

    def _rebuild(self, views: tuple[UntimedView, ...]) -> None:
        for row in self._rows.values():
            for widget in (row.toggle, row.minutes):
                self._grid.removeWidget(widget)
                widget.deleteLater()
        self._rows = {}
        self._empty.setVisible(not views)
        for view in views:
            row = _Row(view, self)
            row.toggle.toggled.connect(
                lambda checked, row=row: self.toggled.emit(row.code, checked, _value(row))
            )
            row.minutes.editingFinished.connect(
                lambda row=row: self.minutes_edited.emit(row.code, _value(row))
            )
            self._rows[view.code] = row
        # Two services per row where they fit: a long list would push the tiles off a small
        # screen.
        self._columns = 2 if self.width() >= self._width_for(2) else 1
        self._place()


def _value(row: _Row) -> int | None:
    return row.minutes.value() or None
