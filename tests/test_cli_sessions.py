"""The timer/session/untimed/backup commands on a temporary database with a fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.fakes import FakeClock
from therapy_timer.cli import Context, main
from therapy_timer.codes import Discipline
from therapy_timer.contract import result_json
from therapy_timer.rules import Method, Request, evaluate


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.clock = FakeClock()
        self.data_dir = data_dir
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data_dir, self.clock))
        assert result.exit_code == status, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)


def treated(data_dir: Path) -> Cli:
    """The command line over ``data_dir`` once JD's 23 minutes of 97110 are recorded and closed."""
    cli = Cli(data_dir)
    cli("timer", "start", "97110", "--patient", "JD")
    cli.clock.advance(minutes=23)
    cli("session", "end")
    return cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_a_whole_session_from_the_command_line(cli: Cli) -> None:
    assert (
        cli("timer", "start", "97110", "--patient", "JD", "--by", "assistant").stdout
        == "started 97110\n"
    )
    cli.clock.advance(minutes=23)
    cli("timer", "start", "97110", "--by", "therapist")
    cli.clock.advance(minutes=13)
    assert cli("timer", "start", "97140").stdout == "stopped 97110\nstarted 97140\n"
    cli.clock.advance(minutes=10)
    assert cli("timer", "pause").stdout == "paused 97140\n"
    cli.clock.advance(minutes=5)  # the interruption is not treatment time
    cli("timer", "resume")
    cli.clock.advance(minutes=20)
    cli("untimed", "add", "97161", "--minutes", "30")

    # Unnamed, status lists every open session; named, it is that session's object.
    assert [s["session"]["patient_ref"] for s in cli.json("timer", "status", "--json")] == ["JD"]
    status = cli.json("timer", "status", "--patient", "JD", "--json")
    assert status["state"] == "running"
    assert status["running"][0]["code"] == "97140"
    assert status["codes"]["97110"] == {"minutes": 36, "assistant_minutes": 23}
    assert status["codes"]["97140"]["minutes"] == 30

    answer = cli.json("session", "end", "--json")
    expected = result_json(
        evaluate(
            Request(
                Method.CMS,
                Discipline.PT,
                timed={"97110": 36, "97140": 30},
                assistant_minutes={"97110": 23},
                untimed=("97161",),
                untimed_minutes={"97161": 30},
                date_of_service=cli.clock.now().astimezone().date(),
            )
        )
    )
    assert answer["session"]["status"] == "closed"
    for key in ("codes", "lines", "total_timed_units", "total_treatment_minutes", "alternatives"):
        assert answer[key] == expected[key]

    listed = cli.json("session", "list", "--json")
    assert [(row["patient_ref"], row["status"], row["total_timed_units"]) for row in listed] == [
        ("JD", "closed", 4)
    ]
    shown = cli.json("session", "show", listed[0]["id"], "--json")
    assert [s["code"] for s in shown["segments"]] == ["97110", "97110", "97140", "97140"]
    assert shown["untimed"] == [{"code": "97161", "minutes": 30, "furnished_by": "therapist"}]


def test_errors_are_plain_and_change_nothing(cli: Cli) -> None:
    assert "no open session" in cli("timer", "stop", status=1).stderr
    assert "99999" in cli("timer", "start", "99999", "--patient", "JD", status=2).stderr
    assert cli.json("session", "list", "--json") == []  # no session was opened for the typo
    cli("timer", "start", "97110", "--patient", "AB")
    # Another clinician: one clinician's one-on-one time for CD would stop AB's (#12).
    cli("timer", "start", "97110", "--patient", "CD", "--clinician", "Other")
    assert "Name one with --patient REF or --session ID" in cli("timer", "stop", status=1).stderr
    assert "is timed" in cli("untimed", "add", "97110", "--patient", "AB", status=2).stderr
    assert cli("timer", "stop", "--patient", "AB").stdout == "stopped 97110\n"


