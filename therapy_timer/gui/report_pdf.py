"""The printable day report: Qt's own PDF writer, one page header per day, totals per clinician."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from therapy_timer.export import SessionReport


def _local_time(report: SessionReport, which: str) -> str:
    moment = report.time_in if which == "in" else report.time_out
    return "" if moment is None else f"{moment.astimezone():%H:%M}"


def _lines(report: SessionReport) -> str:
    billed = [
        f"{line.units} &times; {escape('-'.join((line.code, *line.modifiers)))}"
        for line in report.result.lines
    ]
    return "<br>".join(billed) or "nothing billable"


def _day_html(day: str, reports: Sequence[SessionReport], first: bool) -> str:
    style = "" if first else ' style="page-break-before: always"'
    rows = []
    for r in reports:
        warnings = len(r.result.warnings)
        rows.append(
            "<tr>"
            f"<td>{escape(r.session.patient_ref)}</td>"
            f"<td>{escape(r.session.clinician)} ({r.session.role.value})</td>"
            f"<td style='white-space: nowrap'>{_local_time(r, 'in')}&ndash;"
            f"{_local_time(r, 'out')}</td>"
            f"<td>{escape(r.session.payer_profile)}</td>"
            f"<td>{_lines(r)}</td>"
            f"<td align=right>{r.result.total_timed_minutes}</td>"
            f"<td align=right>{r.result.total_treatment_minutes}</td>"
            f"<td>{r.status}</td>"
            f"<td align=right>{warnings or ''}</td>"
            "</tr>"
        )
    per_clinician: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in reports:
        totals = per_clinician[f"{r.session.clinician} ({r.session.role.value})"]
        totals[0] += 1
        totals[1] += r.result.total_timed_units
        totals[2] += sum(line.units for line in r.result.lines) - r.result.total_timed_units
        totals[3] += r.result.total_timed_minutes
    totals_rows = "".join(
        f"<tr><td>{escape(name)}</td><td align=right>{t[0]}</td><td align=right>{t[1]}</td>"
        f"<td align=right>{t[2]}</td><td align=right>{t[3]}</td></tr>"
        for name, t in sorted(per_clinician.items())
    )
    return (
        f"<h2{style}>Therapy Timer &mdash; sessions of {day}</h2>"
        f"<p>{len(reports)} session(s). Units follow each session's payer method; "
        "warnings are counted here and listed in the CSV and each session's summary.</p>"
        '<table border=1 cellspacing=0 cellpadding=3 width="100%">'
        "<tr><th width=9%>Patient</th><th width=15%>Clinician</th><th width=13%>In&ndash;out"
        "</th><th width=12%>Payer</th><th width=20%>Billed lines</th><th width=8%>Timed<br>min"
        "</th><th width=8%>Total<br>min</th><th width=10%>Status</th><th width=5%>Warn"
        "</th></tr>" + "".join(rows) + "</table>"
        "<h3>Totals per clinician</h3>"
        "<table border=1 cellspacing=0 cellpadding=3>"
        "<tr><th>Clinician</th><th>Sessions</th><th>Timed units</th><th>Untimed units</th>"
        "<th>Timed minutes</th></tr>" + totals_rows + "</table>"
    )


def report_html(reports: Sequence[SessionReport]) -> str:
    """The report as HTML, a page per date of service."""
    by_day: dict[str, list[SessionReport]] = defaultdict(list)
    for report in reports:
        by_day[report.session.date_of_service.isoformat()].append(report)
    if not by_day:
        return "<h2>Therapy Timer</h2><p>No sessions in this range.</p>"
    return "".join(
        _day_html(day, by_day[day], first=i == 0) for i, day in enumerate(sorted(by_day))
    )


def write_pdf(reports: Sequence[SessionReport], path: Path) -> None:
    """Render the report to ``path`` (Letter, portrait); needs no window or display."""
    if QGuiApplication.instance() is None:
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication([])
        _render(reports, path)
        del app
    else:
        _render(reports, path)
    path.chmod(0o600)  # health information: readable by the user alone


def _render(reports: Sequence[SessionReport], path: Path) -> None:
    writer = QPdfWriter(str(path))
    writer.setTitle("Therapy Timer day report")
    writer.setCreator("Therapy Timer")
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.Letter),
            QPageLayout.Orientation.Portrait,
            QMarginsF(12, 12, 12, 12),
            QPageLayout.Unit.Millimeter,
        )
    )
    document = QTextDocument()
    font = document.defaultFont()
    font.setPointSizeF(7)
    document.setDefaultFont(font)
    document.setHtml(report_html(reports))
    # Lay out on the page's printable area in points; print_ then scales it to the device.
    document.setPageSize(writer.pageLayout().paintRectPoints().size().toSizeF())
    document.print_(writer)
