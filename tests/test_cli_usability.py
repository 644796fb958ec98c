"""The CLI as a new user meets it: ids by prefix, local times, payers, any-case choices, fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from tests.fakes import FakeClock
from therapy_timer import explain, paths
from therapy_timer import store as st
from therapy_timer.cli import Context, main
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.contract import result_json
from therapy_timer.rules import Method, Request, evaluate


class Cli:
    def __init__(self, data_dir: Path, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.data_dir = data_dir
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data_dir, self.clock))
        assert result.exit_code == status, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def store(self) -> st.Store:
        return st.Store.open(self.data_dir, clock=self.clock)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def _closed_session(cli: Cli, patient: str, codes: list[tuple[str, int]]) -> str:
    """Run the codes one after the other for ``patient``, end the session, return its id."""
    for code, minutes in codes:
        cli("timer", "start", code, "--patient", patient)
        cli.clock.advance(minutes=minutes)
    closed = cli.json("session", "end", "--patient", patient, "--json")
    return str(closed["session"]["id"])


def _sessions(cli: Cli, count: int) -> list[str]:
    with cli.store() as store:
        ids = []
        for n in range(count):
            session = store.create_session(
                date_of_service=cli.clock.now().astimezone().date(),
                patient_ref=f"P{n}",
                clinician="Kim",
                role=Role.PT,
                discipline=Discipline.PT,
                payer_profile="Medicare",
            )
            store.close_session(session.id)
            ids.append(session.id)
    return ids


def _unique_prefix(target: str, others: list[str]) -> str:
    for length in range(1, len(target) + 1):
        if not any(o.startswith(target[:length]) for o in others if o != target):
            return target[:length]
    raise AssertionError("ids are unique")


# -- sessions by something a person can type ---------------------------------------------------


def test_show_finds_a_session_by_the_shortest_unambiguous_prefix(cli: Cli) -> None:
    ids = _sessions(cli, 6)
    for target in ids:
        prefix = _unique_prefix(target, ids)
        shown = cli.json("session", "show", prefix, "--json")
        assert shown["session"]["id"] == target
        # Typed from a printout in capitals, it is the same id.
        assert cli.json("session", "show", target[:8].upper(), "--json")["session"]["id"] == target


def test_an_ambiguous_prefix_names_every_matching_session_and_no_other(cli: Cli) -> None:
    ids = _sessions(cli, 17)  # 17 ids over 16 hex digits: two share a first character
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    matching = [i for i in ids if i.startswith(first)]
    error = cli("session", "show", first, status=2).stderr
    assert f"matches {len(matching)} sessions" in error
    for session_id in ids:
        assert (session_id[:8] in error) == (session_id in matching)
    patient = {i: f"P{n}" for n, i in enumerate(ids)}
    assert all(f"{i[:8]} {patient[i]} " in error for i in matching)
    assert "Type more of the id" in error


def test_a_prefix_is_literal_and_an_unknown_one_is_refused_plainly(cli: Cli) -> None:
    _sessions(cli, 3)
    for typed in ("%", "_", "zz", "-"):
        error = cli("session", "show", typed, status=2).stderr
        assert "no session id starts with" in error
    assert "type the session id" in cli("session", "show", " ", status=2).stderr


def test_edit_finds_a_segment_by_prefix(cli: Cli) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    segment = cli.json("session", "show", session_id[:6], "--json")["segments"][0]["id"]
    cli("session", "edit", segment[:6], "--minutes", "18", "--reason", "pedal late")
    shown = cli.json("session", "show", session_id, "--json")
    assert shown["codes"]["97110"]["minutes"] == 18
    assert (
        "no segment id starts with"
        in cli("session", "edit", "%", "--minutes", "3", "--reason", "x", status=2).stderr
    )


def test_show_names_patient_clinician_payer_and_prints_local_times(
    cli: Cli, new_york: ZoneInfo
) -> None:
    cli("timer", "start", "97110", "--patient", "MRN-4471", "--clinician", "Dana Lee")
    cli.clock.advance(minutes=20)
    session_id = cli.json("session", "end", "--json")["session"]["id"]
    text = cli("session", "show", session_id[:8]).stdout
    start = cli.clock.now() - timedelta(minutes=20)
    local = f"{start.astimezone(new_york):%H:%M:%S}-{cli.clock.now().astimezone(new_york):%H:%M:%S}"
    assert local in text
    assert f"{start:%H:%M:%S}" not in text  # 14:00 UTC is 10:00 in New York that day
    assert "Patient:    MRN-4471" in text
    assert "Clinician:  Dana Lee (PT)" in text
    assert "Payer:      Medicare (CMS total time" in text
    segments = cli.json("session", "show", session_id, "--json")["segments"]
    assert segments[0]["start_utc"] == start.astimezone(UTC).isoformat()  # JSON stays UTC


@pytest.mark.parametrize(
    ("start", "minutes", "said", "times"),
    [
        # Recorded in summer, read on any day: the header said the zone of the day it was read.
        (datetime(2025, 7, 1, 14, 0, tzinfo=UTC), 20, "EDT, UTC-0400", "10:00:00-10:20:00"),
        # Across the change of the clocks on 2 November 2025: each time says its own.
        (
            datetime(2025, 11, 2, 5, 30, tzinfo=UTC),
            40,
            "EDT, UTC-0400",
            "01:30:00 EDT-01:10:00 EST",
        ),
    ],
)
def test_show_says_the_zone_of_the_sessions_own_times(
    cli: Cli, new_york: ZoneInfo, start: datetime, minutes: int, said: str, times: str
) -> None:
    cli.clock.set(start)
    cli("timer", "start", "97110", "--patient", "MRN-4471")
    cli.clock.advance(minutes=minutes)
    session_id = cli.json("session", "end", "--json")["session"]["id"]
    text = cli("session", "show", session_id[:8]).stdout
    assert f"Segments (local time, {said});" in text
    assert f"  97110  {times}  therapist" in text


def test_list_shows_every_state(cli: Cli, tmp_path: Path) -> None:
    other = Cli(tmp_path / "room2", cli.clock)
    imported_id = _closed_session(other, "IM", [("97110", 10)])
    bundle = tmp_path / "room2.json"
    other("export", "--date", _today(cli), "--format", "bundle", "--out", str(bundle))
    cli("import", str(bundle))

    closed = _closed_session(cli, "CL", [("97110", 10)])
    amended = _closed_session(cli, "AM", [("97110", 10)])
    segment = cli.json("session", "show", amended, "--json")["segments"][0]["id"]
    cli("session", "edit", segment, "--minutes", "8", "--reason", "typo")
    cli("timer", "start", "97110", "--patient", "OP")

    listed = {row["id"]: row["state"] for row in cli.json("session", "list", "--json")}
    assert listed[closed] == ["closed"]
    assert listed[amended] == ["closed", "amended"]
    assert listed[imported_id][0] == "closed"
    assert listed[imported_id][-1].startswith("imported from ")
    open_id = next(i for i, s in listed.items() if s == ["open"])
    cli("export", "--date", _today(cli), "--out", str(tmp_path / "day.csv"), "--include-open")
    after = {row["id"]: row["state"] for row in cli.json("session", "list", "--json")}
    assert after[closed] == ["closed", "exported"]
    assert after[open_id] == ["open"]
    text = cli("session", "list").stdout
    assert f"{closed[:8]}  CL" in text
    assert "closed, amended, exported" in text

    # Room 2 corrects its session after sending it: the second version waits as a conflict.
    segment = other.json("session", "show", imported_id, "--json")["segments"][0]["id"]
    other("session", "edit", segment, "--minutes", "9", "--reason", "typo")
    again = tmp_path / "room2-again.json"
    other("export", "--date", _today(cli), "--format", "bundle", "--out", str(again))
    cli("import", str(again), status=1)
    states = {row["id"]: row["state"] for row in cli.json("session", "list", "--json")}
    assert states[imported_id][-1] == "conflict"
    assert states[closed] == ["closed", "exported"]
    assert "conflict" in cli("session", "show", imported_id).stdout.splitlines()[0]


def _today(cli: Cli) -> str:
    return cli.clock.now().astimezone().date().isoformat()


# -- --session on every command that acts on a session; status lists every patient -------------


def test_session_option_on_timer_commands(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "AB")
    cli("timer", "start", "97140", "--patient", "CD", "--clinician", "Other")
    rows = {r["patient_ref"]: r["id"] for r in cli.json("session", "list", "--json")}
    ab, cd = rows["AB"], rows["CD"]
    prefix = _unique_prefix(cd, [ab, cd])
    cli.clock.advance(minutes=10)
    assert cli("timer", "pause", "--session", prefix).stdout == "paused 97140\n"
    assert cli("timer", "resume", "--session", cd).stdout == "resumed 97140\n"
    assert cli("timer", "stop", "--session", prefix).stdout == "stopped 97140\n"
    status = cli.json("timer", "status", "--session", ab, "--json")
    assert status["session"]["patient_ref"] == "AB"
    assert status["running"][0]["code"] == "97110"
    assert cli("timer", "start", "97112", "--session", prefix).stdout == "started 97112\n"
    mismatch = cli("timer", "stop", "--session", ab, "--patient", "CD", status=2).stderr
    assert "is patient AB's, not 'CD''s" in mismatch
    cli("session", "end", "--session", prefix)
    assert "is closed" in cli("timer", "start", "97110", "--session", cd, status=1).stderr
    assert cli("untimed", "add", "97161", "--session", ab).stdout == "added 97161 to AB\n"


def test_status_without_a_name_lists_every_open_session(cli: Cli) -> None:
    assert cli("timer", "status").stdout == "No open sessions.\n"
    assert cli.json("timer", "status", "--json") == []
    cli("timer", "start", "97110", "--patient", "AB")
    cli("timer", "start", "97012", "--patient", "CD", "--clinician", "Other")
    cli.clock.advance(minutes=7)
    listed = cli.json("timer", "status", "--json")
    running = sorted(
        (s["session"]["patient_ref"], [r["code"] for r in s["running"]]) for s in listed
    )
    assert running == [("AB", ["97110"]), ("CD", ["97012"])]
    text = cli("timer", "status").stdout
    assert "AB - " in text and "CD - " in text
    assert "running 97110 7:00" in text and "running 97012 7:00" in text


# -- payer profiles -----------------------------------------------------------------------------


def test_payer_management(cli: Cli) -> None:
    seeded = cli("payer", "list").stdout.splitlines()
    assert (
        "Medicare: CMS total time (8-minute rule), CQ/CO on assistant minutes  (default)" in seeded
    )
    added = cli("payer", "add", "Acme PPO", "--method", "AMA", "--no-assistant-modifiers")
    assert (
        added.stdout
        == "added payer profile Acme PPO: AMA per code (8 minutes per code), no CQ/CO\n"
    )
    shown = cli.json("payer", "show", "acme ppo", "--json")
    assert shown == {
        "name": "Acme PPO",
        "method": "ama",
        "assistant_modifiers": False,
        "default": False,
    }
    assert "already exists" in cli("payer", "add", "ACME PPO", "--method", "cms", status=1).stderr
    cli("payer", "default", "acme ppo")
    listed = cli.json("payer", "list", "--json")
    assert [p["name"] for p in listed if p["default"]] == ["Acme PPO"]
    assert len(listed) == len(seeded) + 1

    # A new session takes the default; its units follow the per-code method, without CQ.
    cli("timer", "start", "97110", "--patient", "JD", "--by", "assistant")
    cli.clock.advance(minutes=10)
    cli("timer", "start", "97140", "--by", "assistant")
    cli.clock.advance(minutes=10)
    answer = cli.json("session", "end", "--json")
    assert answer["session"]["payer_profile"] == "Acme PPO"
    expected = result_json(
        evaluate(
            Request(
                Method.AMA,
                Discipline.PT,
                timed={"97110": 10, "97140": 10},
                assistant_minutes={"97110": 10, "97140": 10},
                assistant_modifiers=False,
                date_of_service=cli.clock.now().astimezone().date(),
            )
        )
    )
    assert answer["lines"] == expected["lines"]
    assert all("CQ" not in line["modifiers"] for line in answer["lines"])


def test_a_wrong_payer_lists_the_valid_names_and_opens_nothing(cli: Cli) -> None:
    cli("payer", "add", "Acme", "--method", "ama")
    error = cli("timer", "start", "97110", "--patient", "JD", "--payer", "Acne", status=2).stderr
    names = ", ".join(sorted(p["name"] for p in cli.json("payer", "list", "--json")))
    assert "Acme, " in names
    assert f"there is no payer profile 'Acne'; the profiles are: {names} (add one" in error
    assert cli.json("session", "list", "--json") == []
    assert names in cli("payer", "show", "nope", status=2).stderr
    assert names in cli("payer", "default", "nope", status=2).stderr
    cli("timer", "start", "97110", "--patient", "JD", "--payer", "ACME")
    assert cli.json("session", "list", "--json")[0]["payer_profile"] == "Acme"


def test_payer_help_explains_what_a_profile_decides(cli: Cli) -> None:
    text = cli("payer", "--help").stdout
    assert "8-minute rule" in text and "CQ/CO" in text and "contract" in text


# -- one spelling rule for choices --------------------------------------------------------------


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        (("--method", "AMA"), ("--method", "ama")),
        (("--method", "Cms"), ("--method", "cms")),
        (("--discipline", "ot"), ("--discipline", "OT")),
    ],
)
def test_units_choices_accept_any_case(
    cli: Cli, upper: tuple[str, str], lower: tuple[str, str]
) -> None:
    args = ("units", "97110=23", "97140=8", "--json")
    assert cli.json(*args, *upper) == cli.json(*args, *lower)


def test_method_in_any_case_answers_that_method(cli: Cli) -> None:
    answer = cli.json("units", "97110=10", "97140=10", "--method", "AMA", "--json")
    assert answer["method"] == "ama"
    assert answer["total_timed_units"] == 2  # AMA: 10 minutes per code is a unit each
    assert cli.json("units", "97110=10", "97140=10", "--json")["total_timed_units"] == 1


def test_role_by_and_format_accept_any_case(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "JD", "--role", "pta", "--by", "ASSISTANT")
    cli.clock.advance(minutes=10)
    status = cli.json("timer", "status", "--patient", "JD", "--json")
    assert status["session"]["role"] == "PTA"
    assert status["running"][0]["furnished_by"] == "assistant"
    cli("session", "end")
    result = cli("export", "--date", _today(cli), "--format", "JSON")
    assert json.loads(result.stdout)  # a JSON preview
    assert "as json to the terminal" in result.stderr
    cli("payer", "add", "X", "--method", "CMS")


def test_timer_start_refuses_a_role_other_than_the_open_sessions(cli: Cli) -> None:
    """--role was ignored when the clinician's session of the patient was open under another
    role: a foot pedal set to PTA timed 97110 in the PT session, billed GP without CQ."""
    cli("timer", "start", "97110", "--patient", "JD", "--clinician", "Ann Lee", "--role", "PT")
    cli.clock.advance(minutes=10)
    before = cli.json("timer", "status", "--patient", "JD", "--json")
    with cli.store() as store:
        audit = len(store.audit_entries())
    refused = cli(
        "timer", "start", "97140", "--patient", "JD", "--clinician", "Ann Lee", "--role", "pta",
        status=2,
    )  # fmt: skip
    session = before["session"]["id"][:8]
    assert refused.stderr == (
        f"Error: --role PTA: Ann Lee's open session {session} for patient JD is under PT;"
        " leave --role out (or give --role PT) to record in it, or end it first to start one"
        " as PTA\n"
    )
    assert refused.stdout == ""
    assert cli.json("timer", "status", "--patient", "JD", "--json") == before  # nothing recorded
    with cli.store() as store:
        assert len(store.audit_entries()) == audit
        assert len(store.list_sessions()) == 1
    # The session's own role, in any case, still records in it; so does no --role at all.
    cli("timer", "start", "97140", "--patient", "JD", "--clinician", "Ann Lee", "--role", "pt")
    cli.clock.advance(minutes=5)
    cli("timer", "start", "97530", "--patient", "JD")
    status = cli.json("timer", "status", "--patient", "JD", "--json")
    assert status["session"]["id"] == before["session"]["id"]
    assert [r["code"] for r in status["running"]] == ["97530"]
    assert set(status["codes"]) == {"97110", "97140", "97530"}


def test_a_refused_role_says_whose_and_which_day_the_open_session_is(cli: Cli) -> None:
    """A PTA's pedal (no --clinician) met Ann's PT session and was told to leave --role out,
    which records the PTA's minutes as Ann's; a session left open since yesterday was not said
    to be yesterday's."""
    cli("timer", "start", "97110", "--patient", "JD", "--clinician", "Ann Lee", "--role", "PT")
    session = cli.json("timer", "status", "--patient", "JD", "--json")["session"]["id"][:8]
    refused = cli("timer", "start", "97140", "--patient", "JD", "--role", "PTA", status=2)
    assert refused.stderr == (
        f"Error: --role PTA: Ann Lee's open session {session} for patient JD is under PT;"
        " give --clinician and your name to record in your own, leave --role out (or give"
        " --role PT) to record in it, or end it first to start one as PTA\n"
    )
    cli("timer", "stop", "--patient", "JD")
    yesterday = _today(cli)
    cli.clock.advance(minutes=24 * 60)
    refused = cli(
        "timer", "start", "97140", "--patient", "JD", "--clinician", "Ann Lee", "--role", "PTA",
        status=2,
    )  # fmt: skip
    assert f"Ann Lee's open session {session} (dated {yesterday}) for patient JD" in refused.stderr


