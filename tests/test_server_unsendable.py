"""A record the clinic server cannot store (a NUL character or half a surrogate pair in an
audit value or reason, merged before a847fb6 refused such bundles) stays on its workstation,
named at every sync; the workstation's other sessions still reach the desk."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.fakes import FakeClock
from tests.gui_support import Bot, Rig, build, type_patient
from tests.server_support import DAY, MORNING, Server, Station, two_rooms_and_a_desk
from therapy_timer.clinic import SYNC_STATE_FILE, Clinic
from therapy_timer.codes import Role
from therapy_timer.gui.clinic_sync import ClinicSync

_DAY = DAY.isoformat()
SHOTS = Path(os.environ["THERAPY_TIMER_SHOTS"]) if os.environ.get("THERAPY_TIMER_SHOTS") else None


def _session_id(station: Station, patient: str) -> str:
    with station.clinic() as clinic:
        [session] = [s for s in clinic.list_sessions(day=DAY) if s.patient_ref == patient]
    return session.id


def _plant(data_dir: Path, session_id: str, *, after: str | None, reason: str = "") -> int:
    """An audit entry as an older version merged it from a bundle (the store keeps its JSON
    escaped, so the NUL or the lone surrogate is read back whole); its id."""
    with Clinic.open(data_dir) as clinic:
        conn = clinic._store._conn
        cursor = conn.execute(
            "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, after_json,"
            " reason) VALUES ('2025-03-10T16:00:00+00:00', 'import', 'session.imported',"
            " 'session', ?, ?, ?)",
            [session_id, after, reason],
        )
        conn.commit()
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def _on_server(desk: Station) -> set[str]:
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    return {r["patient_ref"] for r in rows}


def test_a_session_the_server_cannot_store_is_named_and_the_others_sync(
    clinic_server: Server, tmp_path: Path
) -> None:
    """Every 'clinic sync' of the workstation ended in a psycopg traceback
    (UntranslatableCharacter: jsonb refuses \\u0000), so MRN2 never reached the desk."""
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 25})
    room1.treat("MRN3", "Pat Lee", "pt", {"97140": 15})
    room1.treat("MRN4", "Pat Lee", "pt", {"97530": 15})
    nul = _plant(room1.data_dir, _session_id(room1, "MRN1"), after='{"note": "a\\u0000b"}')
    half = _plant(room1.data_dir, _session_id(room1, "MRN3"), after='{"\\udc80": 1}')
    reason = _plant(room1.data_dir, _session_id(room1, "MRN4"), after=None, reason="x\x00")
    done = room1("clinic", "sync", status=2)
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("synced as ws_room1: added 1,")
    for patient, entry, field in (
        ("MRN1", nul, "after"),
        ("MRN3", half, "after"),
        ("MRN4", reason, "reason"),
    ):
        assert (
            f"Session {_session_id(room1, patient)} (patient {patient}, {_DAY}) stays on this"
            f" workstation, not sent to the clinic server: its audit entry {entry}'s {field}"
            " holds a NUL character or half of a surrogate pair"
        ) in done.stderr
    assert f"bill it from this workstation ('therapy-timer export --date {_DAY}' here)" in (
        done.stderr
    )
    assert _on_server(desk) == {"MRN2"}
    # Listed again at every sync (the server's audit mark has passed them), nothing rewritten.
    room1.clock.advance(minutes=5)
    room1.treat("MRN5", "Pat Lee", "pt", {"97110": 10})
    again = room1.json("clinic", "sync", "--json", status=2)
    assert [h["patient_ref"] for h in again["held_on_this_workstation"]] == [
        "MRN1",
        "MRN3",
        "MRN4",
    ]
    assert (again["added"], again["complete"]) == (1, False)
    held = [h["session_id"] for h in again["held_on_this_workstation"]]
    assert room1.json("clinic", "status", "--json")["held_on_this_workstation"] == held
    assert (
        "held on this workstation (the server cannot store them): 3 session(s), named by clinic"
        " sync: " + ", ".join(held)
    ) in room1("clinic", "status").stdout
    assert _on_server(desk) == {"MRN2", "MRN5"}
    with room1.clinic() as clinic:
        kept = {e.id: e for e in clinic._store.audit_entries()}
    assert kept[nul].after == {"note": "a\x00b"}
    assert kept[half].after == {"\udc80": 1}
    assert kept[reason].reason == "x\x00"


@pytest.mark.parametrize("lost", ["reconnected", "removed", "a folder"])
def test_a_held_session_is_named_again_when_the_sync_state_is_lost(
    clinic_server: Server, tmp_path: Path, lost: str
) -> None:
    """Only the sync state file remembered the sessions held back, the server's audit mark
    having passed them: 'clinic disconnect' then 'clinic connect' to the same server (which
    remove the file), the file removed, or a folder in its place at the sync (which failed
    writing it, after the push, so nothing was named) left the next sync exiting 0 and naming
    nothing, and MRN1 never reached the desk with no one told. A sync that cannot read the
    file sends everything again, as for a log the server did not see, and names it again."""
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    _plant(room1.data_dir, _session_id(room1, "MRN1"), after='{"note": "a\\u0000b"}')
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 25})
    state = room1.data_dir / SYNC_STATE_FILE
    if lost == "a folder":
        state.unlink(missing_ok=True)
        state.mkdir()
        refused = room1("clinic", "sync", status=2)
        assert "clinic-sync.json is not a regular file" in refused.stderr
        state.rmdir()
    else:
        room1("clinic", "sync", status=2)
        if lost == "reconnected":
            room1("clinic", "disconnect")
            room1("clinic", "connect", clinic_server.dsn("ws_room1"))
        else:
            state.unlink()
    assert _on_server(desk) == {"MRN2"}

    again = room1.json("clinic", "sync", "--json", status=2)

    assert [h["patient_ref"] for h in again["held_on_this_workstation"]] == ["MRN1"]
    assert again["added"] == 0  # MRN2 is the server's already: compared, not added again
    assert room1.json("clinic", "status", "--json")["held_on_this_workstation"] == [
        _session_id(room1, "MRN1")
    ]
    assert _on_server(desk) == {"MRN2"}


# -- the window ---------------------------------------------------------------------------------


@pytest.fixture
def rig(qtbot: Bot, tmp_path: Path, clinic_server: Server) -> Iterator[Rig]:
    with Clinic.open(tmp_path) as here:
        here.connect_server(clinic_server.dsn("ws_room1"))
    yield from build(qtbot, tmp_path, FakeClock(MORNING))


def test_the_windows_sync_status_says_which_session_stays_here(
    qtbot: Bot, rig: Rig, clinic_server: Server
) -> None:
    """The window's worker ended each round in the traceback, shown as a refused sync, and
    the station's other sessions never reached the desk."""
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), Qt.MouseButton.LeftButton)
    session = rig.controller.session
    assert session is not None
    rig.clock.advance(minutes=20)
    rig.service.end_session(session.id)
    entry = _plant(rig.data_dir, session.id, after='{"note": "\\u0000"}')
    other = rig.service.open_session(
        patient_ref="MRN2", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    rig.service.start(other.id, "97112")
    rig.clock.advance(minutes=25)
    rig.service.end_session(other.id)
    sync = ClinicSync.attach(rig.service, rig.controller, rig.window, interval_s=0.2)
    assert sync is not None
    sync.start()
    try:
        qtbot.waitUntil(lambda: "synced" in sync.label.text(), timeout=20_000)
        assert sync.label.text().endswith("1 session stays here: the server cannot store it")
        assert sync.view.warning
        assert f"Session {session.id} (patient " in sync.label.toolTip()
        assert f"its audit entry {entry}'s after holds a NUL" in sync.label.toolTip()
        assert clinic_server.one("SELECT patient_ref FROM therapy_timer.sessions") == "MRN2"
        if SHOTS is not None:
            for width, height in ((1366, 768), (1024, 600)):
                rig.window.resize(width, height)
                rig.window.grab().save(str(SHOTS / f"clinic-sync-held-{width}x{height}.png"))
    finally:
        assert sync.finish(timeout_s=10)


def test_a_session_whose_segment_is_another_sessions_on_the_server_stays_here_named(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Room 2 merged a bundle (edited by hand, or forged) whose session reuses the id of a
    # segment room 1 already put on the server: the push's segment insert hit segments_pkey,
    # and every later 'clinic sync' of room 2 ended in psycopg's UniqueViolation traceback,
    # none of its own sessions (MRN2) ever reaching the desk.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    bundle = tmp_path / "room1.json"
    room1("export", "--date", _DAY, "--format", "bundle", "--out", str(bundle))
    taken = _session_id(room1, "MRN1")
    forged = str(uuid.UUID(int=uuid.UUID(taken).int ^ 1))
    bundle.write_text(bundle.read_text().replace(taken, forged).replace("MRN1", "MRN9"))
    room2("import", str(bundle))
    room2.clock.advance(minutes=60)
    room2.treat("MRN2", "Sam Diaz", "pt", {"97112": 25})
    done = room2("clinic", "sync", status=2)
    assert (
        f"Session {forged} (patient MRN9, {_DAY}) stays on this workstation, not sent to the"
        " clinic server: its segments reuse the id of a segment another session has there"
    ) in done.stderr
    assert "ask the desk whether it copies that session's minutes before you bill it" in (
        done.stderr
    )
    assert _on_server(desk) == {"MRN1", "MRN2"}
    again = room2.json("clinic", "sync", "--json", status=2)
    assert [h["session_id"] for h in again["held_on_this_workstation"]] == [forged]
