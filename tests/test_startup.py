"""What a start loads: heavy libraries only where used (issue 13); never timed, only checked.

Each check runs a fresh interpreter and asks it which modules it imported, because a test
process has long since imported everything.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from tests.offscreen import run_offscreen
from therapy_timer.store import Store, database_path, list_backups
from therapy_timer.store.migrations import KNOWN_MIGRATIONS, MIGRATIONS, MIGRATIONS_TABLE

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("sqlite_utils", "dateutil", "pluggy", "tabulate", "PySide6")


def loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The top-level names of the modules a fresh interpreter has loaded after running ``code``."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        print(_json.dumps(sorted(_sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_opening_an_up_to_date_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    with Store.open(tmp_path, clock=FakeClock()) as store:  # creates and migrates it
        assert store.schema_version() == len(KNOWN_MIGRATIONS)
    loaded = loaded_after(
        f"""
        from pathlib import Path
        from therapy_timer.clock import SystemClock
        from therapy_timer.store import Store, database_path, list_backups
        with Store.open(Path({str(tmp_path)!r}), clock=SystemClock()) as store:
            store.schema_version()
        """
    )
    assert "therapy_timer.store" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_a_new_database_is_migrated_with_sqlite_utils_bookkeeping(tmp_path: Path) -> None:
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    conn = sqlite3.connect(database_path(tmp_path))
    try:
        rows = conn.execute(
            f"SELECT migration_set, name FROM {MIGRATIONS_TABLE} ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("therapy_timer", name) for name in MIGRATIONS.names]
    assert set(MIGRATIONS.names) == KNOWN_MIGRATIONS


def test_the_bookkeeping_table_is_the_one_sqlite_utils_uses() -> None:
    from sqlite_utils.migrations import Migrations

    assert Migrations.migrations_table == MIGRATIONS_TABLE


def test_recursive_triggers_are_on_before_sqlite_utils_is_used(tmp_path: Path) -> None:
    # sqlite_utils.Database(conn) used to turn them on at every open; the store must not behave
    # differently now that it is built only for an insert.
    with Store.open(tmp_path, clock=FakeClock()) as store:
        assert "_db" not in vars(store)
        assert store._conn.execute("PRAGMA recursive_triggers").fetchone() == (1,)


def test_importing_the_command_loads_no_clinic_store_export_or_qt() -> None:
    loaded = loaded_after("import therapy_timer.cli")
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}
    assert not loaded & {
        "therapy_timer.clinic",
        "therapy_timer.store",
        "therapy_timer.export",
        "therapy_timer.billing",
        "therapy_timer.model",
        "sqlite3",
        "socket",
    }


def test_units_and_version_load_no_clinic_or_store(tmp_path: Path) -> None:
    for args in (["units", "97110=20", "97140=10"], ["--version"]):
        loaded = loaded_after(
            f"""
            from click.testing import CliRunner
            from therapy_timer.cli import main
            result = CliRunner().invoke(main, ["--data-dir", {str(tmp_path)!r}, *{args!r}])
            assert result.exit_code == 0, result.output
            """
        )
        assert "therapy_timer.cli" in loaded
        assert not loaded & {"therapy_timer.clinic", "therapy_timer.store", "sqlite3"}, args
    assert not any(tmp_path.iterdir())  # nothing was opened or created


def test_the_format_choices_are_export_s() -> None:
    from therapy_timer import cli, export

    assert cli.EXPORT_FORMATS == export.EXPORT_FORMATS


def test_the_first_pedal_press_of_a_day_records_the_moment_of_the_press(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from therapy_timer.cli import Context, main
    from therapy_timer.clinic import Clinic

    clock = FakeClock()
    pressed = clock.now()
    real_backup = Clinic.daily_backup
    backups_made: list[Path | None] = []

    def slow_backup(self: Clinic) -> Path | None:
        clock.advance(seconds=90)  # a clinic-year quick_check and copy, on a slow disk
        made = real_backup(self)
        backups_made.append(made)
        return made

    monkeypatch.setattr(Clinic, "daily_backup", slow_backup)
    result = CliRunner().invoke(
        main, ["timer", "start", "97110", "--patient", "JD-1"], obj=Context(tmp_path, clock)
    )
    assert result.exit_code == 0, result.output
    assert clock.now() - pressed == timedelta(seconds=90)  # the backup did take its time
    with Store.open(tmp_path, clock=clock) as store:
        [segment] = store.open_segments()
    assert segment.start_utc == pressed
    [made] = backups_made
    assert made is not None and list_backups(tmp_path) == [made]
    # The backup was made after the press was recorded: it holds the running segment.
    conn = sqlite3.connect(made)
    try:
        starts = conn.execute("SELECT start_utc FROM segments WHERE stop_utc IS NULL").fetchall()
    finally:
        conn.close()
    assert len(starts) == 1


def test_the_window_module_leaves_the_day_view_pdf_and_sqlite_utils_for_later() -> None:
    loaded = loaded_after("import therapy_timer.gui.app", env={"QT_QPA_PLATFORM": "offscreen"})
    assert "therapy_timer.gui.main_window" in loaded
    assert not loaded & {
        "therapy_timer.gui.day_view",
        "therapy_timer.gui.report_pdf",
        "therapy_timer.gui.widgets.summary_dialog",  # opened at the end of a session
        "therapy_timer.gui.widgets.corrections",
        "therapy_timer.gui.widgets.recovery_dialog",  # opened after a crash only
    }
    assert not {name for name in loaded if name.split(".")[0] in HEAVY[:-1]}  # all but Qt


def _window_start_modules(
    data_dir: Path, entry: str, words: str = '"--data-dir", sys.argv[1], "--smoke-test"'
) -> list[str]:
    """The modules a smoke-test start of the window loaded, in the order they were loaded."""
    script = textwrap.dedent(
        f"""
        import json, sys
        {entry}
        try:
            main([{words}])
        except SystemExit as done:
            assert not done.code, done.code
        finally:
            print(json.dumps(list(sys.modules)))
        """
    )
    loaded: list[str] = json.loads(run_offscreen(script, data_dir)[-1])
    return loaded


@pytest.mark.parametrize(
    "entry",
    [
        "from therapy_timer.gui.launch import main",  # therapy-timer-gui
        "from therapy_timer.__main__ import main",  # therapy-timer, no command
        "from therapy_timer.cli import main",  # therapy-timer through click (e.g. --data-dir ~/x)
    ],
    ids=["therapy-timer-gui", "therapy-timer", "therapy-timer through click"],
)
def test_a_window_start_loads_the_qt_free_layers_before_pyside6(tmp_path: Path, entry: str) -> None:
    # PySide6's import hook reads the source of every module imported after PySide6 (issue 13).
    loaded = _window_start_modules(tmp_path, entry)
    first_qt = loaded.index("PySide6")
    ours = [m for m in loaded if m.startswith("therapy_timer")]
    qt_free = [m for m in ours if not m.startswith("therapy_timer.gui.") or m in QT_FREE_GUI]
    assert "therapy_timer.clinic" in qt_free and "therapy_timer.gui.presenter" in qt_free
    assert [m for m in qt_free if loaded.index(m) > first_qt] == []


QT_FREE_GUI = {"therapy_timer.gui.presenter", "therapy_timer.gui.view_state"}


def test_therapy_timer_gui_parses_its_options_before_pyside6(tmp_path: Path) -> None:
    # argparse's messages go through gettext, which imports locale at each one: after PySide6
    # its import hook read locale's source eleven times (issue 13). An abbreviation, which
    # only argparse reads (the window's own options in full need no parser: test_launch.py).
    loaded = _window_start_modules(
        tmp_path, "from therapy_timer.gui.launch import main", '"--smoke", "--data", sys.argv[1]'
    )
    assert loaded.index("locale") < loaded.index("PySide6")


def test_a_window_start_leaves_what_the_first_paint_does_not_need(tmp_path: Path) -> None:
    with Store.open(tmp_path, clock=FakeClock()):  # made and migrated (sqlite_utils): every
        pass  # start but the very first
    loaded = set(_window_start_modules(tmp_path, "from therapy_timer.gui.launch import main"))
    assert "therapy_timer.gui.main_window" in loaded
    assert not loaded & {
        "therapy_timer.gui.clinic_sync",  # only with a clinic server
        "uuid",  # ids are made by taps, not by a start
        "platform",  # uuid's
        "hashlib",  # bundles' version hashes
        "therapy_timer.export",  # files written and read
        "csv",
    }


SOURCES_READ_SCRIPT = """
import json, linecache, sys
from therapy_timer.gui.launch import main
try:
    main(["--data-dir", sys.argv[1], "--smoke-test"])
