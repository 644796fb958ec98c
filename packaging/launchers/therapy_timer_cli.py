"""PyInstaller entry script for the console ``therapy-timer`` executable (__main__:main)."""

from therapy_timer.__main__ import main

if __name__ == "__main__":
    main()
