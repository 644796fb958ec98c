"""The clinic server attacked before a clinic meets it: a session that leaves an exported day
at one workstation while the day's other sessions are another's, and records the desk cannot
take as a workstation sent them (a workstation role is an authenticated but untrusted writer)."""

from __future__ import annotations

import csv
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.server_support import DAY, MORNING, PG_BIN, Server, Station, two_rooms_and_a_desk
from therapy_timer import server
from therapy_timer.clinic import Clinic
from therapy_timer.errors import InvalidInput

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


# -- records the desk cannot take as they are ---------------------------------------------------


def _room1_synced_room2_recorded(room1: Station, room2: Station) -> dict[str, Any]:
    """Room 1's MRN1 (20 min of 97110) on the server; room 2's MRN2 (25 min of 97112) recorded
    at 18:00 and not pushed: its bundle record, for a test to forge."""
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    room2.clock.set(datetime(2025, 3, 10, 18, 0, tzinfo=UTC))
    room2.treat("MRN2", "Sam Diaz", "pt", {"97112": 25})
    return _own_record(room2, "MRN2")


def _own_record(station: Station, patient: str) -> dict[str, Any]:
    """The bundle record of the station's session of ``patient`` (as a push sends it)."""
    with station.clinic() as clinic:
        [session] = [s for s in clinic.list_sessions(day=DAY) if s.patient_ref == patient]
        [record] = clinic._store.session_records([session.id])
    return record


