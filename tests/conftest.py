"""Shared fixtures; Qt must be told to draw offscreen before anything imports it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tests.fakes import NEW_YORK, FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Catalogue, builtin_catalogue
from therapy_timer.store import Store

if TYPE_CHECKING:  # Qt loads only in the tests that draw a window
    from tests.gui_support import Bot, Rig

# The clinic-server fixtures (a PostgreSQL cluster the tests start once per run), shared by
# every tests/test_server*.py module.
pytest_plugins = ("tests.server_support",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that uses qtbot as "gui" so `pytest -m "not gui"` runs the Qt-free core alone.
    for item in items:
        if "qtbot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def _event_loops_still_run(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "qtbot" in request.fixturenames:
        from tests.gui_support import event_loops_run

        assert event_loops_run(), (
            "QApplication.exit() reached no running exec() during this test (a one-shot exit "
            "timer left pending by this or an earlier test?): every later wait would time out"
        )


# -- what most tests share: a clock, the catalogue, a data folder, its store, the front door,
# and the window. A module needing another actor or folder overrides ``actor`` or ``data``.


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoneInfo]:
    """The process's local zone set to New York's, whose midnight and times are not UTC's: a
    date or time taken in UTC where the local one is meant shows."""
    monkeypatch.setenv("TZ", NEW_YORK.key)
    time.tzset()
    yield NEW_YORK
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def catalogue() -> Catalogue:
    return builtin_catalogue()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The data folder of ``store`` and ``clinic`` (made when the store opens)."""
    return tmp_path / "data"


@pytest.fixture
def actor() -> str:
    """Who ``store`` and ``clinic`` write into the audit log."""
    return "test"


@pytest.fixture
def store(data: Path, clock: FakeClock, actor: str) -> Iterator[Store]:
    with Store.open(data, clock=clock, actor=actor) as opened:
        yield opened


@pytest.fixture
def clinic(store: Store, clock: FakeClock, catalogue: Catalogue, actor: str) -> Clinic:
    return Clinic(store, catalogue, clock, actor=actor)


@pytest.fixture
def rig(qtbot: Bot, data: Path) -> Iterator[Rig]:
    """The main window, shown offscreen over its own data folder."""
    from tests.gui_support import build

    yield from build(qtbot, data)
