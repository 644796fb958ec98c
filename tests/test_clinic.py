"""The front door: stopwatch steps committed through the store, crash recovery, R7.9, summaries."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import DEFAULT_START, FakeClock, new_segment
from therapy_timer import export as ex
from therapy_timer import rules
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Discipline, FurnishedBy, Role, builtin_catalogue
from therapy_timer.errors import InvalidInput, InvalidOperation, StorageUnavailable
from therapy_timer.model import Change, RecoveryChoice
from therapy_timer.stopwatch import RoundingPolicy, StopwatchState
from therapy_timer.store import Session, Store

CATALOGUE = builtin_catalogue()
ASSISTANT = FurnishedBy.ASSISTANT
THERAPIST = FurnishedBy.THERAPIST


@pytest.fixture
def session(clinic: Clinic) -> Session:
    return clinic.open_session(
        patient_ref="JD-1", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )


def other_process(data: Path, clock: FakeClock) -> tuple[Store, Clinic]:
    """A second connection and clinic: what a command run beside the window looks like."""
    other = Store.open(data, clock=clock, actor="other")
    return other, Clinic(other, CATALOGUE, clock, actor="other")


def test_open_session_uses_the_local_date_and_the_role_discipline(
    clinic: Clinic, session: Session
) -> None:
    assert session.date_of_service == DEFAULT_START.astimezone().date()
    assert session.discipline is Discipline.PT
    assert session.is_open
    assert [s.id for s in clinic.open_sessions()] == [session.id]


def test_every_step_is_committed_before_it_returns(
    data: Path, clock: FakeClock, clinic: Clinic, session: Session
) -> None:
    other, _ = other_process(data, clock)
    with other:
        outcome = clinic.start(session.id, "97110")
        (opened,) = outcome.change.opened
        # Read through another connection: the row is there the moment start() returned.
        (row,) = other.open_segments(session.id)
        assert (row.id, row.code, row.start_utc, row.exclusive) == (
            opened.id,
            "97110",
            DEFAULT_START,
            True,
        )
        clock.advance(minutes=10)
        outcome = clinic.start(session.id, "97140")
        assert outcome.change.stopped_codes == ("97110",)
        rows = other.segments(session.id)
        assert [(r.code, r.stop_utc) for r in rows] == [
            ("97110", DEFAULT_START + timedelta(minutes=10)),
            ("97140", None),
        ]
        assert [e.action for e in other.audit_entries(entity="session")][-2:] == ["start", "switch"]


def test_outcome_reports_store_ids_and_the_rebuilt_stopwatch(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97012")
    clock.advance(minutes=3)
    outcome = clinic.start(session.id, "97110")
    assert outcome.change.closed == ()
    assert [s.code for s in outcome.change.opened] == ["97110"]
    ids = {s.id for s in store.segments(session.id)}
    assert {s.id for s in outcome.stopwatch.segments} == ids
    assert {s.code for s in outcome.stopwatch.running} == {"97012", "97110"}


def test_starting_the_running_code_again_writes_nothing(
    store: Store, clinic: Clinic, session: Session
) -> None:
    clinic.start(session.id, "97110")
    entries = len(store.audit_entries())
    assert clinic.start(session.id, "97110").change.empty
    assert len(store.audit_entries()) == entries
    assert len(store.segments(session.id)) == 1


def test_pause_and_resume_survive_a_restart(
    data: Path, clock: FakeClock, clinic: Clinic, session: Session
) -> None:
    clinic.start(session.id, "97012")
    clinic.start(session.id, "97110")
    clock.advance(minutes=5)
    assert clinic.pause(session.id).change.paused_after is not None
    clock.advance(minutes=20)
    other, again = other_process(data, clock)
    with other:
        rebuilt = again.stopwatch(session.id)
        assert rebuilt.state is StopwatchState.PAUSED
        assert {t.code: t.minutes for t in rebuilt.totals().values()} == {
            "97110": 5,
            "97012": 5,
        }
        outcome = again.resume(session.id)
        assert sorted(outcome.change.started_codes) == ["97012", "97110"]
    clock.advance(minutes=5)
    assert {t.code: t.minutes for t in clinic.stopwatch(session.id).totals().values()} == {
        "97110": 10,
        "97012": 10,
    }


def test_changes_while_paused_are_stored(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97012")
    clinic.start(session.id, "97110")
    clock.advance(minutes=5)
    clinic.pause(session.id)
    clinic.stop(session.id, "97012")
    clinic.set_furnished_by(session.id, ASSISTANT)
    stored = store.get_session(session.id)
    assert stored.pause is not None
    assert [(r.code, r.furnished_by) for r in stored.pause.resume] == [("97110", ASSISTANT)]
    outcome = clinic.resume(session.id)
    assert [(s.code, s.furnished_by) for s in outcome.change.opened] == [("97110", ASSISTANT)]


def test_furnished_by_switch_gives_assistant_minutes_from_the_store(
    data: Path, clock: FakeClock, clinic: Clinic, session: Session
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=13)
    clinic.set_furnished_by(session.id, ASSISTANT)
    clock.advance(minutes=23)
    clinic.start(session.id, "97140", furnished_by=THERAPIST)
    clock.advance(minutes=30)
    clinic.stop(session.id)
    other, again = other_process(data, clock)
    with other:
        result = again.rules_input(session.id)
    assert result.timed == {"97110": 36, "97140": 30}
    assert result.assistant_minutes == {"97110": 23, "97140": 0}


def test_furnished_by_with_nothing_running_applies_to_the_next_start(
    clinic: Clinic, session: Session
) -> None:
    outcome = clinic.set_furnished_by(session.id, ASSISTANT)
    assert outcome.change.furnished_by_changed
    assert clinic.start(session.id, "97110").change.opened[0].furnished_by is ASSISTANT


def test_rules_input_adds_untimed_services_and_feeds_the_rules(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=23)
    clinic.start(session.id, "97012")
    clock.advance(minutes=10)
    clinic.stop(session.id)
    store.add_untimed(session.id, code="97161", minutes=30)
    store.add_untimed(session.id, code="97012", minutes=5, furnished_by=ASSISTANT)
    result = clinic.rules_input(session.id)
    assert result.timed == {"97110": 33}
    assert result.untimed == ["97161", "97012"]  # catalogue order
    assert result.untimed_minutes == {"97012": 15, "97161": 30}
    assert result.assistant_minutes == {"97110": 0, "97012": 5}
    answer = rules.evaluate(
        rules.Request(
            method=rules.Method.CMS,
            discipline=Discipline.PT,
            timed=result.timed,
            assistant_minutes=result.assistant_minutes,
            untimed=result.untimed,
            untimed_minutes=result.untimed_minutes,
        )
    )
    assert answer.total_timed_minutes == 33
    assert answer.total_timed_units == 2


def test_rounding_policy_comes_from_the_clinic_setting(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=7, seconds=30)
    assert clinic.policy is RoundingPolicy.DOWN
    assert clinic.rules_input(session.id).timed == {"97110": 7}
    store.set_setting("rounding_policy", "nearest")
    assert clinic.rules_input(session.id).timed == {"97110": 8}
    forced = Clinic(store, CATALOGUE, clock, policy=RoundingPolicy.DOWN)
    assert forced.rules_input(session.id).timed == {"97110": 7}


def test_a_failed_write_leaves_nothing_shown_as_done(
    data: Path, clock: FakeClock, clinic: Clinic, session: Session
) -> None:
    clinic.start(session.id, "97110")
    with Store.open(data, clock=clock, read_only=True) as read_only:
        viewer = Clinic(read_only, CATALOGUE, clock)
        clock.advance(minutes=1)
        with pytest.raises(StorageUnavailable):
            viewer.start(session.id, "97140")
        # The failed switch is nowhere: not in the file, not in a rebuilt stopwatch.
        assert [s.code for s in viewer.stopwatch(session.id).running] == ["97110"]
    assert [s.code for s in clinic.stopwatch(session.id).running] == ["97110"]


class RacingStore(Store):
    """Lets another program start a timed code between our read and our write, once."""

    rival: Clinic | None = None

    def apply_stopwatch_change(
        self,
        change: Change,
        *,
        action: str = "stopwatch",
        reason: str = "",
        actor: str | None = None,
    ) -> Session:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival.start(change.session_id, "97530")
        return super().apply_stopwatch_change(change, action=action, reason=reason, actor=actor)


def test_a_race_with_another_program_never_leaves_two_timed_codes_running(
    data: Path, clock: FakeClock, session: Session
) -> None:
    other, rival = other_process(data, clock)
    with other, RacingStore.open(data, clock=clock, actor="racer") as racing:
        assert isinstance(racing, RacingStore)
        clinic = Clinic(racing, CATALOGUE, clock)
        racing.rival = rival
        outcome = clinic.start(session.id, "97110")
        # The rival's 97530 got in first; the retry on fresh state switched away from it.
        assert outcome.change.stopped_codes == ("97530",)
        assert [s.code for s in other.open_segments(session.id)] == ["97110"]


def test_the_store_refuses_a_second_timed_code_even_from_a_stale_writer(
    store: Store, clinic: Clinic, session: Session
) -> None:
    clinic.start(session.id, "97110")
    with pytest.raises(InvalidOperation, match="already running"):
        store.apply_stopwatch_change(
            Change(session.id, opened=(new_segment(session.id, "97140", DEFAULT_START),))
        )


def test_end_session_stops_everything_and_closes(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clinic.start(session.id, "97012")
    clock.advance(minutes=12)
    closed = clinic.end_session(session.id)
    assert not closed.is_open
    assert store.open_segments(session.id) == []
    assert all(s.stop_utc == clock.now() for s in store.segments(session.id))
    with pytest.raises(InvalidOperation, match="closed"):
        clinic.start(session.id, "97110")


def test_end_session_while_paused(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=3)
    clinic.pause(session.id)
    closed = clinic.end_session(session.id)
    assert not closed.is_open and not closed.is_paused


def test_heartbeat_is_written_at_the_clock_time(
    store: Store, clinic: Clinic, clock: FakeClock
) -> None:
    assert store.last_heartbeat() is None
    clock.advance(seconds=30)
    assert clinic.heartbeat() == clock.now()
    assert store.last_heartbeat() == clock.now()


def test_interrupted_lists_running_segments_with_choices(
    clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    assert clinic.interrupted() == []
    clinic.start(session.id, "97110")
    (found,) = clinic.interrupted()
    assert found.session.id == session.id
    assert [s.code for s in found.segments] == ["97110"]
    assert found.choices == (RecoveryChoice.KEEP_RUNNING, RecoveryChoice.DISCARD)
    with pytest.raises(InvalidOperation, match="heartbeat"):
        found.stop_at(found.segments[0])
    clock.advance(minutes=2)
    clinic.heartbeat()
    (found,) = clinic.interrupted()
    assert found.choices == tuple(RecoveryChoice)
    assert found.stop_at(found.segments[0]) == DEFAULT_START + timedelta(minutes=2)


def test_recover_keep_running_is_audited_and_changes_nothing(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=5)
    kept = clinic.recover(session.id, RecoveryChoice.KEEP_RUNNING, reason="still treating")
    assert [s.code for s in kept] == ["97110"] and kept[0].running
    entry = store.audit_entries(entity="session", entity_id=session.id)[-1]
    assert (entry.action, entry.reason) == ("recovery.keep_running", "still treating")
    assert clinic.stopwatch(session.id).elapsed("97110") == timedelta(minutes=5)


def test_recover_stop_at_heartbeat(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clinic.start(session.id, "97012")
    clock.advance(minutes=8)
    clinic.heartbeat()
    clock.advance(minutes=90)  # the app was dead for an hour and a half
    stopped = clinic.recover(session.id, RecoveryChoice.STOP_AT_HEARTBEAT)
    assert {s.stop_utc for s in stopped} == {DEFAULT_START + timedelta(minutes=8)}
    assert store.open_segments() == []
    assert store.audit_entries(entity="session")[-1].action == "recovery.stop_at_heartbeat"
    assert clinic.rules_input(session.id).timed == {"97110": 8}
    with pytest.raises(InvalidOperation, match="no running segments"):
        clinic.recover(session.id, RecoveryChoice.STOP_AT_HEARTBEAT)


def test_recover_discard_removes_the_segments_and_keeps_them_in_the_audit(
    store: Store, clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=4)
    clinic.start(session.id, "97140")
    (discarded,) = clinic.recover(session.id, RecoveryChoice.DISCARD)
    assert discarded.code == "97140"
    assert [s.code for s in store.segments(session.id)] == ["97110"]
    entry = store.audit_entries(entity="segment", entity_id=discarded.id)[-1]
    assert entry.action == "segment.discard"
    assert entry.reason == "discarded after the app stopped unexpectedly"


def test_restore_after_the_clock_went_back_before_the_heartbeat(
    clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    # A heartbeat ahead of the clock is indistinguishable from one a fast clock wrote, so it is
    # never a lower bound (records issue, item 9): the stopwatch holds at its own last recorded
    # moment instead, and says the clock went back so the minutes are checked before billing.
    clinic.start(session.id, "97110")
    clock.advance(minutes=10)
    clinic.heartbeat()
    clock.advance(minutes=-30)
    stopwatch = clinic.stopwatch(session.id)
    assert stopwatch.elapsed("97110") == timedelta(0)
    assert len(stopwatch.warnings) == 1
    outcome = clinic.stop(session.id)
    assert outcome.change.warnings
    assert outcome.change.closed[0].stop_utc == DEFAULT_START


@pytest.mark.parametrize("timed", [True, False])
def test_a_session_ended_while_the_clock_is_behind_closes_when_it_last_recorded(
    clinic: Clinic, session: Session, clock: FakeClock, store: Store, tmp_path: Path, timed: bool
) -> None:
    """A dead CMOS battery puts the clock a day back before the session ends: it closed
    'before it was created', and the desk refused the station's whole bundle for it."""
    if timed:
        clinic.start(session.id, "97110")
        clock.advance(minutes=20)
        clinic.stop(session.id)
    last = clock.now()  # DEFAULT_START, or the stop of 97110 at 14:20
    clock.advance(minutes=-24 * 60)
    closed = clinic.end_session(session.id)
    assert closed.closed_utc == last  # where its timers are held (clock_warning), not before
    records = store.session_records([session.id])
    bundle = tmp_path / "room2.json"
    bundle.write_text(json.dumps(ex.make_bundle(records, workstation="room-2", now=clock.now())))
    with Store.open(tmp_path / "desk", clock=clock, actor="desk") as desk:
        assert Clinic(desk, builtin_catalogue(), clock).import_bundles([bundle]).added == (
            session.id,
        )


