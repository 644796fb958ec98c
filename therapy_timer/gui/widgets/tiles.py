"""Stopwatch tiles: one big tappable tile per code, and the grid that holds them."""

from __future__ import annotations

from PySide6 import QtCore
from PySide6.QtCore import QRect, QRectF, QSize, Signal
from PySide6.QtGui import (
    QContextMenuEvent,
    QEnterEvent,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QAbstractButton, QGridLayout, QMenu, QSizePolicy, QWidget

from therapy_timer.codes import FurnishedBy
from therapy_timer.gui import theme
from therapy_timer.gui.view_state import TileState, TileView, format_elapsed, spoken_elapsed

_BY_WORD = {
    FurnishedBy.THERAPIST: "therapist",
    FurnishedBy.ASSISTANT: "assistant",
    FurnishedBy.TOGETHER: "together",
}


def tile_description(view: TileView) -> str:
    """What a screen reader says for a tile: code, name, state, time, and the units and
    minutes its last line shows (the billed ones: a modality's include those entered by hand)."""
    parts = [f"{view.code} {view.name}"]
    if view.state is not TileState.IDLE:
        parts.append(view.state.value)
    if view.state is TileState.RUNNING and view.furnished_by is not None:
        parts.append(f"furnished by {_BY_WORD[view.furnished_by]}")
    parts.append(spoken_elapsed(view.elapsed))
    if view.units is not None:
        parts.append(f"{view.units} unit{'s' * (view.units != 1)}")
    if view.minutes is None:
        parts.append("minutes not recorded")
    else:
        parts.append(f"{view.minutes} minute{'s' * (view.minutes != 1)} billed")
    return ", ".join(parts)


def tile_lines(view: TileView) -> tuple[str, str]:
    """A tile's head (key and code) and its last line (units or "beside", and minutes). A tile
    without a code (the mini view's when nothing runs) shows its name and no figures: it read
    "beside · 0 min", as if a modality ran."""
    if not view.code:
        return view.name, ""
    key = f"{view.number}  " if view.number else ""
    if view.minutes is None:
        summary = f"{view.units} unit{'s' * (view.units != 1)} · no minutes"
    elif view.units is None:
        summary = f"beside · {view.minutes} min"
    else:
        summary = f"{view.units} unit{'s' * (view.units != 1)} · {view.minutes} min"
    return f"{key}{view.code}", summary


def _fits_beside(
    metrics: QFontMetrics,
    indent: int,
    left: str,
    word: str,
    width: int,
    left_metrics: QFontMetrics | None = None,
) -> bool:
    """Whether ``word``, right-aligned, leaves a gap after ``left`` (drawn from ``indent``).

    A narrow tile (1024x600, three to a row) has no room for both: the word goes, since the
    colour, the icon and the screen reader's description still say the same.
    """
    taken = indent + (left_metrics or metrics).horizontalAdvance(left)
    return taken + metrics.horizontalAdvance(f"  {word}") <= width


# drawText's flags as the int its C++ signature takes: naming Qt.AlignmentFlag would build the
# Qt namespace's enums at the first paint (theme.pen says why that is avoided).
ALIGN_LEFT = 0x1
ALIGN_RIGHT = 0x2


def _elided(metrics: QFontMetrics, text: str, width: int) -> str:
    """``text`` elided on the right to ``width``. A text whose rounded advance is under
    ``width`` fits as it is, which is what ``elidedText`` returns for it: asked only for longer
    ones, so a start whose names fit builds no ``Qt`` enum (theme.pen)."""
    if metrics.horizontalAdvance(text) < width:
        return text
    return metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width)


