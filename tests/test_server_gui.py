"""The window's background sync against a real PostgreSQL the tests start: a tap never waits
for the server (not even one that has stopped answering), every close is pushed, and the
status bar says when the station last synced or that the server is away."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel

from tests.fakes import FakeClock
from tests.gui_support import Bot, Rig, build, end_with_ctrl_c, type_patient
from tests.server_support import MORNING, Cluster, Server, Station
from therapy_timer.clinic import Clinic
from therapy_timer.gui.clinic_sync import ClinicSync, SyncView, sync_view
from therapy_timer.server import BackgroundSync, SyncReport

LEFT = Qt.MouseButton.LeftButton
CTRL = Qt.KeyboardModifier.ControlModifier
SHOTS = (
    Path(os.environ.get("THERAPY_TIMER_SHOTS", ""))
    if os.environ.get("THERAPY_TIMER_SHOTS")
    else None
)


@pytest.fixture
def rig(qtbot: Bot, tmp_path: Path, clinic_server: Server) -> Iterator[Rig]:
    with Clinic.open(tmp_path) as here:
        here.connect_server(clinic_server.dsn("ws_room1"))
    yield from build(qtbot, tmp_path, FakeClock(MORNING))


@pytest.fixture
def sync(qtbot: Bot, rig: Rig) -> Iterator[ClinicSync]:
    attached = ClinicSync.attach(rig.service, rig.controller, rig.window, interval_s=0.2)
    assert attached is not None
    attached.start()
    qtbot.waitUntil(lambda: attached.worker is not None and "synced" in attached.label.text())
    try:
        yield attached
    finally:
        assert attached.finish(timeout_s=10)


def _sessions_on(server: Server) -> int:
    return int(server.one("SELECT count(*) FROM therapy_timer.sessions"))


class _Bot(Bot, Protocol):
    def wait(self, ms: int) -> None: ...


def _hanging(qtbot: _Bot, worker: BackgroundSync) -> int:
    """Wait for a round that stays under way (a round that reached the server before it froze
    ends in milliseconds); the number of rounds finished before it."""
    for _ in range(20):
        qtbot.waitUntil(lambda: worker.busy, timeout=5000)
        before = worker.rounds
        qtbot.wait(500)
        if worker.busy and worker.rounds == before:
            return before
    raise AssertionError("no sync round waited on the frozen server")


def _postmaster(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().splitlines()[0])


def test_a_tap_never_waits_for_a_server_that_stopped_answering(
    qtbot: _Bot, rig: Rig, sync: ClinicSync, clinic_server: Server
) -> None:
    worker = sync.worker
    assert worker is not None
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=20)
    postmaster = _postmaster(clinic_server.cluster)
    # A frozen postmaster accepts connections (the kernel does) and never answers them: a
    # sync round now waits on the network until libpq gives up.
    os.kill(postmaster, signal.SIGSTOP)
    try:
        sync.request()
        round_under_way = _hanging(qtbot, worker)
        qtbot.mouseClick(rig.tile("97140"), LEFT)
        # The tap is recorded while that very round is still waiting on the server.
        assert (worker.busy, worker.rounds) == (True, round_under_way)
        (running,) = rig.store.open_segments()
        assert running.code == "97140"
        assert rig.tile("97140").view.state.value == "running"
        rig.clock.advance(minutes=10)
        end_with_ctrl_c(qtbot, rig)  # a close asks for a push; the window does not wait
        assert not rig.store.list_sessions()[0].is_open
        assert (worker.busy, worker.rounds) == (True, round_under_way)
    finally:
        os.kill(postmaster, signal.SIGCONT)
    # Awake again, the server gets the closed session and the window says so.
    qtbot.waitUntil(lambda: _sessions_on(clinic_server) == 1, timeout=20_000)
    qtbot.waitUntil(lambda: sync.label.text().startswith("Clinic server: synced"), timeout=5000)
    assert not sync.view.warning


def test_the_window_says_the_server_is_away_and_catches_up_when_it_is_back(
    qtbot: Bot, rig: Rig, sync: ClinicSync, clinic_server: Server
) -> None:
    clinic_server.cluster.stop()
    try:
        sync.request()
        qtbot.waitUntil(lambda: "unreachable" in sync.label.text(), timeout=10_000)
        assert sync.view.warning and "cannot be reached" in sync.label.toolTip()
        local = MORNING.astimezone().strftime("%H:%M")  # the FakeClock's moment of the last sync
        assert f"last synced {local}" in sync.label.text()
        # Recording goes on: a whole session, treated and closed while the server is down.
        type_patient(qtbot, rig)
        qtbot.mouseClick(rig.tile("97110"), LEFT)
        rig.clock.advance(minutes=25)
        end_with_ctrl_c(qtbot, rig)
        if SHOTS is not None:
            rig.window.resize(1024, 600)
            rig.window.grab().save(str(SHOTS / "clinic-sync-unreachable-1024x600.png"))
            rig.window.resize(1366, 768)
            rig.window.grab().save(str(SHOTS / "clinic-sync-unreachable-1366x768.png"))
    finally:
        clinic_server.cluster.start()
    qtbot.waitUntil(lambda: _sessions_on(clinic_server) == 1, timeout=20_000)
    qtbot.waitUntil(lambda: sync.label.text().startswith("Clinic server: synced"), timeout=5000)
    assert sync.label.toolTip() == ""
    if SHOTS is not None:
        rig.window.grab().save(str(SHOTS / "clinic-sync-synced-1366x768.png"))


def test_without_a_clinic_server_the_window_has_no_sync(qtbot: Bot, tmp_path: Path) -> None:
    for rig in build(qtbot, tmp_path):
        assert ClinicSync.attach(rig.service, rig.controller, rig.window) is None
        assert rig.window.findChild(QLabel, "clinic-sync-status") is None


def test_the_app_syncs_in_the_background_and_once_more_when_it_quits(
    qtbot: Bot, tmp_path: Path, clinic_server: Server
) -> None:
    from therapy_timer.gui.app import run
    from therapy_timer.gui.main_window import MainWindow

    station = Station(tmp_path)
    station("clinic", "connect", clinic_server.dsn("ws_room1"))
    station.treat("MRN1", "Pat", "pt", {"97110": 30})  # closed before the window opens
    seen: list[str] = []

    def look() -> None:
        shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        label = shown[0].findChild(QLabel, "clinic-sync-status") if shown else None
        if label is None or not label.text().startswith("Clinic server: synced"):
            return
        poll.stop()
        seen.append(label.text())
        station.treat("MRN2", "Pat", "pt", {"97112": 20})  # closed elsewhere as it quits
        shown[0].close()

    # Timers of the test's own, stopped when run() returns: a pending one would fire in a later
    # test, and an exit() outside exec() ends every later event loop at once.
    poll = QTimer()
    poll.timeout.connect(look)
    poll.start(50)
    never_hang = QTimer()
    never_hang.setSingleShot(True)
    never_hang.timeout.connect(lambda: QApplication.exit(1))
    never_hang.start(30_000)
    saved = sys.excepthook
    try:
        status = run(tmp_path, clock=station.clock, show_error=lambda *shown: seen.extend(shown))
    finally:
        poll.stop()
        never_hang.stop()
        sys.excepthook = saved
    assert status == 0 and len(seen) == 1, seen
    assert _sessions_on(clinic_server) == 2


def test_a_disconnect_made_elsewhere_is_said_calmly_and_a_connect_resumes(
    qtbot: Bot,
    rig: Rig,
    sync: ClinicSync,
    clinic_server: Server,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # 'clinic disconnect' run from a command while the window was open: each round then
    # printed an InvalidOperation traceback to stderr and the status bar said in red
    # 'Clinic server refused the sync', every 5 seconds until the window was closed.
    station = Station(tmp_path)
    station("clinic", "disconnect")
    qtbot.waitUntil(lambda: "disconnected" in sync.label.text(), timeout=10_000)
    assert sync.label.text() == "Clinic server: disconnected here (clinic connect to sync again)"
    assert not sync.view.warning
    station("clinic", "connect", clinic_server.dsn("ws_room1"))
    qtbot.waitUntil(lambda: sync.label.text().startswith("Clinic server: synced"), timeout=10_000)
    assert "Traceback" not in capfd.readouterr().err


def test_the_status_line_keeps_saying_a_version_waits_for_the_desk(
    qtbot: Bot, rig: Rig, sync: ClinicSync, clinic_server: Server
) -> None:
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=30)
    end_with_ctrl_c(qtbot, rig)
    qtbot.waitUntil(lambda: _sessions_on(clinic_server) == 1, timeout=20_000)
    # Another station already put another version of it on the server: it is kept aside.
    with clinic_server.admin() as conn:
        conn.execute(
            "INSERT INTO therapy_timer.conflicts (workstation, session_id, content_hash, why,"
            " record) SELECT workstation, id, 'other', 'test', record FROM therapy_timer.sessions"
        )
    rounds = sync.worker.rounds if sync.worker else 0
    qtbot.waitUntil(lambda: sync.worker is not None and sync.worker.rounds >= rounds + 2)
    assert sync.label.text().endswith("1 session kept aside for the desk") and sync.view.warning
    with clinic_server.admin() as conn:
        conn.execute("UPDATE therapy_timer.conflicts SET resolved_utc = now()")
    qtbot.waitUntil(lambda: "kept aside" not in sync.label.text(), timeout=10_000)


# -- without a server ---------------------------------------------------------------------------


def test_quitting_pushes_once_more_after_the_round_under_way() -> None:
    pushed: list[int] = []
    first_round = threading.Event()

    def push() -> SyncReport:
        pushed.append(1)
        first_round.set()
        return SyncReport(at_utc=datetime(2025, 3, 10, tzinfo=UTC))

    worker = BackgroundSync(push, interval_s=3600).start()
    assert first_round.wait(10)
    assert worker.stop(10, last_round=True)
    assert len(pushed) == 2  # the first round, then the last one asked for by quitting
    quiet = BackgroundSync(push, interval_s=3600).start()
    assert quiet.stop(10)
    assert len(pushed) == 3  # without last_round: only the round it started with


def test_a_round_left_behind_on_a_hung_server_never_calls_back_after_stop() -> None:
    release = threading.Event()
    called: list[int] = []

    def hung() -> SyncReport:
        release.wait(10)  # a server that does not answer, until the test lets it
        return SyncReport(at_utc=datetime(2025, 3, 10, tzinfo=UTC))

    worker = BackgroundSync(hung, interval_s=3600, on_round=lambda: called.append(1)).start()
    assert not worker.stop(0.2, last_round=True)  # the window quits; the round is still hung
    release.set()
    deadline = time.monotonic() + 10
    while worker.rounds < 2 and time.monotonic() < deadline:  # the hung round, then the last
        time.sleep(0.01)
    assert worker.rounds == 2 and called == []


def test_a_bug_in_a_round_is_a_problem_to_show_and_the_next_round_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[int] = []
    done = threading.Event()

    def push() -> SyncReport:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("surprise")
        done.set()
        return SyncReport(at_utc=datetime(2025, 3, 10, tzinfo=UTC))

    worker = BackgroundSync(push, interval_s=0.05).start()
    assert done.wait(10)
    worker.stop(10)
    assert worker.problem == "" and worker.rounds >= 2
    assert "KeyError" in capsys.readouterr().err


_AT = datetime(2025, 3, 10, 15, 42, tzinfo=UTC)
_HM = _AT.astimezone().strftime("%H:%M")


@pytest.mark.parametrize(
    ("last", "problem", "unreachable", "kept", "busy", "want"),
    [
        (None, "", False, 0, True, SyncView("Clinic server: syncing…", "", False)),
        (None, "", False, 0, False, SyncView("Clinic server: not synced yet", "", False)),
        (_AT, "", False, 0, False, SyncView(f"Clinic server: synced {_HM}", "", False)),
        (
            _AT,
            "the clinic server cannot be reached: timeout",
            True,
            0,
            False,
            SyncView(
                f"Clinic server unreachable · last synced {_HM} · recording continues here",
                "the clinic server cannot be reached: timeout",
                True,
            ),
        ),
        (
            None,
            "x",
            True,
            0,
            False,
            SyncView(
                "Clinic server unreachable · last synced never · recording continues here",
                "x",
                True,
            ),
        ),
        (
            _AT,
            "the clinic server refused: permission denied",
            False,
            0,
            False,
            SyncView(
                f"Clinic server refused the sync · last synced {_HM}",
                "the clinic server refused: permission denied",
                True,
            ),
        ),
    ],
)
def test_the_status_line(
    last: datetime | None, problem: str, unreachable: bool, kept: int, busy: bool, want: SyncView
) -> None:
    got = sync_view(
        last_sync_utc=last, problem=problem, unreachable=unreachable, kept_aside=kept, busy=busy
    )
    assert got == want


def test_the_status_line_counts_sessions_kept_aside() -> None:
    one = sync_view(last_sync_utc=_AT, problem="", unreachable=False, kept_aside=1, busy=False)
    two = sync_view(last_sync_utc=_AT, problem="", unreachable=False, kept_aside=2, busy=False)
    assert one.text.endswith("1 session kept aside for the desk") and one.warning
    assert two.text.endswith("2 sessions kept aside for the desk")
    assert "clinic conflicts" in one.details


def test_the_status_line_of_the_desk() -> None:
    calm = sync_view(
        last_sync_utc=None, problem="", unreachable=False, kept_aside=0, busy=False, desk=True
    )
    assert calm == SyncView("Clinic server: the front desk (reads every workstation)", "", False)
    kept = sync_view(
        last_sync_utc=None,
        problem="",
        unreachable=False,
        kept_aside=0,
        busy=False,
        desk=True,
        not_sent=2,
    )
    assert kept.warning and "2 session(s) recorded here are not on it" in kept.text
    assert "own export" in kept.details