# -- looking is not exporting --------------------------------------------------------------------


def test_a_preview_marks_nothing_and_a_file_marks_the_sessions(cli: Cli, tmp_path: Path) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    for fmt in ("csv", "json", "bundle"):
        preview = cli("export", "--date", _today(cli), "--format", fmt)
        assert preview.stderr.strip().endswith(
            f"exported 1 session(s) as {fmt} to the terminal (a preview), none marked exported"
        )
    assert cli.json("session", "show", session_id, "--json")["session"]["exported"] is False
    out = tmp_path / "day.csv"
    written = cli("export", "--date", _today(cli), "--out", str(out))
    assert written.stderr.strip().endswith(f"to {out}, 1 marked exported")
    assert cli.json("session", "show", session_id, "--json")["state"] == ["closed", "exported"]


# -- corrections ---------------------------------------------------------------------------------


def test_add_a_forgotten_segment_to_a_closed_session(cli: Cli, new_york: ZoneInfo) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])  # 10:00-10:20 local
    cli.clock.advance(minutes=60)
    added = cli(
        "session",
        "add-segment",
        session_id[:8],
        "97140",
        "--start",
        "10:20",
        "--minutes",
        "12",
        "--by",
        "Assistant",
        "--reason",
        "forgot to tap",
    )
    assert "added 97140 10:20-10:32" in added.stdout
    shown = cli.json("session", "show", session_id, "--json")
    assert shown["state"] == ["closed", "amended"]
    segment = next(s for s in shown["segments"] if s["code"] == "97140")
    begin = datetime(2025, 3, 10, 10, 20, tzinfo=new_york)
    assert segment["start_utc"] == begin.astimezone(UTC).isoformat()
    assert segment["stop_utc"] == (begin + timedelta(minutes=12)).astimezone(UTC).isoformat()
    assert segment["furnished_by"] == "assistant"
    assert shown["codes"]["97140"] == {"minutes": 12, "units": 1}
    with cli.store() as store:
        audit = store.audit_entries(entity="segment", entity_id=segment["id"])
    assert [(e.action, e.reason) for e in audit] == [("segment.add", "forgot to tap")]


