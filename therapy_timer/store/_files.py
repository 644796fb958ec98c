"""The data folder's files: their names, private modes, and the list of rotating backups."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

DB_FILENAME = "therapy-timer.sqlite3"
BACKUP_DIRNAME = "backups"
FILE_MODE = 0o600
DIR_MODE = 0o700
_BACKUP_NAME = re.compile(r"^therapy-timer-(\d{8}-\d{6})Z(?:-(\d+))?\.sqlite3$")


def database_path(data_dir: Path) -> Path:
    """The database file inside a data folder."""
    return data_dir / DB_FILENAME


def backups_dir(data_dir: Path) -> Path:
    return data_dir / BACKUP_DIRNAME


def private_dir(path: Path) -> None:
    """Create ``path`` as 0700, or take group and other access away from an existing folder.

    Explicit chmod because mkdir's mode is filtered by the umask; an existing folder only loses
    bits, so a folder an administrator made read-only stays read-only (and we say so).
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(current & 0o700)
    else:
        path.chmod(DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` as 0600, or take group and other access away from an existing file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR)
        wanted = stat.S_IMODE(os.fstat(fd).st_mode) & 0o700
    else:
        wanted = FILE_MODE
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != wanted:
            os.fchmod(fd, wanted)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sort_key(path: Path) -> tuple[str, int]:
    match = _BACKUP_NAME.match(path.name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def list_backups(data_dir: Path) -> list[Path]:
    """Rotating backups in the data folder, oldest first."""
    folder = backups_dir(data_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _BACKUP_NAME.match(p.name) and p.is_file()]
    return sorted(found, key=backup_sort_key)


def latest_backup(data_dir: Path) -> Path | None:
    """The newest rotating backup, offered to the user when the database is damaged."""
    try:
        backups = list_backups(data_dir)
    except OSError:
        return None
    return backups[-1] if backups else None
