"""The clinic server against a real PostgreSQL the tests start: schema upgrades, least
privilege enforced by the server, idempotent and resumable sync, conflicts kept aside."""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes import FakeClock
from tests.server_support import (
    DAY,
    MORNING,
    Cluster,
    Server,
    Station,
    next_database,
    two_rooms_and_a_desk,
)
from therapy_timer import rules, server
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Discipline, Role
from therapy_timer.store import Store, database_path

ROOT = Path(__file__).resolve().parent.parent


def _minutes(record: dict[str, Any]) -> dict[str, int]:
    """Minutes per code of a record, computed here from its start and stop times."""
    found: dict[str, int] = {}
    for seg in record["segments"]:
        span = datetime.fromisoformat(seg["stop_utc"]) - datetime.fromisoformat(seg["start_utc"])
        found[seg["code"]] = found.get(seg["code"], 0) + int(span.total_seconds() // 60)
    return found


# -- schema ------------------------------------------------------------------------------------


def test_the_schema_upgrades_from_its_first_version_keeping_rows(cluster: Cluster) -> None:
    # The roles are the cluster's: m002 grants to the groups, the test logs in as stations.
    server.init_server(cluster.dsn(dbname="postgres"), workstations=["ws_room1", "ws_room2"])
    dbname = next_database()
    cluster.psql(f"CREATE DATABASE {dbname}")
    with psycopg.connect(cluster.dsn(dbname=dbname)) as conn:
        assert server.schema_version(conn) is None
        assert server.upgrade(conn, target=1) == ["m001_tables"]
        with conn.transaction():
            conn.execute(
                "INSERT INTO therapy_timer.sessions (id, workstation, date_of_service,"
                " patient_ref, clinician, role, discipline, payer_profile, amended, created_utc,"
                " content_hash, record) VALUES (gen_random_uuid(), 'ws_room1', '2025-03-10',"
                " 'MRN1', 'Pat', 'PT', 'PT', 'Medicare', false, now(), 'x', '{}')"
            )
        assert server.schema_version(conn) == 1
        assert server.upgrade(conn, target=4) == [
            "m002_least_privilege",
            "m003_settle_conflicts",
            "m004_desk_marks_only",
        ]
        with conn.transaction():  # the desk billed it under version 4
            conn.execute("UPDATE therapy_timer.sessions SET exported = true")
        assert server.upgrade(conn, target=5) == ["m005_mark_remembers_content"]
        assert server.upgrade(conn, target=6) == ["m006_mark_as_read"]
        assert server.upgrade(conn) == [
            "m007_day_left",
            "m008_settled_at_desk",
            "m009_workstation_columns",
            "m010_hash_follows_content",
            "m011_server_clock",
        ]
        assert server.upgrade(conn) == []
        # A session exported before m005 is not taken for one amended since.
        assert conn.execute(
            "SELECT exported, exported_content_hash = content_hash FROM therapy_timer.sessions"
        ).fetchall() == [(True, True)]
        assert server.schema_version(conn) == server.LATEST_VERSION
    with psycopg.connect(cluster.dsn("ws_room1", dbname)) as conn:
        assert conn.execute("SELECT patient_ref FROM therapy_timer.sessions").fetchall() == [
            ("MRN1",)
        ]
    with psycopg.connect(cluster.dsn("ws_room2", dbname)) as conn:  # row security is on
        assert conn.execute("SELECT count(*) FROM therapy_timer.sessions").fetchone() == (0,)


def test_a_workstation_role_cannot_create_the_schema(cluster: Cluster, tmp_path: Path) -> None:
    server.init_server(cluster.dsn(dbname="postgres"), workstations=["ws_room1"])
    dbname = next_database()
    cluster.psql(f"CREATE DATABASE {dbname}")
    cluster.psql(f"REVOKE CREATE ON DATABASE {dbname} FROM PUBLIC")
    station = Station(tmp_path)
    result = station("clinic", "connect", cluster.dsn("ws_room1", dbname), status=1)
    assert "no Therapy Timer schema" in result.stderr and "init-server" in result.stderr
    assert "Traceback" not in result.output
    assert station("clinic", "status", status=1).stderr.startswith("Error: no clinic server")


# -- two workstations and a desk --------------------------------------------------------------


def test_two_workstations_and_a_desk(clinic_server: Server, tmp_path: Path) -> None:
    room1, room2 = Station(tmp_path / "room1"), Station(tmp_path / "room2")
    desk = Station(tmp_path / "desk")
    for station, role in ((room1, "ws_room1"), (room2, "ws_room2"), (desk, "desk_front")):
        out = station("clinic", "connect", clinic_server.dsn(role)).stdout
        assert f"connected as {role}" in out
    # The same patient: the PT in room 1 in the morning, the PTA in room 2 in the afternoon.
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30, "97140": 16})
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 25})
    room2.clock.advance(minutes=300)
    room2.treat("MRN1", "Sam Diaz", "pta", {"97530": 23})

    assert room1.json("clinic", "sync", "--json")["added"] == 2
    assert room2.json("clinic", "sync", "--json")["added"] == 1

    with desk.clinic() as at_desk:
        records = at_desk.clinic_records(DAY, DAY)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_patient.setdefault(str(record["patient_ref"]), []).append(record)
    mrn1 = sorted(by_patient["MRN1"], key=lambda r: r["created_utc"])
    assert [(r["workstation"], r["clinician"], _minutes(r)) for r in mrn1] == [
        ("ws_room1", "Pat Lee", {"97110": 30, "97140": 16}),
        ("ws_room2", "Sam Diaz", {"97530": 23}),
    ]
    assert [_minutes(r) for r in by_patient["MRN2"]] == [{"97112": 25}]

    status = desk.json("clinic", "status", "--json")
    assert status["reachable"] and status["role"] == "desk_front"
    assert {w["name"]: w["sessions"] for w in status["workstations"]} == {
        "ws_room1": 2,
        "ws_room2": 1,
    }
    # A workstation sees only itself, and nothing is pending after a sync.
    mine = room2.json("clinic", "status", "--json")
    assert [w["name"] for w in mine["workstations"]] == ["ws_room2"]
    assert (mine["pending_sessions"], mine["pending_audit_entries"]) == (0, 0)
    with room2.clinic() as at_room2:  # a workstation reads only its own sessions
        assert [r["patient_ref"] for r in at_room2.clinic_records(DAY, DAY)] == ["MRN1"]


