"""Hostile words a person or a script types on the command line (digits of other scripts, empty
values, look-alike names, options that change nothing): one plain refusal (exit 2) naming the
option, never a traceback, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_usability import Cli, _closed_session
from tests.test_red_team import _audit_count, _show


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


# -- numbers typed by a person -----------------------------------------------------------------

NOT_DIGITS = ["\u0665", "\uff15", "1_0", "+5", " 5"]
"""Minutes int() reads (an Arabic-Indic five, a fullwidth five, '1_0' is 10) but nobody types."""


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize("typed", NOT_DIGITS)
@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["session", "edit", "{SEG}", "--minutes", "{N}", "--reason", "r"], "--minutes"),
        (["session", "add-segment", "{ID}", "97140", "--start", "10:20", "--minutes", "{N}",
          "--reason", "r"], "--minutes"),
        (["untimed", "add", "97161", "--minutes", "{N}", "--session", "{ID}", "--reason", "r"],
         "--minutes"),
        (["units", "97110={N}"], "CODE=MINUTES 97110"),
        (["units", "97110=20", "--assistant", "97110={N}"], "--assistant 97110"),
        (["units", "--untimed", "97161={N}"], "--untimed 97161"),
    ],
)  # fmt: skip
def test_minutes_are_read_from_the_digits_0_to_9_alone(
    cli: Cli, command: list[str], named: str, typed: str
) -> None:
    """int() reads '\u0665' as 5: a pasted character became minutes nobody typed. The same
    command with '5' works, so it is the digits that are refused."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])  # 10:00-10:20 local
    cli.clock.advance(minutes=60)
    segment = str(_show(cli, session_id)["segments"][0]["id"])  # type: ignore[index]
    before = _audit_count(cli)

    def words(minutes: str) -> list[str]:
        fill = {"{ID}": session_id, "{SEG}": segment}
        return [fill.get(w, w).replace("{N}", minutes) for w in command]

    error = cli(*words(typed), status=2).stderr
    assert named in error
    assert repr(typed) in error
    assert _audit_count(cli) == before
    cli(*words("5"))


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["session", "list", "--date", "{D}"], "--date"),
        (["export", "--date", "{D}"], "--date"),
        (["export", "--date", "2025-03-10", "--to", "{D}"], "--to"),
        (["session", "add-segment", "{ID}", "97140", "--start", "{T}", "--minutes", "5",
          "--reason", "r"], "--start"),
    ],
)  # fmt: skip
def test_dates_and_times_are_read_from_the_digits_0_to_9_alone(
    cli: Cli, command: list[str], named: str
) -> None:
    """strptime's pattern takes other scripts' digits in places: an Arabic-Indic year was read
    as 2025 and '1\u0660:2\u0660' as 10:20."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])  # 10:00-10:20 local
    cli.clock.advance(minutes=60)
    before = _audit_count(cli)

    def words(day: str, moment: str) -> list[str]:
        fill = {"{ID}": session_id, "{D}": day, "{T}": moment}
        return [fill.get(w, w) for w in command]

    error = cli(*words("\u0662\u0660\u0662\u0665-03-10", "1\u0660:2\u0660"), status=2).stderr
    assert named in error
    assert "digits 0-9" in error
    assert _audit_count(cli) == before
    cli(*words("2025-03-10", "10:20"))


@pytest.mark.parametrize("extra", [[], ["--shift-later"]])
def test_an_edit_that_names_nothing_to_change_says_so(cli: Cli, extra: list[str]) -> None:
    """It printed 'changed segment …' and changed nothing, the reason never checked."""
    session_id = _closed_session(cli, "JD", [("97110", 20)])
    segment = str(_show(cli, session_id)["segments"][0]["id"])  # type: ignore[index]
    before = _show(cli, session_id), _audit_count(cli)
    error = cli("session", "edit", segment, *extra, "--reason", "r", status=2).stderr
    assert "--minutes, --code or --by" in error
    assert (_show(cli, session_id), _audit_count(cli)) == before


@pytest.mark.parametrize("typed", ["mrn-7", " Mrn-7 "])
def test_untimed_finds_the_patient_whatever_the_case_as_the_timers_do(cli: Cli, typed: str) -> None:
    """untimed add and remove compared the reference as typed: 'mrn-7' found no open session
    of MRN-7, which timer stop --patient mrn-7 finds."""
    cli("timer", "start", "97110", "--patient", "MRN-7")
    assert cli("untimed", "add", "97161", "--patient", typed).stdout == "added 97161 to MRN-7\n"
    removed = cli("untimed", "remove", "97161", "--patient", typed, "--reason", "wrong one")
    assert removed.stdout == "removed 97161 from MRN-7\n"


def test_untimed_with_two_clinicians_of_a_patient_open_says_to_name_the_session(
    cli: Cli,
) -> None:
    """It said to name one with --patient, the option already given."""
    cli("timer", "start", "97110", "--patient", "MRN-7", "--clinician", "Kim")
    cli("timer", "start", "97530", "--patient", "MRN-7", "--clinician", "Lee", "--role", "OT")
    error = cli("untimed", "add", "97161", "--patient", "MRN-7", status=1).stderr
    assert "2 sessions are open for patient MRN-7" in error and "--session ID" in error


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["timer", "start", "97110", "--patient", "JD", "--clinician", ""], "clinician"),
        (["timer", "start", "97110", "--patient", "JD", "--payer", ""], "payer"),
        (["timer", "stop", "--patient", ""], "patient's reference"),
        (["timer", "status", "--patient", ""], "patient's reference"),
        (["untimed", "add", "97161", "--patient", ""], "patient's reference"),
        (["export", "--date", "2025-03-10", "--clinician", ""], "--clinician"),
    ],
)
def test_an_empty_option_is_refused_not_taken_for_one_not_given(
    cli: Cli, command: list[str], named: str
) -> None:
    """`--payer "$PAYER"` with PAYER unset opened the session under the default payer (billed
    another way), an empty --clinician under the login, and an empty --clinician exported no
    one's days; an empty --patient was 'no open session for ' (exit 1)."""
    cli("timer", "start", "97530", "--patient", "AB")
    before = cli.json("session", "list", "--json"), _audit_count(cli)
    assert named in cli(*command, status=2).stderr
    assert (cli.json("session", "list", "--json"), _audit_count(cli)) == before


@pytest.mark.parametrize(
    "name",
    [
        "\uff2dedicare",
        "\uff2d\uff25\uff24ICARE",
        "MEDICARE",
        # Shown as nothing (a combining grapheme joiner, a variation selector, a Hangul filler):
        # each made a second Medicare, as 90f20ac found for a clinician's name.
        "Medi\u034fcare",
        "Medicare\ufe0f",
        "Medicare\u3164",
    ],
)
def test_a_payer_name_that_looks_like_a_profile_is_that_profile(cli: Cli, name: str) -> None:
    """A fullwidth M made a second profile, billed AMA, that every list shows as Medicare."""
    error = cli("payer", "add", name, "--method", "ama", status=1).stderr
    assert "payer profile Medicare already exists" in error
    assert cli("payer", "show", name).stdout.startswith("Medicare  (default)\n")
    assert [p["name"] for p in cli.json("payer", "list", "--json")] == [
        "Commercial (per-code)",
        "Medicare",
    ]
