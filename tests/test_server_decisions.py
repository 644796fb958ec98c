"""The clinic server's safety decisions (server8): TLS warnings, clock skew, record size limits,
a held-back session named after any kill, and what the server's troubles are said as."""

from __future__ import annotations

import errno
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.server_support import DAY, Server, Station, two_rooms_and_a_desk
from therapy_timer import files, server
from therapy_timer.clinic import SYNC_STATE_FILE, Clinic
from therapy_timer.gui.clinic_sync import sync_view

_DAY = DAY.isoformat()


def _session_id(station: Station, patient: str) -> str:
    with station.clinic() as clinic:
        [session] = [s for s in clinic.list_sessions(day=DAY) if s.patient_ref == patient]
    return session.id


# -- 1. TLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "said"),
    [
        ("host=/var/run/postgresql dbname=tt", ""),
        ("host=localhost dbname=tt", ""),
        ("host=127.0.0.2 dbname=tt", ""),
        ("host=::1 dbname=tt", ""),
        ("dbname=tt", ""),  # libpq's default: the local Unix socket
        ("host=db.clinic.example dbname=tt sslmode=verify-full", ""),
        ("host=db.clinic.example dbname=tt", "warning: db.clinic.example is not this computer"),
        ("postgresql://ws@10.0.0.5/tt?sslmode=require", "warning: 10.0.0.5 is not this"),
        ("host=localhost,db.clinic.example dbname=tt", "warning: db.clinic.example is not"),
        ("host=db.clinic.example dbname=tt sslmode=verify-ca", "note: sslmode=verify-ca"),
    ],
)
def test_which_addresses_are_warned_about(
    dsn: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)
    warning = server.tls_warning(dsn)
    assert warning.startswith(said) and bool(warning) == bool(said)
    if said.startswith("warning"):
        assert "patient data would cross the network" in warning
    if said:
        assert "sslmode=verify-full and sslrootcert=" in warning
    monkeypatch.setenv("PGSSLMODE", "verify-full")  # libpq's default, unless the address says
    assert (server.tls_warning(dsn) == "") == ("sslmode" not in dsn or "verify-full" in dsn)


@pytest.mark.parametrize(
    ("section", "warned"),
    [
        ("host=db.clinic.example\ndbname=tt\n", True),
        ("host=db.clinic.example\nsslmode=verify-full\nsslrootcert=/etc/ssl/ca.pem\n", False),
        ("host=/var/run/postgresql\n", False),
    ],
)
def test_a_service_files_address_is_read_as_libpq_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, warned: bool
) -> None:
    """docs/clinic-server.md advises 'service=clinic': its host and sslmode are in the file,
    and a server on another computer without verify-full went unwarned."""
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGSERVICE", "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "services.conf").write_text(f"[other]\nhost=/tmp\n\n[clinic]\n{section}")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "services.conf"))
    assert bool(server.tls_warning("service=clinic")) == warned
    # The address's own settings come before the file's, as in libpq.
    assert server.tls_warning("service=clinic host=localhost") == ""
    monkeypatch.setenv("PGSERVICE", "clinic")
    assert bool(server.tls_warning("dbname=tt")) == warned


def test_connecting_across_the_network_unverified_warns_and_still_connects(
    clinic_server: Server, tmp_path: Path
) -> None:
    """A workstation connected to a server on another computer with libpq's default sslmode
    (prefer: encrypted if the server offers it, never checked), and nothing said."""
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    assert "sslmode" not in room1("clinic", "status").stdout  # 127.0.0.1: this computer
    station = Station(tmp_path / "gym")
    # hostaddr dials the test cluster; host is the name the clinic gave its server.
    far = clinic_server.dsn("ws_room2").replace("host=127.0.0.1", "host=db.clinic.example")
    done = station("clinic", "connect", f"{far} hostaddr=127.0.0.1 password=S3cret-pw")
    assert done.stdout.startswith("connected as ws_room2")
    warning = (
        "warning: db.clinic.example is not this computer and sslmode=prefer does not check the"
        " server's identity: patient data would cross the network to whoever answers at that"
        " address; to fix it, add sslmode=verify-full and sslrootcert=PATH (the clinic's root"
        " certificate) to the address (docs/clinic-server.md, section 4)"
    )
    assert warning in done.stderr
    status = station("clinic", "status")
    assert "reachable: yes" in status.stdout and warning in status.stdout
    assert station.json("clinic", "status", "--json")["tls_warning"] == warning
    station.treat("MRN7", "Pat Lee", "pt", {"97110": 20})
    station("clinic", "sync")
    assert "S3cret-pw" not in done.output + status.output
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert [r["patient_ref"] for r in rows] == ["MRN7"]


