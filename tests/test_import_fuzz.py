"""Adversarial bundles: mutations of a genuine export are refused plainly or imported correctly.

Never a traceback, never a half-written import, and whatever is imported passes the checks of a
session recorded here (one id form, strict dates, no overlapping treatment codes).
"""

from __future__ import annotations

import copy
import functools
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClock
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Role, builtin_catalogue
from therapy_timer.errors import InvalidInput
from therapy_timer.model import check_session_record, exclusive_clash, segment_of_record
from therapy_timer.store import DB_FILENAME, Store

CATALOGUE = builtin_catalogue()


@functools.cache
def genuine_bundle() -> str:
    """Two closed sessions (segments, furnished-by switches, an untimed service), as exported."""
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(Path(folder), clock=clock, actor="room") as store,
    ):
        clinic = Clinic(store, CATALOGUE, clock, actor="room")
        for patient, role in (("JD", Role.PT), ("AB", Role.PTA)):
            session = clinic.open_session(
                patient_ref=patient, clinician="Kim", role=role, payer_profile="Medicare"
            )
            clinic.start(session.id, "97110", FurnishedBy.THERAPIST)
            clock.advance(minutes=12)
            clinic.start(session.id, "97140", FurnishedBy.ASSISTANT)
            clock.advance(minutes=9)
            store.add_untimed(session.id, code="97161", minutes=30)
            clinic.end_session(session.id)
        records = store.session_records([s.id for s in store.list_sessions()])
        bundle = ex.make_bundle(records, workstation="room-2", now=clock.now())
    return json.dumps(bundle)


HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "20261120",
            "2026-W47-5",
            "2025-03-10T14:00:00",
            "2025-03-10T14:00:00+00:00",
            "2025-03-10T14:00:00Z",
            "2025-13-40",
            "=HYPERLINK(1)",
            " =1+1",
            "a\nb",
            "x" * 100_000,
            "97110",
            "99999",
            "open",
            "closed",
            "{00000000-0000-0000-0000-000000000000}",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the JSON tree, as a path of keys and indexes."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A genuine bundle changed in 1 to 4 places; returns its text and what was done."""
    bundle = json.loads(genuine_bundle())
    done: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["set", "delete", "respell_id", "overlap", "duplicate", "audit_other", "copy"]
            )
        )
        sessions = bundle.get("sessions")
        if not isinstance(sessions, list) or not sessions:
            break
        record = draw(st.sampled_from(sessions))
        if not isinstance(record, dict):
            continue
        if kind in ("set", "delete"):
            paths = [p for p in _paths(bundle) if p]
            path = draw(st.sampled_from(paths))
            parent: Any = bundle
            for key in path[:-1]:
                parent = parent[key]
            if kind == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(HOSTILE_VALUES)
            done.append(f"{kind} {path}")
        elif kind == "respell_id" and isinstance(record.get("id"), str):
            record["id"] = draw(st.sampled_from([record["id"].upper(), "{" + record["id"] + "}"]))
            done.append("respelt an id")
        elif kind == "overlap" and _list(record.get("segments"), 2):
            first, second = record["segments"][:2]
            if isinstance(first, dict) and isinstance(second, dict):
                second["start_utc"] = first.get("start_utc")
                done.append("overlapping segments")
        elif kind == "duplicate" and _list(record.get("segments"), 1):
            record["segments"].append(copy.deepcopy(record["segments"][0]))
            done.append("duplicate segment")
        elif kind == "audit_other" and isinstance(record.get("audit"), list):
            record["audit"].append(
                {
                    "id": 1,
                    "at_utc": "2025-03-10T15:00:00+00:00",
                    "actor": "x",
                    "action": "session.export",
                    "entity": "session",
                    "entity_id": draw(st.uuids()).hex,
                    "before": None,
                    "after": {"exported": True},
                    "reason": "",
                }
            )
            done.append("audit about another session")
        elif kind == "copy":
            sessions.append(copy.deepcopy(record))
            done.append("the same session twice")
    return json.dumps(bundle), done


def _list(value: object, at_least: int) -> bool:
    """An earlier mutation may have made it anything: only mutate what is still a list."""
    return isinstance(value, list) and len(value) >= at_least


def _counts(path: Path) -> tuple[int, ...]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM segments),"
            " (SELECT count(*) FROM untimed_services), (SELECT count(*) FROM audit_log),"
            " (SELECT count(*) FROM import_conflicts), (SELECT count(*) FROM payer_profiles)"
        ).fetchone()
        return tuple(int(v) for v in row)
    finally:
        conn.close()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_a_mutated_bundle_is_refused_plainly_or_imported_correctly(
    case: tuple[str, list[str]],
) -> None:
    text, done = case
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as folder:
        desk_dir = Path(folder) / "desk"
        bundle_path = Path(folder) / "hostile.json"
        bundle_path.write_text(text)
        with Store.open(desk_dir, clock=clock, actor="desk") as desk:
            before = _counts(desk_dir / DB_FILENAME)
            clinic = Clinic(desk, CATALOGUE, clock, actor="desk")
            try:
                report = clinic.import_bundles([bundle_path])
            except InvalidInput as exc:
                message = str(exc)
                assert "hostile.json" in message, (done, message)
                assert "\n" not in message and len(message) < 600, (done, message[:300])
                assert _counts(desk_dir / DB_FILENAME) == before, done  # nothing half-written
                event("refused")
                return
            event("imported")
            # Imported: every stored session passes the checks of one recorded here.
            sessions = desk.list_sessions()
            assert len({s.id for s in sessions}) == len(sessions)
            assert len(sessions) == len(report.added), done
            for record in desk.session_records([s.id for s in sessions]):
                checked = check_session_record(record, "stored")
                assert checked["id"] == record["id"]
                times = [segment_of_record(s, checked["id"]) for s in checked["segments"]]
                assert exclusive_clash(times) is None, done
            # And the same file again changes nothing.
            again = clinic.import_bundles([bundle_path])
            assert not again.added, done
