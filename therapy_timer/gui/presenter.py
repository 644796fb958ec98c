"""Qt-free view building: what each tile, strip and header shows, and the forgot-to-stop alert."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

from therapy_timer import billing, rules
from therapy_timer.clinic import Workspace
from therapy_timer.codes import Catalogue, FurnishedBy, Kind
from therapy_timer.gui.view_state import (
    NOTHING_RUNNING,
    CaseloadEntry,
    Draft,
    HeaderView,
    LiveView,
    TileState,
    TileView,
    UntimedView,
    WindowView,
)
from therapy_timer.stopwatch import Stopwatch, StopwatchState


class ForgotToStop(NamedTuple):
    """A treatment code has run without a break longer than the clinic's limit."""

    code: str
    minutes: int


class Run(NamedTuple):
    """The running treatment code, when its run began and its whole minutes so far."""

    code: str
    since: datetime
    minutes: int


Evaluate = Callable[[rules.Method | None], rules.Result | None]
"""The rules' answer for the shown session under a method (None: the payer's own); None when
the rules refuse its minutes (a session with a problem still shows its tiles and times)."""


def running_run(stopwatch: Stopwatch | None) -> Run | None:
    """The treatment code that runs now and since when it has run without a break."""
    running = stopwatch.running_treatment if stopwatch is not None else None
    if stopwatch is None or running is None:
        return None
    start = running.start_utc
    # A furnished-by switch splits one run into segments; the run began at the first of them.
    for segment in sorted(stopwatch.segments, key=lambda s: s.start_utc, reverse=True):
        if segment.code == running.code and segment.stop_utc == start:
            start = segment.start_utc
    return Run(running.code, start, int((stopwatch.now() - start).total_seconds() // 60))


class ForgotToStopTracker:
    """Raises the alert once a run passes the limit; "still treating" asks again a limit later.

    ``observe`` returns True when the alert must show, False when it must go, None otherwise.
    """

    def __init__(self) -> None:
        self._run: tuple[str, datetime] | None = None  # the run the alert watches
        self._due = 0  # minutes into that run when the alert is (next) due
        self.showing = False

    def reset(self) -> None:
        self._run = None

    def observe(self, run: Run | None, limit: int) -> bool | None:
        event: bool | None = None
        key = None if run is None else (run.code, run.since)
        if run is None or key != self._run:
            if self.showing:
                self.showing = False
                event = False
            self._run = key
            self._due = limit
        if run is None or self.showing:
            return event
        if run.minutes >= self._due:
            self.showing = True
            return True
        return event

    def snooze(self, run: Run | None, limit: int) -> None:
        if run is not None:
            self._due = run.minutes + limit
        self.showing = False


def header_view(
    workspace: Workspace | None,
    draft: Draft,
    profiles: tuple[str, ...],
    default_profile: str,
    today: date,
) -> HeaderView:
    if workspace is None:
        # A remembered payer that is no longer a profile (a backup put back) shows as the
        # clinic's default: the box would show whichever profile came first, and bill by it.
        payer = draft.payer_profile if draft.payer_profile in profiles else default_profile
        return HeaderView(
            session_open=False,
            patient_ref=draft.patient_ref,
            clinician=draft.clinician,
            role=draft.role,
            discipline=draft.role.discipline,
            payer_profile=payer,
            payer_profiles=profiles,
            date_of_service=draft.date_of_service or today,
        )
    session = workspace.session
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


def live_view(
    payer: rules.Result | None,
    other: rules.Result | None,
    paused: bool,
    stopwatch: Stopwatch | None,
    catalogue: Catalogue,
) -> LiveView:
    if payer is None or other is None:
        return LiveView(paused=paused)
    running = stopwatch.running_treatment if stopwatch is not None else None
    timed_code = running.code if running and catalogue.get(running.code).timed else None
    return LiveView(
        total_timed_minutes=payer.total_timed_minutes,
        payer_method=payer.method,
        payer_units=payer.total_timed_units,
        other_method=other.method,
        other_units=other.total_timed_units,
        minutes_to_next_unit=billing.minutes_to_next_unit(payer, timed_code),
        paused=paused,
    )


def window_view(
    *,
    workspace: Workspace | None,
    header: HeaderView,
    favourites: Sequence[str],
    furnished_by: FurnishedBy,
    message: str,
    catalogue: Catalogue,
    evaluate: Evaluate,
) -> WindowView:
    """Everything the main window shows now, from rows already read (no database access)."""
    sw = workspace.stopwatch if workspace is not None else None
    untimed_rows = workspace.untimed if workspace is not None else ()
    totals = sw.totals() if sw is not None else {}
    paused = sw is not None and sw.state is StopwatchState.PAUSED
    resuming = {r.code for r in sw.paused.resume} if sw is not None and sw.paused else set()
    running_by = {s.code: s.furnished_by for s in sw.running} if sw is not None else {}
    payer = other = None
    if workspace is not None:
        payer = evaluate(None)
        other = None if payer is None else evaluate(billing.OTHER_METHOD[payer.method])
    billed = {c.code: c for c in payer.codes} if payer is not None else {}

    shown = list(favourites)
    shown += [c for c in totals if c not in shown]
    shown += [u.code for u in untimed_rows if u.code not in shown]
    tiles: list[TileView] = []
    beside: list[TileView] = []
    untimed: list[UntimedView] = []
    recorded = {u.code for u in untimed_rows}
    entered = billing.entered_minutes(untimed_rows, catalogue)
    for code in shown:
        entry = catalogue.get(code)
        total = totals.get(code)
        line = billed.get(code)
        if entry.kind is Kind.UNTIMED and not entry.supervised_modality:
            if total is None:
                untimed.append(
                    UntimedView(code, entry.description, code in recorded, entered.get(code))
                )
            else:
                # Timed on the stopwatch, it is billed (one unit) with the stopwatch's minutes
                # and any entered by hand: shown so, and never to be ticked or typed again,
                # even while the rules refuse the session (a row recorded then is billed once
                # the session is corrected).
                minutes = line.minutes if line is not None else total.minutes
                untimed.append(UntimedView(code, entry.description, True, minutes, True))
            continue
        if code in running_by:
            state = TileState.RUNNING
        elif code in resuming:
            state = TileState.PAUSED
        else:
            state = TileState.IDLE
        billed_minutes: int | None
        units: int | None
        if line is not None and not line.minutes_recorded:
            # A supervised modality recorded by hand without minutes bills its unit (R1.1) with
            # none to show: its tile read "beside · 0 min", as if nothing were billed.
            billed_minutes, units = None, line.units
        else:
            # The billed minutes: a supervised modality's add those entered by hand (R1.1).
            billed_minutes = line.minutes if line is not None else total.minutes if total else 0
            units = None if entry.supervised_modality else line.units if line is not None else 0
        view = TileView(
            code=code,
            name=entry.description,
            elapsed=total.elapsed if total else timedelta(0),
            minutes=billed_minutes,
            units=units,
            state=state,
            furnished_by=running_by.get(code),
        )
        (beside if entry.supervised_modality else tiles).append(view)
    return WindowView(
        header=header,
        tiles=tuple(_number(tiles, 1)),
        beside=tuple(_number(beside, len(tiles) + 1)),
        untimed=tuple(untimed),
        live=live_view(payer, other, paused, sw, catalogue),
        furnished_by=furnished_by,
        paused=paused,
        message=message,
    )


def caseload_entry(
    workspace: Workspace,
    units: int,
    *,
    current: bool,
    number: int | None,
    limit_minutes: int,
    catalogue: Catalogue,
) -> CaseloadEntry:
    """One patient of the caseload strip, from rows already read (``units``: the payer's)."""
    sw = workspace.stopwatch
    now = sw.now()
    running = sorted(
        sw.running, key=lambda s: (catalogue.get(s.code).supervised_modality, s.start_utc)
    )
    if running:
        text = " + ".join(s.code for s in running)
        elapsed = now - running[0].start_utc
    elif sw.paused is not None and sw.paused.resume:
        text = "Paused: " + " + ".join(r.code for r in sw.paused.resume)
        elapsed = timedelta(0)
    else:
        text, elapsed = NOTHING_RUNNING, timedelta(0)
    run = running_run(sw)
    long_running = (
        run is not None and catalogue.get(run.code).timed and run.minutes >= limit_minutes
    )
    if run is not None:
        elapsed = now - run.since
    return CaseloadEntry(
        session_id=workspace.session.id,
        patient_ref=workspace.session.patient_ref,
        clinician=workspace.session.clinician,
        running=text,
        elapsed=elapsed,
        units=units,
        long_running=long_running,
        current=current,
        number=number,
    )


def elsewhere_text(stopped: Sequence[tuple[str, Sequence[str]]], patient_ref: str) -> str:
    """What a start stopped for other patients, in words: (patient, codes) pairs."""
    parts = [f"{', '.join(codes)} for {ref}" for ref, codes in stopped if codes]
    if not parts:
        return ""
    return (
        f"Stopped {'; '.join(parts)}: one-on-one time cannot run for two patients at once, and "
        f"it now runs for {patient_ref}. Supervised modalities keep running."
    )


def repaint_delay_ms(stopwatch: Stopwatch | None) -> int | None:
    """Milliseconds to just after the running code's next whole second; None when idle.

    So the display never lags by up to a second and nothing repaints more often than the
    digits change.
    """
    if stopwatch is None or stopwatch.state is not StopwatchState.RUNNING:
        return None
    segment = stopwatch.running[0]
    micros = int((stopwatch.now() - segment.start_utc).total_seconds() * 1_000_000)
    return 1000 - (micros // 1000) % 1000 + 5


def plain(text: str) -> str:
    """An error message as a sentence for the status line."""
    return text[:1].upper() + text[1:] if text else "Something went wrong."


def _number(views: list[TileView], first: int) -> list[TileView]:
    return [v._replace(number=first + i if first + i <= 9 else None) for i, v in enumerate(views)]