# -- a real crash --------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from therapy_timer.clock import SystemClock
    from therapy_timer.codes import Role, builtin_catalogue
    from therapy_timer.clinic import Clinic
    from therapy_timer.store import Store

    clock = SystemClock()
    store = Store.open(Path(sys.argv[1]), clock=clock, actor="child")
    clinic = Clinic(store, builtin_catalogue(), clock, actor="child")
    session = clinic.open_session(
        patient_ref="JD", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97012")
    beat = clinic.heartbeat()
    print("ready", session.id, beat.isoformat(), flush=True)
    # Then switch codes as fast as possible, reporting each step once start() has returned.
    codes = ["97110", "97140", "97530"]
    i = 0
    while True:
        outcome = clinic.start(session.id, codes[i % 3])
        print("started", outcome.change.opened[0].id, flush=True)
        i += 1
    """
)


def _read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("the child process printed nothing in time")
    return proc.stdout.readline()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_timer_survives_sigkill_and_is_recovered(data: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, session_id, beat_text = _read_line(proc).split()
        reported: list[str] = []
        while len(reported) < 50:
            line = _read_line(proc)
            assert line.startswith("started"), line + (proc.stderr.read() if proc.stderr else "")
            reported.append(line.split()[1])
        # Killed mid-loop: most likely while a write transaction is open.
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == -signal.SIGKILL

    heartbeat = datetime.fromisoformat(beat_text)
    clock = FakeClock(heartbeat + timedelta(hours=1))
    with Store.open(data, clock=clock, actor="parent") as store:
        store.check_integrity()
        ids = {s.id for s in store.segments(session_id)}
        # Every step the child reported as done is in the file: nothing was lost.
        assert set(reported) <= ids
        clinic = Clinic(store, CATALOGUE, clock, actor="parent")
        (found,) = clinic.interrupted()
        assert found.session.id == session_id
        assert found.last_heartbeat == heartbeat
        running = sorted(s.code for s in found.segments)
        # The modality and exactly one timed code were running when the child died.
        assert len(running) == 2 and running[0] == "97012"
        assert sum(s.exclusive for s in found.segments) == 1
        stopped = clinic.recover(session_id, RecoveryChoice.STOP_AT_HEARTBEAT)
        assert {s.id for s in stopped} == {s.id for s in found.segments}
        modality = next(s for s in stopped if s.code == "97012")
        assert modality.stop_utc == heartbeat
        assert store.open_segments() == []
        assert store.audit_entries(entity="session")[-1].action == "recovery.stop_at_heartbeat"
        assert clinic.stopwatch(session_id).state is StopwatchState.IDLE


def test_date_of_service_can_be_given(clinic: Clinic) -> None:
    session = clinic.open_session(
        patient_ref="X",
        clinician="Bo",
        role=Role.OTA,
        payer_profile="Medicare",
        date_of_service=date(2025, 1, 2),
    )
    assert (session.date_of_service, session.discipline) == (date(2025, 1, 2), Discipline.OT)


def test_summary_bills_the_stored_minutes_under_the_payer_method(
    clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    # §7.4 scenario 1 driven through the stopwatch: PTA 23 + PT 13 of 97110, then PT 30 of 97140.
    clinic.start(session.id, "97110", ASSISTANT)
    clock.advance(minutes=23)
    clinic.set_furnished_by(session.id, THERAPIST)
    clock.advance(minutes=13)
    clinic.start(session.id, "97140")
    clock.advance(minutes=30, seconds=40)
    result = clinic.summary(session.id)
    assert {(ln.code, ln.units, ln.modifiers) for ln in result.lines} == {
        ("97110", 1, ("GP", "CQ")),
        ("97110", 1, ("GP",)),
        ("97140", 2, ("GP",)),
    }
    assert "Provisional: the session is still open." in result.note
    assert "rounded down to whole minutes" in result.note
    assert "Clinician: Ann Lee (PT)" in result.note
    clinic.end_session(session.id)
    assert "Provisional" not in clinic.summary(session.id).note


def test_summary_uses_the_per_code_method_of_a_commercial_profile(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    commercial = next(p for p in store.payer_profiles() if p.method.value == "ama")
    session = clinic.open_session(
        patient_ref="MRN42", clinician="Ann Lee", role=Role.PT, payer_profile=commercial.name
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=8)
    clinic.start(session.id, "97140")
    clock.advance(minutes=8)
    result = clinic.summary(session.id)
    assert result.method is rules.Method.AMA
    assert result.total_timed_units == 2  # R3.4: 8 + 8 is 2 units per code, 1 under CMS


def test_default_payer_profile_is_the_setting_else_medicare(clinic: Clinic, store: Store) -> None:
    assert clinic.default_payer_profile() == "Medicare"  # not the alphabetically first
    store.set_setting("default_payer", "Commercial (per-code)")
    assert clinic.default_payer_profile() == "Commercial (per-code)"
    store.set_setting("default_payer", "A profile that was deleted")
    assert clinic.default_payer_profile() == "Medicare"


def test_a_tie_choice_is_stored_and_billed(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock
) -> None:
    # 8 + 8 minutes: one CMS unit that either code may take (R2.8).
    clinic.start(session.id, "97110")
    clock.advance(minutes=8)
    clinic.start(session.id, "97140")
    clock.advance(minutes=8)
    assert dict(clinic.summary(session.id).allocation) == {"97110": 1, "97140": 0}
    with pytest.raises(InvalidInput, match="allocation"):
        clinic.choose_allocation(session.id, {"97110": 1, "97140": 1})
    assert store.get_session(session.id).allocation is None  # nothing stored for a bad choice

    chosen = clinic.choose_allocation(session.id, {"97140": 1})
    assert dict(chosen.allocation) == {"97110": 0, "97140": 1}
    assert store.get_session(session.id).allocation == {"97110": 0, "97140": 1}
    clinic.end_session(session.id)
    assert [ln.code for ln in clinic.summary(session.id).lines] == ["97140"]

    with pytest.raises(InvalidInput, match="reason"):
        clinic.choose_allocation(session.id, {"97110": 1})
    clinic.choose_allocation(session.id, {"97110": 1}, reason="97110 was the main clinic")
    assert store.get_session(session.id).amended
    assert [ln.code for ln in clinic.summary(session.id).lines] == ["97110"]


def test_a_stale_tie_choice_falls_back_to_the_default_and_says_so(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110")
    clock.advance(minutes=8)
    clinic.start(session.id, "97140")
    clock.advance(minutes=8)
    clinic.choose_allocation(session.id, {"97140": 1})
    clinic.start(session.id, "97110")  # more minutes: the tie is gone
    clock.advance(minutes=10)
    result = clinic.summary(session.id)  # 18 + 8 minutes: two units, one each (R2.6)
    assert dict(result.allocation) == {"97110": 1, "97140": 1}
    assert "no longer fits the minutes" in result.note


def test_summaries_in_bulk_equal_one_by_one(clinic: Clinic, store: Store, clock: FakeClock) -> None:
    sessions = []
    for ref, codes in (("AA", {"97110": 20, "97140": 20}), ("BB", {"97530": 9}), ("CC", {})):
        opened = clinic.open_session(
            patient_ref=ref, clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )
        for code, minutes in codes.items():
            clinic.start(opened.id, code)
            clock.advance(minutes=minutes)
        store.add_untimed(opened.id, code="97161", minutes=30)
        clinic.end_session(opened.id)
        sessions.append(store.get_session(opened.id))
    bulk = clinic.summaries(sessions)
    assert list(bulk) == [s.id for s in sessions]
    for session in sessions:
        assert bulk[session.id] == clinic.summary(session.id)


def test_rounding_never_turns_assistant_seconds_into_a_therapists_final_unit(
    clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    # PT 7:40 then PTA 7:40 of 97110: 15 minutes, one unit. The therapist did not reach the
    # 8 minutes of R7.6, so the unit keeps CQ; rounding must not hand the therapist 8.
    clinic.start(session.id, "97110", THERAPIST)
    clock.advance(minutes=7, seconds=40)
    clinic.set_furnished_by(session.id, ASSISTANT)
    clock.advance(minutes=7, seconds=40)
    result = clinic.summary(session.id)
    assert [(ln.code, ln.units, ln.modifiers) for ln in result.lines] == [
        ("97110", 1, ("GP", "CQ"))
    ]
    assert "therapist 7, assistant 8" in result.note


def test_one_clinician_timing_two_patients_at_once_is_flagged_r8_3(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    def open_for(ref: str, clinician: str = "Ann Lee") -> Session:
        return clinic.open_session(
            patient_ref=ref, clinician=clinician, role=Role.PT, payer_profile="Medicare"
        )

    first, second, elsewhere = open_for("AA"), open_for("BB"), open_for("CC", "Bo Chen")
    clinic.start(first.id, "97110")
    clock.advance(minutes=10)
    # Clinic.start no longer lets Ann time two patients at once (it stops AA's code), but rows
    # from an older version or another workstation's bundle may still overlap: write them raw.
    store.apply_stopwatch_change(
        Change(second.id, opened=(new_segment(second.id, "97110", clock.now()),))
    )
    clinic.start(elsewhere.id, "97110")  # another clinician: no problem
    clock.advance(minutes=10)
    for session in (first, second, elsewhere):
        clinic.end_session(session.id)
    later = open_for("DD")
    clinic.start(later.id, "97140")  # after the others: sequential, not concurrent
    clock.advance(minutes=10)
    clinic.end_session(later.id)

    def flagged(result: rules.Result) -> list[str]:
        return [w.message for w in result.warnings if w.rule == "R8.3"]

    assert "BB" in flagged(clinic.summary(first.id))[0]
    assert "AA" in flagged(clinic.summary(second.id))[0]
    assert flagged(clinic.summary(elsewhere.id)) == []
    assert flagged(clinic.summary(later.id)) == []
    everyone = [store.get_session(s.id) for s in (first, second, elsewhere, later)]
    bulk = clinic.summaries(everyone)
    for session in everyone:
        assert bulk[session.id] == clinic.summary(session.id)


def test_two_clinicians_timing_one_patient_at_once_is_flagged_r8_1(
    clinic: Clinic, clock: FakeClock
) -> None:
    """R8.1: one timed code at a time for a patient, whoever times it; R1.4: two clinicians
    treating together count the minutes once. Ann's 97110 and Bo's 97140 for MRN1 in the same
    10 minutes bill 2 units for 10 minutes of treatment, and Ann's and Bo's 97110 at once
    for MRN2 (together, but recorded twice) 1 unit for 10 minutes, as if the patient had
    been treated for 20: each session of such a day is flagged in its summary, the day in
    the day view and in every export, the CSV's included."""

    def open_for(ref: str, clinician: str, role: Role) -> Session:
        return clinic.open_session(
            patient_ref=ref, clinician=clinician, role=role, payer_profile="Medicare"
        )

    ann, bo = open_for("MRN1", "Ann Lee", Role.PT), open_for("MRN1", "Bo Chen", Role.PTA)
    clinic.start(ann.id, "97110")
    clinic.start(bo.id, "97140")
    ann2, bo2 = open_for("MRN2", "Ann Lee", Role.PT), open_for("MRN2", "Bo Chen", Role.PTA)
    clock.advance(minutes=10)
    for session in (ann, bo):
        clinic.end_session(session.id)
    clinic.start(ann2.id, "97110")
    clinic.start(bo2.id, "97110", FurnishedBy.TOGETHER)
    clock.advance(minutes=10)
    for session in (ann2, bo2):
        clinic.end_session(session.id)
    # One after the other, as the rule asks: no flag.
    cy, dee = open_for("MRN3", "Ann Lee", Role.PT), open_for("MRN3", "Bo Chen", Role.PTA)
    clinic.start(cy.id, "97110")
    clock.advance(minutes=10)
    clinic.end_session(cy.id)
    clinic.start(dee.id, "97110")
    clock.advance(minutes=10)
    clinic.end_session(dee.id)

    def flagged(result: rules.Result) -> list[str]:
        return [w.message for w in result.warnings if w.rule == "R8.1"]

    for session, other in ((ann, "Bo Chen (PTA)"), (bo, "Ann Lee (PT)"), (ann2, "Bo Chen")):
        (message,) = flagged(clinic.summary(session.id))
        assert other in message
    assert flagged(clinic.summary(cy.id)) == flagged(clinic.summary(dee.id)) == []
    days = {d.patient_ref: d for d in clinic.claim_days(ann.date_of_service)}
    (message,) = flagged(days["MRN1"].result)
    assert "Ann Lee (PT)" in message and "Bo Chen (PTA)" in message
    assert [w.severity for w in days["MRN2"].result.warnings if w.rule == "R8.1"] == [
        rules.Severity.ACT
    ]
    assert flagged(days["MRN3"].result) == []
    exported = clinic.export("csv", ann.date_of_service).text
    assert exported is not None
    rows = list(csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline="")))
    assert {r["patient_ref"]: "R8.1" in r["warnings"] for r in rows} == {
        "MRN1": True,
        "MRN2": True,
        "MRN3": False,
    }
    everyone = [clinic.get_session(s.id) for s in (ann, bo, ann2, bo2, cy, dee)]
    bulk = clinic.summaries(everyone)
    for session in everyone:
        assert bulk[session.id] == clinic.summary(session.id)


