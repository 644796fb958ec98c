"""The frozen records every layer shares (sessions, segments, pauses, changes, audit); checks."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from therapy_timer.codes import (
    MAX_DAY_MINUTES,
    Discipline,
    FurnishedBy,
    Method,
    Role,
    article,
    normalize_code,
)
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.frozen import frozen_record

if TYPE_CHECKING:
    import uuid

PATIENT_REF_MAX = 20
_PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._#/-]*$")
PATIENT_REF_MISSING = "Type the patient's reference (initials or MRN) first"


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@frozen_record
class PayerProfile:
    name: str
    method: Method
    assistant_modifiers: bool

    def __init__(self, name: str, method: Method, assistant_modifiers: bool) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "assistant_modifiers", assistant_modifiers)


@frozen_record
class Resumable:
    """A code that was running when the session was paused, and who was furnishing it."""

    code: str
    furnished_by: FurnishedBy

    def __init__(self, code: str, furnished_by: FurnishedBy) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "furnished_by", furnished_by)


@frozen_record
class Pause:
    """A session's pause in force: since when, and which codes ``resume`` restarts."""

    at_utc: datetime
    resume: tuple[Resumable, ...]

    def __init__(self, at_utc: datetime, resume: tuple[Resumable, ...]) -> None:
        object.__setattr__(self, "at_utc", at_utc)
        object.__setattr__(self, "resume", resume)


@frozen_record
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
    pause: Pause | None
    """The stopwatch's pause in force; None while not paused."""
    allocation: Mapping[str, int] | None = None
    """Timed units per code chosen among equally valid CMS splits (R2.8); None = the default."""
    origin: str | None = None
    """The workstation a session was imported from; None for one recorded here."""

    def __init__(
        self,
        id: str,
        date_of_service: date,
        patient_ref: str,
        clinician: str,
        role: Role,
        discipline: Discipline,
        payer_profile: str,
        status: SessionStatus,
        amended: bool,
        exported: bool,
        created_utc: datetime,
        closed_utc: datetime | None,
        pause: Pause | None,
        allocation: Mapping[str, int] | None = None,
        origin: str | None = None,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "date_of_service", date_of_service)
        object.__setattr__(self, "patient_ref", patient_ref)
        object.__setattr__(self, "clinician", clinician)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "discipline", discipline)
        object.__setattr__(self, "payer_profile", payer_profile)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "amended", amended)
        object.__setattr__(self, "exported", exported)
        object.__setattr__(self, "created_utc", created_utc)
        object.__setattr__(self, "closed_utc", closed_utc)
        object.__setattr__(self, "pause", pause)
        object.__setattr__(self, "allocation", allocation)
        object.__setattr__(self, "origin", origin)

    @property
    def is_open(self) -> bool:
        return self.status is SessionStatus.OPEN

    @property
    def is_paused(self) -> bool:
        return self.pause is not None


@frozen_record
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

    def __init__(
        self,
        id: str,
        session_id: str,
        code: str,
        furnished_by: FurnishedBy,
        exclusive: bool,
        start_utc: datetime,
        stop_utc: datetime | None,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "furnished_by", furnished_by)
        object.__setattr__(self, "exclusive", exclusive)
        object.__setattr__(self, "start_utc", start_utc)
        object.__setattr__(self, "stop_utc", stop_utc)

    @property
    def running(self) -> bool:
        return self.stop_utc is None

    def elapsed(self, now: datetime) -> timedelta:
        """Length of the segment, measured to ``now`` while it runs; never negative."""
        end = now if self.stop_utc is None else self.stop_utc
        return max(timedelta(0), end - self.start_utc)


SegmentTimes = tuple[str, FurnishedBy, datetime, datetime | None]
"""What billing reads of a segment in bulk (``Store.segment_times_of``): its code, who
furnished it, its start and its stop (None while it runs). A plain tuple: a clinic-year's
export reads 300,000 of them, and a record each cost more than summing them up."""


@frozen_record
class ClockWarning:
    """The clock read earlier than a moment already recorded; time was clamped to ``used``."""

    reading: datetime
    used: datetime

    def __init__(self, reading: datetime, used: datetime) -> None:
        object.__setattr__(self, "reading", reading)
        object.__setattr__(self, "used", used)

    @property
    def message(self) -> str:
        behind = int((self.used - self.reading).total_seconds())
        return (
            f"The computer's clock went back by {behind} seconds. Timers were held at the last "
            "known time instead of counting backwards; check the minutes before billing."
        )


