"""The front desk's view of a day: billing rows, CSV/JSON files and bundles for other stations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TextIO

from therapy_timer import rules
from therapy_timer.codes import Discipline
from therapy_timer.contract import result_json
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.files import read_regular
from therapy_timer.model import Segment, Session, SessionProblem, label_text

CSV_COLUMNS = (
    "date_of_service",
    "patient_ref",
    "discipline",
    "payer_profile",
    "code",
    "modifiers",
    "units",
    "minutes",
    "total_timed_minutes",
    "total_treatment_minutes",
    "clinicians",
    "session_ids",
    "amended",
    "warnings",
    "status",
    "remark",
)
"""One row per billable line of a claim day (R1.2: every session of one patient, date of
service, discipline and payer pooled); a day that bills nothing gets one row of 0 units whose
remark says why. ``minutes`` is the line's code's minutes that day and the two totals are the
day's: each repeats on every row of its code or day (a code billed with and without CQ/CO is
two rows), so only ``units`` add up. ``warnings`` lists only what the biller must act on, as
"rule: gist".
A session the rules refuse as recorded gets an error row of its own (status "error", the
remark naming the patient and what to fix); the rest of its day is billed without it and
its rows say so."""

ERROR_STATUS = "error"

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell starting with one of these as a formula (CSV injection)."""
_FORMULA_OR_BLANK = frozenset(" \u00a0" + "".join(FORMULA_STARTS))

BUNDLE_FORMAT = "therapy-timer-bundle"
BUNDLE_VERSION = 1
BUNDLE_MAX_BYTES = 64 * 1024 * 1024
"""A clinic-year of one station is a few MiB; anything far larger is not a bundle."""

EXPORT_FORMATS = ("csv", "pdf", "json", "bundle")
CONFLICTS_DIRNAME = "conflicts"


AMENDED_AFTER_EXPORT = "amended after export"
STATUSES = ("open", "closed", "amended", "exported", AMENDED_AFTER_EXPORT)
"""What a claim day's status can say (the day view filters on them)."""


class OpenSessionsInRange(InvalidOperation):
    """Open sessions are never exported silently: the front desk must see them first.

    ``still_open`` names them; the words after it say what to do, which differs by where the
    export was asked for (a command's option is no help at the day view's buttons)."""

    def __init__(self, still_open: str, advice: str) -> None:
        super().__init__(f"{still_open}. {advice}")
        self.still_open = still_open


class VisitLike(Protocol):
    """One session of a claim day (billing.Visit; billing sits beside this module)."""

    @property
    def session(self) -> Session: ...
    @property
    def time_in(self) -> dt.datetime | None: ...
    @property
    def time_out(self) -> dt.datetime | None: ...


class ClaimDayLike(Protocol):
    """A claim day as billing.ClaimDay holds it: what the files need of one."""

    @property
    def visits(self) -> Sequence[VisitLike]: ...
    @property
    def result(self) -> rules.Result: ...
    @property
    def sessions(self) -> tuple[Session, ...]: ...
    @property
    def session_ids(self) -> tuple[str, ...]: ...
    @property
    def patient_ref(self) -> str: ...
    @property
    def date_of_service(self) -> dt.date: ...
    @property
    def discipline(self) -> Discipline: ...
    @property
    def payer_profile(self) -> str: ...
    @property
    def provisional(self) -> bool: ...
    @property
    def pooled(self) -> bool: ...
    @property
    def initials_only(self) -> bool: ...
    @property
    def clinicians(self) -> tuple[str, ...]: ...
    @property
    def status(self) -> str: ...
    @property
    def nothing_billable(self) -> str | None: ...
    @property
    def problems(self) -> tuple[SessionProblem, ...]: ...
    @property
    def billed_session_ids(self) -> tuple[str, ...]: ...


