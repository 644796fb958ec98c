"""Imports: a bundle's session passes the checks of one recorded here, and conflicts are kept."""

from __future__ import annotations

import codecs
import copy
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes import FakeClock
from therapy_timer.cli import Context, main, plain_message
from therapy_timer.clinic import Clinic
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.model import ConflictStatus, check_session_record
from therapy_timer.store import DB_FILENAME

Bundle = dict[str, Any]


class Stations:
    """A treatment room and the front desk, each its own data folder, one clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.clock = FakeClock()
        self.room = tmp_path / "room"
        self.desk = tmp_path / "desk"
        self.runner = CliRunner()

    def cli(self, data: Path, *args: str, status: int = 0) -> str:
        result = self.runner.invoke(main, list(args), obj=Context(data, self.clock))
        assert result.exit_code == status, (result.output, result.exception)
        if status == 2:  # one plain line, never a traceback
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
        return {0: result.stdout, 2: result.stderr}.get(status, result.stdout + result.stderr)

    def session(self, patient: str = "JD") -> None:
        """97110 for 20 minutes, then 97140 for 10 (a timed code stops the other)."""
        self.cli(self.room, "timer", "start", "97110", "--patient", patient, "--clinician", "Kim")
        self.clock.advance(minutes=20)
        self.cli(self.room, "timer", "start", "97140", "--patient", patient, "--clinician", "Kim")
        self.clock.advance(minutes=10)
        self.cli(self.room, "session", "end", "--patient", patient)

    def bundle(self, name: str = "b.json") -> Bundle:
        path = self.tmp / name
        day = self.clock.now().astimezone().date().isoformat()
        self.cli(self.room, "export", "--date", day, "--format", "bundle", "--out", str(path))
        data: Bundle = json.loads(path.read_text())
        path.unlink()
        return data

    def write(self, bundle: Bundle | str, name: str = "in.json") -> Path:
        path = self.tmp / name
        path.write_text(bundle if isinstance(bundle, str) else json.dumps(bundle))
        return path

    def desk_rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.desk / DB_FILENAME)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def two(tmp_path: Path) -> Stations:
    stations = Stations(tmp_path)
    stations.session()
    return stations


def _desk_counts(two: Stations) -> tuple[int, int, int, int]:
    if not (two.desk / DB_FILENAME).exists():
        return (0, 0, 0, 0)
    (counts,) = two.desk_rows(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM segments),"
        " (SELECT count(*) FROM audit_log), (SELECT count(*) FROM import_conflicts)"
    )
    return counts


# -- the same session in another spelling is the same session ---------------------------------


@pytest.mark.parametrize(
    "respell",
    [str.upper, lambda i: "{" + i + "}", lambda i: i.replace("-", ""), lambda i: f"urn:uuid:{i}"],
    ids=["upper", "braces", "hex", "urn"],
)
def test_an_id_in_another_spelling_does_not_import_the_session_twice(
    two: Stations, respell: Callable[[str], str]
) -> None:
    bundle = two.bundle()
    assert two.cli(two.desk, "import", str(two.write(bundle))).startswith("added 1")
    again = copy.deepcopy(bundle)
    record = again["sessions"][0]
    record["id"] = respell(record["id"])
    for segment in record["segments"]:
        segment["id"] = str(segment["id"]).upper()
    out = two.cli(two.desk, "import", str(two.write(again, "again.json")))
    assert out.startswith("added 0, unchanged 1, conflicts 0")
    assert two.desk_rows("SELECT count(*) FROM sessions") == [(1,)]
    day = two.clock.now().astimezone().date().isoformat()
    csv_rows = two.cli(two.desk, "export", "--date", day).splitlines()
    assert len(csv_rows) == 3  # header, 97110 and 97140 once each: billed once


def test_ids_are_stored_in_one_form(two: Stations) -> None:
    bundle = two.bundle()
    original = bundle["sessions"][0]["id"]
    bundle["sessions"][0]["id"] = "{" + original.upper() + "}"
    two.cli(two.desk, "import", str(two.write(bundle)))
    assert two.desk_rows("SELECT id FROM sessions") == [(original,)]


# -- hostile fields: one plain sentence naming the file and field; nothing written -----------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Bundle], None]:
    def mutate(bundle: Bundle) -> None:
        target: Any = bundle["sessions"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(path: tuple[str | int, ...]) -> Callable[[Bundle], None]:
    def mutate(bundle: Bundle) -> None:
        target: Any = bundle["sessions"][0]
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _overlap(bundle: Bundle) -> None:
    first, second = bundle["sessions"][0]["segments"][:2]
    second["start_utc"] = first["start_utc"]  # 97140 over 97110's minutes


def _duplicate_segment(bundle: Bundle) -> None:
    segments = bundle["sessions"][0]["segments"]
    segments[1]["id"] = segments[0]["id"]


def _audit_about(other: str) -> Callable[[Bundle], None]:
    def mutate(bundle: Bundle) -> None:
        entry = copy.deepcopy(bundle["sessions"][0]["audit"][0])
        entry.update(action="session.export", entity="session", entity_id=other)
        bundle["sessions"][0]["audit"].append(entry)

    return mutate


def _untimed_minutes(minutes: Any) -> Callable[[Bundle], None]:
    def mutate(bundle: Bundle) -> None:
        session = bundle["sessions"][0]
        service = {"code": "97161", "furnished_by": "therapist", "minutes": minutes}
        session["untimed"].append({**service, "created_utc": session["closed_utc"]})

    return mutate


HOSTILE: list[tuple[str, Callable[[Bundle], None], str]] = [
    ("compact date", _set(("date_of_service",), "20261120"), "date of service"),
    ("week date", _set(("date_of_service",), "2026-W47-5"), "date of service"),
    ("naive created", _set(("created_utc",), "2025-03-10T14:00:00"), "created utc"),
    ("bad created", _set(("created_utc",), "yesterday"), "created utc"),
    ("numeric created", _set(("created_utc",), 1741615200), "created utc"),
    ("naive start", _set(("segments", 0, "start_utc"), "2025-03-10T14:00:00"), "start utc"),
    ("duplicate segment", _duplicate_segment, "appears twice"),
    ("overlap", _overlap, "overlap"),
    ("empty payer", _set(("payer_profile",), ""), "payer profile"),
    ("huge payer", _set(("payer_profile",), "P" * 10_000_000), "payer profile"),
    ("payer line break", _set(("payer_profile",), "Medicare\nEvil"), "payer profile"),
    ("clinician line break", _set(("clinician",), "Kim\r\n=1+1"), "clinician"),
    ("empty clinician", _set(("clinician",), "  "), "clinician"),
    ("audit about a local session", _audit_about("LOCAL"), "audit"),
    ("open", _set(("status",), "open"), "open session"),
    ("missing field", _drop(("amended",)), "its field 'amended' is missing"),
    ("flag of another type", _set(("amended",), "yes"), "amended is 'yes', not bool"),
    ("half a surrogate pair", _set(("clinician",), "Kim\ud800"), "clinician"),
    ("surrogate reason", _set(("audit", 0, "reason"), "typo \ud800"), "audit reason"),
    ("surrogate workstation", lambda bundle: bundle.update(workstation="\udc80"), "workstation"),
    ("infinite audit value", _set(("audit", 0, "after", "amended"), float("inf")), "Infinity"),
    # Merged, they stopped every clinic sync of the station (jsonb refuses both): a traceback.
    ("NUL in an audit value", _set(("audit", 0, "after", "clinician"), "Kim\x00"), "NUL"),
    ("surrogate audit value", _set(("audit", 0, "after", "note"), ["x", "\ud800"]), "surrogate"),
    ("surrogate audit key", _set(("audit", 0, "after", "\udc80"), 1), "audit: has a value"),
    ("NUL reason", _set(("audit", 0, "reason"), "typo\x00"), "audit reason"),
    ("huge untimed minutes", _untimed_minutes("9" * 100_000), "whole minutes"),
    ("huge role", _set(("role",), "R" * 100_000), "is not a valid Role"),
    # It read "a OT furnishes OT" (94f32ea's article, in another message).
    ("OT role in a PT session", _set(("role",), "OT"), "discipline: an OT furnishes OT"),
    ("OTA role in a PT session", _set(("role",), "OTA"), "discipline: an OTA furnishes OT"),
    ("SLP role in a PT session", _set(("role",), "SLP"), "discipline: an SLP furnishes SLP"),
    ("PT role in an OT session", _set(("discipline",), "OT"), "discipline: a PT furnishes PT"),
    ("huge furnisher", _set(("segments", 0, "furnished_by"), "T" * 100_000), "not a valid"),
]


@pytest.mark.parametrize(("name", "mutate", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bundles_are_refused_plainly_and_write_nothing(
    two: Stations, name: str, mutate: Callable[[Bundle], None], words: str
) -> None:
    bundle = two.bundle()
    mutate(bundle)
    path = two.write(bundle, "hostile.json")
    before = _desk_counts(two)
    message = two.cli(two.desk, "import", str(path), status=2)
    assert "hostile.json" in message and words in message
    assert not re.search(r"\b(Key|Type|Value|Attribute)Error\b", message)  # Python's words
    assert len(message) < 400  # a 10 MB name is not echoed back
    assert _desk_counts(two) == before


def _text_with(bundle: Bundle, key: str, raw: str) -> str:
    """The bundle's JSON text with ``key``'s value replaced by the literal ``raw`` (a number
    json.dumps could not write, such as one of 5,000 digits)."""
    bundle[key] = "<raw>"
    return json.dumps(bundle).replace('"<raw>"', raw, 1)


HOSTILE_TEXT: list[tuple[str, Callable[[Bundle], str], str]] = [
    ("number of 5,000 digits", lambda b: _text_with(b, "extra", "9" * 5000), "4,300 digits"),
    ("huge version", lambda b: _text_with(b, "version", json.dumps("v" * 100_000)), "version"),
    ("version of 4,000 digits", lambda b: _text_with(b, "version", "9" * 4000), "4001 digits"),
    ("version true", lambda b: _text_with(b, "version", "true"), "version True;"),
    ("version 1.0", lambda b: _text_with(b, "version", "1.0"), "version 1.0;"),
]


@pytest.mark.parametrize(("name", "text", "words"), HOSTILE_TEXT, ids=[h[0] for h in HOSTILE_TEXT])
def test_hostile_bundle_text_is_refused_plainly_and_writes_nothing(
    two: Stations, name: str, text: Callable[[Bundle], str], words: str
) -> None:
    path = two.write(text(two.bundle()), "hostile.json")
    before = _desk_counts(two)
    message = two.cli(two.desk, "import", str(path), status=2)
    assert "hostile.json" in message and words in message
    assert len(message) < 400  # a 100 kB version is not echoed back
    assert _desk_counts(two) == before


def test_a_bundle_saved_with_a_byte_order_mark_is_imported(two: Stations) -> None:
    """Windows Notepad starts UTF-8 with a BOM; `units --request` reads such a file too."""
    path = two.tmp / "notepad.json"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps(two.bundle()).encode())
    assert two.cli(two.desk, "import", str(path)).startswith("added 1")


# -- a file's name is said as given; a field in the user's words, whatever is on the disk ---


def test_a_file_that_is_not_there_is_named_as_given(
    two: Stations, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(two.tmp)
    # Said as 'room 2 copy: cannot be read': only a file that existed kept its name.
    message = two.cli(two.desk, "import", "room_2 copy", status=2)
    assert message.startswith("Error: room_2 copy: cannot be read"), message


def test_a_field_in_a_file_keeps_the_files_name_and_says_the_field_in_words(
    two: Stations, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(two.tmp)
    bundle = two.bundle()
    bundle["sessions"][0]["created_utc"] = "2025-03-10T14:00:00"
    two.write(bundle, "room_2 copy.json")
    message = two.cli(two.desk, "import", "room_2 copy.json", status=2)
    # Said as 'room 2 copy.json', a file of nobody's: a name with a space was never looked up.
    assert message.startswith("Error: room_2 copy.json: session 1 created utc:"), message


def test_a_field_is_said_in_words_even_where_a_file_has_its_name(
    two: Stations, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(two.tmp)
    (two.tmp / "created_utc").touch()
    refusal = InvalidInput("created_utc", "must be a moment with its time zone")
    assert plain_message(refusal) == "created utc: must be a moment with its time zone"


def test_a_bundle_cannot_append_audit_rows_about_a_local_session(two: Stations) -> None:
    """A forged ``session.export`` would hide an amendment made after the real export."""
    two.session("AB")  # the desk's own session (recorded at the room, imported first)
    bundle = two.bundle()
    two.cli(two.desk, "import", str(two.write(bundle)))
    local = bundle["sessions"][1]["id"]
    two.clock.advance(minutes=5)
    forged = two.bundle("later.json")
    forged["sessions"] = forged["sessions"][:1]
    _audit_about(local)(forged)
    forged["sessions"][0]["id"] = "{" + forged["sessions"][0]["id"] + "}"
    message = two.cli(two.desk, "import", str(two.write(forged, "forged.json")), status=2)
    assert "another session" in message
    assert two.desk_rows(
        f"SELECT count(*) FROM audit_log WHERE action = 'session.export' AND entity_id = '{local}'"
    ) == [(0,)]


def test_repeated_keys_in_a_bundle_are_refused(two: Stations) -> None:
    text = json.dumps(two.bundle())
    text = text.replace('"amended": false', '"amended": false, "amended": true', 1)
    message = two.cli(two.desk, "import", str(two.write(text)), status=2)
    assert "'amended' appears twice" in message


def test_a_leading_space_does_not_defeat_formula_neutralisation(two: Stations) -> None:
    bundle = two.bundle()
    bundle["sessions"][0]["clinician"] = " =HYPERLINK(1)"
    two.cli(two.desk, "import", str(two.write(bundle)))
    assert two.desk_rows("SELECT clinician FROM sessions") == [("=HYPERLINK(1)",)]
    day = two.clock.now().astimezone().date().isoformat()
    rows = two.cli(two.desk, "export", "--date", day).splitlines()[1:]
    assert rows and all(",'=HYPERLINK(1)" in row and ",=" not in row for row in rows)


def test_the_checker_is_the_one_a_local_session_passes(two: Stations) -> None:
    """Every session recorded here passes the import checks unchanged (one set of rules)."""
    with Clinic.open(two.room, clock=two.clock) as clinic:
        records = clinic._store.session_records([s.id for s in clinic.list_sessions()])
    for record in records:
        checked = check_session_record(record, "here")
        assert checked["id"] == record["id"]
        assert [s["id"] for s in checked["segments"]] == [s["id"] for s in record["segments"]]


def test_untimed_with_a_naive_moment_is_refused(two: Stations) -> None:
    bundle = two.bundle()
    bundle["sessions"][0]["untimed"] = [
        {"code": "97161", "minutes": 30, "furnished_by": "therapist", "created_utc": "2025-03-10"}
    ]
    message = two.cli(two.desk, "import", str(two.write(bundle)), status=2)
    assert "untimed created utc" in message


# -- conflicts: kept, every version, listed, accepted or dropped with the choice audited ------


def _version(two: Stations, bundle: Bundle, minutes: int, name: str) -> Path:
    """The bundle with its first segment ``minutes`` shorter: another version of the session."""
    changed = copy.deepcopy(bundle)
    first = changed["sessions"][0]["segments"][0]
    stop = first["stop_utc"]
    from datetime import datetime, timedelta

    first["stop_utc"] = (datetime.fromisoformat(stop) - timedelta(minutes=minutes)).isoformat()
    return two.write(changed, name)


def test_every_conflicting_version_is_kept_and_can_be_accepted_or_dropped(
    two: Stations,
) -> None:
    bundle = two.bundle()
    two.cli(two.desk, "import", str(two.write(bundle)))
    session_id = bundle["sessions"][0]["id"]
    # Two later versions from the same station: neither replaces the other, nor the session.
    first = two.cli(two.desk, "import", str(_version(two, bundle, 5, "v2.json")), status=1)
    second = two.cli(two.desk, "import", str(_version(two, bundle, 8, "v3.json")), status=1)
    assert "conflicts 1" in first and "conflicts 1" in second
    files = sorted((two.desk / "conflicts").iterdir())
    assert len(files) == 2  # one file per version, not one per station
    # The same version again is the same conflict, not a third one.
    two.cli(two.desk, "import", str(_version(two, bundle, 5, "v2-again.json")), status=1)
    listed = json.loads(two.cli(two.desk, "conflicts", "list", "--json"))
    assert [c["session_id"] for c in listed] == [session_id, session_id]
    ids = [c["id"] for c in listed]
    shown = json.loads(two.cli(two.desk, "conflicts", "show", str(ids[1])))
    assert (
        shown["session"]["segments"][0]["stop_utc"]
        != bundle["sessions"][0]["segments"][0]["stop_utc"]
    )
    # The desk's 97110 was 20 minutes: accepting the 8-minutes-shorter version bills 12.
    day = two.clock.now().astimezone().date().isoformat()
    assert ",97110,GP,1,20," in two.cli(two.desk, "export", "--date", day)
    two.cli(two.desk, "conflicts", "accept", str(ids[1]), "--reason", "the room corrected it")
    assert ",97110,GP,1,12," in two.cli(two.desk, "export", "--date", day)
    two.cli(two.desk, "conflicts", "drop", str(ids[0]), "--reason", "superseded")
    assert json.loads(two.cli(two.desk, "conflicts", "list", "--json")) == []
    every = json.loads(two.cli(two.desk, "conflicts", "list", "--all", "--json"))
    assert [c["status"] for c in every] == ["dropped", "accepted"]
    actions = two.desk_rows(
        "SELECT action, reason FROM audit_log WHERE action LIKE 'conflict.%' ORDER BY id"
    )
    assert ("conflict.accept", "the room corrected it") in actions
    assert ("conflict.drop", "superseded") in actions
    assert two.desk_rows(f"SELECT amended FROM sessions WHERE id = '{session_id}'") == [(1,)]
    # A decision is made once; a reason is needed; a bad number is one plain line.
    assert "already" in two.cli(
        two.desk, "conflicts", "drop", str(ids[1]), "--reason", "x", status=1
    )
    assert "reason" in two.cli(two.desk, "conflicts", "drop", "99", "--reason", " ", status=2)
    assert "not the number" in two.cli(two.desk, "conflicts", "show", "x1", status=2)
    assert "no kept-aside version" in two.cli(two.desk, "conflicts", "show", "42", status=2)


@pytest.mark.parametrize("kind", ["file", "link to nothing"])
def test_a_file_in_place_of_the_conflicts_folder_is_refused_before_the_merge(
    two: Stations, kind: str
) -> None:
    """The copy of a conflict was made after the merge was committed: a FileExistsError
    traceback, and a version kept aside in the database with no file beside it."""
    bundle = two.bundle()
    two.cli(two.desk, "import", str(two.write(bundle)))
    folder = two.desk / "conflicts"
    if kind == "file":
        folder.write_text("someone's notes")
    else:
        folder.symlink_to(two.tmp / "nothing")
    listed = two.cli(two.desk, "conflicts", "list", "--json")
    error = two.cli(two.desk, "import", str(_version(two, bundle, 5, "v2.json")), status=1)
    assert str(folder) in error and "Nothing was imported" in error
    assert two.cli(two.desk, "conflicts", "list", "--json") == listed
    folder.unlink()
    two.cli(two.desk, "import", str(_version(two, bundle, 5, "v2.json")), status=1)
    assert len(list(folder.iterdir())) == 1


def test_kept_versions_cannot_be_edited_or_deleted_in_the_database(two: Stations) -> None:
    bundle = two.bundle()
    two.cli(two.desk, "import", str(two.write(bundle)))
    two.cli(two.desk, "import", str(_version(two, bundle, 5, "v2.json")), status=1)
    conn = sqlite3.connect(two.desk / DB_FILENAME)
    try:
        for sql in (
            "UPDATE import_conflicts SET record_json = '{}'",
            "DELETE FROM import_conflicts",
        ):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(sql)
    finally:
        conn.close()


def test_accepting_needs_the_session_closed_here(two: Stations, tmp_path: Path) -> None:
    bundle = two.bundle()
    with Clinic.open(two.desk, clock=two.clock) as desk:
        desk.import_bundles([two.write(bundle)])
        desk.import_bundles([_version(two, bundle, 5, "v2.json")])
        (conflict,) = desk.conflicts()
        assert conflict.status is ConflictStatus.OPEN
        with pytest.raises(InvalidInput):
            desk.accept_conflict(conflict.id, "")
        with pytest.raises(InvalidOperation, match="already"):
            desk.drop_conflict(conflict.id, "no")
            desk.drop_conflict(conflict.id, "twice")
