"""How the window starts: the order of a start that makes the first paint quick (issue 13).

Both ways of opening the window (the ``therapy-timer-gui`` executable and ``therapy-timer`` with
no command) come through here before PySide6 is imported:

- the cyclic garbage collector is paused until the window's first paint: a start builds
  thousands of objects that live as long as the window (classes, enums, widgets) and almost no
  garbage, and the ~70 collections it triggered cost ~17 ms. At the first paint what the start
  built is frozen (``gc.freeze``: never scanned again, as the issue's profile suggested) and the
  collector resumes for what the window does next;
- the Qt-free modules the window needs are imported before PySide6: once PySide6 is loaded,
  its import hook (``shibokensupport.feature``) reads the source of every module imported
  after it, which cost ~50 ms. ``therapy-timer-gui`` parses its options first for the same
  reason, when it needs argparse at all (plain_options): argparse's messages go through
  gettext, which imports ``locale`` (and imports it again at each message: the hook read its
  source eleven times). The window's own import statements name those modules again after
  PySide6, so load_qt enters them in the hook's table as PySide6 loads, before the hook reads
  them once more.

This module stays Qt-free (tests/test_startup.py checks the order and the collector).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from therapy_timer import paths

_paused = False


def pause_collector() -> None:
    """Pause the cyclic garbage collector for the start (if it runs)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Give the collector back, if this module paused it: at the first paint (app.py), or when
    a start ends without one.

    The start's objects are frozen first: otherwise the first collection after the pause
    would scan them all (~20 ms after the first paint), and every full one again later.
    """
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def _load_the_qt_free_layers() -> None:
    from therapy_timer import explain  # noqa: F401
    from therapy_timer.gui import presenter  # noqa: F401  (the clinic and all below it)


def _load_pyside6() -> None:
    from therapy_timer.gui import load_qt  # noqa: F401  (before the window's imports name any)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``therapy-timer-gui`` executable; options it does not know are Qt's."""
    pause_collector()  # from here: argparse and gettext, if used, collect too
    try:
        data_dir, smoke_test, qt_args = _options(argv)
    except BaseException:  # --help, or an option refused (exit 2)
        resume_collector()
        raise
    sys.exit(run(data_dir, smoke_test=smoke_test, argv=[sys.argv[0], *qt_args]))


def _options(argv: Sequence[str] | None) -> tuple[Path | None, bool, list[str]]:
    """(--data-dir's folder or None, --smoke-test, the options left for Qt)."""
    words = list(sys.argv[1:] if argv is None else argv)
    plain = plain_options(words)
    return plain if plain is not None else parsed_options(words)


def plain_options(words: list[str]) -> tuple[Path | None, bool, list[str]] | None:
    """What argparse makes of ``words`` when they are only the window's own options
    (``paths.window_options``); None for anything else, which argparse answers (--help, a
    mistake, Qt's options). Its first parse is ~2-3 ms of a start (its messages' gettext and
    ``locale``, issue 13); tests/test_launch.py holds the two equal."""
    found = paths.window_options(words)
    # argparse refuses an empty folder and folder_refusal's, with its message.
    if found is None or found[0] == "" or (found[0] is not None and folder_refusal(found[0])):
        return None
    data_dir, smoke_test = found
    return None if data_dir is None else Path(data_dir), smoke_test, []


def folder_refusal(folder: str) -> str | None:
    """Why ``folder`` cannot be the data folder, as ``therapy-timer`` refuses it, or None: a
    file (the window said the clinic's code file inside could not be read) or a name that is
    not UTF-8 (a traceback from the store, after the folder was made)."""
    try:
        folder.encode("utf-8")
    except UnicodeEncodeError:
        readable = folder.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return f"{readable!r} is not UTF-8 text; type it again (or set the terminal to UTF-8)"
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{folder} is a file; give the data folder's path"
    return None


def parsed_options(words: list[str]) -> tuple[Path | None, bool, list[str]]:
    """``words`` through argparse, which exits 2 with its message on a mistake."""
    import argparse  # here: the ``therapy-timer`` command reaches run() without it

    def folder(text: str) -> Path:
        # "" would be the folder the program starts in: never a place for a clinic's data.
        if not text:
            raise argparse.ArgumentTypeError("it is empty; give the data folder's path")
        refused = folder_refusal(text)
        if refused is not None:
            raise argparse.ArgumentTypeError(refused)
        return Path(text)

    parser = argparse.ArgumentParser(prog="therapy-timer-gui")
    parser.add_argument(paths.DATA_DIR_OPTION, type=folder, help="folder for the database")
    parser.add_argument(
        paths.SMOKE_TEST_OPTION,
        action="store_true",
        help='show the window once, print {"painted_at": T, "ready_ms": N}, exit',
    )
    args, qt_args = parser.parse_known_args(words)
    return args.data_dir, args.smoke_test, qt_args


def run(
    data_dir: Path | None, *, smoke_test: bool = False, argv: Sequence[str] | None = None
) -> int:
    """The window (for ``therapy-timer`` with no command too); the process exit status."""
    pause_collector()
    try:
        _load_the_qt_free_layers()
        _load_pyside6()
        from therapy_timer.gui import app

        return app.run(data_dir, smoke_test=smoke_test, argv=argv)
    finally:  # a start that ended before its first paint (a folder that cannot be opened)
        resume_collector()
