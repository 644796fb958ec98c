"""PyInstaller entry script for the console ``therapy-timer`` executable (cli:main)."""

from therapy_timer.cli import main

if __name__ == "__main__":
    main()
