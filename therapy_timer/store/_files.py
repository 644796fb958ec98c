"""The data folder's files: their names, private modes, and the list of rotating backups.

Never open a file descriptor on the database or its -wal/-shm/-journal here: closing any
descriptor of a file drops every POSIX lock this process holds on it, including SQLite's
(https://www.sqlite.org/howtocorrupt.html section 2.2). Everything below works on paths.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from therapy_timer.errors import StorageUnavailable

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


def _missing_link(path: Path) -> Path | None:
    """The first of ``path`` and its parents that is a symbolic link to nothing, if any."""
    for candidate in (path, *path.parents):
        if candidate.is_symlink() and not candidate.exists():
            return candidate
    return None


def _linked_to_nothing(link: Path) -> StorageUnavailable:
    return StorageUnavailable(
        f"The folder {link} points to {os.readlink(link)}, which is not there (a network"
        " share or removable disk that is not connected?), so nothing was read or saved."
    )


def private_dir(path: Path) -> None:
    """Create ``path`` as 0700, or take group and other access away from an existing folder.

    Explicit chmod because mkdir's mode is filtered by the umask; an existing folder only loses
    bits, so a folder an administrator made read-only stays read-only (and we say so).
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        try:
            current = os.stat(path)
        except FileNotFoundError:
            link = _missing_link(path)
            if link is None:
                raise
            raise _linked_to_nothing(link) from None
        if not stat.S_ISDIR(current.st_mode):
            raise StorageUnavailable(
                f"{path} should be a folder for Therapy Timer's data but is a file; move it away."
            ) from None
        tighten(path, current.st_mode)
    except (FileNotFoundError, NotADirectoryError) as exc:  # (no permission: read-only)
        link = _missing_link(path)
        if link is not None:
            raise _linked_to_nothing(link) from None
        raise StorageUnavailable(
            f"The data folder {path} cannot be made ({exc.strerror}), so nothing was read"
            " or saved; choose a folder that can hold one (--data-dir)."
        ) from None
    else:
        path.chmod(DIR_MODE)


def tighten(path: Path, st_mode: int, allowed: int = 0o700) -> None:
    """Take group and other access away from ``path`` by name (chmod; no file descriptor)."""
    current = stat.S_IMODE(st_mode)
    if current & ~allowed & 0o777:
        os.chmod(path, current & allowed)


def check_database_file(path: Path) -> bool:
    """Whether the database file exists; StorageUnavailable if it is not one SQLite may use.

    Refused: a folder, a pipe or device, a link to nothing, an unreadable file, and a file with
    more than one name (hard links): SQLite keeps a -wal per name, so two programs using two
    names would each write their own and damage the database. Its -wal, -shm and -journal, where
    present, must be ordinary files too: SQLite cannot open anything else there, and said only
    that the database was read-only.
    """
    for suffix in ("-wal", "-shm", "-journal"):
        companion = Path(f"{path}{suffix}")
        try:
            kind = os.lstat(companion).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(kind):
            raise StorageUnavailable(
                f"{companion} should be SQLite's journal of the Therapy Timer database but is"
                " not an ordinary file (a folder, a link or a device); move it away."
            )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        link = _missing_link(path)
        if link is not None:
            raise StorageUnavailable(
                f"{link} points to {os.readlink(link)}, which is not there (a network share or"
                " removable disk that is not connected?), so the database cannot be opened."
            ) from None
        return False
    if stat.S_ISDIR(info.st_mode):
        raise StorageUnavailable(
            f"{path} is a folder, not the Therapy Timer database file; move it away."
        )
    if not stat.S_ISREG(info.st_mode):
        raise StorageUnavailable(
            f"{path} is not an ordinary file (a pipe or a device), so it cannot be the"
            " Therapy Timer database; move it away."
        )
    if info.st_nlink > 1:
        raise StorageUnavailable(
            f"The database {path} has {info.st_nlink} names (hard links), and SQLite would keep"
            " a separate journal for each name and damage it; keep this name only (remove the"
            " other links, which `find / -samefile` lists)."
        )
    if not os.access(path, os.R_OK):
        mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
        owner = "this account, but its permissions" if mine else "another user account, which"
        raise StorageUnavailable(
            f"This user account may not read the database {path}: it belongs to {owner} forbid"
            " reading it; ask your IT support to give it back to you."
        )
    return True


def private_file(path: Path) -> None:
    """Create ``path`` as 0600, or take group and other access away from an existing file.

    Opens a descriptor: only for files no SQLite connection of this process has open (a
    backup's partial copy, a restore's staging copy), never the live database or its journals.
    """
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
