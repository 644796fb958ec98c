"""Files the app writes for people (exports, conflicts, copies): private, whole, never ours."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from therapy_timer.errors import InvalidInput, OutputRefused

if sys.platform != "win32":
    import fcntl

PRIVATE_FILE_MODE = 0o600

TEMPORARY_PART = r"[a-z0-9_]{8}"
"""The random part ``tempfile.mkstemp`` puts in a name, as a regular expression."""

PARTIAL = ".partial"

_BEFORE_HELD = r"(?:\.new)?"
"""Versions before this one made each temporary file under its name and ``.new`` and renamed it
once held: one killed in between left that name."""

_ATTEMPTS = 3

_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})
"""What flock says on a filesystem that takes no locks."""


def _describe(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else "..." + text[-77:]


_OPEN_HERE: Counter[tuple[int, int]] = Counter()
"""Files this process has open for SQLite or holds (``held_temporary``), by device and inode so
that any name of one counts: closing any descriptor of one drops SQLite's POSIX locks on it, so
the sweep never opens one (``remove_leftovers``) and a restore never copies one."""
_OPEN_HERE_LOCK = threading.Lock()


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def mark_open(paths: Iterable[Path | str]) -> tuple[tuple[int, int], ...]:
    """Count the existing ``paths`` as open in this process until ``mark_closed`` is given the
    keys returned (a name may change meanwhile: the file is what counts)."""
    keys = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            keys.append(_identity(os.stat(path)))
    with _OPEN_HERE_LOCK:
        _OPEN_HERE.update(keys)
    return tuple(keys)


def mark_closed(keys: Iterable[tuple[int, int]]) -> None:
    with _OPEN_HERE_LOCK:
        _OPEN_HERE.subtract(keys)
        for key in [k for k, n in _OPEN_HERE.items() if n <= 0]:
            del _OPEN_HERE[key]


def _open_here(info: os.stat_result) -> bool:
    with _OPEN_HERE_LOCK:
        return _OPEN_HERE[_identity(info)] > 0


def open_here(path: Path) -> bool:
    """Whether this process has the file at ``path`` open (``mark_open``): no descriptor of
    ours may touch it."""
    try:
        return _open_here(os.stat(path))
    except OSError:
        return False


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable: a renamed file is only safe once its folder is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (by stat, never opened); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_target(path: Path, *, force: bool, protected: Sequence[Path] = ()) -> Path:
    """Refuse a target the user did not mean: the app's own files, a link, a folder, a device,
    or an existing file without ``force``. Returns the absolute target."""
    target = Path(os.path.abspath(path))
    shown = _describe(path)
    folder = target.parent
    if not folder.is_dir():
        raise OutputRefused(f"{shown}: the folder {_describe(folder)} does not exist")
    real_folder = Path(os.path.realpath(folder))
    for owned in protected:
        owned_real = Path(os.path.realpath(owned))
        candidate = real_folder / target.name
        if candidate == owned_real or owned_real in candidate.parents:
            raise OutputRefused(
                f"{shown} is one of Therapy Timer's own files; choose a file outside "
                f"{_describe(owned)}"
            )
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise OutputRefused(f"{shown} cannot be checked ({exc.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputRefused(f"{shown} is a symbolic link; name the real file instead")
    if not stat.S_ISREG(info.st_mode):
        raise OutputRefused(f"{shown} is not a regular file (a folder or a device)")
    if not force:
        raise OutputRefused(f"{shown} already exists; add --force to replace it")
    return target


@contextlib.contextmanager
def private_output(
    path: Path, *, force: bool = False, protected: Sequence[Path] = (), swept: bool = False
) -> Iterator[Path]:
    """Yield a fresh private (0600) temporary file beside ``path``; on success it is fsynced
    and renamed over ``path``, on any failure it is removed: never a partial file.
    ``swept``: the caller removed the folder's leftovers already (``remove_leftovers``)."""
    target = check_target(path, force=force, protected=protected)
    if not swept:
        # A run killed mid-write (kill -9, a power cut) left its temporary file (and a
        # backup's own temporary inside it) beside the target; another process writing it now
        # holds it.
        remove_leftovers(target.parent, written_beside(re.escape(target.name)))
    with contextlib.ExitStack() as held:
        try:
            temporary = held.enter_context(held_beside(target))
        except OSError as exc:
            raise OutputRefused(f"{_describe(path)} cannot be written ({exc.strerror})") from None
        try:
            yield temporary
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(temporary, PRIVATE_FILE_MODE)
            os.replace(temporary, target)
            with contextlib.suppress(OSError):
                fsync_dir(target.parent)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise OutputRefused(
                f"{_describe(path)} could not be written: {_os_words(exc)}"
            ) from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def held_beside(target: Path) -> contextlib.AbstractContextManager[Path]:
    """``held_temporary`` for a file that takes ``target``'s name once written:
    ``.NAME.xxxxxxxx.partial`` beside it (``written_beside`` names them for the sweep)."""
    return held_temporary(target.parent, f".{target.name}.", PARTIAL)


