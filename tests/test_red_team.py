"""Hostile input against the front desk's and the therapist's commands: every refusal is one
plain sentence (exit 2) naming the field, never a traceback, and nothing is half-written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.test_cli_usability import Cli, _closed_session
from therapy_timer import store as st


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def _show(cli: Cli, session_id: str) -> dict[str, object]:
    shown: dict[str, object] = cli.json("session", "show", session_id, "--json")
    return shown


def _audit_count(cli: Cli) -> int:
    with cli.store() as store:
        return len(store.audit_entries())


# -- ids typed by a person ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["session", "show", "{ID}"],
        ["session", "amend", "{ID}", "--patient", "K", "--reason", "r"],
        ["session", "edit", "{ID}", "--minutes", "3", "--reason", "r"],
        ["session", "add-segment", "{ID}", "97530", "--start", "14:40", "--minutes", "5",
         "--reason", "r"],
        ["timer", "stop", "--session", "{ID}"],
        ["untimed", "remove", "97161", "--session", "{ID}", "--reason", "r"],
    ],
)  # fmt: skip
def test_a_very_long_id_is_no_id_not_a_database_error(cli: Cli, command: list[str]) -> None:
    """SQLite refuses LIKE patterns over 50,000 bytes ('LIKE or GLOB pattern too complex')."""
    _closed_session(cli, "JD", [("97110", 20)])
    typed = "a" * 60_000
    error = cli(*[typed if word == "{ID}" else word for word in command], status=2).stderr
    assert "id starts with" in error
    assert len(error) < 300


@pytest.mark.parametrize("verb", ["show", "accept", "drop"])
def test_a_conflict_number_too_big_for_the_database_is_refused(cli: Cli, verb: str) -> None:
    args = ["conflicts", verb, "9" * 20] + ([] if verb == "show" else ["--reason", "r"])
    assert "conflict" in cli(*args, status=2).stderr


# -- arguments that are not text ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["session", "show", "\udcff"],
        ["session", "amend", "{S}", "--patient", "K", "--reason", "bad \udcff byte"],
        ["session", "amend", "{S}", "--payer", "\udcff", "--reason", "r"],
        ["payer", "add", "Acme\udcff", "--method", "cms"],
        ["timer", "start", "97110", "--session", "\udcff"],
        ["untimed", "add", "97161", "--session", "{S}", "--reason", "\udce9t\udce9"],
        ["clinic", "connect", "host=\udcff"],
    ],
)
def test_bytes_that_are_not_utf8_are_refused_naming_the_argument(
    cli: Cli, command: list[str]
) -> None:
    """A shell hands Python undecodable bytes as lone surrogates (PEP 383); SQLite and the
    audit log cannot store them."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    before = _audit_count(cli)
    args = [session_id if word == "{S}" else word for word in command]
    error = cli(*args, status=2).stderr
    assert "UTF-8" in error
    assert "\udcff" not in error
    assert _audit_count(cli) == before


def test_non_utf8_bytes_from_a_real_shell(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "therapy_timer", "--data-dir", str(tmp_path), "payer", "add",
         b"Acme\xff".decode("utf-8", "surrogateescape"), "--method", "cms"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "is not UTF-8 text" in done.stderr.splitlines()[-1]


# -- reasons kept in the audit log -------------------------------------------------------------


@pytest.mark.parametrize("reason", ["a\x00b", "line one\nline two", "esc \x1b[31m red", "x" * 5000])
def test_a_reason_is_one_bounded_line(cli: Cli, reason: str) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    before = _audit_count(cli)
    error = cli("session", "amend", session_id, "--patient", "K", "--reason", reason, status=2)
    assert "reason" in error.stderr
    assert len(error.stderr) < 300
    assert _show(cli, session_id)["session"]["patient_ref"] == "JD"  # type: ignore[index]
    assert _audit_count(cli) == before


# -- one command, one change -------------------------------------------------------------------


def test_amend_patient_and_a_wrong_payer_changes_nothing(cli: Cli) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    before = _audit_count(cli)
    error = cli(
        "session", "amend", session_id, "--patient", "NEW", "--payer", "Bogus", "--reason", "r",
        status=2,
    ).stderr  # fmt: skip
    assert "Bogus" in error
    assert _show(cli, session_id)["session"]["patient_ref"] == "JD"  # type: ignore[index]
    assert _audit_count(cli) == before


def test_amend_patient_and_payer_together_is_one_audited_change(cli: Cli) -> None:
    cli("payer", "add", "Acme", "--method", "ama")
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    before = _audit_count(cli)
    cli("session", "amend", session_id, "--patient", "NEW", "--payer", "Acme", "--reason", "mixup")
    session = _show(cli, session_id)["session"]
    assert session["patient_ref"] == "NEW" and session["payer_profile"] == "Acme"  # type: ignore[index]
    assert _audit_count(cli) == before + 1


def test_edit_code_with_minutes_that_do_not_fit_changes_nothing(cli: Cli) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20), ("97140", 15)])
    first = _show(cli, session_id)["segments"][0]["id"]  # type: ignore[index]
    before = _audit_count(cli)
    error = cli(
        "session", "edit", first, "--code", "97530", "--minutes", "50", "--reason", "r", status=1
    ).stderr
    assert "--shift-later" in error
    segment = _show(cli, session_id)["segments"][0]  # type: ignore[index]
    assert (segment["code"], segment["id"]) == ("97110", first)
    assert _audit_count(cli) == before