def test_a_forgotten_segment_keeps_the_live_rules(cli: Cli, new_york: ZoneInfo) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])  # 10:00-10:20 local
    first = cli.json("session", "show", session_id, "--json")["segments"][0]["id"]

    def add(*extra: str, status: int) -> str:
        args = ("session", "add-segment", session_id, *extra)
        return cli(*args, status=status).stderr

    overlap = add("97140", "--start", "10:10", "--minutes", "5", "--reason", "x", status=1)
    assert "overlap treatment code 97110" in overlap and first in overlap
    future = add("97140", "--start", "10:30", "--minutes", "5", "--reason", "x", status=2)
    assert "has not happened yet" in future
    assert "--reason" in add("97140", "--start", "10:30", "--minutes", "5", status=2)
    assert "R7.9" in add(
        "97161",
        "--start",
        "09:00",
        "--minutes",
        "5",
        "--by",
        "assistant",
        "--reason",
        "x",
        status=1,
    )
    assert "unknown billing code" in add(
        "99999", "--start", "09:00", "--minutes", "5", "--reason", "x", status=2
    )
    assert "%H:%M" in add("97140", "--start", "9am", "--minutes", "5", "--reason", "x", status=2)
    assert "minutes" in add(
        "97140", "--start", "09:00", "--minutes", "0", "--reason", "x", status=2
    )
    assert cli.json("session", "show", session_id, "--json")["state"] == ["closed"]


