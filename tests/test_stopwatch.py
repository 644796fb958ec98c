"""Scenarios for the per-code stopwatch on a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.fakes import DEFAULT_START, FakeClock
from therapy_timer.codes import Catalogue, FurnishedBy, builtin_catalogue
from therapy_timer.errors import InvalidInput, InvalidOperation, UnknownCode
from therapy_timer.model import Pause, Resumable, Segment
from therapy_timer.stopwatch import (
    RoundingPolicy,
    RulesInput,
    Stopwatch,
    StopwatchState,
)

THERAPIST = FurnishedBy.THERAPIST
ASSISTANT = FurnishedBy.ASSISTANT
TOGETHER = FurnishedBy.TOGETHER


def stored(segment_id: str, code: str, start: datetime, stop: datetime | None = None) -> Segment:
    """A therapist's segment as a store would hand it to ``Stopwatch.restore``."""
    exclusive = not builtin_catalogue().get(code).supervised_modality
    return Segment(segment_id, "", code, THERAPIST, exclusive, start, stop)


@pytest.fixture
def sw(catalogue: Catalogue, clock: FakeClock) -> Stopwatch:
    return Stopwatch(catalogue, clock)


def minutes(sw: Stopwatch) -> dict[str, int]:
    return {code: total.minutes for code, total in sw.totals().items()}


def test_a_new_stopwatch_is_idle_and_empty(sw: Stopwatch) -> None:
    assert sw.state is StopwatchState.IDLE
    assert sw.segments == ()
    assert sw.totals() == {}
    assert sw.rules_input() == RulesInput()


def test_start_opens_one_segment_at_the_clock_time(sw: Stopwatch, clock: FakeClock) -> None:
    change = sw.start("97110")
    assert change.closed == ()
    assert [(s.code, s.furnished_by, s.start_utc, s.stop_utc) for s in change.opened] == [
        ("97110", THERAPIST, DEFAULT_START, None)
    ]
    assert change.started_codes == ("97110",)
    assert sw.state is StopwatchState.RUNNING
    clock.advance(minutes=7, seconds=59)
    assert sw.elapsed("97110") == timedelta(minutes=7, seconds=59)
    assert minutes(sw) == {"97110": 7}


def test_codes_are_normalised_and_unknown_codes_refused(sw: Stopwatch) -> None:
    assert sw.start(" 97110 ").opened[0].code == "97110"
    with pytest.raises(UnknownCode):
        sw.start("99999")
    with pytest.raises(InvalidInput):
        sw.start("not a code")


def test_starting_a_timed_code_stops_the_running_one(sw: Stopwatch, clock: FakeClock) -> None:
    first = sw.start("97110").opened[0]
    clock.advance(minutes=10)
    change = sw.start("97140")
    assert change.closed == (
        Segment(first.id, "", "97110", THERAPIST, True, DEFAULT_START, clock.now()),
    )
    assert [s.code for s in change.opened] == ["97140"]
    assert change.stopped_codes == ("97110",)
    assert change.started_codes == ("97140",)
    clock.advance(minutes=5)
    assert [s.code for s in sw.running] == ["97140"]
    assert minutes(sw) == {"97110": 10, "97140": 5}


def test_an_evaluation_is_also_exclusive_with_timed_codes(sw: Stopwatch, clock: FakeClock) -> None:
    # R8.1: one service per 15-minute period; only supervised modalities may overlap.
    sw.start("97161")
    clock.advance(minutes=20)
    change = sw.start("97110")
    assert change.stopped_codes == ("97161",)
    assert sw.running_treatment is not None and sw.running_treatment.code == "97110"


