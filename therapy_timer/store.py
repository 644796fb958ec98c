"""Durable storage of sessions, segments and the audit trail (the only SQLite module)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Protocol

from therapy_timer.codes import Discipline, FurnishedBy, Role

DB_FILENAME = "therapy-timer.sqlite3"
BACKUP_DIRNAME = "backups"
BACKUPS_KEPT = 14
PATIENT_REF_MAX = 20


class ClockLike(Protocol):
    """What the store needs from ``therapy_timer.clock.Clock``: an aware datetime for "now"."""

    def now(self) -> datetime: ...


class PayerMethod(StrEnum):
    """How a payer turns minutes into units (billing-rules.md §2 CMS, §3 AMA)."""

    CMS = "cms"
    AMA = "ama"


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Default of an amendment argument that may legitimately be None: leave the value as it is."""


@dataclass(frozen=True)
class PayerProfile:
    name: str
    method: PayerMethod
    assistant_modifiers: bool


@dataclass(frozen=True)
class SegmentSpec:
    """What runs on a stopwatch: the code, who furnishes it, and whether it is a timed code."""

    code: str
    furnished_by: FurnishedBy
    timed: bool


@dataclass(frozen=True)
class Session:
    id: str
    date_of_service: date
    patient_ref: str
    clinician: str
    role: Role
    discipline: Discipline
    payer_profile: str
    status: SessionStatus
    amended: bool
    exported: bool
    created_utc: datetime
    closed_utc: datetime | None
    paused_utc: datetime | None
    """When the stopwatch was paused; None while not paused."""
    resume: tuple[SegmentSpec, ...]
    """What was running at the pause and reopens on resume (empty while not paused)."""

    @property
    def is_open(self) -> bool:
        return self.status is SessionStatus.OPEN

    @property
    def is_paused(self) -> bool:
        return self.paused_utc is not None


@dataclass(frozen=True)
class Segment:
    """A stretch of one code furnished by one party; ``stop_utc`` is None while it runs."""

    id: int
    session_id: str
    code: str
    furnished_by: FurnishedBy
    timed: bool
    start_utc: datetime
    stop_utc: datetime | None

    @property
    def running(self) -> bool:
        return self.stop_utc is None


@dataclass(frozen=True)
class UntimedService:
    """An untimed service entered by hand (e.g. an evaluation); minutes are optional."""

    id: int
    session_id: str
    code: str
    minutes: int | None
    furnished_by: FurnishedBy
    created_utc: datetime


@dataclass(frozen=True)
class SegmentStop:
    segment_id: int
    stop_utc: datetime


@dataclass(frozen=True)
class SegmentStart:
    code: str
    furnished_by: FurnishedBy
    timed: bool
    start_utc: datetime


@dataclass(frozen=True)
class Pause:
    """Mark the session paused at ``at_utc``; ``resume`` is what to reopen later."""

    at_utc: datetime
    resume: tuple[SegmentSpec, ...]


@dataclass(frozen=True)
class StopwatchChange:
    """One stopwatch step, applied atomically: stop these segments, start those, (un)pause.

    ``action`` names the step in the audit log (e.g. "start", "switch", "pause", "resume",
    "furnished_by", "recovery.stop_at_heartbeat"); ``reason`` is optional here.
    """

    session_id: str
    stops: tuple[SegmentStop, ...] = ()
    starts: tuple[SegmentStart, ...] = ()
    pause: Pause | None = None
    clear_pause: bool = False
    action: str = "stopwatch"
    reason: str = ""


@dataclass(frozen=True)
class AppliedChange:
    """What a stopwatch change did: the session after it, the segments it closed and opened."""

    session: Session
    stopped: tuple[Segment, ...]
    started: tuple[Segment, ...]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at_utc: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: Mapping[str, object] | None
    after: Mapping[str, object] | None
    reason: str


def database_path(data_dir: Path) -> Path:
    """The database file inside a data folder."""
    return data_dir / DB_FILENAME


