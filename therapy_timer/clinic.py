"""The one front door: every operation the window, the command line and imports perform.

Like Anki's ``Collection``: ``Clinic.open(data_dir)`` wires the store, the code catalogue and the
clock once, and each operation applies the invariants (R7.9, one-on-one time, reasons for
changes) in one place, commits before it returns, and says what changed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from therapy_timer import billing, paths, rules
from therapy_timer import store as st
from therapy_timer.clock import Clock, SystemClock
from therapy_timer.codes import (
    CLINIC_CODES_FILE,
    MAX_DAY_MINUTES,
    Catalogue,
    Code,
    Discipline,
    FurnishedBy,
    Role,
)
from therapy_timer.codes import load_catalogue as _load_catalogue
from therapy_timer.contract import collector_paused
from therapy_timer.errors import (
    InvalidInput,
    InvalidOperation,
    NoRoom,
    OutputRefused,
    StorageUnavailable,
    TherapyTimerError,
    UnknownCode,
)
from therapy_timer.files import (
    check_target,
    private_output,
    read_regular,
    remove_leftovers,
    same_file,
    write_private,
    written_beside,
)
from therapy_timer.frozen import frozen_record
from therapy_timer.model import (
    PATIENT_REF_MISSING,
    Change,
    ClockWarning,
    Conflict,
    ConflictStatus,
    Interrupted,
    PayerProfile,
    RecoveryChoice,
    Segment,
    SegmentTimes,
    Session,
    SessionProblem,
    SessionStatus,
    UntimedService,
    check_session_record,
    clinician_key,
    helper_time,
    label_text,
    reason_text,
)
from therapy_timer.stopwatch import (
    RoundingPolicy,
    RulesInput,
    Stopwatch,
    latest_furnisher,
)
from therapy_timer.store.queries import WindowLease

if TYPE_CHECKING:
    # Both load where they are used: the clinic server's psycopg only when a server is used,
    # export (and csv) only where a file is written, read or listed (a window start uses
    # neither, issue 13).
    from therapy_timer import export as ex
    from therapy_timer import server

CLAIM_DAY_BATCH = 2000
"""Sessions read per query when claim days are built (whole dates; see _claim_days_of)."""

HEARTBEAT_INTERVAL_SECONDS = 30
"""How often a running window should call ``Clinic.heartbeat`` (at most this much is lost)."""

ROUNDING_SETTING = "rounding_policy"
"""Settings key holding the clinic's ``RoundingPolicy`` value ("down" or "nearest")."""

DEFAULT_PAYER_SETTING = "default_payer"
"""Settings key naming the payer profile a new session starts with."""

MEDICARE_PROFILE = "Medicare"  # seeded by the store's first migration

DISCARD_REASON = "discarded after the app stopped unexpectedly"
UNTIMED_REMOVED_REASON = "unticked during the session"
UNTIMED_MINUTES_REASON = "minutes entered during the session"

FORGOT_TO_STOP_SETTING = "gui.forgot_to_stop_minutes"
FORGOT_TO_STOP_DEFAULT = 30
LAST_CLINICIAN_SETTING = "gui.last_clinician"
UNNAMED_CLINICIAN = "Clinician"
"""What the window recorded, and remembered, for a clinician field left empty before it asked
for a name (2026-12): nobody's name, so never offered as the next session's."""
LAST_ROLE_SETTING = "gui.last_role"
LAST_PAYER_SETTING = "gui.last_payer_profile"
FAVOURITES_SETTING = "gui.favourites."  # + clinician_key(name): comma-separated codes

SERVER_DSN_SETTING = "clinic.server"  # the clinic server's DSN, never with a password
SYNC_STATE_FILE = "clinic-sync.json"  # the last push, for `clinic status` when offline
# sync_server writes ~150 bytes and 40 for each session a push held back (36115b3): room for
# every session of a workstation's years, while a file no sync wrote is still not read whole.
SYNC_STATE_MAX_BYTES = 1 << 24

COMMAND_DEFAULTS = {
    "clinician": "default_clinician",
    "role": "default_role",
    "payer": "default_payer",
}
"""Settings keys a command-line session falls back on (a foot pedal names no clinician)."""


@frozen_record
class Outcome:
    """A committed stopwatch step: the session and stopwatch after it, and what changed.

    ``change`` names segments by the ids stored with them; its ``warnings`` say when the clock
    went backwards. An empty change (e.g. starting the code that already runs) wrote nothing.
    ``elsewhere``: what the step stopped in other patients' sessions (one-on-one time of the
    same clinician cannot run for two patients), one stop step per session.
    ``left``: an earlier day's session the start closed as it stood, ``session`` being the
    one opened for today that took the start (``Clinic.start``); None for any other step.
    """

    session: Session
    change: Change
    stopwatch: Stopwatch
    elsewhere: tuple[Outcome, ...] = ()
    left: Session | None = None

    def __init__(
        self,
        session: Session,
        change: Change,
        stopwatch: Stopwatch,
        elsewhere: tuple[Outcome, ...] = (),
        left: Session | None = None,
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "change", change)
        object.__setattr__(self, "stopwatch", stopwatch)
        object.__setattr__(self, "elsewhere", elsewhere)
        object.__setattr__(self, "left", left)

    @property
    def left_text(self) -> str:
        """What a start that closed an earlier day's session says, in one line ("" if none)."""
        return "" if self.left is None else left_open_text(self.left, self.session)


def left_open_text(left: Session, today: Session, *, by_another_program: bool = False) -> str:
    """One line on an earlier day's session ``left`` open, closed as it was by a start or a
    resume (this program's, or ``by_another_program``), and ``today``'s that took it."""
    closed = "another program closed it" if by_another_program else "it was closed"
    return (
        f"Patient {left.patient_ref}'s session of {left.date_of_service.isoformat()} was"
        f" left open: {closed} as it was, and today's session"
        f" ({today.date_of_service.isoformat()}) began."
    )


@frozen_record
class Header:
    """What a workstation remembers between sessions: who works here and for which payer."""

    clinician: str = ""
    role: Role = Role.PT
    payer_profile: str = ""

    def __init__(self, clinician: str = "", role: Role = Role.PT, payer_profile: str = "") -> None:
        object.__setattr__(self, "clinician", clinician)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "payer_profile", payer_profile)


@frozen_record
class Workspace:
    """One open session as the window shows it: read once, re-evaluated on every repaint."""

    session: Session
    stopwatch: Stopwatch
    untimed: tuple[UntimedService, ...]
    profile: PayerProfile
    policy: RoundingPolicy

    def __init__(
        self,
        session: Session,
        stopwatch: Stopwatch,
        untimed: tuple[UntimedService, ...],
        profile: PayerProfile,
        policy: RoundingPolicy,
    ) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "stopwatch", stopwatch)
        object.__setattr__(self, "untimed", untimed)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "policy", policy)

    @property
    def rows(self) -> billing.SessionRows:
        return billing.SessionRows(self.session, self.stopwatch, self.untimed, self.profile)


@frozen_record
class Exported:
    """What an export did: the text (a preview on the terminal) or the file, and the count."""

    sessions: int
    path: Path | None = None
    text: str | None = None
    marked: int = 0
    changed: int = 0
    """Sessions changed by another station after the export read them: the file holds what
    they were, so they were not marked and stay due for export."""

    def __init__(
        self,
        sessions: int,
        path: Path | None = None,
        text: str | None = None,
        marked: int = 0,
        changed: int = 0,
    ) -> None:
        object.__setattr__(self, "sessions", sessions)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "marked", marked)
        object.__setattr__(self, "changed", changed)

    @property
    def changed_note(self) -> str:
        """What a person is told of ``changed`` (nothing when none)."""
        if not self.changed:
            return ""
        return (
            f"{self.changed} session(s) changed while exporting: the file holds them as they"
            " were, so they stay due for export"
        )


@frozen_record
class SessionVersion:
    """One version of a session as the desk compares two: who, when, what was timed, what it
    bills on its own. ``fields`` are (label, value) pairs in the same order for every version."""

    title: str
    fields: tuple[tuple[str, str], ...]
    segments: tuple[str, ...]
    untimed: tuple[str, ...]
    billed: str
    still_open: bool = False
    """Open here: it cannot be replaced until it is closed."""

    def __init__(
        self,
        title: str,
        fields: tuple[tuple[str, str], ...],
        segments: tuple[str, ...],
        untimed: tuple[str, ...],
        billed: str,
        still_open: bool = False,
    ) -> None:
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "untimed", untimed)
        object.__setattr__(self, "billed", billed)
        object.__setattr__(self, "still_open", still_open)