@frozen_record
class Change:
    """What one operation did, so a store can write exactly that and a screen redraw only that.

    ``closed`` holds segments as they are after closing (with their stop time); ``opened`` the
    new running segments. ``paused_before``/``paused_after`` and ``furnished_by_before/after``
    differ only when the operation changed them. The store writes it as one transaction.
    """

    session_id: str = ""
    closed: tuple[Segment, ...] = ()
    opened: tuple[Segment, ...] = ()
    paused_before: Pause | None = None
    paused_after: Pause | None = None
    furnished_by_before: FurnishedBy = FurnishedBy.THERAPIST
    furnished_by_after: FurnishedBy = FurnishedBy.THERAPIST
    warnings: tuple[ClockWarning, ...] = ()

    def __init__(
        self,
        session_id: str = "",
        closed: tuple[Segment, ...] = (),
        opened: tuple[Segment, ...] = (),
        paused_before: Pause | None = None,
        paused_after: Pause | None = None,
        furnished_by_before: FurnishedBy = FurnishedBy.THERAPIST,
        furnished_by_after: FurnishedBy = FurnishedBy.THERAPIST,
        warnings: tuple[ClockWarning, ...] = (),
    ) -> None:
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "closed", closed)
        object.__setattr__(self, "opened", opened)
        object.__setattr__(self, "paused_before", paused_before)
        object.__setattr__(self, "paused_after", paused_after)
        object.__setattr__(self, "furnished_by_before", furnished_by_before)
        object.__setattr__(self, "furnished_by_after", furnished_by_after)
        object.__setattr__(self, "warnings", warnings)

    @property
    def stopped_codes(self) -> tuple[str, ...]:
        """Codes no longer running after the operation (a furnished-by switch stops none)."""
        reopened = {s.code for s in self.opened}
        return tuple(s.code for s in self.closed if s.code not in reopened)

    @property
    def started_codes(self) -> tuple[str, ...]:
        """Codes running after the operation that were not running before."""
        was_running = {s.code for s in self.closed}
        return tuple(s.code for s in self.opened if s.code not in was_running)

    @property
    def pause_changed(self) -> bool:
        return self.paused_before != self.paused_after

    @property
    def furnished_by_changed(self) -> bool:
        return self.furnished_by_before is not self.furnished_by_after

    @property
    def writes_nothing(self) -> bool:
        """No segment and no pause changed (at most who furnishes the next start did)."""
        return not (self.closed or self.opened or self.pause_changed)

    @property
    def empty(self) -> bool:
        return not (self.closed or self.opened or self.pause_changed or self.furnished_by_changed)


@frozen_record
class UntimedService:
    """An untimed service entered by hand (e.g. an evaluation); minutes are optional."""

    id: int
    session_id: str
    code: str
    minutes: int | None
    furnished_by: FurnishedBy
    created_utc: datetime

    def __init__(
        self,
        id: int,
        session_id: str,
        code: str,
        minutes: int | None,
        furnished_by: FurnishedBy,
        created_utc: datetime,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "minutes", minutes)
        object.__setattr__(self, "furnished_by", furnished_by)
        object.__setattr__(self, "created_utc", created_utc)


@frozen_record
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

    def __init__(
        self,
        id: int,
        at_utc: datetime,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        before: Mapping[str, object] | None,
        after: Mapping[str, object] | None,
        reason: str,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "at_utc", at_utc)
        object.__setattr__(self, "actor", actor)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "entity", entity)
        object.__setattr__(self, "entity_id", entity_id)
        object.__setattr__(self, "before", before)
        object.__setattr__(self, "after", after)
        object.__setattr__(self, "reason", reason)


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
            f"{_quoted(raw)} is not a patient reference: type the patient's initials or record"
            f" number (MRN), up to {PATIENT_REF_MAX} letters, digits or . _ - # / with no"
            " spaces, not a name or other details",
        )
    return ref


REASON_MAX = 1000
"""Characters of a reason: a sentence or a short paragraph, never a pasted document."""


def reason_text(raw: str) -> str:
    """The stripped reason for a change to recorded time, one line of at most REASON_MAX
    characters (the audit log shows it in one row); InvalidInput if there is none."""
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        raise InvalidInput("reason", "a change to recorded time needs a reason (what and why)")
    return label_text(reason, "reason", REASON_MAX)


