"""The records of the model, the clinic, the stopwatch, billing and the store are frozen_record
classes (issue 13: a window start compiled the generated methods of all twenty-eight, ~35 ms):
each must behave as its ``@dataclass(frozen=True)`` twin, by tests/test_frozen.py's own check."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests import test_frozen
from therapy_timer import billing, clinic, stopwatch
from therapy_timer.codes import Discipline, FurnishedBy, Method, Role
from therapy_timer.model import (
    AuditEntry,
    Change,
    ClockWarning,
    Conflict,
    ConflictStatus,
    Interrupted,
    Pause,
    PayerProfile,
    Resumable,
    Segment,
    Session,
    SessionProblem,
    SessionStatus,
    UntimedService,
)
from therapy_timer.rules import Result
from therapy_timer.store import bundles, queries

AT = dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC)
RESUMABLE = Resumable("97110", FurnishedBy.ASSISTANT)
PAUSE = Pause(AT, (RESUMABLE,))
SESSION_ARGS = (
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    dt.date(2026, 11, 20),
    "JD-1",
    "Ann Lee",
    Role.PT,
    Discipline.PT,
    "Medicare",
    SessionStatus.OPEN,
    False,
    False,
    AT,
    None,
    None,
)
SESSION = Session(*SESSION_ARGS)
SEGMENT = Segment("a" * 32, SESSION.id, "97110", FurnishedBy.THERAPIST, True, AT, None)
WARNING = ClockWarning(AT, AT + dt.timedelta(seconds=30))
RESULT = Result(Method.CMS, Discipline.PT, AT.date(), 23, 2, 23, (), (), {}, (), (), "")
PROBLEM = SessionProblem(SESSION, "timed.97110", "too long", "correct it")
PROFILE = PayerProfile("Medicare", Method.CMS, True)
VISIT = billing.Visit(SESSION, AT, AT + dt.timedelta(minutes=23))

SAMPLES: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = [
    (PayerProfile, ("Medicare", Method.CMS, True), {}),
    (Resumable, ("97110", FurnishedBy.ASSISTANT), {}),
    (Pause, (AT, (RESUMABLE,)), {}),
    (Session, SESSION_ARGS, {}),
    (Session, (*SESSION_ARGS[:-1], PAUSE), {"allocation": {"97110": 2}, "origin": "room 2"}),
    (Segment, ("a" * 32, SESSION.id, "97110", FurnishedBy.THERAPIST, True, AT, None), {}),
    (ClockWarning, (AT, AT + dt.timedelta(seconds=30)), {}),
    (Change, (), {}),
    (
        Change,
        (SESSION.id, (SEGMENT,), (SEGMENT,), None, PAUSE),
        {
            "furnished_by_before": FurnishedBy.ASSISTANT,
            "furnished_by_after": FurnishedBy.THERAPIST,
            "warnings": (WARNING,),
        },
    ),
    (UntimedService, (1, SESSION.id, "97161", 30, FurnishedBy.THERAPIST, AT), {}),
    (
        AuditEntry,
        (7, AT, "ann", "update", "segment", SEGMENT.id, {"a": 1}, None, "typo"),
        {},
    ),
    (Interrupted, (SESSION, (SEGMENT,), AT), {}),
    (
        Conflict,
        (3, SESSION.id, "room 2", "bundle.json", "amended here", AT, ConflictStatus.OPEN),
        {"decided_utc": None, "record": {"id": SESSION.id}},
    ),
    (SessionProblem, (SESSION, "timed.97110", "too long", "correct it"), {}),
    # The clinic's records; what the twin check does not look into is stood in by a string.
    (clinic.Outcome, (SESSION, Change(), "stopwatch"), {}),
    (clinic.Outcome, (SESSION, Change(), "stopwatch", ("another outcome",)), {}),
    (clinic.Header, (), {}),
    (clinic.Header, ("Ann Lee", Role.OTA, "Medicaid"), {}),
    (
        clinic.Workspace,
        (SESSION, "stopwatch", (), PayerProfile("A", Method.AMA, False), "down"),
        {},
    ),
    (clinic.Exported, (3,), {}),
    (clinic.Exported, (3, Path("day.csv"), "text", 2), {}),
    (clinic.SessionVersion, ("here", (("Patient", "JD-1"),), ("97110 14:30",), (), "2 units"), {}),
    (clinic.ConflictComparison, ("conflict", None, "incoming"), {"on_server": True}),
    (clinic.RunningPatient, (SESSION, (SEGMENT,)), {}),
    (clinic.ClinicRead, ((), ()), {}),
    (clinic.ClinicRead, (({"id": 1},), ("room 2",), ("kept",)), {"copies": {"a": {"b": 1}}}),
    (
        stopwatch.CodeTotal,
        ("97110", dt.timedelta(minutes=9), dt.timedelta(minutes=2), 9, 2, True),
        {},
    ),
    (stopwatch.RulesInput, (), {}),
    (stopwatch.RulesInput, ({"97110": 9}, {"97110": 2}, ["97161"], {"97161": 30}), {}),
    # Billing's and the store's records.
    (billing.SessionRows, (SESSION, "stopwatch", (), PROFILE), {}),
    (billing.SessionRows, (SESSION, "stopwatch", ("untimed",), PROFILE, PROBLEM), {}),
    (billing.Visit, (SESSION,), {}),
    (billing.Visit, (SESSION, AT, AT + dt.timedelta(minutes=23)), {}),
    (billing.ClaimDay, ((VISIT,), RESULT), {}),
    (billing.ClaimDay, ((VISIT, billing.Visit(SESSION)), RESULT, True, (PROBLEM,)), {}),
    (bundles.ImportOutcome, (("a",), ("b",), ()), {}),
    (
        bundles.ImportOutcome,
        (("a",), (), ({"id": "c"},)),
        {"why": {"c": "amended here"}, "kept": (4,)},
    ),
    (bundles.RecordBatch, (({"id": "a"},), "room 2", "bundle.json"), {}),
    (queries.WindowLease, (4242, "boot", "12345", AT), {}),
]


@pytest.mark.parametrize(("record", "args", "kwargs"), SAMPLES)
def test_a_model_record_behaves_as_its_generated_twin(
    record: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    test_frozen.test_a_record_behaves_as_its_generated_twin(record, args, kwargs)


def test_every_model_clinic_stopwatch_billing_and_store_record_is_sampled() -> None:
    from therapy_timer import model

    records = {
        value
        for module in (model, clinic, stopwatch, billing, bundles, queries)
        for value in vars(module).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == module.__name__
    }
    assert records == {record for record, _args, _kwargs in SAMPLES}


def test_a_claim_days_properties_read_its_fields_as_before() -> None:
    # ClaimDay keeps its properties: the hand-written __init__ must leave them what they were.
    day = billing.ClaimDay((VISIT, billing.Visit(SESSION)), RESULT, False, (PROBLEM,))
    assert day.sessions == (SESSION, SESSION) and day.pooled
    assert day.time_in == AT and day.time_out == AT + dt.timedelta(minutes=23)
    assert day.billed_session_ids == () and day.key == billing.day_key(SESSION)
    assert dataclasses.replace(day, problems=()).billed_session_ids == (SESSION.id, SESSION.id)


def test_each_import_outcome_gets_its_own_empty_reasons() -> None:
    first, second = bundles.ImportOutcome((), (), ()), bundles.ImportOutcome((), (), ())
    assert first.why == {} and first.why is not second.why


def test_each_rules_input_gets_its_own_empty_minutes() -> None:
    first, second = stopwatch.RulesInput(), stopwatch.RulesInput()
    assert first.timed == {} and first.untimed == [] and type(first.untimed) is list
    assert first.timed is not second.timed and first.untimed is not second.untimed
