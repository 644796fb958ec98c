"""What a stopwatch tile paints: the right-hand words only where they leave the left text room."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetrics, QPainter

from tests.gui_support import Bot
from therapy_timer.codes import FurnishedBy
from therapy_timer.gui.view_state import TileState, TileView
from therapy_timer.gui.widgets import tiles
from therapy_timer.gui.widgets.tiles import CodeTile

Drawn = list[tuple[str, QRect, int, QFontMetrics]]


def _painted(qtbot: Bot, view: TileView, width: int, monkeypatch: pytest.MonkeyPatch) -> Drawn:
    """Each text the tile draws at ``width``: its text, rectangle, flags and font's metrics."""
    drawn: Drawn = []

    class Recording(QPainter):
        def drawText(self, *args: Any) -> None:  # type: ignore[override]  # records every form
            rect, flags, text = args
            drawn.append((text, QRect(rect), int(flags), QFontMetrics(self.font())))
            super().drawText(*args)

    monkeypatch.setattr(tiles, "QPainter", Recording)
    tile = CodeTile(view)
    qtbot.add_widget(tile)
    tile.resize(width, tile.sizeHint().height())
    tile.grab()
    return drawn


def _extent(text: str, rect: QRect, flags: int, metrics: QFontMetrics) -> tuple[int, int]:
    """Left and right x of the text as drawn in ``rect`` (left- or right-aligned)."""
    advance = metrics.horizontalAdvance(text)
    if flags & int(Qt.AlignmentFlag.AlignRight):
        return rect.right() - advance, rect.right()
    return rect.left(), rect.left() + advance


def _runs_into(drawn: Drawn, word: str, beside: str) -> bool:
    """Whether ``word`` runs into ``beside``: less than a space between them reads as one word."""
    [(_, w_rect, w_flags, w_metrics)] = [d for d in drawn if d[0] == word]
    [(_, b_rect, b_flags, b_metrics)] = [d for d in drawn if d[0] == beside]
    w_left, _ = _extent(word, w_rect, w_flags, w_metrics)
    _, b_right = _extent(beside, b_rect, b_flags, b_metrics)
    return w_left - b_right < w_metrics.horizontalAdvance(" ")


RUNNING = TileView(
    code="97110",
    name="Therapeutic exercise",
    elapsed=timedelta(hours=6, minutes=7),
    minutes=367,
    units=24,
    state=TileState.RUNNING,
    furnished_by=FurnishedBy.ASSISTANT,
    number=1,
)


def test_a_wide_tile_says_running_and_who_furnishes_it(
    qtbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = _painted(qtbot, RUNNING, 400, monkeypatch)
    texts = [text for text, *_ in drawn]
    assert "RUNNING" in texts and "ASSISTANT" in texts
    assert not _runs_into(drawn, "RUNNING", "1  97110")
    assert not _runs_into(drawn, "ASSISTANT", "24 units · 367 min")


@pytest.mark.parametrize("width", [180, 200, 230, 260, 300])
def test_a_narrow_tile_never_draws_a_word_over_its_code_or_figures(
    qtbot: Bot, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    # At 1024x600 three tiles share a row: "97110" and "RUNNING" ran into "97110RUNNING".
    drawn = _painted(qtbot, RUNNING, width, monkeypatch)
    texts = [text for text, *_ in drawn]
    assert "1  97110" in texts and "24 units · 367 min" in texts  # never dropped
    if "RUNNING" in texts:
        assert not _runs_into(drawn, "RUNNING", "1  97110")
    if "ASSISTANT" in texts:
        assert not _runs_into(drawn, "ASSISTANT", "24 units · 367 min")
    if width == 180:
        assert "RUNNING" not in texts