def test_the_desk_sees_each_station_its_last_sync_and_who_is_running_what(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("timer", "start", "97140", "--patient", "MRN2", "--clinician", "Pat Lee", "--role", "pt")
    room1.clock.advance(minutes=4)
    room1("clinic", "sync")
    room2("clinic", "sync")
    with desk.clinic() as at_desk:
        stations = {s.name: s for s in at_desk.clinic_stations()}
    assert sorted(stations) == ["ws_room1", "ws_room2"]
    one, two = stations["ws_room1"], stations["ws_room2"]
    heard = clinic_server.one(
        "SELECT array_agg(last_sync_utc ORDER BY name) FROM therapy_timer.workstations"
    )
    assert [one.last_sync_utc, two.last_sync_utc] == heard  # the server's clock (m011)
    assert [(r["patient_ref"], r["clinician"], r["code"]) for r in one.running] == [
        ("MRN2", "Pat Lee", "97140")
    ]
    assert (one.sessions, two.sessions, two.running) == (1, 0, [])
    with room2.clinic() as at_room2:  # a workstation sees only itself
        assert [s.name for s in at_room2.clinic_stations()] == ["ws_room2"]


@pytest.mark.parametrize("form", ["key=value", "uri"])
def test_the_remembered_dsn_has_no_password_and_none_is_printed(
    clinic_server: Server, tmp_path: Path, form: str
) -> None:
    station = Station(tmp_path)
    secret = "s3cret-Pa55"
    cluster = clinic_server.cluster
    dsn = (
        clinic_server.dsn("ws_room1") + f" password={secret}"
        if form == "key=value"
        else f"postgresql://ws_room1:{secret}@127.0.0.1:{cluster.port}/{clinic_server.dbname}"
    )
    connected = station("clinic", "connect", dsn)
    # Said for either form: a URI's password was dropped without a word, and the next sync
    # on a station without ~/.pgpass said only 'no password supplied'.
    assert "the password was not remembered; put it in ~/.pgpass" in connected.stderr
    printed = [connected.output]
    with station.clinic() as here:
        remembered = here.server_dsn()
    assert remembered is not None and "password" not in remembered
    assert server.password_free(remembered) == server.password_free(dsn) == remembered
    station.treat("MRN1", "Pat", "pt", {"97110": 30})
    for args in (("clinic", "sync"), ("clinic", "status"), ("clinic", "status", "--json")):
        printed.append(station(*args).output)
    status = station.json("clinic", "status", "--json")
    assert status["server"] == remembered and status["reachable"]
    # Nor when the server is away: the errors name it, never the password.
    cluster.stop()
    try:
        printed.append(station("clinic", "sync", status=1).output)
        printed.append(station("clinic", "status").output)
        printed.append(station("clinic", "connect", dsn, status=1).output)
    finally:
        cluster.start()
    assert all(secret not in text for text in printed), printed
    # Nothing in the data folder holds it: the database, its WAL, backups, sync state.
    stored = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert database_path(tmp_path) in stored
    for file in stored:
        assert secret.encode() not in file.read_bytes(), file


def test_setting_the_server_up_prints_no_password(clinic_server: Server, tmp_path: Path) -> None:
    secret = "adm1n-Pa55"
    made = Station(tmp_path)(
        "clinic",
        "init-server",
        clinic_server.dsn() + f" password='{secret}'",
        "--workstation",
        "ws_room3",
    )
    assert secret not in made.output and "ws_room3" in made.output
    assert not any(secret.encode() in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())


def test_a_role_without_grants_is_refused_in_plain_words(
    clinic_server: Server, tmp_path: Path
) -> None:
    with clinic_server.admin() as admin:
        admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stranger')"
            " THEN CREATE ROLE stranger LOGIN; END IF; END $$"
        )
    station = Station(tmp_path)
    result = station("clinic", "connect", clinic_server.dsn("stranger"), status=1)
    assert "refused this role" in result.stderr and "Traceback" not in result.output
    assert "permission denied" in result.stderr
    with station.clinic() as here:
        assert here.server_dsn() is None  # nothing remembered


def test_a_superuser_connection_is_warned_about(clinic_server: Server, tmp_path: Path) -> None:
    result = Station(tmp_path)("clinic", "connect", clinic_server.dsn())
    assert "superuser" in result.stderr


# -- the server goes away ------------------------------------------------------------------