def visit_times(visit: VisitLike) -> tuple[str, str, bool]:
    """A visit's time in and out as the desk reads them, local ("14:00", "14:45"; "" for none),
    and whether it ran overnight: then the out says its date too ("03-11 10:00"). A timer left
    running overnight read "14:00-10:00" (four hours backwards) beside a day's worth of units.
    Across a change of the clocks both say which time they are ("00:30 EDT", "02:20 EST"):
    "00:30-02:20" beside 170 minutes read as an hour too many.
    """
    time_in = None if visit.time_in is None else visit.time_in.astimezone()
    moment = visit.time_out or visit.session.closed_utc
    time_out = None if moment is None else moment.astimezone()
    overnight, zone = False, ""
    if time_in is not None and time_out is not None:
        overnight = time_out.date() != time_in.date()
        zone = " %Z" if time_in.utcoffset() != time_out.utcoffset() else ""
    return (
        "" if time_in is None else time_in.strftime("%H:%M" + zone),
        ""
        if time_out is None
        else time_out.strftime(("%m-%d %H:%M" if overnight else "%H:%M") + zone),
        overnight,
    )


def overnight_remark(day: ClaimDayLike) -> str:
    """The CSV's remark on a day with a visit that ran overnight ("" for any other day)."""
    found = []
    for visit in day.visits:
        time_in, time_out, overnight = visit_times(visit)
        if overnight:
            found.append(f"{time_in} to {time_out} (session {visit.session.id[:8]})")
    if not found:
        return ""
    return f"ran overnight: {', '.join(found)}; check the minutes before billing"


INCLUDE_OPEN_ADVICE = "Close them first, or export with --include-open to list them marked as open."
BUNDLE_OPEN_ADVICE = "Close them first: a bundle never carries an open session."


def refuse_open(days: Iterable[ClaimDayLike], advice: str = INCLUDE_OPEN_ADVICE) -> None:
    """Raise naming the open sessions, so a half-finished session is never billed by accident."""
    refuse_open_sessions([s for d in days for s in d.sessions], advice)


def refuse_open_sessions(sessions: Iterable[Session], advice: str = INCLUDE_OPEN_ADVICE) -> None:
    still_open = [s for s in sessions if s.is_open]
    if still_open:
        names = ", ".join(f"{s.patient_ref} ({s.clinician})" for s in still_open)
        raise OpenSessionsInRange(f"{len(still_open)} session(s) still open: {names}", advice)


def act_warnings(result: rules.Result) -> str:
    """The warnings a biller must act on, "rule: gist" each; information stays in the note."""
    return " | ".join(
        f"{w.rule}: {w.gist or first_sentence(w.message)}"
        for w in result.warnings
        if w.severity is rules.Severity.ACT
    )


def first_sentence(message: str) -> str:
    head, dot, _rest = message.partition(". ")
    return head + dot.strip()