@pytest.mark.parametrize("typed", ["Ann Lee", "ann  lee"])
def test_one_clinicians_two_sessions_at_once_are_said_to_be_the_same_clinicians(
    clinic: Clinic, clock: FakeClock, typed: str
) -> None:
    """R8.1 named Ann once, "in sessions of Ann Lee (PT)", as if another clinician had been
    left out: her 97140, added afterwards to a second session of the same patient, ran in
    the same minutes as the first session's 97110. Her name typed another way for the second
    session was two clinicians treating together ("sessions of Ann Lee (PT), ann  lee
    (PT)"), where the note's "Clinicians:" line names one."""
    first = clinic.open_session(
        patient_ref="MRN1", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(first.id, "97110")
    began = clock.now().astimezone().time()
    clock.advance(minutes=10)
    clinic.end_session(first.id)
    second = clinic.open_session(
        patient_ref="MRN1", clinician=typed, role=Role.PT, payer_profile="Medicare"
    )
    clock.advance(minutes=20)
    clinic.add_forgotten_segment(second.id, "97140", start=began, minutes=10, reason="missed")
    clinic.end_session(second.id)

    (day,) = clinic.claim_days(first.date_of_service)
    for result in (clinic.summary(first.id), clinic.summary(second.id), day.result):
        (message,) = [w.message for w in result.warnings if w.rule == "R8.1"]
        assert message.startswith(
            "Timed codes of this patient ran at the same time in more than one session of the"
            " same clinician, Ann Lee (PT). "
        )
        assert "two clinicians" not in message


@pytest.mark.parametrize("typed", ["MRN1", "mrn1"])
def test_one_patients_two_sessions_at_once_are_no_split_between_patients(
    clinic: Clinic, clock: FakeClock, typed: str
) -> None:
    """Ann's 97140 added to a second session of MRN1 over her first session's 97110 was also
    flagged R8.3, 'one-on-one codes for MRN1 (for MRN1, mrn1 on the claim day) ... attention
    split between patients ... group therapy 97150 may be what applies', naming the patient
    itself: R8.1 is the flag for one patient's sessions at once. A second patient's code in
    the same minutes is named, once, however its reference was typed."""

    def session_of(patient: str) -> Session:
        return clinic.open_session(
            patient_ref=patient, clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )

    first = session_of("MRN1")
    clinic.start(first.id, "97110")
    began = clock.now().astimezone().time()
    clock.advance(minutes=10)
    clinic.end_session(first.id)
    second = session_of(typed)
    clock.advance(minutes=20)
    clinic.add_forgotten_segment(second.id, "97140", start=began, minutes=10, reason="missed")
    clinic.end_session(second.id)

    def rules_of(result: rules.Result) -> list[str]:
        return [w.rule for w in result.warnings if w.rule in ("R8.1", "R8.3")]

    (day,) = clinic.claim_days(first.date_of_service)
    for result in (clinic.summary(first.id), clinic.summary(second.id), day.result):
        assert rules_of(result) == ["R8.1"]
    exported = clinic.export("csv", first.date_of_service, mark=False).text
    assert exported is not None
    (row,) = csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline=""))
    assert "R8.3" not in row["warnings"] and "R8.1" in row["warnings"]

    for patient in ("BB", "bb"):  # one other patient, seen twice in those minutes
        other = session_of(patient)
        clinic.add_forgotten_segment(other.id, "97530", start=began, minutes=5, reason="missed")
        clinic.end_session(other.id)
        clock.advance(minutes=1)
    for session in (first, second):
        (split,) = [w for w in clinic.summary(session.id).warnings if w.rule == "R8.3"]
        assert split.message.startswith("The same clinician timed one-on-one codes for BB during")
    days = {d.patient_ref: d for d in clinic.claim_days(first.date_of_service)}
    (split,) = [w for w in days["MRN1"].result.warnings if w.rule == "R8.3"]
    assert split.message.startswith("The same clinician timed one-on-one codes for BB during")
    (split,) = [w for w in days["BB"].result.warnings if w.rule == "R8.3"]
    assert split.message.startswith("The same clinician timed one-on-one codes for MRN1 during")