# -- 2. Clock skew -------------------------------------------------------------------------------


def test_a_station_clock_hours_off_is_said_at_each_sync_and_nothing_changes(
    clocks_as_they_are: Server, tmp_path: Path
) -> None:
    clinic_server = clocks_as_they_are
    now = datetime.now(UTC).replace(microsecond=0)
    folders = {name: tmp_path / name for name in ("ahead", "right")}
    for name, role in (("ahead", "ws_room1"), ("right", "ws_room2")):
        treating = Station(folders[name], FakeClock(now - timedelta(hours=1)))
        treating("clinic", "connect", clinic_server.dsn(role))
        treating.treat("MRN1" if name == "ahead" else "MRN2", "Pat Lee", "pt", {"97110": 20})
    ahead = Station(folders["ahead"], FakeClock(now + timedelta(hours=3, minutes=5)))
    right = Station(folders["right"], FakeClock(now + timedelta(seconds=90)))
    said = ahead("clinic", "sync")  # exit 0: everything is on the server
    assert (
        "warning: this computer's clock is 3 h 5 min ahead of the clinic server's: the times"
        " it records are its own clock's, so set its date and time right (nothing recorded is"
        " changed for it)"
    ) in said.stderr
    report = ahead.json("clinic", "sync", "--json")
    assert 3 * 3600 < report["clock_skew_seconds"] < 3 * 3600 + 400
    assert "3 h 5 min ahead" in ahead("clinic", "status").stdout
    assert right("clinic", "sync").stderr == ""  # 90 s: within the two minutes
    assert "clock" not in right("clinic", "status").stdout
    behind = Station(folders["ahead"], FakeClock(now - timedelta(minutes=10)))
    assert "clock is 10 min behind the clinic server's" in behind("clinic", "sync").stderr
    # The record is the station's own, as its clock said.
    with clinic_server.admin() as admin:
        found = admin.execute(
            "SELECT id::text, record FROM therapy_timer.sessions WHERE patient_ref = 'MRN1'"
        ).fetchone()
    assert found is not None
    session_id, record = found
    with ahead.clinic() as clinic:
        [local] = clinic._store.session_records([session_id])
    assert record["segments"] == json.loads(json.dumps(local["segments"]))
    # The window says it beside the last sync, in the alert colour.
    view = sync_view(
        last_sync_utc=now,
        problem="",
        unreachable=False,
        kept_aside=0,
        busy=False,
        clock=server.skew_message(timedelta(hours=-3)),
    )
    assert view.warning and view.text.endswith(" · this computer's clock is wrong")
    assert view.details.startswith("This computer's clock is 3 h behind the clinic server's")


# -- 3. Record size limits ----------------------------------------------------------------------


