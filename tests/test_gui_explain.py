"""The window explains itself where a person looks: the About box names the data folder, the
payer box says what a profile decides."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui_support import Bot, Rig
from therapy_timer.explain import PAYER_PROFILE_HELP

LEFT = Qt.MouseButton.LeftButton
# A message box asks the window manager for its size; offscreen has none.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A folder name with a space, as a person's own folders have."""
    return tmp_path / "clinic data"


def test_the_about_box_names_the_data_folder(rig: Rig) -> None:
    rig.window.about_action.trigger()
    box = rig.window.about_box
    assert box is not None and box.isVisible()
    assert f"Your records are in {rig.data_dir} " in box.text()
    assert "Uninstalling the program keeps this folder" in box.text()


def test_the_payer_box_explains_what_a_profile_decides(qtbot: Bot, rig: Rig) -> None:
    header = rig.window.header
    assert header.payer.toolTip() == PAYER_PROFILE_HELP
    assert header.payer_help.height() >= 44  # a finger finds it
    qtbot.mouseClick(header.payer_help, LEFT)
    box = header.payer_help_box
    assert box is not None and box.isVisible()
    assert box.text() == PAYER_PROFILE_HELP
    for words in ("CMS", "AMA", "CQ/CO", "Which method?"):
        assert words in box.text()
