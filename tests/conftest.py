"""Shared fixtures; Qt must be told to draw offscreen before anything imports it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

# The clinic-server fixtures (a PostgreSQL cluster the tests start once per run), shared by
# every tests/test_server*.py module.
pytest_plugins = ("tests.server_support",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that uses qtbot as "gui" so `pytest -m "not gui"` runs the Qt-free core alone.
    for item in items:
        if "qtbot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gui)
