"""Where files live: the data folder and the bundled resources (sole platformdirs user)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

APP_NAME = "therapy-timer"
APP_ID = "org.therapytimer.TherapyTimer"  # reverse-DNS: .desktop file, icon name, metainfo
DATA_DIR_ENV = "THERAPY_TIMER_DATA_DIR"
DATA_DIR_OPTION = "--data-dir"
SMOKE_TEST_OPTION = "--smoke-test"

# Folders are worked out as text, and pathlib is imported only by the functions that return a
# Path: with urllib.parse it is ~7 ms of a `units` command's start-up, which needs neither
# (issue 13).
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def data_dir(override: Path | str | None = None) -> Path:
    """The folder for the database, backups and clinic files: override, then env, then platform.

    Only the path: the store creates the folder, readable by the user alone (0700), because it
    holds health information.
    """
    from pathlib import Path

    return Path(data_folder(override))


def data_folder(override: Path | str | None = None) -> str:
    """``data_dir`` as text (a leading ``~`` expanded)."""
    if override is not None:
        folder = os.fspath(override)
    elif os.environ.get(DATA_DIR_ENV):
        folder = os.environ[DATA_DIR_ENV]
    else:
        # Imported here: it costs a fast command (`units --data-dir`, `--version`) ~7 ms to load.
        import platformdirs

        folder = platformdirs.user_data_dir(APP_NAME, appauthor=False)
    return os.path.expanduser(folder)


def resources_folder() -> str:
    """The bundled ``resources/`` folder, as text.

    A wheel or a PyInstaller bundle carries it inside the package; an editable install does not
    (hatchling's force-include is skipped there), so fall back to the repository's copy.
    """
    candidates = [
        os.path.join(_PACKAGE_DIR, "resources"),
        os.path.join(os.path.dirname(_PACKAGE_DIR), "resources"),
    ]
    bundle_root = getattr(sys, "_MEIPASS", None)
    if bundle_root is not None:
        candidates.insert(0, os.path.join(bundle_root, "therapy_timer", "resources"))
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"resources folder not found; looked in {', '.join(candidates)}")


def resources_dir() -> Path:
    """The bundled ``resources/`` folder (``resources_folder``)."""
    from pathlib import Path

    return Path(resources_folder())


def resource_file(name: str) -> str:
    """A file under ``resources/``, as text."""
    return os.path.join(resources_folder(), name)


def resource_path(name: str) -> Path:
    """A file under ``resources/``."""
    return resources_dir() / name


def window_options(words: Iterable[str]) -> tuple[str | None, bool] | None:
    """``(--data-dir's folder or None, --smoke-test)`` when ``words`` are the window's own
    options alone, each at most once and spelt in full (``--data-dir FOLDER`` or
    ``--data-dir=FOLDER``; the desktop file gives none); None for anything else, and for a
    folder after ``--data-dir`` that is missing or looks like an option: the command's parser
    answers those. ``--data-dir=`` gives "", which each parser treats its own way.

    Both executables open the window without their parser when this is all they are given
    (a parser costs a start milliseconds: issue 13), and test it against their parser."""
    data_dir: str | None = None
    smoke_test = False
    rest = iter(words)
    for word in rest:
        if word == SMOKE_TEST_OPTION and not smoke_test:
            smoke_test = True
        elif data_dir is None and word.startswith(f"{DATA_DIR_OPTION}="):
            data_dir = word.partition("=")[2]
        elif data_dir is None and word == DATA_DIR_OPTION:
            data_dir = next(rest, None)
            if data_dir is None or data_dir.startswith("-"):
                return None
        else:
            return None
    return data_dir, smoke_test