except SystemExit as done:
    assert not done.code, done.code
modules = list(sys.modules)
before = modules[: modules.index("PySide6")]
print(json.dumps({
    "read": sorted(linecache.cache),
    "before": [getattr(sys.modules[name], "__file__", None) for name in before],
}))
"""


def test_pyside6s_import_hook_reads_no_module_loaded_before_it(tmp_path: Path) -> None:
    # After PySide6 is loaded, its import hook reads the whole source of each module an import
    # statement names, unless its table has the module (PYSIDE-2029): the window's imports
    # name the Qt-free layers again, ~4 ms of a start (issue 13). gui/load_qt.py enters them.
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    outcome = json.loads(run_offscreen(SOURCES_READ_SCRIPT, tmp_path)[-1])
    read = {Path(name) for name in outcome["read"]}
    before = {Path(name) for name in outcome["before"] if name}
    package = ROOT / "therapy_timer"
    assert package / "gui" / "main_window.py" in read  # the hook reads what comes after it
    assert package / "clinic.py" in before
    assert not {path for path in read & before if package in path.parents}
    assert not {path.name for path in read} & {"typing.py", "datetime.py", "threading.py"}


COLLECTOR_SCRIPT = """
import gc, json, sys, time
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(time.time()))
from therapy_timer.gui.launch import main
started = time.time()
try:
    main(["--data-dir", sys.argv[1], "--smoke-test"])