def _segments(count: int) -> str:
    """SQL for ``count`` distinct 3-second segments of 97110 from 14:00 UTC on DAY."""
    return (
        "(SELECT jsonb_agg(jsonb_build_object('id', gen_random_uuid(), 'code', '97110',"
        " 'furnished_by', 'therapist', 'exclusive', true,"
        f" 'start_utc', to_char(timestamptz '{_DAY} 14:00Z' + n * interval '3 s',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00'),"
        f" 'stop_utc', to_char(timestamptz '{_DAY} 14:00Z' + (n + 1) * interval '3 s',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00')) ORDER BY n)"
        f" FROM generate_series(0, {count - 1}) AS n)"
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            f"jsonb_set(record, '{{segments}}', {_segments(2_001)})",
            "has 2,001 segments, more than a session may hold (2,000)",
        ),
        (
            "record || jsonb_build_object('note', repeat(md5(random()::text), 295000))",
            "is 9.0 MiB, more than a session's record may be (8 MiB)",
        ),
    ],
)
def test_a_record_larger_than_any_treatment_is_refused_by_name_at_the_desk(
    clinic_server: Server, tmp_path: Path, change: str, said: str
) -> None:
    """A workstation (an untrusted writer) could put a session of any size on the server, which
    the desk then read and parsed whole (300,000 segments: 7 s and 867 MB)."""
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    with clinic_server.admin() as admin:
        admin.execute(
            f"UPDATE therapy_timer.sessions SET record = {change},"
            " content_hash = md5(random()::text)"
        )
        admin.execute(
            "INSERT INTO therapy_timer.conflicts (workstation, session_id, content_hash, why,"
            " record) SELECT workstation, id, 'x', 'another version', record"
            " FROM therapy_timer.sessions"
        )
    refused = desk("session", "list", "--date", _DAY, "--clinic", status=1)
    session_id = _session_id(room1, "MRN1")
    assert session_id in refused.stderr and f"its record {said}" in refused.stderr
    assert "Traceback" not in refused.output
    conflicts = desk.json("clinic", "conflicts", "--json")
    assert [c["why"] for c in conflicts] == [f"its record {said}; another version"]


def test_a_session_larger_than_any_treatment_stays_on_its_workstation_named(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 20})
    big = _session_id(room1, "MRN1")
    with Clinic.open(room1.data_dir) as clinic:
        conn = clinic._store._conn
        start = datetime(2025, 3, 10, 18, 0, tzinfo=UTC)
        conn.executemany(
            "INSERT INTO segments (id, session_id, code, furnished_by, exclusive, start_utc,"
            " stop_utc) VALUES (?, ?, '97530', 'therapist', 1, ?, ?)",
            [
                (
                    str(uuid.uuid4()),
                    big,
                    (start + timedelta(seconds=3 * n)).isoformat(),
                    (start + timedelta(seconds=3 * n + 3)).isoformat(),
                )
                for n in range(2_000)
            ],
        )
        conn.commit()
    done = room1("clinic", "sync", status=2)
    assert (
        f"Session {big} (patient MRN1, {_DAY}) stays on this workstation, not sent to the"
        " clinic server: its record has 2,001 segments, more than a session may hold (2,000)"
        " (no treatment is that large; the desk refuses it)."
    ) in done.stderr
    assert "ask the desk" not in done.stderr
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert [r["patient_ref"] for r in rows] == ["MRN2"]


# -- 4. The held-back list survives a kill after the mark moved ------------------------------------


class Killed(Exception):
    """The process dying at this point."""


