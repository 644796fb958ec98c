"""The window's model: wraps the session service and store, owns the repaint and poll timers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TypeVar

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from therapy_timer import rules
from therapy_timer.clock import Clock
from therapy_timer.codes import Catalogue, Code, Discipline, FurnishedBy, Kind, Role
from therapy_timer.errors import TherapyTimerError
from therapy_timer.gui.view_state import (
    HeaderView,
    LiveView,
    TileState,
    TileView,
    UntimedView,
    WindowView,
)
from therapy_timer.sessions import (
    HEARTBEAT_INTERVAL_SECONDS,
    Interrupted,
    RecoveryChoice,
    SessionService,
)
from therapy_timer.stopwatch import Stopwatch, StopwatchState
from therapy_timer.store import PayerProfile, Segment, Session, Store, UntimedService

POLL_INTERVAL_MS = 1000
"""How often the window looks for changes made by another program (``PRAGMA data_version``)."""

FORGOT_TO_STOP_SETTING = "gui.forgot_to_stop_minutes"
FORGOT_TO_STOP_DEFAULT = 30
LAST_CLINICIAN_SETTING = "gui.last_clinician"
LAST_ROLE_SETTING = "gui.last_role"
LAST_PAYER_SETTING = "gui.last_payer_profile"
FAVOURITES_SETTING = "gui.favourites."  # + clinician name: comma-separated codes

DEFAULT_FAVOURITES: dict[Discipline, tuple[str, ...]] = {
    Discipline.PT: (
        "97110", "97112", "97140", "97530", "97116", "97035",
        "97010", "97012", "G0283",  # Medicare does not take 97014 (§5.2)
        "97161", "97162", "97163", "97164",
    ),
    Discipline.OT: (
        "97110", "97530", "97535", "97112", "97140", "97533",
        "97010", "97018",
        "97165", "97166", "97167", "97168",
    ),
    Discipline.SLP: ("97129", "97130", "92507", "92526", "92521", "92522", "92523", "92610"),
}  # fmt: skip

OTHER_METHOD = {rules.Method.CMS: rules.Method.AMA, rules.Method.AMA: rules.Method.CMS}
UNTIMED_REMOVED_REASON = "unticked during the session"
UNTIMED_MINUTES_REASON = "minutes entered during the session"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Draft:
    """The header as typed before a session exists; tapping a tile opens a session from it."""

    patient_ref: str = ""
    clinician: str = ""
    role: Role = Role.PT
    payer_profile: str = ""
    date_of_service: date | None = None


@dataclass(frozen=True)
class ForgotToStop:
    """A treatment code has run without a break longer than the clinic's limit."""

    code: str
    minutes: int


