"""The frozen records every layer shares (sessions, segments, services, audit) and their checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from therapy_timer.codes import Discipline, FurnishedBy, Method, Role
from therapy_timer.errors import InvalidInput, InvalidOperation

PATIENT_REF_MAX = 20
_PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._#/-]*$")
UNTIMED_MINUTES_MAX = 24 * 60
PATIENT_REF_MISSING = "Type the patient's reference (initials or MRN) first"


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class PayerProfile:
    name: str
    method: Method
    assistant_modifiers: bool


@dataclass(frozen=True)
class SegmentSpec:
    """A code to reopen on resume and who furnishes it (stopwatch.Resumable)."""

    code: str
    furnished_by: FurnishedBy


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
    allocation: Mapping[str, int] | None = None
    """Timed units per code chosen among equally valid CMS splits (R2.8); None = the default."""
    origin: str | None = None
    """The workstation a session was imported from; None for one recorded here."""

    @property
    def is_open(self) -> bool:
        return self.status is SessionStatus.OPEN

    @property
    def is_paused(self) -> bool:
        return self.paused_utc is not None


@dataclass(frozen=True)
class Segment:
    """A stretch of one code furnished by one party; ``stop_utc`` is None while it runs.

    ``exclusive``: a treatment code that runs alone (every code but a supervised modality,
    R8.1); at most one exclusive segment of a session runs at a time.
    """

    id: str
    session_id: str
    code: str
    furnished_by: FurnishedBy
    exclusive: bool
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


# ---------------------------------------------------------------------------------------------
# Checks of what people type, shared by the store, imports and the screens.


def patient_ref(raw: str) -> str:
    """A short patient label (initials or a record number), stripped; InvalidInput otherwise.

    Kept as typed. References that differ only in case name the same patient: the store allows
    one open session per reference and clinician, compared case-insensitively (ASCII only).
    """
    ref = raw.strip() if isinstance(raw, str) else ""
    if not ref:
        raise InvalidInput("patient_ref", PATIENT_REF_MISSING)
    if len(ref) > PATIENT_REF_MAX or not _PATIENT_REF.match(ref):
        raise InvalidInput(
            "patient_ref",
            f"{raw!r} is not a patient reference: type the patient's initials or record"
            f" number (MRN), up to {PATIENT_REF_MAX} letters, digits or . _ - # / with no"
            " spaces, not a name or other details",
        )
    return ref


def reason_text(raw: str) -> str:
    """The stripped reason for a change to recorded time; InvalidInput if there is none."""
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        raise InvalidInput("reason", "a change to recorded time needs a reason (what and why)")
    return reason


def label_text(raw: str, field: str, max_len: int = 80) -> str:
    """A stripped one-line label of 1 to ``max_len`` characters; InvalidInput naming ``field``."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > max_len or any(ch in text for ch in "\r\n\t\x00"):
        raise InvalidInput(field, f"must be 1 to {max_len} characters on one line, got {raw!r}")
    return text


def untimed_minutes(minutes: int | None) -> int | None:
    """Whole minutes of an untimed service (0 to a day), or None; InvalidInput otherwise."""
    if minutes is None:
        return None
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not 0 <= minutes <= UNTIMED_MINUTES_MAX
    ):
        raise InvalidInput(
            "minutes",
            f"must be whole minutes from 0 to {UNTIMED_MINUTES_MAX}, got {minutes!r}",
        )
    return minutes


class RecoveryChoice(StrEnum):
    """What to do with segments left running when the app stopped without closing them."""

    KEEP_RUNNING = "keep_running"  # the treatment went on: the segments keep counting
    STOP_AT_HEARTBEAT = "stop_at_heartbeat"  # end them at the last moment the app was alive
    DISCARD = "discard"  # the time is not trustworthy: remove them (kept in the audit log)


@dataclass(frozen=True)
class Interrupted:
    """An open session with segments still running, found when the app starts."""

    session: Session
    segments: tuple[Segment, ...]
    last_heartbeat: datetime | None

    def stop_at(self, segment: Segment) -> datetime:
        """Where ``STOP_AT_HEARTBEAT`` ends ``segment``: the heartbeat, never before its start."""
        if self.last_heartbeat is None:
            raise InvalidOperation(
                "the app never recorded a heartbeat, so there is no time to stop at"
            )
        return max(self.last_heartbeat, segment.start_utc)

    @property
    def choices(self) -> tuple[RecoveryChoice, ...]:
        if self.last_heartbeat is None:
            return (RecoveryChoice.KEEP_RUNNING, RecoveryChoice.DISCARD)
        return tuple(RecoveryChoice)
