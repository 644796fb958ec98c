"""The one exception hierarchy of Therapy Timer (standard library only)."""

from __future__ import annotations


class TherapyTimerError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInput(TherapyTimerError, ValueError):
    """Input from a person or another program is malformed; ``field`` names where.

    ``source``, when given, is what the input came from (a file's name) as ``field`` starts
    with it: said as given, where the rest of the field may be put in a person's words.
    """

    def __init__(self, field: str, message: str, *, source: str = "") -> None:
        self.field = field
        self.message = message
        self.source = source
        super().__init__(f"{field}: {message}" if field else message)


class UnknownCode(InvalidInput):
    """A billing code that is not in the catalogue."""

    def __init__(self, field: str, code: str) -> None:
        self.code = code
        super().__init__(
            field,
            f"unknown billing code {code!r}; add it to the clinic's code file if it is real",
        )


class InvalidOperation(TherapyTimerError):
    """An action that makes no sense in the current state (e.g. pause with nothing running)."""


class NoRoom(InvalidOperation):
    """A corrected segment would run into a later code of its session: moving that code and
    the later ones later (``Clinic.correct_minutes``' ``make_room``) may make room."""


class StorageUnavailable(TherapyTimerError):
    """The environment keeps us from reading or writing data: shown to the user in plain words."""


class DatabaseCorrupt(StorageUnavailable):
    """The database file is damaged or is not a Therapy Timer database."""


class DatabaseTooNew(StorageUnavailable):
    """The database was written by a newer version of Therapy Timer."""


class DatabaseReadOnly(StorageUnavailable):
    """The database file or its folder cannot be written."""


class DatabaseLocked(StorageUnavailable):
    """Another program held the database for longer than the busy timeout."""


class DiskFull(StorageUnavailable):
    """The disk holding the data folder is full."""


class OutputRefused(TherapyTimerError):
    """A file the user asked for cannot or must not be written (exists, ours, a link, no room);
    nothing was written and nothing was marked as done."""
