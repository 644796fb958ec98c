"""PyInstaller entry script for the windowed ``therapy-timer-gui`` executable (gui.app:main)."""

import sys

from therapy_timer.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