def test_edit_code_and_minutes_together(cli: Cli) -> None:
    session_id = _closed_session(cli, "JD", [("97110", 20), ("97140", 15)])
    first = _show(cli, session_id)["segments"][0]["id"]  # type: ignore[index]
    cli("session", "edit", first, "--code", "97530", "--minutes", "18", "--reason", "r")
    shown = _show(cli, session_id)
    assert shown["codes"]["97530"]["minutes"] == 18  # type: ignore[index]
    assert "97110" not in shown["codes"]  # type: ignore[operator]


# -- the clinic server's address ---------------------------------------------------------------


@pytest.mark.parametrize("dsn", ["", "   ", "\t", "host=db\x00.example"])
def test_an_empty_dsn_is_refused_not_taken_for_the_local_default(cli: Cli, dsn: str) -> None:
    """libpq reads an empty connection string as 'this machine, default port, my login'."""
    error = cli("clinic", "connect", dsn, status=2).stderr
    assert error.startswith("Error: DSN:")
    with cli.store() as store:
        assert not store.get_setting("clinic.server")


def test_a_long_unparsable_dsn_is_quoted_briefly(cli: Cli) -> None:
    error = cli("clinic", "connect", "x" * 100_000, status=2).stderr
    assert error.startswith("Error: DSN:")
    assert len(error) < 300


def test_a_dsn_message_never_shows_a_password(cli: Cli) -> None:
    error = cli("clinic", "connect", "password=hunter2 host=" + "x" * 200 + " =", status=2).stderr
    assert "hunter2" not in error


# -- local times a person types ----------------------------------------------------------------


@pytest.mark.usefixtures("new_york")
def test_a_forgotten_segment_at_a_time_the_clocks_skipped_is_refused(cli: Cli) -> None:
    """02:30 never happened in New York on 9 March 2025 (02:00 became 03:00); it was stored
    as 01:30-01:40, an hour away from what was typed."""
    cli.clock.set(datetime(2025, 3, 9, 12, 0, tzinfo=UTC))
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    before = _audit_count(cli)
    error = cli(
        "session", "add-segment", session_id, "97530", "--start", "02:30", "--minutes", "10",
        "--reason", "forgot", status=2,
    ).stderr  # fmt: skip
    assert "02:30" in error and "2025-03-09" in error
    assert [s["code"] for s in _show(cli, session_id)["segments"]] == ["97110"]  # type: ignore[attr-defined]
    assert _audit_count(cli) == before
    cli(
        "session", "add-segment", session_id, "97530", "--start", "03:00", "--minutes", "10",
        "--reason", "forgot",
    )  # fmt: skip
    added = [s for s in _show(cli, session_id)["segments"] if s["code"] == "97530"]  # type: ignore[attr-defined]
    assert added[0]["start_utc"] == "2025-03-09T07:00:00+00:00"  # 03:00 EDT


