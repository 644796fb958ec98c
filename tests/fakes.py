"""Test doubles shared by the test modules: a FakeClock that only moves when told to, and
segments as a stopwatch makes them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from therapy_timer.codes import FurnishedBy
from therapy_timer.model import Segment

DEFAULT_START = datetime(2025, 3, 10, 14, 0, 0, tzinfo=UTC)

NEW_YORK = ZoneInfo("America/New_York")
"""The local zone of tests that set one (conftest.new_york): its days and times are not UTC's."""


class FakeClock:
    """A Clock set by the test: ``advance`` moves it, ``set`` may move it backwards."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = _require_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, minutes: float = 0, seconds: float = 0) -> datetime:
        """Move forward (or backward, with negative values) and return the new time."""
        self._now += timedelta(minutes=minutes, seconds=seconds)
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to any moment, earlier ones included (a user or NTP changing the clock)."""
        self._now = _require_utc(moment)


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("FakeClock needs a timezone-aware datetime")
    return moment.astimezone(UTC)


def new_segment(
    session_id: str,
    code: str,
    start: datetime,
    *,
    by: FurnishedBy = FurnishedBy.THERAPIST,
    exclusive: bool = True,
    segment_id: str | None = None,
) -> Segment:
    """A running segment as a stopwatch opens it (a fresh id unless one is given), for tests
    that write stopwatch steps straight to the store."""
    return Segment(segment_id or uuid.uuid4().hex, session_id, code, by, exclusive, start, None)


def ended(store: SegmentReader, segment_id: str, stop: datetime) -> Segment:
    """A stored segment as a stopwatch closes it at ``stop``."""
    return replace(store.get_segment(segment_id), stop_utc=stop)


class SegmentReader(Protocol):
    def get_segment(self, segment_id: str) -> Segment: ...