def label_text(raw: str, field: str, max_len: int = 80, *, source: str = "") -> str:
    """A stripped one-line label of 1 to ``max_len`` characters; InvalidInput naming ``field``
    (and its ``source``, as ``InvalidInput`` has it)."""
    text = raw.strip() if isinstance(raw, str) else ""
    # Any control character or line/paragraph separator: a label is one line of plain text
    # in the CSV, the note and the audit log (a stray one splits a row or hides a prefix).
    # Nor an invisible format character (zero-width space, right-to-left override, soft
    # hyphen): "Ac\u200bme" would be a second Acme nobody can tell from the first. Nor half
    # of a surrogate pair (a bundle's "\ud800"), which no file or database can encode.
    if (
        not text
        or len(text) > max_len
        or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in text)
    ):
        raise InvalidInput(
            field,
            f"must be 1 to {max_len} characters on one line, got {_quoted(raw)}",
            source=source,
        )
    return text


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters shown as
# nothing. label_text refuses the format characters among them; the others (a combining
# grapheme joiner, variation selectors, the Hangul fillers) pass it, and "Kim\u034f" looked
# like Kim yet was a second clinician. Unicode's caseless identifier matching
# (toNFKC_Casefold) drops them; so does clinician_key.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_BLANK = re.compile("[\u115f\u1160\u3164\uffa0\u2800]")
"""Characters fonts draw as a blank space though Unicode says otherwise: the Hangul fillers
(ignorable) and the blank braille pattern (a symbol). Between words each is a space: dropped,
"Ann\u3164Lee" showed as Ann Lee yet was a second clinician (AnnLee), and a name of blank
braille patterns showed nothing yet was let in."""


def helper_time(session: Session, furnished_by: FurnishedBy) -> bool:
    """Whether a segment is the time of the unnamed assistant of a therapist's session: one-on-one
    time of theirs, not of the session's clinician (an assistant's time is theirs, R7.1)."""
    return furnished_by is FurnishedBy.ASSISTANT and not session.role.is_assistant


@functools.lru_cache(maxsize=1024)  # a clinic has a few names, compared per session read
def clinician_key(name: str) -> str:
    """Who a clinician's name means, to compare names by: one person however it was typed.

    Case, compatibility forms (a fullwidth K, a no-break space: NFKC), characters shown as
    nothing or as a blank space and runs of spaces make no second person; NFKC again after
    casefold, as Unicode's caseless identifier matching does, since folding may undo the
    normal form. The name itself is kept as typed.
    """
    visible = _IGNORABLE.sub("", _BLANK.sub(" ", name))
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", visible).casefold())
    return " ".join(folded.split())


def clinician_name(raw: str) -> str:
    """A clinician's name as typed (``label_text``); InvalidInput if it shows nothing (all
    Hangul fillers, say): every such name would be one blank person on the CSV."""
    name = label_text(raw, "clinician")
    if not clinician_key(name):
        raise InvalidInput(
            "clinician", f"must show the clinician's name, got {_quoted(raw)} (nothing visible)"
        )
    return name


def _quoted(raw: object) -> str:
    """What the user gave, at most about 80 characters of it, for a message."""
    text = repr(raw)
    return text if len(text) <= 80 else f"{text[:77]}..."


def untimed_minutes(minutes: int | None) -> int | None:
    """Whole minutes of an untimed service (0 to a day), or None; InvalidInput otherwise."""
    if minutes is None:
        return None
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not 0 <= minutes <= MAX_DAY_MINUTES
    ):
        raise InvalidInput(
            "minutes",
            f"must be whole minutes from 0 to {MAX_DAY_MINUTES}, got {_quoted(minutes)}",
        )
    return minutes


class RecoveryChoice(StrEnum):
    """What to do with segments left running when the app stopped without closing them."""

    KEEP_RUNNING = "keep_running"  # the treatment went on: the segments keep counting
    STOP_AT_HEARTBEAT = "stop_at_heartbeat"  # end them at the last moment the app was alive
    DISCARD = "discard"  # the time is not trustworthy: remove them (kept in the audit log)


@frozen_record
class Interrupted:
    """An open session with segments still running, found when the app starts."""

    session: Session
    segments: tuple[Segment, ...]
    last_heartbeat: datetime | None

    def __init__(
        self,
        session: Session,
        segments: tuple[Segment, ...],
        last_heartbeat: datetime | None,
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "last_heartbeat", last_heartbeat)

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


