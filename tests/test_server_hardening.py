"""The clinic server attacked before a clinic meets it: a session that leaves an exported day
at one workstation while the day's other sessions are another's, and records the desk cannot
take as a workstation sent them (a workstation role is an authenticated but untrusted writer)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.server_support import DAY, Server, Station, two_rooms_and_a_desk
from therapy_timer import server

_DAY = DAY.isoformat()


def _day_of_mrn1(room1: Station, room2: Station) -> None:
    """The PT in room 1 in the morning, the PTA in room 2 in the afternoon: one claim day."""
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20, "97140": 9})
    room2.clock.set(datetime(2025, 3, 10, 19, 0, tzinfo=UTC))
    room2.treat("MRN1", "Sam Diaz", "pta", {"97110": 14, "97530": 8})


def _listed(desk: Station) -> dict[str, dict[str, Any]]:
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    return {f"{r['patient_ref']} {r['clinician']}": r for r in rows}


def test_a_session_moved_off_an_exported_day_leaves_that_day_due_at_the_desk(
    clinic_server: Server, tmp_path: Path
) -> None:
    # The desk billed MRN1's day pooled (Pat Lee's and Sam Diaz's minutes). Room 1 then finds
    # its session was another patient's: MRN1's day went out with minutes that were not
    # MRN1's, so it is due again, though the session left behind is room 2's, unchanged.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    desk("export", "--date", _DAY, "--out", str(tmp_path / "first.csv"), "--clinic")
    [pt] = room1.json("session", "list", "--date", _DAY, "--json")
    room1("session", "amend", pt["id"], "--patient", "MRN2", "--reason", "wrong chart")
    room1("clinic", "sync")

    listed = _listed(desk)
    assert "amended after export" in listed["MRN1 Sam Diaz"]["state"]
    assert "amended after export" in listed["MRN2 Pat Lee"]["state"]
    again = tmp_path / "again.csv"
    done = desk("export", "--date", _DAY, "--out", str(again), "--clinic")
    assert "2 marked exported" in done.stderr
    rows = list(csv.DictReader(again.read_text(encoding="utf-8-sig").splitlines()))
    assert {(r["patient_ref"], r["total_timed_minutes"], r["status"]) for r in rows} == {
        ("MRN1", "22", "amended after export"),  # 14 + 8: Sam Diaz's alone now
        ("MRN2", "29", "amended after export"),  # 20 + 9
    }
    # Billed again: nothing of the day is due any more.
    assert not any("amended after export" in r["state"] for r in _listed(desk).values())


def test_a_session_moved_while_the_desk_exports_leaves_its_day_due(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The desk reads MRN1's day with room 1's session in it and bills it; room 1 moves the
    # session to MRN2 and syncs before the desk marks what it read: MRN1's day went out with
    # minutes that are not MRN1's, so it stays due, whichever session of it is left.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    real_mark = server.mark_exported

    def moved_meanwhile(conn: psycopg.Connection[Any], days: Any) -> int:
        [pt] = room1.json("session", "list", "--date", _DAY, "--json")
        room1("session", "amend", pt["id"], "--patient", "MRN2", "--reason", "wrong chart")
        room1("clinic", "sync")
        return real_mark(conn, days)

    monkeypatch.setattr(server, "mark_exported", moved_meanwhile)
    desk("export", "--date", _DAY, "--out", str(tmp_path / "first.csv"), "--clinic")
    monkeypatch.undo()

    listed = _listed(desk)
    assert "amended after export" in listed["MRN1 Sam Diaz"]["state"]
    assert "amended after export" in listed["MRN2 Pat Lee"]["state"]
    desk("export", "--date", _DAY, "--out", str(tmp_path / "again.csv"), "--clinic")
    assert not any("amended after export" in r["state"] for r in _listed(desk).values())
