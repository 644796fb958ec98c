"""The window's model: turns taps into Clinic calls, owns the repaint and poll timers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from therapy_timer import rules
from therapy_timer.clinic import (
    HEARTBEAT_INTERVAL_SECONDS,
    Clinic,
    Outcome,
    Workspace,
    left_open_text,
)
from therapy_timer.codes import Catalogue, Code, FurnishedBy
from therapy_timer.errors import (
    InvalidInput,
    InvalidOperation,
    NoRoom,
    StorageUnavailable,
    TherapyTimerError,
    UnknownCode,
)
from therapy_timer.gui import presenter
from therapy_timer.gui.presenter import ForgotToStop
from therapy_timer.gui.view_state import CaseloadEntry, Draft, Refusal, WindowView
from therapy_timer.model import (
    ClockWarning,
    Interrupted,
    RecoveryChoice,
    Segment,
    Session,
    SessionProblem,
    clinician_key,
)
from therapy_timer.stopwatch import RoundingPolicy, StopwatchState

POLL_INTERVAL_MS = 1000
"""How often the window looks for changes made by another program (``PRAGMA data_version``)."""

ASK_FOR_PATIENT = "Type the patient's reference (initials or MRN) first."
ASK_FOR_CLINICIAN = "Type the clinician's name first: the note and the claim say who treated."

UNDO_SECONDS = 8
"""How long a start that stopped another patient's one-on-one time can be undone."""

__all__ = ["Draft", "ForgotToStop", "SessionController"]

_T = TypeVar("_T")


