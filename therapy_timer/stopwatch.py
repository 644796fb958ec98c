"""The per-code stopwatches of one treatment session: a pure state machine over model.Segment."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from therapy_timer.clock import Clock
from therapy_timer.codes import Catalogue, Code, FurnishedBy, Kind
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.frozen import frozen_record
from therapy_timer.model import Change, ClockWarning, Pause, Resumable, Segment

_ZERO = timedelta(0)
_MINUTE_US = 60_000_000
_MICROSECOND = timedelta(microseconds=1)


class RoundingPolicy(StrEnum):
    """How a code's seconds become whole minutes; the note states which one was used."""

    DOWN = "down"  # a started minute is not a minute: never claims time that was not spent
    NEAREST = "nearest"  # 30 seconds or more round up

    def minutes(self, elapsed: timedelta) -> int:
        # Whole microseconds, so that the rounding never depends on float error.
        micros = max(0, elapsed // _MICROSECOND)
        if self is _NEAREST:  # (a module constant: reading a member off the class costs more)
            return (micros + _MINUTE_US // 2) // _MINUTE_US
        return micros // _MINUTE_US


_NEAREST = RoundingPolicy.NEAREST


class StopwatchState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"


@frozen_record
class CodeTotal:
    """Time recorded for one code, exact and in whole minutes under the rounding policy."""

    code: str
    elapsed: timedelta
    assistant_elapsed: timedelta
    minutes: int
    assistant_minutes: int
    running: bool

    def __init__(
        self,
        code: str,
        elapsed: timedelta,
        assistant_elapsed: timedelta,
        minutes: int,
        assistant_minutes: int,
        running: bool,
    ) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "elapsed", elapsed)
        object.__setattr__(self, "assistant_elapsed", assistant_elapsed)
        object.__setattr__(self, "minutes", minutes)
        object.__setattr__(self, "assistant_minutes", assistant_minutes)
        object.__setattr__(self, "running", running)


@frozen_record
class RulesInput:
    """Minutes in the shape ``rules.py`` takes them (plain dicts, catalogue order)."""

    timed: dict[str, int] = field(default_factory=dict)
    assistant_minutes: dict[str, int] = field(default_factory=dict)
    untimed: list[str] = field(default_factory=list)
    untimed_minutes: dict[str, int] = field(default_factory=dict)
    assistant_untimed: list[str] = field(default_factory=list)  # Request.assistant_untimed

    def __init__(
        self,
        timed: dict[str, int] | None = None,
        assistant_minutes: dict[str, int] | None = None,
        untimed: list[str] | None = None,
        untimed_minutes: dict[str, int] | None = None,
        assistant_untimed: list[str] | None = None,
    ) -> None:
        object.__setattr__(self, "timed", {} if timed is None else timed)
        object.__setattr__(
            self, "assistant_minutes", {} if assistant_minutes is None else assistant_minutes
        )
        object.__setattr__(self, "untimed", [] if untimed is None else untimed)
        object.__setattr__(
            self, "untimed_minutes", {} if untimed_minutes is None else untimed_minutes
        )
        object.__setattr__(
            self, "assistant_untimed", [] if assistant_untimed is None else assistant_untimed
        )


def latest_furnisher(segments: Iterable[Segment]) -> FurnishedBy:
    """Who furnished the latest of ``segments`` (the therapist when there is none): who
    furnishes the codes started next, read without the catalogue."""
    ordered = sorted(segments, key=_chronological)
    return ordered[-1].furnished_by if ordered else FurnishedBy.THERAPIST


def _chronological(segment: Segment) -> tuple[datetime, bool]:
    return segment.start_utc, segment.stop_utc is None


def _new_id() -> str:
    import uuid  # here, not at import: ~3 ms of the window's start (issue 13)

    return uuid.uuid4().hex


class Stopwatch:
    """One stopwatch per code for one session.

    At most one code that is not a supervised modality runs at a time (R8.1: one service per
    15-minute period); supervised modalities (e.g. 97012) may run beside it. Every figure is
    computed from segment timestamps, never from counted ticks. Operations read the clock once,
    change the segments and return a ``Change``; nothing here does I/O.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        clock: Clock,
        *,
        session_id: str = "",
        policy: RoundingPolicy = RoundingPolicy.DOWN,
        furnished_by: FurnishedBy = FurnishedBy.THERAPIST,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.session_id = session_id
        """The session its segments belong to (empty for one that is never stored)."""
        self._catalogue = catalogue
        self._clock = clock
        self.policy = policy
        self._furnished_by = furnished_by
        self._new_id = new_id
        self._segments: list[Segment] = []
        self._paused: Pause | None = None
        # The latest moment this stopwatch has used. A clock reading before it is clamped to it,
        # so no duration is negative and time already shown is never taken back.
        self._high_water: datetime | None = None
        self._behind = False
        self._warnings: list[ClockWarning] = []

    @classmethod
    def restore(
        cls,
        catalogue: Catalogue,
        clock: Clock,
        segments: Iterable[Segment],
        *,
        session_id: str = "",
        paused: Pause | None = None,
        furnished_by: FurnishedBy | None = None,
        policy: RoundingPolicy = RoundingPolicy.DOWN,
        not_before: datetime | None = None,
        new_id: Callable[[], str] = _new_id,
    ) -> Stopwatch:
        """Rebuild a stopwatch from persisted segments and pause state.

        ``furnished_by`` defaults to that of the latest segment. ``not_before`` (e.g. the last
        heartbeat) is a moment known to have passed, so a clock reading before it is clamped.
        Inconsistent data (two open segments of exclusive codes, a segment open while paused,
        a stop before its start, a segment of another session) raises ``InvalidInput``.
        """
        ordered = sorted(segments, key=_chronological)
        if furnished_by is None:
            furnished_by = latest_furnisher(ordered)
        stopwatch = cls(
            catalogue,
            clock,
            session_id=session_id,
            policy=policy,
            furnished_by=furnished_by,
            new_id=new_id,
        )
        open_codes: set[str] = set()
        exclusive_open = 0
        moments: list[datetime] = []
        for segment in ordered:
            if segment.session_id != session_id:
                raise InvalidInput("segments", f"segment {segment.id} is another session's")
            code = catalogue.get(segment.code, "code")
            start = _as_utc(segment.start_utc, "segments.start_utc")
            stop = (
                None if segment.stop_utc is None else _as_utc(segment.stop_utc, "segments.stop_utc")
            )
            if stop is not None and stop < start:
                raise InvalidInput("segments", f"segment {segment.id} stops before it starts")
            if stop is None:
                if code.code in open_codes:
                    raise InvalidInput("segments", f"two running segments of {code.code}")
                open_codes.add(code.code)
                exclusive_open += not code.supervised_modality
            moments.append(start if stop is None else stop)
            # Stored rows are mostly canonical already (astimezone(UTC) of a UTC time is the
            # same object): copying each one was a third of restoring a clinic-year's sessions.
            if (
                code.code != segment.code
                or start is not segment.start_utc
                or stop is not segment.stop_utc
            ):
                segment = replace(segment, code=code.code, start_utc=start, stop_utc=stop)
            stopwatch._segments.append(segment)
        if exclusive_open > 1:
            raise InvalidInput("segments", "more than one treatment code is running")
        if paused is not None:
            if open_codes:
                raise InvalidInput("paused", "a paused session cannot have running segments")
            paused = Pause(
                at_utc=_as_utc(paused.at_utc, "paused.at_utc"),
                resume=tuple(
                    Resumable(catalogue.get(r.code, "paused.resume").code, r.furnished_by)
                    for r in paused.resume
                ),
            )
            moments.append(paused.at_utc)
        stopwatch._paused = paused
        if not_before is not None:
            moments.append(_as_utc(not_before, "not_before"))
        stopwatch._high_water = max(moments, default=None)
        return stopwatch

    # -- state -----------------------------------------------------------------------------

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._segments)

    @property
    def running(self) -> tuple[Segment, ...]:
        """The open segments, the treatment code (if any) first."""
        open_segments = [s for s in self._segments if s.stop_utc is None]
        return tuple(sorted(open_segments, key=lambda s: self._code(s.code).supervised_modality))

    @property
    def running_treatment(self) -> Segment | None:
        """The open segment of the one code that is not a supervised modality, if any."""
        for segment in self._segments:
            if segment.stop_utc is None and not self._code(segment.code).supervised_modality:
                return segment
        return None

    @property
    def paused(self) -> Pause | None:
        return self._paused

    @property
    def state(self) -> StopwatchState:
        if self._paused is not None:
            return StopwatchState.PAUSED
        if any(s.stop_utc is None for s in self._segments):
            return StopwatchState.RUNNING
        return StopwatchState.IDLE

    @property
    def furnished_by(self) -> FurnishedBy:
        """Who furnishes newly started codes."""
        return self._furnished_by

    @property
    def warnings(self) -> tuple[ClockWarning, ...]:
        """Every clock jump backwards seen so far, oldest first."""
        return tuple(self._warnings)

    # -- operations --------------------------------------------------------------------------

    def start(self, code: str, furnished_by: FurnishedBy | None = None) -> Change:
        """Start ``code``; a treatment code stops the treatment code running (R8.1).

        ``furnished_by`` also becomes who furnishes codes started later. Starting while paused
        ends the pause: the remembered codes resume, except a treatment code that ``code``
        replaces. Starting a code that already runs only switches who furnishes it.
        """
        entry = self._catalogue.get(code)
        by = self._furnished_by if furnished_by is None else furnished_by
        rec = _Recorder(self)
        now = rec.now
        self._furnished_by = by
        if self._paused is not None:
            keep = [
                r
                for r in self._paused.resume
                if r.code != entry.code
                and (entry.supervised_modality or self._code(r.code).supervised_modality)
            ]
            self._paused = None
            for r in [*keep, Resumable(entry.code, by)]:
                rec.open(r.code, r.furnished_by, now)
            return rec.change
        open_segments = self._open_segments()
        current = next((s for s in open_segments if s.code == entry.code), None)
        if current is not None and current.furnished_by is by:
            return rec.change
        for segment in open_segments:
            displaced = not (
                entry.supervised_modality or self._code(segment.code).supervised_modality
            )
            if segment is current or displaced:
                rec.close(segment, now)
        rec.open(entry.code, by, now)
        return rec.change

    def stop(self, code: str | None = None) -> Change:
        """Stop ``code``, or every running code when ``code`` is None.

        While paused, stopping a code means it will not resume; stopping all ends the pause.
        """
        target = None if code is None else self._catalogue.get(code).code
        rec = _Recorder(self)
        if self._paused is not None:
            remaining = tuple(
                r for r in self._paused.resume if target is not None and r.code != target
            )
            if len(remaining) == len(self._paused.resume):
                raise InvalidOperation(f"{target} is not paused")
            self._paused = replace(self._paused, resume=remaining) if remaining else None
            return rec.change
        closing = [s for s in self._open_segments() if target in (None, s.code)]
        if not closing:
            raise InvalidOperation(
                "no timer is running" if target is None else f"{target} is not running"
            )
        for segment in closing:
            rec.close(segment, rec.now)
        return rec.change

    def pause(self) -> Change:
        """Stop every running code and remember them for ``resume`` (rest, toileting, waiting)."""
        if self._paused is not None:
            raise InvalidOperation("the session is already paused")
        open_segments = self._open_segments()
        if not open_segments:
            raise InvalidOperation("no timer is running, so there is nothing to pause")
        rec = _Recorder(self)
        for segment in open_segments:
            rec.close(segment, rec.now)
        self._paused = Pause(
            at_utc=rec.now,
            resume=tuple(Resumable(s.code, s.furnished_by) for s in open_segments),
        )
        return rec.change

    def resume(self) -> Change:
        """Restart the codes that were running when the session was paused."""
        if self._paused is None:
            raise InvalidOperation("the session is not paused")
        rec = _Recorder(self)
        resume = self._paused.resume
        self._paused = None
        for r in resume:
            rec.open(r.code, r.furnished_by, rec.now)
        return rec.change

    def carry_on(self, pause: Pause) -> Change:
        """Restart here the codes another session's ``pause`` remembered: a session left paused
        overnight is resumed the next morning in today's session (``Clinic.resume``). A code
        already running here, carried on first by another program, runs on as it is."""
        if self._paused is not None:
            raise InvalidOperation("the session is paused")
        running = {s.code for s in self._open_segments()}
        others = running - {r.code for r in pause.resume}
        if others:
            raise InvalidOperation(f"the session already runs {', '.join(sorted(others))}")
        rec = _Recorder(self)
        if pause.resume:
            self._furnished_by = pause.resume[0].furnished_by
        for r in pause.resume:
            if r.code not in running:
                rec.open(r.code, r.furnished_by, rec.now)
        return rec.change

    def set_furnished_by(self, furnished_by: FurnishedBy) -> Change:
        """Change who furnishes the running (or paused) codes from now on.

        Each running segment furnished by someone else is closed and a new one opened, so that
        assistant minutes per code come out exactly (CQ/CO, R7.4-R7.5).
        """
        rec = _Recorder(self)
        self._furnished_by = furnished_by
        if self._paused is not None:
            self._paused = replace(
                self._paused,
                resume=tuple(Resumable(r.code, furnished_by) for r in self._paused.resume),
            )
        for segment in self._open_segments():
            if segment.furnished_by is not furnished_by:
                rec.close(segment, rec.now)
                rec.open(segment.code, furnished_by, rec.now)
        return rec.change

    # -- figures -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The moment figures are computed at: the clock, held at the latest moment used."""
        return self._read_clock()

    def elapsed(self, code: str) -> timedelta:
        """Exact time recorded for ``code`` up to now."""
        target = self._catalogue.get(code).code
        now = self._read_clock()
        return sum((s.elapsed(now) for s in self._segments if s.code == target), _ZERO)

    def exact_totals(self) -> tuple[dict[str, timedelta], dict[str, timedelta], set[str]]:
        """Exact time per code, the assistant's share of it, and the running codes (in the
        order codes were first recorded): what ``totals`` rounds, and what a claim day pools
        before rounding once."""
        now = self._read_clock()
        elapsed: dict[str, timedelta] = {}
        assistant: dict[str, timedelta] = {}
        running: set[str] = set()
        for segment in self._segments:
            length = segment.elapsed(now)
            elapsed[segment.code] = elapsed.get(segment.code, _ZERO) + length
            if segment.furnished_by is FurnishedBy.ASSISTANT:
                assistant[segment.code] = assistant.get(segment.code, _ZERO) + length
            if segment.stop_utc is None:
                running.add(segment.code)
        return elapsed, assistant, running

    def totals(self) -> dict[str, CodeTotal]:
        """Time per code that has a segment, in catalogue order."""
        elapsed, assistant, running = self.exact_totals()
        # The therapist's share is rounded and the rest of the code's minutes is the assistant's:
        # a rounding remainder must never become therapist time that was not spent, because
        # "therapist 8 minutes of the final unit" drops CQ/CO (R7.6) and could overbill.
        result: dict[str, CodeTotal] = {}
        for code in sorted(elapsed, key=self._catalogue.rank):
            minutes = self.policy.minutes(elapsed[code])
            assistant_elapsed = assistant.get(code, _ZERO)
            result[code] = CodeTotal(
                code=code,
                elapsed=elapsed[code],
                assistant_elapsed=assistant_elapsed,
                minutes=minutes,
                assistant_minutes=minutes
                - min(minutes, self.policy.minutes(elapsed[code] - assistant_elapsed)),
                running=code in running,
            )
        return result

    def rules_input(self) -> RulesInput:
        """Minutes per code for ``rules.py``: timed codes, assistant minutes, untimed codes.

        Codes of kind "special" go with the timed codes, where the rules flag them for counting
        by hand (billing-rules.md §5.3). Assistant minutes are listed for every code, zero
        included, because the CQ/CO test needs them for untimed services too (§7.3).
        """
        result = RulesInput()
        for code, total in self.totals().items():
            result.assistant_minutes[code] = total.assistant_minutes
            if self._code(code).kind is Kind.UNTIMED:
                result.untimed.append(code)
                result.untimed_minutes[code] = total.minutes
            else:
                result.timed[code] = total.minutes
        return result

    # -- internals ---------------------------------------------------------------------------

    def _code(self, code: str) -> Code:
        return self._catalogue.get(code)

    def _open_segments(self) -> list[Segment]:
        return [s for s in self._segments if s.stop_utc is None]

    def _read_clock(self) -> datetime:
        reading = self._clock.now()
        if reading.tzinfo is None:
            raise TypeError("Clock.now() must return a timezone-aware datetime")
        reading = reading.astimezone(UTC)
        if self._high_water is not None and reading < self._high_water:
            # One warning per jump, not one per repaint while the clock catches up.
            if not self._behind:
                self._warnings.append(ClockWarning(reading=reading, used=self._high_water))
                self._behind = True
            return self._high_water
        self._behind = False
        self._high_water = reading
        return reading


class _Recorder:
    """Collects one operation's closed/opened segments and state before/after into a Change."""

    def __init__(self, stopwatch: Stopwatch) -> None:
        self._sw = stopwatch
        self._closed: list[Segment] = []
        self._opened: list[Segment] = []
        self._warnings_before = len(stopwatch._warnings)
        self._paused_before = stopwatch._paused
        self._by_before = stopwatch._furnished_by
        # One reading per operation: everything it closes and opens shares this moment.
        self.now = stopwatch._read_clock()

    def close(self, segment: Segment, at: datetime) -> None:
        closed = replace(segment, stop_utc=max(at, segment.start_utc))
        index = self._sw._segments.index(segment)
        self._sw._segments[index] = closed
        self._closed.append(closed)

    def open(self, code: str, furnished_by: FurnishedBy, at: datetime) -> None:
        exclusive = not self._sw._code(code).supervised_modality
        segment = Segment(
            self._sw._new_id(), self._sw.session_id, code, furnished_by, exclusive, at, None
        )
        self._sw._segments.append(segment)
        self._opened.append(segment)

    @property
    def change(self) -> Change:
        sw = self._sw
        return Change(
            session_id=sw.session_id,
            closed=tuple(self._closed),
            opened=tuple(self._opened),
            paused_before=self._paused_before,
            paused_after=sw._paused,
            furnished_by_before=self._by_before,
            furnished_by_after=sw._furnished_by,
            warnings=tuple(sw._warnings[self._warnings_before :]),
        )


def _as_utc(moment: datetime, field_name: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(field_name, "timestamps must carry a time zone (UTC)")
    return moment.astimezone(UTC)