@frozen_record
class ConflictComparison:
    """A kept-aside version beside the session kept here (None: not here any more)."""

    conflict: Conflict
    here: SessionVersion | None
    incoming: SessionVersion
    on_server: bool = False
    """Kept aside by the clinic server (a sync), not by an import here."""

    def __init__(
        self,
        conflict: Conflict,
        here: SessionVersion | None,
        incoming: SessionVersion,
        on_server: bool = False,
    ) -> None:
        object.__setattr__(self, "conflict", conflict)
        object.__setattr__(self, "here", here)
        object.__setattr__(self, "incoming", incoming)
        object.__setattr__(self, "on_server", on_server)

    @property
    def differing(self) -> frozenset[str]:
        """The labels of what the two versions disagree on ("Timed", "Untimed", "Bills" too)."""
        if self.here is None:
            return frozenset()
        pairs = [(dict(self.here.fields), dict(self.incoming.fields))]
        found = {k for a, b in pairs for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        for label, ours, theirs in (
            ("Timed", self.here.segments, self.incoming.segments),
            ("Untimed", self.here.untimed, self.incoming.untimed),
            ("Bills", self.here.billed, self.incoming.billed),
        ):
            if ours != theirs:
                found.add(label)
        return frozenset(found)


@frozen_record
class ClinicRead:
    """What the desk read from the clinic server for a range: the session records this role
    may read (each with its ``workstation``) and every workstation's last sync and running
    codes."""

    records: tuple[dict[str, object], ...]
    workstations: tuple[server.WorkstationState, ...]
    kept_aside: tuple[server.KeptAside, ...] = ()
    """Versions the server would not write over, waiting for the desk."""
    copies: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """The server's copy of each kept-aside version's session, by session id."""

    def __init__(
        self,
        records: tuple[dict[str, object], ...],
        workstations: tuple[server.WorkstationState, ...],
        kept_aside: tuple[server.KeptAside, ...] = (),
        copies: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "workstations", workstations)
        object.__setattr__(self, "kept_aside", kept_aside)
        object.__setattr__(self, "copies", {} if copies is None else copies)


PdfRenderer = Callable[[Sequence[billing.ClaimDay], Path], None]
"""Draws the printable report of claim days (Qt's PDF writer lives under gui/: handed in)."""


def load_catalogue(data_dir: Path) -> Catalogue:
    """The built-in codes plus the clinic's own ``codes.toml`` in the data folder, if any."""
    return _load_catalogue(data_dir / CLINIC_CODES_FILE)


class Clinic:
    """Every operation on a clinic's recorded time; each step is committed before it returns.

    The store is the single source of truth: each stopwatch step rebuilds the session's
    stopwatch from it, so a command run from another program (a foot pedal, a script) is never
    overwritten with stale state, and nothing unsaved is ever reported as done.
    """

    def __init__(
        self,
        store: st.Store,
        catalogue: Catalogue,
        clock: Clock,
        *,
        policy: RoundingPolicy | None = None,
        actor: str | None = None,
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._clock = clock
        self._policy = policy
        self._actor = actor
        # Who furnishes the next code of a session with nothing running or paused: no segment
        # records it and the store has no column for it, so it lives only in this process.
        self._furnished_by: dict[str, FurnishedBy] = {}

    @classmethod
    def open(
        cls,
        data_dir: Path | None = None,
        *,
        clock: Clock | None = None,
        actor: str | None = None,
        catalogue: Catalogue | None = None,
    ) -> Clinic:
        """Open the clinic's data folder (``paths.data_dir`` when None), creating it as needed.

        The catalogue is read before the database is opened, so a bad ``codes.toml`` is
        reported without touching any file.
        """
        folder = paths.data_dir(data_dir)
        codes = catalogue if catalogue is not None else load_catalogue(folder)
        moment = clock or SystemClock()
        _check_clock(moment)
        return cls(st.Store.open(folder, clock=moment, actor=actor), codes, moment, actor=actor)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Clinic:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the clinic is --------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def data_dir(self) -> Path:
        return self._store.data_dir

    @property
    def database_path(self) -> Path:
        return self._store.path

    @property
    def policy(self) -> RoundingPolicy:
        """The rounding policy given, else the clinic's setting, else round down."""
        if self._policy is not None:
            return self._policy
        value = self._store.get_setting(ROUNDING_SETTING)
        try:
            return RoundingPolicy(value) if value else RoundingPolicy.DOWN
        except ValueError:
            raise InvalidInput(
                ROUNDING_SETTING, f"{value!r} is not a rounding policy (down or nearest)"
            ) from None

    def today(self) -> date:
        """The local calendar date: dates of service are local days (R1.2)."""
        return self._clock.now().astimezone().date()

    def data_version(self) -> int:
        """Changes when another program commits; poll it (one cheap query) to refresh."""
        return self._store.data_version()

    # -- settings a workstation remembers ------------------------------------------------------

    def remembered_header(self) -> Header:
        try:
            role = Role(self._store.get_setting(LAST_ROLE_SETTING, Role.PT.value) or "PT")
        except ValueError:
            role = Role.PT
        clinician = self._store.get_setting(LAST_CLINICIAN_SETTING, "") or ""
        return Header(
            clinician="" if clinician == UNNAMED_CLINICIAN else clinician,
            role=role,
            payer_profile=self._store.get_setting(LAST_PAYER_SETTING, "") or "",
        )

    def favourites(self, clinician: str, discipline: Discipline) -> list[str]:
        """The codes on a clinician's screen: their own choice, else the discipline's defaults.

        Kept under the name's ``clinician_key``; an older version kept them under the name as
        typed, which is still found (under any spelling of it) until they are next saved.
        """
        stored = None
        if clinician.strip():
            who = clinician_key(clinician)
            stored = self._store.get_setting(FAVOURITES_SETTING + who)
            if stored is None:
                stored = next(
                    (
                        value
                        for key, value in self._store.settings().items()
                        if key.startswith(FAVOURITES_SETTING)
                        and clinician_key(key.removeprefix(FAVOURITES_SETTING)) == who
                    ),
                    None,
                )
        codes = stored.split(",") if stored else list(self._catalogue.favourites(discipline))
        return [c for c in codes if c in self._catalogue]

    def save_favourites(self, clinician: str, codes: Sequence[str]) -> None:
        if clinician.strip():
            known = [self._catalogue.get(c).code for c in codes]
            self._store.set_setting(FAVOURITES_SETTING + clinician_key(clinician), ",".join(known))

    def forgot_to_stop_minutes(self) -> int:
        value = self._store.get_setting(FORGOT_TO_STOP_SETTING)
        try:
            minutes = int(value) if value else FORGOT_TO_STOP_DEFAULT
        except ValueError:
            minutes = FORGOT_TO_STOP_DEFAULT
        return max(1, minutes)

    def set_forgot_to_stop_minutes(self, minutes: int) -> int:
        minutes = max(1, int(minutes))
        self._store.set_setting(FORGOT_TO_STOP_SETTING, str(minutes))
        return minutes

    def command_defaults(self) -> Header:
        """Who a command-line session is for when the command does not say."""
        try:
            role = Role(self._store.get_setting(COMMAND_DEFAULTS["role"]) or Role.PT.value)
        except ValueError:
            role = Role.PT
        return Header(
            clinician=self._store.get_setting(COMMAND_DEFAULTS["clinician"]) or "",
            role=role,
            payer_profile=self.default_payer_profile(),
        )

    # -- payer profiles ------------------------------------------------------------------------

    def payer_profiles(self) -> list[PayerProfile]:
        return self._store.payer_profiles()

    def payer_profile(self, name: str) -> PayerProfile:
        """The profile named ``name`` (any case); InvalidInput listing the valid names."""
        profiles = self._store.payer_profiles()
        typed = name.strip() if isinstance(name, str) else ""
        for profile in profiles:
            if profile.name == typed:
                return profile
        folded = [p for p in profiles if _name_key(p.name) == _name_key(typed)]
        if len(folded) == 1:
            return folded[0]
        names = ", ".join(p.name for p in profiles) or "none yet"
        raise InvalidInput(
            "payer",
            f"there is no payer profile {rules.quote(name)}; the profiles are: {names}"
            " (add one with: therapy-timer payer add NAME --method cms|ama)",
        )

    def add_payer_profile(
        self, name: str, method: rules.Method | str, *, assistant_modifiers: bool = True
    ) -> PayerProfile:
        """Add a new profile; an existing one is never changed, because every session recorded
        under it would then bill differently (its units are worked out from the profile)."""
        chosen = _method(method)
        name = label_text(name, "payer_profile")
        if not _name_key(name):  # all Hangul fillers: a blank line in every list of payers
            raise InvalidInput(
                "payer_profile", f"must show the payer's name, got {rules.quote(name)}"
            )
        for profile in self._store.payer_profiles():
            if _name_key(profile.name) == _name_key(name):
                raise InvalidOperation(
                    f"payer profile {profile.name} already exists ({describe_profile(profile)});"
                    " a profile's sessions would bill differently if it changed: add one with"
                    " another name"
                )
        return self._store.save_payer_profile(
            PayerProfile(name=name, method=chosen, assistant_modifiers=assistant_modifiers),
            actor=self._actor,
        )

    def set_default_payer_profile(self, name: str) -> PayerProfile:
        """Make ``name`` the profile new sessions start with (the window and the CLI)."""
        profile = self.payer_profile(name)
        self._store.set_setting(DEFAULT_PAYER_SETTING, profile.name, actor=self._actor)
        return profile

    def default_payer_profile(self) -> str:
        """The clinic's default profile if it still exists, else Medicare, else the first one."""
        names = [p.name for p in self._store.payer_profiles()]
        chosen = self._store.get_setting(DEFAULT_PAYER_SETTING)
        if chosen in names:
            return str(chosen)
        if MEDICARE_PROFILE in names:
            return MEDICARE_PROFILE
        return names[0] if names else ""

    # -- sessions ------------------------------------------------------------------------------

    def open_session(
        self,
        *,
        patient_ref: str,
        clinician: str,
        role: Role,
        payer_profile: str,
        discipline: Discipline | None = None,
        date_of_service: date | None = None,
        remember: bool = False,
    ) -> Session:
        """Create an open session (today, the role's discipline unless given).

        ``remember``: the window keeps clinician, role and payer for the next patient.
        """
        session = self._store.create_session(
            date_of_service=self.today() if date_of_service is None else date_of_service,
            patient_ref=patient_ref,
            clinician=clinician,
            role=role,
            discipline=role.discipline if discipline is None else discipline,
            payer_profile=payer_profile,
            actor=self._actor,
        )
        if remember:
            self._store.set_setting(LAST_CLINICIAN_SETTING, session.clinician)
            self._store.set_setting(LAST_ROLE_SETTING, session.role.value)
            self._store.set_setting(LAST_PAYER_SETTING, session.payer_profile)
        return session

    def get_session(self, session_id: str) -> Session:
        return self._store.get_session(session_id)

    def list_sessions(
        self,
        *,
        day: date | None = None,
        start: date | None = None,
        end: date | None = None,
        clinician: str | None = None,
    ) -> list[Session]:
        return self._store.list_sessions(day=day, start=start, end=end, clinician=clinician)

    def open_sessions(self) -> list[Session]:
        return self._store.list_sessions(status=SessionStatus.OPEN)

    def session_for_command(self, patient: str | None, *, create: Header | None = None) -> Session:
        """The open session for ``patient``, or the only open session; create one when asked
        (``session_to_act_on`` without an id)."""
        return self.session_to_act_on(patient=patient, session=None, create=create)

    def end_session(self, session_id: str) -> Session:
        """Stop whatever runs and close the session, in one transaction."""
        session = self._open(session_id)
        stops: tuple[Segment, ...] = ()
        try:
            stopwatch = self._restore(session)
        except UnknownCode:
            # A code no longer in the clinic's code file: the stopwatch cannot be rebuilt, yet
            # the session must close (its problem is then shown and corrected like any other).
            now = self._clock.now()
            stops = tuple(
                replace(s, stop_utc=max(now, s.start_utc))
                for s in self._store.segments(session_id)
                if s.stop_utc is None
            )
        else:
            if stopwatch.running:
                stops = stopwatch.stop().closed
        closed = self._store.close_session(session_id, stops=stops, actor=self._actor)
        self._furnished_by.pop(session_id, None)
        return closed

    def close_session(
        self, session_id: str, *, allocation: Mapping[str, int] | None = None
    ) -> Session:
        """Close a session with the tie choice the summary showed (R2.8), if any.

        A session closed meanwhile by another program stays as it is.
        """
        session = self._store.get_session(session_id)
        if not session.is_open:
            return session
        if allocation is not None:
            self.choose_allocation(session_id, allocation)
        return self.end_session(session_id)

    def workspace(self, session_id: str) -> Workspace:
        """An open session with everything the window shows, read in one go."""
        session = self._store.get_session(session_id)
        policy = self.policy
        return Workspace(
            session=session,
            stopwatch=self._restore(session, policy=policy),
            untimed=tuple(self._store.untimed_services(session_id)),
            profile=self._store.get_payer_profile(session.payer_profile),
            policy=policy,
        )

    def clock_warning(self, session_id: str) -> ClockWarning | None:
        """Set when the clock reads earlier than a moment the session already recorded (a
        clock put back, a dead CMOS battery): its timers are held there, not counted back, so
        the minutes since shown are lost and a person must check them."""
        moments = [
            moment
            for segment in self._store.segments(session_id)
            for moment in (segment.start_utc, segment.stop_utc)
            if moment is not None
        ]
        now = self._clock.now()
        latest = max(moments, default=now)
        return ClockWarning(reading=now, used=latest) if now < latest else None

    def stopwatch(self, session_id: str) -> Stopwatch:
        """The session's stopwatch as stored now (for display; operations go through here)."""
        return self._restore(self._store.get_session(session_id))

    def segments(self, session_id: str) -> list[Segment]:
        return self._store.segments(session_id)

    def untimed_services(self, session_id: str) -> list[UntimedService]:
        return self._store.untimed_services(session_id)

    # -- billing -------------------------------------------------------------------------------

    def rules_input(self, session_id: str) -> RulesInput:
        """Minutes for ``rules.py``: the stopwatches plus untimed services entered by hand."""
        session = self._store.get_session(session_id)
        return billing.rules_input(
            self._restore(session), self._store.untimed_services(session_id), self._catalogue
        )

    def evaluate(self, workspace: Workspace, *, method: rules.Method | None = None) -> rules.Result:
        """The rules' answer from rows already read (a window repainting each second)."""
        return billing.evaluate(workspace.rows, self._catalogue, workspace.policy, method=method)

    def summary(self, session_id: str, allocation: Mapping[str, int] | None = None) -> rules.Result:
        """The billing answer and note for a session, under its payer profile's method.

        ``allocation`` picks one of the equally valid CMS allocations of a tie (R2.8); without
        it the choice stored with the session applies, else the rules' documented default.
        """
        session = self._store.get_session(session_id)
        # One read of the day serves R8.3 (the clinician's other patients) and R8.1 (the
        # patient's other clinicians), compared as the store compares them.
        dated = self._store.list_sessions(day=session.date_of_service)
        who, patient = clinician_key(session.clinician), billing.patient_key(session.patient_ref)
        same_day = [s for s in dated if clinician_key(s.clinician) == who]
        treated = [s for s in dated if billing.patient_key(s.patient_ref) == patient]
        times = self._store.segment_times_of(list({s.id: s for s in (*same_day, *treated)}))
        now = self._clock.now()
        concurrent = billing.concurrent_patients(same_day, times, self._catalogue, now)
        runs = billing.long_runs({session.id: times.get(session.id, ())}, self._catalogue, now)
        shared = billing.shared_patients(treated, times, self._catalogue, now)
        rows = billing.SessionRows(
            session,
            self._restore(session),
            self._store.untimed_services(session_id),
            self._store.get_payer_profile(session.payer_profile),
        )
        result = billing.evaluate(
            rows,
            self._catalogue,
            self.policy,
            allocation=allocation,
            concurrent=concurrent.get(session.id, ()),
            runs=runs.get(session.id, ()),
            shared=shared.get(session.id, ()),
        )
        day = self._pooled_days([session]).get(session.id)
        return result if day is None else billing.with_claim_day(result, session.id, day)

    def summaries(self, sessions: Sequence[Session]) -> dict[str, rules.Result]:
        """``summary`` for many sessions at once (a day or a year for the front desk).

        Segments and untimed services come in one query each rather than per session.
        """
        ids = [s.id for s in sessions]
        segments = self._store.segments_of(ids)
        untimed = self._store.untimed_services_of(ids)
        profiles = {p.name: p for p in self._store.payer_profiles()}
        heartbeat = self._trusted_heartbeat()
        times = {i: [billing.segment_times(s) for s in listed] for i, listed in segments.items()}
        now = self._clock.now()
        concurrent = billing.concurrent_patients(sessions, times, self._catalogue, now)
        shared = billing.shared_patients(sessions, times, self._catalogue, now)
        runs = billing.long_runs(times, self._catalogue, now)
        policy = self.policy
        pooled = self._pooled_days(sessions)
        found = {}
        for session in sessions:
            result = billing.evaluate(
                billing.SessionRows(
                    session,
                    self._restore(session, segments.get(session.id, []), heartbeat, policy),
                    untimed.get(session.id, []),
                    profiles[session.payer_profile],
                ),
                self._catalogue,
                policy,
                concurrent=concurrent.get(session.id, ()),
                runs=runs.get(session.id, ()),
                shared=shared.get(session.id, ()),
            )
            day = pooled.get(session.id)
            found[session.id] = (
                result if day is None else billing.with_claim_day(result, session.id, day)
            )
        return found

    def choose_allocation(
        self, session_id: str, allocation: Mapping[str, int] | None, *, reason: str = ""
    ) -> rules.Result:
        """Store a tie choice (R2.8) after checking the rules accept it; returns the new answer.

        On a closed session it needs a reason and marks the session amended (the store's rule).
        """
        result = self.summary(session_id, allocation)
        chosen = None if allocation is None else dict(result.allocation)
        self._store.choose_allocation(session_id, chosen, reason=reason, actor=self._actor)
        return self.summary(session_id)

    # -- corrections ---------------------------------------------------------------------------

    def amend_segment(
        self,
        segment_id: str,
        *,
        reason: str,
        minutes: int | None = None,
        code: str | None = None,
        furnished_by: FurnishedBy | None = None,
    ) -> Segment:
        """Correct a recorded stretch of time after the fact (audited, needs a reason).

        ``minutes`` sets its length from its start; a code is checked against the catalogue so a
        supervised modality stays allowed beside a timed code and a timed code does not.
        """
        entry, stop = self._checked_amendment(segment_id, minutes, code, furnished_by)
        return self._store.amend_segment(
            segment_id,
            reason=reason,
            stop_utc=stop,
            code=None if entry is None else entry.code,
            furnished_by=furnished_by,
            exclusive=None if entry is None else not entry.supervised_modality,
            actor=self._actor,
        )

    def _checked_amendment(
        self,
        segment_id: str,
        minutes: int | None,
        code: str | None,
        furnished_by: FurnishedBy | None,
    ) -> tuple[Code | None, datetime | None]:
        """``amend_segment``'s checks, nothing written: the new code's entry (None if kept)
        and the new stop (None if kept); InvalidInput or InvalidOperation says why not."""
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0
        ):
            raise InvalidInput("minutes", f"must be a whole number of minutes, got {minutes!r}")
        if minutes is not None and minutes > MAX_DAY_MINUTES:
            raise InvalidInput("minutes", f"{minutes} minutes is more than a day holds")
        segment = self._store.get_segment(segment_id)
        entry = None if code is None else self._catalogue.get(code, "code")
        session = self._store.get_session(segment.session_id)
        self._check_furnisher(
            session.role,
            entry or self._catalogue.get(segment.code),
            furnished_by or segment.furnished_by,
        )
        stop = None if minutes is None else segment.start_utc + timedelta(minutes=minutes)
        if stop is not None:
            self._check_room(
                session,
                segment,
                stop,
                exclusive=segment.exclusive if entry is None else not entry.supervised_modality,
                one_on_one=self._one_on_one(entry.code if entry else segment.code),
                furnished_by=furnished_by or segment.furnished_by,
            )
        return entry, stop

    def _check_room(
        self,
        session: Session,
        segment: Segment,
        stop: datetime,
        *,
        exclusive: bool,
        one_on_one: bool,
        furnished_by: FurnishedBy,
    ) -> None:
        """A corrected segment bills only time that happened: it ends by the session's close
        (by now while open), before the next exclusive code of the session, and before the
        same person's next one-on-one time with another patient. InvalidOperation says how
        much room there is and what to change first."""
        if stop <= (segment.stop_utc or segment.start_utc):
            return  # shortening never bills more
        start = segment.start_utc
        # (when, why, whether moving the session's later codes makes room)
        limits: list[tuple[datetime, str, bool]] = []
        end = session.closed_utc if session.closed_utc is not None else self._clock.now()
        limits.append(
            (
                end,
                f"the session closed at {_local_hm(end)}; add the time as its own segment"
                " only if the treatment really went on"
                if session.closed_utc is not None
                else f"now ({_local_hm(end)}): it is still open",
                False,
            )
        )
        if exclusive:
            for other in self._store.segments(session.id):
                if other.id != segment.id and other.exclusive and other.start_utc >= start:
                    limits.append(
                        (
                            other.start_utc,
                            f"{other.code} (segment {other.id[:SHORT_ID]}) starts at"
                            f" {_local_hm(other.start_utc)}",
                            True,
                        )
                    )
        if one_on_one:
            for other_session, other in self._one_on_one_elsewhere(session, furnished_by):
                if other.start_utc >= start:
                    limits.append(
                        (
                            other.start_utc,
                            f"{other.code} for patient {other_session.patient_ref} starts at"
                            f" {_local_hm(other.start_utc)} (one-on-one time of the same"
                            " person); correct that session first",
                            False,
                        )
                    )
        limit, why, movable = min(limits, key=lambda item: item[0])
        if stop > limit:
            room = max(limit - start, timedelta(0))
            # Only the window's corrections meet a later code of the session here (session
            # edit names its --shift-later before): the window offers to make room.
            raise (NoRoom if movable else InvalidOperation)(
                f"{segment.code} cannot run {_minutes_text(stop - start)}: there"
                f" {'is' if room == timedelta(minutes=1) else 'are'} only"
                f" {_minutes_text(room)} from its start at {_local_hm(start)} before {why}"
            )

    def _one_on_one_elsewhere(
        self, session: Session, furnished_by: FurnishedBy
    ) -> list[tuple[Session, Segment]]:
        """The one-on-one segments the same person (``_person``) recorded in the clinician's
        other sessions of the day (R8.3), each with its session."""
        person = _person(session, furnished_by)
        same_day = self._store.list_sessions(
            day=session.date_of_service, clinician=session.clinician
        )
        others = [s for s in same_day if s.id != session.id]
        segments = self._store.segments_of([s.id for s in others])
        return [
            (other_session, other)
            for other_session in others
            for other in segments.get(other_session.id, [])
            if self._one_on_one(other.code) and _person(other_session, other.furnished_by) == person
        ]

    def _check_moved_room(
        self, session: Session, moved: Sequence[Segment], delta: timedelta
    ) -> None:
        """The later segments ``moved`` by ``delta`` to make room must not run into the same
        person's one-on-one time with another patient (R8.3), as a longer segment must not
        (``_check_room``): InvalidOperation names the first one in the way."""
        # The day's other sessions read once per person, not once per segment moved (a
        # session switched between codes all day moves dozens).
        elsewhere: dict[tuple[str, bool], list[tuple[Session, Segment]]] = {}
        for segment in moved:
            if not self._one_on_one(segment.code):
                continue
            assert segment.stop_utc is not None
            # Only the time it would newly take: a move never bills more of a split already
            # recorded (and flagged) than it had.
            since = max(segment.stop_utc, segment.start_utc + delta)
            until = segment.stop_utc + delta
            person = _person(session, segment.furnished_by)
            if person not in elsewhere:
                elsewhere[person] = self._one_on_one_elsewhere(session, segment.furnished_by)
            for other_session, other in elsewhere[person]:
                if other.start_utc < until and (other.stop_utc is None or other.stop_utc > since):
                    raise InvalidOperation(
                        f"moving the later segments {_minutes_text(delta)} later would run"
                        f" {segment.code} (segment {segment.id[:SHORT_ID]}) until"
                        f" {_local_hm(until)}, into {other.code} for patient"
                        f" {other_session.patient_ref} from {_local_hm(other.start_utc)}"
                        " (one-on-one time of the same person); correct that session first"
                    )

    def correct_minutes(
        self, changes: Mapping[str, int], reason: str, *, make_room: bool = False
    ) -> None:
        """Apply {segment id: minutes} corrections with one reason: all of them, or none.

        Each is checked before any is written (a screen said "Not corrected" while the ones
        before the refused one had been). A change moves only its own segment's stop, checked
        against the others' stored times, so no check depends on another change; one that
        runs into a later code of its session is refused with NoRoom. ``make_room`` (one
        change alone) moves that code and the later ones later instead, as session edit
        --shift-later does."""
        reason_text(reason)
        if make_room:
            if len(changes) != 1:
                raise InvalidOperation(
                    "the later codes are moved for one change at a time; save that change alone"
                )
            ((segment_id, minutes),) = changes.items()
            self.lengthen_segment(segment_id, minutes, reason=reason, shift_later=True)
            return
        with self._store.together():
            for segment_id, minutes in changes.items():
                self._checked_amendment(segment_id, minutes, None, None)
            for segment_id, minutes in changes.items():
                self.amend_segment(segment_id, reason=reason, minutes=minutes)

    # -- untimed services ----------------------------------------------------------------------

    def add_untimed(
        self,
        session_id: str,
        code: str,
        *,
        minutes: int | None = None,
        furnished_by: FurnishedBy | None = None,
        reason: str = "",
    ) -> UntimedService:
        """Record an untimed service (an evaluation, group therapy); R7.9 holds here too.
        ``furnished_by`` defaults to the session's clinician (``Role.furnishes``)."""
        entry = self._catalogue.get(code, "code")
        if entry.timed:
            raise InvalidInput("code", f"{entry.code} is timed: use timer start {entry.code}")
        session = self._store.get_session(session_id)
        by = furnished_by or session.role.furnishes
        self._check_furnisher(session.role, entry, by)
        return self._store.add_untimed(
            session_id,
            code=entry.code,
            minutes=minutes,
            furnished_by=by,
            reason=reason,
            actor=self._actor,
        )

    def check_furnisher(self, role: Role, code: str, furnished_by: FurnishedBy) -> None:
        """Refuse (InvalidOperation) what recording ``code`` furnished by ``furnished_by`` in a
        session of a ``role`` would refuse (R7.9), before a session is opened for it: the
        window opened the session first, and a PTA's tick of an evaluation, refused, left an
        empty session open in the caseload."""
        self._check_furnisher(role, self._catalogue.get(code, "code"), furnished_by)

    def set_untimed(
        self,
        session_id: str,
        code: str,
        *,
        checked: bool,
        minutes: int | None = None,
        furnished_by: FurnishedBy | None = None,
    ) -> tuple[UntimedService, ...]:
        """Tick or untick an untimed service in an open session; returns the session's services."""
        entry = self._catalogue.get(code, "code")
        existing = [u for u in self._store.untimed_services(session_id) if u.code == entry.code]
        if checked and not existing:
            self.add_untimed(session_id, entry.code, minutes=minutes, furnished_by=furnished_by)
        elif not checked:
            for service in existing:
                self._store.remove_untimed(
                    service.id, reason=UNTIMED_REMOVED_REASON, actor=self._actor
                )
        return tuple(self._store.untimed_services(session_id))

    def set_untimed_minutes(
        self,
        session_id: str,
        code: str,
        minutes: int | None,
        *,
        furnished_by: FurnishedBy | None = None,
    ) -> tuple[UntimedService, ...]:
        """Give an untimed service its minutes (adding it when it was not ticked yet).

        The minutes are the code's: a second row an older version stored for it goes, or its
        minutes would still be added to these (R1.1)."""
        entry = self._catalogue.get(code, "code")
        existing = [u for u in self._store.untimed_services(session_id) if u.code == entry.code]
        if not existing and minutes is not None:
            self.add_untimed(session_id, entry.code, minutes=minutes, furnished_by=furnished_by)
        elif existing:
            first, *others = existing
            if first.minutes != minutes:
                self._store.amend_untimed(
                    first.id, minutes=minutes, reason=UNTIMED_MINUTES_REASON, actor=self._actor
                )
            for other in others:
                self._store.remove_untimed(
                    other.id, reason=UNTIMED_MINUTES_REASON, actor=self._actor
                )
        return tuple(self._store.untimed_services(session_id))

    # -- stopwatch steps -----------------------------------------------------------------------

    def start(self, session_id: str, code: str, furnished_by: FurnishedBy | None = None) -> Outcome:
        """Start ``code``; a treatment code stops the one running (R8.1).

        One-on-one time cannot be in two places: a timed code (not a supervised modality) the
        same person furnishes for another patient stops at the same moment (``elsewhere``
        says what); that patient's supervised modalities keep running, and an assistant's
        one-on-one time is theirs, not their supervising therapist's.
        """
        entry = self._catalogue.get(code, "code")
        by = furnished_by

        def start(session: Session, stopwatch: Stopwatch) -> Change:
            self._check_furnisher(session.role, entry, by or stopwatch.furnished_by)
            return stopwatch.start(entry.code, by)

        session = self._open(session_id)
        left = self._left_open(session)
        if left is not None:
            # Today's session takes the start as the one left open would have: unless given,
            # by whoever furnished its latest segment (or its pause's codes), and it is this
            # furnisher that is checked, before the session is closed: a start refused for
            # who furnishes it must not close anything. Read without rebuilding its stopwatch:
            # a code the clinic's code file dropped overnight must not refuse today's start.
            segments = self._store.segments(left.id)
            by = (
                furnished_by
                or self._chosen_furnisher(left)
                or (latest_furnisher(segments) if segments else left.role.furnishes)
            )
            self._check_furnisher(left.role, entry, by)
            session = self._today_for(left)
        outcome = self._step(session.id, "start", start, session)
        if left is not None:
            outcome = replace(outcome, left=self._store.get_session(left.id))
        opened = [s for s in outcome.change.opened if self._one_on_one(s.code)]
        if not opened:
            return outcome
        return replace(outcome, elsewhere=self._stop_one_on_one_elsewhere(outcome.session, opened))

    def _left_open(self, session: Session) -> Session | None:
        """``session`` if it was left open on an earlier day: dated before today, nothing
        running, and nothing recorded since the local date changed (its creation or its last
        segment's stop, whichever is later). Today's minutes must not be billed on its date.

        A timer still running (a visit across midnight) or a moment recorded today (paused
        at 00:02, started again at 00:03) is one visit carrying on: None. So is a session
        opened today for an earlier date, whose segments typed in by hand stop on that date.
        """
        if session.date_of_service >= self.today():
            return None  # most starts: no read
        segments = self._store.segments(session.id)
        if any(s.stop_utc is None for s in segments):
            return None
        recorded = max([session.created_utc, *(s.stop_utc for s in segments if s.stop_utc)])
        now = self._clock.now()
        return session if recorded.astimezone().date() < now.astimezone().date() else None

    def _today_for(self, left: Session) -> Session:
        """Close ``left`` as it stands (nothing runs: its minutes stay) and open today's session
        for the same patient, clinician, role, discipline and payer.

        There is no discarding a session, so one left with nothing recorded closes like any
        other. Another program (the foot pedal and the window) may have done this meanwhile:
        then its session of today is the one.
        """
        try:
            self.end_session(left.id)
        except InvalidOperation:
            if self._store.get_session(left.id).is_open:
                raise
        try:
            return self.open_session(
                patient_ref=left.patient_ref,
                clinician=left.clinician,
                role=left.role,
                discipline=left.discipline,
                payer_profile=left.payer_profile,
            )
        except InvalidOperation:
            return self.session_to_act_on(
                patient=left.patient_ref, session=None, clinician=left.clinician
            )

    def stop(self, session_id: str, code: str | None = None) -> Outcome:
        """Stop ``code``, or everything running when ``code`` is None."""
        return self._step(session_id, "stop", lambda _session, sw: sw.stop(code))

    def pause(self, session_id: str) -> Outcome:
        return self._step(session_id, "pause", lambda _session, sw: sw.pause())

    def resume(self, session_id: str) -> Outcome:
        """Restart the codes the pause remembered. A session left paused on an earlier day
        (``_left_open``) is closed as it stands and today's session restarts them, as a start
        would: the morning's minutes are not billed on the day the pause began."""
        session = self._open(session_id)
        left = self._left_open(session)
        pause = None if left is None else left.pause
        if left is None or pause is None:
            return self._step(session.id, "resume", lambda _session, sw: sw.resume(), session)
        for resumable in pause.resume:
            self._check_furnisher(
                left.role, self._catalogue.get(resumable.code), resumable.furnished_by
            )
        today = self._today_for(left)
        outcome = self._step(today.id, "resume", lambda _session, sw: sw.carry_on(pause), today)
        return replace(outcome, left=self._store.get_session(left.id))

    def set_furnished_by(self, session_id: str, furnished_by: FurnishedBy) -> Outcome:
        """Change who furnishes the running codes: closes their segments and opens new ones."""

        def switch(session: Session, stopwatch: Stopwatch) -> Change:
            for segment in stopwatch.running:
                self._check_furnisher(session.role, self._catalogue.get(segment.code), furnished_by)
            return stopwatch.set_furnished_by(furnished_by)

        return self._step(session_id, "furnished_by", switch)

    # -- heartbeat and crash recovery ----------------------------------------------------------

    def heartbeat(self) -> datetime:
        """Record that the app is alive now; crash recovery can stop timers at this moment."""
        now = self._clock.now()
        self._store.write_heartbeat(now)
        return now

    def interrupted(self) -> list[Interrupted]:
        """Open sessions with running segments: call at start-up and offer ``choices``.

        A segment also stays open when a command started it and no window was running, so
        "keep running" is always a choice; nothing is changed until ``recover`` is called.
        """
        heartbeat = self._trusted_heartbeat()
        by_session: dict[str, list[Segment]] = {}
        for segment in self._store.open_segments():
            by_session.setdefault(segment.session_id, []).append(segment)
        return [
            Interrupted(self._store.get_session(session_id), tuple(segments), heartbeat)
            for session_id, segments in by_session.items()
        ]

    def recover(
        self,
        session_id: str,
        choice: RecoveryChoice,
        *,
        reason: str = "",
        found: Interrupted | None = None,
    ) -> tuple[Segment, ...]:
        """Apply the user's choice for a session's running segments; the store audits it.

        ``found``: what was offered (a window asks at start-up, then holds the lease and beats
        itself, so the dead window's heartbeat must come from the offer). Returns the segments
        as they are afterwards (kept, stopped, or the discarded ones).
        """
        if found is not None and found.session.id == session_id:
            offered = [found]
        else:
            # A window that died leaves only the segments it showed to recover; ones a command
            # started afterwards are running, not interrupted.
            offered = [i for i in self.abandoned() if i.session.id == session_id]
        offered = offered or [i for i in self.interrupted() if i.session.id == session_id]
        # Only what still runs: another program may have stopped some since the offer.
        still = {s.id for s in self._store.open_segments(session_id)}
        segments = tuple(s for s in offered[0].segments if s.id in still) if offered else ()
        if not segments:
            raise InvalidOperation(f"session {session_id} has no running segments to recover")
        interrupted = Interrupted(offered[0].session, segments, offered[0].last_heartbeat)
        if choice is RecoveryChoice.KEEP_RUNNING:
            self._store.record_event(
                "recovery.keep_running",
                entity="session",
                entity_id=session_id,
                reason=reason,
                details={
                    "segments": [s.id for s in interrupted.segments],
                    "last_heartbeat": _iso(interrupted.last_heartbeat),
                },
                actor=self._actor,
            )
            return interrupted.segments
        if choice is RecoveryChoice.STOP_AT_HEARTBEAT:
            change = Change(
                session_id,
                closed=tuple(
                    replace(s, stop_utc=interrupted.stop_at(s)) for s in interrupted.segments
                ),
            )
            self._store.apply_stopwatch_change(
                change, action="recovery.stop_at_heartbeat", reason=reason, actor=self._actor
            )
            return change.closed
        return tuple(
            self._store.discard_segment(s.id, reason=reason or DISCARD_REASON, actor=self._actor)
            for s in interrupted.segments
        )

    # -- caseload -----------------------------------------------------------------------------

    def running(self) -> list[RunningPatient]:
        """Every open session with something running or paused, oldest first: the caseload
        the window's strip, the tray and ``timer status`` show."""
        by_session: dict[str, list[Segment]] = {}
        for segment in self._store.open_segments():
            by_session.setdefault(segment.session_id, []).append(segment)
        return [
            RunningPatient(session, tuple(by_session.get(session.id, ())))
            for session in self.open_sessions()
            if session.id in by_session or session.is_paused
        ]

    def hold_window(self) -> WindowLease:
        """The window's heartbeat: this process shows the stopwatches (see ``abandoned``)."""
        lease = replace(_this_process(), at_utc=self._clock.now())
        self._store.hold_window_lease(lease)
        return lease

    def release_window(self) -> bool:
        """The window closes normally: whatever still runs is simply running."""
        return self._store.release_window_lease(_this_process())

    def abandoned(self) -> list[Interrupted]:
        """Running segments of a window process that died: what to offer for recovery.

        Offered only when the window that showed them is provably gone (its pid is not
        running, or is another process now, or the machine restarted) and its last heartbeat
        is older than the heartbeat interval; only segments started by then, since a command
        may have started others after the window died. A timer a command started while no
        window ran belongs to no window: it is running, not interrupted.
        """
        lease = self._store.window_lease()
        if lease is None or _process_alive(lease):
            return []
        now = self._clock.now()
        if now - lease.at_utc < timedelta(seconds=HEARTBEAT_INTERVAL_SECONDS):
            return []
        heartbeat = self._trusted_heartbeat()
        by_session: dict[str, list[Segment]] = {}
        for segment in self._store.open_segments():
            if segment.start_utc <= lease.at_utc:
                by_session.setdefault(segment.session_id, []).append(segment)
        return [
            Interrupted(self._store.get_session(session_id), tuple(segments), heartbeat)
            for session_id, segments in by_session.items()
        ]

    def undo_elsewhere(self, outcome: Outcome, *, reason: str = "") -> None:
        """Take back a start that stopped one-on-one time for other patients (a mistaken tap):
        the codes it opened are discarded (audited), and what it stopped, in its own session
        and elsewhere, runs on as if never stopped: the same segment, the seconds between the
        tap and the undo included (audited as "segment.reopen"). A stopped code whose session
        has moved on meanwhile (paused, or another code started there) starts afresh."""
        why = reason or UNDO_ELSEWHERE_REASON
        for segment in outcome.change.opened:
            self._store.discard_segment(segment.id, reason=why, actor=self._actor)
        stopped = [(outcome.session.id, s) for s in outcome.change.closed]
        stopped += [(o.session.id, s) for o in outcome.elsewhere for s in o.change.closed]
        for session_id, segment in stopped:
            try:
                self._store.reopen_segment(segment.id, reason=why, actor=self._actor)
            except InvalidOperation:
                self.start(session_id, segment.code, segment.furnished_by)

    def _one_on_one(self, code: str) -> bool:
        if code not in self._catalogue:
            # A code the clinic's code file dropped: its session cannot be rebuilt to stop it
            # (ending that session stops it), and it must not keep every other patient's start.
            return False
        entry = self._catalogue.get(code)
        return entry.timed and not entry.supervised_modality

    def _stop_one_on_one_elsewhere(
        self, session: Session, opened: Sequence[Segment]
    ) -> tuple[Outcome, ...]:
        people = {_person(session, s.furnished_by) for s in opened}
        stopped: list[Outcome] = []
        by_session: dict[str, list[Segment]] = {}
        for segment in self._store.open_segments():
            if segment.session_id != session.id and self._one_on_one(segment.code):
                by_session.setdefault(segment.session_id, []).append(segment)
        for other_id, segments in by_session.items():
            other = self._store.get_session(other_id)
            for segment in segments:
                if _person(other, segment.furnished_by) in people:
                    stopped.append(
                        self._step(other_id, "stop.one_on_one_elsewhere", _stopping(segment.code))
                    )
        return tuple(stopped)

    # -- claim days ----------------------------------------------------------------------------

    def iter_claim_days(
        self,
        start: date,
        end: date | None = None,
        *,
        clinician: str | None = None,
        note: bool = True,
    ) -> Iterator[billing.ClaimDay]:
        """Claim days (R1.2) with a date of service from ``start`` to ``end`` (inclusive).

        A day pools every session of one patient reference (compared as the store compares
        them), date, discipline and payer, whoever furnished it; with ``clinician``, the days
        in which that clinician saw the patient, still billed whole. Read a date at a time.
        Without ``note`` the answers' notes are empty (a CSV does not show them).
        """
        if end is not None and end < start:
            raise InvalidInput("to", f"{end.isoformat()} is before {start.isoformat()}")
        days = self._claim_days_of(self._sessions_by_date(start, end or start), note=note)
        return days if clinician is None else _seen_by(days, clinician_key(clinician))

    def claim_days(
        self, start: date, end: date | None = None, *, clinician: str | None = None
    ) -> list[billing.ClaimDay]:
        """``iter_claim_days`` as a list (a screen shows them all)."""
        return list(self.iter_claim_days(start, end, clinician=clinician))

    def change_patient_ref(self, session_id: str, patient_ref: str, *, reason: str) -> Session:
        """Give one session another patient reference (two people shared one), audited.

        Needs a reason; a closed session is marked amended, so the exported day it joins is
        exported again, and so is the exported day it leaves (``move_session``).
        """
        return self.move_session(session_id, reason=reason, patient_ref=patient_ref)

    def change_payer(self, session_id: str, payer_profile: str, *, reason: str) -> Session:
        """Bill one session under another payer profile (the wrong one was chosen), audited;
        both claim days it moves between are exported again, as with ``change_patient_ref``."""
        return self.move_session(session_id, reason=reason, payer_profile=payer_profile)

    def move_session(
        self,
        session_id: str,
        *,
        reason: str,
        patient_ref: str | None = None,
        payer_profile: str | None = None,
    ) -> Session:
        """Change what puts a session on its claim day (``change_patient_ref`` and
        ``change_payer`` at once), both fields in one audited write (a wrong payer leaves the
        patient unchanged too); the other sessions of the day it leaves are told (their charges
        went out with this session's minutes pooled in)."""
        session = self._store.get_session(session_id)
        key = billing.day_key(session)
        left_behind = [
            s.id
            for s in self._store.list_sessions(day=session.date_of_service)
            if s.id != session_id and billing.day_key(s) == key
        ]
        return self._store.amend_session(
            session_id,
            reason=reason,
            patient_ref=patient_ref,
            payer_profile=payer_profile,
            actor=self._actor,
            left_behind=left_behind,
        )

    def _sessions_by_date(self, start: date, end: date) -> Iterator[_Read]:
        """The sessions of a range in date order, listed a few whole dates (about
        CLAIM_DAY_BATCH sessions) at a time: a clinic-year never sits in memory at once.

        Each list comes with the audit mark taken just before it was read (its segments are
        read later still): an export leaves what changed after it due (``Store.mark_exported``).
        """

        def read(dates: list[date]) -> _Read:
            mark = self._store.audit_mark()
            return mark, self._store.list_sessions(start=dates[0], end=dates[-1])

        batch: list[date] = []
        listed = 0
        for day, count in self._store.sessions_per_date(start, end):
            if batch and listed + count > CLAIM_DAY_BATCH:
                yield read(batch)
                batch, listed = [], 0
            batch.append(day)
            listed += count
        if batch:
            yield read(batch)

    def _claim_days_of(
        self, reads: Iterable[_Read], *, note: bool = True
    ) -> Iterator[billing.ClaimDay]:
        """Claim days of the sessions ``reads`` list (in order of date), read in batches
        (``_batches``)."""
        for batch in self._batches(reads):
            yield from self._batch_days(batch, batch.rows, note=note)

    def _batches(self, reads: Iterable[_Read]) -> Iterator[_Batch]:
        """What billing needs of the sessions ``reads`` list (in order of date), each with its
        audit mark, reading whole dates in batches of about CLAIM_DAY_BATCH sessions: a year
        never sits in memory as segments, and a query per date would cost more than the rules
        (about a millisecond each).

        A session whose segments have all stopped is billed on their summed times; only the
        others (a timer running, a pause, rows the stopwatch must check) restore a stopwatch."""
        policy = self.policy
        heartbeat = self._trusted_heartbeat()
        profiles = {p.name: p for p in self._store.payer_profiles()}
        now = self._clock.now()
        canonical: dict[str, str] = {}
        days: dict[date, tuple[datetime, datetime]] = {}
        batches = (
            (mark, dated)
            for mark, listed in reads
            for dated in _whole_dates(listed, CLAIM_DAY_BATCH)
        )
        for mark, dated in batches:
            ids = [s.id for s in dated]
            times = self._store.segment_times_of(ids)
            untimed = self._store.untimed_services_of(ids)
            totals: dict[str, billing.StoppedTotals] = {}
            for s in dated:
                if s.pause is None:
                    day = days.get(s.date_of_service)
                    if day is None:
                        day = days[s.date_of_service] = billing.local_day(s.date_of_service)
                    summed = billing.stopped_totals(
                        times.get(s.id, ()), self._catalogue, policy, canonical, day
                    )
                    if summed is not None:
                        totals[s.id] = summed
            # Whole segment records only for the few sessions a stopwatch must restore.
            restore = [s.id for s in dated if s.id not in totals]
            segments = self._store.segments_of(restore) if restore else {}
            rows = [
                billing.stopped_rows(
                    s, totals[s.id], untimed.get(s.id, ()), profiles[s.payer_profile]
                )
                if s.id in totals
                else self._session_rows(
                    s,
                    segments.get(s.id, []),
                    untimed.get(s.id, []),
                    profiles,
                    heartbeat,
                    policy,
                )
                for s in dated
            ]
            yield _Batch(
                rows,
                billing.concurrent_patients(dated, times, self._catalogue, now),
                billing.shared_patients(dated, times, self._catalogue, now),
                times,
                self._store.changed_since_export([s.id for s in dated if s.exported and s.amended]),
                mark,
            )

    def _batch_days(
        self, batch: _Batch, rows: Sequence[billing.SessionRows], *, note: bool = True
    ) -> Iterator[billing.ClaimDay]:
        """The claim days of ``rows``, sessions of ``batch``."""
        return billing.claim_days(
            rows,
            self._catalogue,
            self.policy,
            concurrent=batch.concurrent,
            shared=batch.shared,
            spans=_spans([r.session.id for r in rows], batch.segments),
            stale=batch.stale,
            problem=self.session_problem,
            note=note,
            read_mark=batch.read_mark,
            runs=billing.long_runs(
                {r.session.id: batch.segments.get(r.session.id, ()) for r in rows},
                self._catalogue,
                self._clock.now(),
            ),
        )

    def _csv_lines(
        self, start: date, end: date, clinician: str | None, tally: _Tally
    ) -> Iterator[str]:
        """A range's CSV rows as lines, ``export.csv_rows`` of its claim days, a date at a time.

        Why not just that: most days of a clinic-year are plain (``billing.plain_request``:
        closed sessions of stopped segments, no tie choice stored), and building each one's
        ``ClaimDay``, visits, answer and properties cost more than the rows. A plain day's
        rows are written from the cells of its answer, made once for all the days that ask
        the same (``rules.answer_key``; a day of one session: ``billing.plain_key``) with the
        same R8.3 flag: the flag's cell names no patient, so which patients overlapped does
        not change the rows. The day's own cells come from the same cell, status and
        why-nothing functions as a ``ClaimDay``'s; any other day goes through ``claim_days``
        and ``csv_rows`` whole, in the same place: a day whose warnings are its own, not its
        request's (R8.1's two clinicians at once for its patient, R8.2's group therapy in two
        sessions: ``plain_request``), and a patient's claim days of one date under a catalogue
        with MUEs (R9.4 holds them to a code's MUE together) or billing codes NCCI pairs across
        plans of care (R9.3). tests/test_export_fast_path.py holds the two equal on generated
        databases.
        """
        from therapy_timer import export as ex

        catalogue, policy = self._catalogue, self.policy
        Cells = tuple[ex.AnswerCells, str | None]
        # By the R8.3 flag and the request's answer_key, or for a day of one session (most
        # days) its plain_key, which asks the same without the request being made.
        asked: dict[tuple[object, ...], Cells] = {}
        alone: dict[tuple[object, ...], Cells] = {}
        who = None if clinician is None else clinician_key(clinician)

        def ask(
            memo: dict[tuple[object, ...], Cells],
            key: tuple[object, ...],
            request: rules.Request | None,
            others: list[str],
        ) -> Cells | None:
            """The cells of a plain day's answer, kept in ``memo``; None if not plain."""
            result = None if request is None else billing.plain_answer(request, catalogue, others)
            if result is None:
                return None
            if len(memo) >= _ANSWER_CELLS_KEPT:
                memo.clear()
            why = billing.nothing_billable(result, problems=False, provisional=False)
            memo[key] = (ex.answer_cells(result), why)
            return memo[key]

        def plain_lines(batch: _Batch, members: list[billing.SessionRows]) -> Iterable[str] | None:
            """A claim day's lines written from its answer's memoised cells, none when the
            clinician filter leaves it out; None when the day is not plain."""
            overlaps = batch.concurrent
            if len(members) == 1:  # most days: read without a pass over their sessions
                only = members[0].session
                if who is not None and clinician_key(only.clinician) != who:
                    return ()
                sessions, ids = [only], [only.id]
                # Who overlapped is named only in an answer not yet made.
                flagged = bool(overlaps.get(only.id))
                single = billing.plain_key(members[0])
                amended = only.amended
            else:
                sessions = [r.session for r in members]
                if who is not None and not any(clinician_key(s.clinician) == who for s in sessions):
                    return ()
                ids = [s.id for s in sessions]
                flagged = billing.day_flagged(ids, overlaps)
                single = None
                amended = any([s.amended for s in sessions])
            if billing.day_flagged(ids, batch.shared):
                return None  # R8.1's warning is the day's, as claim_days adds it
            if single is not None:
                key = (single, flagged)
                known = alone.get(key) or ask(
                    alone,
                    key,
                    billing.plain_request(members, catalogue, policy),
                    billing.day_concurrent(ids, overlaps),
                )
            elif (request := billing.plain_request(members, catalogue, policy)) is not None:
                key = (rules.answer_key(request), flagged)
                known = asked.get(key) or ask(
                    asked, key, request, billing.day_concurrent(ids, overlaps)
                )
            else:
                return None
            if known is None:
                return None
            tally.plain(sessions, ids, batch.read_mark)
            answer, why = known
            first = sessions[0]
            stale = batch.stale
            status = billing.day_status(
                sessions, provisional=False, changed=bool(stale) and any([i in stale for i in ids])
            )
            return ex.day_lines(
                ex.day_cells(
                    first.date_of_service, first.patient_ref, first.discipline, first.payer_profile
                ),
                answer,
                ex.day_tail(answer, billing.clinician_labels(sessions), ids, amended, status),
                "" if why is None else ex.neutralise(f"nothing billable: {why}"),
                why,
            )

        for batch in self._batches(self._sessions_by_date(start, end)):
            groups = billing.day_groups(batch.rows)
            for together in billing.patient_dates(groups):
                if len(together) > 1 and (catalogue.mues or billing.may_pair_across(together)):
                    # A patient's claim days of one date under MUEs, or billing codes NCCI pairs
                    # across plans of care: each may carry the R9.4 warning of their units
                    # summed or R9.3's of the pair (claim_days), which no plain answer has.
                    days = self._batch_days(batch, [r for m in together for r in m], note=False)
                    if who is not None:
                        days = _seen_by(days, who)
                    yield from ex.csv_lines(ex.csv_rows(tally.days(days)))
                    continue
                for members in together:
                    lines = plain_lines(batch, members)
                    if lines is None:
                        days = self._batch_days(batch, members, note=False)
                        lines = ex.csv_lines(ex.csv_rows(tally.days(days)))
                    yield from lines

    def _session_rows(
        self,
        session: Session,
        segments: Sequence[Segment],
        untimed: Sequence[UntimedService],
        profiles: Mapping[str, PayerProfile],
        heartbeat: datetime | None,
        policy: RoundingPolicy,
    ) -> billing.SessionRows:
        """A session's rows for a claim day; rows that cannot even be read as minutes (a code
        no longer in the catalogue) come as an empty stopwatch and the problem, so the rest of
        the day still bills."""
        profile = profiles[session.payer_profile]
        try:
            stopwatch = self._restore(session, segments, heartbeat, policy)
        except InvalidInput as exc:
            # Without the pause too: it may name the code no longer in the catalogue.
            empty = self._restore(replace(session, pause=None), [], None, policy)
            return billing.SessionRows(
                session, empty, (), profile, problem=self.session_problem(session, exc)
            )
        return billing.SessionRows(session, stopwatch, untimed, profile)

    def _pooled_days(self, sessions: Sequence[Session]) -> dict[str, billing.ClaimDay]:
        """The claim day of each of ``sessions`` that shares its day with another session."""
        if not sessions:
            return {}
        dates = sorted({s.date_of_service for s in sessions})
        keys = {billing.day_key(s) for s in sessions}
        groups: dict[billing.DayKey, list[Session]] = {}
        for other in self._store.list_sessions(start=dates[0], end=dates[-1]):
            if billing.day_key(other) in keys:
                groups.setdefault(billing.day_key(other), []).append(other)
        shared = sorted(
            (s for g in groups.values() if len(g) > 1 for s in g),
            key=lambda s: (s.date_of_service, s.created_utc, s.id),
        )
        return {
            sid: day for day in self._claim_days_of([(None, shared)]) for sid in day.session_ids
        }

    # -- the front desk ------------------------------------------------------------------------

    def export(
        self,
        fmt: str,
        start: date,
        end: date | None = None,
        *,
        out: Path | None = None,
        include_open: bool = False,
        clinician: str | None = None,
        workstation: str = "",
        force: bool = False,
        mark: bool | None = None,
        render_pdf: PdfRenderer | None = None,
        days: Sequence[billing.ClaimDay] | None = None,
    ) -> Exported:
        """Export a day or range: CSV/JSON/PDF by claim day for billing, a bundle to merge.

        CSV, JSON and PDF bill claim days (R1.2): one row per billable line of a day, a day
        that bills nothing on one row saying why; with ``include_open`` a day still open is
        listed as provisional and none of its sessions is marked. With no ``out`` it is a
        preview (the text is returned) and marks nothing unless ``mark``; a file is written
        whole (private, atomically) before any session is marked exported, and never over the
        clinic's own files. ``days`` are the days a screen shows (filtered); by default every
        day of the range, read a date at a time.
        """
        from therapy_timer import export as ex

        fmt = fmt.lower()
        if fmt not in ex.EXPORT_FORMATS:
            raise InvalidInput("format", f"{fmt!r} is not one of {', '.join(ex.EXPORT_FORMATS)}")
        if end is not None and end < start:
            raise InvalidInput("to", f"{end.isoformat()} is before {start.isoformat()}")
        # --include-open lists open sessions in the other formats; a bundle never takes them.
        advice = ex.BUNDLE_OPEN_ADVICE if fmt == "bundle" else ex.INCLUDE_OPEN_ADVICE
        if days is not None:
            if not include_open or fmt == "bundle":
                ex.refuse_open(days, advice)
        elif not include_open or fmt == "bundle":
            ex.refuse_open_sessions(
                self._open_in_range(start, end or start, clinician, fmt), advice
            )
        if fmt == "bundle":
            if days is not None:
                ids = [s.id for d in days for s in d.sessions]
            else:
                listed = self._store.list_sessions(
                    start=start, end=end or start, clinician=clinician
                )
                ids = [s.id for s in listed]
            bundle = ex.make_bundle(
                self._store.session_records(ids), workstation=workstation, now=self._clock.now()
            )
            text: str | None = ex.bundle_text(bundle)
            # A bundle copies sessions to another station; it bills nothing, so marks nothing.
            return self._write_export(text, None, out, force, _Tally(ids), mark=False)
        tally = _Tally()
        if fmt == "csv":
            lines = (
                self._csv_lines(start, end or start, clinician, tally)
                if days is None
                else ex.csv_lines(ex.csv_rows(tally.days(days)))
            )
            if out is None:
                with collector_paused():
                    text = ex.csv_text(lines)
                return self._write_export(text, None, out, force, tally, mark=mark)

            # Streamed into the file as the days are billed: a clinic-year's CSV is never
            # held in memory (the file is still renamed into place only once whole).
            def stream(path: Path) -> None:
                with path.open("w", encoding="utf-8", newline="") as handle, collector_paused():
                    ex.write_csv_lines(lines, handle)

            return self._write_export(None, stream, out, force, tally, mark=mark)
        if days is not None:
            source: Iterable[billing.ClaimDay] = days
        else:  # with their answers' notes, which JSON and PDF show
            source = self.iter_claim_days(start, end, clinician=clinician)
        if fmt == "pdf":
            if out is None:
                raise InvalidInput("out", "a PDF needs a file name")
            if render_pdf is None:
                raise InvalidOperation("this program cannot draw PDF reports")
            draw, pdf_days = render_pdf, list(tally.days(source))
            return self._write_export(
                None, lambda path: draw(pdf_days, path), out, force, tally, mark=mark
            )
        with collector_paused():
            text = ex.report_text(tally.days(source), fmt)
        return self._write_export(text, None, out, force, tally, mark=mark)

    def _open_in_range(
        self, start: date, end: date, clinician: str | None, fmt: str
    ) -> list[Session]:
        """Open sessions an export of the range would include (a day of the clinician's)."""
        still_open = self._store.list_sessions(start=start, end=end, status=SessionStatus.OPEN)
        if clinician is None or not still_open:
            return still_open
        if fmt == "bundle":
            who = clinician_key(clinician)
            return [s for s in still_open if clinician_key(s.clinician) == who]
        theirs = self._store.list_sessions(start=start, end=end, clinician=clinician)
        keys = {billing.day_key(s) for s in theirs}
        return [s for s in still_open if billing.day_key(s) in keys]

    def _write_export(
        self,
        text: str | None,
        draw: Callable[[Path], None] | None,
        out: Path | None,
        force: bool,
        tally: _Tally,
        *,
        mark: bool | None,
    ) -> Exported:
        """``text``, or what ``draw`` writes into a temporary file, written whole to ``out``;
        then the sessions ``tally`` counted are marked exported (a preview: only if asked)."""
        written = None
        if out is not None:
            protected = self.owned_paths()
            if draw is not None:
                with private_output(out, force=force, protected=protected) as temporary:
                    draw(temporary)
                written = Path(os.path.abspath(out))
            else:
                assert text is not None
                written = write_private(out, text, force=force, protected=protected)
        marked = changed = 0
        if mark if mark is not None else written is not None:
            changed = len(
                self._store.mark_exported(
                    tally.to_mark, actor=self._actor, read_marks=tally.read_marks
                )
            )
            marked = len(tally.ids) - changed
        return Exported(
            sessions=tally.sessions, path=written, text=text, marked=marked, changed=changed
        )

    def import_bundles(self, bundle_paths: Sequence[Path]) -> ex.ImportReport:
        """Merge bundles: an identical session is left alone; a different one with the same id
        is a conflict, kept aside in ``conflicts/`` for a person and never overwritten.

        All files are read and checked before anything is written, and merged in one
        transaction.
        """
        from therapy_timer import export as ex

        live = self._live_files()
        for path in bundle_paths:
            if any(same_file(path, own) for own in live):
                # Reading it would open and close a descriptor on a file SQLite holds locks on
                # in this process, which drops them (house style: never a second descriptor).
                raise InvalidInput(
                    str(path),
                    "is the Therapy Timer database or its journal, not a bundle",
                    source=str(path),
                )
        bundles = [(path, ex.read_bundle(path)) for path in bundle_paths]
        batches = [
            st.RecordBatch(bundle["sessions"], origin=bundle["workstation"], source=str(path))
            for path, bundle in bundles
        ]
        folder = self.data_dir / ex.CONFLICTS_DIRNAME
        if os.path.lexists(folder) and not folder.is_dir():
            # Checked before the merge: the copy of a conflict failed after it was committed.
            raise StorageUnavailable(
                f"{folder} should be the folder of the versions imports keep aside but is a file"
                " or a link to nothing; move it away. Nothing was imported."
            )
        outcomes = self._store.import_batches(batches, actor=self._actor)
        if any(outcome.conflicts for outcome in outcomes):
            # Once for the folder: swept for each file written, it was listed once per
            # conflict, and it keeps every version ever kept aside (an import of a week of a
            # 20-clinician clinic, 2,001 conflicts, matched 2 million names).
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            remove_leftovers(folder, written_beside(".+"))
        added: list[str] = []
        unchanged: list[str] = []
        conflicts: list[str] = []
        files: list[Path] = []
        why: list[str] = []
        for (_path, bundle), outcome in zip(bundles, outcomes, strict=True):
            added += outcome.added
            unchanged += outcome.unchanged
            for record in outcome.conflicts:
                conflicts.append(str(record["id"]))
                why.append(outcome.why.get(str(record["id"]), ""))
                # The database keeps every version (Clinic.conflicts); the file is a copy a
                # person can open, named by its content so no version replaces another.
                target = ex.conflict_path(
                    folder, str(record["id"]), bundle["workstation"], st.version_hash(record)
                )
                if not target.exists():
                    write_private(target, ex.conflict_text(why[-1], record), swept=True)
                files.append(target)
        return ex.ImportReport(
            tuple(added), tuple(unchanged), tuple(conflicts), tuple(files), tuple(why)
        )

    def owned_paths(self) -> list[Path]:
        """The files and folders of the clinic's data no export or copy may ever replace."""
        from therapy_timer import export as ex

        folders = [st.backups_dir(self.data_dir), self.data_dir / ex.CONFLICTS_DIRNAME]
        files = [self.data_dir / CLINIC_CODES_FILE, self._sync_state_path()]
        return [*self._live_files(), *folders, *files]

    def _live_files(self) -> list[Path]:
        """The database and its journals: SQLite's, which no descriptor of ours may touch."""
        database = self._store.path
        return [database, *(Path(f"{database}{s}") for s in ("-wal", "-shm", "-journal"))]

    def mark_exported(
        self, session_ids: Sequence[str], *, read_marks: Mapping[str, int] | None = None
    ) -> set[str]:
        """Mark sessions exported (billed by hand from a screen); return those left due because
        they changed after the audit mark of the read that showed them (``ClaimDay.read_mark``)."""
        return self._store.mark_exported(session_ids, actor=self._actor, read_marks=read_marks)

    def backup(self, dest: Path | None = None, *, force: bool = False) -> Path:
        """Copy the database now: to the backups folder, or whole and private to ``dest``."""
        if dest is None:
            return self._store.backup()
        with private_output(dest, force=force, protected=self.owned_paths()) as temporary:
            self._store.backup(temporary)
        return dest

    def daily_backup(self) -> Path | None:
        """Make today's backup unless there is one (checks integrity first)."""
        return self._store.daily_backup()

    @staticmethod
    def restore(file: Path, *, data_dir: Path | None, clock: Clock) -> Path | None:
        """Put a backup back (validated first); returns where the replaced database was kept."""
        return st.restore(file, data_dir=paths.data_dir(data_dir), clock=clock)

    # -- finding sessions ----------------------------------------------------------------------

    def find_session(self, typed: str, *, patient: str | None = None) -> Session:
        """The session whose id is ``typed`` or starts with it, as git finds commits.

        InvalidInput when none matches, or naming the matching sessions when several do, or
        when ``patient`` is given and the session is another patient's (never one ignored).
        """
        text = _typed_id(typed, "session")
        found = self._store.sessions_by_prefix(text, limit=AMBIGUOUS_SHOWN + 1)
        chosen = _one_by_prefix(text, "session", found, session_label, "session list shows the ids")
        if patient is not None and chosen.patient_ref.casefold() != patient.strip().casefold():
            raise InvalidInput(
                "session",
                f"session {chosen.id[:SHORT_ID]} is patient {chosen.patient_ref}'s, not"
                f" {rules.quote(patient.strip())}'s; give --session or --patient, or both for"
                " the same patient",
            )
        return chosen

    def find_segment(self, typed: str) -> Segment:
        """The segment whose id is ``typed`` or starts with it (``session show`` lists them)."""
        text = _typed_id(typed, "segment")
        found = self._store.segments_by_prefix(text, limit=AMBIGUOUS_SHOWN + 1)
        return _one_by_prefix(
            text, "segment", found, segment_label, "session show SESSION lists them"
        )

    def session_to_act_on(
        self,
        *,
        patient: str | None,
        session: str | None,
        create: Header | None = None,
        clinician: str | None = None,
    ) -> Session:
        """The open session a command names by id (or prefix), else by patient (and clinician,
        when given), else the only open one; with ``create``, a new session for ``patient``
        when it has none (with ``create.clinician``, whose session it then is).

        A patient reference matches whatever its case, as the store compares them; when several
        sessions match, the message lists them so that one can be named with --session.
        An empty ``patient`` or ``clinician`` (a script's unset variable) is refused, never
        taken for one not given.
        """
        if patient is not None and not patient.strip():
            raise InvalidInput("patient_ref", PATIENT_REF_MISSING)
        if clinician is not None and not clinician.strip():
            raise InvalidInput("clinician", "it is empty; give the clinician's name")
        if session is None:
            open_sessions = self.open_sessions()
            if patient is not None:
                typed = patient.strip().upper()
                open_sessions = [s for s in open_sessions if s.patient_ref.upper() == typed]
            if clinician is not None:
                who = clinician_key(clinician)
                open_sessions = [s for s in open_sessions if clinician_key(s.clinician) == who]
            if len(open_sessions) == 1:
                return open_sessions[0]
            if len(open_sessions) > 1:
                whose = "" if patient is None else f" for patient {open_sessions[0].patient_ref}"
                other = "" if patient is not None else "--patient REF or "
                raise InvalidOperation(
                    f"{len(open_sessions)} sessions are open{whose}: "
                    + "; ".join(session_label(s) for s in open_sessions[:AMBIGUOUS_SHOWN])
                    + f". Name one with {other}--session ID"
                )
            if create is not None and patient is not None:
                return self.open_session(
                    patient_ref=patient,
                    clinician=create.clinician,
                    role=create.role,
                    payer_profile=create.payer_profile,
                )
            who = "" if patient is None else f" for {patient.strip()}"
            with_whom = "" if clinician is None else f" with {clinician.strip()}"
            raise InvalidOperation(
                f"no open session{who}{with_whom}; start one with: timer start CODE --patient REF"
            )
        chosen = self.find_session(session, patient=patient)
        if not chosen.is_open:
            raise InvalidOperation(
                f"session {chosen.id[:SHORT_ID]} ({chosen.patient_ref}) is closed; correct it with"
                " session edit or session add-segment and a reason"
            )
        return chosen

    def session_states(self, sessions: Sequence[Session]) -> dict[str, tuple[str, ...]]:
        """What a person asks about each session: open or closed, then amended, exported (and
        amended after export), imported, and "conflict" while another version an import
        kept aside waits for a decision (conflicts list), in that order."""
        from therapy_timer import export as ex

        stale = self._store.changed_since_export([s.id for s in sessions if s.exported])
        waiting = {c.session_id for c in self.conflicts()}
        states: dict[str, tuple[str, ...]] = {}
        for s in sessions:
            words = ["open" if s.is_open else "closed"]
            if s.amended:
                words.append("amended")
            if s.exported:
                words.append(ex.AMENDED_AFTER_EXPORT if s.id in stale else "exported")
            if s.origin is not None:
                words.append(f"imported from {s.origin}")
            if s.id in waiting:
                words.append("conflict")
            states[s.id] = tuple(words)
        return states

    # -- corrections a person asks for ---------------------------------------------------------

    def add_forgotten_segment(
        self,
        session_id: str,
        code: str,
        *,
        start: time,
        minutes: int,
        reason: str,
        furnished_by: FurnishedBy | None = None,
    ) -> Segment:
        """Add a code nobody timed: ``start`` is local time on the session's date of service.

        The same rules as live recording: a known code, R7.9, no exclusive overlap (the store
        names the segment in the way), never ending after now. Audited with ``reason``.
        ``furnished_by`` defaults to the session's clinician (``Role.furnishes``).
        """
        session = self.find_session(session_id)
        furnished_by = furnished_by or session.role.furnishes
        entry = self._catalogue.get(code, "code")
        _whole_minutes(minutes, low=1)
        typed = datetime.combine(session.date_of_service, start)
        begin = typed.astimezone()
        # A time the clocks skipped (02:30 when 02:00 became 03:00) comes back as another hour.
        if begin.replace(tzinfo=None) != typed:
            raise InvalidInput(
                "start",
                f"{start:%H:%M} did not happen on {session.date_of_service} here (the clocks"
                " were put forward); type the time the clock showed",
            )
        # One the clocks repeated (01:30 twice when 02:00 became 01:00) names two moments.
        if typed.replace(fold=1).astimezone() != begin:
            raise InvalidInput(
                "start",
                f"{start:%H:%M} happened twice on {session.date_of_service} here (the clocks"
                " were put back), so it does not say which; give a start outside that hour",
            )
        end = begin + timedelta(minutes=minutes)
        if end > self._clock.now():
            raise InvalidInput(
                "minutes",
                f"{minutes} minutes from {begin:%H:%M} would end at {end:%H:%M} on"
                f" {end:%Y-%m-%d}, which has not happened yet",
            )
        self._check_furnisher(session.role, entry, furnished_by)
        return self._store.add_segment(
            session.id,
            code=entry.code,
            furnished_by=furnished_by,
            exclusive=not entry.supervised_modality,
            start_utc=begin.astimezone(UTC),
            stop_utc=end.astimezone(UTC),
            reason=reason,
            actor=self._actor,
        )

    def lengthen_segment(
        self,
        segment_id: str,
        minutes: int,
        *,
        reason: str,
        shift_later: bool = False,
        code: str | None = None,
        furnished_by: FurnishedBy | None = None,
    ) -> tuple[Segment, ...]:
        """Give a recorded segment ``minutes`` from its start (and ``code`` or ``furnished_by``
        in the same write); returns every segment changed.

        A longer segment that would run into a later one is refused naming that segment,
        unless ``shift_later``: then the later timed segments of the session (not its
        supervised modalities) move later by the same amount (the last first, so no two ever
        overlap on the way), never past its close or now. The moves and the change are one
        write: all of them, or none.
        """
        with self._store.together():
            return self._lengthen_segment(
                segment_id,
                minutes,
                reason=reason,
                shift_later=shift_later,
                code=code,
                furnished_by=furnished_by,
            )

    def _lengthen_segment(
        self,
        segment_id: str,
        minutes: int,
        *,
        reason: str,
        shift_later: bool,
        code: str | None,
        furnished_by: FurnishedBy | None,
    ) -> tuple[Segment, ...]:
        segment = self.find_segment(segment_id)
        _whole_minutes(minutes, low=0)
        reason = reason_text(reason)
        exclusive = (
            segment.exclusive
            if code is None
            else not self._catalogue.get(code, "code").supervised_modality
        )
        if segment.stop_utc is None:
            raise InvalidOperation(f"{segment.code} is still running; stop it first")
        new_stop = segment.start_utc + timedelta(minutes=minutes)
        delta = new_stop - segment.stop_utc
        later = [
            s
            for s in self._store.segments(segment.session_id)
            if s.id != segment.id and s.start_utc >= segment.stop_utc
        ]
        in_way = [s for s in later if s.exclusive and exclusive and s.start_utc < new_stop]
        amend = functools.partial(
            self.amend_segment,
            segment.id,
            reason=reason,
            minutes=minutes,
            code=code,
            furnished_by=furnished_by,
        )
        if delta <= timedelta(0) or not in_way:
            return (amend(),)
        # A supervised modality runs on its own timer beside the timed codes: a longer code
        # does not make it start later, and a hot pack left on until the close left no room.
        later = [s for s in later if s.exclusive]
        if not shift_later:
            first = in_way[0]
            raise InvalidOperation(
                f"{segment.code} for {minutes} min would end at {_local_hm(new_stop)}, after"
                f" {first.code} (segment {first.id[:SHORT_ID]}) starts at"
                f" {_local_hm(first.start_utc)}; shorten that one first, or add --shift-later to"
                f" move it and the later segments {_minutes_text(delta)} later"
            )
        if any(s.stop_utc is None for s in later):
            running = next(s for s in later if s.stop_utc is None)
            raise InvalidOperation(
                f"{running.code} (segment {running.id[:SHORT_ID]}) is still running and cannot"
                " be moved; stop it first"
            )
        last_stop = max(s.stop_utc for s in later if s.stop_utc is not None)
        # Time that never happened is never billed: the segments stay inside the session,
        # which ends at its close (or now, while it is open).
        session = self._store.get_session(segment.session_id)
        end = session.closed_utc if session.closed_utc is not None else self._clock.now()
        if last_stop + delta > end:
            until = (
                f"the session closed at {_local_hm(end)}"
                if session.closed_utc is not None
                else f"now ({_local_hm(end)})"
            )
            raise InvalidOperation(
                f"moving the later segments {_minutes_text(delta)} later would end the last one"
                f" at {_local_hm(last_stop + delta)}, after {until}; there"
                f" {'is' if end - last_stop == timedelta(minutes=1) else 'are'} only"
                f" {_minutes_text(max(end - last_stop, timedelta(0)))} after the last segment"
            )
        # Whatever would refuse the segment's own change (R7.9, the same person's one-on-one
        # time elsewhere) is checked before anything moves, so the refusal names it.
        entry = self._catalogue.get(code or segment.code, "code")
        by = furnished_by or segment.furnished_by
        self._check_furnisher(session.role, entry, by)
        self._check_room(
            session,
            segment,
            new_stop,
            exclusive=False,  # the later segments of the session are about to make room
            one_on_one=self._one_on_one(entry.code),
            furnished_by=by,
        )
        self._check_moved_room(session, later, delta)
        changed = []
        for s in sorted(later, key=lambda s: s.start_utc, reverse=True):
            assert s.stop_utc is not None
            changed.append(
                self._store.amend_segment(
                    s.id,
                    reason=f"{reason} (moved {_minutes_text(delta)} later to make room)",
                    start_utc=s.start_utc + delta,
                    stop_utc=s.stop_utc + delta,
                    actor=self._actor,
                )
            )
        changed.append(amend())
        return (changed[-1], *reversed(changed[:-1]))

    def remove_untimed(
        self, session_id: str, code: str, *, reason: str
    ) -> tuple[UntimedService, ...]:
        """Remove a session's untimed service ``code`` (audited with ``reason``)."""
        session = self.find_session(session_id)
        reason = reason_text(reason)
        entry = self._catalogue.get(code, "code")
        services = self._store.untimed_services(session.id)
        matching = [u for u in services if u.code == entry.code]
        if not matching:
            has = ", ".join(sorted({u.code for u in services})) or "none"
            raise InvalidInput(
                "code",
                f"session {session.id[:SHORT_ID]} ({session.patient_ref}) has no untimed"
                f" {entry.code} (its untimed services: {has})",
            )
        return tuple(
            self._store.remove_untimed(u.id, reason=reason, actor=self._actor) for u in matching
        )

    # -- conflicts ------------------------------------------------------------------------------

    def conflicts(self, *, every: bool = False) -> list[Conflict]:
        """Versions of sessions an import kept aside, oldest first: the undecided ones, or
        ``every`` one (accepted and dropped too)."""
        return self._store.conflicts(status=None if every else ConflictStatus.OPEN)

    def conflict(self, conflict_id: int | str) -> Conflict:
        return self._store.get_conflict(_conflict_number(conflict_id))

    def accept_conflict(self, conflict_id: int | str, reason: str) -> Session:
        """Replace the session here with the kept-aside version (audited, marks it amended so
        a charge already exported is flagged out of date). Its content is checked again, with
        the catalogue too, as if it were recorded here."""
        conflict = self.conflict(conflict_id)
        for segment in conflict.record.get("segments", []):
            self._catalogue.get(str(segment["code"]), "code")
        for service in conflict.record.get("untimed", []):
            self._catalogue.get(str(service["code"]), "code")
        return self._store.accept_conflict(conflict.id, reason=reason, actor=self._actor)

    def drop_conflict(self, conflict_id: int | str, reason: str) -> Conflict:
        """Keep the session here as it is; the other version stays recorded as dropped."""
        return self._store.drop_conflict(
            _conflict_number(conflict_id), reason=reason, actor=self._actor
        )

    def compare_conflict(self, conflict_id: int | str) -> ConflictComparison:
        """The kept-aside version beside the one kept here, each billed on its own by the
        same rules, for the desk to choose between."""
        conflict = self.conflict(conflict_id)
        incoming = self._version(
            conflict.record,
            f"Incoming, from {conflict.origin}",
            self._billed_alone(conflict.record),
        )
        try:
            session = self._store.get_session(conflict.session_id)
        except InvalidInput:
            return ConflictComparison(conflict, None, incoming)
        if session.is_open:
            record: Mapping[str, object] = {
                **{name: getattr(session, name) for name in _VERSION_FIELDS},
                "payer": self._store.get_payer_profile(session.payer_profile),
                "segments": [
                    {
                        "code": s.code,
                        "furnished_by": s.furnished_by.value,
                        "start_utc": s.start_utc,
                        "stop_utc": s.stop_utc,
                    }
                    for s in self.segments(session.id)
                ],
                "untimed": [
                    {"code": u.code, "minutes": u.minutes, "furnished_by": u.furnished_by.value}
                    for u in self.untimed_services(session.id)
                ],
            }
            here = self._version(
                record, "Kept here (still open: close it to accept)", "not billed while open"
            )
        else:
            record = self._store.session_records([session.id])[0]
            try:
                billed = billing.lines_text(self.summary(session.id)) or "nothing billable"
            except TherapyTimerError as exc:
                billed = f"cannot be billed here: {exc}"
            here = self._version(record, "Kept here, on this workstation", billed)
        return ConflictComparison(conflict, here, incoming)

    def _version(self, record: Mapping[str, object], title: str, billed: str) -> SessionVersion:
        payer = record["payer"]
        if isinstance(payer, Mapping):
            payer = PayerProfile(
                str(payer["name"]),
                rules.Method(payer["method"]),
                bool(payer["assistant_modifiers"]),
            )
        assert isinstance(payer, PayerProfile)
        closed = record.get("closed_utc")
        fields = (
            ("Patient", str(record["patient_ref"])),
            ("Date of service", str(record["date_of_service"])),
            ("Clinician", f"{record['clinician']} ({_value(record['role'])})"),
            ("Payer", f"{payer.name}: {describe_profile(payer)}"),
            ("Closed", _local_hm(_moment(closed)) if closed else "still open"),
            ("Amended", "yes" if record.get("amended") else "no"),
        )
        segments = tuple(_segment_line(s) for s in _items(record["segments"]))
        untimed = tuple(_untimed_line(u) for u in _items(record["untimed"]))
        return SessionVersion(title, fields, segments, untimed, billed, still_open=not closed)

    def _billed_alone(self, record: Mapping[str, object]) -> str:
        """What one closed session record bills on its own (not pooled with its day), through
        the same import checks and rules, in a scratch database."""
        with tempfile.TemporaryDirectory(prefix="therapy-timer-compare-") as scratch:
            alone_store = st.Store.open(Path(scratch), clock=self._clock, actor=self._actor)
            with Clinic(alone_store, self._catalogue, self._clock, policy=self.policy) as alone:
                try:
                    (outcome,) = alone_store.import_batches(
                        [st.RecordBatch([record], origin="comparison", source="comparison")]
                    )
                    if not outcome.added:
                        return f"cannot be billed here: {next(iter(outcome.why.values()), '')}"
                    result = alone.summary(str(record["id"]))
                except TherapyTimerError as exc:
                    return f"cannot be billed here: {exc}"
        return billing.lines_text(result) or "nothing billable"

    # -- clinic server -------------------------------------------------------------------------
    # psycopg is imported only here and only when a server is used: it costs start-up time.

    def server_dsn(self) -> str | None:
        """The clinic server this workstation syncs to (remembered without password), or None."""
        return self._store.get_setting(SERVER_DSN_SETTING) or None

    def connect_server(self, dsn: str) -> server.Connected:
        """Test ``dsn``, create or upgrade the schema where its role may, and remember it for
        this workstation without the password (libpq finds that in ~/.pgpass)."""
        from therapy_timer import server

        found = server.probe(dsn)
        remembered = server.password_free(dsn)
        if remembered != self.server_dsn():
            self._sync_state_path().unlink(missing_ok=True)  # another server: nothing pushed
        self._store.set_setting(SERVER_DSN_SETTING, remembered, actor=self._actor)
        return found

    def server_tls_warning(self) -> str:
        """``server.tls_warning`` of the remembered address ('' when none is remembered)."""
        from therapy_timer import server

        dsn = self.server_dsn()
        return "" if dsn is None else server.tls_warning(dsn)

    @staticmethod
    def dsn_has_password(dsn: str) -> bool:
        """Whether ``dsn`` holds a password (key=value or a URI's), which is never remembered."""
        from therapy_timer import server

        return server.has_password(dsn)

    def disconnect_server(self) -> bool:
        """Stop syncing (the server keeps what it has); False when none was configured."""
        if self.server_dsn() is None:
            return False
        self._store.set_setting(SERVER_DSN_SETTING, "", actor=self._actor)
        self._sync_state_path().unlink(missing_ok=True)
        return True

    def sync_server(self) -> server.SyncReport:
        """Push what the server does not have yet; safe to repeat and to interrupt."""
        from therapy_timer import server

        local = server.StoreRecords(self._store)
        known = self._held_sessions()
        role, mark, last = self._sync_state()

        def keep_held(report: server.SyncReport) -> None:
            # Written before the server's audit mark passes a newly held session, which then
            # only this file names: a sync killed between that commit and the write below
            # would have forgotten it for good.
            if known is None or not set(report.held_sessions) <= set(known):
                self._write_sync_state(role, mark, last, report.held_sessions)

        with server.connect(self._required_server_dsn()) as conn:
            report = server.push(
                conn, local, now=self._clock.now(), held=known, before_mark=keep_held
            )
        if report.desk:
            report.not_sent = server.pending(local, 0)[0]
            return report  # nothing pushed: the sync state stays as the last push left it
        self._write_sync_state(
            report.workstation, report.pushed_audit_id, report.at_utc, report.held_sessions
        )
        return report

    def _write_sync_state(
        self, role: str, mark: int, last: datetime | None, held: list[str]
    ) -> None:
        state = {
            "workstation": role,
            "pushed_audit_id": mark,
            "last_sync_utc": last.isoformat() if last else None,
            "held": held,
        }
        try:
            write_private(self._sync_state_path(), json.dumps(state), force=True)
        except OutputRefused as exc:
            raise OutputRefused(
                f"this workstation's sync record cannot be kept: {exc}. What the clinic server"
                " took is kept there, and the next sync resumes from it"
            ) from None

    def server_status(self) -> server.ServerStatus:
        """Reachable or not, the last sync, what is pending and every workstation's last sync
        (a workstation role sees itself; the desk sees all)."""
        from therapy_timer import server

        dsn = self._required_server_dsn()
        local = server.StoreRecords(self._store)
        role, mark, last_sync = self._sync_state()
        problem = ""
        desk = refused = False
        skew = None
        stations: tuple[server.WorkstationState, ...] = ()
        try:
            with server.connect(dsn) as conn:
                role, mark, last_sync, desk = server.pushed_mark(conn)
                stations = tuple(server.workstations(conn))
                with conn.transaction():
                    skew = server.clock_skew(conn, self._clock.now())
        except StorageUnavailable as exc:
            problem = str(exc)  # offline: what this workstation itself knows
            refused = isinstance(exc, server.ServerRefused)
        sessions, entries = server.pending(local, mark)
        return server.ServerStatus(
            dsn=dsn,
            reachable=not problem,
            problem=problem,
            role=role,
            last_sync_utc=last_sync,
            pushed_audit_id=mark,
            pending_sessions=sessions,
            pending_audit=entries,
            workstations=stations,
            held=tuple(self._held_sessions() or ()),
            desk=desk,
            refused=refused,
            tls_warning=server.tls_warning(dsn),
            clock_skew=skew,
        )

    @staticmethod
    def init_server(
        dsn: str, *, workstations: Sequence[str] = (), desks: Sequence[str] = ()
    ) -> server.Connected:
        """For whoever sets the server up: group roles, schema, and login roles by name."""
        from therapy_timer import server

        return server.init_server(dsn, workstations=workstations, desks=desks)

    def clinic_stations(self) -> list[server.WorkstationState]:
        """Every workstation the clinic server knows, by name: when each last synced, its
        last heartbeat, who is running what there right now (``running``: patient_ref,
        clinician, code, furnished_by, since_utc) and how many sessions it has pushed.

        The desk role sees every station, a workstation role only itself. One short query;
        ServerUnavailable (a StorageUnavailable) when the server cannot be reached, so a
        caller on the GUI thread should call it from a worker or accept up to the connect
        timeout (5 s) of waiting.
        """
        from therapy_timer import server

        with server.connect(self._required_server_dsn()) as conn:
            return server.workstations(conn)

    def clinic_records(self, start: date, end: date) -> list[dict[str, object]]:
        """Every session record of ``start``..``end`` on the clinic server this role may read."""
        from therapy_timer import server

        with server.connect(self._required_server_dsn()) as conn:
            return server.clinic_records(conn, start, end)

    @staticmethod
    def read_clinic_server(dsn: str, start: date, end: date) -> ClinicRead:
        """The server's sessions of ``start``..``end`` and every workstation's state, in one
        connection. Touches no local database, so a window runs it in a worker thread (its
        timers never wait on the network); ``server_dsn()`` gives ``dsn``."""
        from therapy_timer import server

        with server.connect(dsn) as conn:
            records = server.clinic_records(conn, start, end)
            stations = server.workstations(conn)
            kept = server.kept_aside(conn)
            copies = server.session_records(conn, [k.session_id for k in kept])
        by_id = {str(c["id"]): c for c in copies}
        return ClinicRead(tuple(records), tuple(stations), tuple(kept), by_id)

    def compare_server_conflict(self, read: ClinicRead, conflict_id: int) -> ConflictComparison:
        """A version the clinic server kept aside beside the server's copy of the session,
        each billed on its own as ``compare_conflict`` bills an import's."""
        from therapy_timer import server

        found = [k for k in read.kept_aside if k.id == conflict_id]
        if not found:
            raise InvalidInput("conflict", f"there is no kept-aside version {conflict_id}")
        kept = found[0]
        _acceptable(kept)
        conflict = Conflict(
            id=kept.id,
            session_id=kept.session_id,
            origin=kept.workstation,
            source="the clinic server",
            why=kept.why,
            received_utc=kept.received_utc,
            status=ConflictStatus.OPEN,
            decided_utc=None,
            record=kept.record,
        )
        incoming = self._version(
            kept.record, f"Kept aside, from {kept.workstation}", self._billed_alone(kept.record)
        )
        copy = read.copies.get(kept.session_id)
        if copy is None:
            return ConflictComparison(conflict, None, incoming, on_server=True)
        if server.REFUSED in copy:
            raise InvalidInput(
                "conflict",
                f"the clinic server's copy of session {kept.session_id} cannot be compared:"
                f" {copy[server.REFUSED]}",
            )
        record = _without_server_marks(copy)
        here = self._version(
            record, f"On the clinic server, from {copy['workstation']}", self._billed_alone(record)
        )
        return ConflictComparison(conflict, here, incoming, on_server=True)

    def pooled_claim_days(self, read: ClinicRead, start: date, end: date) -> list[billing.ClaimDay]:
        """The claim days of sessions read from the clinic server, pooled across workstations
        and billed as ``whole_clinic`` bills them."""
        with self._scratch_clinic() as pooled:
            pooled._take_from_server(read.records)
            return pooled.claim_days(start, end)

    @contextmanager
    def whole_clinic(
        self, start: date, end: date, *, versions: dict[str, str] | None = None
    ) -> Iterator[Clinic]:
        """A scratch Clinic holding the clinic server's sessions of ``start``..``end`` (each
        from its workstation, exported as the desk marked it), read and billed exactly as a
        workstation would; nothing done to it reaches this workstation or the server.
        ``versions``, when given, receives each session's server ``content_hash`` as read.

        The server's records come a few thousand at a time and go into the scratch database
        as they come (a clinic-year is never held in memory); the connection is closed
        before the caller reads the scratch Clinic."""
        from therapy_timer import server

        with self._scratch_clinic() as pooled:
            with server.connect(self._required_server_dsn()) as conn:
                for chunk in server.stream_clinic_records(conn, start, end):
                    pooled._take_from_server(chunk)
                    if versions is not None:
                        versions.update((str(r["id"]), str(r["content_hash"])) for r in chunk)
            yield pooled

    @contextmanager
    def _scratch_clinic(self) -> Iterator[Clinic]:
        with tempfile.TemporaryDirectory(prefix="therapy-timer-clinic-") as scratch:
            pooled_store = st.Store.open(Path(scratch), clock=self._clock, actor=self._actor)
            with Clinic(pooled_store, self._catalogue, self._clock, policy=self.policy) as pooled:
                yield pooled

    def _take_from_server(self, records: Iterable[Mapping[str, object]]) -> None:
        """Merge server records into this (scratch) Clinic, each as imported from its
        workstation, with the desk's export marks.

        A workstation is an untrusted writer: a record that the checks of a bundle refuse, or
        that cannot be pooled with the clinic's others (its payer profile has other rules,
        its segment is another session's), is never left out quietly, which would bill its
        claim day without it: ServerRecordsRefused names each one and why."""
        from therapy_timer import server

        refused: dict[str, str] = {}
        taken: list[Mapping[str, object]] = []
        for record in records:
            why = record.get(server.REFUSED)
            if why is None:
                taken.append(record)
            else:
                refused[str(record["id"])] = str(why)
        try:
            outcomes = self._store.import_batches(_station_batches(taken))
        except InvalidInput:  # one of them is malformed: check them one by one to name it
            for record in taken:
                try:
                    check_session_record(_without_server_marks(record), "")
                except InvalidInput as exc:
                    refused[str(record["id"])] = str(exc)
            taken = [r for r in taken if str(r["id"]) not in refused]
            outcomes = self._store.import_batches(_station_batches(taken))
        for outcome in outcomes:
            for record in outcome.conflicts:
                session_id = str(record["id"])
                why = f"{outcome.why[session_id].removesuffix(' here')} on the clinic server"
                refused[session_id] = why + self._holder(record)
        if refused:
            by_id = {str(r["id"]): r for r in records}
            raise server.ServerRecordsRefused(
                f"the clinic server holds {len(refused)} session record(s) the desk cannot"
                " bill as they are: "
                + "; ".join(
                    f"session {i} from {by_id[i]['workstation']}, {by_id[i]['date_of_service']}:"
                    f" {why}"
                    for i, why in refused.items()
                )
                + ". The workstation that sent each must correct it, or the server's"
                " administrator remove it (docs/clinic-server.md)"
            )
        exported = [str(r["id"]) for r in taken if r["exported"]]
        changed = [str(r["id"]) for r in taken if r["exported"] and r.get("changed_after_export")]
        if exported:
            self._store.mark_exported(exported)
        if changed:
            self._store.mark_changed_after_export(changed, where="at its workstation")

    def _holder(self, record: Mapping[str, object]) -> str:
        """Which session pooled before ``record`` holds one of its segments (a record that
        is refused may be the genuine one: the desk is told of both), or nothing."""
        for segment in _items(record["segments"]):
            try:
                holder = self._store.get_session(
                    self._store.get_segment(str(segment["id"])).session_id
                )
            except InvalidInput:
                continue
            if holder.id != record["id"]:
                return f" (session {holder.id} from {holder.origin})"
        return ""

    def clinic_export(
        self,
        fmt: str,
        start: date,
        end: date | None = None,
        *,
        out: Path | None = None,
        clinician: str | None = None,
        force: bool = False,
        mark: bool | None = None,
        render_pdf: PdfRenderer | None = None,
    ) -> Exported:
        """``export`` of the whole clinic's days as the server holds them.

        The server's sessions are merged into a scratch database and exported by the very
        code a workstation uses, so the desk bills exactly what one workstation would have
        billed had every session been recorded there; sessions the file marks are marked
        exported on the server (the desk role's right), never here.
        """
        from therapy_timer import server

        if out is not None:
            check_target(out, force=force, protected=self.owned_paths())
        last = end or start
        versions: dict[str, str] = {}
        with self.whole_clinic(start, last, versions=versions) as pooled:
            done = pooled.export(
                fmt,
                start,
                end,
                out=out,
                clinician=clinician,
                workstation="clinic",
                force=force,
                mark=mark,
                render_pdf=render_pdf,
            )
            exported = [s for s in pooled.list_sessions(start=start, end=last) if s.exported]
            # A day the file left out (another clinician's) may be due again: it stays due.
            due = pooled._store.changed_since_export([s.id for s in exported])
            days: dict[server.DayKey, dict[str, str]] = {}
            for s in exported:
                if s.id not in due:
                    when, patient, discipline, payer = billing.day_key(s)
                    key = (when.isoformat(), patient, discipline.value, payer)
                    days.setdefault(key, {})[s.id] = versions[s.id]
        if days:
            try:
                with server.connect(self._required_server_dsn()) as conn:
                    server.mark_exported(conn, days)
            except StorageUnavailable as exc:
                if done.path is None:
                    raise
                # The file is whole and holds these days: a bare refusal reads as "nothing
                # exported", and the file goes unsent, or out twice.
                raise type(exc)(
                    f"{done.path} was written, but its sessions were not marked exported on the"
                    f" clinic server ({exc}); they stay due there until an export marks them"
                ) from None
        return done

    @staticmethod
    def load_server_support() -> None:
        """Import the clinic-server code (psycopg: ~120 ms) without touching any Clinic, so a
        window can do it in a worker thread before ``background_sync``."""
        from therapy_timer import server  # noqa: F401

    def background_sync(
        self, interval_s: float = 10.0, *, on_round: Callable[[], None] | None = None
    ) -> server.BackgroundSync:
        """A started thread pushing to the clinic server every ``interval_s`` seconds and at
        each ``request()`` (call it when a session closes); ``stop()`` it on quitting.
        ``on_round`` is called in that thread after each round.

        Each round opens this data folder in the worker thread, so the window's own
        connection and its timers never wait on the network.
        """
        from therapy_timer import server

        self._required_server_dsn()
        folder, clock, catalogue, actor = self.data_dir, self._clock, self._catalogue, self._actor

        def push() -> server.SyncReport:
            with Clinic.open(folder, clock=clock, catalogue=catalogue, actor=actor) as worker:
                if worker.server_dsn() is None:  # `clinic disconnect` ran while it was open
                    return server.SyncReport(disconnected=True)
                return worker.sync_server()

        return server.BackgroundSync(push, interval_s=interval_s, on_round=on_round).start()

    def server_conflicts(self, *, settled: bool = False) -> list[server.KeptAside]:
        """Versions the clinic server kept aside rather than write over (waiting ones)."""
        from therapy_timer import server

        with server.connect(self._required_server_dsn()) as conn:
            return server.kept_aside(conn, settled=settled)

    def settle_server_conflict(self, conflict_id: int | str, decision: str, reason: str) -> str:
        """The desk accepts (replacing the server's copy, which is kept as settled) or drops a
        kept-aside version; the session's id."""
        from therapy_timer import server

        number = _conflict_number(conflict_id)
        why = reason_text(reason)
        with server.connect(self._required_server_dsn()) as conn:
            if decision == "accepted":
                # The server writes an accepted record into the session as it is: one a
                # workstation sent that is no session (an untrusted writer) is dropped, never
                # made the clinic's copy.
                for kept in server.kept_aside(conn):
                    if kept.id == number:
                        _acceptable(kept)
            return server.settle(conn, number, decision, why)

    def _required_server_dsn(self) -> str:
        dsn = self.server_dsn()
        if dsn is None:
            raise InvalidOperation(
                "no clinic server is configured; run `therapy-timer clinic connect DSN` first"
            )
        return dsn

    def _sync_state_path(self) -> Path:
        return self.data_dir / SYNC_STATE_FILE

    def _sync_state(self) -> tuple[str, int, datetime | None]:
        """The last push as sync_server recorded it (role, audit mark, when), for `clinic status`
        offline. A file missing, unreadable, or not as sync_server writes it (edited by hand, a
        pipe) counts as never synced: the server's own mark is the truth."""
        never = ("", 0, None)
        try:
            raw = read_regular(self._sync_state_path(), limit=SYNC_STATE_MAX_BYTES, what="read")
            state = json.loads(raw)
            role, mark = state["workstation"], state["pushed_audit_id"]
            last = state["last_sync_utc"]
            when = None if last is None else datetime.fromisoformat(last)
        except (InvalidInput, ValueError, KeyError, TypeError, RecursionError):
            return never
        if not isinstance(role, str) or type(mark) is not int or mark < 0:
            return never
        if when is not None and when.utcoffset() is None:
            return never
        return role, mark, when

    def _held_sessions(self) -> list[str] | None:
        """Sessions the last push held back (``SyncReport.held``): the server's audit mark has
        passed them, so only this list brings them back to every later push's report. None
        when the sync state is missing or not as sync_server writes it (a disconnect removed
        it, a hand edit): the push then sends everything again, which finds them.

        A state without the list is an older version's, whose pushes held nothing back."""
        try:
            raw = read_regular(self._sync_state_path(), limit=SYNC_STATE_MAX_BYTES, what="read")
            held = json.loads(raw).get("held", [])
        except (InvalidInput, ValueError, AttributeError, RecursionError):
            return None
        if not isinstance(held, list) or not all(isinstance(h, str) for h in held):
            return None
        return held

    # -- session problems (one bad session never blocks its day) ------------------------------

    def summary_or_problem(self, session_id: str) -> rules.Result | SessionProblem:
        """``summary``, or the SessionProblem saying what keeps the rules from answering."""
        try:
            return self.summary(session_id)
        except InvalidInput as exc:
            return self.session_problem(self._store.get_session(session_id), exc)

    def summaries_or_problems(
        self, sessions: Sequence[Session]
    ) -> dict[str, rules.Result | SessionProblem]:
        """``summaries`` with a SessionProblem in place of each session the rules refuse;
        every other session's answer is the one ``summaries`` gives."""
        try:
            return dict(self.summaries(sessions))
        except InvalidInput:
            pass  # one of them is bad: answer them one by one to find which
        return {s.id: self.summary_or_problem(s.id) for s in sessions}

    def session_problem(self, session: Session, exc: InvalidInput) -> SessionProblem:
        """What a refusal of the rules means for this session, and how to correct it."""
        short = session.id[:SHORT_ID]
        if isinstance(exc, UnknownCode):
            fix = (
                f"change the code with 'session edit SEGMENT --code CODE --reason ...' (session"
                f" show {short} lists the segments), or add {exc.code} to the clinic's code file"
            )
        elif exc.field.startswith(("timed.", "untimed.", "minutes")):
            fix = (
                f"correct the minutes with 'session edit SEGMENT --minutes N --reason ...' or"
                f" discard the segment (session show {short} lists the segments)"
            )
        else:
            fix = f"correct the session (session show {short})"
        return SessionProblem(session, exc.field, exc.message, fix)

    # -- internals -----------------------------------------------------------------------------

    def _check_furnisher(self, role: Role, entry: Code, by: FurnishedBy) -> None:
        """R7.9: an evaluation or re-evaluation is the therapist's alone, in every path."""
        if entry.assistant_allowed:
            return
        if role.is_assistant:
            raise InvalidOperation(
                f"{entry.code} ({entry.description}) is furnished by a therapist only; a "
                f"{role.value} cannot record it (R7.9)"
            )
        if by is FurnishedBy.ASSISTANT:
            raise InvalidOperation(
                f"{entry.code} ({entry.description}) is furnished by the therapist only (R7.9):"
                " switch 'Furnished by' to the therapist first"
            )

    def _trusted_heartbeat(self) -> datetime | None:
        """The last heartbeat, unless it lies in the future: a window whose clock ran fast must
        not become a lower bound for new segments (they would bill 0 minutes) or a moment to
        stop forgotten timers at (it would bill time that never happened)."""
        heartbeat = self._store.last_heartbeat()
        if heartbeat is not None and heartbeat > self._clock.now():
            return None
        return heartbeat

    def _open(self, session_id: str) -> Session:
        session = self._store.get_session(session_id)
        if not session.is_open:
            raise InvalidOperation(
                f"session {session_id} is closed; change it with an amendment and a reason"
            )
        return session

    def _restore(
        self,
        session: Session,
        segments: Sequence[Segment] | None = None,
        heartbeat: datetime | None = None,
        policy: RoundingPolicy | None = None,
    ) -> Stopwatch:
        """The session's stopwatch from stored rows (read here unless the caller has them)."""
        if segments is None:
            segments = self._store.segments(session.id)
            heartbeat = self._trusted_heartbeat()
        return Stopwatch.restore(
            self._catalogue,
            self._clock,
            segments,
            session_id=session.id,
            paused=session.pause,
            # Nothing recorded yet: the clinician furnishes it, an assistant's minutes their own
            # (R7.1), as the window's Furnished by switch starts. Else its latest segment's.
            furnished_by=self._chosen_furnisher(session)
            or (None if segments else session.role.furnishes),
            policy=policy or self.policy,
            not_before=heartbeat,
        )

    def _chosen_furnisher(self, session: Session) -> FurnishedBy | None:
        """Who furnishes the codes started next in ``session`` when it is not its latest
        segment's: the one chosen here, else its pause's."""
        chosen = self._furnished_by.get(session.id)
        if chosen is None and session.pause is not None and session.pause.resume:
            chosen = session.pause.resume[0].furnished_by
        return chosen

    def _step(
        self,
        session_id: str,
        action: str,
        operation: Callable[[Session, Stopwatch], Change],
        session: Session | None = None,
    ) -> Outcome:
        # Read, change, write. Another process may write between our read and the store's
        # transaction; the store then refuses (InvalidOperation) and one retry on fresh state
        # settles it, e.g. a start then stops the code the other process started. ``session``:
        # the open session the caller has just read, for the first attempt.
        for attempt in range(2):
            if attempt or session is None:
                session = self._open(session_id)
            stopwatch = self._restore(session)
            change = operation(session, stopwatch)
            if change.writes_nothing:
                if change.furnished_by_changed:
                    # Nothing runs, so no segment records it: remember it for the next start.
                    self._furnished_by[session_id] = change.furnished_by_after
                return Outcome(session, change, stopwatch)
            if action == "start" and change.stopped_codes:
                action = "switch"
            try:
                after = self._store.apply_stopwatch_change(change, action=action, actor=self._actor)
            except InvalidOperation:
                if attempt:
                    raise
                continue
            # The segments now say who furnishes; a remembered value would only go stale.
            self._furnished_by.pop(session_id, None)
            # The store wrote the change as the stopwatch made it (the same ids and moments),
            # so the stopwatch already holds the committed state: no second read.
            return Outcome(after, change, stopwatch)
        raise AssertionError("unreachable")  # pragma: no cover


def _spans(
    ids: Iterable[str], segments: Mapping[str, Sequence[SegmentTimes]]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Each session's first segment start and last segment stop (None if none stopped), from
    the segments already read for its stopwatch (only for the days a ``ClaimDay`` is built:
    a CSV's plain days never show them)."""
    found: dict[str, tuple[datetime | None, datetime | None]] = {}
    for session_id in ids:
        listed = segments.get(session_id)
        if listed:
            stops = [stop for _code, _by, _start, stop in listed if stop is not None]
            found[session_id] = (
                min(start for _c, _b, start, _s in listed),
                max(stops, default=None),
            )
    return found


class _Tally:
    """What an export lists as it goes: how many sessions, and which to mark exported."""

    def __init__(self, ids: Sequence[str] = ()) -> None:
        self.sessions = len(ids)
        self.ids = list(ids)
        # Those a mark changes: a session read as exported and not amended since is exported
        # already (mark_exported would only look it up to skip it: 100,000 in a clinic-year).
        self.to_mark = list(ids)
        # The audit mark of the read of each of ``to_mark`` that a store read: one changed
        # after it stays unmarked (the file holds what was read).
        self.read_marks: dict[str, int] = {}

    def _to_mark(self, ids: list[str], read_mark: int | None) -> None:
        self.to_mark.extend(ids)
        if read_mark is not None:
            self.read_marks.update(dict.fromkeys(ids, read_mark))

    def days(self, source: Iterable[billing.ClaimDay]) -> Iterator[billing.ClaimDay]:
        # Only the ids to mark are kept; each day is dropped once written (a year streams).
        for day in source:
            self.sessions += len(day.visits)
            if not day.provisional:
                # A session left out (its error row) stays unmarked: once corrected, its
                # day is exported again whole.
                billed = day.billed_session_ids
                self.ids.extend(billed)
                self._to_mark(
                    [
                        s.id
                        for s in day.sessions
                        if s.id in billed and (s.amended or not s.exported)
                    ],
                    day.read_mark,
                )
            yield day

    def plain(self, sessions: Sequence[Session], ids: list[str], read_mark: int | None) -> None:
        """``days`` for a plain claim day (closed, nothing left out) written without one;
        ``ids`` are its sessions'."""
        self.sessions += len(sessions)
        self.ids.extend(ids)
        due = [s.id for s in sessions if s.amended or not s.exported]
        if due:  # most of a year's days once it was exported: no call for nothing
            self._to_mark(due, read_mark)


_ANSWER_CELLS_KEPT = 16_384
"""Distinct answers whose cells an export keeps (a clinic-year asks about 10,000)."""


class _Batch(NamedTuple):
    """What billing reads for a few whole dates of sessions (``Clinic._batches``)."""

    rows: list[billing.SessionRows]
    concurrent: dict[str, tuple[str, ...]]
    shared: dict[str, tuple[str, ...]]
    segments: dict[str, list[SegmentTimes]]
    stale: set[str]
    read_mark: int | None


_Read = tuple[int | None, Sequence[Session]]
"""Sessions listed by one read, with the audit mark taken before it (``Store.audit_mark``)."""


def _seen_by(days: Iterable[billing.ClaimDay], who: str) -> Iterator[billing.ClaimDay]:
    """The claim days in which the clinician ``who`` (``clinician_key``) saw the patient."""
    return (d for d in days if any(clinician_key(s.clinician) == who for s in d.sessions))


def _whole_dates(sessions: Iterable[Session], size: int) -> Iterator[list[Session]]:
    """Sessions in batches of about ``size``, never splitting a date (a claim day)."""
    batch: list[Session] = []
    for _date, group in groupby(sessions, key=lambda s: s.date_of_service):
        dated = list(group)
        if batch and len(batch) + len(dated) > size:
            yield batch
            batch = []
        batch.extend(dated)
    if batch:
        yield batch


_SERVER_MARKS = ("workstation", "exported", "changed_after_export", "content_hash")


def _acceptable(kept: server.KeptAside) -> None:
    """A version a workstation kept aside on the server is read as a session, or refused by
    name: a workstation is an untrusted writer, and such a version can only be dropped."""
    try:
        check_session_record(kept.record, "")
    except InvalidInput as exc:
        raise InvalidInput(
            "conflict",
            f"kept-aside version {kept.id} from {kept.workstation} is not a session this app"
            f" can read ({exc}); drop it with a reason",
        ) from None
    # Accepted, it becomes the row of kept.session_id whatever id it says: the desk's reads
    # would then refuse that session's whole day as a record of another one.
    if str(kept.record.get("id")) != kept.session_id:
        raise InvalidInput(
            "conflict",
            f"kept-aside version {kept.id} from {kept.workstation} is a record of session"
            f" {kept.record.get('id')}, not of {kept.session_id}; drop it with a reason",
        )


def _station_batches(records: Iterable[Mapping[str, object]]) -> list[st.RecordBatch]:
    """Server records as one import batch per workstation, as each sent them."""
    by_station: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_station.setdefault(str(record["workstation"]), []).append(_without_server_marks(record))
    return [
        st.RecordBatch(rows, origin=station, source=f"clinic server ({station})")
        for station, rows in by_station.items()
    ]


def _without_server_marks(record: Mapping[str, object]) -> dict[str, object]:
    """A server record as a workstation sent it: without what the server says of it."""
    return {k: v for k, v in record.items() if k not in _SERVER_MARKS}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# -- caseload --------------------------------------------------------------------------------

UNDO_ELSEWHERE_REASON = "undone: the tap went to the wrong patient"
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@frozen_record
class RunningPatient:
    """An open session with running segments (or a pause): one entry of the caseload."""

    session: Session
    segments: tuple[Segment, ...]

    def __init__(self, session: Session, segments: tuple[Segment, ...]) -> None:
        object.__setattr__(self, "session", session)
        object.__setattr__(self, "segments", segments)


def _person(session: Session, furnished_by: FurnishedBy) -> tuple[str, bool]:
    """Whose one-on-one time a segment is: the session's clinician, or the unnamed assistant
    of a therapist's session (``model.helper_time``)."""
    return (clinician_key(session.clinician), helper_time(session, furnished_by))


def _boot_id() -> str:
    try:
        return _BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _this_process() -> WindowLease:
    pid = os.getpid()
    return WindowLease(pid, _boot_id(), _process_start(pid), datetime.min)


def _process_alive(lease: WindowLease) -> bool:
    """Whether the lease's window process still runs (False only when provably gone)."""
    if lease.boot_id and _boot_id() and lease.boot_id != _boot_id():
        return False  # the machine restarted since
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process holds the pid: alive, but is it ours?
    started = _process_start(lease.pid)
    return not (lease.process_start and started and started != lease.process_start)


def _stopping(code: str) -> Callable[[Session, Stopwatch], Change]:
    return lambda _session, stopwatch: stopwatch.stop(code)


# -- finding sessions and payer profiles: words a person reads --------------------------------

AMBIGUOUS_SHOWN = 10
"""How many matching sessions or segments an ambiguous id prefix lists."""

SHORT_ID = 8
"""Characters of an id shown in lists and messages (enough to type back as a prefix)."""

MAX_ID_CHARS = 64
"""Longer than any session id (a UUID, 36) or segment id (32 hex digits) ever stored."""

MAX_CONFLICT_NUMBER = 2**63 - 1
"""The largest number SQLite stores (a kept-aside version's number is a rowid)."""


def session_label(session: Session) -> str:
    """One session in a line: short id, patient, date, clinician and whether it is open."""
    state = "open" if session.is_open else "closed"
    return (
        f"{session.id[:SHORT_ID]} {session.patient_ref} {session.date_of_service.isoformat()}"
        f" {session.clinician} ({state})"
    )


def segment_label(segment: Segment) -> str:
    """One segment in a line: short id, code, local start time and its session."""
    return (
        f"{segment.id[:SHORT_ID]} {segment.code} at {_local_hm(segment.start_utc)} of session"
        f" {segment.session_id[:SHORT_ID]}"
    )


def describe_profile(profile: PayerProfile) -> str:
    """What a payer profile decides, in words: the method and whether CQ/CO are used."""
    method = (
        "CMS total time (8-minute rule)"
        if profile.method is rules.Method.CMS
        else "AMA per code (8 minutes per code)"
    )
    modifiers = "CQ/CO on assistant minutes" if profile.assistant_modifiers else "no CQ/CO"
    return f"{method}, {modifiers}"


def _method(value: rules.Method | str) -> rules.Method:
    try:
        return rules.Method(str(value).strip().lower())
    except ValueError:
        raise InvalidInput(
            "method", f"{rules.quote(value)} is not a billing method: use cms or ama"
        ) from None


CLOCK_YEARS = range(1970, 9000)
"""Years a clock may read: outside them it is broken (local dates near year 1 or 9999
overflow), and nothing it would record could be billed."""


def _check_clock(clock: Clock) -> None:
    """StorageUnavailable (the environment's fault, said plainly) when the clock is broken."""
    now = clock.now()
    if now.year not in CLOCK_YEARS:
        raise StorageUnavailable(
            f"the computer's clock reads {now:%Y-%m-%d %H:%M} UTC; set the date and time"
            " first (nothing was opened or recorded)"
        )


def _typed_id(typed: str, what: str) -> str:
    text = typed.strip() if isinstance(typed, str) else ""
    if not text:
        raise InvalidInput(what, f"type the {what} id, or its first characters")
    # No id is longer; and SQLite refuses a LIKE pattern over 50,000 bytes with an error.
    if len(text) > MAX_ID_CHARS:
        raise InvalidInput(what, f"no {what} id starts with {rules.quote(text)}")
    return text


_Found = TypeVar("_Found", Session, Segment)


def _one_by_prefix(
    text: str, what: str, found: Sequence[_Found], label: Callable[[_Found], str], where: str
) -> _Found:
    """The one record whose id is ``text`` or starts with it; InvalidInput saying ``where`` the
    ids are listed when none does, or naming the first matches when several do."""
    exact = [f for f in found if f.id.casefold() == text.casefold()]
    if exact:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(what, f"no {what} id starts with {rules.quote(text)}; {where}")
    raise InvalidInput(
        what,
        f"{rules.quote(text)} matches {_several(found)} {what}s: "
        + "; ".join(label(f) for f in found[:AMBIGUOUS_SHOWN])
        + ". Type more of the id",
    )


def _several(found: Sequence[object]) -> str:
    return f"more than {AMBIGUOUS_SHOWN}" if len(found) > AMBIGUOUS_SHOWN else str(len(found))


def _whole_minutes(minutes: int, *, low: int) -> int:
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not low <= minutes <= MAX_DAY_MINUTES
    ):
        raise InvalidInput(
            "minutes",
            f"must be whole minutes from {low} to {MAX_DAY_MINUTES}, got {rules.quote(minutes)}",
        )
    return minutes


def _local_hm(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


_VERSION_FIELDS = ("id", "patient_ref", "date_of_service", "clinician", "role", "amended")
"""A Session's attributes that a session record holds under the same names."""


def _value(field: object) -> str:
    """An enum's value or a record's plain string, alike."""
    return str(getattr(field, "value", field))


def _moment(raw: object) -> datetime:
    return raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))


def _items(raw: object) -> list[Mapping[str, object]]:
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []


def _segment_line(segment: Mapping[str, object]) -> str:
    """ "97110 14:02-14:32 (30:12), therapist": what a person checks a timed segment by."""
    start = _moment(segment["start_utc"])
    stop = segment.get("stop_utc")
    if stop is None:
        span = f"{_local_hm(start)}\N{EN DASH} running"
    else:
        seconds = int((_moment(stop) - start).total_seconds())
        length = f"{seconds // 60}:{seconds % 60:02d}"
        span = f"{_local_hm(start)}\N{EN DASH}{_local_hm(_moment(stop))} ({length})"
    return f"{segment['code']} {span}, {segment['furnished_by']}"


def _untimed_line(service: Mapping[str, object]) -> str:
    minutes = service.get("minutes")
    return (
        f"{service['code']}"
        + (f" {minutes} min" if minutes is not None else "")
        + (f", {service['furnished_by']}")
    )


def _minutes_text(delta: timedelta) -> str:
    """A stretch of time as people read it: "5 min", "10 min 40 s" (a stopwatch's times have
    seconds: it read "10.6667 min"); parts of a second dropped, so room is never overstated."""
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    return f"{minutes} min" + (f" {seconds} s" if seconds else "")


def _name_key(name: str) -> str:
    """A payer profile's name as people tell names apart, so a second profile can never pass
    for the first in a list: as a clinician's is (``model.clinician_key``: any case,
    compatibility forms, characters shown as nothing or as a blank space, runs of spaces)."""
    return clinician_key(name)


def _conflict_number(raw: object) -> int:
    """A kept-aside version's number as typed (``3`` or ``"3"``); InvalidInput otherwise."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw <= MAX_CONFLICT_NUMBER:
        return raw
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        number = int(raw.strip())
        if 0 < number <= MAX_CONFLICT_NUMBER:
            return number
    text = repr(raw)
    raise InvalidInput("conflict", f"{text[:80]} is not the number of a kept-aside version")
