"""What a run killed mid-write (kill -9) leaves behind is removed by the next run, quietly;
never a file another live process is still writing (two processes at once is ordinary here)."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from tests.test_cli_sessions import Cli, treated
from therapy_timer.errors import InvalidInput
from therapy_timer.files import held_temporary, write_private
from therapy_timer.store import Store, database_path
from therapy_timer.store._files import backups_dir
from therapy_timer.store.backups import remove_leftovers_in, restore

STOPS_AT_FSYNC = """
import os, sys, time

def stopped(fd):
    print("writing", flush=True)
    time.sleep(600)

os.fsync = stopped  # the first fsync comes once the temporary file is written
from therapy_timer.__main__ import main
main(sys.argv[1:])
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return treated(tmp_path / "data")


@pytest.fixture
def writers() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the command in another process and return once it is writing its file."""
    started: list[subprocess.Popen[str]] = []

    def start(data: Path, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", STOPS_AT_FSYNC, "--data-dir", str(data), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        if process.stdout.readline() != "writing\n":
            process.wait()
            pytest.fail(f"the writer ended first: {process.stderr.read()}")  # type: ignore[union-attr]
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


def _kill9(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("command", ["export", "backup"])
def test_a_killed_writers_temporary_file_goes_at_the_next_run_a_live_ones_stays(
    cli: Cli, tmp_path: Path, writers: Callable[..., subprocess.Popen[str]], command: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "file"
    day = cli.clock.now().astimezone().date().isoformat()
    args = {
        "export": ["export", "--date", day, "--out", str(target)],
        "backup": ["backup", "--to", str(target)],
    }[command]
    first = writers(cli.data_dir, *args)
    killed = _names(out)
    assert killed and all(name.endswith(".partial") for name in killed)  # the backup's: two
    live = writers(cli.data_dir, *args, "--force")
    being_written = _names(out) - killed
    assert being_written
    _kill9(first)
    said = cli(*args, "--force")
    assert "partial" not in said.stdout + said.stderr  # nothing said about it
    assert _names(out) == {"file", *being_written}  # the live writer's file is still there
    _kill9(live)
    cli(*args, "--force")
    assert _names(out) == {"file"}


def test_a_killed_restores_copies_go_at_the_next_run_a_live_ones_stay(
    cli: Cli, writers: Callable[..., subprocess.Popen[str]]
) -> None:
    backups = backups_dir(cli.data_dir)
    backup = Path(cli("backup").stdout.strip())
    before = _names(backups)
    first = writers(cli.data_dir, "restore", str(backup))
    killed = _names(backups) - before
    # Its checked copy of the backup, and its copy of the database being replaced.
    assert len(killed) == 2 and any(name.startswith("restore-staging-") for name in killed)
    live = writers(cli.data_dir, "restore", str(backup))
    being_written = _names(backups) - before - killed
    assert len(being_written) == 2
    _kill9(first)
    said = cli("session", "list")  # any command tidies, quietly
    assert "partial" not in said.stdout + said.stderr and "staging" not in said.stderr
    assert _names(backups) == before | being_written
    _kill9(live)
    cli("session", "list")
    assert _names(backups) == before


def test_a_killed_copys_sqlite_journals_go_with_it(cli: Cli) -> None:
    """Killed inside SQLite's backup (not at the fsync above), a copy leaves its -journal."""
    backups = backups_dir(cli.data_dir)
    before = _names(backups)
    left = backups / ".therapy-timer-20250310-140000Z.sqlite3.abcd_123.partial"
    for name in (left.name, f"{left.name}-journal", f"{left.name}-wal"):
        (backups / name).write_bytes(b"half a copy")
    with held_temporary(backups, ".therapy-timer-20250310-150000Z.sqlite3.", ".partial") as live:
        Path(f"{live}-journal").write_bytes(b"being written")
        cli("session", "list")
        assert _names(backups) == before | {live.name, f"{live.name}-journal"}