# ---------------------------------------------------------------------------------------------
# One session record's checks, the same for a session recorded here and one imported: an id in
# another spelling, a date on no day or two codes over the same minutes would bill twice.

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ISO_MOMENT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
RECORD_AUDIT_ENTITIES = ("session", "segment", "untimed")
ALLOCATION_UNITS_MAX = 100


def session_id(raw: object, field: str = "id") -> str:
    """A session id in its one stored form (``str(uuid.UUID(raw))``): lower-case, hyphenated.

    "ABC…" and "{abc…}" name the same session as "abc…"; stored as given they would not.
    """
    return str(_uuid(raw, field))


def segment_id(raw: object, field: str = "segment id") -> str:
    """A segment id in its one stored form (32 lower-case hex digits, as the stopwatch makes)."""
    return _uuid(raw, field).hex


def _uuid(raw: object, field: str) -> uuid.UUID:
    import uuid  # here: with the platform module it loads, ~3 ms of the window's start (issue 13)

    if isinstance(raw, str) and len(raw) <= 45:
        try:
            return uuid.UUID(raw)
        except ValueError:
            pass
    raise InvalidInput(field, f"{_quoted(raw)} is not an id (a UUID)")


def service_date(raw: object, field: str = "date_of_service") -> date:
    """A date written YYYY-MM-DD and nothing else (3.11's fromisoformat also takes 20261120)."""
    if isinstance(raw, str) and _ISO_DATE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise InvalidInput(field, f"{_quoted(raw)} is not a date written YYYY-MM-DD")


def aware_moment(raw: object, field: str) -> datetime:
    """An ISO-8601 moment with its UTC offset; a naive or loosely written one is refused."""
    if isinstance(raw, str) and _ISO_MOMENT.match(raw):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    raise InvalidInput(
        field, f"{_quoted(raw)} is not a moment written YYYY-MM-DDTHH:MM:SS+HH:MM (with offset)"
    )


def check_segment_times(segments: Sequence[Segment], field: str = "segments") -> None:
    """One id per segment, none stopping before it starts, no two exclusive ones overlapping.

    Exclusive codes run one at a time (R8.1): overlapping ones would bill the same minutes
    twice. InvalidInput names the codes and where they meet.
    """
    seen: set[str] = set()
    for segment in segments:
        if segment.id in seen:
            raise InvalidInput(field, f"segment {segment.id} appears twice")
        seen.add(segment.id)
        if segment.stop_utc is not None and segment.stop_utc < segment.start_utc:
            raise InvalidInput(field, f"{segment.code} stops before it starts")
    clash = exclusive_clash(segments)
    if clash is not None:
        first, second = clash
        raise InvalidInput(
            field,
            f"{first.code} and {second.code} overlap from {second.start_utc.isoformat()};"
            " two treatment codes cannot bill the same minutes",
        )


def exclusive_clash(segments: Sequence[Segment]) -> tuple[Segment, Segment] | None:
    """The first two exclusive segments (in start order) whose times overlap, or None."""
    exclusive = sorted((s for s in segments if s.exclusive), key=lambda s: s.start_utc)
    # The segment reaching furthest so far: a long one can overlap several after it.
    reach: Segment | None = None
    for later in exclusive:
        if reach is not None and (reach.stop_utc is None or reach.stop_utc > later.start_utc):
            return reach, later
        if (
            reach is None
            or later.stop_utc is None
            or later.stop_utc > (reach.stop_utc or later.stop_utc)
        ):
            reach = later
    return None


def segment_of_record(record: Mapping[str, Any], session_id: str) -> Segment:
    """A segment of a checked session record (``check_session_record``'s form)."""
    return Segment(
        record["id"],
        session_id,
        record["code"],
        FurnishedBy(record["furnished_by"]),
        record["exclusive"],
        record["start_utc"],
        record["stop_utc"],
    )