def test_a_therapist_and_the_assistant_in_her_session_time_two_patients_unflagged(
    clinic: Clinic, clock: FakeClock
) -> None:
    """The stopwatch lets the assistant of Ann's session for BB time 97140 while Ann times
    97110 for AA (each has their own one-on-one time: nothing stops), yet both sessions were
    flagged R8.3, 'The same clinician timed one-on-one codes for ...', split attention that
    was two people's. R8.3 compares one person's time, as the stopwatch does; Ann's own time
    with BB over AA's is still flagged."""

    def session_of(patient: str) -> Session:
        return clinic.open_session(
            patient_ref=patient, clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )

    aa, bb = session_of("AA"), session_of("BB")
    clinic.start(aa.id, "97110")
    assert clinic.start(bb.id, "97140", FurnishedBy.ASSISTANT).elsewhere == ()
    clock.advance(minutes=10)
    for session in (aa, bb):
        clinic.end_session(session.id)

    def split(session: Session) -> list[str]:
        return [w.message for w in clinic.summary(session.id).warnings if w.rule == "R8.3"]

    assert split(aa) == split(bb) == []
    days = clinic.claim_days(aa.date_of_service)
    assert [w for d in days for w in d.result.warnings if w.rule == "R8.3"] == []
    exported = clinic.export("csv", aa.date_of_service, mark=False).text
    assert exported is not None
    rows = csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline=""))
    assert ["R8.3" in r["warnings"] for r in rows] == [False, False]

    began = clock.now().astimezone().time()
    clock.advance(minutes=10)
    cc = session_of("CC")  # Ann's own time over AA's, typed in afterwards
    clinic.add_forgotten_segment(cc.id, "97530", start=began, minutes=5, reason="missed")
    clinic.add_forgotten_segment(aa.id, "97110", start=began, minutes=5, reason="missed")
    clinic.end_session(cc.id)
    assert split(cc)[0].startswith("The same clinician timed one-on-one codes for AA during")
    assert split(aa)[0].startswith("The same clinician timed one-on-one codes for CC during")
    assert split(bb) == []


