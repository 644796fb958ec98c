"""PySide6 loaded for a window start, its import hook told that what came before it is Qt-free.

Importing PySide6 replaces Python's ``__import__`` with a hook (shiboken's ``__feature__``
support: ``from __feature__ import snake_case``). At every import statement run after it, the
hook looks up the module imported in ``pyside_feature_dict``, and for a module not yet there
reads its whole source (``inspect.getsource``) to find out whether it names PySide6
(PYSIDE-2029). A window start runs the window's import statements after PySide6, and they name
modules loaded long before it: the hook read the source of ~25 of them (``clinic.py``'s 200 KB,
``typing``, ``datetime``, ...), ~4 ms of a start (issue 13). A module loaded before PySide6
cannot have selected a feature (``from __feature__ import`` works only through the hook), so
each is entered as the hook's "ignore this module" (-1) before any other import runs. Should a
PySide6 release keep its modules elsewhere, nothing is entered and the start is as slow as
before, nothing else (tests/test_startup.py notices).
"""

from __future__ import annotations

import sys

import PySide6.QtCore  # noqa: F401  (installs the hook)


def _enter_the_modules_loaded_before() -> None:
    feature = sys.modules.get("shibokensupport.feature")
    seen = getattr(feature, "pyside_feature_dict", None)
    if isinstance(seen, dict):
        for name in list(sys.modules):
            seen.setdefault(name, -1)


_enter_the_modules_loaded_before()
