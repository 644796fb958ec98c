"""The printable day report: Qt's PDF writer, a page per date, a row per claim day, totals."""

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

from therapy_timer.billing import ClaimDay


def _hhmm(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone():%H:%M}"


def _lines(day: ClaimDay) -> str:
    billed = [
        f"{line.units} &times; {escape('-'.join((line.code, *line.modifiers)))}"
        for line in day.result.lines
    ]
    if billed:
        return "<br>".join(billed)
    return f"nothing billable<br><i>{escape(day.nothing_billable or '')}</i>"


def _sessions(day: ClaimDay) -> str:
    # A pooled day is one claim: each visit on its own line, so the desk sees who was seen when.
    return "<br>".join(
        f"{_hhmm(v.time_in)}&ndash;{_hhmm(v.time_out or v.session.closed_utc)} "
        f"{escape(v.session.clinician)} ({v.session.role.value})"
        + (f", from {escape(v.session.origin)}" if v.session.origin else "")
        for v in day.visits
    )


def _patient(day: ClaimDay) -> str:
    text = escape(day.patient_ref)
    if day.initials_only:
        text += "<br><b>&#9888; initials:<br>one person?</b>"
    return text


def _status(day: ClaimDay) -> str:
    return escape(day.status + (" (provisional)" if day.provisional else ""))


def _day_html(day: str, claims: Sequence[ClaimDay], first: bool) -> str:
    style = "" if first else ' style="page-break-before: always"'
    rows = []
    for c in claims:
        rows.append(
            "<tr>"
            f"<td style='white-space: nowrap'>{_patient(c)}</td>"
            f"<td>{_sessions(c)}</td>"
            f"<td>{escape(c.payer_profile)}<br>{c.discipline.value}</td>"
            f"<td style='white-space: nowrap'>{_lines(c)}</td>"  # a code never breaks
            f"<td align=right>{c.result.total_timed_minutes}</td>"
            f"<td align=right>{c.result.total_treatment_minutes}</td>"
            f"<td>{_status(c)}</td>"
            "</tr>"
        )
        if c.result.warnings:
            # On paper there is no hover: the biller reads what needs a look under the claim.
            listed = "<br>".join(
                f"&#9888; {escape(w.rule)}: {escape(_first_sentence(w.message))}"
                for w in c.result.warnings
            )
            rows.append(f"<tr><td></td><td colspan=6><i>{listed}</i></td></tr>")
    # Units belong to the day's claim; a pooled day is counted under each clinician who saw
    # the patient, and once in the total for everyone.
    per_clinician: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for c in claims:
        timed = c.result.total_timed_units
        untimed = sum(line.units for line in c.result.lines) - timed
        for key in (*c.clinicians, ""):
            totals = per_clinician[key]
            totals[0] += sum(f"{s.clinician} ({s.role.value})" == key for s in c.sessions)
            totals[1] += timed
            totals[2] += untimed
            totals[3] += c.result.total_timed_minutes
        per_clinician[""][0] += len(c.visits)
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
    warned = sum(bool(c.result.warnings) for c in claims)
    still_open = sum(c.provisional for c in claims)
    pooled = sum(c.pooled for c in claims)
    notes = [f"{len(claims)} claim(s), {sum(len(c.visits) for c in claims)} session(s)"]
    if pooled:
        notes.append(f"{pooled} pooling several sessions")
    if still_open:
        notes.append(f"<b>{still_open} provisional (a session still open)</b>")
    if warned:
        notes.append(f"{warned} with warnings (&#9888;) to look at")
    return (
        f"<h2{style}>Therapy Timer &mdash; claims of {_long_date(day)}</h2>"
        f"<p>{', '.join(notes)}. Each claim pools one patient's sessions of the day for one plan "
        "of care and payer (R1.2); units follow the payer profile; times are local.</p>"
        # <thead>: Qt repeats its rows on every page a long day runs to, so a loose page still
        # says which day it belongs to.
        '<table border=1 cellspacing=0 cellpadding=3 width="100%"><thead>'
        f'<tr><th colspan=7 align=left bgcolor="#e8e8e8">{_long_date(day)}</th></tr>'
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
    ("Patient", 14),
    ("Sessions", 25),
    ("Payer, plan", 17),
    ("Billed lines", 18),
    ("Timed<br>min", 6),
    ("Total<br>min", 6),
    ("Status", 14),
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


def report_html(days: Sequence[ClaimDay]) -> str:
    """The report as HTML, a page per date of service, a row per claim day."""
    by_day: dict[str, list[ClaimDay]] = defaultdict(list)
    for claim in days:
        by_day[claim.date_of_service.isoformat()].append(claim)
    if not by_day:
        return "<h2>Therapy Timer</h2><p>No sessions in this range.</p>"
    return "".join(
        _day_html(day, by_day[day], first=i == 0) for i, day in enumerate(sorted(by_day))
    )


def write_pdf(days: Sequence[ClaimDay], path: Path) -> None:
    """Render the report to ``path`` (Letter, portrait); needs no window or display."""
    if QGuiApplication.instance() is None:
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication([])
        _render(days, path)
        del app
    else:
        _render(days, path)
    path.chmod(0o600)  # health information: readable by the user alone


def _render(days: Sequence[ClaimDay], path: Path) -> None:
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
    document.setHtml(report_html(days))
    # Lay out on the page's printable area in points; print_ then scales it to the device.
    document.setPageSize(writer.pageLayout().paintRectPoints().size().toSizeF())
    document.print_(writer)