# -- R7.9: an evaluation is the therapist's alone, refused in every path where it is recorded --


@pytest.fixture
def pta_session(clinic: Clinic) -> Session:
    return clinic.open_session(
        patient_ref="JD-2", clinician="Pat Ng", role=Role.PTA, payer_profile="Medicare"
    )


@pytest.mark.parametrize(
    "record",
    [
        lambda c, s: c.add_untimed(s.id, "97161", minutes=30, furnished_by=ASSISTANT),
        lambda c, s: c.set_untimed(s.id, "97162", checked=True, furnished_by=ASSISTANT),
        lambda c, s: c.set_untimed_minutes(s.id, "97163", 40, furnished_by=ASSISTANT),
        # a PTA's session, even "by the therapist"
        lambda c, s: c.add_untimed(s.id, "97164", furnished_by=THERAPIST),
    ],
    ids=["untimed add", "untimed toggle", "untimed minutes", "re-evaluation in a PTA session"],
)
def test_an_assistant_evaluation_is_refused_wherever_it_is_recorded(
    clinic: Clinic, store: Store, pta_session: Session, record: object
) -> None:
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        record(clinic, pta_session)  # type: ignore[operator]
    assert store.untimed_services(pta_session.id) == []


def test_an_assistant_s_minutes_are_theirs_unless_told_otherwise(
    clinic: Clinic, clock: FakeClock, store: Store, pta_session: Session
) -> None:
    # R7.1: a PTA's own minutes take CQ. The window tags them so (its Furnished by switch starts
    # at the assistant for a PTA); a foot pedal's 'timer start 97110 --patient JD-2', a typed
    # 'session add-segment' or 'untimed add' name nobody, and took the therapist's.
    clinic.start(pta_session.id, "97110")
    clock.advance(minutes=20)
    clinic.stop(pta_session.id)
    clock.advance(minutes=5)
    after = (DEFAULT_START + timedelta(minutes=20)).astimezone().time()
    clinic.add_forgotten_segment(pta_session.id, "97140", start=after, minutes=1, reason="r")
    clinic.add_untimed(pta_session.id, "97012", minutes=15)
    clinic.set_untimed_minutes(pta_session.id, "97016", 10)
    clinic.set_untimed(pta_session.id, "97018", checked=True)
    assert {s.furnished_by for s in store.segments(pta_session.id)} == {ASSISTANT}
    assert {u.furnished_by for u in store.untimed_services(pta_session.id)} == {ASSISTANT}
    result = clinic.summary(pta_session.id)
    assert {(line.code, line.modifiers) for line in result.lines} >= {
        ("97110", ("GP", "CQ")),
        ("97012", ("GP", "CQ")),
    }
    # The therapist's own session is unchanged: their minutes, no CQ.
    session = clinic.open_session(
        patient_ref="JD-3", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=20)
    clinic.stop(session.id)
    clinic.add_untimed(session.id, "97012", minutes=15)
    assert {s.furnished_by for s in store.segments(session.id)} == {THERAPIST}
    assert {u.furnished_by for u in store.untimed_services(session.id)} == {THERAPIST}


