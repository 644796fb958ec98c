"""The front desk's day view refreshed on a busy day, against a bare table of the same cells.

Run: .venv/bin/python benchmarks/bench_day_view.py [--dir DATA] [--sessions N] [--runs N]

A clinic of 20 clinicians sees ~400 patients a day: the year ``bench_store.load_year`` makes
(``--sessions`` over 250 days; 100,000 by default, so a day has 400) is opened in the day view
at its busiest date, offscreen, and **Refresh** is clicked again and again, the events handled
between clicks as the desk's own window would. Each refresh reads the date's claim days and
fills the table. The baseline, interleaved in the same process, is a bare ``QTableWidget`` with
the same columns fitted to their contents, filled with the same texts and fitted once: what a
table of that day costs in Qt alone. Min and median of ``--runs`` interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import load_year
from PySide6.QtCore import QDate, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QHeaderView, QTableWidget, QTableWidgetItem

from therapy_timer.clinic import Clinic
from therapy_timer.gui.day_view import COLUMNS, DayView
from therapy_timer.store import database_path


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    QApplication.processEvents()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="a data folder to reuse (loaded if empty)")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    app = QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        data = args.dir or Path(folder) / "year"
        if not database_path(data).exists():
            _days, seconds, _ = load_year(data, args.sessions)
            print(f"{args.sessions:,} sessions loaded in {seconds:.1f} s")
        with sqlite3.connect(database_path(data)) as conn:
            day, sessions = conn.execute(
                "SELECT date_of_service, count(*) FROM sessions GROUP BY date_of_service"
                " ORDER BY 2 DESC, 1 LIMIT 1"
            ).fetchone()
        with Clinic.open(data) as clinic:
            view = DayView(clinic)
            view.resize(1366, 768)
            for edit in (view.from_date, view.to_date):
                edit.setDate(QDate.fromString(day, Qt.DateFormat.ISODate))
            view.show()
            QApplication.processEvents()
            texts = [
                [view.table.item(r, c).text() for c in range(len(COLUMNS))]  # type: ignore[union-attr]
                for r in range(view.table.rowCount())
            ]
            bare = QTableWidget(0, len(COLUMNS))
            bare.resize(1366, 768)
            bare.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            bare.show()

            def fill_bare() -> None:
                header = bare.horizontalHeader()
                header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
                bare.setRowCount(len(texts))
                for r, row in enumerate(texts):
                    for c, text in enumerate(row):
                        bare.setItem(r, c, QTableWidgetItem(text))
                header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
                bare.resizeRowsToContents()

            def refresh() -> None:
                QTest.mouseClick(view.refresh_button, Qt.MouseButton.LeftButton)

            ours: list[float] = []
            base: list[float] = []
            for _ in range(args.runs):
                base.append(timed(fill_bare))
                ours.append(timed(refresh))
            print(
                f"{day} ({sessions} sessions, {view.table.rowCount()} claim days),"
                f" {args.runs} interleaved rounds:"
            )
            print(
                f"  day view refresh: min {min(ours) * 1e3:.0f} ms,"
                f" median {statistics.median(ours) * 1e3:.0f} ms"
            )
            print(
                f"  bare table fill:  min {min(base) * 1e3:.0f} ms,"
                f" median {statistics.median(base) * 1e3:.0f} ms"
            )
            print(
                f"  ratio: {min(ours) / min(base):.1f} x min,"
                f" {statistics.median(ours) / statistics.median(base):.1f} x median"
            )
            view.close()
            bare.close()
    app.quit()


if __name__ == "__main__":
    main()
