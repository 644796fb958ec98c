"""Two processes on one database, and a process killed in the middle of its writes."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue
from typing import cast

import pytest

from tests.fakes import ended, new_segment
from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, Role
from therapy_timer.errors import InvalidOperation
from therapy_timer.model import AuditEntry, Change
from therapy_timer.store import Store

ROUNDS = 25
NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


def _race(
    data: str,
    plan: list[tuple[str, str | None]],
    code: str,
    barrier: Barrier,
    results: Queue[list[str]],
) -> None:
    """Child process: for each session, at the same moment as the rival, start ``code``."""
    wins: list[str] = []
    with Store.open(Path(data), clock=SystemClock()) as store:
        for session_id, running in plan:
            stops = () if running is None else (ended(store, running, NOW),)
            change = Change(session_id, closed=stops, opened=(new_segment(session_id, code, NOW),))
            barrier.wait(timeout=30)
            try:
                store.apply_stopwatch_change(change)
                wins.append(session_id)
            except InvalidOperation:
                pass
    results.put(wins)


@pytest.mark.parametrize("switch", [False, True], ids=["start", "switch"])
def test_two_processes_never_leave_two_treatment_codes_running(
    tmp_path: Path, switch: bool
) -> None:
    data = tmp_path / "data"
    plan: list[tuple[str, str | None]] = []
    with Store.open(data, clock=SystemClock()) as store:
        for i in range(ROUNDS):
            session = store.create_session(
                date_of_service=date(2025, 3, 10),
                patient_ref=f"P{i}",
                clinician="Pat Lee",
                role=Role.PT,
                discipline=Discipline.PT,
                payer_profile="Medicare",
            )
            running = None
            if switch:
                opened = new_segment(session.id, "97530", NOW)
                store.apply_stopwatch_change(Change(session.id, opened=(opened,)))
                running = opened.id
            plan.append((session.id, running))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results: Queue[list[str]] = ctx.Queue()  # type: ignore[assignment]
    racers = [
        ctx.Process(target=_race, args=(str(data), plan, code, barrier, results))
        for code in ("97110", "97140")
    ]
    for racer in racers:
        racer.start()
    wins = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(timeout=30)
        assert racer.exitcode == 0
    # Every session has exactly one winner, and exactly one treatment code running.
    assert sorted(wins[0] + wins[1]) == sorted(s for s, _ in plan)
    with Store.open(data, clock=SystemClock()) as store:
        for session_id, _ in plan:
            running_codes = [s.code for s in store.open_segments(session_id) if s.exclusive]
            assert len(running_codes) == 1
            assert running_codes[0] in ("97110", "97140")


_WRITER = """
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.model import Change, Segment
from therapy_timer.store import Store
import uuid
from dataclasses import replace

store = Store.open(Path(sys.argv[1]), clock=SystemClock())
session = store.create_session(date_of_service=date(2025, 3, 10), patient_ref="K9",
    clinician="Pat Lee", role=Role.PT, discipline=Discipline.PT, payer_profile="Medicare")
at = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
def opening(code, at):
    return Segment(uuid.uuid4().hex, session.id, code, FurnishedBy.THERAPIST, True, at, None)
running = opening("97110", at)
store.apply_stopwatch_change(Change(session.id, opened=(running,)))
print("ready", flush=True)
codes = ["97140", "97110"]
i = 0
while True:
    at += timedelta(seconds=1)
    following = opening(codes[i % 2], at)
    store.apply_stopwatch_change(Change(session.id, closed=(replace(running, stop_utc=at),),
        opened=(following,)), action="switch")
    running = following
    i += 1
"""


def _audited_ids(entries: list[AuditEntry], key: str) -> list[str]:
    ids: list[str] = []
    for entry in entries:
        segments = cast(list[dict[str, object]], (entry.after or {}).get(key, []))
        ids.extend(str(segment["id"]) for segment in segments)
    return ids


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_sigkill_during_writes_loses_no_committed_change(tmp_path: Path, delay: float) -> None:
    data = tmp_path / "data"
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(data)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with Store.open(data, clock=SystemClock()) as store:
        store.check_integrity()
        (session,) = store.list_sessions()
        segments = store.segments(session.id)
        entries = store.audit_entries(entity="session", entity_id=session.id)
        started = _audited_ids(entries, "started")
        stopped = _audited_ids(entries, "stopped")
        # Each change landed whole with its audit entry, or not at all.
        assert sorted(started) == sorted(s.id for s in segments)
        assert sorted(stopped) == sorted(s.id for s in segments if not s.running)
        assert [s.running for s in segments].count(True) == 1
        assert len(segments) > 1
