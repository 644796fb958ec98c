"""The printable day report: Qt's PDF writer, a page per date, a row per claim day, totals."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path

from PySide6.QtCore import QMarginsF, QSizeF
from PySide6.QtGui import (
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPdfWriter,
    QTextDocument,
    QTextOption,
)

from therapy_timer.billing import ClaimDay
from therapy_timer.export import visit_times
from therapy_timer.model import clinician_key

NO_BREAK_HYPHEN = "\u2011"
WORD_JOINER = "\u2060"
FONT_SIZES = (8.0, 7.5, 7.0, 6.5, 6.0)
"""Point sizes tried in turn until every column holds its longest word; then landscape."""


def _words(text: str) -> str:
    """``text`` escaped so that a line may break at its spaces only.

    Unicode lets a line break after a hyphen, a dash or a slash: "Montgomery-/Smith", "room-/2",
    "14:02\u2013/15:08" read as broken words in a narrow column, so those become a no-break
    hyphen, or are followed by a word joiner (both invisible differences on paper).
    """
    return (
        escape(text)
        .replace("-", NO_BREAK_HYPHEN)
        .replace("\u2013", "\u2013" + WORD_JOINER)
        .replace("/", "/" + WORD_JOINER)
    )


def _cell(content: str, *, nowrap: bool = False, right: bool = False) -> str:
    style = " style='white-space: nowrap'" if nowrap else ""
    return f"<td{' align=right' if right else ''}{style}>{content}</td>"


def _lines(day: ClaimDay) -> str:
    billed = [escape(line.label) for line in day.result.lines]
    # A session the rules refuse is its own error line: the claim is billed without it.
    billed += [
        f"<b>&#9888; session {escape(p.session.id[:8])}:<br>not billed, needs correction</b>"
        for p in day.problems
    ]
    if billed:
        return "<br>".join(billed)
    return f"nothing billable<br><i>{escape(day.nothing_billable or '')}</i>"


def _sessions(day: ClaimDay) -> str:
    # A pooled day is one claim: each visit on its own line, so the desk sees who was seen when.
    lines = []
    for v in day.visits:
        time_in, time_out, overnight = visit_times(v)
        lines.append(
            _words(
                f"{time_in}\u2013{time_out} {v.session.clinician} ({v.session.role.value})"
                + (f", from {v.session.origin}" if v.session.origin else "")
            )
            + ("<br><b>&#9888; ran overnight</b>" if overnight else "")
        )
    return "<br>".join(lines)


def _patient(day: ClaimDay) -> str:
    text = escape(day.patient_ref)
    if day.initials_only:
        text += "<br><b>&#9888; initials:<br>one person?</b>"
    return text


def _status(day: ClaimDay) -> str:
    return _words(day.status + (" (provisional)" if day.provisional else ""))


def _day_html(day: str, claims: Sequence[ClaimDay], first: bool) -> str:
    style = "" if first else ' style="page-break-before: always"'
    rows = []
    for c in claims:
        rows.append(
            # A reference and a billed code never break; names and words wrap at spaces.
            "<tr>"
            + _cell(_patient(c), nowrap=True)
            + _cell(_sessions(c))
            + _cell(f"{_words(c.payer_profile)}<br>{c.discipline.value}")
            + _cell(_lines(c), nowrap=True)
            + _cell(str(c.result.total_timed_minutes), nowrap=True, right=True)
            + _cell(str(c.result.total_treatment_minutes), nowrap=True, right=True)
            + _cell(_status(c))
            + "</tr>"
        )
        if c.result.warnings:
            # On paper there is no hover: the biller reads what needs a look under the claim.
            # The rule number with its short meaning, then the first sentence of the whole.
            listed = "<br>".join(
                f"&#9888; <b>{_words(' '.join(filter(None, (w.rule, w.gist))))}</b> &mdash; "
                f"{_words(_first_sentence(w.message))}"
                for w in c.result.warnings
            )
            rows.append(f"<tr><td></td><td colspan=6><i>{listed}</i></td></tr>")
    # Units belong to the day's claim; a pooled day is counted under each clinician who saw
    # the patient, and once in the total for everyone. A person is one row however their
    # name was spelled (clinician_key), under its first spelling on the page.
    per_clinician: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    names: dict[tuple[str, str], str] = {}
    everyone = [0, 0, 0, 0]
    for c in claims:
        timed = c.result.total_timed_units
        untimed = sum(line.units for line in c.result.lines) - timed
        people: dict[tuple[str, str], int] = {}
        for s in c.sessions:
            person = (clinician_key(s.clinician), s.role.value)
            names.setdefault(person, f"{s.clinician} ({s.role.value})")
            people[person] = people.get(person, 0) + 1
        for totals, sessions in (
            *((per_clinician[p], n) for p, n in people.items()),
            (everyone, len(c.visits)),
        ):
            totals[0] += sessions
            totals[1] += timed
            totals[2] += untimed
            totals[3] += c.result.total_timed_minutes
    totals_rows = "".join(
        f"<tr><td>{_words(name)}</td><td align=right>{t[0]}</td><td align=right>{t[1]}</td>"
        f"<td align=right>{t[2]}</td><td align=right>{t[3]}</td></tr>"
        for name, t in sorted((names[p], t) for p, t in per_clinician.items())
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
    held = sum(len(c.problems) for c in claims)
    if held:
        notes.append(f"<b>{held} session(s) not billed until corrected</b>")
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


HEADERS = ("Patient", "Sessions", "Payer, plan", "Billed lines", "Timed<br>min", "Total<br>min",
           "Status")  # fmt: skip
"""Column titles. No set widths: Qt sizes each column to its content, never narrower than
its longest word (a fixed share of the page split "exported" and "MRN-4471" mid-word)."""


def _header_row() -> str:
    cells = "".join(f"<th style='white-space: nowrap'>{title}</th>" for title in HEADERS)
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


def page_layout(orientation: QPageLayout.Orientation) -> QPageLayout:
    return QPageLayout(
        QPageSize(QPageSize.PageSizeId.Letter),
        orientation,
        QMarginsF(12, 12, 12, 12),
        QPageLayout.Unit.Millimeter,
    )


def report_document(
    html: str, page: QSizeF, points: float, wrap: QTextOption.WrapMode
) -> QTextDocument:
    """``html`` laid out on a printable area of ``page`` points, in ``points``-point text."""
    document = QTextDocument()
    font = document.defaultFont()
    font.setPointSizeF(points)
    document.setDefaultFont(font)
    option = document.defaultTextOption()
    option.setWrapMode(wrap)
    document.setDefaultTextOption(option)
    document.setHtml(html)
    document.setPageSize(page)
    return document


def loosened(html: str) -> str:
    """The report letting a line break after a hyphen or slash too (within a compound)."""
    return html.replace(NO_BREAK_HYPHEN, "-").replace(WORD_JOINER, "")


def fitted_document(days: Sequence[ClaimDay]) -> tuple[QTextDocument, QPageLayout]:
    """The report in the largest text size whose every column holds its longest word across
    the page, portrait first, then landscape: a wider table would be cut at the margin.

    Lines break at spaces only; names too long for that (80 characters without a space)
    break after a hyphen or slash of their own, and only a name too long even for that
    breaks anywhere: Qt's default, which split "exported" in a column of a fixed width.
    """
    html = report_html(days)
    for text in (html, loosened(html)):
        for orientation in (QPageLayout.Orientation.Portrait, QPageLayout.Orientation.Landscape):
            layout = page_layout(orientation)
            page = layout.paintRectPoints().size().toSizeF()
            room = _room(page)
            for points in FONT_SIZES:
                document = report_document(text, room, points, QTextOption.WrapMode.WordWrap)
                if document.size().width() <= page.width():
                    return document, layout
    anywhere = QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere
    return report_document(loosened(html), _room(page), FONT_SIZES[-1], anywhere), layout


def _room(page: QSizeF) -> QSizeF:
    """The page a point narrower: Qt rounds a full-width table's width up to a whole point,
    and on Letter's 544-point column a table of 8-point text came out 545 wide (its longest
    words needed 470), so every report was laid out a second time and printed in 7.5."""
    return QSizeF(page.width() - 1, page.height())


def _render(days: Sequence[ClaimDay], path: Path) -> None:
    writer = QPdfWriter(str(path))
    writer.setTitle("Therapy Timer day report")
    writer.setCreator("Therapy Timer")
    # Laid out on the page's printable area in points; print_ then scales it to the device.
    document, layout = fitted_document(days)
    writer.setPageLayout(layout)
    document.print_(writer)