def _three_codes(cli: Cli) -> tuple[str, list[dict[str, Any]]]:
    """Three 10-minute codes back to back, then 10 minutes before the session is closed."""
    for code in ("97110", "97140", "97112"):
        cli("timer", "start", code, "--patient", "JD")
        cli.clock.advance(minutes=10)
    cli("timer", "stop")
    cli.clock.advance(minutes=10)
    session_id = cli.json("session", "end", "--json")["session"]["id"]
    cli.clock.advance(minutes=30)
    return session_id, cli.json("session", "show", session_id, "--json")["segments"]


def test_lengthening_a_middle_segment_names_the_one_in_the_way(
    cli: Cli, new_york: ZoneInfo
) -> None:
    session_id, segments = _three_codes(cli)
    first, second = segments[0], segments[1]
    error = cli(
        "session", "edit", first["id"][:8], "--minutes", "15", "--reason", "ran on", status=1
    ).stderr
    second_start = datetime.fromisoformat(second["start_utc"]).astimezone(new_york)
    assert f"97140 (segment {second['id'][:8]}) starts at {second_start:%H:%M}" in error
    assert "--shift-later" in error and "5 min later" in error
    assert cli.json("session", "show", session_id, "--json")["segments"] == segments


def test_shift_later_moves_every_later_segment(cli: Cli) -> None:
    # Room after the last code: the moved segments still end before the session closed (a
    # correction never bills time after the close, issue 10 item 8).
    for code in ("97110", "97140", "97112"):
        cli("timer", "start", code, "--patient", "JD")
        cli.clock.advance(minutes=10)
    cli("timer", "stop", "--patient", "JD")
    cli.clock.advance(minutes=10)
    session_id = str(cli.json("session", "end", "--patient", "JD", "--json")["session"]["id"])
    cli.clock.advance(minutes=30)
    segments = cli.json("session", "show", session_id, "--json")["segments"]
    moved = cli(
        "session",
        "edit",
        segments[0]["id"],
        "--minutes",
        "15",
        "--shift-later",
        "--reason",
        "ran on",
    ).stdout
    assert "moved 97140" in moved and "moved 97112" in moved
    after = cli.json("session", "show", session_id, "--json")
    five = timedelta(minutes=5)

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text)

    assert [s["id"] for s in after["segments"]] == [s["id"] for s in segments]
    assert moment(after["segments"][0]["stop_utc"]) == moment(segments[0]["stop_utc"]) + five
    for old, new in zip(segments[1:], after["segments"][1:], strict=True):
        assert moment(new["start_utc"]) == moment(old["start_utc"]) + five
        assert moment(new["stop_utc"]) == moment(old["stop_utc"]) + five
    assert {c: v["minutes"] for c, v in after["codes"].items()} == {
        "97110": 15,
        "97140": 10,
        "97112": 10,
    }
    with cli.store() as store:
        reasons = [e.reason for e in store.audit_entries(entity="segment")]
    assert reasons.count("ran on") == 1
    assert reasons.count("ran on (moved 5 min later to make room)") == 2


