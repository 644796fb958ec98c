"""The ``therapy-timer`` command (``python -m therapy_timer`` too): the window straight away when
the command line asks for nothing else, every other command line through click (cli.py).

Opening the window through click cost a start ~20 ms (click and cli.py's commands, issue 13).
A command line of the window's own options alone (``--data-dir`` and ``--smoke-test``, each
once) whose folder click's check would take as it is goes to the window without loading click.
Anything else, every mistake included, goes to click, which answers it as it always has; so
this module never words a message of its own (tests/test_command_window.py holds the two paths
equal, case by case).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from typing import TYPE_CHECKING, NoReturn

from therapy_timer import paths

if TYPE_CHECKING:
    from collections.abc import Sequence

_REWRITTEN = "~$%*?["
"""Characters click may rewrite before parsing: on Windows it expands ``~``, variables and
patterns in every word."""


def main(argv: Sequence[str] | None = None) -> None:
    """The ``therapy-timer`` executable."""
    window = _window_only(sys.argv[1:] if argv is None else list(argv))
    if window is not None:
        sys.exit(_open_window(*window))
    from therapy_timer.cli import main as command

    try:
        command(None if argv is None else list(argv))
    except OSError as exc:  # click ends a closed pipe itself (exit 1); a full output, not
        if exc.errno not in _OUTPUT_LOST:
            raise
        _output_lost(exc)


_OUTPUT_LOST = (errno.ENOSPC, errno.EDQUOT, errno.EIO)
"""What writing the command's output (a file on a full disk, /dev/full) can fail with once the
command has done its work: the store and files report their own (StorageUnavailable)."""


def _output_lost(exc: OSError) -> NoReturn:
    """Say in one line that the output could not be written, and exit 1."""
    # Python would flush the rest at exit and print "Exception ignored" with another traceback.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the process ends here)
    with contextlib.suppress(OSError):  # stderr may be on the same full disk
        print(f"Error: the output could not be written ({exc.strerror}).", file=sys.stderr)
    sys.exit(1)


def _window_only(args: list[str]) -> tuple[str | None, bool] | None:
    """``(--data-dir's value or None, --smoke-test)`` when ``args`` open the window and click
    would take them as they are; None when click should answer (a command, ``--help``, a
    mistake, a folder its check refuses or might, shell completion)."""
    window = paths.window_options(args)
    if window is None:
        return None
    data_dir, smoke_test = window
    folder = data_dir if data_dir is not None else os.environ.get(paths.DATA_DIR_ENV)
    if folder is not None and not _a_folder_click_takes(folder, optional=data_dir is None):
        return None
    if not all(_plain(word) for word in args):
        return None
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return None
    return data_dir, smoke_test


def _plain(word: str) -> bool:
    """UTF-8 text that click would pass on unchanged."""
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(char in word for char in _REWRITTEN)


def _a_folder_click_takes(folder: str, *, optional: bool) -> bool:
    """What cli._DataFolder accepts, or stricter: a folder that does not exist yet or a readable
    one. An empty variable is as good as none to click; an empty option is refused."""
    if not folder:
        return optional
    if not _plain(folder):
        return False
    try:
        found = os.stat(folder)
    except OSError:
        return True
    return stat.S_ISDIR(found.st_mode) and os.access(folder, os.R_OK)


def _open_window(data_dir: str | None, smoke_test: bool) -> int:
    """The window's exit status, ending an interrupted start as click ends a command."""
    from therapy_timer.gui import launch

    try:
        return launch.run(paths.data_dir(data_dir), smoke_test=smoke_test)
    except (EOFError, KeyboardInterrupt):
        print("\nAborted!", file=sys.stderr)
    except OSError as exc:  # a closed pipe: click exits 1 and says nothing
        if exc.errno != errno.EPIPE:
            raise
    return 1


if __name__ == "__main__":
    main()