class CodeTile(QAbstractButton):
    """A tile showing one code's stopwatch; tapping it asks for that code to start.

    Painted by hand (one paint per second at most, no child widgets) so the repaint stays cheap.
    The running tile differs by colour, by a play icon and by the word RUNNING.
    """

    tapped = Signal(str)
    removal_requested = Signal(str)

    def __init__(self, view: TileView, *, compact: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self._view = view
        self._compact = compact
        self.setObjectName(f"tile-{view.code}")
        self.setProperty("focusPolicy", "StrongFocus")  # by name: see ALIGN_LEFT
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.clicked.connect(self._on_self_clicked)
        self._apply_accessibility()
        self._apply_text_color()

    @property
    def view(self) -> TileView:
        return self._view

    @property
    def code(self) -> str:
        return self._view.code

    def set_view(self, view: TileView) -> None:
        if view == self._view:
            return
        old = self._view
        self._view = view
        if (old.state, old.units, old.furnished_by, old.number, old.minutes) != (
            view.state,
            view.units,
            view.furnished_by,
            view.number,
            view.minutes,
        ):
            self._apply_accessibility()
            if old.state is not view.state:
                self._apply_text_color()
        elif format_elapsed(old.elapsed) == format_elapsed(view.elapsed):
            return
        self.update()

    def _apply_accessibility(self) -> None:
        view = self._view
        key = f" (key {view.number})" if view.number else ""
        self.setAccessibleName(f"{view.code} {view.name}")
        self.setAccessibleDescription(tile_description(view))
        action = "Running" if view.state is TileState.RUNNING else "Tap to start"
        self.setToolTip(f"{view.code} {view.name}{key}\n{action}")

    def _apply_text_color(self) -> None:
        """The state's text colour as the palette's button text: a painter begun on the tile
        takes its pen from it, so painting needs no ``setPen`` (theme.pen says why)."""
        if self._view.state is TileState.IDLE:
            self.setPalette(QPalette())  # the palette the tile inherits
        else:
            palette = QPalette()
            palette.setColor(
                QPalette.ColorRole.ButtonText, theme.state_colors(self, self._view.state)[1]
            )
            self.setPalette(palette)

    def enterEvent(self, event: QEnterEvent) -> None:
        # The pointing hand is set as the pointer first comes over the tile rather than in
        # __init__: QCursor(Qt.CursorShape) builds the Qt namespace's enums (theme.pen), and the
        # tiles are made before the window's first paint.
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        super().enterEvent(event)

    def _on_self_clicked(self) -> None:
        self.tapped.emit(self._view.code)

    # -- geometry ------------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        big = QFontMetrics(theme.scaled_font(self, self._time_factor(), bold=True))
        small = QFontMetrics(self.font())
        width = max(big.horizontalAdvance("00:00:00"), small.horizontalAdvance("M" * 16)) + 32
        # The head line, the name (not on a compact tile) and the last line, beside the time: a
        # compact tile counted its last line alone, and at 125% font ran it out under its frame.
        lines = 2 if self._compact else 3
        height = big.height() + small.height() * lines + 32
        return QSize(width, max(theme.TOUCH_MIN, height))

    def minimumSizeHint(self) -> QSize:
        hint = self.sizeHint()
        return QSize(max(theme.TOUCH_MIN * 3, hint.width() * 2 // 3), hint.height())

    def _time_factor(self) -> float:
        return 1.6 if self._compact else 2.6

    # -- painting ------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        # Filled, stroked and written without setPen or setBrush (theme.pen says why): the
        # painter's pen is the text colour (_apply_text_color).
        view = self._view
        bg, fg = theme.state_colors(self, view.state)
        if self.isDown():
            bg = bg.darker(115)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        outline = fg if view.state is not TileState.IDLE else palette.color(QPalette.ColorRole.Mid)
        width = 3.0 if view.state is not TileState.IDLE else 1.5
        frame = QRectF(self.rect()).adjusted(width, width, -width, -width)
        shape = QPainterPath()
        shape.addRoundedRect(frame, 10, 10)
        painter.fillPath(shape, theme.solid(bg))
        painter.strokePath(shape, theme.pen(outline, width))
        if self.hasFocus():  # after a tap or Tab, not at the first paint: setPen is fine here
            painter.save()
            highlight = palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(QPen(highlight, 3, QtCore.Qt.PenStyle.DashLine))
            painter.drawRoundedRect(frame.adjusted(4, 4, -4, -4), 8, 8)
            painter.restore()

        pad = 12
        inner = self.rect().adjusted(pad, pad - 2, -pad, -pad + 2)
        head_font = theme.scaled_font(self, 1.25, bold=True)
        head = QFontMetrics(head_font)
        icon_size = head.height()
        theme.state_icon(view.state, fg, icon_size * 2).paint(
            painter, QRect(inner.left(), inner.top(), icon_size, icon_size)
        )
        painter.setFont(head_font)
        head_text, summary = tile_lines(view)
        head_rect = QRect(inner.left() + icon_size + 8, inner.top(), inner.width(), head.height())
        painter.drawText(head_rect, ALIGN_LEFT, head_text)
        word = theme.STATE_WORD[view.state]
        if word and _fits_beside(head, icon_size + 8, head_text, word, inner.width()):
            painter.drawText(inner, ALIGN_RIGHT, word)
        y = inner.top() + head.height()

        body = QFontMetrics(self.font())
        if not self._compact:
            painter.setFont(self.font())
            name = _elided(body, view.name, inner.width())
            painter.drawText(QRect(inner.left(), y, inner.width(), body.height()), 0, name)
            y += body.height()

        time_font = theme.scaled_font(self, self._time_factor(), bold=True)
        time_height = QFontMetrics(time_font).height()
        painter.setFont(time_font)
        time_rect = QRect(inner.left(), y, inner.width(), time_height)
        painter.drawText(time_rect, ALIGN_LEFT, format_elapsed(view.elapsed))
        y += time_height

        painter.setFont(self.font())
        bottom = QRect(inner.left(), y, inner.width(), body.height())
        painter.drawText(bottom, ALIGN_LEFT, summary)
        if view.state is TileState.RUNNING and view.furnished_by not in (
            None,
            FurnishedBy.THERAPIST,
        ):
            by_font = theme.scaled_font(self, 1.0, bold=True)
            by = _BY_WORD[view.furnished_by or FurnishedBy.THERAPIST].upper()
            if _fits_beside(QFontMetrics(by_font), 0, summary, by, inner.width(), body):
                painter.setFont(by_font)
                painter.drawText(bottom, ALIGN_RIGHT, by)
        painter.end()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = QMenu(self)
        remove = menu.addAction(f"Remove {self._view.code} from this screen")
        remove.triggered.connect(lambda: self.removal_requested.emit(self._view.code))
        menu.exec(event.globalPos())


class TileGrid(QWidget):
    """A grid of tiles that follows a tuple of ``TileView``s, rebuilding only when codes change."""

    tile_tapped = Signal(str)
    tile_removal_requested = Signal(str)

    def __init__(self, *, columns: int = 3, compact: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self._columns = columns
        self._compact = compact
        self._tiles: dict[str, CodeTile] = {}
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(10)

    @property
    def tiles(self) -> list[CodeTile]:
        return list(self._tiles.values())

    def tile(self, code: str) -> CodeTile:
        return self._tiles[code]

    def set_views(self, views: tuple[TileView, ...]) -> None:
        if [v.code for v in views] != list(self._tiles):
            self._rebuild(views)
            return
        for view in views:
            self._tiles[view.code].set_view(view)

    def _rebuild(self, views: tuple[TileView, ...]) -> None:
        for tile in self._tiles.values():
            self._layout.removeWidget(tile)
            tile.deleteLater()
        self._tiles = {}
        for index, view in enumerate(views):
            tile = CodeTile(view, compact=self._compact, parent=self)
            tile.tapped.connect(self.tile_tapped)
            tile.removal_requested.connect(self.tile_removal_requested)
            self._layout.addWidget(tile, index // self._columns, index % self._columns)
            self._tiles[view.code] = tile
        self.setVisible(bool(views))