def test_shift_later_keeps_every_segment_inside_the_session(cli: Cli, new_york: ZoneInfo) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 10), ("97140", 10)])
    cli.clock.advance(minutes=60)
    segments = cli.json("session", "show", session_id, "--json")["segments"]
    closed = datetime.fromisoformat(segments[1]["stop_utc"]).astimezone(new_york)
    edit = ("session", "edit", segments[0]["id"], "--minutes", "20", "--shift-later")
    error = cli(*edit, "--reason", "x", status=1).stderr
    assert f"after the session closed at {closed:%H:%M}; there are only 0 min after" in error
    assert cli.json("session", "show", session_id, "--json")["segments"] == segments

    cli("timer", "start", "97110", "--patient", "AB")
    cli.clock.advance(minutes=10)
    cli("timer", "start", "97140")
    cli.clock.advance(minutes=10)
    cli("timer", "stop")
    cli.clock.advance(minutes=2)
    shown = cli.json("timer", "status", "--patient", "AB", "--json")["session"]["id"]
    first = cli.json("session", "show", shown, "--json")["segments"][0]["id"]
    now = cli.clock.now().astimezone(new_york)
    edit = ("session", "edit", first, "--shift-later", "--reason", "x")
    error = cli(*edit, "--minutes", "15", status=1).stderr
    assert f"after now ({now:%H:%M}); there are only 2 min after the last segment" in error
    cli("session", "edit", first, "--minutes", "12", "--shift-later", "--reason", "ran on")
    codes = cli.json("session", "show", shown, "--json")["codes"]
    assert {c: v["minutes"] for c, v in codes.items()} == {"97110": 12, "97140": 10}


