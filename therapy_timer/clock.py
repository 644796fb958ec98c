"""The source of the current time: Clock protocol and SystemClock, the only reader of real time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that can tell the current moment as a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The operating system's wall clock, in UTC.

    Wall time, not a monotonic counter, because elapsed time must survive restarts and suspends:
    segments store absolute timestamps and the stopwatch clamps when this clock jumps backwards.
    """

    def now(self) -> datetime:
        return datetime.now(UTC)
