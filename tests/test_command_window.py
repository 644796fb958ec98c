"""``therapy-timer`` with no command opens the window without click (issue 13), and answers every
command line exactly as click did: each case runs the command (``therapy_timer.__main__``) and
click's group (the command before) in fresh processes, with the window replaced by a stand-in
that prints what it was asked, and compares status, output and errors byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.offscreen import run_offscreen
from therapy_timer.store import Store

ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import os, sys
from therapy_timer.gui import launch

def window(data_dir, *, smoke_test=False, argv=None):
    if os.environ.get("WINDOW_DOES") == "interrupt":
        raise KeyboardInterrupt
    print("window", repr(str(data_dir)), smoke_test, argv, flush=True)
    return 3

launch.run = window
sys.argv[0] = "therapy-timer"
entry, sys.argv[1:] = sys.argv[1], sys.argv[2:]
try:
    if entry == "command":
        from therapy_timer.__main__ import main
    else:
        from therapy_timer.cli import main
    main()
finally:
    print("click loaded:", "click" in sys.modules, file=sys.stderr)
"""


def _answer(
    entry: str, args: list[str], env: dict[str, str], *, stdout: int | None = None
) -> tuple[int, str, str, bool]:
    """Status, output and errors of ``entry`` given ``args``, and whether it loaded click."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, entry, *args],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        check=False,
    )
    errors = os.fsdecode(done.stderr).splitlines(keepends=True)
    assert errors and errors[-1].startswith("click loaded: "), errors
    output = "" if done.stdout is None else os.fsdecode(done.stdout)
    return done.returncode, output, "".join(errors[:-1]), errors[-1].strip().endswith("True")


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "clinic").mkdir()
    (tmp_path / "afile").write_text("")
    os.symlink("afile", tmp_path / "to-a-file")
    return {
        "clinic": str(tmp_path / "clinic"),
        "new": str(tmp_path / "not yet made"),
        "afile": str(tmp_path / "afile"),
        "link": str(tmp_path / "to-a-file"),
    }


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "THERAPY_TIMER_DATA_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"), **extra)
    return env


# (arguments, environment) with {clinic}, {new}, {afile}, {link} for the fixture's places.
WINDOW = {
    "nothing": ([], {}),
    "smoke test": (["--smoke-test"], {}),
    "data dir": (["--data-dir", "{clinic}"], {}),
    "data dir=": (["--data-dir={clinic}"], {}),
    "both": (["--smoke-test", "--data-dir", "{new}"], {}),
    "from the environment": ([], {"THERAPY_TIMER_DATA_DIR": "{clinic}"}),
    "option over the environment": (
        ["--data-dir", "{clinic}"],
        {"THERAPY_TIMER_DATA_DIR": "{afile}"},
    ),
    "empty environment": (["--smoke-test"], {"THERAPY_TIMER_DATA_DIR": ""}),
}
CLICK = {
    "empty data dir": (["--data-dir", ""], {}),
    "empty data dir=": (["--data-dir="], {}),
    "a file": (["--data-dir", "{afile}"], {}),
    "a link to a file": (["--data-dir={link}"], {}),
    "a file from the environment": ([], {"THERAPY_TIMER_DATA_DIR": "{afile}"}),
    "no value": (["--data-dir"], {}),
    "an option as the value": (["--data-dir", "--smoke-test"], {}),
    "a dash as the value": (["--data-dir", "-"], {}),
    "a value to a flag": (["--smoke-test=yes"], {}),
    "twice": (["--smoke-test", "--smoke-test"], {}),
    "two folders": (["--data-dir", "{clinic}", "--data-dir", "{new}"], {}),
    "a home folder": (["--data-dir", "~/clinic"], {}),
    "unknown option": (["--bogus"], {}),
    "help": (["--help"], {}),
    "-h": (["-h"], {}),
    "version": (["--version"], {}),
    "end of options": (["--"], {}),
    "a command": (["units", "97110=20"], {}),
    "a command after the options": (["--data-dir", "{clinic}", "units", "97110=20"], {}),
    "an unknown command": (["stopwatch"], {}),
    "not UTF-8": (["--data-dir", os.fsdecode(b"clinic-\xff")], {}),
    "shell completion": ([], {"_THERAPY_TIMER_COMPLETE": "bash_source"}),
}


def _case(
    case: tuple[list[str], dict[str, str]], places: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    args, env = case
    return [a.format(**places) for a in args], {k: v.format(**places) for k, v in env.items()}


@pytest.mark.parametrize("name", list(WINDOW) + list(CLICK))
def test_every_command_line_is_answered_as_click_answered_it(
    tmp_path: Path, places: dict[str, str], name: str
) -> None:
    args, extra = _case({**WINDOW, **CLICK}[name], places)
    env = _env(tmp_path, **extra)
    status, output, errors, click_loaded = _answer("command", args, env)
    assert (status, output, errors) == _answer("click", args, env)[:3]
    assert click_loaded == (name in CLICK)
    if name in WINDOW:
        assert output.startswith("window ")


def test_an_interrupted_start_ends_as_click_ended_it(tmp_path: Path) -> None:
    env = _env(tmp_path, WINDOW_DOES="interrupt")
    status, output, errors, click_loaded = _answer("command", [], env)
    assert (status, output, errors) == _answer("click", [], env)[:3]
    assert status == 1 and errors == "\nAborted!\n" and not click_loaded


def test_a_closed_output_ends_as_click_ended_it(tmp_path: Path) -> None:
    answers = []
    for entry in ("command", "click"):
        read, write = os.pipe()
        os.close(read)  # the window's report then meets a closed pipe
        try:
            answers.append(_answer(entry, ["--smoke-test"], _env(tmp_path), stdout=write))
        finally:
            os.close(write)
    assert answers[0][:3] == answers[1][:3]
    assert answers[0][0] == 1 and answers[0][2] == "" and not answers[0][3]


def test_the_command_opens_the_window_without_loading_click(tmp_path: Path) -> None:
    with Store.open(tmp_path, clock=FakeClock()):  # made and migrated: sqlite_utils, which
        pass  # loads click, migrates a new database, and every start but the very first is this
    script = (
        "import json, sys\n"
        "from therapy_timer.__main__ import main\n"
        "try:\n"
        "    main(['--data-dir', sys.argv[1], '--smoke-test'])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    lines = run_offscreen(script, tmp_path)
    assert "painted_at" in json.loads(lines[0])  # the window painted
    loaded = set(json.loads(lines[-1]))
    assert "therapy_timer.gui.main_window" in loaded
    assert not loaded & {"click", "therapy_timer.cli"}
