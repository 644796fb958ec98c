"""Window start against a bare QMainWindow with as many buttons; CPU with a timer running.

Run: .venv/bin/python benchmarks/bench_gui.py [--runs N] [--no-cpu]

Each start is a whole process, offscreen: the window as the desktop file starts it (the installed
``therapy-timer-gui`` script) and through ``therapy-timer``, interleaved with a bare QMainWindow
in a minimal process of its own (bare_window.py). Every child prints the wall clock at its first
paint; the figures count from the moment this process spawned it (first paint and exit), with the
child's CPU time beside them; min and median. Bytecode is compiled first (this machine may set
PYTHONDONTWRITEBYTECODE, which would otherwise make every start compile the package).
"""

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
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
"""Where the installed console scripts are (the virtual environment's bin)."""
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
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


def timed_start(command: Sequence[str]) -> tuple[float, float, float]:
    """Spawn a window process that prints ``painted_at`` (wall clock at first paint) and exits.

    Spawn to first paint, spawn to exit, and the child's CPU time (user + system, which does
    not count waiting for a shared core), all in ms.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    done = subprocess.run(list(command), capture_output=True, text=True, env=ENV, check=True)
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    painted_at = json.loads(done.stdout.strip().splitlines()[-1])["painted_at"]
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return (painted_at - spawned) * 1000, (ended - spawned) * 1000, cpu * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU measurement length")
    parser.add_argument("--runs", type=int, default=11, help="start-ups of each window")
    parser.add_argument("--no-cpu", action="store_true", help="skip the stopwatch CPU run")
    parser.add_argument(
        "--also",
        type=Path,
        metavar="DIR",
        help="time another checkout's therapy-timer-gui start (e.g. a git worktree of the code"
        " before a change) in the same runs, and this one started the same way",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "count":
            child_count_buttons(rest[0])
        elif kind == "cpu":
            child_cpu(rest[0], float(rest[1]))
        return

    # Whole-process figures must not include compiling the package (PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(ROOT / "therapy_timer", quiet=1)
    with tempfile.TemporaryDirectory() as folder:
        buttons = int(_child("--child", "count", folder))
        # The desktop file launches the therapy-timer-gui script; `therapy-timer` with no
        # command opens the same window through click. Both as installed (console scripts).
        starts: dict[str, list[str]] = {
            name: [str(BIN / name), "--data-dir", folder, "--smoke-test"]
            for name in ("therapy-timer-gui", "therapy-timer")
        }
        # The baseline in a process of its own that imports only what the window needs.
        starts["bare"] = [sys.executable, str(ROOT / "benchmarks" / "bare_window.py"), str(buttons)]
        if args.also is not None:  # before/after under the same load: both started alike
            compileall.compile_dir(args.also / "therapy_timer", quiet=1)
            for name, checkout in (("gui, this (-c)", ROOT), ("gui, --also (-c)", args.also)):
                starts[name] = [
                    sys.executable,
                    "-c",
                    f"import sys; sys.path.insert(0, {str(checkout)!r}); "
                    "from therapy_timer.gui.launch import main; main(sys.argv[1:])",
                    "--data-dir",
                    folder,
                    "--smoke-test",
                ]
        for command in starts.values():  # warm the disk cache (and make the database) first
            timed_start(command)
        figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in starts}
        names = list(starts)
        for run in range(args.runs):  # interleaved, in a rotating order, so all see the same load
            for name in names[run % len(names) :] + names[: run % len(names)]:
                figures[name].append(timed_start(starts[name]))
        print(
            f"buttons in the window: {buttons}; {args.runs} interleaved runs; ms from spawn;"
            " ratio to the bare window's figure in brackets"
        )
        what = ("first paint", "exit", "CPU")
        for name, runs in figures.items():
            parts = []
            for i, label in enumerate(what):
                values = [r[i] for r in runs]
                base = [r[i] for r in figures["bare"]]
                lo, mid = min(values), statistics.median(values)
                text = f"{label} min {lo:.0f} median {mid:.0f}"
                if name != "bare":
                    text += f" ({lo / min(base):.2f}x / {mid / statistics.median(base):.2f}x)"
                parts.append(text)
            print(f"{name:>17}: " + "; ".join(parts))

    if args.no_cpu:
        return
    with tempfile.TemporaryDirectory() as folder:
        cpu = json.loads(_child("--child", "cpu", folder, str(args.seconds)))
        share = 100 * cpu["cpu_s"] / cpu["wall_s"]
        print(
            f"CPU with a stopwatch running for {cpu['wall_s']} s: {cpu['cpu_s']} s "
            f"({share:.2f}% of one core), {cpu['views']} view updates"
        )


if __name__ == "__main__":
    main()