def test_remove_an_untimed_service_with_a_reason(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "JD")
    cli("untimed", "add", "97161", "--minutes", "30")
    cli.clock.advance(minutes=10)
    session_id = cli.json("session", "end", "--json")["session"]["id"]
    assert "--reason" in cli("untimed", "remove", "97161", "--session", session_id, status=2).stderr
    missing = cli(
        "untimed", "remove", "97530", "--session", session_id, "--reason", "x", status=2
    ).stderr
    assert "has no untimed 97530 (its untimed services: 97161)" in missing
    removed = cli(
        "untimed", "remove", "97161", "--session", session_id[:8], "--reason", "wrong patient"
    )
    assert removed.stdout == "removed 97161 from JD\n"
    shown = cli.json("session", "show", session_id, "--json")
    assert shown["untimed"] == []
    assert shown["state"] == ["closed", "amended"]
    assert "97161" not in shown["codes"]
    with cli.store() as store:
        audit = store.audit_entries(entity="untimed")
    assert [(e.action, e.reason) for e in audit][-1] == ("untimed.remove", "wrong patient")


# -- messages in the user's words ---------------------------------------------------------------


def test_an_empty_patient_is_asked_for_in_plain_words(cli: Cli) -> None:
    error = cli("timer", "start", "97110", "--patient", " ", status=2).stderr
    assert "Type the patient's reference (initials or MRN) first" in error
    assert "patient_ref" not in error
    named = cli("timer", "start", "97110", "--patient", "John Smith", status=2).stderr
    assert "'John Smith' is not a patient reference" in named
    assert "patient_ref" not in named


