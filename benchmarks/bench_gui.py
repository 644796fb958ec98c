"""Window benchmarks: --smoke-test ready_ms against a bare QMainWindow, CPU with a timer running."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
GUI_ENTRY = "import sys; from therapy_timer.gui.app import main; main(sys.argv[1:])"
"""What the therapy-timer-gui script runs (the desktop file's Exec)."""
ENV.pop("THERAPY_TIMER_DATA_DIR", None)


def _child(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=ENV, check=True
    )
    return done.stdout.strip().splitlines()[-1]


# -- children (run in their own process) ------------------------------------------------------


def child_count_buttons(data_dir: str) -> None:
    """How many buttons the real window has, so the bare window gets as many."""
    from PySide6.QtWidgets import QAbstractButton, QApplication

    from therapy_timer.clinic import Clinic
    from therapy_timer.clock import SystemClock
    from therapy_timer.codes import builtin_catalogue
    from therapy_timer.gui.controller import SessionController
    from therapy_timer.gui.main_window import MainWindow
    from therapy_timer.store import Store

    app = QApplication([])
    clock = SystemClock()
    with Store.open(Path(data_dir), clock=clock) as store:
        service = Clinic(store, builtin_catalogue(), clock)
        controller = SessionController(service)
        controller.load()
        window = MainWindow(controller)
        print(len(window.findChildren(QAbstractButton)))
        window.deleteLater()
    app.processEvents()


def child_bare(buttons: int) -> None:
    """A bare QMainWindow with ``buttons`` push buttons, timed like ``--smoke-test``."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QGridLayout, QMainWindow, QPushButton, QWidget

    started = time.perf_counter()
    app = QApplication([])
    window = QMainWindow()
    central = QWidget()
    grid = QGridLayout(central)
    for i in range(buttons):
        grid.addWidget(QPushButton(f"Button {i}"), i // 6, i % 6)
    window.setCentralWidget(central)
    result: dict[str, float] = {}

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not result:
                result["ready_ms"] = -1

                def done() -> None:
                    result["ready_ms"] = round((time.perf_counter() - started) * 1000, 1)
                    app.exit(0)

                QTimer.singleShot(0, done)
            return False

    watcher = FirstPaint()
    window.installEventFilter(watcher)
    window.show()
    app.exec()
    print(json.dumps(result))


def child_cpu(data_dir: str, seconds: float) -> None:
    """Run the real window with a stopwatch running; print the CPU seconds it used."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from therapy_timer.clinic import Clinic
    from therapy_timer.clock import SystemClock
    from therapy_timer.codes import builtin_catalogue
    from therapy_timer.gui.controller import Draft, SessionController
    from therapy_timer.gui.main_window import MainWindow
    from therapy_timer.store import Store

    app = QApplication([])
    clock = SystemClock()
    catalogue = builtin_catalogue()
    with Store.open(Path(data_dir), clock=clock) as store:
        service = Clinic(store, catalogue, clock)
        controller = SessionController(service)
        controller.load()
        window = MainWindow(controller)
        window.show()
        controller.start_background()
        controller.set_draft(Draft(patient_ref="JD-1", clinician="Bench", payer_profile="Medicare"))
        controller.start_code("97110")
        controller.start_code("97012")  # a supervised modality beside it
        repaints = 0

        def count() -> None:
            nonlocal repaints
            repaints += 1

        controller.view_changed.connect(count)
        app.processEvents()
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        # exit(), not quit(): quit() asks the window to close, which it refuses while timing.
        QTimer.singleShot(int(seconds * 1000), lambda: app.exit(0))
        app.exec()
        after = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - wall
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        controller.stop_background()
        window.hide()
        print(json.dumps({"cpu_s": round(cpu, 3), "wall_s": round(wall, 2), "views": repaints}))


# -- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    # Whole-process figures must not include compiling the package (PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "therapy_timer", quiet=1)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU measurement length")
    parser.add_argument("--runs", type=int, default=5, help="start-ups of each window")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "count":
            child_count_buttons(rest[0])
        elif kind == "bare":
            child_bare(int(rest[0]))
        elif kind == "cpu":
            child_cpu(rest[0], float(rest[1]))
        return

    with tempfile.TemporaryDirectory() as folder:
        buttons = int(_child("--child", "count", folder))
        # The desktop file launches therapy-timer-gui (gui.app.main); `therapy-timer` with no
        # command opens the same window through click.
        starts = {
            "therapy-timer-gui": [sys.executable, "-c", GUI_ENTRY, "--data-dir", folder],
            "therapy-timer": [sys.executable, "-m", "therapy_timer", "--data-dir", folder],
        }
        ready: dict[str, list[float]] = {name: [] for name in (*starts, "bare")}
        wall: dict[str, list[float]] = {name: [] for name in (*starts, "bare")}
        for _ in range(args.runs):  # interleaved, so all see the same machine load
            for name, command in starts.items():
                t0 = time.perf_counter()
                done = subprocess.run(
                    [*command, "--smoke-test"], capture_output=True, text=True, env=ENV, check=True
                )
                wall[name].append((time.perf_counter() - t0) * 1000)
                ready[name].append(json.loads(done.stdout.strip().splitlines()[-1])["ready_ms"])
            t0 = time.perf_counter()
            ready["bare"].append(json.loads(_child("--child", "bare", str(buttons)))["ready_ms"])
            wall["bare"].append((time.perf_counter() - t0) * 1000)
        print(f"buttons in the window: {buttons}; {args.runs} interleaved runs")
        base_ready, base_wall = statistics.median(ready["bare"]), statistics.median(wall["bare"])
        print(
            f"bare QMainWindow: ready_ms median {base_ready:.1f}; whole process median"
            f" {base_wall:.0f} ms, min {min(wall['bare']):.0f} ms"
        )
        for name in starts:
            mid, mid_ready = statistics.median(wall[name]), statistics.median(ready[name])
            print(
                f"{name}: ready_ms (QApplication to first paint) median"
                f" {mid_ready:.1f} ({mid_ready / base_ready:.2f}"
                f" x bare); whole process (interpreter start to exit) median {mid:.0f} ms"
                f" ({mid / base_wall:.2f} x bare), min {min(wall[name]):.0f} ms"
                f" ({min(wall[name]) / min(wall['bare']):.2f} x bare)"
            )

    with tempfile.TemporaryDirectory() as folder:
        cpu = json.loads(_child("--child", "cpu", folder, str(args.seconds)))
        share = 100 * cpu["cpu_s"] / cpu["wall_s"]
        print(
            f"CPU with a stopwatch running for {cpu['wall_s']} s: {cpu['cpu_s']} s "
            f"({share:.2f}% of one core), {cpu['views']} view updates"
        )


if __name__ == "__main__":
    main()