def test_starting_the_running_code_again_changes_nothing(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    clock.advance(minutes=3)
    assert sw.start("97110").empty
    assert len(sw.segments) == 1


def test_switching_back_adds_to_the_same_code(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    clock.advance(minutes=6)
    sw.start("97140")
    clock.advance(minutes=4)
    sw.start("97110")
    clock.advance(minutes=6, seconds=30)
    sw.stop()
    assert minutes(sw) == {"97110": 12, "97140": 4}
    assert sw.totals()["97110"].elapsed == timedelta(minutes=12, seconds=30)
    assert sw.state is StopwatchState.IDLE


def test_supervised_modality_runs_beside_a_timed_code(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97012")  # mechanical traction, supervised
    clock.advance(minutes=2)
    change = sw.start("97110")
    assert change.closed == ()  # the modality keeps running
    clock.advance(minutes=10)
    sw.start("97140")  # switching timed codes leaves the modality alone
    clock.advance(minutes=3)
    assert {s.code for s in sw.running} == {"97012", "97140"}
    assert sw.running[0].code == "97140"  # the treatment code is listed first
    sw.stop("97012")
    clock.advance(minutes=5)
    sw.stop()
    assert minutes(sw) == {"97110": 10, "97140": 8, "97012": 15}
    # The modality counts only toward total treatment time, never the timed total.
    assert sw.rules_input() == RulesInput(
        timed={"97110": 10, "97140": 8},
        assistant_minutes={"97110": 0, "97140": 0, "97012": 0},
        untimed=["97012"],
        untimed_minutes={"97012": 15},
    )


def test_starting_a_modality_does_not_stop_the_timed_code(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    clock.advance(minutes=1)
    assert sw.start("G0283").closed == ()
    assert {s.code for s in sw.running} == {"97110", "G0283"}


def test_stop_one_code_or_everything(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    sw.start("97012")
    clock.advance(minutes=1)
    assert sw.stop("97110").stopped_codes == ("97110",)
    with pytest.raises(InvalidOperation, match="97110 is not running"):
        sw.stop("97110")
    sw.start("97140")
    assert sorted(sw.stop().stopped_codes) == ["97012", "97140"]
    with pytest.raises(InvalidOperation, match="no timer is running"):
        sw.stop()


def test_pause_and_resume(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97012")
    sw.start("97110")
    clock.advance(minutes=5)
    change = sw.pause()
    assert sorted(change.stopped_codes) == ["97012", "97110"]
    assert change.opened == ()
    assert change.paused_before is None
    assert change.paused_after == Pause(
        at_utc=clock.now(),
        resume=(Resumable("97012", THERAPIST), Resumable("97110", THERAPIST)),
    )
    assert sw.state is StopwatchState.PAUSED
    clock.advance(minutes=30)  # toileting: not treatment time (R1.4)
    assert minutes(sw) == {"97110": 5, "97012": 5}
    change = sw.resume()
    assert sorted(change.started_codes) == ["97012", "97110"]
    assert change.paused_after is None
    clock.advance(minutes=4)
    assert minutes(sw) == {"97110": 9, "97012": 9}


def test_pause_and_resume_refuse_nonsense(sw: Stopwatch) -> None:
    with pytest.raises(InvalidOperation):
        sw.pause()
    with pytest.raises(InvalidOperation):
        sw.resume()
    sw.start("97110")
    sw.pause()
    with pytest.raises(InvalidOperation):
        sw.pause()


def test_another_sessions_pause_carries_on_here(sw: Stopwatch, clock: FakeClock) -> None:
    """A session left paused overnight is resumed in today's (Clinic.resume): today's
    stopwatch restarts the codes the pause remembered, each with who furnished it, and who
    furnishes later codes; a code another program carried on first runs on untouched."""
    yesterday = Pause(
        at_utc=clock.now() - timedelta(hours=16),
        resume=(Resumable("97012", ASSISTANT), Resumable("97110", ASSISTANT)),
    )
    change = sw.carry_on(yesterday)
    assert sorted((s.code, s.furnished_by, s.start_utc) for s in change.opened) == [
        ("97012", ASSISTANT, clock.now()),
        ("97110", ASSISTANT, clock.now()),
    ]
    assert (change.paused_before, change.paused_after) == (None, None)
    assert sw.furnished_by is ASSISTANT
    clock.advance(minutes=8)
    assert minutes(sw) == {"97012": 8, "97110": 8}
    assert sw.carry_on(yesterday).writes_nothing  # carried on already: nothing more


def test_another_sessions_pause_never_runs_beside_other_codes(
    sw: Stopwatch, clock: FakeClock
) -> None:
    sw.start("97140")
    with pytest.raises(InvalidOperation, match="already runs 97140"):
        sw.carry_on(Pause(at_utc=clock.now(), resume=(Resumable("97110", THERAPIST),)))
    sw.pause()
    with pytest.raises(InvalidOperation, match="paused"):
        sw.carry_on(Pause(at_utc=clock.now(), resume=(Resumable("97110", THERAPIST),)))


def test_starting_while_paused_replaces_the_paused_treatment_code(
    sw: Stopwatch, clock: FakeClock
) -> None:
    sw.start("97110")
    sw.start("97012")
    clock.advance(minutes=5)
    sw.pause()
    clock.advance(minutes=5)
    change = sw.start("97140")
    assert sorted(change.started_codes) == ["97012", "97140"]
    assert change.closed == ()
    assert sw.paused is None
    assert {s.code for s in sw.running} == {"97012", "97140"}


def test_stopping_while_paused_drops_the_code_from_resume(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    sw.start("97012")
    clock.advance(minutes=5)
    sw.pause()
    change = sw.stop("97012")
    assert change.closed == () and change.opened == ()
    assert change.paused_after == Pause(clock.now(), (Resumable("97110", THERAPIST),))
    with pytest.raises(InvalidOperation):
        sw.stop("97012")
    sw.resume()
    assert [s.code for s in sw.running] == ["97110"]
    sw.pause()
    assert sw.stop().paused_after is None
    assert sw.state is StopwatchState.IDLE


def test_furnished_by_switch_gives_exact_assistant_minutes(sw: Stopwatch, clock: FakeClock) -> None:
    # The CQ example of billing-rules.md §7.4: 97110 PTA 23 + PT 13; 97140 PT 30.
    sw.start("97110")
    clock.advance(minutes=13)
    change = sw.set_furnished_by(ASSISTANT)
    assert [(s.code, s.furnished_by, s.stop_utc) for s in change.closed] == [
        ("97110", THERAPIST, clock.now())
    ]
    assert [(s.code, s.furnished_by, s.start_utc) for s in change.opened] == [
        ("97110", ASSISTANT, clock.now())
    ]
    assert change.stopped_codes == () and change.started_codes == ()
    assert change.furnished_by_changed
    clock.advance(minutes=23)
    sw.start("97140", furnished_by=THERAPIST)
    clock.advance(minutes=30)
    sw.stop()
    totals = sw.totals()
    assert (totals["97110"].minutes, totals["97110"].assistant_minutes) == (36, 23)
    assert (totals["97140"].minutes, totals["97140"].assistant_minutes) == (30, 0)
    assert sw.rules_input().assistant_minutes == {"97110": 23, "97140": 0}


def test_together_minutes_are_credited_to_the_therapist(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97112", furnished_by=TOGETHER)  # R7.5
    clock.advance(minutes=10)
    sw.set_furnished_by(ASSISTANT)
    clock.advance(minutes=4)
    sw.set_furnished_by(TOGETHER)
    clock.advance(minutes=2)
    total = sw.totals()["97112"]
    assert (total.minutes, total.assistant_minutes) == (16, 4)
    assert [s.furnished_by for s in sw.segments] == [TOGETHER, ASSISTANT, TOGETHER]


def test_furnished_by_becomes_the_default_for_later_codes(sw: Stopwatch) -> None:
    sw.start("97110", furnished_by=ASSISTANT)
    assert sw.furnished_by is ASSISTANT
    assert sw.start("97140").opened[0].furnished_by is ASSISTANT


def test_furnished_by_same_value_changes_nothing(sw: Stopwatch) -> None:
    sw.start("97110")
    assert sw.set_furnished_by(THERAPIST).empty


def test_starting_the_running_code_with_another_party_splits_it(
    sw: Stopwatch, clock: FakeClock
) -> None:
    sw.start("97110")
    clock.advance(minutes=2)
    change = sw.start("97110", furnished_by=ASSISTANT)
    assert [s.furnished_by for s in change.closed] == [THERAPIST]
    assert [s.furnished_by for s in change.opened] == [ASSISTANT]


def test_furnished_by_while_paused_applies_on_resume(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    clock.advance(minutes=5)
    sw.pause()
    change = sw.set_furnished_by(ASSISTANT)
    assert change.closed == () and change.opened == ()
    assert change.paused_after == Pause(clock.now(), (Resumable("97110", ASSISTANT),))
    assert sw.resume().opened[0].furnished_by is ASSISTANT


@pytest.mark.parametrize(
    ("policy", "elapsed", "expected"),
    [
        (RoundingPolicy.DOWN, timedelta(seconds=0), 0),
        (RoundingPolicy.DOWN, timedelta(seconds=59, microseconds=999_999), 0),
        (RoundingPolicy.DOWN, timedelta(minutes=7, seconds=59), 7),
        (RoundingPolicy.DOWN, timedelta(minutes=8), 8),
        (RoundingPolicy.NEAREST, timedelta(seconds=29, microseconds=999_999), 0),
        (RoundingPolicy.NEAREST, timedelta(seconds=30), 1),
        (RoundingPolicy.NEAREST, timedelta(minutes=7, seconds=30), 8),
        (RoundingPolicy.NEAREST, timedelta(minutes=7, seconds=29), 7),
        (RoundingPolicy.NEAREST, timedelta(seconds=-90), 0),
    ],
)
def test_rounding_policy(policy: RoundingPolicy, elapsed: timedelta, expected: int) -> None:
    assert policy.minutes(elapsed) == expected


def test_rounding_is_per_code_total_not_per_segment(catalogue: Catalogue, clock: FakeClock) -> None:
    sw = Stopwatch(catalogue, clock, policy=RoundingPolicy.DOWN)
    for _ in range(3):  # three 40-second segments: 2 minutes, not 3 x 0
        sw.start("97110")
        clock.advance(seconds=40)
        sw.stop()
    assert minutes(sw) == {"97110": 2}


@pytest.mark.parametrize(
    ("policy", "therapist_s", "assistant_s", "total", "assistant"),
    [
        # Therapist 7:40 is 7 whole minutes, not 8: R7.6 must not drop CQ on rounding alone.
        (RoundingPolicy.DOWN, 7 * 60 + 40, 7 * 60 + 40, 15, 8),
        (RoundingPolicy.NEAREST, 7 * 60 + 40, 7 * 60 + 40, 15, 7),
        (RoundingPolicy.NEAREST, 0, 7 * 60 + 30, 8, 8),
        (RoundingPolicy.NEAREST, 10, 7 * 60 + 20, 8, 8),
        (RoundingPolicy.DOWN, 50, 9 * 60 + 50, 10, 10),
    ],
)
def test_therapist_minutes_follow_the_policy_and_the_rest_is_the_assistants(
    catalogue: Catalogue,
    clock: FakeClock,
    policy: RoundingPolicy,
    therapist_s: int,
    assistant_s: int,
    total: int,
    assistant: int,
) -> None:
    sw = Stopwatch(catalogue, clock, policy=policy)
    sw.start("97530")
    clock.advance(seconds=therapist_s)
    sw.set_furnished_by(ASSISTANT)
    clock.advance(seconds=assistant_s)
    sw.stop()
    result = sw.totals()["97530"]
    assert (result.minutes, result.assistant_minutes) == (total, assistant)
    assert result.assistant_minutes <= result.minutes


def test_special_codes_go_with_timed_and_untimed_lists_keep_catalogue_order(
    sw: Stopwatch, clock: FakeClock
) -> None:
    sw.start("97150")  # group therapy, untimed and exclusive
    clock.advance(minutes=30)
    sw.start("97129")  # special: counted by hand, flagged by the rules
    clock.advance(minutes=15)
    sw.start("97010")
    clock.advance(minutes=1)
    sw.stop()
    result = sw.rules_input()
    assert result.timed == {"97129": 16}  # the modality ran beside it
    assert result.untimed == ["97010", "97150"]
    assert result.untimed_minutes == {"97150": 30, "97010": 1}


def test_clock_going_backwards_never_gives_negative_time(sw: Stopwatch, clock: FakeClock) -> None:
    sw.start("97110")
    clock.advance(minutes=10)
    assert minutes(sw) == {"97110": 10}
    clock.advance(minutes=-60)
    # Held at the latest moment seen: the 10 minutes already shown are not taken back.
    assert minutes(sw) == {"97110": 10}
    assert len(sw.warnings) == 1
    warning = sw.warnings[0]
    assert warning.used - warning.reading == timedelta(minutes=60)
    assert "went back by 3600 seconds" in warning.message
    assert minutes(sw) == {"97110": 10}
    assert len(sw.warnings) == 1  # one warning per jump, not per repaint
    change = sw.start("97140")
    assert change.closed[0].stop_utc == DEFAULT_START + timedelta(minutes=10)
    assert change.opened[0].start_utc == DEFAULT_START + timedelta(minutes=10)
    clock.advance(minutes=65)  # the clock is now 5 minutes past the hold
    assert minutes(sw) == {"97110": 10, "97140": 5}
    assert all(s.elapsed(sw.now()) >= timedelta(0) for s in sw.segments)


def test_a_backward_jump_during_an_operation_is_reported_in_its_change(
    sw: Stopwatch, clock: FakeClock
) -> None:
    sw.start("97110")
    clock.advance(minutes=5)
    clock.set(datetime(2020, 1, 1, tzinfo=UTC))
    change = sw.stop()
    assert len(change.warnings) == 1
    assert change.closed[0].elapsed(sw.now()) == timedelta(minutes=0)
    assert sw.totals()["97110"].elapsed == timedelta(0)


def test_restored_stopwatch_clamps_an_open_segment_in_the_future(
    catalogue: Catalogue, clock: FakeClock
) -> None:
    later = DEFAULT_START + timedelta(hours=1)
    sw = Stopwatch.restore(catalogue, clock, [stored("a", "97110", later)])
    assert sw.elapsed("97110") == timedelta(0)
    assert len(sw.warnings) == 1


def test_restore_reproduces_the_state(catalogue: Catalogue, clock: FakeClock) -> None:
    sw = Stopwatch(catalogue, clock)
    sw.start("97012")
    sw.start("97110", furnished_by=ASSISTANT)
    clock.advance(minutes=4)
    sw.start("97140")
    clock.advance(minutes=3)
    again = Stopwatch.restore(catalogue, clock, reversed(sw.segments))
    assert again.totals() == sw.totals()
    assert again.state is StopwatchState.RUNNING
    assert again.furnished_by is ASSISTANT
    assert {s.id for s in again.running} == {s.id for s in sw.running}
    # It carries on as the original would.
    assert again.start("97530").stopped_codes == ("97140",)

    sw.pause()
    paused = Stopwatch.restore(catalogue, clock, sw.segments, paused=sw.paused)
    assert paused.state is StopwatchState.PAUSED
    assert {s.code for s in paused.resume().opened} == {"97012", "97140"}


def test_restore_keeps_canonical_rows_and_normalises_the_rest(
    catalogue: Catalogue, clock: FakeClock
) -> None:
    """A stored row already in canonical form (code as catalogued, UTC times) is kept as it
    is; one that is not (a lower-case code, another offset) is still normalised."""
    t = DEFAULT_START - timedelta(hours=1)
    east = timezone(timedelta(hours=2))
    canonical = stored("a", "97110", t, t + timedelta(minutes=8))
    other = stored("b", "97140", t + timedelta(minutes=8))
    loose = replace(other, code=" 97140 ", start_utc=other.start_utc.astimezone(east))
    sw = Stopwatch.restore(catalogue, clock, [loose, canonical])
    assert sw.segments[0] is canonical
    assert sw.segments[1] == other
    assert sw.segments[1].start_utc.tzinfo is UTC
    elapsed, assistant, running = sw.exact_totals()
    assert elapsed == {c: t.elapsed for c, t in sw.totals().items()}
    assert assistant == {} and running == {"97140"}


def test_restore_refuses_inconsistent_segments(catalogue: Catalogue, clock: FakeClock) -> None:
    t = DEFAULT_START
    two_timed = [stored("a", "97110", t), stored("b", "97140", t)]
    with pytest.raises(InvalidInput, match="more than one treatment code"):
        Stopwatch.restore(catalogue, clock, two_timed)
    same_code = [stored("a", "97012", t), stored("b", "97012", t)]
    with pytest.raises(InvalidInput, match="two running segments"):
        Stopwatch.restore(catalogue, clock, same_code)
    backwards = [stored("a", "97110", t, t - timedelta(seconds=1))]
    with pytest.raises(InvalidInput, match="stops before it starts"):
        Stopwatch.restore(catalogue, clock, backwards)
    with pytest.raises(InvalidInput, match="another session"):
        Stopwatch.restore(catalogue, clock, [stored("a", "97110", t)], session_id="s1")
    naive = [stored("a", "97110", datetime(2025, 1, 1))]
    with pytest.raises(InvalidInput, match="time zone"):
        Stopwatch.restore(catalogue, clock, naive)
    with pytest.raises(InvalidInput, match="paused"):
        Stopwatch.restore(
            catalogue,
            clock,
            [stored("a", "97110", t)],
            paused=Pause(t, (Resumable("97110", THERAPIST),)),
        )


def test_opened_segments_name_their_session_and_whether_they_run_alone(
    catalogue: Catalogue, clock: FakeClock
) -> None:
    sw = Stopwatch(catalogue, clock, session_id="s1")
    assert [(s.session_id, s.exclusive) for s in sw.start("97012").opened] == [("s1", False)]
    assert [(s.session_id, s.exclusive) for s in sw.start("97110").opened] == [("s1", True)]
    again = Stopwatch.restore(catalogue, clock, sw.segments, session_id="s1")
    assert again.segments == tuple(sorted(sw.segments, key=lambda s: s.start_utc))


def test_restore_not_before_holds_the_clock_at_the_heartbeat(
    catalogue: Catalogue, clock: FakeClock
) -> None:
    heartbeat = DEFAULT_START + timedelta(minutes=20)
    segments = [stored("a", "97110", DEFAULT_START)]
    sw = Stopwatch.restore(catalogue, clock, segments, not_before=heartbeat)
    assert sw.elapsed("97110") == timedelta(minutes=20)
    assert len(sw.warnings) == 1


def test_segment_ids_come_from_the_injected_factory(catalogue: Catalogue, clock: FakeClock) -> None:
    ids = iter(["s1", "s2", "s3"])
    sw = Stopwatch(catalogue, clock, new_id=lambda: next(ids))
    sw.start("97110")
    sw.set_furnished_by(ASSISTANT)
    assert [s.id for s in sw.segments] == ["s1", "s2"]


def test_default_ids_are_unique(sw: Stopwatch) -> None:
    for code in ("97110", "97140", "97110", "97530"):
        sw.start(code)
    assert len({s.id for s in sw.segments}) == 4