def test_an_assistant_s_untimed_service_without_minutes_takes_cq(
    clinic: Clinic, pta_session: Session, session: Session
) -> None:
    # R7.4 (A): a PTA who sets up traction or unattended e-stim furnished the service in whole,
    # minutes recorded or not (they are optional for an untimed code); it billed without CQ.
    clinic.add_untimed(pta_session.id, "97012")
    clinic.set_untimed(session.id, "G0283", checked=True, furnished_by=ASSISTANT)  # the window
    clinic.set_untimed(session.id, "97016", checked=True)  # the therapist's own
    assert {(line.code, line.modifiers) for line in clinic.summary(pta_session.id).lines} == {
        ("97012", ("GP", "CQ"))
    }
    assert {(line.code, line.modifiers) for line in clinic.summary(session.id).lines} == {
        ("G0283", ("GP", "CQ")),
        ("97016", ("GP",)),
    }


def test_a_therapist_cannot_tag_an_evaluation_as_the_assistant_s(
    clinic: Clinic, store: Store, session: Session
) -> None:
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        clinic.add_untimed(session.id, "97161", furnished_by=ASSISTANT)
    added = clinic.add_untimed(session.id, "97161", minutes=30)
    assert added.furnished_by is THERAPIST
    assert [u.code for u in store.untimed_services(session.id)] == ["97161"]