def test_server_stopped_while_timers_run_then_sync_catches_up(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1 = Station(tmp_path)
    room1("clinic", "connect", clinic_server.dsn("ws_room1"))
    room1("timer", "start", "97110", "--patient", "MRN7", "--clinician", "Pat", "--role", "pt")
    room1.clock.advance(minutes=10)
    assert room1.json("clinic", "sync", "--json")["added"] == 0  # nothing closed yet
    running = clinic_server.one("SELECT running FROM therapy_timer.workstations")
    assert [(r["patient_ref"], r["code"]) for r in running] == [("MRN7", "97110")]

    clinic_server.cluster.stop()
    try:
        room1.clock.advance(minutes=15)
        room1("timer", "start", "97140", "--patient", "MRN7")  # timers never wait on it
        room1.clock.advance(minutes=12)
        room1("session", "end", "--patient", "MRN7")
        failed = room1("clinic", "sync", status=1)
        assert "cannot be reached" in failed.stderr and "Traceback" not in failed.output
        offline = room1.json("clinic", "status", "--json")
        assert not offline["reachable"] and offline["pending_sessions"] == 1
    finally:
        clinic_server.cluster.start()
    report = room1.json("clinic", "sync", "--json")
    assert (report["added"], report["complete"]) == (1, True)
    record = clinic_server.one("SELECT record FROM therapy_timer.sessions")
    assert _minutes(record) == {"97110": 25, "97140": 12}
    assert room1.json("clinic", "status", "--json")["pending_sessions"] == 0
    with Store.open(tmp_path, clock=FakeClock()) as store:
        assert clinic_server.one("SELECT count(*) FROM therapy_timer.audit") == len(
            store.audit_entries()
        )


_HELD = ("sessions", "segments", "untimed", "audit", "conflicts", "diverged_audit", "events")


def _counts(srv: Server) -> tuple[int, ...]:
    return tuple(srv.one(f"SELECT count(*) FROM therapy_timer.{table}") for table in _HELD)


def _contents(srv: Server) -> dict[str, str]:
    """Every row the server holds, table by table (the workstations' sync times aside)."""
    return {
        table: srv.one(
            f"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')"
            f" FROM therapy_timer.{table} t"
        )
        for table in _HELD
    }


def test_the_same_change_delivered_twice_changes_nothing(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1 = Station(tmp_path)
    room1("clinic", "connect", clinic_server.dsn("ws_room1"))
    room1("timer", "start", "97110", "--patient", "MRN1", "--clinician", "Pat", "--role", "pt")
    room1("untimed", "add", "97161", "--patient", "MRN1", "--minutes", "30")
    room1.clock.advance(minutes=38)
    room1("session", "end", "--patient", "MRN1")
    room1.treat("MRN2", "Pat", "pt", {"97112": 20})
    first = room1.json("clinic", "sync", "--json")
    assert first["added"] == 2
    before = _counts(clinic_server)
    assert before[:3] == (2, 2, 1)
    held = _contents(clinic_server)

    # Deliver everything again, as after a crash before the server recorded the push...
    with clinic_server.admin() as conn:
        conn.execute("UPDATE therapy_timer.workstations SET pushed_audit_id = 0")
    again = room1.json("clinic", "sync", "--json")
    assert (again["added"], again["amended"], again["unchanged"]) == (0, 0, 2)
    assert (again["audit_added"], again["resent_all"]) == (0, False)
    assert _contents(clinic_server) == held
    # ...or when the server's mark is not this log's (a restored or replaced database).
    with clinic_server.admin() as conn:
        conn.execute("UPDATE therapy_timer.workstations SET pushed_audit_hash = 'elsewhere'")
    resent = room1.json("clinic", "sync", "--json")
    assert (resent["unchanged"], resent["audit_added"], resent["resent_all"]) == (2, 0, True)
    assert _contents(clinic_server) == held

    # An amendment at the workstation is this workstation's own later version: it replaces.
    with room1.clinic() as here:
        mrn1 = next(s for s in here.list_sessions(day=DAY) if s.patient_ref == "MRN1")
        segment = here.segments(mrn1.id)[0]
    room1("session", "edit", segment.id, "--minutes", "30", "--reason", "left early")
    amended = room1.json("clinic", "sync", "--json")
    assert (amended["added"], amended["amended"], amended["conflicts"]) == (0, 1, 0)
    record = clinic_server.one("SELECT record FROM therapy_timer.sessions WHERE id = %s", [mrn1.id])
    assert _minutes(record) == {"97110": 30} and record["amended"] is True
    assert (
        clinic_server.one("SELECT count(*) FROM therapy_timer.audit WHERE reason = 'left early'")
        >= 1
    )
    assert room1.json("clinic", "sync", "--json")["amended"] == 0


def test_a_replaced_audit_log_delivered_again_records_nothing_new(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Two data folders logging in as one role (a restored or replaced database): their local
    # audit ids overlap with other content. The server keeps its entries and records each
    # diverging one once, however often the other log is delivered.
    first, second = Station(tmp_path / "first"), Station(tmp_path / "second")
    for station in (first, second):
        station("clinic", "connect", clinic_server.dsn("ws_room1"))
    first.treat("MRN1", "Pat", "pt", {"97110": 30})
    first("clinic", "sync")
    second.treat("MRN9", "Sam", "pt", {"97112": 20})
    diverged = second.json("clinic", "sync", "--json", status=1)
    assert diverged["added"] == 1 and diverged["audit_conflicts"] > 0
    recorded = clinic_server.one(
        "SELECT count(*) FROM therapy_timer.events WHERE action = 'audit.diverged'"
    )
    assert recorded == diverged["audit_conflicts"]
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.diverged_audit") == recorded
    first("clinic", "sync")  # its own log again: all held as it is
    held = _contents(clinic_server)

    again = second.json("clinic", "sync", "--json", status=1)
    assert again["resent_all"] and again["audit_conflicts"] == diverged["audit_conflicts"]
    assert _contents(clinic_server) == held


# -- least privilege, enforced by the server ---------------------------------------------------


def test_the_server_refuses_what_a_role_may_not_do(clinic_server: Server, tmp_path: Path) -> None:
    room1 = Station(tmp_path)
    room1("clinic", "connect", clinic_server.dsn("ws_room1"))
    room1.treat("MRN1", "Pat", "pt", {"97110": 30})
    room1("clinic", "sync")
    session_id = clinic_server.one("SELECT id::text FROM therapy_timer.sessions")

    with psycopg.connect(clinic_server.dsn("ws_room2"), autocommit=True) as other:
        # Another station's rows are invisible to it, so neither changed nor deleted...
        changed = other.execute(
            "UPDATE therapy_timer.sessions SET patient_ref = 'XX' WHERE id = %s", [session_id]
        )
        assert changed.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("DELETE FROM therapy_timer.sessions")
        # ...and it cannot write rows in another station's name.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute(
                "INSERT INTO therapy_timer.audit (workstation, local_id, at_utc, actor, action,"
                " entity, entity_id, entry_hash) VALUES ('ws_room1', 999, now(), 'x', 'x',"
                " 'session', 'x', 'x')"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("INSERT INTO therapy_timer.workstations (name) VALUES ('ws_room9')")
        for table, columns, values in (
            (
                "sessions",
                "id, workstation, date_of_service, patient_ref, clinician, role,"
                " discipline, payer_profile, amended, created_utc, content_hash, record",
                "gen_random_uuid(), 'ws_room1', '2025-03-10', 'X', 'X', 'PT', 'PT', 'M', false,"
                " now(), 'x', '{}'",
            ),
            (
                "diverged_audit",
                "workstation, local_id, entry_hash, entry",
                "'ws_room1', 1, 'x', '{}'",
            ),
            (
                "conflicts",
                "workstation, session_id, content_hash, why, record",
                "'ws_room1', gen_random_uuid(), 'x', 'x', '{}'",
            ),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                other.execute(f"INSERT INTO therapy_timer.{table} ({columns}) VALUES ({values})")
        assert (
            other.execute("UPDATE therapy_timer.workstations SET pushed_audit_id = 0").rowcount == 0
        )
    with psycopg.connect(clinic_server.dsn("ws_room1"), autocommit=True) as own:
        for attempt in (
            "UPDATE therapy_timer.audit SET reason = 'forged'",
            "DELETE FROM therapy_timer.audit",
            "UPDATE therapy_timer.sessions SET exported = true",  # the desk's to mark
            "DELETE FROM therapy_timer.sessions",
            "UPDATE therapy_timer.events SET action = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                own.execute(attempt)
        for marking in (  # marking is the desk's, in either form
            "SELECT therapy_timer.mark_exported(ARRAY[%s]::uuid[])",
            "SELECT therapy_timer.mark_exported(ARRAY[%s]::uuid[], ARRAY['x'])",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                own.execute(marking, [session_id])
    with psycopg.connect(clinic_server.dsn("desk_front"), autocommit=True) as desk:
        # The desk reads everything and marks sessions exported, through the one function
        # that only ever sets the mark and records who did it...
        assert desk.execute("SELECT count(*) FROM therapy_timer.audit").fetchone() != (0,)
        marked = desk.execute(
            "SELECT therapy_timer.mark_exported(ARRAY[%s]::uuid[])", [session_id]
        ).fetchall()
        assert marked == [(session_id,)]
        with pytest.raises(psycopg.errors.InvalidParameterValue):  # a version for each one
            desk.execute(
                "SELECT therapy_timer.mark_exported(ARRAY[%s]::uuid[], ARRAY[]::text[])",
                [session_id],
            )
        # ...and may neither clear a mark nor write sessions, audit, events or settlements.
        for attempt in (
            "UPDATE therapy_timer.sessions SET exported = false",
            "UPDATE therapy_timer.sessions SET exported = true",
            "UPDATE therapy_timer.sessions SET patient_ref = 'XX'",
            "DELETE FROM therapy_timer.sessions",
            "DELETE FROM therapy_timer.audit",
            "UPDATE therapy_timer.audit SET reason = 'forged'",
            "INSERT INTO therapy_timer.events (action, entity, entity_id)"
            " VALUES ('session.export', 'session', 'x')",
            "UPDATE therapy_timer.conflicts SET resolution = 'accepted', resolved_utc = now()",
            "INSERT INTO therapy_timer.segments (id, session_id, code, furnished_by, exclusive,"
            " start_utc, stop_utc) SELECT gen_random_uuid(), id, '97110', 'pt', true, now(),"
            " now() FROM therapy_timer.sessions",
            "INSERT INTO therapy_timer.sessions (id, date_of_service, patient_ref, clinician,"
            " role, discipline, payer_profile, amended, created_utc, content_hash, record)"
            " VALUES (gen_random_uuid(), '2025-03-10', 'X', 'X', 'PT', 'PT', 'M', false,"
            " now(), 'x', '{}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                desk.execute(attempt)
    # Not even the tables' owner may rewrite history or clear an export mark.
    with clinic_server.admin() as owner:
        for attempt in (
            "DELETE FROM therapy_timer.audit",
            "UPDATE therapy_timer.sessions SET exported = false",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                owner.execute(attempt)
    assert clinic_server.one("SELECT patient_ref FROM therapy_timer.sessions") == "MRN1"
    assert clinic_server.one("SELECT exported FROM therapy_timer.sessions") is True
    assert clinic_server.one(
        "SELECT json_agg(json_build_array(actor, entity_id)) FROM therapy_timer.events"
        " WHERE action = 'session.export'"
    ) == [["desk_front", session_id]]
    assert (
        clinic_server.one("SELECT count(*) FROM therapy_timer.audit WHERE reason = 'forged'") == 0
    )


# -- conflicts ---------------------------------------------------------------------------------


def test_another_version_of_a_session_is_kept_aside_never_written_over(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, room2 = Station(tmp_path / "room1"), Station(tmp_path / "room2")
    room1("clinic", "connect", clinic_server.dsn("ws_room1"))
    room2("clinic", "connect", clinic_server.dsn("ws_room2"))
    room1.treat("MRN1", "Pat", "pt", {"97110": 30})
    room1("clinic", "sync")
    bundle = tmp_path / "room1.json"
    room1("export", "--date", DAY.isoformat(), "--format", "bundle", "--out", str(bundle))

    # A copy merged at room 2 from room 1's bundle is the same session: not a conflict.
    room2("import", str(bundle))
    copy = room2.json("clinic", "sync", "--json")
    assert (copy["added"], copy["unchanged"], copy["conflicts"]) == (0, 1, 0)

    # Changed at room 2, it is another version: kept aside, audited, the server's untouched.
    with room2.clinic() as here:
        (session,) = here.list_sessions(day=DAY)
        segment = here.segments(session.id)[0]
    room2("session", "edit", segment.id, "--minutes", "20", "--reason", "wrong patient time")
    kept = room2.json("clinic", "sync", "--json", status=1)
    assert (kept["conflicts"], kept["conflict_sessions"], kept["complete"]) == (
        1,
        [session.id],
        False,
    )
    assert kept["waiting_for_the_desk"] == 1
    # Nothing new to push: still waiting, and the station is told so until the desk settles.
    later = room2("clinic", "sync")
    assert "1 kept-aside version(s) of this workstation wait for the desk" in later.stdout
    assert _minutes(clinic_server.one("SELECT record FROM therapy_timer.sessions")) == {"97110": 30}
    conflict = clinic_server.one(
        "SELECT json_build_array(workstation, session_id, why, record) FROM therapy_timer.conflicts"
    )
    assert conflict[:2] == ["ws_room2", session.id] and "ws_room1" in conflict[2]
    assert _minutes(conflict[3]) == {"97110": 20}
    assert (
        clinic_server.one(
            "SELECT count(*) FROM therapy_timer.events WHERE action = 'conflict.kept_aside'"
            " AND entity_id = %s AND actor = 'ws_room2'",
            [session.id],
        )
        == 1
    )
    # Delivered again, it is still one conflict.
    with clinic_server.admin() as conn:
        conn.execute("UPDATE therapy_timer.workstations SET pushed_audit_id = 0")
    room2("clinic", "sync", status=1)
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.conflicts") == 1

    # Settled at the desk: a workstation may not; the desk accepts with a reason.
    desk = Station(tmp_path / "desk")
    desk("clinic", "connect", clinic_server.dsn("desk_front"))
    (waiting,) = desk.json("clinic", "conflicts", "--json")
    assert (waiting["session_id"], waiting["workstation"]) == (session.id, "ws_room2")
    number = str(waiting["id"])
    refused = room2("clinic", "settle", number, "accept", "--reason", "mine", status=1)
    assert "permission denied for function settle_conflict" in refused.stderr
    assert (
        "needs a reason"
        in desk("clinic", "settle", number, "accept", "--reason", " ", status=2).stderr
    )
    desk("clinic", "settle", number, "accept", "--reason", "room 2 timed it right")
    record = clinic_server.one("SELECT record FROM therapy_timer.sessions")
    assert _minutes(record) == {"97110": 20}
    segments = clinic_server.one(
        "SELECT json_agg(extract(epoch FROM stop_utc - start_utc) / 60) FROM therapy_timer.segments"
    )
    assert segments == [20]
    # The version it replaced is kept, settled, never lost; the decision is in the events.
    replaced = clinic_server.one(
        "SELECT json_build_array(workstation, resolution, record) FROM therapy_timer.conflicts"
        " WHERE id <> %s",
        [int(number)],
    )
    assert replaced[:2] == ["ws_room1", "dropped"] and _minutes(replaced[2]) == {"97110": 30}
    assert (
        clinic_server.one(
            "SELECT details->>'reason' FROM therapy_timer.events WHERE action = 'conflict.accepted'"
            " AND actor = 'desk_front'"
        )
        == "room 2 timed it right"
    )
    assert desk.json("clinic", "conflicts", "--json") == []
    assert room2.json("clinic", "sync", "--json")["waiting_for_the_desk"] == 0
    again = desk("clinic", "settle", number, "drop", "--reason", "oops", status=2)
    assert "already accepted" in again.stderr


# -- kill -9 in the middle of a sync -----------------------------------------------------------


def _busy_station(data_dir: Path, sessions: int) -> None:
    clock = FakeClock(MORNING)
    with Clinic.open(data_dir, clock=clock) as here:
        for n in range(sessions):
            session = here.open_session(
                patient_ref=f"MRN{n}",
                clinician=f"Clin {n % 5}",
                role=Role.PT,
                payer_profile="Medicare",
            )
            here.start(session.id, "97110")
            clock.advance(minutes=10 + n % 20)
            here.end_session(session.id)


@pytest.mark.parametrize(
    ("hook", "call", "on_server", "added"),
    [
        ("closed_records", 3, 20, 5),  # between batches: two of three are committed
        ("running", 1, 25, 0),  # inside the last transaction (audit log and mark)
    ],
)
def test_kill_9_in_the_middle_of_a_sync_loses_and_doubles_nothing(
    clinic_server: Server, tmp_path: Path, hook: str, call: int, on_server: int, added: int
) -> None:
    _busy_station(tmp_path, 25)
    with Clinic.open(tmp_path) as here:
        here.connect_server(clinic_server.dsn("ws_room1"))
    # A child process pushes in batches of 10 and is killed at the hook's nth call.
    script = textwrap.dedent(
        f"""
        import os, signal
        from therapy_timer import rules, server
        from therapy_timer.clock import SystemClock
        from therapy_timer.store import Store, database_path
        store = Store.open({str(tmp_path)!r}, clock=SystemClock())
        local = server.StoreRecords(store)
        read = getattr(local, {hook!r})
        calls = []
        def killed(*args):
            calls.append(1)
            if len(calls) == {call}:
                os.kill(os.getpid(), signal.SIGKILL)
            return read(*args)
        setattr(local, {hook!r}, killed)
        with server.connect({clinic_server.dsn("ws_room1")!r}) as conn:
            server.push(conn, local, now=__import__("datetime").datetime.now(
                __import__("datetime").UTC), batch_size=10)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, env=dict(os.environ)
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions") == on_server
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.workstations") == 0

    station = Station(tmp_path)
    report = station.json("clinic", "sync", "--json")
    assert (report["added"], report["unchanged"], report["complete"]) == (
        added,
        25 - added,
        True,
    )
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions") == 25
    assert clinic_server.one("SELECT count(DISTINCT id) FROM therapy_timer.segments") == 25
    with Store.open(tmp_path, clock=FakeClock()) as store:
        local_entries = len(store.audit_entries())
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.audit") == local_entries


# -- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["clinic", "connect", "host=127.0.0.1 port=notaport =x"], "DSN:"),
        (["clinic", "connect", "password=hunter2 = broken"], "DSN:"),
        # libpq quotes a URI it cannot parse, the password in it too: scrubbed.
        (["clinic", "connect", "postgresql://ws_room1:hunter2@[::1:5432/db"], "DSN:"),
        (["clinic", "connect", "postgresql://ws_room1:hunter2@h/db?bogus=1"], "DSN:"),
        # An @ of the password not written %40: libpq reads the rest as the host, and the
        # message naming that host quoted the password's end.
        (["clinic", "connect", "postgresql://ws_room1:hunter2@hunter2@127.0.0.1/db"], "DSN:"),
        (["clinic", "connect", "host=hunter2@127.0.0.1 user=ws_room1"], "DSN:"),
        (["clinic", "init-server", "host=x", "--workstation", "Gym 1"], "--workstation:"),
        (
            ["clinic", "init-server", "host=x", "--workstation", "a", "--desk", "a"],
            "--desk:",
        ),
    ],
)
def test_bad_connection_strings_and_role_names_are_one_plain_line(
    tmp_path: Path, args: list[str], words: str
) -> None:
    result = Station(tmp_path)(*args, status=2)
    assert words in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.output


def test_an_unreachable_server_is_one_plain_line_without_the_password(
    cluster: Cluster, tmp_path: Path
) -> None:
    closed_port = cluster.port + 1 if cluster.port < 65535 else cluster.port - 1
    dsn = f"host=127.0.0.1 port={closed_port} dbname=x user=ws_room1 password=hunter2"
    result = Station(tmp_path)("clinic", "connect", dsn, status=1)
    assert "cannot be reached" in result.stderr and "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_sync_says_what_each_exit_status_means(tmp_path: Path) -> None:
    # Its help named 0 and 2 only: cron, which sees 1 when the server is away or a version
    # is kept aside for the desk, had nothing saying so.
    said = " ".join(Station(tmp_path)("clinic", "sync", "--help").stdout.split())
    assert "exit 0 when everything is on the server, 1 when the server cannot be reached" in said
    assert "keeps a version aside for the desk" in said and "2 when a session stays here" in said


def test_disconnect_forgets_the_server(clinic_server: Server, tmp_path: Path) -> None:
    station = Station(tmp_path)
    assert "no clinic server" in station("clinic", "disconnect").stdout
    station("clinic", "connect", clinic_server.dsn("ws_room1"))
    station("clinic", "sync")
    assert (tmp_path / "clinic-sync.json").exists()
    assert "disconnected" in station("clinic", "disconnect").stdout
    assert not (tmp_path / "clinic-sync.json").exists()
    assert "no clinic server is configured" in station("clinic", "sync", status=1).stderr


# -- the desk bills the clinic -----------------------------------------------------------------


def _ids_blank(text: str) -> str:
    """The export with session ids blanked: the reference recorded the same times anew."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


def _day_of_mrn1(room1: Station, room2: Station) -> None:
    """The PT in room 1 in the morning, the PTA in room 2 in the afternoon: one claim day."""
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20, "97140": 9})
    room2.clock.set(datetime(2025, 3, 10, 19, 0, tzinfo=UTC))
    room2.treat("MRN1", "Sam Diaz", "pta", {"97110": 14, "97530": 8})


def test_the_desk_exports_what_one_workstation_would_have_billed(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    room1("clinic", "sync")
    room2("clinic", "sync")
    # The reference: every session recorded at one workstation, at the same moments.
    alone = Station(tmp_path / "alone")
    _day_of_mrn1(alone, alone)
    expected = _ids_blank(alone("export", "--date", DAY.isoformat(), "--format", "csv").stdout)
    assert "MRN1" in expected and "Pat Lee (PT); Sam Diaz (PTA)" in expected

    preview = desk("export", "--date", DAY.isoformat(), "--format", "csv", "--clinic")
    assert _ids_blank(preview.stdout) == expected
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 0

    out = tmp_path / "day.csv"
    written = desk("export", "--date", DAY.isoformat(), "--out", str(out), "--clinic")
    assert "2 marked exported" in written.stderr
    assert _ids_blank(out.read_text(encoding="utf-8")) == expected
    assert clinic_server.one("SELECT count(*) FROM therapy_timer.sessions WHERE exported") == 2
    assert (
        clinic_server.one(
            "SELECT count(*) FROM therapy_timer.events WHERE action = 'session.export'"
            " AND actor = 'desk_front'"
        )
        == 2
    )
    # The desk's list of the day is every workstation's, each marked as the server says.
    listed = desk.json("session", "list", "--date", DAY.isoformat(), "--json", "--clinic")
    assert sorted((r["patient_ref"], r["clinician"]) for r in listed) == [
        ("MRN1", "Pat Lee"),
        ("MRN1", "Sam Diaz"),
    ]
    assert all("exported" in r["state"] for r in listed)
    assert desk.json("session", "list", "--date", DAY.isoformat(), "--json") == []  # local
    # A workstation may not mark the clinic's sessions exported.
    refused = room1(
        "export", "--date", DAY.isoformat(), "--out", str(tmp_path / "r1.csv"), "--clinic", status=1
    )
    assert "only the desk role" in refused.stderr


def test_a_session_amended_after_the_desk_exported_it_is_due_again_at_the_desk(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Issue 11's rule across the server: a correction made at a workstation after the desk
    # billed the day must reach the billing system, so the desk sees the day due again.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    day = DAY.isoformat()
    desk("export", "--date", day, "--out", str(tmp_path / "first.csv"), "--clinic")
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": False}

    _room2_corrects_its_97110(room2, day)

    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": True}
    again = tmp_path / "again.csv"
    desk("export", "--date", day, "--out", str(again), "--clinic")
    rows = list(csv.DictReader(again.read_text(encoding="utf-8-sig").splitlines()))
    assert rows and {r["status"] for r in rows} == {"amended after export"}
    # The day now holds 20 + 9 + 10 + 8 = 47 timed minutes (independently: 3 units by R2.3).
    assert {r["total_timed_minutes"] for r in rows} == {"47"}
    # Marked again on the server: exported, and no longer due.
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": False}


def test_a_correction_synced_while_the_desk_exports_is_due_again_not_marked_billed(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The desk reads the day, writes the file, then marks what it read exported. A correction
    # room 2 syncs between the read and the mark is in no file: marking the session's new
    # content as billed would lose it from billing for good.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        station("clinic", "sync")
    day = DAY.isoformat()
    real_mark = server.mark_exported

    def corrected_meanwhile(conn: psycopg.Connection[Any], session_ids: Any) -> int:
        with room2.clinic() as clinic:
            [pta] = clinic.list_sessions(start=DAY, end=DAY)
            [segment] = [g for g in clinic.segments(pta.id) if g.code == "97110"]
            clinic.lengthen_segment(segment.id, 10, reason="typed too much")
            clinic.sync_server()
        return real_mark(conn, session_ids)

    monkeypatch.setattr(server, "mark_exported", corrected_meanwhile)
    first = tmp_path / "first.csv"
    written = desk("export", "--date", day, "--out", str(first), "--clinic")
    assert "2 marked exported" in written.stderr
    rows = list(csv.DictReader(first.read_text(encoding="utf-8-sig").splitlines()))
    assert {r["total_timed_minutes"] for r in rows} == {"51"}  # 20 + 9 + 14 + 8, as read
    monkeypatch.undo()

    # Both are marked exported; the corrected one as exported before its correction.
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": True}
    again = tmp_path / "again.csv"
    desk("export", "--date", day, "--out", str(again), "--clinic")
    rows = list(csv.DictReader(again.read_text(encoding="utf-8-sig").splitlines()))
    assert {r["status"] for r in rows} == {"amended after export"}
    assert {r["total_timed_minutes"] for r in rows} == {"47"}  # 20 + 9 + 10 + 8
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": False}


def test_a_clinician_export_at_the_desk_marks_only_the_days_in_its_file(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Room 2's correction of MRN1's day is due; the desk then exports only Ann Roe's days
    # (MRN2). MRN1's day is not in that file, so it must stay due on the server.
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    room1.clock.set(datetime(2025, 3, 10, 21, 0, tzinfo=UTC))
    room1.treat("MRN2", "Ann Roe", "pt", {"97112": 25})
    for station in (room1, room2):
        station("clinic", "sync")
    day = DAY.isoformat()
    desk("export", "--date", day, "--out", str(tmp_path / "all.csv"), "--clinic")
    _room2_corrects_its_97110(room2, day)
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": True, "Ann Roe": False}

    ann = tmp_path / "ann.csv"
    desk("export", "--date", day, "--out", str(ann), "--clinic", "--clinician", "Ann Roe")
    rows = list(csv.DictReader(ann.read_text(encoding="utf-8-sig").splitlines()))
    assert {r["patient_ref"] for r in rows} == {"MRN2"}
    assert _due(desk, day) == {"Pat Lee": False, "Sam Diaz": True, "Ann Roe": False}


def _room2_corrects_its_97110(room2: Station, day: str) -> None:
    """Room 2 corrects its PTA's 97110 of ``day`` from 14 to 10 minutes, and syncs."""
    [pta] = room2.json("session", "list", "--date", day, "--json")
    shown = room2.json("session", "show", pta["id"], "--json")
    [segment] = [g for g in shown["segments"] if g["code"] == "97110"]
    room2("session", "edit", segment["id"], "--minutes", "10", "--reason", "typed too much")
    room2("clinic", "sync")


def _due(desk: Station, day: str) -> dict[str, bool]:
    """Each clinician's session of the day at the desk: whether it is to be exported again
    (every one of them must be marked exported)."""
    listed = desk.json("session", "list", "--date", day, "--json", "--clinic")
    assert all({"exported", "amended after export"} & set(r["state"]) for r in listed), listed
    return {r["clinician"]: "amended after export" in r["state"] for r in listed}


def test_the_desk_reads_the_server_a_few_records_at_a_time_and_bills_the_same(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 25})
    for station in (room1, room2):
        station("clinic", "sync")
    whole = _csv_of(desk, clinic=True)
    with psycopg.connect(clinic_server.dsn("desk_front")) as conn:
        chunks = list(server.stream_clinic_records(conn, DAY, DAY, batch=1))
        assert [len(c) for c in chunks] == [1, 1, 1]
        assert [r for c in chunks for r in c] == server.clinic_records(conn, DAY, DAY)
    assert all("audit" not in r for c in chunks for r in c)  # the audit stays on the server
    # MRN1's two sessions arrive in different chunks and are still one claim day.
    one_by_one = functools.partial(server.stream_clinic_records, batch=1)
    monkeypatch.setattr(server, "stream_clinic_records", one_by_one)
    assert _csv_of(desk, clinic=True) == whole
    assert "Pat Lee (PT); Sam Diaz (PTA)" in whole


def test_pooling_across_workstations_bills_what_neither_session_would_alone(
    clinic_server: Server, tmp_path: Path
) -> None:
    # Seven minutes of 97110 at each station: nothing billable on its own (under the 8 of a
    # unit), one unit as the one claim day the payer sees (R1.2).
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN3", "Pat Lee", "pt", {"97110": 7})
    room2.clock.set(datetime(2025, 3, 10, 18, 0, tzinfo=UTC))
    room2.treat("MRN3", "Kim Ruiz", "pt", {"97110": 7})
    for station in (room1, room2):
        station("clinic", "sync")
        alone = list(csv.DictReader(io.StringIO(_csv_of(station, clinic=False))))
        assert [(r["code"], r["units"]) for r in alone] == [("", "0")]

    want = rules.evaluate(
        rules.Request(
            method=rules.Method.CMS,
            discipline=Discipline.PT,
            timed={"97110": 14},
            date_of_service=DAY,
        )
    )
    (row,) = csv.DictReader(io.StringIO(_csv_of(desk, clinic=True)))
    assert (row["patient_ref"], row["code"], row["minutes"]) == ("MRN3", "97110", "14")
    assert int(row["units"]) == want.total_timed_units == 1
    assert row["clinicians"] == "Pat Lee (PT); Kim Ruiz (PT)"
    assert len(row["session_ids"].split()) == 2


def _csv_of(station: Station, *, clinic: bool) -> str:
    args = ["export", "--date", DAY.isoformat(), "--format", "csv"]
    text = station(*args, *(["--clinic"] if clinic else [])).stdout
    return text.lstrip("\ufeff")


# -- in the background --------------------------------------------------------------------------


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_background_sync_pushes_closed_sessions_and_survives_the_server_going_away(
    clinic_server: Server, tmp_path: Path
) -> None:
    station = Station(tmp_path)
    station("clinic", "connect", clinic_server.dsn("ws_room1"))
    sessions = "SELECT count(*) FROM therapy_timer.sessions"
    with station.clinic() as window:
        worker = window.background_sync(interval_s=0.2)
        try:
            station.treat("MRN1", "Pat", "pt", {"97110": 30})
            worker.request()
            assert _until(lambda: clinic_server.one(sessions) == 1)
            clinic_server.cluster.stop()
            try:
                station.treat("MRN2", "Pat", "pt", {"97112": 15})  # never waits on the server
                assert _until(lambda: "cannot be reached" in worker.problem)
            finally:
                clinic_server.cluster.start()
            worker.request()
            assert _until(lambda: worker.problem == "" and clinic_server.one(sessions) == 2)
            last = worker.last_report
            assert last is not None and last.complete
        finally:
            began = time.monotonic()
            worker.stop()
            assert time.monotonic() - began < 5
    assert worker.rounds >= 3


def test_a_server_set_to_another_date_style_is_read_as_iso(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clinic's server (or a desk's PGDATESTYLE) set to day/month/year: psycopg reads only
    # ISO dates, and every command ended in NotImplementedError's traceback.
    monkeypatch.setenv("PGDATESTYLE", "SQL, DMY")
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    _day_of_mrn1(room1, room2)
    for station in (room1, room2):
        assert station.json("clinic", "sync", "--json")["added"] == 1
    assert desk.json("clinic", "status", "--json")["reachable"]
    listed = desk.json("session", "list", "--date", DAY.isoformat(), "--json", "--clinic")
    assert sorted(r["clinician"] for r in listed) == ["Pat Lee", "Sam Diaz"]
    out = tmp_path / "day.csv"
    written = desk("export", "--date", DAY.isoformat(), "--out", str(out), "--clinic")
    assert "2 marked exported" in written.stderr
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert {r["date_of_service"] for r in rows} == {DAY.isoformat()}
    assert _due(desk, DAY.isoformat()) == {"Pat Lee": False, "Sam Diaz": False}
