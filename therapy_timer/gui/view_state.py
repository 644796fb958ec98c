"""Plain snapshots of what the window shows, computed by the controller and rendered by widgets.

Immutable records as ``NamedTuple``s: defining one costs a tenth of a frozen dataclass, which
generates and compiles six methods at import (~1 ms each on the window's start, issue 13).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.rules import Method


class Draft(NamedTuple):
    """The header as typed before a session exists; tapping a tile opens a session from it."""

    patient_ref: str = ""
    clinician: str = ""
    role: Role = Role.PT
    payer_profile: str = ""
    date_of_service: date | None = None


class Refusal(NamedTuple):
    """Why corrected minutes were not saved; ``room``: a change ran into a later code of its
    session, and moving that code and the later ones later may make room."""

    text: str
    room: bool = False


class TileState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"  # was running when the session was paused; resumes with it


class TileView(NamedTuple):
    """One stopwatch tile: a timed code, or a supervised modality that runs beside one."""

    code: str
    name: str
    elapsed: timedelta
    minutes: int | None  # billed; None for a modality recorded without minutes (one unit)
    units: int | None  # under the payer's method; None for a supervised modality's minutes
    state: TileState
    furnished_by: FurnishedBy | None  # of the running segment
    number: int | None = None  # the digit key that starts it (1-9)


class UntimedView(NamedTuple):
    """An untimed service toggle (an evaluation, a group code) with its optional minutes."""

    code: str
    name: str
    checked: bool
    minutes: int | None
    timed: bool = False
    """Timed on the stopwatch: billed from it, so shown ticked and not recorded by hand."""


class LiveView(NamedTuple):
    """The live strip: totals, units under both methods, and minutes to the next unit."""

    total_timed_minutes: int = 0
    payer_method: Method = Method.CMS
    payer_units: int = 0
    other_method: Method = Method.AMA
    other_units: int = 0
    minutes_to_next_unit: int | None = None
    paused: bool = False


class HeaderView(NamedTuple):
    """The session header: who, for whom, under which payer, on which date."""

    session_open: bool = False
    patient_ref: str = ""
    clinician: str = ""
    role: Role = Role.PT
    discipline: Discipline = Discipline.PT
    payer_profile: str = ""
    payer_profiles: tuple[str, ...] = ()
    date_of_service: date | None = None
    opened_at: datetime | None = None  # local time


class CaseloadEntry(NamedTuple):
    """One open session in the caseload strip: whose, what runs, for how long, units so far."""

    session_id: str
    patient_ref: str
    clinician: str
    running: str  # "97110 + 97010", "Paused: 97110" or "Nothing running"
    elapsed: timedelta  # of the running timed code, else of the longest running modality
    units: int  # timed units so far under the payer's method
    long_running: bool  # a timed code has run past the forgot-to-stop limit
    current: bool  # the session the main view shows
    number: int | None = None  # Ctrl+number switches to it (1-9)

    @property
    def is_running(self) -> bool:
        return self.running not in ("", NOTHING_RUNNING) and not self.running.startswith("Paused")


NOTHING_RUNNING = "Nothing running"


class WindowView(NamedTuple):
    """Everything the main window shows at one moment."""

    header: HeaderView = HeaderView()
    tiles: tuple[TileView, ...] = ()
    beside: tuple[TileView, ...] = ()
    untimed: tuple[UntimedView, ...] = ()
    live: LiveView = LiveView()
    furnished_by: FurnishedBy = FurnishedBy.THERAPIST
    paused: bool = False
    message: str = ""  # a plain-language status line (errors from the store, hints)
    caseload: tuple[CaseloadEntry, ...] = ()  # every open session, the shown one included
    undo: str = ""  # what a start stopped for another patient, while it can be undone

    @property
    def running(self) -> TileView | None:
        """The running (or paused) timed tile, else a running supervised modality."""
        for tile in (*self.tiles, *self.beside):
            if tile.state is not TileState.IDLE:
                return tile
        return None


def format_elapsed(elapsed: timedelta) -> str:
    """H:MM:SS past an hour, else MM:SS; whole seconds, never negative."""
    seconds = max(0, int(elapsed.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes:02d}:{seconds:02d}"


def spoken_elapsed(elapsed: timedelta) -> str:
    """The elapsed time as words, for screen readers."""
    seconds = max(0, int(elapsed.total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} minute{'s' * (minutes != 1)} {seconds} second{'s' * (seconds != 1)}"