@pytest.mark.parametrize("command", ["export", "backup"])
def test_a_folder_whose_filesystem_takes_no_locks_is_still_written(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """An NFS share without its lock daemon answers flock with ENOLCK: every export and backup
    --to there was refused ('cannot be written (No locks available)'), where it was written
    before the sweep came. It is written unheld there, as on Windows; a sweep there cannot lock
    a leftover either, so it removes none (it may be a live writer's)."""
    share = tmp_path / "share"
    share.mkdir()
    left = share / ".file.abcd_123.partial"
    left.write_bytes(b"a killed writer's, or a live one's")
    flock = fcntl.flock

    def no_locks_on_the_share(fd: int, operation: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{share}{os.sep}"):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks_on_the_share)
    target = share / "file"
    day = cli.clock.now().astimezone().date().isoformat()
    args = {
        "export": ["export", "--date", day, "--out", str(target)],
        "backup": ["backup", "--to", str(target)],
    }[command]
    cli(*args)
    assert _names(share) == {"file", left.name}


def _locks_held_here(path: Path) -> list[str]:
    """This process's POSIX locks on the file at ``path`` (type and range), from /proc/locks."""
    inode = os.stat(path).st_ino
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        ours = fields[1] == "POSIX" and fields[4] == str(os.getpid())
        if ours and int(fields[5].rsplit(":", 1)[1]) == inode:
            held.append(" ".join((fields[3], *fields[6:])))
    return held


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="reads the locks in /proc/locks")
@pytest.mark.parametrize("linked_to", ["", "-shm"])
def test_the_sweep_never_opens_a_file_sqlite_has_open_in_this_process(
    tmp_path: Path, linked_to: str
) -> None:
    """Closing any descriptor of a file drops this process's POSIX locks on it, SQLite's too:
    the sweep's own descriptor, opened to ask a leftover's flock, dropped them on a copy being
    written by this very process (a backup while the window's daily backup tidies) and on a
    live database a name in the backups folder was linked to. Another process could then write
    or reset the file under a connection that believes it holds it."""
    data = tmp_path / "data"
    with Store.open(data, clock=FakeClock()) as store:
        store.daily_backup()
        live = database_path(data)
        backups = backups_dir(data)
        os.link(f"{live}{linked_to}", backups / "restore-staging-linked.sqlite3")
        with held_temporary(
            backups, ".therapy-timer-20250310-150000Z.sqlite3.", ".partial"
        ) as copy:
            copying = sqlite3.connect(copy, isolation_level=None)
            try:
                copying.execute("CREATE TABLE t (a)")
                copying.execute("BEGIN EXCLUSIVE")
                copying.execute("INSERT INTO t VALUES (1)")
                files = (copy, Path(f"{live}{linked_to}"))
                before = [_locks_held_here(f) for f in files]
                assert all(before)
                remove_leftovers_in(data)
                assert [_locks_held_here(f) for f in files] == before
                assert {copy.name, "restore-staging-linked.sqlite3"} <= _names(backups)
                copying.execute("COMMIT")
            finally:
                copying.close()


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="reads the locks in /proc/locks")
@pytest.mark.parametrize("linked_to", ["", "-shm"])
def test_a_restore_never_opens_a_file_sqlite_has_open_in_this_process_as_a_backups_wal(
    tmp_path: Path, linked_to: str
) -> None:
    """A backup's -wal is copied with it: one linked to the live database or its -shm was
    opened and closed by a restore in the process holding them, which dropped SQLite's locks."""
    data = tmp_path / "data"
    clock = FakeClock()
    with Store.open(data, clock=clock) as store:
        backup = store.daily_backup()
        assert backup is not None
        live = Path(f"{database_path(data)}{linked_to}")
        os.link(live, f"{backup}-wal")
        before = _locks_held_here(live)
        assert before
        with pytest.raises(InvalidInput, match="-wal is a file of a database in use") as refused:
            restore(backup, data_dir=data, clock=clock)
        assert refused.value.field == "file"
        assert _locks_held_here(live) == before
        assert sorted(backups_dir(data).glob("pre-restore-*")) == []  # refused before a copy


def test_a_file_killed_between_its_making_and_its_renaming_goes_too(
    cli: Cli, tmp_path: Path
) -> None:
    """The last version made each temporary file under its name and '.new', renamed once held:
    killed in between, it left a file no sweep's names covered, for good."""
    out = tmp_path / "out"
    out.mkdir()
    backups = backups_dir(cli.data_dir)
    before_out, before_backups, before_data = _names(out), _names(backups), _names(cli.data_dir)
    left = {
        out: [".file.abcd_123.partial.new", "..file.abcd_123.partial.efgh_456.partial.new"],
        backups: [
            ".therapy-timer-20250310-140000Z.sqlite3.abcd_123.partial.new",
            ".pre-restore-20250310-140000Z.sqlite3.abcd_123.partial.new",
            "restore-staging-abcd_123.sqlite3.new",
        ],
        cli.data_dir: [".therapy-timer.sqlite3.abcd_123.partial.new"],
    }
    for folder, names in left.items():
        for name in names:
            (folder / name).write_bytes(b"killed before its rename")
    day = cli.clock.now().astimezone().date().isoformat()
    cli("export", "--date", day, "--out", str(out / "file"))
    assert _names(out) == before_out | {"file"}
    assert _names(backups) == before_backups
    assert _names(cli.data_dir) == before_data


@pytest.mark.parametrize("sweep", ["holds it", "removed it"])
def test_a_new_file_another_process_sweeps_before_it_is_held_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep: str
) -> None:
    """Another process's sweep may list a temporary file in the moment between its making and
    its flock: the writer makes another rather than write one that is gone or being removed."""
    made: list[str] = []
    sweeping: list[int] = []
    mkstemp = tempfile.mkstemp

    def swept_first(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = mkstemp(*args, **kwargs)
        made.append(name)
        if len(made) == 1:
            if sweep == "holds it":
                sweeping.append(os.open(name, os.O_RDONLY))
                fcntl.flock(sweeping[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                os.unlink(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", swept_first)
    try:
        written = write_private(tmp_path / "file", "whole")
    finally:
        for fd in sweeping:
            os.close(fd)
    assert written.read_text() == "whole"
    assert len(made) == 2
