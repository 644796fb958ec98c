"""Sizes, state colours, drawn icons and scaled fonts shared by the widgets."""

from __future__ import annotations

from PySide6 import QtCore
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QIcon,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
    QPolygonF,
)
from PySide6.QtWidgets import QWidget

from therapy_timer.gui.view_state import TileState

TOUCH_MIN = 44
"""Smallest side of anything a finger must hit (WCAG 2.5.5 / Apple HIG: 44 px)."""

# Fixed colours chosen to work on light and dark palettes alike: white text on them has a
# contrast ratio above 4.5:1 (WCAG AA), and the state is also given by an icon and a word, so
# nobody needs to tell green from amber.
RUNNING_BG = QColor("#1d7a3a")
PAUSED_BG = QColor("#8f5b00")
ALERT_BG = QColor("#a4262c")
ON_STATE_FG = QColor("#ffffff")

CHECK_MARK = "\N{CHECK MARK} "

CHECKED_STYLE = (
    # A chosen toggle must be obvious at a glance on any palette: the palette's own highlight
    # pair, bold text and (set by the widget) a check mark, not a faint shade of grey.
    "QPushButton:checked { background-color: palette(highlight);"
    " color: palette(highlighted-text); font-weight: bold;"
    " border: 2px solid palette(window-text); border-radius: 4px; padding: 4px 12px; }"
)

STATE_WORD = {TileState.IDLE: "", TileState.RUNNING: "RUNNING", TileState.PAUSED: "PAUSED"}


def settle_layout(widget: QWidget) -> None:
    """Size a top-level window from its layout before it is shown.

    Setting the size constraints after the native window exists makes Qt call
    ``propagateSizeHints``, which the offscreen platform (tests, smoke test) does not implement
    and warns about; settled first, a window shows without it and opens at its final size.
    """
    layout = widget.layout()
    if layout is not None:
        layout.activate()


def fit_to_screen(widget: QWidget, width: int, height: int) -> None:
    """Open a top-level window at ``width`` x ``height``, or maximized where the screen has no
    room for that (a 1024x600 tablet at 125% font scale): a window manager does not shrink a
    window to its screen, so it would open with its buttons past the edges."""
    if not resize_to_screen(widget, width, height):
        widget.setWindowState(widget.windowState() | QtCore.Qt.WindowState.WindowMaximized)


def resize_to_screen(widget: QWidget, width: int, height: int) -> bool:
    """``fit_to_screen`` but for maximizing: whether ``width`` x ``height`` fits the screen."""
    screen = widget.screen()
    room = screen.availableGeometry().size() if screen is not None else None
    if room is None or (width <= room.width() and height <= room.height()):
        widget.resize(width, height)
        return True
    widget.resize(min(width, room.width()), min(height, room.height()))
    return False


def scaled_font(widget: QWidget, factor: float, bold: bool = False) -> QFont:
    """The widget's font scaled by ``factor``, so the user's font size setting carries through."""
    font = QFont(widget.font())
    size = font.pointSizeF()
    if size > 0:
        font.setPointSizeF(size * factor)
    else:  # a pixel-sized font
        font.setPixelSize(max(1, round(font.pixelSize() * factor)))
    font.setBold(bold)
    return font


def state_icon(state: TileState, color: QColor, size: int = 32) -> QIcon:
    """A play triangle (running), two bars (paused) or a hollow circle (idle), drawn in ``color``.

    Drawn rather than taken from the style, so that it has the text colour on any palette.
    Filled and stroked as paths (see ``pen``), as every tile paints one at the first paint.
    """
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0, 0))  # transparent
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    shape = QPainterPath()
    if state is TileState.RUNNING:
        shape.addPolygon(
            QPolygonF(
                [
                    QPointF(s * 0.22, s * 0.12),
                    QPointF(s * 0.88, s * 0.5),
                    QPointF(s * 0.22, s * 0.88),
                ]
            )
        )
        shape.closeSubpath()
        painter.fillPath(shape, solid(color))
    elif state is TileState.PAUSED:
        # Filled as drawRect fills a rectangle (a path of one is rasterized differently).
        painter.setBackground(solid(color))
        painter.eraseRect(QRectF(s * 0.2, s * 0.14, s * 0.2, s * 0.72))
        painter.eraseRect(QRectF(s * 0.6, s * 0.14, s * 0.2, s * 0.72))
    else:
        shape.addEllipse(QRectF(s * 0.16, s * 0.16, s * 0.68, s * 0.68))
        painter.strokePath(shape, pen(color, s * 0.08))
    painter.end()
    return QIcon(pixmap)


def pen(color: QColor, width: float) -> QPen:
    """A solid pen of ``color`` and ``width``, for ``QPainter.strokePath``.

    The tiles and their icons are stroked and filled as paths, never through ``setPen`` or
    ``setBrush``, nor ``QPen(color, width)`` or ``QBrush(color)``: PySide6 picks among those
    overloads by asking whether the argument is one of the ``Qt`` namespace's enums, which
    builds all 93 of them (~14 ms), and the tiles are painted at the window's first paint
    (issue 13; tests/test_startup.py holds a start to building none).
    """
    made = QPen()
    made.setColor(color)
    made.setWidthF(width)
    return made


def solid(color: QColor) -> QBrush:
    """A solid brush of ``color``, for ``QPainter.fillPath`` (made as ``pen`` says why)."""
    return pen(color, 1).brush()


def state_colors(widget: QWidget, state: TileState) -> tuple[QColor, QColor]:
    """Background and text colour for a tile in ``state``; idle follows the system palette."""
    if state is TileState.RUNNING:
        return RUNNING_BG, ON_STATE_FG
    if state is TileState.PAUSED:
        return PAUSED_BG, ON_STATE_FG
    palette = widget.palette()
    return palette.color(QPalette.ColorRole.Button), palette.color(QPalette.ColorRole.ButtonText)
