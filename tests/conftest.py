"""Shared fixtures; Qt must be told to draw offscreen before anything imports it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that uses qtbot as "gui" so `pytest -m "not gui"` runs the Qt-free core alone.
    for item in items:
        if "qtbot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gui)
