"""The caseload in the front door: one-on-one time in one place, running patients, window lease."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from tests.fakes import DEFAULT_START, FakeClock
from therapy_timer.clinic import HEARTBEAT_INTERVAL_SECONDS, Clinic
from therapy_timer.codes import FurnishedBy, Role, builtin_catalogue
from therapy_timer.model import RecoveryChoice, Session
from therapy_timer.store import Store
from therapy_timer.store.queries import WindowLease

CATALOGUE = builtin_catalogue()


def open_for(clinic: Clinic, ref: str, clinician: str = "Ann Lee", role: Role = Role.PT) -> Session:
    return clinic.open_session(
        patient_ref=ref, clinician=clinician, role=role, payer_profile="Medicare"
    )


def running_codes(store: Store, session: Session) -> set[str]:
    return {s.code for s in store.open_segments(session.id)}


def test_a_timed_code_for_b_stops_the_same_clinicians_timed_code_for_a(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97010")  # hot pack: supervised, needs no constant attendance
    clinic.start(a.id, "97110")
    clock.advance(minutes=12)
    outcome = clinic.start(b.id, "97140")
    (elsewhere,) = outcome.elsewhere
    assert elsewhere.session.patient_ref == "AA-1"
    assert [s.code for s in elsewhere.change.closed] == ["97110"]
    assert running_codes(store, a) == {"97010"}
    assert running_codes(store, b) == {"97140"}
    # A's exercise stopped at the moment B's manual therapy began: 12 minutes, not one more.
    clock.advance(minutes=10)
    assert clinic.rules_input(a.id).timed == {"97110": 12}
    assert clinic.rules_input(b.id).timed == {"97140": 10}
    audit = store.audit_entries(entity="session", entity_id=a.id)
    assert audit[-1].action == "stop.one_on_one_elsewhere"


def test_a_supervised_modality_for_b_stops_nothing_for_a(clinic: Clinic, store: Store) -> None:
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97110")
    outcome = clinic.start(b.id, "97010")
    assert outcome.elsewhere == ()
    assert running_codes(store, a) == {"97110"}


@pytest.mark.parametrize(
    ("a_who", "b_who", "stops"),
    [
        (("Ann Lee", Role.PT), ("Ann Lee", Role.PT), True),
        (("Ann Lee", Role.PT), ("ann lee ", Role.PT), True),  # the same person, typed loosely
        (("Ann Lee", Role.PT), ("Bo Diaz", Role.PTA), False),  # a PTA's time is theirs
        (("Bo Diaz", Role.PTA), ("Ann Lee", Role.PT), False),
        (("Ann Lee", Role.PT), ("Cy Moss", Role.PT), False),
        (("Bo Diaz", Role.PTA), ("Bo Diaz", Role.PTA), True),
    ],
)
def test_who_furnishes_decides_what_stops(
    clinic: Clinic,
    store: Store,
    a_who: tuple[str, Role],
    b_who: tuple[str, Role],
    stops: bool,
) -> None:
    a = open_for(clinic, "AA-1", *a_who)
    b = open_for(clinic, "BB-2", *b_who)
    clinic.start(a.id, "97110")
    outcome = clinic.start(b.id, "97530")
    assert bool(outcome.elsewhere) is stops
    assert running_codes(store, a) == (set() if stops else {"97110"})


def test_a_therapists_assistant_in_one_session_and_the_therapist_in_another(
    clinic: Clinic, store: Store
) -> None:
    # The PT's session has a PTA furnishing exercise; the PT treating B does not stop it.
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97110", FurnishedBy.ASSISTANT)
    assert clinic.start(b.id, "97140", FurnishedBy.THERAPIST).elsewhere == ()
    assert running_codes(store, a) == {"97110"}
    # ...but the assistant cannot be at two tables either.
    outcome = clinic.start(b.id, "97530", FurnishedBy.ASSISTANT)
    assert [o.session.id for o in outcome.elsewhere] == [a.id]


def test_undo_puts_the_one_on_one_time_back(clinic: Clinic, store: Store, clock: FakeClock) -> None:
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97110")
    clock.advance(minutes=5)
    outcome = clinic.start(b.id, "97140")
    clock.advance(seconds=4)
    clinic.undo_elsewhere(outcome)
    assert running_codes(store, a) == {"97110"}
    assert running_codes(store, b) == set()
    assert store.segments(b.id) == []
    clock.advance(minutes=5)
    # As if never stopped (issue 12): one segment, the 4 seconds of the mistaken tap included.
    (segment,) = store.segments(a.id)
    assert (segment.start_utc, segment.stop_utc) == (DEFAULT_START, None)
    assert clinic.stopwatch(a.id).elapsed("97110") == timedelta(minutes=10, seconds=4)
    (reopened,) = [
        e for e in store.audit_entries(entity_id=segment.id) if e.action != "segment.start"
    ][-1:]
    assert reopened.action == "segment.reopen" and reopened.reason


def test_undo_also_restores_what_the_tap_stopped_in_its_own_session(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97110")
    clock.advance(minutes=3)
    clinic.undo_elsewhere(clinic.start(b.id, "97112"))  # a first mistaken tap, undone
    clock.advance(minutes=2)
    outcome = clinic.start(b.id, "97140")  # stops A's 97110 (elsewhere), nothing of B's
    assert [o.session.id for o in outcome.elsewhere] == [a.id]
    clock.advance(seconds=7)
    clinic.undo_elsewhere(outcome)
    clock.advance(minutes=1)
    # Independently: A's 97110 has run since 14:00, never stopped; B has nothing.
    assert clinic.stopwatch(a.id).elapsed("97110") == clock.now() - DEFAULT_START
    assert len(store.segments(a.id)) == 1 and store.segments(b.id) == []


def test_a_late_undo_starts_afresh_when_the_session_moved_on(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    """Documented limit: if the other patient's session started a code meanwhile (a foot
    pedal), the stopped code cannot have run all along (two one-on-one codes at once): it
    starts again at the undo, and only the seconds before the pedal are lost."""
    a, b = open_for(clinic, "AA-1"), open_for(clinic, "BB-2")
    clinic.start(a.id, "97110")
    clock.advance(minutes=5)
    outcome = clinic.start(b.id, "97140")  # stops A's 97110 at 14:05
    clock.advance(seconds=3)
    clinic.start(a.id, "97112")  # the pedal, at 14:05:03 (stops B's 97140 in turn)
    clock.advance(seconds=2)
    clinic.undo_elsewhere(outcome)  # at 14:05:05
    assert running_codes(store, a) == {"97110"} and running_codes(store, b) == set()
    clock.advance(minutes=1)
    watch = clinic.stopwatch(a.id)
    assert watch.elapsed("97110") == timedelta(minutes=6)
    assert watch.elapsed("97112") == timedelta(seconds=2)
    assert store.segments(b.id) == []


def test_running_lists_every_running_patient(clinic: Clinic, clock: FakeClock) -> None:
    a = open_for(clinic, "AA-1")
    clock.advance(seconds=1)
    b = open_for(clinic, "BB-2", "Bo Diaz", Role.PTA)
    c = open_for(clinic, "CC-3")
    clinic.start(a.id, "97010")
    clinic.start(b.id, "97110")
    assert [(r.session.patient_ref, [s.code for s in r.segments]) for r in clinic.running()] == [
        ("AA-1", ["97010"]),
        ("BB-2", ["97110"]),
    ]
    assert c.id not in {r.session.id for r in clinic.running()}


# -- the window lease ------------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has just exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_timer_a_command_started_is_not_offered_for_recovery(
    clinic: Clinic, clock: FakeClock
) -> None:
    # No window ever ran: the pedal's timer is simply running.
    session = open_for(clinic, "AA-1")
    clinic.start(session.id, "97112")
    clinic.heartbeat()  # what any command-line call may write
    clock.advance(minutes=120)
    assert clinic.abandoned() == []


def test_a_window_that_closed_normally_leaves_nothing_to_recover(
    clinic: Clinic, clock: FakeClock
) -> None:
    session = open_for(clinic, "AA-1")
    clinic.hold_window()
    clinic.start(session.id, "97110")
    assert clinic.release_window() is True
    clock.advance(minutes=90)
    assert clinic.abandoned() == []


def test_a_live_window_is_not_dead_however_old_its_heartbeat(
    clinic: Clinic, clock: FakeClock
) -> None:
    session = open_for(clinic, "AA-1")
    clinic.hold_window()  # this very process holds it
    clinic.start(session.id, "97110")
    clock.advance(minutes=90)
    assert clinic.abandoned() == []


@pytest.mark.skipif(sys.platform == "win32", reason="pids and /proc are POSIX")
def test_a_dead_windows_timers_are_offered_but_not_those_started_after_it_died(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    session = open_for(clinic, "AA-1")
    clinic.start(session.id, "97010")
    clock.advance(minutes=6)
    beat = clock.now()
    store.hold_window_lease(WindowLease(dead_pid(), "", "", beat))
    clock.advance(minutes=10)
    other = open_for(clinic, "BB-2", "Bo Diaz", Role.PTA)
    clinic.start(other.id, "97110")  # a pedal after the window died
    (found,) = clinic.abandoned()
    assert found.session.id == session.id and [s.code for s in found.segments] == ["97010"]
    assert found.last_heartbeat == beat
    (stopped,) = clinic.recover(session.id, RecoveryChoice.STOP_AT_HEARTBEAT)
    assert stopped.stop_utc == DEFAULT_START + timedelta(minutes=6)
    assert {s.code for s in store.open_segments()} == {"97110"}


def test_a_fresh_heartbeat_is_not_a_dead_window_yet(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    session = open_for(clinic, "AA-1")
    clinic.start(session.id, "97110")
    store.hold_window_lease(WindowLease(dead_pid(), "", "", clock.now()))
    clock.advance(seconds=HEARTBEAT_INTERVAL_SECONDS - 1)
    assert clinic.abandoned() == []
    clock.advance(seconds=2)
    assert len(clinic.abandoned()) == 1


def test_a_machine_restart_makes_a_window_dead_even_if_its_pid_is_reused(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    import os

    session = open_for(clinic, "AA-1")
    clinic.start(session.id, "97110")
    here = clinic.hold_window()
    if not here.boot_id:
        pytest.skip("no boot id on this system")
    store.hold_window_lease(
        WindowLease(os.getpid(), "another-boot", here.process_start, clock.now())
    )
    clock.advance(minutes=5)
    assert len(clinic.abandoned()) == 1
    # The same pid started at another moment is another process: the window is gone.
    store.hold_window_lease(WindowLease(os.getpid(), here.boot_id, "1", clock.now()))
    clock.advance(minutes=5)
    assert len(clinic.abandoned()) == 1