def test_a_corrected_segment_cannot_become_an_assistant_evaluation(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock
) -> None:
    clinic.start(session.id, "97110", ASSISTANT)
    clock.advance(minutes=10)
    clinic.end_session(session.id)
    (segment,) = store.segments(session.id)
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        clinic.amend_segment(segment.id, reason="wrong code", code="97161")
    assert store.get_segment(segment.id).code == "97110"


def test_timed_codes_still_go_through_the_stopwatch_not_untimed_add(
    clinic: Clinic, session: Session
) -> None:
    with pytest.raises(InvalidInput, match="timer start 97110"):
        clinic.add_untimed(session.id, "97110")


def test_a_heartbeat_from_a_fast_clock_never_zeroes_later_minutes(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock
) -> None:
    # Records issue, item 9: a window three hours fast wrote its heartbeat, then closed.
    store.write_heartbeat(clock.now() + timedelta(hours=3))
    clinic.start(session.id, "97110")
    clock.advance(minutes=40)
    assert clinic.rules_input(session.id).timed == {"97110": 40}
    closed = clinic.end_session(session.id)
    assert clinic.summary(closed.id).total_timed_units == 3
    # Nor is it offered as the moment to stop a forgotten timer at.
    other = clinic.open_session(
        patient_ref="JD-9", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(other.id, "97110")
    store.write_heartbeat(clock.now() + timedelta(hours=3))
    (interrupted,) = clinic.interrupted()
    assert RecoveryChoice.STOP_AT_HEARTBEAT not in interrupted.choices
