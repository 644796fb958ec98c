"""PyInstaller entry script for the windowed ``therapy-timer-gui`` executable (gui.launch:main)."""

import sys

from therapy_timer.gui.launch import main

if __name__ == "__main__":
    sys.exit(main())