# -- names that look like other names ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Ac\u200bme", "\u202eemcA", "Acme\ufeff", "Me\u00addicare", "\u3164", "\u2800"]
)
def test_a_payer_name_with_invisible_characters_is_refused(cli: Cli, name: str) -> None:
    """A zero-width space or a right-to-left override makes a second 'Acme' the desk cannot
    tell from the first (or shows a name backwards)."""
    error = cli("payer", "add", name, "--method", "cms", status=2).stderr
    assert "payer" in error
    assert name not in cli("payer", "list").stdout


def test_an_amendment_that_changes_nothing_is_not_an_amendment(cli: Cli, tmp_path: Path) -> None:
    """Amending to the same patient marked an exported session amended, due again."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    cli("export", "--date", "2025-03-10", "--out", str(tmp_path / "day.csv"))
    before = _audit_count(cli)
    said = cli("session", "amend", session_id, "--patient", "JD", "--payer", "Medicare",
               "--reason", "checking").stdout  # fmt: skip
    assert "nothing changed" in said
    session = _show(cli, session_id)["session"]
    assert session["exported"] and not session["amended"]  # type: ignore[index]
    assert _audit_count(cli) == before


def test_shift_later_moves_nothing_when_the_segment_itself_is_refused(cli: Cli) -> None:
    """The later segments moved (one write each) before R7.9 refused the segment's own change."""
    cli("timer", "start", "97110", "--patient", "JD")
    cli.clock.advance(minutes=20)
    cli("timer", "start", "97140", "--patient", "JD")
    cli.clock.advance(minutes=15)
    cli("timer", "stop", "--patient", "JD")
    cli.clock.advance(minutes=20)
    session_id = cli.json("session", "end", "--patient", "JD", "--json")["session"]["id"]
    segments = _show(cli, session_id)["segments"]
    before = _audit_count(cli)
    error = cli(
        "session", "edit", segments[0]["id"], "--minutes", "25", "--shift-later",  # type: ignore[index]
        "--code", "97161", "--by", "assistant", "--reason", "r", status=1,
    ).stderr  # fmt: skip
    assert "R7.9" in error
    assert _show(cli, session_id)["segments"] == segments
    assert _audit_count(cli) == before