def test_the_note_says_no_date_only_when_none_was_given(cli: Cli) -> None:
    assert "Date of service: not given" in cli("units", "97110=30").stdout
    dated = cli("units", "97110=30", "--date", "2026-11-20").stdout
    assert "Date of service: 2026-11-20" in dated and "not given" not in dated


def test_furnished_by_values_match_the_model() -> None:
    # The --by choices are the model's values: a rename there must show up here.
    assert {f.value for f in FurnishedBy} >= {"therapist", "assistant"}


# -- the uninstall script names the folder it keeps ----------------------------------------------

INSTALL_SH = Path(__file__).resolve().parent.parent / "packaging" / "install.sh"


@pytest.mark.parametrize("override", [False, True])
def test_uninstall_names_the_data_folder_the_app_uses(tmp_path: Path, override: bool) -> None:
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ["PATH"]}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    if override:
        env[paths.DATA_DIR_ENV] = str(tmp_path / "portable data")
    # The folder the app itself would use under the same environment (platformdirs decides).
    script = "from therapy_timer import paths; print(paths.data_dir())"
    expected = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    gone = subprocess.run(
        ["bash", str(INSTALL_SH), "--uninstall"], env=env, capture_output=True, text=True
    )
    assert gone.returncode == 0, gone.stderr
    assert f"No records were found in {expected} " in gone.stdout
    Path(expected).mkdir(parents=True)
    (Path(expected) / "therapy-timer.sqlite3").write_bytes(b"records")
    kept = subprocess.run(
        ["bash", str(INSTALL_SH), "--uninstall"], env=env, capture_output=True, text=True
    )
    assert f"Your records were kept in {expected}\n" in kept.stdout
    assert (Path(expected) / "therapy-timer.sqlite3").read_bytes() == b"records"


