"""Where files live: the data folder and the bundled resources (sole platformdirs user)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "therapy-timer"
APP_ID = "org.therapytimer.TherapyTimer"  # reverse-DNS: .desktop file, icon name, metainfo
DATA_DIR_ENV = "THERAPY_TIMER_DATA_DIR"

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(override: Path | str | None = None) -> Path:
    """The folder for the database, backups and clinic files: override, then env, then platform.

    Only the path: the store creates the folder, readable by the user alone (0700), because it
    holds health information.
    """
    if override is not None:
        path = Path(override)
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        # Imported here: it costs a fast command (`units --data-dir`, `--version`) ~7 ms to load.
        import platformdirs

        path = platformdirs.user_data_path(APP_NAME, appauthor=False)
    return path.expanduser()


def resources_dir() -> Path:
    """The bundled ``resources/`` folder.

    A wheel or a PyInstaller bundle carries it inside the package; an editable install does not
    (hatchling's force-include is skipped there), so fall back to the repository's copy.
    """
    candidates = [_PACKAGE_DIR / "resources", _PACKAGE_DIR.parent / "resources"]
    bundle_root = getattr(sys, "_MEIPASS", None)
    if bundle_root is not None:
        candidates.insert(0, Path(bundle_root) / "therapy_timer" / "resources")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"resources folder not found; looked in {', '.join(map(str, candidates))}"
    )


def resource_path(name: str) -> Path:
    """A file under ``resources/``."""
    return resources_dir() / name