except SystemExit as done:
    status = done.code
print(json.dumps({
    "status": status, "started": started, "collections": collections,
    "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
}))
"""


def _collector_during_start(data_dir: Path) -> tuple[dict[str, Any], float | None]:
    lines = [json.loads(line) for line in run_offscreen(COLLECTOR_SCRIPT, data_dir)]
    painted = next((line["painted_at"] for line in lines if "painted_at" in line), None)
    return lines[-1], painted


def test_the_collector_is_paused_until_the_first_paint_then_freezes_the_start(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    outcome, painted = _collector_during_start(tmp_path)
    assert outcome["status"] in (0, None) and painted is not None
    assert [t for t in outcome["collections"] if outcome["started"] < t < painted] == []
    assert outcome["enabled"]
    assert outcome["frozen"] > 10_000  # the classes, enums and widgets of the start


def test_a_start_that_fails_gives_the_collector_back(tmp_path: Path) -> None:
    database_path(tmp_path).write_bytes(b"this is not a database" * 100)
    outcome, painted = _collector_during_start(tmp_path)
    assert outcome["status"] == 1 and painted is None
    assert outcome["enabled"]


def test_the_launcher_is_qt_free() -> None:
    loaded = loaded_after("import therapy_timer.gui.launch")
    assert "therapy_timer.gui.launch" in loaded
    assert "PySide6" not in loaded


BUILT_SCRIPT = """
import json, sys
from therapy_timer.gui.launch import main
try:
    main(["--data-dir", sys.argv[1], "--smoke-test"])
except SystemExit as done:
    assert not done.code, done.code
import PySide6.QtWidgets
print(json.dumps(sorted(PySide6.QtWidgets.__dict__)))
"""


def test_a_window_start_builds_no_dialog_class_and_no_widget_it_does_not_show(
    tmp_path: Path,
) -> None:
    # PySide6 builds a Qt class (and its enums) the first time Python touches it; a class is in
    # its module's namespace once built. Wrapping a widget Qt made (a scroll area's viewport)
    # builds every widget class to find its type: the QWizard below stands for all of them.
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    built = set(json.loads(run_offscreen(BUILT_SCRIPT, tmp_path)[-1]))
    assert {"QMainWindow", "QPushButton", "QScrollArea"} <= built
    assert not built & {"QDialog", "QMessageBox", "QInputDialog", "QWizard", "QTextEdit"}


def test_a_window_start_makes_neither_the_mini_view_nor_the_search_suggestions(
    tmp_path: Path,
) -> None:
    # Both are hidden at the first paint and made when first used (issue 13).
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    assert "therapy_timer.gui.widgets.mini_view" not in _window_start_modules(
        tmp_path, "from therapy_timer.gui.launch import main"
    )
    built = set(json.loads(run_offscreen(BUILT_SCRIPT, tmp_path)[-1]))
    assert "QLineEdit" in built and "QCompleter" not in built


AT_PAINT_SCRIPT = """
import json, sys
from PySide6 import QtGui, QtWidgets
from therapy_timer.gui import app
at_paint = {}
resume = app.resume_collector
def first_paint():
    if not at_paint:
        at_paint.update(
            built=sorted(set(QtGui.__dict__) | set(QtWidgets.__dict__)),
            icon=not app.QGuiApplication.windowIcon().isNull(),
        )
        app.QTimer.singleShot(0, lambda: app.QApplication.instance().exit(0))
    resume()