def neutralise(cell: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (OWASP's CSV-injection advice)."""
    if not cell or cell[0] not in _FORMULA_OR_BLANK:  # most cells: no need to strip
        return cell
    # Spreadsheets skip leading blanks before deciding that a cell is a formula.
    return "'" + cell if cell.lstrip(" \u00a0").startswith(FORMULA_STARTS) else cell


class AnswerCells(NamedTuple):
    """What a claim day's rows take from its rules answer: the same for every day with that
    answer, so a year's export makes them once per distinct answer (``answer_cells``)."""

    lines: tuple[tuple[str, str, str, str], ...]
    """Each billed line's own cells: code, modifiers, units, minutes."""
    total_timed: str
    total_treatment: str
    warnings: str
    """The act warnings (``act_warnings``), neutralised."""
    line_texts: tuple[str, ...] | None
    """Each line's own cells as CSV text, or None when one needs quoting (``day_lines``)."""


def answer_cells(result: rules.Result) -> AnswerCells:
    minutes = {c.code: c.minutes for c in result.codes}
    lines = tuple(
        [
            (
                neutralise(line.code),
                neutralise(" ".join(line.modifiers)),
                str(line.units),
                str(minutes[line.code]),
            )
            for line in result.lines
        ]
    )
    texts = tuple([",".join(cells) for cells in lines])
    return AnswerCells(
        lines,
        str(result.total_timed_minutes),
        str(result.total_treatment_minutes),
        neutralise(act_warnings(result)),
        None if _NEEDS_QUOTES.search("".join([c for cells in lines for c in cells])) else texts,
    )


def csv_rows(days: Iterable[ClaimDayLike]) -> Iterator[list[str]]:
    """One row per billable line of each claim day; a day billing nothing gets one 0-unit row.

    Zero-unit codes of a billing day stay in the note, not among the rows. Cells that cannot
    start with a formula's character (dates, plan-of-care names, counts, yes/no, statuses) are
    written as they are; every other cell is neutralised, once per day where rows share it.
    """
    for day in days:
        problems = day.problems
        common = day_cells(day.date_of_service, day.patient_ref, day.discipline, day.payer_profile)
        for problem in problems:  # (neutralising a neutralised cell changes nothing)
            yield [neutralise(cell) for cell in _error_row(common, problem)]
        billed = day.billed_session_ids
        if not billed:
            continue
        answer = answer_cells(day.result)
        tail = day_tail(
            answer, day.clinicians, billed, any([s.amended for s in day.sessions]), day.status
        )
        provisional = "provisional: a session of the day is still open" if day.provisional else ""
        partial = ""
        if problems:
            held = ", ".join(p.session.id[:8] for p in problems)
            partial = f"partial day: without session {held} (its error row) until corrected"
        overnight = overnight_remark(day)
        why = day.nothing_billable
        if why is not None:
            remark = "; ".join(filter(None, [f"nothing billable: {why}", partial, overnight]))
        else:
            remark = "; ".join(filter(None, [provisional, partial, overnight]))
        yield from day_rows(common, answer, tail, neutralise(remark), why)


def day_cells(
    day: dt.date, patient_ref: str, discipline: Discipline, payer_profile: str
) -> list[str]:
    """The cells every row of a claim day starts with."""
    # (A StrEnum's str is its value, without .value's descriptor call: a year has 100,000.)
    return [day.isoformat(), neutralise(patient_ref), str(discipline), neutralise(payer_profile)]


def day_tail(
    answer: AnswerCells,
    clinicians: Iterable[str],
    billed: Iterable[str],
    amended: bool,
    status: str,
) -> list[str]:
    """The cells after a line's own: the day's totals, who and which sessions, its status."""
    return [
        answer.total_timed,
        answer.total_treatment,
        neutralise("; ".join(clinicians)),
        neutralise(" ".join(billed)),
        "yes" if amended else "no",
        answer.warnings,
        status,
    ]


def day_rows(
    common: list[str],
    answer: AnswerCells,
    tail: list[str],
    remark: str,
    nothing_billable: str | None,
) -> list[list[str]]:
    """A claim day's billed rows: one per line, or one of 0 units when it bills nothing
    (``nothing_billable`` says why, and ``remark`` already does)."""
    if nothing_billable is not None:
        return [[*common, "", "", "0", answer.total_timed, *tail, remark]]
    return [[*common, *own, *tail, remark] for own in answer.lines]


_NEEDS_QUOTES = re.compile('[,"\r\n]')
"""A cell holding one of these is quoted by ``csv.writer`` (and ``csv_lines``)."""


def day_lines(
    common: list[str],
    answer: AnswerCells,
    tail: list[str],
    remark: str,
    nothing_billable: str | None,
) -> list[str]:
    """``csv_lines`` of ``day_rows``: a claim day's rows as CSV text. Where no cell needs
    quoting (nearly every day) the text is joined from the day's cells once and each line's
    (``AnswerCells.line_texts``), not row by row."""
    day = ",".join(common)
    rest = ",".join(tail)
    joined = day + rest + remark
    if (
        answer.line_texts is None
        or joined.count(",") != len(common) + len(tail) - 2  # a cell holds a comma
        or '"' in joined
        or "\n" in joined
        or "\r" in joined
    ):
        return list(csv_lines(day_rows(common, answer, tail, remark, nothing_billable)))
    if nothing_billable is not None:
        return [f"{day},,,0,{answer.total_timed},{rest},{remark}\r\n"]
    return [f"{day},{own},{rest},{remark}\r\n" for own in answer.line_texts]


def _error_row(common: list[str], problem: SessionProblem) -> list[str]:
    """A session that cannot be billed as recorded: 0 units, the patient and what to fix."""
    session = problem.session
    return [
        *common,
        "",
        "",
        "0",
        "",
        "",
        "",
        f"{session.clinician} ({session.role.value})",
        session.id,
        "yes" if session.amended else "no",
        f"R1.2: {problem.field or 'session'}: cannot be billed as recorded",
        ERROR_STATUS,
        problem.text,
    ]


def problem_json(problem: SessionProblem) -> dict[str, Any]:
    """A session the rules refuse, for other programs: where, what, and how to fix it."""
    return {
        "session_id": problem.session.id,
        "patient_ref": problem.session.patient_ref,
        "clinician": problem.session.clinician,
        "field": problem.field,
        "message": problem.message,
        "fix": problem.fix,
        "text": problem.text,
    }


def write_csv(days: Iterable[ClaimDayLike], out: TextIO) -> int:
    """CSV that Excel and LibreOffice open cleanly (UTF-8 BOM, CRLF); returns the row count."""
    return write_csv_lines(csv_lines(csv_rows(days)), out)


def write_csv_lines(lines: Iterable[str], out: TextIO) -> int:
    """``write_csv`` of rows already written as CSV lines (``csv_lines``, ``day_lines``),
    after the header; returns the row count."""
    out.write("\ufeff")
    out.write(next(csv_lines([CSV_COLUMNS])))
    pending: list[str] = []
    count = 0
    for line in lines:
        pending.append(line)
        if len(pending) >= 1024:  # a year's rows go out in pieces, never held whole
            out.write("".join(pending))
            pending.clear()
        count += 1
    out.write("".join(pending))
    return count


def csv_text(lines: Iterable[str]) -> str:
    """``write_csv_lines`` into text (a preview)."""
    buffer = io.StringIO()
    write_csv_lines(lines, buffer)
    return buffer.getvalue()


def csv_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """Each row as ``csv.writer`` writes it (CRLF), without the writer for a row whose cells
    need no quoting: it quotes only a cell holding a comma, a quote or a line break (and a
    row of one empty cell), so such a row is its cells and commas."""
    spare = io.StringIO()
    writer = csv.writer(spare, lineterminator="\r\n")
    for row in rows:
        line = ",".join(row)
        if not line or '"' in line or "\n" in line or "\r" in line or line.count(",") >= len(row):
            spare.seek(0)
            spare.truncate()
            writer.writerow(row)
            yield spare.getvalue()
        else:
            yield line + "\r\n"


def report_text(days: Iterable[ClaimDayLike], fmt: str) -> str:
    """The CSV or JSON export as text (the PDF is drawn by Qt, under gui/), a day at a time."""
    if fmt == "csv":
        return csv_text(csv_lines(csv_rows(days)))
    if fmt == "json":
        return json.dumps(report_json(days), indent=2) + "\n"
    raise InvalidInput("format", f"{fmt!r} is not csv or json")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def session_json(session: Session) -> dict[str, Any]:
    """A session's header as JSON, the same for every command and export."""
    return {
        "id": session.id,
        "date_of_service": session.date_of_service.isoformat(),
        "patient_ref": session.patient_ref,
        "clinician": session.clinician,
        "role": session.role.value,
        "discipline": session.discipline.value,
        "payer_profile": session.payer_profile,
        "status": session.status.value,
        "amended": session.amended,
        "exported": session.exported,
        "origin": session.origin,
    }


def segment_json(segment: Segment) -> dict[str, Any]:
    """A recorded segment as JSON (times in UTC), the same for every command."""
    return {
        "id": segment.id,
        "code": segment.code,
        "furnished_by": segment.furnished_by.value,
        "start_utc": segment.start_utc.isoformat(),
        "stop_utc": _iso(segment.stop_utc),
    }


def claim_day_json(day: ClaimDayLike) -> dict[str, Any]:
    """One claim day for other programs: its sessions, then its answer in the `units` contract."""
    return {
        "date_of_service": day.date_of_service.isoformat(),
        "patient_ref": day.patient_ref,
        "discipline": day.discipline.value,
        "payer_profile": day.payer_profile,
        "status": day.status,
        "provisional": day.provisional,
        "pooled": day.pooled,
        "reference_looks_like_initials": day.initials_only,
        "nothing_billable": day.nothing_billable,
        "session_ids": list(day.session_ids),
        "billed_session_ids": list(day.billed_session_ids),
        "problems": [problem_json(p) for p in day.problems],
        "sessions": [
            {
                **session_json(v.session),
                "time_in_utc": _iso(v.time_in),
                "time_out_utc": _iso(v.time_out),
            }
            for v in day.visits
        ],
        **result_json(day.result),
    }


def report_json(days: Iterable[ClaimDayLike]) -> dict[str, Any]:
    """The range for other programs: one entry per claim day (R1.2), as the CSV groups it."""
    return {"claim_days": [claim_day_json(day) for day in days]}


# --------------------------------------------------------------------------------------------
# Bundles: one workstation's sessions, to merge into another's database


def make_bundle(
    records: Sequence[Mapping[str, Any]], *, workstation: str, now: dt.datetime
) -> dict[str, Any]:
    """Closed sessions with their ids, segments, untimed services and audit, for another station."""
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "workstation": workstation,
        "created_utc": now.isoformat(),
        "sessions": list(records),
    }


def bundle_text(bundle: Mapping[str, Any]) -> str:
    return json.dumps(bundle, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class ImportReport:
    """What merging bundles did: session ids added, already here, and kept aside (and where)."""

    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    conflicts: tuple[str, ...]
    conflict_files: tuple[Path, ...]
    why: tuple[str, ...] = ()  # for each conflict, in words


def read_bundle(path: Path) -> dict[str, Any]:
    """Load and check a bundle; every problem names the file and changes nothing."""
    raw = read_regular(path, limit=BUNDLE_MAX_BYTES, what="imported")
    shown = str(path)

    def refused(message: str) -> InvalidInput:
        return InvalidInput(shown, message, source=shown)

    try:
        # utf-8-sig: a bundle saved by Windows Notepad starts with a BOM; `units --request`
        # and the clinic's code file read one too.
        data = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise refused(f"is damaged: the key {exc.key!r} appears twice") from None
    except UnicodeDecodeError:
        raise refused("is not a bundle (not UTF-8 text)") from None
    except RecursionError:
        raise refused("is not a bundle (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise refused(f"is not a bundle (not valid JSON: {exc})") from None
    except ValueError:  # int() refuses more than 4,300 digits (CVE-2020-10735)
        raise refused(
            "is not a bundle (it holds a number too long to read, over 4,300 digits)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise refused("is not a Therapy Timer bundle")
    version = data.get("version")
    # type(...) is int: True and 1.0 equal 1 in Python but are not version 1 of the format.
    if type(version) is not int or version != BUNDLE_VERSION:
        raise refused(
            f"is bundle version {rules.quote(version)}; this version reads {BUNDLE_VERSION}"
        )
    if not isinstance(data.get("sessions"), list) or not isinstance(data.get("workstation"), str):
        raise refused("is damaged: sessions or workstation missing")
    # The workstation becomes each session's origin and part of every audit actor.
    data["workstation"] = label_text(data["workstation"], f"{shown}: workstation", source=shown)
    return data


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:80]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: with a repeated one, which would count?"""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedKey(key)
        result[key] = value
    return result


def conflict_path(folder: Path, session_id: str, workstation: str, version: str = "") -> Path:
    """Where a conflicting version is kept aside: one file per session, station and version
    (``version`` names its content), so a later version never replaces an earlier one."""
    suffix = f"-{_safe(version)[:12]}" if version else ""
    return folder / f"{_safe(session_id)}-from-{_safe(workstation)}{suffix}.json"


def conflict_text(why: str, record: Mapping[str, Any]) -> str:
    return json.dumps({"why": why, "session": record}, indent=2, sort_keys=True)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40] or "unknown"
