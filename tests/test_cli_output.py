"""Files people ask for: written whole and private, never over the clinic's own, nothing marked
exported unless the file is really there (records issue, item 2)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_sessions import Cli
from therapy_timer.store import database_path


@pytest.fixture
def day(tmp_path: Path) -> tuple[Cli, str]:
    cli = Cli(tmp_path / "data")
    cli("timer", "start", "97110", "--patient", "JD")
    cli.clock.advance(minutes=23)
    cli("session", "end")
    return cli, cli.clock.now().astimezone().date().isoformat()


def exported(cli: Cli, day: str) -> bool:
    (row,) = cli.json("session", "list", "--date", day, "--json")
    return bool(row["exported"])


def own_files(cli: Cli) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for p in sorted(cli.data_dir.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_an_export_onto_the_database_is_refused_and_destroys_nothing(
    day: tuple[Cli, str],
) -> None:
    cli, date = day
    target = database_path(cli.data_dir)
    before = target.read_bytes()
    for fmt in ("csv", "json", "bundle"):
        result = cli(
            "export", "--date", date, "--format", fmt, "--out", str(target), "--force", status=2
        )
        assert "one of Therapy Timer's own files" in result.stderr
    assert target.read_bytes() == before
    assert not exported(cli, date)
    backup = Path(cli("backup").stdout.strip())
    copy = backup.read_bytes()
    cli("export", "--date", date, "--out", str(backup), "--force", status=2)
    cli("backup", "--to", str(backup), "--force", status=2)
    assert backup.read_bytes() == copy


def test_an_existing_file_needs_force_and_a_link_is_refused(
    day: tuple[Cli, str], tmp_path: Path
) -> None:
    cli, date = day
    target = tmp_path / "day.csv"
    target.write_text("someone's spreadsheet")
    result = cli("export", "--date", date, "--out", str(target), status=2)
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_text() == "someone's spreadsheet" and not exported(cli, date)
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    assert "symbolic link" in cli("export", "--date", date, "--out", str(link), status=2).stderr
    assert not (tmp_path / "elsewhere.csv").exists()
    cli("export", "--date", date, "--out", str(target), "--force")
    assert target.read_text(encoding="utf-8-sig").startswith("date_of_service")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert exported(cli, date)


@pytest.mark.parametrize(
    ("where", "words"),
    [
        (lambda tmp: tmp / "missing" / "day.csv", "does not exist"),
        (lambda tmp: Path("/dev/full"), "not a regular file"),
        (lambda tmp: tmp, "not a regular file"),
    ],
    ids=["missing folder", "/dev/full", "a folder"],
)
def test_a_failed_write_leaves_nothing_and_marks_nothing(
    day: tuple[Cli, str], tmp_path: Path, where: object, words: str
) -> None:
    cli, date = day
    target = where(tmp_path)  # type: ignore[operator]
    before = sorted(os.listdir(tmp_path))
    result = cli("export", "--date", date, "--out", str(target), "--force", status=2)
    assert words in result.stderr and "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == before
    assert not exported(cli, date)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_a_plain_refusal(day: tuple[Cli, str], tmp_path: Path) -> None:
    cli, date = day
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = cli("export", "--date", date, "--out", str(folder / "d.csv"), status=2)
    finally:
        folder.chmod(0o700)
    assert "cannot be written" in result.stderr and not os.listdir(folder)


def test_a_preview_marks_nothing_and_every_format_says_what_it_wrote(
    day: tuple[Cli, str], tmp_path: Path
) -> None:
    cli, date = day
    for fmt in ("csv", "json", "bundle"):
        result = cli("export", "--date", date, "--format", fmt)
        assert "1 session(s)" in result.stderr and "preview" in result.stderr
    assert not exported(cli, date)
    bundle = tmp_path / "b.json"
    result = cli("export", "--date", date, "--format", "BUNDLE", "--out", str(bundle))
    assert f"1 session(s) as bundle to {bundle}" in result.stderr
    assert json.loads(bundle.read_text())["sessions"][0]["patient_ref"] == "JD"
    result = cli("export", "--date", date, "--mark-exported")
    assert "1 marked exported" in result.stderr and exported(cli, date)


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "folder"])
def test_import_reads_only_regular_files(tmp_path: Path, special: str) -> None:
    cli = Cli(tmp_path / "desk")
    if special == "fifo":
        path = tmp_path / "pipe.json"
        os.mkfifo(path)
    elif special == "folder":
        path = tmp_path
    else:
        path = Path(special)
    result = cli("import", str(path), status=2)
    assert "not a regular file" in result.stderr


def test_a_full_disk_during_the_write_leaves_no_partial_file(
    day: tuple[Cli, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    cli, date = day

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "out"
    out.mkdir()
    result = cli("export", "--date", date, "--out", str(out / "d.csv"), status=2)
    assert "the disk is full" in result.stderr
    assert os.listdir(out) == []
    monkeypatch.undo()
    assert not exported(cli, date)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [["units", "97110=23"], ["units", "--request", "{batch}", "--json"], ["session", "list"]],
    ids=["one answer", "a batch in pieces", "session list"],
)
def test_output_onto_a_full_disk_ends_in_one_plain_line(tmp_path: Path, args: list[str]) -> None:
    # Every command's standard output onto a full device ended in a traceback.
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"method": "cms", "timed": {"97110": 23}}] * 3000))
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "therapy_timer", "--data-dir", str(tmp_path / "data")]
            + [arg.format(batch=batch) for arg in args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr == "Error: the output could not be written (No space left on device).\n"