def backups_dir(data_dir: Path) -> Path:
    return data_dir / BACKUP_DIRNAME


def list_backups(data_dir: Path) -> list[Path]:
    """Rotating backups in the data folder, oldest first."""
    raise NotImplementedError


def latest_backup(data_dir: Path) -> Path | None:
    """The newest rotating backup, offered to the user when the database is damaged."""
    raise NotImplementedError


def restore(file: Path, *, data_dir: Path, clock: ClockLike, actor: str | None = None) -> Path:
    """Replace the database with ``file`` (validated first); returns the copy kept of the old one.

    Works when the current database is damaged (that is when it is needed most). Raises
    DatabaseCorrupt / DatabaseTooNew if ``file`` is not a Therapy Timer database we can read.
    """
    raise NotImplementedError


class Store:
    """An open Therapy Timer database. Every mutating method commits before it returns.

    Errors caused by the environment (damaged, newer, read-only, locked file, full disk) raise the
    ``StorageUnavailable`` family; anything else is a bug and propagates unchanged.
    """

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        clock: ClockLike,
        actor: str | None = None,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
    ) -> Store:
        """Open (creating and migrating as needed) the database in ``data_dir``."""
        raise NotImplementedError

    @property
    def path(self) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def data_version(self) -> int:
        """Changes when another connection commits (``PRAGMA data_version``): poll to refresh."""
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError

    def check_integrity(self) -> None:
        """Raise DatabaseCorrupt unless ``PRAGMA quick_check`` passes."""
        raise NotImplementedError

    # sessions -------------------------------------------------------------------------------

    def create_session(
        self,
        *,
        date_of_service: date,
        patient_ref: str,
        clinician: str,
        role: Role,
        discipline: Discipline,
        payer_profile: str,
        actor: str | None = None,
    ) -> Session:
        """Insert an open session with a fresh UUID; patient_ref is a short label (InvalidInput)."""
        raise NotImplementedError

    def get_session(self, session_id: str) -> Session:
        """The session, or InvalidInput("session", ...) if there is none with that id."""
        raise NotImplementedError

    def list_sessions(
        self,
        *,
        day: date | None = None,
        start: date | None = None,
        end: date | None = None,
        status: SessionStatus | None = None,
        clinician: str | None = None,
    ) -> list[Session]:
        """Sessions of one day, or of ``start``..``end`` inclusive, in order of creation."""
        raise NotImplementedError

    def close_session(
        self, session_id: str, *, stops: Sequence[SegmentStop] = (), actor: str | None = None
    ) -> Session:
        """Stop ``stops`` and close the session in one transaction; refuses if any still runs."""
        raise NotImplementedError

    def mark_exported(self, session_ids: Sequence[str], *, actor: str | None = None) -> None:
        raise NotImplementedError

    def amend_session(
        self,
        session_id: str,
        *,
        reason: str,
        patient_ref: str | None = None,
        payer_profile: str | None = None,
        date_of_service: date | None = None,
        actor: str | None = None,
    ) -> Session:
        """Change a session's header; needs a reason; marks a closed session amended."""
        raise NotImplementedError

    # segments -------------------------------------------------------------------------------

    def segments(self, session_id: str) -> list[Segment]:
        """A session's segments in start order."""
        raise NotImplementedError

    def open_segments(self, session_id: str | None = None) -> list[Segment]:
        """Segments with no stop time (all sessions by default): what to recover after a crash."""
        raise NotImplementedError

    def apply_stopwatch_change(
        self, change: StopwatchChange, *, actor: str | None = None
    ) -> AppliedChange:
        """Apply a stopwatch step in ONE write transaction (BEGIN IMMEDIATE), audited.

        Re-checks inside the transaction that after the change at most one timed segment of the
        session runs, so two processes can never both start a timed code (InvalidOperation).
        """
        raise NotImplementedError

    def discard_segment(self, segment_id: int, *, reason: str, actor: str | None = None) -> Segment:
        """Delete a segment (e.g. after a crash), keeping it in the audit log; needs a reason."""
        raise NotImplementedError

    def amend_segment(
        self,
        segment_id: int,
        *,
        reason: str,
        start_utc: datetime | None = None,
        stop_utc: datetime | None = None,
        code: str | None = None,
        furnished_by: FurnishedBy | None = None,
        timed: bool | None = None,
        actor: str | None = None,
    ) -> Segment:
        """Edit a recorded segment after the fact; needs a reason; marks a closed session amended.

        Refuses edits that make two timed segments of the session overlap.
        """
        raise NotImplementedError

    def add_segment(
        self,
        session_id: str,
        *,
        code: str,
        furnished_by: FurnishedBy,
        timed: bool,
        start_utc: datetime,
        stop_utc: datetime,
        reason: str,
        actor: str | None = None,
    ) -> Segment:
        """Add a finished segment by hand (a forgotten code); needs a reason."""
        raise NotImplementedError

    # untimed services ------------------------------------------------------------------------

    def untimed_services(self, session_id: str) -> list[UntimedService]:
        raise NotImplementedError

    def add_untimed(
        self,
        session_id: str,
        *,
        code: str,
        minutes: int | None = None,
        furnished_by: FurnishedBy = FurnishedBy.THERAPIST,
        reason: str = "",
        actor: str | None = None,
    ) -> UntimedService:
        """Record an untimed service; on a closed session it is an amendment and needs a reason."""
        raise NotImplementedError

    def amend_untimed(
        self,
        untimed_id: int,
        *,
        reason: str,
        code: str | None = None,
        minutes: int | _Keep | None = KEEP,
        furnished_by: FurnishedBy | None = None,
        actor: str | None = None,
    ) -> UntimedService:
        raise NotImplementedError

    def remove_untimed(
        self, untimed_id: int, *, reason: str, actor: str | None = None
    ) -> UntimedService:
        raise NotImplementedError

    # audit -----------------------------------------------------------------------------------

    def audit_entries(
        self,
        *,
        entity: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries oldest first (filtered); ``limit`` keeps the newest ones."""
        raise NotImplementedError

    def record_event(
        self,
        action: str,
        *,
        entity: str,
        entity_id: str,
        reason: str = "",
        details: Mapping[str, object] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        """Audit a decision that changes no data (e.g. "keep running" after a crash)."""
        raise NotImplementedError

    # heartbeat and settings ------------------------------------------------------------------

    def write_heartbeat(self, at_utc: datetime | None = None) -> None:
        """Record that the app is alive (not audited: it would flood the log)."""
        raise NotImplementedError

    def last_heartbeat(self) -> datetime | None:
        raise NotImplementedError

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        raise NotImplementedError

    def set_setting(self, key: str, value: str, *, actor: str | None = None) -> None:
        raise NotImplementedError

    def settings(self) -> dict[str, str]:
        raise NotImplementedError

    # payer profiles --------------------------------------------------------------------------

    def payer_profiles(self) -> list[PayerProfile]:
        raise NotImplementedError

    def get_payer_profile(self, name: str) -> PayerProfile:
        """The profile, or InvalidInput("payer_profile", ...) if unknown."""
        raise NotImplementedError

    def save_payer_profile(
        self, profile: PayerProfile, *, actor: str | None = None
    ) -> PayerProfile:
        """Insert or update a profile by name."""
        raise NotImplementedError

    def delete_payer_profile(self, name: str, *, actor: str | None = None) -> None:
        """Delete an unused profile; InvalidOperation if sessions refer to it."""
        raise NotImplementedError

    # backups ---------------------------------------------------------------------------------

    def backup(self, dest: Path | None = None) -> Path:
        """Copy the database with SQLite's backup API (0600) to ``dest`` or the backups folder."""
        raise NotImplementedError

    def daily_backup(self) -> Path | None:
        """Make today's backup unless there is one; keep the newest 14. None if already done."""
        raise NotImplementedError