app.resume_collector = first_paint
status = app.run(app.Path(sys.argv[1]))
print(json.dumps({
    "status": status,
    "at_paint": at_paint,
    "after": sorted(set(QtGui.__dict__) | set(QtWidgets.__dict__)),
    "icon": not app.QGuiApplication.windowIcon().isNull(),
}))
"""


def test_a_window_start_makes_its_menus_actions_tray_and_icon_after_its_first_paint(
    tmp_path: Path,
) -> None:
    # Made just after it (MainWindow.finish_start), or sooner for a key or an opened menu
    # (tests/test_gui_first_keys.py): ~2 ms of a start with the classes they need (issue 13).
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    outcome = json.loads(run_offscreen(AT_PAINT_SCRIPT, tmp_path)[-1])
    assert outcome["status"] == 0
    assert not {"QAction", "QSystemTrayIcon"} & set(outcome["at_paint"]["built"])
    assert not outcome["at_paint"]["icon"]
    assert {"QAction", "QSystemTrayIcon"} <= set(outcome["after"])
    assert outcome["icon"]


DATACLASS_SCRIPT = """
import dataclasses, json, sys
made = set()
real = dataclasses._process_class
def spy(cls, *args, **kwargs):
    if kwargs.get("init", args[0] if args else True):  # frozen_record asks for no methods
        made.add(cls.__module__)
    return real(cls, *args, **kwargs)
dataclasses._process_class = spy
from therapy_timer.gui.launch import main
try:
    main(["--data-dir", sys.argv[1], "--smoke-test"])
except SystemExit as done:
    assert not done.code, done.code
@dataclasses.dataclass(frozen=True)
class Probe:  # a generated record after the start: the spy sees what it should
    x: int
print(json.dumps(sorted(made)))
"""


def test_a_window_start_compiles_no_record_methods_of_the_app(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    generated = set(json.loads(run_offscreen(DATACLASS_SCRIPT, tmp_path)[-1]))
    assert "__main__" in generated  # the probe: the spy sees what it should
    assert not {module for module in generated if module.startswith("therapy_timer")}


def test_an_option_refused_before_the_window_gives_the_collector_back() -> None:
    from therapy_timer.gui import launch

    assert gc.isenabled()
    with pytest.raises(SystemExit) as ended:
        launch.main(["--data-dir", ""])
    assert ended.value.code == 2
    assert gc.isenabled()


QT_ENUMS_SCRIPT = """
import enum, json, sys
built = []
real = enum.EnumType.__new__
def spy(mcls, cls, bases, classdict, **kwargs):
    built.append(cls)
    return real(mcls, cls, bases, classdict, **kwargs)
enum.EnumType.__new__ = spy
from therapy_timer.gui import app
at_paint = []
resume = app.resume_collector
def first_paint():
    at_paint.append(list(built))
    resume()
    if MODE == "window":  # the real start, which runs until it is told to stop
        app.QTimer.singleShot(0, lambda: app.QApplication.instance().exit(0))
app.resume_collector = first_paint
if MODE == "window":
    status = app.run(app.Path(sys.argv[1]))
else:
    from therapy_timer.gui.launch import main
    try:
        main(["--data-dir", sys.argv[1], "--smoke-test"])
    except SystemExit as done:
        status = done.code
from PySide6 import QtCore
QtCore.Qt.AlignmentFlag  # the spy sees the namespace being built
print(json.dumps({"status": status, "at_paint": at_paint[0], "after": built}))
"""


def _running_patients(data_dir: Path) -> None:
    """Two patients with a code running, one furnished by the assistant."""
    from therapy_timer.clinic import Clinic
    from therapy_timer.clock import SystemClock
    from therapy_timer.codes import FurnishedBy, Role, builtin_catalogue

    clock = SystemClock()
    with Store.open(data_dir, clock=clock) as store:
        clinic = Clinic(store, builtin_catalogue(), clock)
        for ref, code, by in (("JD-1", "97110", FurnishedBy.ASSISTANT), ("KM-2", "97140", None)):
            session = clinic.open_session(
                patient_ref=ref, clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
            )
            clinic.start(session.id, code, by)


@pytest.mark.parametrize("running", [False, True], ids=["nothing running", "two running"])
@pytest.mark.parametrize("entry", ["smoke test", "window"])
def test_a_window_start_builds_no_qt_namespace_enum_before_its_first_paint(
    tmp_path: Path, entry: str, running: bool
) -> None:
    # The Qt namespace's 93 enums cost ~14 ms (issue 13): naming one, or a call whose overload
    # PySide6 picks by asking whether an argument is one (QPainter.setPen, QBrush(QColor),
    # QAction.setShortcut, ...), builds them all. The tiles are painted without them (theme.pen).
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    if running:
        _running_patients(tmp_path)
    script = f"MODE = {entry.split()[0]!r}\n{QT_ENUMS_SCRIPT}"
    outcome = json.loads(run_offscreen(script, tmp_path)[-1])
    assert outcome["status"] in (0, None)
    assert "GlobalColor" in outcome["after"]
    assert not {"GlobalColor", "AlignmentFlag", "PenStyle", "CursorShape"} & set(
        outcome["at_paint"]
    )
