"""--data-dir as a person may type it: hostile values get a plain message, exit 2 naming the
option, and nothing written; usable ones (``~``, spaces, a link to a folder) work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from therapy_timer.cli import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("value", ["", "afile", "to-a-file"], ids=["empty", "a file", "link"])
def test_a_data_dir_that_names_no_folder_is_refused_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    os.symlink("afile", tmp_path / "to-a-file")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, output = _run("--data-dir", value, "session", "list")
    assert code == 2, output
    assert "--data-dir" in output and "Traceback" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no database anywhere


@pytest.mark.parametrize("value", ["~/clinic data", "a folder with spaces", "link-to-folder"])
def test_a_usable_data_dir_opens_its_clinic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "link-to-folder")
    code, output = _run("--data-dir", value, "session", "list")
    assert code == 0, output
    where = tmp_path / ("home/clinic data" if value.startswith("~") else value)
    assert (where / "therapy-timer.sqlite3").exists()


def test_the_window_refuses_an_empty_data_dir_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from therapy_timer.gui import launch

    monkeypatch.chdir(tmp_path)
    opened: list[object] = []

    def run(data_dir: object, **_: object) -> int:
        opened.append(data_dir)
        return 0

    monkeypatch.setattr(launch, "run", run)
    with pytest.raises(SystemExit) as ended:
        launch.main(["--data-dir", ""])
    assert opened == []  # the window never opened on the folder it was started in
    assert ended.value.code == 2
    assert "--data-dir" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/1").is_dir(), reason="needs Linux's /proc")
def test_a_data_dir_that_cannot_be_made_is_refused_in_plain_words() -> None:
    # /proc refuses new folders to root too ("No such file or directory"): a traceback before.
    code, output = _run("--data-dir", "/proc/1/clinic", "session", "list")
    assert code == 1, output
    assert "The data folder /proc/1/clinic cannot be made (No such file" in output
    assert "Traceback" not in output and output.count("\n") == 1
