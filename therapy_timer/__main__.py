"""``python -m therapy_timer`` is the ``therapy-timer`` command."""

from therapy_timer.cli import main

if __name__ == "__main__":
    main()
