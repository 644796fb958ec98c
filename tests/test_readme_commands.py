"""Every command example in README.md's "Command-line jobs" block parses with today's CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from therapy_timer.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def _examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Command-line jobs\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the Command-line jobs section has no sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert all(line.startswith("therapy-timer") for line in lines), lines
    return lines


def _parse(line: str) -> list[str]:
    """Parse one example as click would run it, without running it; the command path."""
    words = shlex.split(line, comments=True)
    assert words[0] == "therapy-timer"
    path: list[str] = []
    opened: list[click.Context] = []
    try:
        ctx = main.make_context("therapy-timer", words[1:])
        opened.append(ctx)
        command: click.Command = main
        while isinstance(command, click.Group):
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                break
            name, sub, args = command.resolve_command(ctx, rest)
            assert name is not None and sub is not None
            path.append(name)
            ctx = sub.make_context(name, args, parent=ctx)
            opened.append(ctx)
            command = sub
    except click.exceptions.Exit as done:  # --version prints and exits: it parsed
        assert done.exit_code == 0
    finally:
        for context in reversed(opened):
            context.close()  # a --request file click opened while parsing
    return path


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # click opens a --request file while parsing; the example names one in the current folder.
    (tmp_path / "requests.json").write_text('{"timed": {"97110": 30}}', encoding="utf-8")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("line", _examples())
def test_readme_example_parses(line: str) -> None:
    _parse(line)


def test_a_wrong_example_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _parse("therapy-timer session edit 9c41 --minute 25 --reason x")
    with pytest.raises(click.BadParameter):
        _parse("therapy-timer session add-segment 3f2a 97140 --start 2pm --minutes 5 --reason x")


def test_the_examples_cover_the_everyday_commands() -> None:
    covered = {" ".join(_parse(line)) for line in _examples()}
    everyday = {
        "units", "timer start", "timer pause", "timer stop", "timer status", "untimed add",
        "untimed remove", "session end", "session list", "session show", "session edit",
        "session add-segment", "payer list", "payer add", "payer default", "export", "import",
        "backup", "restore",
    }  # fmt: skip
    assert everyday <= covered, everyday - covered