def test_a_patient_is_found_whatever_the_case_and_two_sessions_are_listed(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "MRN-7", "--clinician", "Kim")
    cli.clock.advance(minutes=5)
    assert cli("timer", "stop", "--patient", "mrn-7").stdout == "stopped 97110\n"
    cli("timer", "start", "97140", "--patient", "mrn-7", "--clinician", "Kim")
    assert [r["patient_ref"] for r in cli.json("session", "list", "--json")] == ["MRN-7"]
    # A named clinician gets their own session of the patient, not a colleague's.
    cli("timer", "start", "97530", "--patient", "MRN-7", "--clinician", "Lee", "--role", "OT")
    assert sorted(r["clinician"] for r in cli.json("session", "list", "--json")) == ["Kim", "Lee"]
    assert cli("timer", "start", "97110", "--patient", "mrn-7", "--clinician", "Kim").stdout == (
        "stopped 97140\nstarted 97110\n"
    )
    rows = cli.json("session", "list", "--json")
    error = cli("timer", "pause", "--patient", "MRN-7", status=1).stderr
    assert "2 sessions are open for patient MRN-7" in error
    assert all(f"{r['id'][:8]} MRN-7 " in error and r["clinician"] in error for r in rows)
    assert "Name one with --session ID" in error
    lee = next(r["id"] for r in rows if r["clinician"] == "Lee")
    assert cli("timer", "pause", "--session", lee[:8]).stdout == "paused 97530\n"


def test_the_about_box_text_names_the_data_folder(tmp_path: Path) -> None:
    folder = tmp_path / "clinic data"
    text = explain.data_folder_text(folder)
    assert f"Your records are in {folder} " in text
    assert "Uninstalling the program keeps this folder" in text
    for words in ("CMS", "AMA", "8-minute rule", "CQ/CO", "add NAME --method cms|ama"):
        assert words in explain.PAYER_PROFILE_HELP


def test_a_bundle_refused_for_an_open_session_does_not_advise_include_open(
    cli: Cli, tmp_path: Path
) -> None:
    cli("timer", "start", "97110", "--patient", "OP")
    out = str(tmp_path / "room.json")
    # A bundle never carries an open session, --include-open or not: the refusal advised the
    # very option it had just been given.
    for extra in ((), ("--include-open",)):
        refused = cli("export", "--date", _today(cli), "--format", "bundle", "--out", out, *extra,
                      status=1)  # fmt: skip
        assert "1 session(s) still open: OP" in refused.stderr
        assert "--include-open" not in refused.stderr
        assert "a bundle never carries an open session" in refused.stderr
    # The other formats still say how to list it.
    refused = cli("export", "--date", _today(cli), "--out", str(tmp_path / "day.csv"), status=1)
    assert "--include-open" in refused.stderr


def test_a_data_folder_setting_not_utf_8_is_refused_in_plain_words(tmp_path: Path) -> None:
    # A traceback (UnicodeEncodeError from the store's path), after the folder was made.
    folder = os.fsdecode(os.fsencode(tmp_path) + b"/clinic\xff")
    done = CliRunner().invoke(main, ["session", "list"], env={"THERAPY_TIMER_DATA_DIR": folder})
    assert done.exit_code == 2
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert "'--data-dir': it is not UTF-8 text; type it again" in done.output
    assert list(tmp_path.iterdir()) == []