def written_beside(name: str) -> str:
    """The names ``held_beside`` gives the temporary files of targets whose names match the
    regular expression ``name``, and of files written as one of those (backup --to copies the
    database into its export's temporary file)."""
    return rf"\.+{name}(?:\.{TEMPORARY_PART}{re.escape(PARTIAL)})+"


@contextlib.contextmanager
def held_temporary(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A new private (0600) file ``prefix``, 8 random characters, ``suffix`` in ``folder``,
    held as in use until the block ends; the block renames or removes it.

    Held by an exclusive flock on a descriptor kept open: the system lets go of it when the
    process ends, however it ends (kill -9), which is what tells ``remove_leftovers`` a dead
    writer's file from a live one's (two processes of ours at once is ordinary: the window and
    a command). Another process's sweep may find the new file in the moment before it is held:
    it then holds it itself or has removed it, and another file is made.
    Windows has no flock: there nothing is held (and ``remove_leftovers`` removes nothing); nor
    on a filesystem that takes no locks (an NFS share without its lock daemon: ENOLCK), where a
    sweep cannot lock a leftover either. The descriptor is never the database's: a swap renames
    the file to the database's name only while no connection of ours has it open.
    """
    for _ in range(_ATTEMPTS):
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        # At once: SQLite may open it within the block, and no sweep of ours may then open it.
        keys = mark_open([name])
        try:
            held = _hold(fd, name)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            mark_closed(keys)
            raise
        if held:
            break
        os.close(fd)  # the sweep holding it removes it
        mark_closed(keys)
    else:
        raise OSError(errno.EAGAIN, f"another program kept taking files made in {folder}")
    if sys.platform == "win32":  # pragma: no cover - a file held open cannot be renamed there
        os.close(fd)
        fd = -1
    try:
        yield Path(name)
    finally:
        if fd >= 0:
            os.close(fd)
        mark_closed(keys)


def _hold(fd: int, name: str) -> bool:
    """Take the flock of our new file ``name``: False if a sweep took it first."""
    if sys.platform == "win32":  # pragma: no cover - see held_temporary
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a sweep holds it
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:  # refused there, no export reached a share
            raise
        return True
    try:
        # A sweep lets go only once it has removed the file, or left it.
        return os.path.samestat(os.fstat(fd), os.lstat(name))
    except FileNotFoundError:
        return False


SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")
"""Files SQLite makes beside one it writes (a backup's temporary copy, a restore's staged one):
a leftover's go with it."""


def remove_leftovers(folder: Path, pattern: str) -> None:
    """Remove what writers killed mid-write left in ``folder``: regular files whose whole name
    matches ``pattern`` that no process holds (``held_temporary``), each with the files SQLite
    made beside it (``SQLITE_COMPANIONS``).

    Quiet and best effort: a file that cannot be removed now is left for the next time.
    """
    if sys.platform == "win32":  # pragma: no cover - nothing is held there to tell them apart
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    matching = re.compile(f"(?:{pattern}){_BEFORE_HELD}")
    for name in names:
        if matching.fullmatch(name):
            with contextlib.suppress(OSError):
                _remove_unheld(os.path.join(folder, name))


def _remove_unheld(path: str) -> None:
    if _open_here(os.lstat(path)):
        return  # ours, alive: even opening it to ask would drop SQLite's locks on it at close
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer's
        held, there = os.fstat(fd), os.lstat(path)  # still the file at that name?
        if stat.S_ISREG(held.st_mode) and os.path.samestat(held, there):
            # Its companions first: a sweep cut short leaves the file that leads to them.
            for suffix in SQLITE_COMPANIONS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
            os.unlink(path)
    finally:
        os.close(fd)


def write_private(
    path: Path,
    data: str | bytes,
    *,
    force: bool = False,
    protected: Sequence[Path] = (),
    swept: bool = False,
) -> Path:
    """Write ``data`` whole to ``path`` (see ``private_output``); returns the path written."""
    with private_output(path, force=force, protected=protected, swept=swept) as temporary:
        if isinstance(data, str):
            with temporary.open("w", encoding="utf-8", newline="") as handle:
                handle.write(data)
        else:
            temporary.write_bytes(data)
    return Path(os.path.abspath(path))


def _os_words(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only or not yours"
    return exc.strerror or str(exc)


def read_regular(path: Path, *, limit: int, what: str) -> bytes:
    """Read a regular file of at most ``limit`` bytes; anything else is a plain refusal."""
    shown = _describe(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InvalidInput(shown, f"cannot be read ({exc.strerror})", source=shown) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(shown, f"is not a regular file, so it cannot be {what}", source=shown)
    if info.st_size > limit:
        raise InvalidInput(
            shown, f"is larger than {limit // (1024 * 1024)} MiB; not {what}", source=shown
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(shown, f"cannot be read ({exc.strerror})", source=shown) from None
    if len(data) > limit:
        raise InvalidInput(
            shown, f"is larger than {limit // (1024 * 1024)} MiB; not {what}", source=shown
        )
    return data
