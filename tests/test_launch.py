"""therapy-timer-gui's options: the window's own, plain, without argparse, as argparse reads them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from therapy_timer.gui import launch

PLAIN = [
    [],  # the desktop file's start
    ["--smoke-test"],
    ["--data-dir", "clinic"],
    ["--data-dir=clinic"],
    ["--data-dir", "/a folder/with spaces", "--smoke-test"],
    ["--smoke-test", "--data-dir", "clinic"],
    ["--data-dir=-clinic"],  # joined, a value may start with a dash
    ["--data-dir=a=b"],
    ["--data-dir", "~/clinic"],  # no shell here: argparse takes it as it is too
]

ARGPARSE_S = [
    ["--help"],
    ["-h"],
    ["--data-dir", ""],
    ["--data-dir="],
    ["--data-dir"],
    ["--data-dir", "-clinic"],
    ["--data-dir", "-1"],
    ["--data-dir", "--smoke-test"],
    ["--data-dir", "a", "--data-dir", "b"],
    ["--smoke-test", "--smoke-test"],
    ["--smoke-test=yes"],
    ["--data", "clinic"],  # argparse's abbreviations
    ["--smoke"],
    ["-platform", "offscreen"],  # Qt's options
    ["--style=fusion", "--smoke-test"],
    ["--"],
    ["clinic"],
]


@pytest.mark.parametrize("words", PLAIN, ids=repr)
def test_the_plain_options_are_what_argparse_makes_of_them(words: list[str]) -> None:
    assert launch.plain_options(words) == launch.parsed_options(words)


def test_no_options_are_argparse_s_defaults() -> None:
    assert launch.plain_options([]) == launch.parsed_options([]) == (None, False, [])


@pytest.mark.parametrize("words", ARGPARSE_S, ids=repr)
def test_anything_else_goes_to_argparse(words: list[str]) -> None:
    assert launch.plain_options(words) is None


def test_the_plain_options_build_no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # argparse's first parse is ~2-3 ms of a start (gettext, locale: issue 13).
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("argparse was used")

    monkeypatch.setattr(argparse, "ArgumentParser", refused)
    assert launch._options([]) == (None, False, [])
    assert launch._options(["--data-dir", "clinic", "--smoke-test"]) == (Path("clinic"), True, [])


def test_a_file_is_not_a_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It opened the window, which said the clinic's code file inside could not be read.
    file = tmp_path / "notes.txt"
    file.write_text("")
    for words in (["--data-dir", str(file)], [f"--data-dir={file}", "--smoke-test"]):
        assert launch.plain_options(words) is None
        with pytest.raises(SystemExit) as ended:
            launch._options(words)
        assert ended.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --data-dir: {file} is a file; give the data folder's path" in err
    assert launch._options(["--data-dir", str(tmp_path)]) == (tmp_path, False, [])


@pytest.mark.parametrize(
    ("words", "status"),
    [(["--help"], 0), (["--data-dir"], 2), (["--data-dir", ""], 2), (["--smoke-test=yes"], 2)],
)
def test_help_and_mistakes_are_argparse_s(
    words: list[str], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        launch._options(words)
    assert ended.value.code == status
    out, err = capsys.readouterr()
    assert "usage: therapy-timer-gui" in (out if status == 0 else err)


def test_qt_s_options_are_left_for_qt() -> None:
    assert launch._options(["--data-dir", "clinic", "-platform", "offscreen"]) == (
        Path("clinic"),
        False,
        ["-platform", "offscreen"],
    )
