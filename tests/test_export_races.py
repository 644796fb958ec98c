"""An export reads its days, writes the file, then marks the sessions exported; another
station (the window and the command line share a data folder) may change a session between
the read and the mark. A change the file does not hold must stay due for export.

Two ways the read comes first: the day view exports the days it shows (read when the screen
loaded), and a command-line export bills the range a few dates at a time as it writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role

NOW = datetime(2025, 3, 10, 13, tzinfo=UTC)


def _closed(clinic: Clinic, clock: FakeClock, ref: str) -> str:
    session = clinic.open_session(
        patient_ref=ref, clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=23)
    clinic.end_session(session.id)
    return session.id


def _changed_during_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, exported_before: bool, screen: bool
) -> str:
    """The status of P1's day after an export during which another station moved P1's
    session to another payer, after the export had read it."""
    clock = FakeClock(NOW)
    with Clinic.open(tmp_path, clock=clock) as desk, Clinic.open(tmp_path, clock=clock) as room:
        first = _closed(desk, clock, "P1")
        _closed(desk, clock, "P2")
        day = NOW.date()
        if exported_before:
            desk.export("csv", day, out=tmp_path / "earlier.csv")

        def change() -> None:
            room.change_payer(first, "Commercial (per-code)", reason="wrong payer")

        if screen:
            shown = desk.claim_days(day)
            change()
            desk.export("csv", day, out=tmp_path / "now.csv", days=shown)
        else:
            # The CSV's rows are read and billed as they are written (Clinic._csv_rows).
            reading = desk._csv_rows

            def read_then_changed(*args: Any, **kwargs: Any) -> Iterator[list[str]]:
                yield from reading(*args, **kwargs)
                change()

            monkeypatch.setattr(desk, "_csv_rows", read_then_changed)
            desk.export("csv", day, out=tmp_path / "now.csv")
        assert "Commercial" not in (tmp_path / "now.csv").read_text()  # read before the change
        assert desk.get_session(first).payer_profile == "Commercial (per-code)"
        (status,) = [d.status for d in desk.claim_days(day) if first in d.session_ids]
        return status


@pytest.mark.parametrize("screen", [True, False], ids=["day view", "streamed"])
def test_a_session_exported_before_and_changed_during_an_export_is_due_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, screen: bool
) -> None:
    # The export no longer marks sessions it read as exported and unchanged (issue 13): one
    # changed meanwhile stays due, where marking it again hid the change (as d42a8e9 did).
    status = _changed_during_export(tmp_path, monkeypatch, exported_before=True, screen=screen)
    assert status == "amended after export"


@pytest.mark.xfail(
    strict=True,
    reason="known, not fixed: the mark cannot tell a change made after the export read the "
    "session from one made before (the export's read moment would have to reach the mark)",
)
@pytest.mark.parametrize("screen", [True, False], ids=["day view", "streamed"])
def test_a_session_never_exported_and_changed_during_an_export_is_due_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, screen: bool
) -> None:
    status = _changed_during_export(tmp_path, monkeypatch, exported_before=False, screen=screen)
    assert status != "exported"