def test_a_sync_killed_after_its_last_commit_still_names_the_held_session_next_time(
    clinic_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only clinic-sync.json named a held session once the server's audit mark had passed it,
    and the file was written after that commit: a sync killed in between forgot it, and every
    later sync exited 0 with MRN2 never on the server and no one told."""
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    room1("clinic", "sync")
    room1.treat("MRN2", "Pat Lee", "pt", {"97112": 20})
    held = _session_id(room1, "MRN2")
    with Clinic.open(room1.data_dir) as clinic:
        clinic._store._conn.execute(
            "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, after_json,"
            " reason) VALUES ('2025-03-10T16:00:00+00:00', 'import', 'session.imported',"
            " 'session', ?, '{\"note\": \"a\\u0000b\"}', '')",
            [held],
        )
        clinic._store._conn.commit()
    mark = "SELECT pushed_audit_id FROM therapy_timer.workstations WHERE name = 'ws_room1'"
    before = clinic_server.one(mark)
    real_write = files.write_private
    killed = []

    def write_then_die(path: Path, data: str | bytes, **kwargs: object) -> Path:
        if Path(path).name == SYNC_STATE_FILE and clinic_server.one(mark) != before:
            killed.append(clinic_server.one(mark))
            raise Killed
        return real_write(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("therapy_timer.clinic.write_private", write_then_die)
    died = room1("clinic", "sync", status=1)
    assert isinstance(died.exception, Killed) and killed and killed[0] > before
    monkeypatch.undo()

    again = room1.json("clinic", "sync", "--json", status=2)

    assert [h["session_id"] for h in again["held_on_this_workstation"]] == [held]
    assert room1.json("clinic", "status", "--json")["held_on_this_workstation"] == [held]
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert [r["patient_ref"] for r in rows] == ["MRN1"]


# -- 5. What the server's troubles are said as ----------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "said"),
    [
        ("disk_full", "the clinic server's disk is full ("),
        ("query_canceled", "the clinic server stopped the sync at its time limit ("),
        ("deadlock_detected", "which met another connection's changes ("),
    ],
)
def test_the_servers_trouble_during_a_push_is_said_as_what_it_is(
    clinic_server: Server, tmp_path: Path, errcode: str, said: str
) -> None:
    """Each read 'the connection to the clinic server was lost during the sync', sending
    whoever read it to the network while the server had answered."""
    room1, _room2, _desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})
    with clinic_server.admin() as admin:
        admin.execute(
            "CREATE FUNCTION public.trouble() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$BEGIN RAISE EXCEPTION 'the trouble' USING ERRCODE = '{errcode}'; END$$"
        )
        admin.execute(
            "CREATE TRIGGER trouble BEFORE INSERT ON therapy_timer.sessions"
            " FOR EACH ROW EXECUTE FUNCTION public.trouble()"
        )
    refused = room1("clinic", "sync", status=1)
    assert refused.stderr.startswith("Error: ") and said in refused.stderr
    assert "connection to the clinic server was lost" not in refused.stderr
    assert "Traceback" not in refused.output
    assert "nothing is lost" in refused.stderr or "what it has is kept" in refused.stderr
    with clinic_server.admin() as admin:
        admin.execute("DROP TRIGGER trouble ON therapy_timer.sessions")
    assert room1.json("clinic", "sync", "--json")["added"] == 1


def test_a_refused_login_is_not_said_as_an_unreachable_server_by_status(
    clinic_server: Server, tmp_path: Path
) -> None:
    room1, _room2, _desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    with clinic_server.admin() as admin:
        admin.execute("ALTER ROLE ws_room1 NOLOGIN")  # the cluster's: every test's
    try:
        status = room1("clinic", "status")
        said = room1.json("clinic", "status", "--json")
        refused = room1("clinic", "sync", status=1)
    finally:
        with clinic_server.admin() as admin:
            admin.execute("ALTER ROLE ws_room1 LOGIN")
    assert "reachable: yes, but the clinic server refused the login: " in status.stdout
    assert 'role "ws_room1" is not permitted to log in' in status.stdout
    assert "reachable: no" not in status.stdout
    assert (said["reachable"], said["refused"]) == (False, True)
    assert refused.stderr.startswith("Error: the clinic server refused the login: ")


def test_a_full_local_disk_after_the_push_is_one_plain_line_and_the_window_no_traceback(
    clinic_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    room1, _room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 20})

    def no_room(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("therapy_timer.files.os.fsync", no_room)
    full = room1("clinic", "sync", status=2)
    assert full.stderr.startswith("Error: this workstation's sync record cannot be kept: ")
    assert "clinic-sync.json could not be written: the disk is full. What the clinic server" in (
        full.stderr
    )
    assert "Traceback" not in full.output
    with room1.clinic() as window:
        worker = window.background_sync(interval_s=60)
        try:
            deadline = time.monotonic() + 20
            while worker.rounds < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
    assert "the disk is full" in worker.problem and worker.here and not worker.unreachable
    assert "Traceback" not in capsys.readouterr().err
    view = sync_view(
        last_sync_utc=None,
        problem=worker.problem,
        unreachable=worker.unreachable,
        kept_aside=0,
        busy=False,
        here=worker.here,
    )
    assert view.text == "Clinic server sync stopped on this computer · last synced never"
    monkeypatch.undo()
    assert room1.json("clinic", "sync", "--json")["complete"]
    rows = desk.json("session", "list", "--date", _DAY, "--json", "--clinic")
    assert [r["patient_ref"] for r in rows] == ["MRN1"]
