"""The live strip: total timed minutes, units under both methods, minutes to the next unit."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from therapy_timer.gui import theme
from therapy_timer.gui.view_state import LiveView
from therapy_timer.rules import Method

METHOD_SHORT = {Method.CMS: "CMS 8-minute rule", Method.AMA: "AMA per-code"}


class _Figure(QWidget):
    """A big number over a caption, read by screen readers as one sentence."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.value = QLabel("0")
        self.value.setFont(theme.scaled_font(self, 2.0, bold=True))
        self.caption = QLabel(caption)
        self.caption.setWordWrap(True)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 4, 8, 4)
        column.setSpacing(0)
        column.addWidget(self.value)
        column.addWidget(self.caption)

    def show_figure(self, value: str, caption: str) -> None:
        self.value.setText(value)
        self.caption.setText(caption)
        self.setAccessibleName(f"{caption}: {value}")


class LiveStrip(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Live totals")
        self.total = _Figure("timed minutes")
        self.payer_units = _Figure("units")
        self.other_units = _Figure("units")
        self.next_unit = _Figure("to the next unit")
        row = QHBoxLayout(self)
        for figure in (self.total, self.payer_units, self.other_units, self.next_unit):
            row.addWidget(figure, 1)
        self._last: LiveView | None = None

    def set_view(self, view: LiveView) -> None:
        if view == self._last:
            return
        self._last = view
        self.total.show_figure(str(view.total_timed_minutes), "Total timed minutes")
        self.payer_units.show_figure(
            str(view.payer_units), f"Units, payer: {METHOD_SHORT[view.payer_method]}"
        )
        self.other_units.show_figure(
            str(view.other_units), f"Units if {METHOD_SHORT[view.other_method]}"
        )
        if view.minutes_to_next_unit is None:
            self.next_unit.show_figure("\N{EN DASH}", "Next unit: nothing timed is running")
        else:
            self.next_unit.show_figure(
                f"{view.minutes_to_next_unit} min", "to the next unit (information only)"
            )
