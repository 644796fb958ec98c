"""The Qt window of Therapy Timer (the only package that imports PySide6).

The Qt-free modules the window needs load here, before any module of this package imports
PySide6: once PySide6 is loaded, its import hook (``shibokensupport.feature``) reads the source
of every module imported after it, which cost a window start ~50 ms (issue 13;
tests/test_startup.py checks the order).
"""

from therapy_timer import explain as _explain  # noqa: F401
from therapy_timer.gui import presenter as _presenter  # noqa: F401  (the clinic and below)