def _insert(srv: Server, station: str, record_text: str, **row: object) -> None:
    """What a workstation role may write itself, without the app: a row of its own."""
    with psycopg.connect(srv.dsn(station), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO therapy_timer.sessions (id, date_of_service, patient_ref, clinician,"
            " role, discipline, payer_profile, amended, created_utc, closed_utc, content_hash,"
            " record) VALUES (%(id)s, %(date_of_service)s, %(patient_ref)s, %(clinician)s,"
            " %(role)s, %(discipline)s, %(payer_profile)s, false, %(created_utc)s,"
            " %(closed_utc)s, 'forged', %(record)s::jsonb)",
            {**row, "record": record_text},
        )


def _nested(record: dict[str, Any]) -> str:
    text = json.dumps(record)
    return text[:-1] + ', "allocation": ' + "[" * 5000 + "]" * 5000 + "}"


def _segment_of(other: dict[str, Any]) -> Any:
    def forge(record: dict[str, Any]) -> str:
        record["segments"][0]["id"] = other["segments"][0]["id"]
        record["created_utc"] = "2025-03-10T13:00:00+00:00"  # read before the real one
        return json.dumps(record)

    return forge


def _changed(**fields: object) -> Any:
    def forge(record: dict[str, Any]) -> str:
        record.update(fields)
        return json.dumps(record)

    return forge


def _segment_changed(**fields: object) -> Any:
    def forge(record: dict[str, Any]) -> str:
        record["segments"][0].update(fields)
        return json.dumps(record)

    return forge


HOSTILE = {
    "nested too deep": _nested,
    "not an object": lambda record: json.dumps("x"),
    "segments not a list": _changed(segments="all of them"),
    "a time without its offset": _segment_changed(start_utc="2025-03-10T18:00:00"),
    "a patient reference with a control character": _changed(patient_ref="MRN\u00072"),
    "a duplicated segment": lambda r: json.dumps({**r, "segments": r["segments"] * 2}),
    "a date its row does not have": _changed(date_of_service="2025-03-11"),
    "another session's id": None,  # filled in with room 1's session
    "another session's segment": None,
    "a payer profile with other rules": None,
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_record_the_desk_cannot_bill_as_it_is_is_refused_by_name(
    clinic_server: Server, tmp_path: Path, case: str
) -> None:
    # Room 2 writes one record of its own through its INSERT right; room 1's MRN1 is sound.
    # The desk's list, exports and whole-clinic day view refuse in one plain line naming the
    # session and its workstation: never a traceback, never the clinic billed without it.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    record = _room1_synced_room2_recorded(room1, room2)
    sound = _own_record(room1, "MRN1")
    forge = HOSTILE[case]
    if case == "another session's id":
        forge = _changed(id=sound["id"])
    elif case == "another session's segment":
        forge = _segment_of(sound)
    elif case == "a payer profile with other rules":
        forge = _changed(payer={**record["payer"], "assistant_modifiers": False})
    forged = forge(json.loads(json.dumps(record)))
    # The row says what the record says, as a push writes it, but for its own id, date and
    # times (read after room 1's session, so a pooled record is the one refused).
    try:
        said = json.loads(forged)
    except RecursionError:
        said = record
    said = said if isinstance(said, dict) else record
    row = {k: said[k] for k in ("patient_ref", "clinician", "role", "discipline", "payer_profile")}
    row |= {k: record[k] for k in ("id", "date_of_service", "created_utc", "closed_utc")}
    _insert(clinic_server, "ws_room2", forged, **row)

    for command in (
        ["session", "list", "--date", _DAY, "--clinic"],
        ["export", "--date", _DAY, "--clinic"],
        ["export", "--date", _DAY, "--clinic", "--out", str(tmp_path / "day.csv")],
        ["export", "--date", _DAY, "--clinic", "--format", "json"],
    ):
        refused = desk(*command, status=1)
        assert refused.stderr.startswith("Error: the clinic server holds 1 session record")
        assert len(refused.stderr.strip().splitlines()) == 1
        assert f"session {record['id']} from ws_room2" in refused.stderr
        assert "\x07" not in refused.stderr and refused.stdout == ""
        if case == "another session's segment":  # the refused one may be the genuine one
            assert f"(session {sound['id']} from ws_room1)" in refused.stderr
    assert not (tmp_path / "day.csv").exists()
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0
    with desk.clinic() as clinic:
        read = Clinic.read_clinic_server(clinic_server.dsn("desk_front"), DAY, DAY)
        with pytest.raises(server.ServerRecordsRefused, match=str(record["id"])):
            clinic.pooled_claim_days(read, DAY, DAY)


def test_two_workstations_whose_payer_profiles_of_one_name_differ_are_told_not_billed_apart(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Not an attack: each station added "Aetna" itself, one for CMS and one for AMA rules.
    # Pooled at the desk, the second station's sessions were left out of every list and
    # export without a word (kept aside in the desk's scratch database).
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1("payer", "add", "Aetna", "--method", "cms")
    room2("payer", "add", "Aetna", "--method", "ama")
    room1("timer", "start", "97110", "--patient", "MRN1", "--clinician", "Pat", "--payer", "Aetna")
    room1.clock.advance(minutes=20)
    room1("session", "end", "--patient", "MRN1")
    room2.clock.set(datetime(2025, 3, 10, 18, 0, tzinfo=UTC))
    room2("timer", "start", "97112", "--patient", "MRN2", "--clinician", "Sam", "--payer", "Aetna")
    room2.clock.advance(minutes=25)
    room2("session", "end", "--patient", "MRN2")
    for station in (room1, room2):
        station("clinic", "sync")
    [mrn2] = room2.json("session", "list", "--date", _DAY, "--json")

    listed = desk("session", "list", "--date", _DAY, "--clinic", status=1)
    assert f"session {mrn2['id']} from ws_room2" in listed.stderr
    assert "payer profile 'Aetna' has other rules" in listed.stderr
    desk("export", "--date", _DAY, "--clinic", "--out", str(tmp_path / "day.csv"), status=1)
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0


# -- the server going away under the desk ---------------------------------------------------------


def test_the_server_stopped_while_the_desk_reads_is_one_plain_line_and_nothing_is_written(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    real_stream = server.stream_clinic_records

    def stopped_after_the_first(*args: Any, **kwargs: Any) -> Any:
        for n, chunk in enumerate(real_stream(*args, **{**kwargs, "batch": 1})):
            if n == 0:
                clinic_server.cluster.pg_ctl("-m", "immediate", "-w", "stop")
            yield chunk

    monkeypatch.setattr(server, "stream_clinic_records", stopped_after_the_first)
    out = tmp_path / "day.csv"
    try:
        for command in (
            ["session", "list", "--date", _DAY, "--clinic"],
            ["export", "--date", _DAY, "--clinic", "--out", str(out)],
        ):
            lost = desk(*command, status=1)
            assert lost.stderr.startswith("Error: the connection to the clinic server was lost")
            assert len(lost.stderr.strip().splitlines()) == 1 and lost.stdout == ""
            clinic_server.cluster.start()
    finally:
        if not _up(clinic_server):
            clinic_server.cluster.start()
    monkeypatch.undo()
    assert not out.exists()
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0
    done = desk("export", "--date", _DAY, "--clinic", "--out", str(out))
    assert "2 marked exported" in done.stderr


def test_the_server_stopped_before_the_desk_marks_says_the_file_is_written_and_unmarked(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is whole and holds the day; the server cannot be told. The desk must hear both:
    # a bare "cannot be reached" reads as "nothing exported", and the file goes unsent or
    # twice.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    real_mark = server.mark_exported

    def stopped_meanwhile(conn: psycopg.Connection[Any], days: Any) -> int:
        clinic_server.cluster.pg_ctl("-m", "immediate", "-w", "stop")
        return real_mark(conn, days)

    real_connect = server.connect

    def reachable_once(dsn: str) -> Any:
        # The read connects; the mark meets a server gone since.
        if not connected:
            connected.append(dsn)
            return real_connect(dsn)
        raise server.ServerUnavailable("the clinic server cannot be reached: refused")

    connected: list[str] = []
    out = tmp_path / "day.csv"
    for name, broken in (("mark_exported", stopped_meanwhile), ("connect", reachable_once)):
        monkeypatch.setattr(server, name, broken)
        try:
            told = desk(
                "export", "--date", _DAY, "--clinic", "--out", str(out), "--force", status=1
            )
        finally:
            monkeypatch.undo()
            if not _up(clinic_server):
                clinic_server.cluster.start()
        line = told.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in told.output
        assert str(out) in line and "not marked exported" in line
        assert len(out.read_text(encoding="utf-8-sig").splitlines()) > 1
        assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0
    done = desk("export", "--date", _DAY, "--clinic", "--out", str(out), "--force")
    assert "2 marked exported" in done.stderr


def _up(srv: Server) -> bool:
    try:
        srv.one("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


# -- the desk's decisions --------------------------------------------------------------------------


def _minutes_on_server(srv: Server, session_id: str) -> list[int]:
    record = srv.one("SELECT record FROM therapy_timer.sessions WHERE id = %s", [session_id])
    return [
        int(
            (
                datetime.fromisoformat(s["stop_utc"]) - datetime.fromisoformat(s["start_utc"])
            ).total_seconds()
            // 60
        )
        for s in record["segments"]
    ]


def _room2_corrects_room1s_30_minutes(
    room1: Station, room2: Station, desk: Station, folder: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Room 1 records 30 minutes of 97110 and syncs; room 2 imports room 1's bundle, corrects
    them to 20 and syncs, which keeps its version aside: the session (as room 2 lists it) and
    the conflict waiting at the desk."""
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("clinic", "sync")
    bundle = folder / "room1.json"
    room1("export", "--date", _DAY, "--format", "bundle", "--out", str(bundle))
    room2("import", str(bundle))
    [session] = room2.json("session", "list", "--date", _DAY, "--json")
    [segment] = room2.json("session", "show", session["id"], "--json")["segments"]
    room2("session", "edit", segment["id"], "--minutes", "20", "--reason", "left at 9:20")
    room2("clinic", "sync", status=1)
    [kept] = desk.json("clinic", "conflicts", "--json")
    return session, kept


def test_a_version_the_desk_accepted_is_not_written_over_by_its_first_workstation(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Room 1 recorded 30 minutes; room 2, from room 1's bundle, corrected them to 20 and the
    # desk accepted room 2's version. Room 1 still holds its own 30 and, amending something
    # else, pushed it as its own later version: the desk's decision was undone without a word.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    session, kept = _room2_corrects_room1s_30_minutes(room1, room2, desk, tmp_path)
    desk("clinic", "settle", str(kept["id"]), "accept", "--reason", "room 2 is right")
    assert _minutes_on_server(clinic_server, session["id"]) == [20]

    room1("payer", "add", "Aetna", "--method", "cms")
    room1("session", "amend", session["id"], "--payer", "Aetna", "--reason", "wrong payer")
    pushed = room1.json("clinic", "sync", "--json", status=1)
    assert (pushed["amended"], pushed["conflicts"]) == (0, 1)
    assert _minutes_on_server(clinic_server, session["id"]) == [20]
    [waiting] = desk.json("clinic", "conflicts", "--json")
    assert waiting["workstation"] == "ws_room1" and waiting["session_id"] == session["id"]
    assert "desk" in waiting["why"]


class _SettledMeanwhile:
    """A workstation's connection on which the desk settles a conflict just before the push
    writes its amendment (between its read of the server's copy and its write)."""

    def __init__(self, conn: psycopg.Connection[Any], settle: Any) -> None:
        self._conn, self._settle = conn, settle

    def transaction(self) -> Any:
        return self._conn.transaction()

    def execute(self, query: Any, params: Any = None) -> Any:
        if str(query).startswith("UPDATE therapy_timer.sessions SET") and self._settle:
            self._settle()
            self._settle = None
        return self._conn.execute(query, params)


def test_a_conflict_the_desk_settles_while_the_workstation_syncs_is_not_written_over(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    session, kept = _room2_corrects_room1s_30_minutes(room1, room2, desk, tmp_path)
    room1("payer", "add", "Aetna", "--method", "cms")
    room1("session", "amend", session["id"], "--payer", "Aetna", "--reason", "wrong payer")

    def settle() -> None:
        desk("clinic", "settle", str(kept["id"]), "accept", "--reason", "room 2 is right")

    with room1.clinic() as clinic, psycopg.connect(clinic_server.dsn("ws_room1")) as conn:
        pushed = server.push(
            _SettledMeanwhile(conn, settle),  # type: ignore[arg-type]
            server.StoreRecords(clinic._store),
            now=room1.clock.now(),
        )
    assert (pushed.amended, pushed.conflicts) == (0, 1)
    assert _minutes_on_server(clinic_server, session["id"]) == [20]
    assert room1.json("clinic", "sync", "--json")["waiting_for_the_desk"] == 1


def test_a_server_not_upgraded_yet_is_said_in_plain_words_not_a_traceback(
    clinic_server: Server, tmp_path: Path
) -> None:
    # The stations and the desk run this version; the server was left at version 6 (the
    # administrator has not run init-server yet): what needs the newer functions says so.
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("clinic", "sync")
    with clinic_server.admin() as conn:
        conn.execute("DROP FUNCTION therapy_timer.settled_at_desk(uuid[])")
        conn.execute("DROP FUNCTION therapy_timer.mark_exported(uuid[], text[], jsonb[])")
        conn.execute("DELETE FROM therapy_timer.schema_version WHERE version > 6")
    [session] = room1.json("session", "list", "--date", _DAY, "--json")
    room1("session", "amend", session["id"], "--patient", "MRN2", "--reason", "wrong chart")
    older = room1("clinic", "sync", status=1)
    assert "schema is older than this app" in older.stderr
    assert len(older.stderr.strip().splitlines()) == 1
    out = tmp_path / "day.csv"
    told = desk("export", "--date", _DAY, "--clinic", "--out", str(out), status=1)
    assert "not marked exported" in told.stderr and "schema is older" in told.stderr
    assert len(told.stderr.strip().splitlines()) == 1


# -- what a workstation says beside its sessions ----------------------------------------------------

RUNNING = {
    "a number": "5",
    "a list of numbers": "[1]",
    "a start without its offset": json.dumps(
        [
            {
                "session_id": "x",
                "patient_ref": "MRN9",
                "clinician": "Kim",
                "code": "97110",
                "furnished_by": "therapist",
                "since_utc": "2025-03-10T10:00:00",
            }
        ]
    ),
    "a control character": json.dumps(
        [
            {
                "session_id": "x",
                "patient_ref": "MRN\u001b[2J",
                "clinician": "Kim",
                "code": "97110",
                "furnished_by": "therapist",
                "since_utc": "2025-03-10T10:00:00+00:00",
            }
        ]
    ),
    "nested too deep": "[" * 5000 + "]" * 5000,
    "a start at the edge of time": json.dumps(
        [
            {
                "session_id": "x",
                "patient_ref": "MRN9",
                "clinician": "Kim",
                "code": "97110",
                "furnished_by": "therapist",
                "since_utc": "0001-01-01T00:00:00+05:00",
            }
        ]
    ),
}


@pytest.mark.parametrize("case", RUNNING)
def test_what_a_workstation_says_it_runs_never_breaks_the_desk(
    clinic_server: Server, tmp_path: Path, case: str
) -> None:
    # Room 2 writes its own heartbeat row as it likes; room 1 runs 97112 for MRN2 in truth.
    # The desk's status and the window's list of stations showed a traceback (or crashed the
    # window) for each of these; the station is now shown running nothing it can show.
    from therapy_timer.gui.day_view import stations_text

    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1("timer", "start", "97112", "--patient", "MRN2", "--clinician", "Pat Lee")
    room1("clinic", "sync")
    room2("clinic", "sync")
    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as conn:
        conn.execute("UPDATE therapy_timer.workstations SET running = %s::jsonb", [RUNNING[case]])

    status = desk("clinic", "status")
    assert "97112 for MRN2" in status.stdout and "\x1b" not in status.stdout
    read = Clinic.read_clinic_server(clinic_server.dsn("desk_front"), DAY, DAY)
    running = {w.name: w.running for w in read.workstations}
    assert running["ws_room2"] == [] and [r["code"] for r in running["ws_room1"]] == ["97112"]
    shown = stations_text(read, room1.clock.now())
    assert "ws_room2: last sync" in shown and "nothing running" in shown


KEPT = {
    "nested too deep": "[" * 5000 + "]" * 5000,
    "not an object": '"x"',
    "no payer, a control character": json.dumps(
        {"patient_ref": "MRN\u001b[31m", "date_of_service": "2025-03-10"}
    ),
    "no payer": json.dumps({"patient_ref": "MRN2", "date_of_service": "2025-03-10"}),
}


@pytest.mark.parametrize("case", KEPT)
def test_a_kept_aside_version_that_is_no_session_is_listed_and_only_dropped(
    clinic_server: Server, tmp_path: Path, case: str
) -> None:
    # Room 2 keeps aside a "version" of room 1's session through its own INSERT right.
    # `clinic conflicts` and the window's list showed a traceback, comparing it a KeyError,
    # and accepting it made it the server's copy of room 1's session.
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    session_id = clinic_server.one("SELECT id::text FROM therapy_timer.sessions")
    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO therapy_timer.conflicts (session_id, content_hash, why, record)"
            " VALUES (%s, 'forged', %s, %s::jsonb)",
            [session_id, "take mine\u001b[2J", KEPT[case]],
        )
    listed = desk("clinic", "conflicts").stdout
    assert "from ws_room2" in listed and "\x1b" not in listed
    [kept] = desk.json("clinic", "conflicts", "--json")
    read = Clinic.read_clinic_server(clinic_server.dsn("desk_front"), DAY, DAY)
    with desk.clinic() as clinic, pytest.raises(InvalidInput, match="drop it"):
        clinic.compare_server_conflict(read, kept["id"])
    refused = desk("clinic", "settle", str(kept["id"]), "accept", "--reason", "x", status=2)
    assert f"kept-aside version {kept['id']} from ws_room2" in refused.stderr
    assert _minutes_on_server(clinic_server, session_id) == [20]
    desk("clinic", "settle", str(kept["id"]), "drop", "--reason", "not a session")
    assert desk.json("clinic", "conflicts", "--json") == []
    assert _minutes_on_server(clinic_server, session_id) == [20]


def test_a_workstation_cannot_write_what_only_the_desk_decides(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Its INSERT right covered every column: a session could arrive already "exported" (the
    # desk then never billed it, though it was in no file) and a kept-aside version already
    # "accepted" (the push then kept every later change of that session aside).
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    record = _room1_synced_room2_recorded(room1, room2)
    held = clinic_server.one(
        "SELECT json_build_array(id, content_hash) FROM therapy_timer.sessions"
    )
    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO therapy_timer.sessions (id, date_of_service, patient_ref,"
                " clinician, role, discipline, payer_profile, amended, created_utc, closed_utc,"
                " content_hash, record, exported, exported_content_hash) VALUES (%s, %s, %s,"
                " %s, %s, %s, %s, false, %s, %s, 'h', %s, true, 'h')",
                [
                    *(record[k] for k in ("id", "date_of_service", "patient_ref", "clinician")),
                    *(record[k] for k in ("role", "discipline", "payer_profile")),
                    record["created_utc"],
                    record["closed_utc"],
                    json.dumps(record),
                ],
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO therapy_timer.conflicts (session_id, content_hash, why, record,"
                " resolved_utc, resolution) VALUES (%s, %s, 'x', '{}', now(), 'accepted')",
                held,
            )
    room2("clinic", "sync")  # what the app itself writes still goes in
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0
    listed = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert sorted(r["patient_ref"] for r in listed if "exported" not in r["state"]) == [
        "MRN1",
        "MRN2",
    ]


def test_a_billed_session_cannot_change_on_the_server_under_the_hash_the_desk_marked(
    clinic_server: Server, tmp_path: Path
) -> None:
    # A workstation may amend its own sessions, content hash and record columns alike. Written
    # by hand, a record changed under the hash the desk marked (or changed first and its old
    # hash put back after) looked billed to the desk, though the file had the other minutes.
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    desk("export", "--date", _DAY, "--clinic", "--out", str(tmp_path / "day.csv"))
    session_id = clinic_server.one("SELECT id::text FROM therapy_timer.sessions")
    longer = "jsonb_set(record, '{segments,0,stop_utc}', '\"2025-03-10T15:00:00+00:00\"')"
    with psycopg.connect(clinic_server.dsn("ws_room1"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"UPDATE therapy_timer.sessions SET record = {longer}")
        conn.execute(f"UPDATE therapy_timer.sessions SET record = {longer}, content_hash = 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE therapy_timer.sessions SET content_hash = exported_content_hash")
    assert _minutes_on_server(clinic_server, session_id) == [60]
    [listed] = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert "amended after export" in listed["state"]


def test_two_syncs_of_one_workstation_at_once_are_no_conflict(
    clinic_server: Server, tmp_path: Path
) -> None:
    # The window's background sync and a `clinic sync` from cron push the same amendment at
    # once: the one that writes second finds the server's copy changed since it read it, to
    # the very content it brings. That is no other version to keep aside for the desk.
    room1, _room2, _desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("clinic", "sync")
    [session] = room1.json("session", "list", "--date", _DAY, "--json")
    [segment] = room1.json("session", "show", session["id"], "--json")["segments"]
    room1("session", "edit", segment["id"], "--minutes", "20", "--reason", "left at 9:20")

    def the_other_sync() -> None:
        room1("clinic", "sync")

    with room1.clinic() as clinic, psycopg.connect(clinic_server.dsn("ws_room1")) as conn:
        pushed = server.push(
            _SettledMeanwhile(conn, the_other_sync),  # type: ignore[arg-type]
            server.StoreRecords(clinic._store),
            now=room1.clock.now(),
        )
    assert (pushed.conflicts, pushed.unchanged) == (0, 1) and pushed.complete
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.conflicts") == 0
    assert _minutes_on_server(clinic_server, session["id"]) == [20]


def test_when_a_station_last_synced_is_the_servers_word_not_the_stations(
    clinic_server: Server, tmp_path: Path
) -> None:
    # The desk reads each station's last sync to know whose minutes it has. Written from the
    # station's clock, one running hours behind looked hours stale after each sync, and one
    # ahead looked fresh hours after it stopped syncing; a station writing 'infinity' there
    # (or a kept-aside version received at 'infinity') ended the desk's status and
    # conflicts in a psycopg traceback.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.clock.set(datetime.now(UTC) - timedelta(hours=5))
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    room2("clinic", "sync")
    server_now = clinic_server.one("SELECT now()")
    with desk.clinic() as at_desk:
        seen = {s.name: s for s in at_desk.clinic_stations()}
    for station in seen.values():
        for moment in (station.last_sync_utc, station.heartbeat_utc):
            assert moment is not None and abs(moment - server_now) < timedelta(minutes=1)

    session_id = clinic_server.one("SELECT id::text FROM therapy_timer.sessions")
    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as conn:
        conn.execute(
            "UPDATE therapy_timer.workstations SET last_sync_utc = 'infinity',"
            " heartbeat_utc = '-infinity'"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO therapy_timer.conflicts (session_id, content_hash, why, record,"
                " received_utc) VALUES (%s, 'h', 'x', '{}', 'infinity')",
                [session_id],
            )
    status = desk.json("clinic", "status", "--json")
    two = {w["name"]: w for w in status["workstations"]}["ws_room2"]
    assert datetime.fromisoformat(two["last_sync_utc"]) - server_now < timedelta(minutes=1)
    # The administrator's own writes keep their moments, as pg_restore of a dump writes them.
    with clinic_server.admin() as admin:
        admin.execute("UPDATE therapy_timer.workstations SET last_sync_utc = %s", [MORNING])
    assert clinic_server.one("SELECT max(last_sync_utc) FROM therapy_timer.workstations") == MORNING
    assert desk("clinic", "conflicts").stdout == "no kept-aside versions\n"


def test_a_server_that_drops_the_connection_as_it_opens_is_one_plain_line(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server stopped (pg_ctl stop -m immediate) just after a sync logged in: the first
    # statement, connect's SET DateStyle, met the closed connection and 'clinic sync' ended in
    # psycopg's OperationalError traceback. Here the server ends that session itself.
    station = Station(tmp_path)
    station("clinic", "connect", clinic_server.dsn("ws_room1"))
    station.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    really = psycopg.connect

    def cut_off(*args: Any, **kwargs: Any) -> Any:
        conn = really(*args, **kwargs)
        with really(clinic_server.dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        return conn

    monkeypatch.setattr(psycopg, "connect", cut_off)
    result = station("clinic", "sync", status=1)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: the clinic server cannot be reached: ")
    monkeypatch.setattr(psycopg, "connect", really)
    assert station.json("clinic", "sync", "--json")["added"] == 1


@pytest.mark.parametrize("command", ["connect", "init-server"])
def test_a_server_that_goes_away_while_connecting_a_station_is_one_plain_line(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # 'clinic connect' and 'clinic init-server' read the schema's version after logging in;
    # a server stopped there ended either in psycopg's OperationalError traceback.
    really = server.schema_version

    def cut_off(conn: psycopg.Connection[Any]) -> int | None:
        with psycopg.connect(clinic_server.dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        return really(conn)

    monkeypatch.setattr("therapy_timer.server.roles.schema_version", cut_off)
    station = Station(tmp_path)
    args = ["--workstation", "ws_room1"] if command == "init-server" else []
    result = station("clinic", command, clinic_server.dsn(), *args, status=1)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: the connection to the clinic server was lost")


def test_the_desk_has_nothing_to_push_and_its_window_says_so_calmly(
    qtbot: Any, clinic_server: Server, tmp_path: Path
) -> None:
    # The front desk connects as desk_front, as docs/clinic-server.md says, and its window
    # syncs like any station's: each round was refused ('permission denied for table audit;
    # is this role a member of therapy_timer_workstation?'), so the desk's status bar said
    # 'Clinic server refused the sync' in red all day, and 'clinic sync' there exited 1.
    from PySide6.QtWidgets import QApplication

    from therapy_timer.gui.clinic_sync import ClinicSync

    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    written = "SELECT (SELECT count(*) FROM therapy_timer.audit) + count(*) FROM therapy_timer.workstations"
    before = clinic_server.one(written)
    said = desk("clinic", "sync")
    assert said.stdout.startswith("connected as desk_front, the front desk's role:")
    assert clinic_server.one(written) == before
    with desk.clinic() as at_desk:
        sync = ClinicSync(at_desk, interval_s=0.2)
        sync.start()
        try:
            qtbot.waitUntil(lambda: sync.worker is not None and sync.worker.rounds >= 2)
            QApplication.processEvents()
            assert sync.label.text() == "Clinic server: the front desk (reads every workstation)"
            assert not sync.view.warning
        finally:
            assert sync.finish(timeout_s=10)
    # Its status said 'last sync: never' and 'pending: ... 1 audit entries', as if a sync
    # were due that its role can never make.
    shown = desk("clinic", "status").stdout
    assert "desk_front is the front desk's role: it reads every workstation" in shown
    assert "last sync:" not in shown and "pending:" not in shown
    # A session recorded at the desk itself reaches no server: said, never silently dropped.
    desk.treat("MRN2", "Kim Roe", "pt", {"97140": 10})
    kept = desk("clinic", "sync", status=1)
    assert "1 closed session(s) recorded at this desk are not on the clinic server" in kept.stderr
    shown = desk("clinic", "status").stdout
    assert "1 closed session(s) recorded at this desk are not on the clinic server" in shown


def test_a_server_restored_from_an_older_dump_gets_back_what_it_lacks(
    clinic_server: Server, tmp_path: Path
) -> None:
    # docs/clinic-server.md section 6, as written: pg_dump each night; to restore, an empty
    # database and pg_restore into it (the roles are the cluster's, already there). Room 1's
    # later session and its correction of the first, synced after the dump, come back with
    # its next sync. init-server run on that database first, as the page said, made the
    # schema the dump brings: pg_restore then reported 68 errors, one per object, and the
    # clinic's id was init-server's, not the dump's.
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("clinic", "sync")
    dump = tmp_path / "clinic.dump"
    pg = clinic_server.cluster
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dump}", clinic_server.dsn()],
        check=True,
    )
    [first] = room1.json("session", "list", "--date", _DAY, "--json")
    [segment] = room1.json("session", "show", first["id"], "--json")["segments"]
    room1("session", "edit", segment["id"], "--minutes", "20", "--reason", "left at 9:20")
    room1.treat("MRN2", "Pat Lee", "pt", {"97140": 15})
    room1("clinic", "sync")

    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {clinic_server.dbname} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {clinic_server.dbname}")
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "--exit-on-error",
            f"--dbname={clinic_server.dsn()}",
            "--role=postgres",
            str(dump),
        ],
        check=True,
    )
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions") == 1
    assert room1.json("clinic", "sync", "--json")["complete"]
    assert _minutes_on_server(clinic_server, first["id"]) == [20]
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert sorted(r["patient_ref"] for r in rows) == ["MRN1", "MRN2"]


def test_a_refused_login_is_said_as_refused_not_as_an_unreachable_server(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wrong or missing password, or a role the server does not know, was 'the clinic
    # server cannot be reached' (and 'unreachable' in the window): whoever read it looked
    # at the network, while the server had answered and refused the login.
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    pg = clinic_server.cluster
    hba = pg.data / "pg_hba.conf"
    kept = hba.read_text()
    with clinic_server.admin() as admin:
        admin.execute(
            "CREATE ROLE ws_locked LOGIN PASSWORD 'right-one' IN ROLE therapy_timer_workstation"
        )
    hba.write_text("host all ws_locked 127.0.0.1/32 scram-sha-256\n" + kept)
    pg.pg_ctl("reload")
    try:
        station = Station(tmp_path)
        for dsn, words in (
            (clinic_server.dsn("ws_locked"), "no password supplied"),
            (
                clinic_server.dsn("ws_locked") + " password=wrong-one",
                "password authentication failed",
            ),
            (clinic_server.dsn("ws_nobody"), 'role "ws_nobody" does not exist'),
            (clinic_server.cluster.dsn("ws_room1", "nodb"), 'database "nodb" does not exist'),
        ):
            said = station("clinic", "connect", dsn, status=1).stderr
            assert said.startswith("Error: the clinic server refused the login: "), said
            assert words in said and "wrong-one" not in said
            if "password" in words:
                assert said.rstrip().endswith(
                    "the role's password goes in ~/.pgpass, readable by you alone (chmod 600),"
                    " or in a service file"
                )
    finally:
        hba.write_text(kept)
        pg.pg_ctl("reload")
        with clinic_server.admin() as admin:
            admin.execute("DROP ROLE ws_locked")


@pytest.mark.parametrize("forged", ["a segment of another session", "another session's id"])
def test_a_kept_aside_version_the_server_cannot_write_as_its_session_is_refused_by_name(
    clinic_server: Server, tmp_path: Path, forged: str
) -> None:
    # Room 2 writes a kept-aside version of its own MRN2 itself: one whose segment has the id
    # of room 1's segment made the desk's 'clinic settle N accept' end in psycopg's
    # UniqueViolation traceback (settle_conflict's segment insert); one naming room 1's
    # session as its own was accepted, and the desk then refused MRN2's whole day as a
    # record of another session.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    record = _room1_synced_room2_recorded(room1, room2)
    room2("clinic", "sync")
    taken_segment, taken_session = clinic_server.one(
        "SELECT array[id::text, session_id::text] FROM therapy_timer.segments"
        " WHERE workstation = 'ws_room1'"
    )
    if forged == "a segment of another session":
        record["segments"][0]["id"] = taken_segment
    else:
        record["id"], record["audit"] = taken_session, []
    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO therapy_timer.conflicts (session_id, content_hash, why, record)"
            " VALUES (%s, 'forged', 'room 2 says so', %s)",
            [_own_record(room2, "MRN2")["id"], json.dumps(record)],
        )
    [kept] = desk.json("clinic", "conflicts", "--json")
    said = desk("clinic", "settle", str(kept["id"]), "accept", "--reason", "ok", status=2)
    assert said.stderr.startswith(f"Error: conflict: kept-aside version {kept['id']} ")
    assert said.stderr.rstrip().endswith("drop it with a reason")
    assert desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    desk("clinic", "settle", str(kept["id"]), "drop", "--reason", "forged")
    assert desk.json("clinic", "conflicts", "--json") == []
