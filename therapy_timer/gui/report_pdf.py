"""The printable day report: Qt's own PDF writer, one page header per day, totals per clinician."""

from __future__ import annotations

import datetime as dt
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


def _status(report: SessionReport) -> str:
    origin = report.session.origin
    return escape(report.status + (f", from {origin}" if origin else ""))


def _day_html(day: str, reports: Sequence[SessionReport], first: bool) -> str:
    style = "" if first else ' style="page-break-before: always"'
    rows = []
    for r in reports:
        rows.append(
            "<tr>"
            f"<td>{escape(r.session.patient_ref)}</td>"
            f"<td>{escape(r.session.clinician)} ({r.session.role.value})</td>"
            f"<td style='white-space: nowrap'>{_local_time(r, 'in')}&ndash;"
            f"{_local_time(r, 'out')}</td>"
            f"<td>{escape(r.session.payer_profile)}</td>"
            f"<td style='white-space: nowrap'>{_lines(r)}</td>"  # a code never breaks
            f"<td align=right>{r.result.total_timed_minutes}</td>"
            f"<td align=right>{r.result.total_treatment_minutes}</td>"
            f"<td>{_status(r)}</td>"
            "</tr>"
        )
        if r.result.warnings:
            # On paper there is no hover: the biller reads what needs a look under the session.
            listed = "<br>".join(
                f"&#9888; {escape(w.rule)}: {escape(_first_sentence(w.message))}"
                for w in r.result.warnings
            )
            rows.append(f"<tr><td></td><td colspan=7><i>{listed}</i></td></tr>")
    per_clinician: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in reports:
        for key in (f"{r.session.clinician} ({r.session.role.value})", ""):
            totals = per_clinician[key]
            totals[0] += 1
            totals[1] += r.result.total_timed_units
            totals[2] += sum(line.units for line in r.result.lines) - r.result.total_timed_units
            totals[3] += r.result.total_timed_minutes
    everyone = per_clinician.pop("")
    totals_rows = "".join(
        f"<tr><td>{escape(name)}</td><td align=right>{t[0]}</td><td align=right>{t[1]}</td>"
        f"<td align=right>{t[2]}</td><td align=right>{t[3]}</td></tr>"
        for name, t in sorted(per_clinician.items())
    ) + (
        f"<tr><td><b>All clinicians</b></td><td align=right><b>{everyone[0]}</b></td>"
        f"<td align=right><b>{everyone[1]}</b></td><td align=right><b>{everyone[2]}</b></td>"
        f"<td align=right><b>{everyone[3]}</b></td></tr>"
    )
    warned = sum(bool(r.result.warnings) for r in reports)
    still_open = sum(r.session.is_open for r in reports)
    notes = [f"{len(reports)} session(s)"]
    if still_open:
        notes.append(f"<b>{still_open} still open</b>")
    if warned:
        notes.append(f"{warned} with warnings (&#9888;) to look at")
    return (
        f"<h2{style}>Therapy Timer &mdash; sessions of {_long_date(day)}</h2>"
        f"<p>{', '.join(notes)}. Units follow each session's payer profile; times are local.</p>"
        # <thead>: Qt repeats its rows on every page a long day runs to, so a loose page still
        # says which day it belongs to.
        '<table border=1 cellspacing=0 cellpadding=3 width="100%"><thead>'
        f'<tr><th colspan=8 align=left bgcolor="#e8e8e8">{_long_date(day)}</th></tr>'
        + _header_row()
        + "</thead>"
        + "".join(rows)
        + "</table>"
        "<h3>Totals per clinician</h3>"
        "<table border=1 cellspacing=0 cellpadding=3>"
        "<tr><th>Clinician</th><th>Sessions</th><th>Timed units</th><th>Untimed units</th>"
        "<th>Timed minutes</th></tr>" + totals_rows + "</table>"
    )


HEADERS = (
    ("Patient", 9),
    ("Clinician", 15),
    ("In&ndash;out", 11),
    ("Payer", 14),
    ("Billed lines", 21),
    ("Timed<br>min", 7),
    ("Total<br>min", 7),
    ("Status", 16),
)
"""Column titles and their share of the width in percent."""


def _header_row() -> str:
    cells = "".join(
        f"<th width={share}% style='white-space: nowrap'>{title}</th>" for title, share in HEADERS
    )
    return f"<tr>{cells}</tr>"


def _first_sentence(message: str) -> str:
    # The whole text is in the note and the CSV; on paper the gist keeps a day to a page or two.
    head, dot, _rest = message.partition(". ")
    return head + dot.strip()


def _long_date(day: str) -> str:
    # The weekday too: a biller matching paper to a schedule thinks in weekdays.
    parsed = dt.date.fromisoformat(day)
    return f"{parsed:%A} {day}"


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
    font.setPointSizeF(8)
    document.setDefaultFont(font)
    document.setHtml(report_html(reports))
    # Lay out on the page's printable area in points; print_ then scales it to the device.
    document.setPageSize(writer.pageLayout().paintRectPoints().size().toSizeF())
    document.print_(writer)