class SessionController(QObject):
    """Turns taps into ``Clinic`` calls and the open session into ``WindowView``s.

    Elapsed time always comes from the stopwatch (``clock.now() - start``); the repaint timer
    only asks for a new view, aligned to the next whole second of the running code.
    """

    view_changed = Signal(object)  # WindowView
    failed = Signal(str)  # a plain-language message
    forgot_to_stop_raised = Signal(object)  # ForgotToStop
    forgot_to_stop_cleared = Signal()
    session_closed = Signal(str)  # session id, closed here or by another program
    patient_ref_asked = Signal()  # a start needed the patient's reference, and none was typed
    clinician_asked = Signal()  # a start needed the clinician's name, and none was typed

    def __init__(self, clinic: Clinic, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clinic = clinic
        self._catalogue = clinic.catalogue
        self._clock = clinic.clock
        self._workspace: Workspace | None = None
        header = clinic.remembered_header()
        self._draft = Draft(
            clinician=header.clinician, role=header.role, payer_profile=header.payer_profile
        )
        self._furnished_by = self._draft.role.furnishes
        self._favourites: list[str] = []
        self._message = ""
        self._data_version = -1
        self._profile_names: tuple[str, ...] = ()
        self._default_profile = ""
        self._forgot_limit = clinic.forgot_to_stop_minutes()
        self._forgot = presenter.ForgotToStopTracker()
        self._last_view = WindowView()
        self._last_heartbeat: datetime | None = None
        # The caseload: every other open session, read with the shown one.
        self._others: dict[str, Workspace] = {}
        # "New patient" (or a closed session): the header waits for a patient, nothing adopted.
        self._new_patient = False
        self._undo: Outcome | None = None
        self._undo_text = ""
        self._clock_warning: ClockWarning | None = None  # the last one said
        # Read before this window takes the lease: a dead window's timers, asked about once.
        self._abandoned: list[Interrupted] = []
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self._on_undo_timer_timeout)

        self._repaint_timer = QTimer(self)
        self._repaint_timer.setSingleShot(True)
        # By its name, as are other enum properties set before the window's first paint:
        # naming a Qt enum builds the Qt namespace's 93 of them (theme.pen, issue 13).
        self._repaint_timer.setProperty("timerType", "PreciseTimer")
        self._repaint_timer.timeout.connect(self._on_repaint_timer_timeout)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(POLL_INTERVAL_MS)
        self._poll_timer.timeout.connect(self._on_poll_timer_timeout)

    # -- life cycle ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the clinic once: adopt the open session, if any, and publish the first view.

        Raises StorageUnavailable when the data cannot be read at all (a damaged row in it):
        a window built on no view at all would show neither the codes nor why."""
        self._abandoned = self._guard(self._clinic.abandoned, unless=StorageUnavailable) or []
        self._guard(self._reload, unless=StorageUnavailable)

    def start_background(self) -> None:
        """Start polling for other programs' changes and writing the heartbeat."""
        self._poll_timer.start()
        self._guard(self._beat)

    def stop_background(self) -> None:
        """The window closes: timers, and the lease (what still runs is simply running)."""
        was_beating = self._last_heartbeat is not None
        self._poll_timer.stop()
        self._repaint_timer.stop()
        self._undo_timer.stop()
        if was_beating:
            self._last_heartbeat = None
            self._guard(self._clinic.release_window)

    @property
    def repaint_timer(self) -> QTimer:
        return self._repaint_timer

    @property
    def view(self) -> WindowView:
        return self._last_view

    @property
    def session(self) -> Session | None:
        return self._workspace.session if self._workspace is not None else None

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    @property
    def policy(self) -> RoundingPolicy:
        """The clinic's rounding of seconds (the corrections dialog shows minutes with it)."""
        return self._guard(lambda: self._clinic.policy) or RoundingPolicy.DOWN

    @property
    def data_dir_text(self) -> str:
        return str(self._clinic.data_dir)

    def clear_message(self) -> None:
        self._message = ""
        self._publish()

    # -- header --------------------------------------------------------------------------------

    def set_draft(self, draft: Draft) -> None:
        """The header's fields changed while no session is open."""
        role_changed = draft.role is not self._draft.role
        clinician_changed = clinician_key(draft.clinician) != clinician_key(self._draft.clinician)
        if draft.date_of_service == self._clinic.today():
            # Today's date, as the header shows it unless another day is picked, means the day
            # a tile is tapped: kept as a date, a window left open overnight dated every next
            # morning's patient the day before (until the header's date was changed by hand).
            draft = draft._replace(date_of_service=None)
        self._draft = draft
        asked = {
            presenter.plain(ASK_FOR_PATIENT): draft.patient_ref,
            presenter.plain(ASK_FOR_CLINICIAN): draft.clinician,
        }
        if asked.get(self._message, "").strip():
            self._message = ""  # answered: the banner no longer stands over the typing
        if role_changed and self._workspace is None:
            self._furnished_by = draft.role.furnishes
        if clinician_changed or role_changed:
            self._guard(self._load_favourites)
        self._publish()

    def open_session(self) -> bool:
        """Open a session from the header draft; False (with a message) if it is incomplete."""
        return self._guard(self._open_session_from_draft) is not None

    # -- stopwatch -----------------------------------------------------------------------------

    def start_code(self, code: str) -> None:
        """A tile was tapped: start its code (opening the session first when there is none)."""

        def start() -> None:
            session = self._session_or_open((code, self._furnished_by))
            outcome = self._clinic.start(session.id, code, self._furnished_by)
            self._adopt_step(outcome)
            self._say_if_left(outcome)
            if outcome.elsewhere:
                self._offer_undo(outcome)

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
            if self._workspace is not None:
                self._adopt_step(self._clinic.stop(self._workspace.session.id, code))

        self._guard(stop)
        self._publish()

    def toggle_pause(self) -> None:
        """Space: pause what runs, or resume what was paused; nothing happens when idle."""

        def toggle() -> None:
            if self._workspace is None:
                return
            session_id = self._workspace.session.id
            state = self._workspace.stopwatch.state
            if state is StopwatchState.PAUSED:
                outcome = self._clinic.resume(session_id)
                self._adopt_step(outcome)
                self._say_if_left(outcome)
            elif state is StopwatchState.RUNNING:
                self._adopt_step(self._clinic.pause(session_id))

        self._guard(toggle)
        self._publish()

    def set_furnished_by(self, furnished_by: FurnishedBy) -> None:
        def switch() -> None:
            if self._workspace is not None:
                session_id = self._workspace.session.id
                self._adopt_step(self._clinic.set_furnished_by(session_id, furnished_by))
            self._furnished_by = furnished_by

        self._guard(switch)
        self._publish()

    # -- caseload ------------------------------------------------------------------------------

    def switch_to(self, session_id: str) -> None:
        """Show another open session (a tap on the caseload strip)."""

        def switch() -> None:
            if self.session is not None and self.session.id == session_id:
                return
            session = self._clinic.get_session(session_id)
            if not session.is_open:
                raise InvalidOperation(f"The session for {session.patient_ref} is closed.")
            if self._workspace is not None:
                self._others[self._workspace.session.id] = self._workspace
            self._new_patient = False
            self._others.pop(session_id, None)
            self._take_session(session)
            self._message = ""

        self._guard(switch)
        self._publish()

    def switch_nth(self, number: int) -> None:
        """Ctrl+1-9: show the caseload entry with that number."""
        for entry in self._last_view.caseload:
            if entry.number == number:
                self.switch_to(entry.session_id)
                return

    def new_patient(self) -> None:
        """Leave the shown session running in the caseload; the header waits for a patient."""
        if self._workspace is not None:
            self._others[self._workspace.session.id] = self._workspace
        self._forget_session()
        self._message = ""
        self._guard(self._load_favourites)
        self._publish()

    def undo_elsewhere(self) -> None:
        """Take back the start that stopped another patient's one-on-one time."""
        outcome = self._undo
        self._clear_undo()
        if outcome is None:
            return

        def undo() -> None:
            self._clinic.undo_elsewhere(outcome)
            self._reload()

        self._guard(undo)
        self._publish()

    def dismiss_undo(self) -> None:
        self._clear_undo()
        self._publish()

    def _offer_undo(self, outcome: Outcome) -> None:
        self._undo = outcome
        self._undo_text = presenter.elsewhere_text(
            [(o.session.patient_ref, [s.code for s in o.change.closed]) for o in outcome.elsewhere],
            outcome.session.patient_ref,
        )
        for other in outcome.elsewhere:
            if other.session.id in self._others:
                self._others[other.session.id] = self._clinic.workspace(other.session.id)
        self._undo_timer.start()

    def _clear_undo(self) -> None:
        self._undo = None
        self._undo_text = ""
        self._undo_timer.stop()

    def _on_undo_timer_timeout(self) -> None:
        self.dismiss_undo()

    # -- untimed services ----------------------------------------------------------------------

    def set_untimed(self, code: str, checked: bool, minutes: int | None = None) -> None:
        """Tick or untick an untimed service; its minutes are optional (None: not recorded)."""

        def apply() -> None:
            session = self._session_or_open((code, self._untimed_by()) if checked else None)
            self._clinic.set_untimed(
                session.id, code, checked=checked, minutes=minutes, furnished_by=self._untimed_by()
            )
            self._adopt(session)

        self._guard(apply)
        self._publish()

    def set_untimed_minutes(self, code: str, minutes: int | None) -> None:
        def apply() -> None:
            if self._workspace is None:
                return
            session = self._workspace.session
            self._clinic.set_untimed_minutes(
                session.id, code, minutes, furnished_by=self._untimed_by()
            )
            self._adopt(session)

        self._guard(apply)
        self._publish()

    # -- favourites ----------------------------------------------------------------------------

    def add_code(self, code: str) -> None:
        """Put a catalogue code on the screen (and in the clinician's favourites)."""

        def add() -> None:
            entry = self._catalogue.get(code)
            if entry.code not in self._favourites:
                self._favourites.append(entry.code)
                self._clinic.save_favourites(self._clinician(), self._favourites)

        self._guard(add)
        self._publish()

    def remove_code(self, code: str) -> None:
        def remove() -> None:
            if code in self._favourites:
                self._favourites.remove(code)
                self._clinic.save_favourites(self._clinician(), self._favourites)

        self._guard(remove)
        self._publish()

    def search(self, text: str) -> list[Code]:
        return self._catalogue.search(text) if text.strip() else list(self._catalogue)

    # -- ending --------------------------------------------------------------------------------

    def prepare_end(self) -> str | None:
        """Ctrl+E: stop what runs so the minutes hold still; the session id to summarise."""

        def stop_all() -> str | None:
            if self._workspace is None:
                self._message = "There is no open session to end."
                return None
            session_id = self._workspace.session.id
            if self._workspace.stopwatch.state is StopwatchState.RUNNING:
                self._adopt_step(self._clinic.stop(session_id))
            return session_id

        session_id = self._guard(stop_all)
        self._publish()
        return session_id

    def summary(
        self, session_id: str, allocation: Mapping[str, int] | None = None
    ) -> rules.Result | SessionProblem | None:
        """The rules' answer for a session, or what keeps the rules from answering (None with
        a message if the store failed)."""
        if allocation is None:
            return self._guard(lambda: self._clinic.summary_or_problem(session_id))
        return self._guard(lambda: self._clinic.summary(session_id, allocation))

    def close_session(self, session_id: str, allocation: Mapping[str, int] | None = None) -> bool:
        """Close the session (stopping anything that runs, keeping the tie choice shown);
        True once it is closed. The next patient starts from an empty patient field."""

        def close() -> bool:
            self._clinic.close_session(session_id, allocation=allocation)
            if self._workspace is not None and self._workspace.session.id == session_id:
                self._forget_session()
            return True

        closed = self._guard(close) is True
        if closed:
            self.session_closed.emit(session_id)
        self._publish()
        return closed

    def get_session(self, session_id: str) -> Session | None:
        return self._guard(lambda: self._clinic.get_session(session_id))

    def choose_allocation(
        self, session_id: str, allocation: Mapping[str, int], reason: str = ""
    ) -> bool:
        """Store the tie choice with the session (a closed session needs a reason)."""
        return (
            self._guard(
                lambda: self._clinic.choose_allocation(session_id, allocation, reason=reason)
            )
            is not None
        )

    def segments(self, session_id: str) -> list[Segment]:
        return self._guard(lambda: self._clinic.segments(session_id)) or []

    def correct_minutes(
        self, changes: Mapping[str, int], reason: str, make_room: bool = False
    ) -> Refusal | None:
        """Apply {segment id: minutes} corrections with one reason (``make_room``: moving the
        later codes of the session later): None, or why they were refused (the plain message,
        also the window's)."""
        room = False

        def apply() -> bool:
            nonlocal room
            try:
                self._clinic.correct_minutes(changes, reason, make_room=make_room)
            except NoRoom:
                room = True
                raise
            return True

        done = self._guard(apply) is True
        self._publish()
        return None if done else Refusal(self._message, room)

    # -- crash recovery ------------------------------------------------------------------------

    def interrupted(self) -> list[Interrupted]:
        """Timers of a window that died, read at start-up before this window took over; a
        timer a command started while no window ran is not among them (it is running)."""
        return list(self._abandoned)

    def recover(self, session_id: str, choice: RecoveryChoice) -> None:
        found = next((i for i in self._abandoned if i.session.id == session_id), None)
        self._abandoned = [i for i in self._abandoned if i.session.id != session_id]
        self._guard(lambda: self._clinic.recover(session_id, choice, found=found))
        self._guard(self._reload)

    # -- settings ------------------------------------------------------------------------------

    @property
    def forgot_to_stop_minutes(self) -> int:
        return self._forgot_limit

    def set_forgot_to_stop_minutes(self, minutes: int) -> None:
        stored = self._guard(lambda: self._clinic.set_forgot_to_stop_minutes(minutes))
        self._forgot_limit = stored if stored is not None else max(1, int(minutes))
        self._forgot.reset()
        self._publish()

    def snooze_forgot_to_stop(self) -> None:
        """ "Still treating": ask again after another limit's worth of minutes."""
        self._forgot.snooze(self._run(), self.forgot_to_stop_minutes)
        self.forgot_to_stop_cleared.emit()

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Publish a fresh view (what the repaint timer does): cheap, no database access."""
        self._publish()

    def poll(self) -> None:
        """What the poll timer does: reload when another connection committed; heartbeat."""

        def check() -> None:
            if self._clinic.data_version() != self._data_version:
                self._reload()
            self._beat()

        self._guard(check)

    def _on_repaint_timer_timeout(self) -> None:
        self.tick()

    def _on_poll_timer_timeout(self) -> None:
        self.poll()

    # -- internals -----------------------------------------------------------------------------

    def _guard(
        self, action: Callable[[], _T], *, unless: type[TherapyTimerError] | None = None
    ) -> _T | None:
        """Run a clinic call; an expected failure becomes a plain message instead of a crash
        (``unless`` it is one the caller must handle)."""
        try:
            return action()
        except TherapyTimerError as exc:
            if unless is not None and isinstance(exc, unless):
                raise
            self._message = presenter.plain(str(exc))
            self._catch_up()
            self.failed.emit(self._message)
            return None

    def _catch_up(self) -> None:
        """After a refusal: reload when another program committed since the last poll. Its
        change may be why (the desk ended the session a moment before the tap): the refusal
        said 'Session <its whole id> is closed; change it with an amendment ...' and the
        closed session stayed shown until the next poll, which says it plainly. With the
        same session still shown, the refusal stands over the reload's news."""
        with contextlib.suppress(TherapyTimerError):  # the refusal is said all the same
            if self._clinic.data_version() != self._data_version:
                refusal, shown = self._message, self.session
                self._reload()
                if self.session is not None and shown is not None and self.session.id == shown.id:
                    self._message = refusal

    def _beat(self) -> None:
        now = self._clock.now()
        last = self._last_heartbeat
        if last is None or now - last >= timedelta(seconds=HEARTBEAT_INTERVAL_SECONDS):
            self._last_heartbeat = self._clinic.hold_window().at_utc

    def _reload(self) -> None:
        clinic = self._clinic
        self._data_version = clinic.data_version()
        self._profile_names = tuple(p.name for p in clinic.payer_profiles())
        self._default_profile = clinic.default_payer_profile()
        self._forgot_limit = clinic.forgot_to_stop_minutes()
        previous = self.session
        session = closed = None
        if previous is not None:
            try:
                session = clinic.get_session(previous.id)
            except InvalidInput as exc:
                if exc.field != "session":
                    raise
                # Another program put back a backup made before it: gone, not closed. Kept
                # shown, every tap was refused ('there is no session with id ...') and the
                # window never noticed.
                self._forget_session()
                self._message = (
                    f"The session for {previous.patient_ref} is no longer in the database:"
                    " another program replaced the data, as a restore from a backup does."
                )
                session = None
            if session is not None and not session.is_open:
                self._forget_session()
                self._message = (
                    f"The session for {session.patient_ref} was closed by another program."
                )
                self.session_closed.emit(session.id)
                closed, session = session, None
        open_sessions = []
        read: dict[str, Workspace] = {}
        for candidate in clinic.open_sessions():
            try:
                workspace = clinic.workspace(candidate.id)
            except UnknownCode as exc:
                # Not one session's unreadable rows (a code the clinic's code file dropped)
                # should keep the window from showing every other patient.
                self._message = (
                    f"Patient {candidate.patient_ref}'s session uses {exc.code}, which the"
                    " clinic's code file no longer lists, so it cannot be shown here: end it"
                    f" with 'therapy-timer session end --session {candidate.id[:8]}' and"
                    " correct its code, or add the code back to the code file."
                )
                if session is not None and session.id == candidate.id:
                    session = None
                continue
            open_sessions.append(workspace.session)
            read[candidate.id] = workspace
        today = None if closed is None else self._rolled_over(closed, open_sessions)
        if closed is not None and today is not None:
            session = today
            self._message = left_open_text(closed, today, by_another_program=True)
        if session is None and not self._new_patient:
            session = open_sessions[-1] if open_sessions else None
            if session is not None and session.date_of_service < clinic.today():
                self._message = (
                    f"The session for {session.patient_ref} from "
                    f"{session.date_of_service.isoformat()} was never closed: review and end it."
                )
        if session is None:
            self._workspace = None
            self._load_favourites()
        else:
            self._take_session(session, read.get(session.id))
        self._others = {
            s.id: read[s.id] for s in open_sessions if session is None or s.id != session.id
        }
        self._publish()

    def _rolled_over(self, closed: Session, open_sessions: list[Session]) -> Session | None:
        """Today's session of ``closed``'s patient and clinician, when ``closed`` was of an
        earlier day: another program's start or resume the next morning closed the session
        left open and opened this one (``Clinic.start``), which the window follows as it
        would had it been its own."""
        today = self._clinic.today()
        if closed.date_of_service >= today:
            return None
        patient, who = closed.patient_ref.upper(), clinician_key(closed.clinician)
        return next(
            (
                s
                for s in open_sessions
                if s.date_of_service == today
                and s.patient_ref.upper() == patient
                and clinician_key(s.clinician) == who
            ),
            None,
        )

    def _take_session(self, session: Session, workspace: Workspace | None = None) -> None:
        changed = self.session is None or self.session.id != session.id
        self._new_patient = False
        self._workspace = workspace or self._clinic.workspace(session.id)
        running = self._workspace.stopwatch.running
        if running:
            self._furnished_by = running[0].furnished_by
        elif session.pause is not None and session.pause.resume:
            self._furnished_by = session.pause.resume[0].furnished_by
        if changed:
            self._load_favourites()

    def _say_if_left(self, outcome: Outcome) -> None:
        """An earlier day's session left open (the one shown) was closed and today's took the
        start or resume: the window shows today's, and the banner says what happened."""
        self._message = outcome.left_text
        if outcome.left is not None:
            self.session_closed.emit(outcome.left.id)

    def _adopt_step(self, outcome: Outcome) -> None:
        """Take the stopwatch a step left behind: it is what was committed, nothing to re-read."""
        workspace = self._workspace
        if workspace is None or workspace.session.id != outcome.session.id:
            self._adopt(outcome.session)
            return
        self._workspace = replace(workspace, session=outcome.session, stopwatch=outcome.stopwatch)
        # The data version stays the last poll's: our own commits never change it (PRAGMA
        # data_version), so reading it here only hid another program's commit since that poll
        # (a CLI's untimed add just before a tap was never shown).

    def _adopt(self, session: Session) -> None:
        """Take the session as the clinic left it after an operation of ours."""
        self._workspace = self._clinic.workspace(session.id)

    def _forget_session(self) -> None:
        self._workspace = None
        self._new_patient = True
        self._draft = Draft(
            clinician=self._draft.clinician,
            role=self._draft.role,
            payer_profile=self._draft.payer_profile,
            date_of_service=self._draft.date_of_service,
        )  # the patient field empties: the next tap must not go to the last patient
        self._furnished_by = self._draft.role.furnishes

    def _session_or_open(self, recording: tuple[str, FurnishedBy] | None) -> Session:
        """The shown session, or one opened from the header for ``recording`` (a code and who
        furnishes it), unless the front door would refuse to record it there (R7.9)."""
        if self._workspace is not None:
            return self._workspace.session
        session = self._open_session_from_draft(recording)
        return session

    def _open_session_from_draft(self, recording: tuple[str, FurnishedBy] | None = None) -> Session:
        draft = self._draft
        if not draft.patient_ref.strip():
            self.patient_ref_asked.emit()
            raise InvalidOperation(ASK_FOR_PATIENT)
        if not draft.clinician.strip():
            # Unnamed, every clinician of the station was one person to R8.3 and R8.1 and on
            # every note and claim ("Clinician").
            self.clinician_asked.emit()
            raise InvalidOperation(ASK_FOR_CLINICIAN)
        if recording is not None:
            self._clinic.check_furnisher(draft.role, *recording)
        session = self._clinic.open_session(
            patient_ref=draft.patient_ref,
            clinician=draft.clinician,
            role=draft.role,
            payer_profile=draft.payer_profile or self._default_profile,
            date_of_service=draft.date_of_service,
            remember=True,
        )
        self._take_session(session)
        return session

    def _untimed_by(self) -> FurnishedBy:
        if self._furnished_by is FurnishedBy.ASSISTANT:
            return FurnishedBy.ASSISTANT
        return FurnishedBy.THERAPIST

    def _clinician(self) -> str:
        session = self.session
        return session.clinician if session is not None else self._draft.clinician.strip()

    def _load_favourites(self) -> None:
        session = self.session
        discipline = session.discipline if session is not None else self._draft.role.discipline
        self._favourites = self._clinic.favourites(self._clinician(), discipline)

    def _run(self) -> presenter.Run | None:
        workspace = self._workspace
        return presenter.running_run(workspace.stopwatch if workspace is not None else None)

    # -- the view ------------------------------------------------------------------------------

    def _publish(self) -> None:
        self._notice_clock_jump()
        view = self._guard(self._build_view)
        if view is None:
            view = WindowView(header=self._last_view.header, message=self._message)
        self._last_view = view
        self._check_forgot_to_stop()
        delays = [
            presenter.repaint_delay_ms(w.stopwatch)
            for w in (self._workspace, *self._others.values())
            if w is not None
        ]
        delay = min((d for d in delays if d is not None), default=None)
        if delay is None:
            self._repaint_timer.stop()
        else:
            self._repaint_timer.start(delay)
        self.view_changed.emit(view)

    def _notice_clock_jump(self) -> None:
        """Say once per jump that the computer's clock went back: the shown session's timers
        hold at the last moment used, and what it stores is billed from the moments recorded,
        so a person must check the minutes (the command line's status says the same)."""
        workspace = self._workspace
        if workspace is None:
            return
        stopwatch = workspace.stopwatch
        stopwatch.now()  # a reading behind the last one is recorded as a warning
        warnings = stopwatch.warnings
        if warnings and warnings[-1] is not self._clock_warning:
            self._clock_warning = warnings[-1]
            self._message = warnings[-1].message

    def _build_view(self) -> WindowView:
        workspace = self._workspace
        header = presenter.header_view(
            workspace,
            self._draft,
            self._profile_names,
            self._default_profile,
            self._clinic.today(),
        )

        problems: list[str] = []

        def evaluate(method: rules.Method | None) -> rules.Result | None:
            assert workspace is not None
            answer = self._answer(workspace, method)
            if isinstance(answer, str):
                problems.append(answer)
                return None
            return answer

        view = presenter.window_view(
            workspace=workspace,
            header=header,
            favourites=self._favourites,
            furnished_by=self._furnished_by,
            message=self._message,
            catalogue=self._catalogue,
            evaluate=evaluate,
        )
        if problems and not self._message:
            view = view._replace(message=problems[0])
        return view._replace(caseload=self._caseload(view), undo=self._undo_text)

    def _caseload(self, view: WindowView) -> tuple[CaseloadEntry, ...]:
        shown = self._workspace
        spaces = [*self._others.values(), *([shown] if shown is not None else [])]
        spaces.sort(key=lambda w: (w.session.created_utc, w.session.id))
        entries = []
        for index, space in enumerate(spaces, start=1):
            current = shown is not None and space.session.id == shown.session.id
            if current:
                units = view.live.payer_units
            else:
                answer = self._answer(space, None)
                # A session the rules refuse stays in the strip (its long run shows in colour).
                units = 0 if isinstance(answer, str) else answer.total_timed_units
            entries.append(
                presenter.caseload_entry(
                    space,
                    units,
                    current=current,
                    number=index if index <= 9 else None,
                    limit_minutes=self._forgot_limit,
                    catalogue=self._catalogue,
                )
            )
        return tuple(entries)

    def _answer(self, workspace: Workspace, method: rules.Method | None) -> rules.Result | str:
        """The rules' answer, or (minutes the rules refuse: a timer left running over a weekend)
        what is wrong and how to put it right, so one bad session never blanks the window."""
        try:
            return self._clinic.evaluate(workspace, method=method)
        except InvalidInput as exc:
            problem = self._clinic.session_problem(workspace.session, exc)
            return problem_text(problem)

    def _check_forgot_to_stop(self) -> None:
        run = self._run()
        event = self._forgot.observe(run, self.forgot_to_stop_minutes)
        if event is False:
            self.forgot_to_stop_cleared.emit()
        elif event is True and run is not None:
            self.forgot_to_stop_raised.emit(ForgotToStop(run.code, run.minutes))


def problem_text(problem: SessionProblem) -> str:
    """A session the rules refuse, in the window's words: who, what, and where to correct it."""
    where = f"{problem.field}: " if problem.field else ""
    return (
        f"Patient {problem.session.patient_ref} cannot be billed as recorded: {where}"
        f"{problem.message}. End the session, then correct it with Correct minutes… in its "
        f"summary (or session edit on the command line)."
    )
