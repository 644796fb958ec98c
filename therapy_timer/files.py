"""Files the app writes for people (exports, conflicts, copies): private, whole, never ours."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from therapy_timer.errors import InvalidInput, OutputRefused

PRIVATE_FILE_MODE = 0o600


def _describe(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else "..." + text[-77:]


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
    path: Path, *, force: bool = False, protected: Sequence[Path] = ()
) -> Iterator[Path]:
    """Yield a fresh private (0600) temporary file beside ``path``; on success it is fsynced
    and renamed over ``path``, on any failure it is removed: never a partial file."""
    target = check_target(path, force=force, protected=protected)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise OutputRefused(f"{_describe(path)} cannot be written ({exc.strerror})") from None
    os.close(fd)  # a temporary file of our own, never the database
    temporary = Path(name)
    try:
        yield temporary
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, target)
        with contextlib.suppress(OSError):
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputRefused(f"{_describe(path)} could not be written: {_os_words(exc)}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_private(
    path: Path, data: str | bytes, *, force: bool = False, protected: Sequence[Path] = ()
) -> Path:
    """Write ``data`` whole to ``path`` (see ``private_output``); returns the path written."""
    with private_output(path, force=force, protected=protected) as temporary:
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
        raise InvalidInput(shown, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(shown, f"is not a regular file, so it cannot be {what}")
    if info.st_size > limit:
        raise InvalidInput(shown, f"is larger than {limit // (1024 * 1024)} MiB; not {what}")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(shown, f"cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise InvalidInput(shown, f"is larger than {limit // (1024 * 1024)} MiB; not {what}")
    return data
