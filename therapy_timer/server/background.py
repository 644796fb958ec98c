"""Pushing in the background: a thread that syncs every few seconds and when asked, and never
makes its caller (a window's timers) wait on the network."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from therapy_timer.errors import StorageUnavailable
from therapy_timer.server.sync import SyncReport

DEFAULT_INTERVAL_S = 10.0


class BackgroundSync:
    """Calls ``push`` every ``interval_s`` seconds, and at once after ``request()``.

    ``push`` runs in the worker thread and must open its own database connection there
    (SQLite connections belong to one thread). A server that is away is a ``problem`` to
    show, never an exception in the caller; the next round tries again.
    """

    def __init__(
        self, push: Callable[[], SyncReport], *, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self._push = push
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._last: SyncReport | None = None
        self._problem = ""
        self._rounds = 0
        self._thread = threading.Thread(target=self._run, name="clinic-sync", daemon=True)

    def start(self) -> BackgroundSync:
        self._thread.start()
        return self

    def request(self) -> None:
        """Sync now (e.g. a session was closed); returns at once."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the round under way, if any, and end the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def last_report(self) -> SyncReport | None:
        with self._lock:
            return self._last

    @property
    def problem(self) -> str:
        """Why the last round failed, in plain words; empty after a good one."""
        with self._lock:
            return self._problem

    @property
    def rounds(self) -> int:
        with self._lock:
            return self._rounds

    @property
    def last_sync_utc(self) -> datetime | None:
        report = self.last_report
        return None if report is None else report.at_utc

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                report = self._push()
            except StorageUnavailable as exc:  # server away, local disk trouble: say, retry
                with self._lock:
                    self._problem = str(exc)
                    self._rounds += 1
            else:
                with self._lock:
                    self._last = report
                    self._problem = ""
                    self._rounds += 1
            self._wake.wait(self._interval_s)
            self._wake.clear()
