"""The SQLite store: round trips, stopwatch changes, amendments and the append-only audit log."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeClock, ended, new_segment
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.model import Change, Pause, PayerProfile, Resumable, Session, SessionStatus
from therapy_timer.rules import Method
from therapy_timer.store import (
    KEEP,
    SCHEMA_VERSION,
    Store,
    database_path,
)

THERAPIST = FurnishedBy.THERAPIST
ASSISTANT = FurnishedBy.ASSISTANT
DOS = date(2025, 3, 10)


@pytest.fixture
def actor() -> str:
    return "pat"


def new_session(store: Store, **overrides: object) -> Session:
    fields: dict[str, object] = {
        "date_of_service": DOS,
        "patient_ref": "JS-1042",
        "clinician": "Pat Lee",
        "role": Role.PT,
        "discipline": Discipline.PT,
        "payer_profile": "Medicare",
    }
    fields.update(overrides)
    return store.create_session(**fields)  # type: ignore[arg-type]


def start(
    store: Store,
    session: Session,
    code: str,
    at: datetime,
    *,
    exclusive: bool = True,
    by: FurnishedBy = THERAPIST,
    seg_id: str | None = None,
) -> str:
    opened = new_segment(session.id, code, at, by=by, exclusive=exclusive, segment_id=seg_id)
    store.apply_stopwatch_change(Change(session.id, opened=(opened,)), action="start")
    return opened.id


def raw(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(store.path, isolation_level=None)


# ------------------------------------------------------------------------------------------ rows


def test_session_round_trip(store: Store, clock: FakeClock) -> None:
    created = new_session(store)
    again = store.get_session(created.id)
    assert again == created
    assert again.status is SessionStatus.OPEN
    assert again.date_of_service == DOS
    assert again.created_utc == clock.now()
    assert (again.amended, again.exported, again.is_paused) == (False, False, False)
    assert len(again.id) == 36  # a UUID


def test_list_sessions_by_day_range_status_and_clinician(store: Store, clock: FakeClock) -> None:
    a = new_session(store, date_of_service=date(2025, 3, 9), patient_ref="AB")
    clock.advance(minutes=1)
    b = new_session(store, clinician="Sam Ortiz", role=Role.PTA)
    clock.advance(minutes=1)
    c = new_session(store)
    store.close_session(c.id)
    d = new_session(store, date_of_service=date(2025, 3, 12), patient_ref="CD")
    assert [s.id for s in store.list_sessions(day=DOS)] == [b.id, c.id]
    assert [s.id for s in store.list_sessions(start=date(2025, 3, 9), end=DOS)] == [
        a.id,
        b.id,
        c.id,
    ]
    assert [s.id for s in store.list_sessions(start=DOS)] == [b.id, c.id, d.id]
    assert [s.id for s in store.list_sessions(status=SessionStatus.CLOSED)] == [c.id]
    assert [s.id for s in store.list_sessions(day=DOS, clinician="Sam Ortiz")] == [b.id]
    assert store.list_sessions(day=date(2024, 1, 1)) == []


@pytest.mark.parametrize("ref", ["JS", "MRN-000123", "j.s.", "12345678901234567890", "A#1/b_c"])
def test_short_patient_labels_are_accepted(store: Store, ref: str) -> None:
    assert new_session(store, patient_ref=f"  {ref} ").patient_ref == ref


@pytest.mark.parametrize(
    "ref",
    ["", "   ", "John Smith", "123456789012345678901", "Smith, John", "JS\n1", "-JS", "Jo;DROP"],
)
def test_patient_reference_must_be_a_short_label(store: Store, ref: str) -> None:
    with pytest.raises(InvalidInput) as info:
        new_session(store, patient_ref=ref)
    assert info.value.field == "patient_ref"
    assert store.list_sessions() == []


def test_role_must_match_discipline_and_payer_must_exist(store: Store) -> None:
    with pytest.raises(InvalidInput) as info:
        new_session(store, role=Role.OTA, discipline=Discipline.PT)
    assert info.value.field == "discipline"
    with pytest.raises(InvalidInput) as info:
        new_session(store, payer_profile="Nobody")
    assert info.value.field == "payer_profile"
    assert store.list_sessions() == []
    assert store.audit_entries() == []


def test_unknown_ids_are_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.get_session("nope")
    with pytest.raises(InvalidInput):
        store.discard_segment("nope", reason="x")


def test_naive_datetimes_are_a_bug_not_a_storage_error(store: Store) -> None:
    session = new_session(store)
    with pytest.raises(ValueError, match="naive"):
        start(store, session, "97110", datetime(2025, 3, 10, 14, 0))
    assert store.open_segments() == []


# ------------------------------------------------------------------------------- stopwatch


def test_start_switch_and_stop_are_recorded_with_audit(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    t0 = clock.now()
    first = start(store, session, "97110", t0, seg_id="seg-1")
    assert first == "seg-1"
    t1 = clock.advance(minutes=12)
    second = new_segment(session.id, "97140", t1)
    store.apply_stopwatch_change(
        Change(session.id, closed=(ended(store, first, t1),), opened=(second,)), action="switch"
    )
    segments = store.segments(session.id)
    assert [(s.code, s.start_utc, s.stop_utc) for s in segments] == [
        ("97110", t0, t1),
        ("97140", t1, None),
    ]
    assert [s.id for s in store.open_segments()] == [second.id]
    actions = [e.action for e in store.audit_entries(entity="session", entity_id=session.id)]
    assert actions == ["session.create", "start", "switch"]
    switch_entry = store.audit_entries(limit=1)[0]
    assert switch_entry.actor == "pat"
    assert switch_entry.after is not None
    assert switch_entry.after["started"] == [
        {
            "id": second.id,
            "code": "97140",
            "furnished_by": "therapist",
            "exclusive": True,
            "start_utc": t1.isoformat(),
            "stop_utc": None,
        }
    ]


def test_supervised_modality_runs_beside_a_treatment_code(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    start(store, session, "97110", clock.now())
    start(store, session, "97012", clock.now(), exclusive=False)
    assert sorted(s.code for s in store.open_segments(session.id)) == ["97012", "97110"]


def test_second_treatment_code_is_refused_and_nothing_is_written(
    store: Store, clock: FakeClock
) -> None:
    session = new_session(store)
    running = start(store, session, "97110", clock.now())
    audit_before = len(store.audit_entries())
    with pytest.raises(InvalidOperation, match="97110 is already running"):
        start(store, session, "97140", clock.advance(minutes=1))
    # A valid stop paired with an invalid start must not half-apply.
    with pytest.raises(InvalidOperation):
        store.apply_stopwatch_change(
            Change(
                session.id,
                closed=(ended(store, running, clock.now()),),
                opened=(
                    new_segment(session.id, "97140", clock.now()),
                    new_segment(session.id, "97530", clock.now()),
                ),
            )
        )
    assert [(s.code, s.running) for s in store.segments(session.id)] == [("97110", True)]
    assert len(store.audit_entries()) == audit_before


def test_same_code_cannot_run_twice(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    start(store, session, "97012", clock.now(), exclusive=False)
    with pytest.raises(InvalidOperation, match="97012"):
        start(store, session, "97012", clock.now(), exclusive=False)


def test_stopping_a_segment_someone_else_stopped_is_refused(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    seg = start(store, session, "97110", clock.now())
    stop = Change(session.id, closed=(ended(store, seg, clock.advance(minutes=5)),))
    store.apply_stopwatch_change(stop)
    with pytest.raises(InvalidOperation, match="already stopped"):
        store.apply_stopwatch_change(stop)


def test_stop_before_start_is_invalid(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    seg = start(store, session, "97110", clock.now())
    with pytest.raises(InvalidInput):
        store.apply_stopwatch_change(
            Change(session.id, closed=(ended(store, seg, clock.now() - timedelta(1)),))
        )
    assert store.open_segments()[0].id == seg


def test_pause_and_resume_state_survives_reopening(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    session = new_session(store)
    seg = start(store, session, "97530", clock.now(), by=ASSISTANT)
    paused_at = clock.advance(minutes=8)
    pause = Pause(paused_at, (Resumable("97530", ASSISTANT),))
    applied = store.apply_stopwatch_change(
        Change(session.id, closed=(ended(store, seg, paused_at),), paused_after=pause),
        action="pause",
    )
    assert applied.pause == Pause(paused_at, (Resumable("97530", ASSISTANT),))
    with Store.open(tmp_path / "data", clock=clock) as other:
        seen = other.get_session(session.id)
    assert seen.is_paused
    assert seen.pause == Pause(paused_at, (Resumable("97530", ASSISTANT),))
    with pytest.raises(InvalidOperation, match="already paused"):
        store.apply_stopwatch_change(
            Change(session.id, paused_after=Pause(clock.advance(minutes=1), ()))
        )
    # Re-stating the pause at the same moment changes only what will resume.
    restated = store.apply_stopwatch_change(
        Change(session.id, paused_before=pause, paused_after=Pause(paused_at, ()))
    )
    assert restated.pause == Pause(paused_at, ())
    resumed_at = clock.advance(minutes=3)
    resumed = store.apply_stopwatch_change(
        Change(
            session.id,
            opened=(new_segment(session.id, "97530", resumed_at, by=ASSISTANT),),
            paused_before=Pause(paused_at, ()),
        ),
        action="resume",
    )
    assert not resumed.is_paused
    assert resumed.pause is None
    with pytest.raises(InvalidOperation, match="not paused"):
        store.apply_stopwatch_change(Change(session.id, paused_before=Pause(paused_at, ())))


def test_sql_refuses_two_running_treatment_codes_even_behind_the_stores_back(
    store: Store, clock: FakeClock
) -> None:
    session = new_session(store)
    start(store, session, "97110", clock.now())
    conn = raw(store)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(
            "INSERT INTO segments (id, session_id, code, furnished_by, exclusive, start_utc)"
            " VALUES ('x', ?, '97140', 'therapist', 1, '2025-03-10T14:00:00.000000+00:00')",
            [session.id],
        )
    conn.close()


def test_close_session_stops_in_the_same_transaction(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    seg = start(store, session, "97110", clock.now())
    with pytest.raises(InvalidOperation, match="stop the running codes first"):
        store.close_session(session.id)
    assert store.get_session(session.id).is_open
    end = clock.advance(minutes=20)
    closed = store.close_session(session.id, stops=[ended(store, seg, end)])
    assert closed.status is SessionStatus.CLOSED
    assert closed.closed_utc == end
    assert store.segments(session.id)[0].stop_utc == end
    with pytest.raises(InvalidOperation, match="closed"):
        start(store, session, "97140", end)
    with pytest.raises(InvalidOperation, match="already closed"):
        store.close_session(session.id)


def test_mark_exported(store: Store) -> None:
    session = new_session(store)
    store.mark_exported([session.id])
    assert store.get_session(session.id).exported
    assert store.audit_entries(limit=1)[0].action == "session.export"


# ------------------------------------------------------------------------------- amendments


@pytest.fixture
def closed(store: Store, clock: FakeClock) -> tuple[Session, str, str]:
    session = new_session(store)
    a = start(store, session, "97110", clock.now())
    t1 = clock.advance(minutes=15)
    b = new_segment(session.id, "97140", t1)
    store.apply_stopwatch_change(Change(session.id, closed=(ended(store, a, t1),), opened=(b,)))
    store.close_session(session.id, stops=[ended(store, b.id, clock.advance(minutes=10))])
    return store.get_session(session.id), a, b.id


@pytest.mark.parametrize("reason", ["", "   "])
def test_amendments_need_a_reason(
    store: Store, closed: tuple[Session, str, str], reason: str
) -> None:
    session, a, _ = closed
    audit_before = store.audit_entries()
    with pytest.raises(InvalidInput) as info:
        store.amend_segment(a, reason=reason, furnished_by=ASSISTANT)
    assert info.value.field == "reason"
    with pytest.raises(InvalidInput):
        store.add_untimed(session.id, code="97161", reason=reason)
    with pytest.raises(InvalidInput):
        store.discard_segment(a, reason=reason)
    with pytest.raises(InvalidInput):
        store.amend_session(session.id, reason=reason, patient_ref="XY")
    assert store.audit_entries() == audit_before
    assert not store.get_session(session.id).amended
    assert store.segments(session.id)[0].furnished_by is THERAPIST


def test_amending_a_closed_session_is_audited_and_flags_it(
    store: Store, closed: tuple[Session, str, str]
) -> None:
    session, a, _ = closed
    before = store.segments(session.id)[0]
    new_stop = before.start_utc + timedelta(minutes=12)
    after = store.amend_segment(
        a, reason="stopped late", stop_utc=new_stop, furnished_by=ASSISTANT, actor="lead"
    )
    assert after.stop_utc == new_stop
    assert after.furnished_by is ASSISTANT
    assert store.get_session(session.id).amended
    entry = store.audit_entries(entity="segment", entity_id=a)[-1]
    assert (entry.action, entry.actor, entry.reason) == ("segment.amend", "lead", "stopped late")
    assert entry.before is not None and entry.after is not None
    assert entry.before["furnished_by"] == "therapist"
    assert entry.after["furnished_by"] == "assistant"
    assert entry.after["stop_utc"] == new_stop.isoformat()


def test_amending_code_and_adding_segments(store: Store, closed: tuple[Session, str, str]) -> None:
    session, _, b = closed
    assert store.amend_segment(b, reason="wrong code", code="97530").code == "97530"
    segs = store.segments(session.id)
    added = store.add_segment(
        session.id,
        code="97012",
        furnished_by=THERAPIST,
        exclusive=False,
        start_utc=segs[0].start_utc,
        stop_utc=segs[0].start_utc + timedelta(minutes=10),
        reason="forgot the modality timer",
    )
    assert added in store.segments(session.id)
    assert store.audit_entries(entity="segment", entity_id=added.id)[0].action == "segment.add"


def test_amendment_cannot_make_treatment_minutes_overlap(
    store: Store, closed: tuple[Session, str, str]
) -> None:
    session, a, _ = closed
    seg_b = store.segments(session.id)[1]
    with pytest.raises(InvalidOperation, match="overlap"):
        store.amend_segment(a, reason="typo", stop_utc=seg_b.start_utc + timedelta(minutes=1))
    with pytest.raises(InvalidOperation, match="overlap"):
        store.add_segment(
            session.id,
            code="97116",
            furnished_by=THERAPIST,
            exclusive=True,
            start_utc=seg_b.start_utc,
            stop_utc=seg_b.start_utc + timedelta(minutes=2),
            reason="x",
        )
    assert not store.get_session(session.id).amended


def test_discard_keeps_the_segment_in_the_audit_log(
    store: Store, closed: tuple[Session, str, str]
) -> None:
    session, a, _ = closed
    gone = store.discard_segment(a, reason="started on the wrong patient")
    assert a not in [s.id for s in store.segments(session.id)]
    entry = store.audit_entries(entity="segment", entity_id=a)[-1]
    assert entry.action == "segment.discard"
    assert entry.before is not None and entry.before["code"] == gone.code == "97110"
    assert store.get_session(session.id).amended


def test_edits_of_an_open_session_do_not_flag_it_amended(store: Store, clock: FakeClock) -> None:
    session = new_session(store)
    seg = start(store, session, "97110", clock.now())
    store.amend_segment(seg, reason="started late", start_utc=clock.now() - timedelta(minutes=2))
    with pytest.raises(InvalidOperation, match="still running"):
        store.amend_segment(seg, reason="x", stop_utc=clock.now())
    store.add_untimed(session.id, code="97161")
    assert not store.get_session(session.id).amended


def test_untimed_services_round_trip_and_amend(
    store: Store, closed: tuple[Session, str, str]
) -> None:
    session, _, _ = closed
    added = store.add_untimed(session.id, code="97161", minutes=40, reason="eval not entered")
    assert store.get_session(session.id).amended
    kept = store.amend_untimed(added.id, reason="by the assistant", furnished_by=ASSISTANT)
    assert (kept.minutes, kept.furnished_by) == (40, ASSISTANT)
    cleared = store.amend_untimed(added.id, reason="minutes unknown", minutes=None)
    assert cleared.minutes is None
    assert store.amend_untimed(added.id, reason="x", minutes=KEEP).minutes is None
    assert store.untimed_services(session.id) == [cleared]
    with pytest.raises(InvalidInput):
        store.amend_untimed(added.id, reason="x", minutes=-3)
    store.remove_untimed(added.id, reason="duplicate")
    assert store.untimed_services(session.id) == []
    actions = [e.action for e in store.audit_entries(entity="untimed")]
    assert actions == [
        "untimed.add",
        "untimed.amend",
        "untimed.amend",
        "untimed.amend",
        "untimed.remove",
    ]


def test_amend_session_header(store: Store, closed: tuple[Session, str, str]) -> None:
    session, _, _ = closed
    amended = store.amend_session(
        session.id, reason="wrong payer", payer_profile="Commercial (per-code)"
    )
    assert amended.payer_profile == "Commercial (per-code)"
    assert amended.amended


# ------------------------------------------------------------------------------- audit log


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET reason = 'tampered'",
        "UPDATE audit_log SET actor = 'x' WHERE id = 1",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = 1",
    ],
)
def test_audit_log_refuses_update_and_delete_in_sql(store: Store, statement: str) -> None:
    new_session(store)
    before = store.audit_entries()
    conn = raw(store)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    conn.close()
    assert store.audit_entries() == before


def test_audit_filters_and_limit(store: Store, clock: FakeClock) -> None:
    first = new_session(store)
    clock.advance(minutes=5)
    second = new_session(store, patient_ref="AB")
    assert [e.entity_id for e in store.audit_entries(since=clock.now())] == [second.id]
    assert [e.entity_id for e in store.audit_entries(entity_id=first.id)] == [first.id]
    assert len(store.audit_entries(limit=1)) == 1


def test_record_event_for_decisions_that_change_nothing(store: Store) -> None:
    entry = store.record_event(
        "recovery.keep_running", entity="segment", entity_id="s1", reason="user chose"
    )
    assert store.audit_entries() == [entry]


# ------------------------------------------------------------------------- small tables


def test_heartbeat(store: Store, clock: FakeClock) -> None:
    assert store.last_heartbeat() is None
    store.write_heartbeat()
    assert store.last_heartbeat() == clock.now()
    later = clock.advance(seconds=30)
    store.write_heartbeat(later)
    assert store.last_heartbeat() == later
    assert store.audit_entries() == []


def test_settings(store: Store) -> None:
    assert store.get_setting("rounding", "down") == "down"
    store.set_setting("rounding", "nearest")
    store.set_setting("rounding", "nearest")  # unchanged: no second audit entry
    assert store.get_setting("rounding") == "nearest"
    assert store.settings() == {"rounding": "nearest"}
    assert [e.action for e in store.audit_entries()] == ["setting.set"]


def test_payer_profiles_seeded_and_crud(store: Store) -> None:
    assert store.payer_profiles() == [
        PayerProfile("Commercial (per-code)", Method.AMA, False),
        PayerProfile("Medicare", Method.CMS, True),
    ]
    blue = PayerProfile("BlueCross", Method.AMA, True)
    assert store.save_payer_profile(blue) == blue
    store.save_payer_profile(PayerProfile("BlueCross", Method.CMS, True))
    assert store.get_payer_profile("BlueCross").method is Method.CMS
    with pytest.raises(InvalidInput):
        store.get_payer_profile("Aetna")


def test_data_version_notices_writes_by_another_connection(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    seen = store.data_version()
    assert store.data_version() == seen
    with Store.open(tmp_path / "data", clock=clock) as other:
        new_session(other)
    assert store.data_version() != seen


def test_schema_is_current(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert database_path(store.data_dir) == store.path


def test_a_heartbeat_from_the_future_is_returned_as_stored(store: Store, clock: FakeClock) -> None:
    # The store reports what it holds; the caller compares with its clock before using it as a
    # lower bound (a heartbeat written while the clock ran ahead is not proof of anything).
    ahead = clock.now() + timedelta(days=400)
    store.write_heartbeat(ahead)
    assert store.last_heartbeat() == ahead
    assert store.last_heartbeat() > clock.now()  # type: ignore[operator]


# ------------------------------------------------------------------------------ one open session


@pytest.mark.parametrize("again", ["JS-1042", "js-1042", " Js-1042 "])
def test_one_open_session_per_patient_and_clinician(store: Store, again: str) -> None:
    first = new_session(store)
    with pytest.raises(InvalidOperation, match="already has an open session") as info:
        new_session(store, patient_ref=again)
    assert f"(session {first.id})" in str(info.value)
    assert [s.id for s in store.list_sessions()] == [first.id]
    # Another clinician may see the same patient; once closed, a new visit may begin.
    other = new_session(store, patient_ref=again, clinician="Sam Ortiz", role=Role.PTA)
    store.close_session(first.id)
    second = new_session(store, patient_ref=again)
    assert {s.id for s in store.list_sessions(status=SessionStatus.OPEN)} == {other.id, second.id}


def test_renaming_a_patient_onto_an_open_session_is_refused(store: Store) -> None:
    first = new_session(store, patient_ref="AB")
    second = new_session(store, patient_ref="CD")
    with pytest.raises(InvalidOperation, match=first.id):
        store.amend_session(second.id, patient_ref="ab", reason="typo")
    assert store.get_session(second.id).patient_ref == "CD"
    store.close_session(second.id)
    # A closed session may carry the reference of an open one (an earlier visit).
    assert store.amend_session(second.id, patient_ref="AB", reason="typo").patient_ref == "AB"


def test_the_database_refuses_a_second_open_session_on_its_own(store: Store) -> None:
    new_session(store)
    conn = raw(store)
    with pytest.raises(sqlite3.IntegrityError, match="sessions_one_open_per_patient"):
        conn.execute(
            "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role, discipline,"
            " payer_profile, status, created_utc) VALUES ('x', '2025-03-10', 'js-1042', 'Pat Lee',"
            " 'PT', 'PT', 'Medicare', 'open', '2025-03-10T15:00:00.000000+00:00')"
        )
    conn.close()
