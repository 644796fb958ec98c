"""Hypothesis state machine over the stopwatch: random operations never break its invariants."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fakes import FakeClock
from therapy_timer.codes import FurnishedBy, builtin_catalogue
from therapy_timer.errors import InvalidOperation
from therapy_timer.stopwatch import RoundingPolicy, Stopwatch, StopwatchState

CATALOGUE = builtin_catalogue()
TIMED = ["97110", "97140", "97530"]
EXCLUSIVE_UNTIMED = ["97161"]  # an evaluation: untimed, yet one service per period (R8.1)
MODALITIES = ["97012", "G0283"]
CODES = TIMED + EXCLUSIVE_UNTIMED + MODALITIES
_ZERO = timedelta(0)


def is_modality(code: str) -> bool:
    return CATALOGUE.get(code).supervised_modality


def expected_minutes(policy: RoundingPolicy, elapsed: timedelta) -> int:
    # Independent of the implementation: whole seconds are enough because the clock moves in them.
    seconds = int(elapsed.total_seconds())
    if policy is RoundingPolicy.NEAREST:
        return (seconds + 30) // 60
    return seconds // 60


class StopwatchMachine(RuleBasedStateMachine):
    """A model of what should run, and of how much time the treatment code has run.

    The model's "effective time" is the latest clock reading seen: the stopwatch holds time
    there when the clock goes backwards, and every step reads the clock (the invariants do).
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.policy = RoundingPolicy.DOWN
        self.sw = Stopwatch(CATALOGUE, self.clock, policy=self.policy)
        self.effective = self.clock.now()
        self.running: dict[str, FurnishedBy] = {}
        self.paused: dict[str, FurnishedBy] | None = None
        self.by = FurnishedBy.THERAPIST
        self.treatment_time = _ZERO  # time during which some treatment code ran
        self.modality_time: dict[str, timedelta] = {}
        self.backward_jumps = 0

    @rule(policy=st.sampled_from(RoundingPolicy))
    def choose_policy(self, policy: RoundingPolicy) -> None:
        self.policy = policy
        self.sw.policy = policy

    @rule(minutes=st.integers(0, 20), seconds=st.integers(0, 59))
    def advance(self, minutes: int, seconds: int) -> None:
        self._move(timedelta(minutes=minutes, seconds=seconds))

    @rule(seconds=st.integers(1, 3600))
    def clock_goes_back(self, seconds: int) -> None:
        self._move(timedelta(seconds=-seconds))

    def _move(self, delta: timedelta) -> None:
        before = self.effective
        was_behind = self.clock.now() < before
        self.clock.advance(seconds=delta.total_seconds())
        now = self.clock.now()
        if now < before and not was_behind:
            self.backward_jumps += 1
        self.effective = max(before, now)
        gained = self.effective - before
        if any(not is_modality(c) for c in self.running):
            self.treatment_time += gained
        for code in self.running:
            if is_modality(code):
                self.modality_time[code] = self.modality_time.get(code, _ZERO) + gained

    @rule(code=st.sampled_from(CODES), by=st.none() | st.sampled_from(FurnishedBy))
    def start(self, code: str, by: FurnishedBy | None) -> None:
        self.sw.start(code, furnished_by=by)
        new_by = self.by if by is None else by
        self.by = new_by
        if self.paused is not None:
            self.running = {
                c: b
                for c, b in self.paused.items()
                if c != code and (is_modality(code) or is_modality(c))
            }
            self.paused = None
        if not is_modality(code):
            self.running = {c: b for c, b in self.running.items() if is_modality(c)}
        self.running[code] = new_by

    @rule(code=st.none() | st.sampled_from(CODES))
    def stop(self, code: str | None) -> None:
        pool = self.paused if self.paused is not None else self.running
        if not pool or (code is not None and code not in pool):
            try:
                self.sw.stop(code)
            except InvalidOperation:
                return
            raise AssertionError("stop of a code that is not running was accepted")
        self.sw.stop(code)
        for c in [c for c in pool if code in (None, c)]:
            del pool[c]
        if self.paused == {}:
            self.paused = None

    @precondition(lambda self: self.running)
    @rule()
    def pause(self) -> None:
        self.sw.pause()
        self.paused, self.running = self.running, {}

    @precondition(lambda self: self.paused is not None)
    @rule()
    def resume(self) -> None:
        self.sw.resume()
        assert self.paused is not None
        self.running, self.paused = self.paused, None

    @precondition(lambda self: self.paused is None and not self.running)
    @rule()
    def pause_or_resume_with_nothing_running_is_refused(self) -> None:
        for operation in (self.sw.pause, self.sw.resume):
            try:
                operation()
            except InvalidOperation:
                continue
            raise AssertionError(f"{operation.__name__} with nothing running was accepted")

    @rule(by=st.sampled_from(FurnishedBy))
    def furnished_by(self, by: FurnishedBy) -> None:
        self.sw.set_furnished_by(by)
        self.by = by
        self.running = dict.fromkeys(self.running, by)
        if self.paused is not None:
            self.paused = dict.fromkeys(self.paused, by)

    @rule()
    def restore_from_segments(self) -> None:
        # What the session service does at start-up: the rebuilt stopwatch must carry on alike.
        before = self.sw.totals()
        self.sw = Stopwatch.restore(
            CATALOGUE,
            self.clock,
            self.sw.segments,
            paused=self.sw.paused,
            furnished_by=self.by,
            policy=self.policy,
            not_before=self.effective,
        )
        # A fresh stopwatch starts a fresh warning list; it warns again if the clock is still behind.
        self.backward_jumps = int(self.clock.now() < self.effective)
        assert self.sw.totals() == before

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def never_two_treatment_codes_running(self) -> None:
        open_codes = [s.code for s in self.sw.segments if s.stop_utc is None]
        assert len(open_codes) == len(set(open_codes))
        assert sum(not is_modality(c) for c in open_codes) <= 1

    @invariant()
    def running_codes_match_the_model(self) -> None:
        assert {s.code: s.furnished_by for s in self.sw.running} == self.running
        if self.paused is None:
            assert self.sw.paused is None
        else:
            assert self.sw.paused is not None
            assert {r.code: r.furnished_by for r in self.sw.paused.resume} == self.paused
        expected = (
            StopwatchState.PAUSED
            if self.paused is not None
            else StopwatchState.RUNNING
            if self.running
            else StopwatchState.IDLE
        )
        assert self.sw.state is expected
        assert self.sw.furnished_by is self.by

    @invariant()
    def durations_add_up_to_elapsed_unpaused_time(self) -> None:
        now = self.sw.now()
        assert now == self.effective
        treatment = _ZERO
        modality: dict[str, timedelta] = {}
        for segment in self.sw.segments:
            assert segment.stop_utc is None or segment.stop_utc >= segment.start_utc
            length = segment.elapsed(now)
            if is_modality(segment.code):
                modality[segment.code] = modality.get(segment.code, _ZERO) + length
            else:
                treatment += length
        assert treatment == self.treatment_time
        for code in set(modality) | set(self.modality_time):
            assert modality.get(code, _ZERO) == self.modality_time.get(code, _ZERO)

    @invariant()
    def segments_of_treatment_codes_never_overlap(self) -> None:
        now = self.sw.now()
        spans = sorted(
            (s.start_utc, s.stop_utc or now) for s in self.sw.segments if not is_modality(s.code)
        )
        for (_, first_end), (second_start, _) in pairwise(spans):
            assert first_end <= second_start

    @invariant()
    def minutes_match_the_policy_and_assistant_within_total(self) -> None:
        now = self.sw.now()
        totals = self.sw.totals()
        for code, total in totals.items():
            segments = [s for s in self.sw.segments if s.code == code]
            elapsed = sum((s.elapsed(now) for s in segments), _ZERO)
            assistant = sum(
                (s.elapsed(now) for s in segments if s.furnished_by is FurnishedBy.ASSISTANT),
                _ZERO,
            )
            assert total.elapsed == elapsed
            assert total.minutes == expected_minutes(self.policy, elapsed)
            therapist = min(total.minutes, expected_minutes(self.policy, elapsed - assistant))
            assert total.assistant_minutes == total.minutes - therapist
            assert 0 <= total.assistant_minutes <= total.minutes
        rules = self.sw.rules_input()
        assert set(rules.timed) | set(rules.untimed) == set(totals)
        assert sum(rules.timed.values()) == sum(
            t.minutes for c, t in totals.items() if CATALOGUE.get(c).timed
        )

    @invariant()
    def one_warning_per_backward_jump(self) -> None:
        assert len(self.sw.warnings) == self.backward_jumps


TestStopwatchMachine = StopwatchMachine.TestCase
TestStopwatchMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
