"""Pushing in the background: a thread that syncs every few seconds and when asked, and never
makes its caller (a window's timers) wait on the network."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from datetime import datetime

from therapy_timer.errors import OutputRefused, StorageUnavailable
from therapy_timer.server.connection import (
    ServerRecordsRefused,
    ServerRefused,
    ServerUnavailable,
    ServerVersionError,
)
from therapy_timer.server.sync import SyncReport

DEFAULT_INTERVAL_S = 10.0


class BackgroundSync:
    """Calls ``push`` every ``interval_s`` seconds, and at once after ``request()``.

    ``push`` runs in the worker thread and must open its own database connection there
    (SQLite connections belong to one thread). A server that is away is a ``problem`` to
    show, never an exception in the caller; the next round tries again. ``on_round`` is
    called in the worker thread after each round (a window queues a repaint from it). Every
    reading property takes a lock that is never held across the network, so a caller never
    waits for a round under way.
    """

    def __init__(
        self,
        push: Callable[[], SyncReport],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self._push = push
        self._interval_s = interval_s
        self._on_round = on_round
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_round = False
        self._lock = threading.Lock()
        self._callback_lock = threading.Lock()
        self._last: SyncReport | None = None
        self._problem = ""
        self._unreachable = False
        self._here = False
        self._busy = False
        self._rounds = 0
        self._thread = threading.Thread(target=self._run, name="clinic-sync", daemon=True)

    def start(self) -> BackgroundSync:
        self._thread.start()
        return self

    def request(self) -> None:
        """Sync now (e.g. a session was closed); returns at once."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0, *, last_round: bool = False) -> bool:
        """End the thread after the round under way, if any, and with ``last_round`` after one
        more (what changed since, e.g. a session closed as the window quits); waits at most
        ``timeout_s``. Whether the thread ended: a server that hangs leaves it behind (it is a
        daemon, and what it did not push the next start pushes)."""
        self._last_round = last_round
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        # A thread left behind on a hung server must never call back into a caller that is
        # gone (a closed window's objects): once this returns, ``on_round`` is not called.
        with self._callback_lock:
            self._on_round = None
        return not self._thread.is_alive()

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
    def unreachable(self) -> bool:
        """Whether the last round failed because the server could not be reached."""
        with self._lock:
            return self._unreachable

    @property
    def here(self) -> bool:
        """Whether the last round failed on this computer (its disk, its database), not at
        the server."""
        with self._lock:
            return self._here

    @property
    def busy(self) -> bool:
        """Whether a round is under way (waiting on the server, perhaps)."""
        with self._lock:
            return self._busy

    @property
    def rounds(self) -> int:
        with self._lock:
            return self._rounds

    @property
    def last_sync_utc(self) -> datetime | None:
        report = self.last_report
        return None if report is None else report.at_utc

    def _run(self) -> None:
        while True:
            self._round()
            if not self._stopping.is_set():
                self._wake.wait(self._interval_s)
                self._wake.clear()
            if self._stopping.is_set():
                if self._last_round:
                    self._round()
                return

    def _round(self) -> None:
        with self._lock:
            self._busy = True
        report: SyncReport | None = None
        problem = ""
        away = here = False
        try:
            report = self._push()
        except (StorageUnavailable, OutputRefused) as exc:  # server away, disk full: say, retry
            problem, away = str(exc), isinstance(exc, ServerUnavailable)
            here = not isinstance(
                exc, (ServerUnavailable, ServerRefused, ServerVersionError, ServerRecordsRefused)
            )
        except Exception as exc:  # a bug: printed for support, never a silently dead thread
            traceback.print_exception(exc, file=sys.stderr)
            problem = f"the sync failed ({type(exc).__name__}: {exc}); it is tried again"
        with self._lock:
            if report is not None:
                self._last = report
            self._problem = problem
            self._unreachable = away
            self._here = here
            self._busy = False
            self._rounds += 1
        with self._callback_lock:
            if self._on_round is not None:
                self._on_round()