class SessionController(QObject):
    """Turns taps into session-service calls and the stored session into ``WindowView``s.

    Elapsed time always comes from the stopwatch (``clock.now() - start``); the repaint timer
    only asks for a new view, aligned to the next whole second of the running code.
    """

    view_changed = Signal(object)  # WindowView
    failed = Signal(str)  # a plain-language message
    forgot_to_stop_raised = Signal(object)  # ForgotToStop
    forgot_to_stop_cleared = Signal()
    session_closed = Signal(str)  # session id, closed here or by another program

    def __init__(
        self,
        service: SessionService,
        store: Store,
        catalogue: Catalogue,
        clock: Clock,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._store = store
        self._catalogue = catalogue
        self._clock = clock
        self._session: Session | None = None
        self._stopwatch: Stopwatch | None = None
        self._untimed: list[UntimedService] = []
        self._draft = self._initial_draft()
        self._furnished_by = self._default_furnished_by(self._draft.role)
        self._favourites: list[str] = []
        self._message = ""
        self._data_version = -1
        self._profiles: dict[str, PayerProfile] = {}
        self._alert_run: tuple[str, datetime] | None = None  # the run the alert watches
        self._alert_due = 0  # minutes into that run when the alert is (next) due
        self._alert_showing = False
        self._profile_names: tuple[str, ...] = ()
        self._forgot_limit = FORGOT_TO_STOP_DEFAULT
        self._last_view = WindowView()
        self._last_heartbeat: datetime | None = None

        self._repaint_timer = QTimer(self)
        self._repaint_timer.setSingleShot(True)
        self._repaint_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._repaint_timer.timeout.connect(self._on_repaint_timer_timeout)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(POLL_INTERVAL_MS)
        self._poll_timer.timeout.connect(self._on_poll_timer_timeout)

    # -- life cycle ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the store once: adopt the open session, if any, and publish the first view."""
        self._guard(self._reload)

    def start_background(self) -> None:
        """Start polling for other programs' changes and writing the heartbeat."""
        self._poll_timer.start()
        self._guard(self._beat)

    def stop_background(self) -> None:
        self._poll_timer.stop()
        self._repaint_timer.stop()

    @property
    def repaint_timer(self) -> QTimer:
        return self._repaint_timer

    @property
    def poll_timer(self) -> QTimer:
        return self._poll_timer

    @property
    def view(self) -> WindowView:
        return self._last_view

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def clear_message(self) -> None:
        self._message = ""
        self._publish()

    # -- header --------------------------------------------------------------------------------

    def set_draft(self, draft: Draft) -> None:
        """The header's fields changed while no session is open."""
        role_changed = draft.role is not self._draft.role
        clinician_changed = draft.clinician.strip() != self._draft.clinician.strip()
        self._draft = draft
        if role_changed and self._session is None:
            self._furnished_by = self._default_furnished_by(draft.role)
        if clinician_changed or role_changed:
            self._favourites = self._load_favourites()
        self._publish()

    def open_session(self) -> bool:
        """Open a session from the header draft; False (with a message) if it is incomplete."""
        return self._guard(self._open_session_from_draft) is not None

    # -- stopwatch -----------------------------------------------------------------------------

    def start_code(self, code: str) -> None:
        """A tile was tapped: start its code (opening the session first when there is none)."""

        def start() -> None:
            if self._session is None and self._open_session_from_draft() is None:
                return
            assert self._session is not None
            entry = self._catalogue.get(code)
            by = self._furnished_by
            if not entry.assistant_allowed and by is FurnishedBy.ASSISTANT:
                by = FurnishedBy.THERAPIST  # R7.9: only the therapist evaluates
            self._adopt(self._service.start(self._session.id, entry.code, by).stopwatch)
            self._message = ""

        self._guard(start)
        self._publish()

    def start_nth(self, number: int) -> None:
        """Digit keys 1-9: start the tile with that number."""
        for tile in (*self._last_view.tiles, *self._last_view.beside):
            if tile.number == number:
                self.start_code(tile.code)
                return

    def stop_code(self, code: str | None = None) -> None:
        def stop() -> None:
            if self._session is not None:
                self._adopt(self._service.stop(self._session.id, code).stopwatch)

        self._guard(stop)
        self._publish()

    def toggle_pause(self) -> None:
        """Space: pause what runs, or resume what was paused; nothing happens when idle."""

        def toggle() -> None:
            if self._session is None or self._stopwatch is None:
                return
            state = self._stopwatch.state
            if state is StopwatchState.PAUSED:
                self._adopt(self._service.resume(self._session.id).stopwatch)
            elif state is StopwatchState.RUNNING:
                self._adopt(self._service.pause(self._session.id).stopwatch)

        self._guard(toggle)
        self._publish()

    def set_furnished_by(self, furnished_by: FurnishedBy) -> None:
        def switch() -> None:
            self._furnished_by = furnished_by
            if self._session is not None:
                outcome = self._service.set_furnished_by(self._session.id, furnished_by)
                self._adopt(outcome.stopwatch)

        self._guard(switch)
        self._publish()

    # -- untimed services ----------------------------------------------------------------------

    def set_untimed(self, code: str, checked: bool, minutes: int | None = None) -> None:
        """Tick or untick an untimed service; its minutes are optional (None: not recorded)."""

        def apply() -> None:
            if self._session is None and self._open_session_from_draft() is None:
                return
            assert self._session is not None
            existing = [u for u in self._untimed if u.code == code]
            if checked and not existing:
                self._store.add_untimed(
                    self._session.id, code=code, minutes=minutes, furnished_by=self._untimed_by()
                )
            elif not checked:
                for service in existing:
                    self._store.remove_untimed(service.id, reason=UNTIMED_REMOVED_REASON)
            self._untimed = self._store.untimed_services(self._session.id)

        self._guard(apply)
        self._publish()

    def set_untimed_minutes(self, code: str, minutes: int | None) -> None:
        def apply() -> None:
            if self._session is None:
                return
            existing = [u for u in self._untimed if u.code == code]
            if not existing and minutes is None:
                return
            if not existing:
                self._store.add_untimed(
                    self._session.id, code=code, minutes=minutes, furnished_by=self._untimed_by()
                )
            elif existing[0].minutes != minutes:
                self._store.amend_untimed(
                    existing[0].id, minutes=minutes, reason=UNTIMED_MINUTES_REASON
                )
            self._untimed = self._store.untimed_services(self._session.id)

        self._guard(apply)
        self._publish()

    # -- favourites ----------------------------------------------------------------------------

    def add_code(self, code: str) -> None:
        """Put a catalogue code on the screen (and in the clinician's favourites)."""

        def add() -> None:
            entry = self._catalogue.get(code)
            if entry.code not in self._favourites:
                self._favourites.append(entry.code)
                self._save_favourites()

        self._guard(add)
        self._publish()

    def remove_code(self, code: str) -> None:
        def remove() -> None:
            if code in self._favourites:
                self._favourites.remove(code)
                self._save_favourites()

        self._guard(remove)
        self._publish()

    def search(self, text: str) -> list[Code]:
        return self._catalogue.search(text) if text.strip() else list(self._catalogue)

    # -- ending --------------------------------------------------------------------------------

    def prepare_end(self) -> str | None:
        """Ctrl+E: stop what runs so the minutes hold still; the session id to summarise."""

        def stop_all() -> str | None:
            if self._session is None:
                self._message = "There is no open session to end."
                return None
            if self._stopwatch is not None and self._stopwatch.state is StopwatchState.RUNNING:
                self._adopt(self._service.stop(self._session.id).stopwatch)
            return self._session.id

        session_id = self._guard(stop_all)
        self._publish()
        return session_id

    def summary(
        self, session_id: str, allocation: Mapping[str, int] | None = None
    ) -> rules.Result | None:
        """The rules' answer for a session (None with a message if the store failed)."""
        return self._guard(lambda: self._service.summary(session_id, allocation))

    def close_session(self, session_id: str) -> bool:
        """Close the session (stopping anything that runs); True once it is closed."""

        def close() -> bool:
            session = self._store.get_session(session_id)
            if session.is_open:
                self._service.end_session(session_id)
            if self._session is not None and self._session.id == session_id:
                self._forget_session()
            return True

        closed = self._guard(close) is True
        if closed:
            self.session_closed.emit(session_id)
        self._publish()
        return closed

    def get_session(self, session_id: str) -> Session | None:
        return self._guard(lambda: self._store.get_session(session_id))

    def choose_allocation(
        self, session_id: str, allocation: Mapping[str, int], reason: str = ""
    ) -> bool:
        """Store the tie choice with the session (a closed session needs a reason)."""
        return (
            self._guard(
                lambda: self._service.choose_allocation(session_id, allocation, reason=reason)
            )
            is not None
        )

    def segments(self, session_id: str) -> list[Segment]:
        return self._guard(lambda: self._store.segments(session_id)) or []

    def correct_minutes(self, changes: Mapping[str, int], reason: str) -> bool:
        """Apply {segment id: minutes} corrections with one reason; False with a message."""

        def apply() -> bool:
            for segment_id, minutes in changes.items():
                self._service.amend_segment(segment_id, reason=reason, minutes=minutes)
            return True

        done = self._guard(apply) is True
        self._publish()
        return done

    # -- crash recovery ------------------------------------------------------------------------

    def interrupted(self) -> list[Interrupted]:
        return self._guard(self._service.interrupted) or []

    def recover(self, session_id: str, choice: RecoveryChoice) -> None:
        self._guard(lambda: self._service.recover(session_id, choice))
        self._guard(self._reload)

    # -- settings ------------------------------------------------------------------------------

    @property
    def forgot_to_stop_minutes(self) -> int:
        return self._forgot_limit

    def set_forgot_to_stop_minutes(self, minutes: int) -> None:
        minutes = max(1, int(minutes))
        self._guard(lambda: self._store.set_setting(FORGOT_TO_STOP_SETTING, str(minutes)))
        self._forgot_limit = minutes
        self._alert_run = None
        self._publish()

    def snooze_forgot_to_stop(self) -> None:
        """ "Still treating": ask again after another limit's worth of minutes."""
        run = self._running_run()
        if run is not None:
            self._alert_due = run[2] + self.forgot_to_stop_minutes
        self._alert_showing = False
        self.forgot_to_stop_cleared.emit()

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Publish a fresh view (what the repaint timer does): cheap, no database access."""
        self._publish()

    def poll(self) -> None:
        """What the poll timer does: reload when another connection committed; heartbeat."""

        def check() -> None:
            version = self._store.data_version()
            if version != self._data_version:
                self._reload()
            self._beat()

        self._guard(check)

    def _on_repaint_timer_timeout(self) -> None:
        self.tick()

    def _on_poll_timer_timeout(self) -> None:
        self.poll()

    # -- internals -----------------------------------------------------------------------------

    def _guard(self, action: Callable[[], _T]) -> _T | None:
        """Run a model call; an expected failure becomes a plain message instead of a crash."""
        try:
            return action()
        except TherapyTimerError as exc:
            self._message = _plain(exc)
            self.failed.emit(self._message)
            return None

    def _read_forgot_limit(self) -> int:
        value = self._store.get_setting(FORGOT_TO_STOP_SETTING)
        try:
            minutes = int(value) if value else FORGOT_TO_STOP_DEFAULT
        except ValueError:
            minutes = FORGOT_TO_STOP_DEFAULT
        return max(1, minutes)

    def _beat(self) -> None:
        now = self._clock.now()
        last = self._last_heartbeat
        if last is None or now - last >= timedelta(seconds=HEARTBEAT_INTERVAL_SECONDS):
            self._last_heartbeat = self._service.heartbeat()

    def _reload(self) -> None:
        self._data_version = self._store.data_version()
        self._profiles.clear()
        self._profile_names = tuple(p.name for p in self._store.payer_profiles())
        self._forgot_limit = self._read_forgot_limit()
        previous = self._session
        session = None
        if previous is not None:
            session = self._store.get_session(previous.id)
            if not session.is_open:
                self._forget_session()
                self._message = (
                    f"The session for {session.patient_ref} was closed by another program."
                )
                self.session_closed.emit(session.id)
                session = None
        if session is None:
            open_sessions = self._service.open_sessions()
            session = open_sessions[-1] if open_sessions else None
            if session is not None and session.date_of_service < self._service.today():
                self._message = (
                    f"The session for {session.patient_ref} from "
                    f"{session.date_of_service.isoformat()} was never closed: review and end it."
                )
        if session is None:
            self._session = None
            self._stopwatch = None
            self._untimed = []
            self._favourites = self._load_favourites()
        else:
            self._take_session(session)
        self._publish()

    def _take_session(self, session: Session) -> None:
        changed = self._session is None or self._session.id != session.id
        self._session = session
        self._stopwatch = self._service.stopwatch(session.id)
        self._untimed = self._store.untimed_services(session.id)
        running = self._stopwatch.running
        if running:
            self._furnished_by = running[0].furnished_by
        elif session.resume:
            self._furnished_by = session.resume[0].furnished_by
        if changed:
            self._favourites = self._load_favourites()

    def _adopt(self, stopwatch: Stopwatch) -> None:
        assert self._session is not None
        self._stopwatch = stopwatch
        self._session = self._store.get_session(self._session.id)
        self._data_version = self._store.data_version()

    def _forget_session(self) -> None:
        self._session = None
        self._stopwatch = None
        self._untimed = []
        self._furnished_by = self._default_furnished_by(self._draft.role)

    def _open_session_from_draft(self) -> Session | None:
        draft = self._draft
        profile = draft.payer_profile or self._first_profile()
        session = self._service.open_session(
            patient_ref=draft.patient_ref,
            clinician=draft.clinician or "Clinician",
            role=draft.role,
            payer_profile=profile,
            date_of_service=draft.date_of_service,
        )
        self._store.set_setting(LAST_CLINICIAN_SETTING, session.clinician)
        self._store.set_setting(LAST_ROLE_SETTING, session.role.value)
        self._store.set_setting(LAST_PAYER_SETTING, session.payer_profile)
        self._take_session(session)
        self._data_version = self._store.data_version()
        return session

    def _first_profile(self) -> str:
        return self._service.default_payer_profile()

    def _initial_draft(self) -> Draft:
        try:
            role = Role(self._store.get_setting(LAST_ROLE_SETTING, Role.PT.value) or "PT")
        except ValueError:
            role = Role.PT
        return Draft(
            clinician=self._store.get_setting(LAST_CLINICIAN_SETTING, "") or "",
            role=role,
            payer_profile=self._store.get_setting(LAST_PAYER_SETTING, "") or "",
        )

    @staticmethod
    def _default_furnished_by(role: Role) -> FurnishedBy:
        # A PTA or OTA at the table furnishes the minutes themselves (R7.1): tag them so.
        return FurnishedBy.ASSISTANT if role.is_assistant else FurnishedBy.THERAPIST

    def _untimed_by(self) -> FurnishedBy:
        return (
            FurnishedBy.ASSISTANT
            if self._furnished_by is FurnishedBy.ASSISTANT
            else (FurnishedBy.THERAPIST)
        )

    def _clinician_and_discipline(self) -> tuple[str, Discipline]:
        if self._session is not None:
            return self._session.clinician, self._session.discipline
        return self._draft.clinician.strip(), self._draft.role.discipline

    def _load_favourites(self) -> list[str]:
        clinician, discipline = self._clinician_and_discipline()
        stored = self._store.get_setting(FAVOURITES_SETTING + clinician) if clinician else None
        codes = stored.split(",") if stored else list(DEFAULT_FAVOURITES[discipline])
        return [c for c in codes if c in self._catalogue]

    def _save_favourites(self) -> None:
        clinician, _ = self._clinician_and_discipline()
        if clinician:
            self._store.set_setting(FAVOURITES_SETTING + clinician, ",".join(self._favourites))

    # -- the view ------------------------------------------------------------------------------

    def _publish(self) -> None:
        view = self._guard(self._build_view)
        if view is None:
            view = WindowView(header=self._last_view.header, message=self._message)
        self._last_view = view
        self._check_forgot_to_stop()
        self._schedule_repaint()
        self.view_changed.emit(view)

    def _schedule_repaint(self) -> None:
        sw = self._stopwatch
        if sw is None or sw.state is not StopwatchState.RUNNING:
            self._repaint_timer.stop()
            return
        # Fire just after the running code's next whole second, so the display never lags by
        # up to a second and nothing repaints more often than the digits change.
        segment = sw.running[0]
        micros = int((sw.now() - segment.start).total_seconds() * 1_000_000)
        self._repaint_timer.start(1000 - (micros // 1000) % 1000 + 5)

    def _build_view(self) -> WindowView:
        header = self._header_view()
        sw = self._stopwatch
        totals = sw.totals() if sw is not None else {}
        paused = sw is not None and sw.state is StopwatchState.PAUSED
        resuming = {r.code for r in sw.paused.resume} if sw is not None and sw.paused else set()
        running_by = {s.code: s.furnished_by for s in sw.running} if sw is not None else {}
        payer, other = self._results()
        units = {c.code: c.units for c in payer.codes} if payer is not None else {}

        shown = list(self._favourites)
        shown += [c for c in totals if c not in shown]
        shown += [u.code for u in self._untimed if u.code not in shown]
        tiles: list[TileView] = []
        beside: list[TileView] = []
        untimed: list[UntimedView] = []
        recorded = {u.code: u for u in self._untimed}
        for code in shown:
            entry = self._catalogue.get(code)
            total = totals.get(code)
            if entry.kind is Kind.UNTIMED and not entry.supervised_modality:
                service = recorded.get(code)
                untimed.append(
                    UntimedView(
                        code,
                        entry.description,
                        service is not None,
                        None if service is None else service.minutes,
                    )
                )
                continue
            if code in running_by:
                state = TileState.RUNNING
            elif code in resuming:
                state = TileState.PAUSED
            else:
                state = TileState.IDLE
            view = TileView(
                code=code,
                name=entry.description,
                elapsed=total.elapsed if total else timedelta(0),
                minutes=total.minutes if total else 0,
                units=None if entry.supervised_modality else units.get(code, 0),
                state=state,
                furnished_by=running_by.get(code),
            )
            (beside if entry.supervised_modality else tiles).append(view)
        numbered = _number(tiles, 1)
        numbered_beside = _number(beside, len(tiles) + 1)
        live = self._live_view(payer, other, paused)
        return WindowView(
            header=header,
            tiles=tuple(numbered),
            beside=tuple(numbered_beside),
            untimed=tuple(untimed),
            live=live,
            furnished_by=self._furnished_by,
            paused=paused,
            message=self._message,
        )

    def _header_view(self) -> HeaderView:
        profiles = self._profile_names
        session = self._session
        if session is None:
            draft = self._draft
            return HeaderView(
                session_open=False,
                patient_ref=draft.patient_ref,
                clinician=draft.clinician,
                role=draft.role,
                discipline=draft.role.discipline,
                payer_profile=draft.payer_profile or self._first_profile(),
                payer_profiles=profiles,
                date_of_service=draft.date_of_service or self._service.today(),
            )
        return HeaderView(
            session_open=True,
            patient_ref=session.patient_ref,
            clinician=session.clinician,
            role=session.role,
            discipline=session.discipline,
            payer_profile=session.payer_profile,
            payer_profiles=profiles,
            date_of_service=session.date_of_service,
            opened_at=session.created_utc.astimezone(),
        )

    def _results(self) -> tuple[rules.Result | None, rules.Result | None]:
        """The rules' answer under the payer's method and under the other one."""
        session, sw = self._session, self._stopwatch
        if session is None or sw is None:
            return None, None
        profile = self._store_profile(session.payer_profile)
        other = OTHER_METHOD[profile.method]
        return (
            self._service.summarize(session, sw, self._untimed, profile),
            self._service.summarize(session, sw, self._untimed, profile, method=other),
        )

    def _store_profile(self, name: str) -> PayerProfile:
        # Cached because this runs on every repaint; a reload (data_version) clears it.
        profile = self._profiles.get(name)
        if profile is None:
            profile = self._profiles[name] = self._store.get_payer_profile(name)
        return profile

    def _live_view(
        self, payer: rules.Result | None, other: rules.Result | None, paused: bool
    ) -> LiveView:
        if payer is None or other is None:
            return LiveView(paused=paused)
        return LiveView(
            total_timed_minutes=payer.total_timed_minutes,
            payer_method=payer.method,
            payer_units=payer.total_timed_units,
            other_method=other.method,
            other_units=other.total_timed_units,
            minutes_to_next_unit=self._minutes_to_next_unit(payer),
            paused=paused,
        )

    def _minutes_to_next_unit(self, payer: rules.Result) -> int | None:
        """Minutes of the running timed code until the payer's method gives one more unit.

        Information for the therapist, never a prompt to treat longer. The arithmetic is the
        rules module's (R2.2 unit chart, R3.1 midpoint); this only searches the next minute.
        """
        sw = self._stopwatch
        running = sw.running_treatment if sw is not None else None
        if running is None or not self._catalogue.get(running.code).timed:
            return None
        if payer.method is rules.Method.CMS:
            total = payer.total_timed_minutes
            now_units = rules.cms_total_units(total)
            return next(k for k in range(1, 16) if rules.cms_total_units(total + k) > now_units)
        minutes = next((c.minutes for c in payer.codes if c.code == running.code), 0)
        now_units = rules.ama_units(minutes)
        return next(k for k in range(1, 16) if rules.ama_units(minutes + k) > now_units)

    def _running_run(self) -> tuple[str, datetime, int] | None:
        """The running treatment code, when its run began and its whole minutes so far."""
        sw = self._stopwatch
        running = sw.running_treatment if sw is not None else None
        if sw is None or running is None:
            return None
        start = running.start
        # A furnished-by switch splits one run into segments; the run began at the first of them.
        for segment in sorted(sw.segments, key=lambda s: s.start, reverse=True):
            if segment.code == running.code and segment.stop == start:
                start = segment.start
        return running.code, start, int((sw.now() - start).total_seconds() // 60)

    def _check_forgot_to_stop(self) -> None:
        run = self._running_run()
        if run is None or run[:2] != self._alert_run:
            if self._alert_showing:
                self._alert_showing = False
                self.forgot_to_stop_cleared.emit()
            self._alert_run = None if run is None else (run[0], run[1])
            self._alert_due = self.forgot_to_stop_minutes
        if run is None or self._alert_showing:
            return
        code, _, minutes = run
        if minutes >= self._alert_due:
            self._alert_showing = True
            self.forgot_to_stop_raised.emit(ForgotToStop(code, minutes))


def _number(views: list[TileView], first: int) -> list[TileView]:
    return [replace(v, number=first + i if first + i <= 9 else None) for i, v in enumerate(views)]


def _plain(exc: TherapyTimerError) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] if text else "Something went wrong."