@pytest.mark.parametrize("verb", ["add", "remove"])
def test_untimed_with_a_session_of_another_patient_is_refused(cli: Cli, verb: str) -> None:
    """--patient was ignored beside --session (the timer commands refuse the mismatch)."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    cli("untimed", "add", "97161", "--session", session_id, "--reason", "eval")
    before = _audit_count(cli)
    error = cli(
        "untimed", verb, "97161", "--session", session_id[:8], "--patient", "KD",
        "--reason", "r", status=2,
    ).stderr  # fmt: skip
    assert "is patient JD's, not 'KD''s" in error
    assert _audit_count(cli) == before
    # The right patient (any case) is accepted; a second 97161 would be refused on its own.
    code = "97150" if verb == "add" else "97161"
    cli("untimed", verb, code, "--session", session_id[:8], "--patient", "jd", "--reason", "r")


# -- a clock put back --------------------------------------------------------------------------


def test_a_clock_put_back_is_warned_about_where_the_minutes_are_shown(cli: Cli) -> None:
    """A dead CMOS battery sets the clock to 2000 while a timer runs: the timer is held at its
    start (never counted back), so the 25 minutes shown are lost; status and end said nothing."""
    cli("timer", "start", "97110", "--patient", "AA")
    cli.clock.advance(minutes=25)
    assert "warning" not in cli("timer", "status").stdout
    cli.clock.set(datetime(2000, 1, 1, tzinfo=UTC))
    assert "clock went back" in cli("timer", "status").stdout
    assert (
        "clock went back"
        in cli.json("timer", "status", "--patient", "AA", "--json")["clock_warning"]
    )
    ended = cli("session", "end", "--patient", "AA")
    assert "warning: The computer's clock went back" in ended.stderr


@pytest.mark.usefixtures("new_york")
def test_a_forgotten_segment_at_a_time_that_happened_twice_is_refused(cli: Cli) -> None:
    """01:30 happened twice in New York on 2 November 2025; the first was taken silently."""
    cli.clock.set(datetime(2025, 11, 2, 14, 0, tzinfo=UTC))
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    error = cli(
        "session", "add-segment", session_id, "97530", "--start", "01:30", "--minutes", "10",
        "--reason", "forgot", status=2,
    ).stderr  # fmt: skip
    assert "01:30 happened twice on 2025-11-02" in error
    cli(
        "session", "add-segment", session_id, "97530", "--start", "02:30", "--minutes", "10",
        "--reason", "forgot",
    )  # fmt: skip
    added = [s for s in _show(cli, session_id)["segments"] if s["code"] == "97530"]  # type: ignore[attr-defined]
    assert [s["start_utc"] for s in added] == ["2025-11-02T07:30:00+00:00"]  # 02:30 EST


def test_a_removed_code_is_named_in_the_users_words(cli: Cli) -> None:
    """'segments.code: unknown billing code' named a database column (issue 15, item 7)."""
    from tests.test_bad_session_day import CLINIC_CODES

    cli("session", "list")
    (cli.data_dir / "codes.toml").write_text(CLINIC_CODES)
    cli("timer", "start", "97799", "--patient", "JD")
    cli.clock.advance(minutes=5)
    (cli.data_dir / "codes.toml").write_text("")
    for said in (
        cli("timer", "stop", "--patient", "JD", status=2).stderr,
        cli("timer", "status").stdout,
        cli("session", "end", "--patient", "JD").stdout,
    ):
        assert "unknown billing code '97799'" in said
        assert "segments." not in said


def test_a_clock_in_year_one_makes_one_dated_backup_not_one_per_command(tmp_path: Path) -> None:
    """strftime wrote year 1 as '1': 'therapy-timer-10102-…' was no backup name, so each
    command made another and rotation never saw them."""
    clock = FakeClock(datetime(1, 1, 2, tzinfo=UTC))
    for _ in range(3):
        with st.Store.open(tmp_path, clock=clock) as store:
            store.daily_backup()
    names = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert names == ["therapy-timer-00010102-000000Z.sqlite3"]


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(
    "moment", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]
)
@pytest.mark.parametrize(
    "command", [["session", "list"], ["timer", "start", "97110", "--patient", "AA"], ["backup"]]
)
def test_a_broken_clock_is_refused_plainly(cli: Cli, moment: datetime, command: list[str]) -> None:
    """Year 1 in New York is before datetime's first day: OverflowError tracebacks."""
    cli.clock.set(moment)
    error = cli(*command, status=1).stderr
    assert f"the computer's clock reads {moment:%Y-%m-%d}" in error
    assert not (cli.data_dir / "therapy-timer.sqlite3").exists()


# -- rows written outside Therapy Timer ----------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value", "named"),
    [
        ("segments", "start_utc", "{DAY}T14:00:00", "a time without its UTC offset"),
        ("segments", "stop_utc", "{DAY}T14:20:00", "a time without its UTC offset"),
        ("segments", "start_utc", "{DAY}T14:00:00+0x:00", "Invalid isoformat string"),
        ("sessions", "created_utc", "{DAY}T13:59:00", "a time without its UTC offset"),
        ("sessions", "closed_utc", "{DAY}T14:25:00", "a time without its UTC offset"),
    ],
)
def test_a_row_changed_outside_therapy_timer_is_named_not_a_traceback(
    cli: Cli, tmp_path: Path, table: str, column: str, value: str, named: str
) -> None:
    # A SQL tool wrote a value no Therapy Timer writes: every read of its day says which row it
    # is in one plain message (exit 1, like every other damaged-database refusal), and neither
    # the export's file nor the database is touched.
    _closed_session(cli, "JD", [("97110", 20)])
    day = cli.clock.now().astimezone().date().isoformat()
    db = st.database_path(cli.data_dir)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE {table} SET {column} = ?", [value.replace("{DAY}", day)])
    conn.close()
    before = db.read_bytes()
    out = tmp_path / "day.csv"
    for command in (
        ["session", "list", "--date", day],
        ["export", "--date", day, "--format", "csv"],
        ["export", "--date", day, "--out", str(out)],
        ["export", "--date", day, "--format", "json"],
    ):
        error = cli(*command, status=1).stderr
        assert "holds a row it cannot read" in error and named in error, error
        assert str(db) in error and error.count("\n") == 1
    assert not out.exists()
    assert db.read_bytes() == before
