"""Test doubles shared by the test modules: a FakeClock that only moves when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2025, 3, 10, 14, 0, 0, tzinfo=UTC)


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