def check_session_record(record: object, where: str, *, source: str = "") -> dict[str, Any]:
    """A closed session's record (a bundle's, or one read here) in its one stored form.

    The same checks as recording it here: canonical ids, strict dates, aware moments, known
    enums and codes, one-line bounded labels, no duplicate or overlapping exclusive segments,
    and audit entries about this session and its parts only. InvalidInput names ``where`` and
    the field, with ``source`` (the file ``where`` starts with) as ``InvalidInput`` has it;
    any other damage (a missing key, a wrong type) is InvalidInput too.
    """
    if not isinstance(record, Mapping):
        raise InvalidInput(where, "is not a session record", source=source)
    try:
        return _checked(record, where)
    except InvalidInput as exc:
        if exc.field.startswith(where) and exc.source == source:
            raise
        raise InvalidInput(f"{where} {exc.field}".strip(), exc.message, source=source) from None
    except KeyError as exc:
        raise InvalidInput(
            where, f"is damaged: its field {exc.args[0]!r} is missing", source=source
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        # The checks' own TypeErrors name the field ("amended is 'x', not bool"); Python's
        # exception names mean nothing to the person reading this. An enum's ValueError
        # quotes the whole value, so a 100 kB role was echoed back whole.
        said = str(exc)
        if len(said) > _SAID_MAX:
            said = f"{said[: _SAID_MAX // 2]}…{said[-_SAID_MAX // 4 :]}"
        raise InvalidInput(where, f"is damaged: {said}", source=source) from None


_SAID_MAX = 200
"""Characters of Python's own words kept in a damaged record's refusal (start and end)."""


def _of(value: object, kind: type, name: str) -> Any:
    # bool is an int to isinstance: a count must not be True, a flag must not be 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} is {_quoted(value)}, not {kind.__name__}")
    return value


def _checked(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    sid = session_id(record["id"])
    if record["status"] != SessionStatus.CLOSED.value:
        raise InvalidInput("status", "is an open session; only closed sessions are merged")
    role = Role(record["role"])
    discipline = Discipline(record["discipline"])
    if role.discipline is not discipline:
        raise InvalidInput(
            "discipline", f"{article(role.value)} {role.value} furnishes {role.discipline.value}"
        )
    payer_name = label_text(record["payer_profile"], "payer_profile")
    payer = _of(record["payer"], Mapping, "payer")
    if label_text(payer["name"], "payer name") != payer_name:
        raise InvalidInput("payer", "names two different payer profiles")
    created = aware_moment(record["created_utc"], "created_utc")
    closed = aware_moment(record["closed_utc"], "closed_utc")
    if closed < created:
        raise InvalidInput("closed_utc", "is before the session was created")
    allocation = record.get("allocation")
    if allocation is not None:
        allocation = {
            normalize_code(_of(code, str, "allocation code"), "allocation"): _of(
                units, int, "allocation units"
            )
            for code, units in _of(allocation, Mapping, "allocation").items()
        }
        if any(not 0 <= u <= ALLOCATION_UNITS_MAX for u in allocation.values()):
            raise InvalidInput("allocation", "has a unit count out of range")
    segments = [
        {
            "id": segment_id(s["id"]),
            "code": normalize_code(s["code"], "segment code"),
            "furnished_by": FurnishedBy(s["furnished_by"]).value,
            "exclusive": _of(s["exclusive"], bool, "exclusive"),
            "start_utc": aware_moment(s["start_utc"], "segment start_utc"),
            "stop_utc": aware_moment(s["stop_utc"], "segment stop_utc"),
        }
        for s in _of(record["segments"], list, "segments")
    ]
    check_segment_times([segment_of_record(s, sid) for s in segments])
    untimed = [
        {
            "code": normalize_code(u["code"], "untimed code"),
            "minutes": untimed_minutes(u["minutes"]),
            "furnished_by": FurnishedBy(u["furnished_by"]).value,
            "created_utc": aware_moment(u["created_utc"], "untimed created_utc"),
        }
        for u in _of(record["untimed"], list, "untimed")
    ]
    audit = [_audit_entry(e, sid) for e in _of(record.get("audit", []), list, "audit")]
    return {
        "id": sid,
        "date_of_service": service_date(record["date_of_service"]),
        "patient_ref": patient_ref(_of(record["patient_ref"], str, "patient_ref")),
        "clinician": label_text(record["clinician"], "clinician"),
        "role": role.value,
        "discipline": discipline.value,
        "payer_profile": payer_name,
        "status": SessionStatus.CLOSED.value,
        "amended": _of(record["amended"], bool, "amended"),
        "created_utc": created,
        "closed_utc": closed,
        "allocation": allocation,
        "payer": {
            "name": payer_name,
            "method": Method(payer["method"]).value,
            "assistant_modifiers": _of(payer["assistant_modifiers"], bool, "assistant_modifiers"),
        },
        "segments": segments,
        "untimed": untimed,
        "audit": audit,
    }


NOT_TEXT = "holds a NUL character or half of a surrogate pair, which is not text"


def _storable(text: str) -> bool:
    """Whether ``text`` can be kept anywhere a record goes: no file or database encodes half of
    a surrogate pair, and the clinic server's JSON (PostgreSQL jsonb) refuses a NUL too, so
    one such record stopped every sync of the workstation holding it."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _texts(value: object) -> Iterator[str]:
    """Every key and string in a JSON value (without recursion: it may nest deeply)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            yield from item.keys()
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def not_text_in(fields: Mapping[str, object]) -> str | None:
    """The name of the first of ``fields`` (a record's or an audit entry's) with a key or
    string that ``NOT_TEXT``, or None when every one is text."""
    for name, value in fields.items():
        if any(not _storable(text) for text in _texts(value)):
            return name
    return None


def _audit_entry(raw: object, sid: str) -> dict[str, Any]:
    """An audit entry of the record, which must be about the record's own session or parts:
    a bundle's entry about a session of this station (a forged export) would hide a change."""
    entry: Mapping[str, Any] = _of(raw, Mapping, "audit entry")
    entity = _of(entry["entity"], str, "audit entity")
    before = entry.get("before")
    after = entry.get("after")
    for payload in (before, after):
        if payload is not None:
            _of(payload, Mapping, "audit payload")
            try:  # the store indexes payloads with SQLite's JSON functions, which refuse these
                json.dumps(payload, allow_nan=False)
            except ValueError:
                raise InvalidInput(
                    "audit", "has a value JSON cannot hold (NaN or Infinity)"
                ) from None
            if any(not _storable(text) for text in _texts(payload)):
                raise InvalidInput("audit", f"has a value that {NOT_TEXT}")
    if entity == "session":
        about_this = _uuid_or_none(entry["entity_id"]) == sid
        entity_id = sid
    elif entity in RECORD_AUDIT_ENTITIES:
        # The store finds a part's entries by the session id in the payload (m005).
        about_this = (after if after is not None else before or {}).get("session_id") == sid
        entity_id = label_text(_of(entry["entity_id"], str, "audit entity_id"), "audit id")
    else:
        raise InvalidInput("audit", f"has an entry about a {_quoted(entity)}, not this session")
    if not about_this:
        raise InvalidInput("audit", "has an entry about another session")
    reason = _of(entry.get("reason", ""), str, "audit reason")
    if len(reason) > REASON_MAX:
        raise InvalidInput("audit reason", f"is longer than {REASON_MAX} characters")
    if not _storable(reason):
        raise InvalidInput("audit reason", NOT_TEXT)
    return {
        "at_utc": aware_moment(entry["at_utc"], "audit at_utc"),
        "actor": label_text(entry["actor"], "audit actor", 200),
        "action": label_text(entry["action"], "audit action"),
        "entity": entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
        "reason": reason,
    }


REASON_MAX = 2000


def _uuid_or_none(raw: object) -> str | None:
    try:
        return session_id(raw)
    except InvalidInput:
        return None


class ConflictStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DROPPED = "dropped"


@frozen_record
class Conflict:
    """Another version of a session an import met, kept as received for the front desk."""

    id: int
    session_id: str
    origin: str
    """The workstation whose bundle held this version."""
    source: str
    """The bundle file it came from."""
    why: str
    received_utc: datetime
    status: ConflictStatus
    decided_utc: datetime | None
    record: Mapping[str, Any]
    """The session as that workstation recorded it (the bundle's checked record)."""

    def __init__(
        self,
        id: int,
        session_id: str,
        origin: str,
        source: str,
        why: str,
        received_utc: datetime,
        status: ConflictStatus,
        decided_utc: datetime | None,
        record: Mapping[str, Any],
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "why", why)
        object.__setattr__(self, "received_utc", received_utc)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "decided_utc", decided_utc)
        object.__setattr__(self, "record", record)


@frozen_record
class SessionProblem:
    """A session whose minutes the rules refuse (a timer left running over a weekend, a typo in
    a correction, a code no longer in the catalogue): shown and exported as an error row naming
    the patient and what to fix, so the rest of its day still bills."""

    session: Session
    field: str
    """Where the rules found it, e.g. "timed.97110"."""
    message: str
    fix: str
    """What a person does about it, in words."""

    def __init__(self, session: Session, field: str, message: str, fix: str) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "fix", fix)

    @property
    def text(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return (
            f"patient {self.session.patient_ref} ({self.session.clinician}), session"
            f" {self.session.id[:8]}: {where}{self.message}; {self.fix}"
        )
