"""The `units` command: human form and the JSON contract, through click's CliRunner."""

from __future__ import annotations

import atexit
import gc
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from therapy_timer import contract
from therapy_timer.cli import main
from therapy_timer.contract import answer_batch


@pytest.fixture
def run(tmp_path: Path) -> CliRunner:
    return CliRunner(env={"THERAPY_TIMER_DATA_DIR": str(tmp_path)})


def test_human_form_prints_lines_warnings_and_note(run: CliRunner) -> None:
    result = run.invoke(
        main,
        [
            "units",
            "97110=33",
            "97140=7",
            "--untimed",
            "97161",
            "--method",
            "cms",
            "--discipline",
            "PT",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "97110-GP         2 unit(s)" in result.output
    assert "97140-GP         1 unit(s)" in result.output
    assert "[R9.3]" in result.output
    assert "Total timed code treatment minutes: 40" in result.output


def test_json_single_request_from_file(run: CliRunner, tmp_path: Path) -> None:
    request = {
        "method": "cms",
        "discipline": "PT",
        "date_of_service": "2026-11-20",
        "timed": {"97110": 36, "97140": 30},
        "assistant_minutes": {"97110": 23},
        "untimed": ["97161"],
        "untimed_minutes": {"97161": 30},
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    result = run.invoke(main, ["units", "--request", str(path), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["method"] == "cms"
    assert (answer["total_timed_minutes"], answer["total_timed_units"]) == (66, 4)
    assert answer["total_treatment_minutes"] == 96
    assert answer["codes"] == {
        "97110": {"minutes": 36, "units": 2},
        "97140": {"minutes": 30, "units": 2},
        "97161": {"minutes": 30, "units": 1},
    }
    assert answer["lines"] == [
        {"code": "97110", "units": 1, "modifiers": ["GP", "CQ"]},
        {"code": "97110", "units": 1, "modifiers": ["GP"]},
        {"code": "97140", "units": 2, "modifiers": ["GP"]},
        {"code": "97161", "units": 1, "modifiers": ["GP"]},
    ]
    assert answer["alternatives"] == []
    assert {w["rule"] for w in answer["warnings"]} == {"R9.3"}
    assert answer["note"].startswith("Date of service: 2026-11-20\n")


def test_json_array_answers_in_order_with_errors_in_place(run: CliRunner) -> None:
    batch = [
        {"method": "cms", "discipline": "PT", "timed": {"97112": 20, "97110": 20}},
        {"method": "cms", "discipline": "PT", "timed": {"97110": -5}},
        {"method": "ama", "discipline": "OT", "timed": {"97530": 8, "97535": 8}},
        {"method": "weekly", "discipline": "PT", "timed": {}},
    ]
    result = run.invoke(main, ["units", "--request", "-", "--json"], input=json.dumps(batch))
    assert result.exit_code == 2
    answers = json.loads(result.stdout)
    assert len(answers) == 4
    assert answers[0]["alternatives"] == [{"97110": 1, "97112": 2}]
    assert "timed.97110" in answers[1]["error"] and "negative" in answers[1]["error"]
    assert answers[2]["total_timed_units"] == 2
    assert "method" in answers[3]["error"]


def test_a_batch_is_written_in_pieces_and_its_caches_left_to_the_process_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written whole, a large batch's answer text was copied twice more (joined, then encoded)
    and the interpreter's last collection scanned the rules' caches: both cost the process
    time that answering in-process does not (issue 13)."""
    batch = [
        {"method": "cms", "discipline": "PT", "timed": {"97110": n % 40, "97140": n % 23}}
        for n in range(2500)
    ]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch))
    writes: list[int] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(len(text))
            return super().write(text)

    out, registered = Recorder(), list[Callable[[], object]]()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(atexit, "register", registered.append)
    args = ["--data-dir", str(tmp_path), "units", "--request", str(path), "--json"]
    main.main(args, standalone_mode=False)
    assert out.getvalue() == json.dumps(answer_batch(batch)) + "\n"
    assert max(writes) < len(out.getvalue()) / 2
    assert registered == [gc.freeze]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"method": "cms", "discipline": "PT", "timed": {"99999": 10}}', "timed.99999"),
        ('{"method": "cms", "discipline": "PT", "timed": {"97110": 1.5}}', "timed.97110"),
        (
            '{"method": "cms", "discipline": "PT", "timed": {"97110": 10}, "assistant_minutes": {"97110": 12}}',
            "assistant_minutes.97110",
        ),
        ('{"method": "per-visit", "discipline": "PT", "timed": {}}', "method"),
        (
            '{"method": "cms", "discipline": "PT", "timed": {}, "date_of_service": "22/11/2026"}',
            "date_of_service",
        ),
        ('{"method": "cms", "discipline": "PT", "timd": {}}', "timd"),
        ('{"method": "cms", "discipline": "PT", "timed": {"97110": 10}', "not valid JSON"),
    ],
)
def test_bad_input_exits_2_naming_the_field(run: CliRunner, payload: str, field: str) -> None:
    result = run.invoke(main, ["units", "--request", "-", "--json"], input=payload)
    assert result.exit_code == 2
    assert field in result.stderr
    assert result.stdout == ""


def test_human_form_bad_minutes_exit_2(run: CliRunner) -> None:
    result = run.invoke(main, ["units", "97110=abc"])
    assert result.exit_code == 2
    assert "97110" in result.stderr


def test_clinic_codes_extend_the_catalogue(run: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "codes.toml").write_text(
        '[[code]]\ncode = "97799"\nkind = "untimed"\ndescription = "Clinic special"\ndisciplines = ["PT"]\n'
    )
    result = run.invoke(main, ["units", "--untimed", "97799", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lines"] == [
        {"code": "97799", "units": 1, "modifiers": ["GP"]}
    ]


def test_a_clinics_mue_is_warned_about_and_a_bad_one_refused(
    run: CliRunner, tmp_path: Path
) -> None:
    without = run.invoke(main, ["units", "97110=53", "--json"])
    assert [w["rule"] for w in json.loads(without.stdout)["warnings"]] == []
    codes = tmp_path / "codes.toml"
    codes.write_text('[[code]]\ncode = "97110"\nmue = 3\n')
    result = run.invoke(main, ["units", "97110=53", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["lines"] == [{"code": "97110", "units": 4, "modifiers": ["GP"]}]  # not capped
    (warning,) = answer["warnings"]
    assert (warning["rule"], warning["severity"], warning["gist"]) == (
        "R9.4",
        "act",
        "Over the MUE",
    )
    assert "97110: 4 units" in warning["message"] and "(MUE) of 3 " in warning["message"]
    codes.write_text('[[code]]\ncode = "97110"\nmue = 0\n')
    assert_refused(
        run.invoke(main, ["units", "97110=53"]),
        f"{codes}, line 3, code 97110, mue",
        "positive whole number",
    )


def test_version(run: CliRunner) -> None:
    from therapy_timer import __version__

    result = run.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


# Hostile input ("Records that cannot be lost", items 10 and 13): exit 2, one plain line.


def assert_refused(result: Any, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 240, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["units", "97110=36", "97110=5"],
        ["units", "97110=36", "--assistant", "97110=3", "--assistant", "97110=4"],
        ["units", "97110=36", " 97110=5"],
        ["units", "--untimed", "97161", "--untimed", "97161=30"],
    ],
)
def test_a_code_repeated_on_the_command_line_is_refused(run: CliRunner, args: list[str]) -> None:
    assert_refused(run.invoke(main, args), "97110" if "97110=36" in args else "97161", "twice")


def test_command_line_numbers_that_are_not_minutes(run: CliRunner) -> None:
    assert_refused(run.invoke(main, ["units", "97110=" + "9" * 5000]), "97110", "whole number")
    assert_refused(run.invoke(main, ["units", "97110=" + "9" * 4000 + "x"]), "97110")
    assert_refused(run.invoke(main, ["units", "9" * 3000 + "=5"]), "not a billing code")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (
            b'{"method": "cms", "discipline": "PT", "timed": {"97110": 36, "97110": 5}}',
            ("timed.97110", "twice"),
        ),
        (b'{"method": "cms", "discipline": "PT", "timed": {"97110": 3\xff}}', ("request", "UTF-8")),
        (b"[" * 100_000 + b"]" * 100_000, ("request", "deeper")),
        (
            b'{"method": "cms", "discipline": "PT", "timed": {"97110": ' + b"7" * 5000 + b"}}",
            ("request", "4,300"),
        ),
        (b'{"method": "cms", "discipline": "PT", "timed": {"97110": NaN}}', ("timed.97110",)),
        (b'{"method": "cms", "discipline": "PT", "timed": {"97110": 1e999}}', ("timed.97110",)),
    ],
)
def test_hostile_request_files_exit_2_with_one_plain_line(
    run: CliRunner, payload: bytes, words: tuple[str, ...]
) -> None:
    assert_refused(run.invoke(main, ["units", "--request", "-", "--json"], input=payload), *words)


def test_a_named_request_file_is_named(run: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "day.json"
    path.write_bytes(b"\xfe\xff{}")
    assert_refused(run.invoke(main, ["units", "--request", str(path), "--json"]), "day.json")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["97110=1441"], "CODE=MINUTES 97110: 1441 minutes"),
        (["99999=5"], "CODE=MINUTES 99999: unknown billing code"),
        (["97110=3", "--assistant", "97110=5"], "--assistant 97110: assistant minutes (5)"),
        (["--untimed", "97161=-3"], "--untimed 97161: minutes cannot be negative"),
        (["--untimed", "97110"], "--untimed: 97110 is a timed code"),
        (["97110=10", "--date", "2026-13-01"], "--date: must be a date"),
    ],
)
def test_a_command_line_refusal_names_the_option_typed(
    run: CliRunner, args: list[str], said: str
) -> None:
    """They named the JSON contract's fields ('assistant_minutes.97110', 'untimed[0]'), which
    the person typing --assistant never saw; a request file still gets the contract's names."""
    for form in ([], ["--json"]):
        assert_refused(run.invoke(main, ["units", *args, *form]), f"Error: {said}")


def test_an_empty_date_is_refused_not_taken_for_none(run: CliRunner) -> None:
    """`--date "$DAY"` with DAY unset answered as if no date were given (R7's CQ/CO depends on
    the date of service) and the note said "not given"."""
    assert_refused(run.invoke(main, ["units", "97110=10", "--date", ""]), "date", "YYYY-MM-DD")
    assert_refused(run.invoke(main, ["units", "97110=10", "--date", "", "--json"]), "date")


def test_a_request_over_the_size_limit_is_refused_unread(
    run: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read whole, ``--request /dev/zero`` (or an endless pipe) ran until a MemoryError
    traceback, taking the machine's memory first; only the limit plus one byte is read."""
    monkeypatch.setattr(contract, "MAX_REQUEST_BYTES", 1000)
    request = b'{"method": "cms", "discipline": "PT"}'
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (1001 - len(request)) + request)
    assert_refused(run.invoke(main, ["units", "--request", str(path), "--json"]), "big.json")
    piped = run.invoke(main, ["units", "--request", "-", "--json"], input=path.read_bytes())
    assert_refused(piped, "request: larger than")
    assert_refused(run.invoke(main, ["units", "--request", "/dev/zero"]), "/dev/zero")
    path.write_bytes(b" " * (1000 - len(request)) + request)
    assert run.invoke(main, ["units", "--request", str(path), "--json"]).exit_code == 0


def test_batch_with_a_repeated_key_answers_the_item_in_place(run: CliRunner) -> None:
    batch = (
        b'[{"method": "cms", "discipline": "PT", "timed": {"97110": 8}},'
        b' {"method": "cms", "discipline": "PT", "timed": {"97110": 8, "97110": 30}}]'
    )
    result = run.invoke(main, ["units", "--request", "-", "--json"], input=batch)
    assert result.exit_code == 2
    answers = json.loads(result.stdout)
    assert answers[0]["total_timed_units"] == 1
    assert answers[1] == {"error": answers[1]["error"]}
    assert answers[1]["error"].startswith("[1] timed.97110") and "twice" in answers[1]["error"]


def test_warnings_in_json_carry_severity_and_gist(run: CliRunner) -> None:
    result = run.invoke(main, ["units", "97112=20", "97110=20", "--json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert [(w["rule"], w["severity"]) for w in warnings] == [("R2.8", "info")]
    assert warnings[0]["gist"] and warnings[0]["message"]


def test_assistant_untimed_on_the_command_line_answers_as_the_request_does(
    run: CliRunner,
) -> None:
    """The request's "assistant_untimed" list (7040eb8) had no option: a PTA's traction set up
    without minutes could be answered only through --request."""
    args = ["97110=30", "--untimed", "97012", "--untimed", "97161", "--date", "2026-11-20"]
    request = {
        "method": "cms",
        "discipline": "PT",
        "timed": {"97110": 30},
        "untimed": ["97012", "97161"],
        "date_of_service": "2026-11-20",
        "assistant_untimed": ["97012"],
    }
    answered = run.invoke(main, ["units", "--request", "-", "--json"], input=json.dumps(request))
    assert answered.exit_code == 0, answered.output
    typed = run.invoke(main, ["units", *args, "--assistant-untimed", "97012", "--json"])
    assert typed.exit_code == 0, typed.output
    assert json.loads(typed.stdout) == json.loads(answered.stdout)
    assert {"code": "97012", "units": 1, "modifiers": ["GP", "CQ"]} in json.loads(typed.stdout)[
        "lines"
    ]
    human = run.invoke(main, ["units", *args, "--assistant-untimed", "97012"])
    assert "97012-GP-CQ      1 unit(s)" in human.stdout


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["99999"], "--assistant-untimed: unknown billing code '99999'"),
        (["XYZ"], "--assistant-untimed: 'XYZ' is not a billing code"),
        ([""], "--assistant-untimed: '' is not a billing code"),
        (["97110"], "--assistant-untimed: 97110 is not listed under untimed"),
        (["97012", "97012"], "--assistant-untimed: 97012 is listed twice"),
        (["97012", "97012 "], "--assistant-untimed: 97012 is listed twice"),
        (["97012=10"], "--assistant-untimed: expected a code alone, got '97012=10'"),
    ],
)
def test_a_hostile_assistant_untimed_is_refused_naming_the_option(
    run: CliRunner, given: list[str], said: str
) -> None:
    args = ["units", "97110=30", "--untimed", "97012"]
    for code in given:
        args += ["--assistant-untimed", code]
    for form in ([], ["--json"]):
        assert_refused(run.invoke(main, [*args, *form]), f"Error: {said}")
    request = ["units", "--request", "-", "--assistant-untimed", "97012"]
    assert_refused(run.invoke(main, request, input="{}"), "--request: give either")