def test_backup_and_restore(cli: Cli, tmp_path: Path) -> None:
    cli("timer", "start", "97110", "--patient", "JD")
    copy = tmp_path / "copy.sqlite3"
    assert cli("backup", "--to", str(copy)).stdout.strip() == str(copy)
    cli("session", "end")
    cli("restore", str(copy))
    assert cli.json("timer", "status", "--patient", "JD", "--json")["running"][0]["code"] == "97110"
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(b"not a database at all" * 100)
    assert "Error" in cli("restore", str(bogus), status=1).stderr
    assert cli.json("timer", "status", "--patient", "JD", "--json")["state"] == "running"


def test_editing_a_closed_session_needs_a_reason_and_marks_it_amended(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "JD")
    # 30 minutes recorded, 25 furnished: a correction shortens (one cannot bill time after the
    # session closed, issue 10 item 8; that is tested in test_corrections_room.py).
    cli.clock.advance(minutes=30)
    cli("session", "end")
    session_id = cli.json("session", "list", "--json")[0]["id"]
    segment = cli.json("session", "show", session_id, "--json")["segments"][0]["id"]
    assert "--reason" in cli("session", "edit", segment, "--minutes", "25", status=2).stderr
    assert (
        "minutes"
        in cli("session", "edit", segment, "--minutes", "-5", "--reason", "typo", status=2).stderr
    )
    assert (
        "99999"
        in cli("session", "edit", segment, "--code", "99999", "--reason", "x", status=2).stderr
    )
    cli(
        "session",
        "edit",
        segment,
        "--minutes",
        "25",
        "--by",
        "assistant",
        "--reason",
        "pedal missed the stop",
    )
    shown = cli.json("session", "show", session_id, "--json")
    assert shown["session"]["amended"] is True
    assert shown["codes"]["97110"] == {"minutes": 25, "units": 2}
    assert shown["lines"] == [{"code": "97110", "units": 2, "modifiers": ["GP", "CQ"]}]
    assert "Amended after the session was closed" in shown["note"]


def test_the_first_command_of_the_day_makes_the_daily_backup(cli: Cli) -> None:
    backups = cli.data_dir / "backups"
    cli("timer", "start", "97110", "--patient", "JD")
    assert len(list(backups.iterdir())) == 1  # made before the first write of the day
    cli("timer", "stop")
    assert len(list(backups.iterdir())) == 1  # once a day
    cli.clock.advance(minutes=24 * 60)
    cli("timer", "status")
    assert len(list(backups.iterdir())) == 2
    assert all(p.stat().st_mode & 0o077 == 0 for p in backups.iterdir())


def test_a_daily_backup_that_fails_is_said_after_the_commands_answer(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most commands print once the database is closed, after the backup: a backups folder on a
    full disk turned every status and list into the error alone, the answer lost."""
    from therapy_timer.clinic import Clinic
    from therapy_timer.errors import DiskFull

    def full(self: Clinic) -> None:
        raise DiskFull("Today's backup could not be made in backups (No space left on device).")

    monkeypatch.setattr(Clinic, "daily_backup", full)
    assert cli("timer", "start", "97110", "--patient", "JD", status=1).stdout == "started 97110\n"
    cli.clock.advance(minutes=9)
    status = cli("timer", "status", status=1)
    assert "running 97110 9:00" in status.stdout
    assert status.stderr.count("\n") == 1 and "No space left on device" in status.stderr
    assert cli("session", "list", "--json", status=1).stdout.startswith("[")


def test_a_damaged_database_is_reported_with_the_latest_backup(cli: Cli) -> None:
    cli("timer", "start", "97110", "--patient", "JD")
    cli("timer", "stop")
    cli.clock.advance(minutes=24 * 60)  # tomorrow's first command checks integrity again
    database = cli.data_dir / "therapy-timer.sqlite3"
    raw = bytearray(database.read_bytes())
    raw[4096:8192] = b"\x00garbage" * 512  # smash the second page
    database.write_bytes(bytes(raw))
    for name in ("therapy-timer.sqlite3-wal", "therapy-timer.sqlite3-shm"):
        (cli.data_dir / name).unlink(missing_ok=True)
    result = cli("timer", "status", status=1)
    assert "Traceback" not in result.stderr
    assert "backup" in result.stderr.lower()
