"""Pure billing rules: minutes per code become units, modifiers, warnings and a note.

Every rule cites the section of ``shared/billing-rules.md`` it implements (R-numbers, §-numbers);
``docs/billing-rules.md`` explains each rule and each choice made where the sources leave one open.
No Qt, no SQLite and no clock here: the same inputs always give the same answer. The JSON form of
requests and answers lives in ``contract.py``.
"""

from __future__ import annotations

import datetime as dt
import reprlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import field
from enum import StrEnum
from itertools import combinations, islice
from math import comb
from typing import Any, Final

from therapy_timer.codes import (
    MAX_DAY_MINUTES,
    Catalogue,
    Code,
    Discipline,
    Kind,
    article,
    builtin_catalogue,
)
from therapy_timer.codes import Method as Method  # re-exported: a Request names its method
from therapy_timer.errors import InvalidInput
from therapy_timer.frozen import from_fields, frozen_record

UNIT_MINUTES = 15

MAX_ALTERNATIVES = 50
"""Ties among many codes can make thousands of allocations; list this many, and say so."""

CQ_CO_FIRST_DATE = dt.date(2020, 1, 1)  # R7.1: required from DOS 1 Jan 2020
CY2022_REVISION_DATE = dt.date(2022, 1, 1)  # R7.6, R7.7 and §11 Q2

DISCIPLINE_MODIFIER = {Discipline.PT: "GP", Discipline.OT: "GO", Discipline.SLP: "GN"}  # R6.1
ASSISTANT_MODIFIER = {Discipline.PT: "CQ", Discipline.OT: "CO"}  # R7.1: none exists for SLP
DISCIPLINE_NAME = {
    Discipline.PT: "Physical therapy",
    Discipline.OT: "Occupational therapy",
    Discipline.SLP: "Speech-language pathology",
}

# R8.4 and R9.3: the one-on-one codes the group code is edited against.
ONE_ON_ONE_RANGE = ("97110", "97542")


METHOD_NAME = {
    Method.CMS: "CMS total-time method (8-minute rule)",
    Method.AMA: "AMA/CPT per-code method (midpoint rule)",
}


_set = object.__setattr__  # the records are frozen: their own __init__ sets fields through this


class Severity(StrEnum):
    """How urgently a warning needs a person (docs/billing-rules.md, "Warnings")."""

    ACT = "act"  # the biller must look before the claim goes out
    INFO = "info"  # worth knowing; the billing is right as it stands


@frozen_record
class Request:
    """One patient's claim day under one plan of care, as minutes per code.

    A claim day is one patient, one date of service, one plan of care and one payer: every
    session of that day is pooled into one request before units are counted (R1.2).
    ``assistant_minutes`` are the minutes a PTA/OTA furnished *separately* from the therapist;
    they are part of the code's minutes. Joint minutes belong to the therapist (R7.5).
    ``allocation`` picks one of the valid CMS allocations when a tie allows a choice (R2.8).
    ``assistant_untimed`` names untimed codes a PTA/OTA furnished, in whole or in part, with
    no minutes recorded for their part (R7.4): a supervised modality's minutes are optional.
    """

    method: Method
    discipline: Discipline
    timed: Mapping[str, int]
    assistant_minutes: Mapping[str, int] = field(default_factory=dict)
    untimed: Sequence[str] = ()
    untimed_minutes: Mapping[str, int] = field(default_factory=dict)
    date_of_service: dt.date | None = None
    assistant_modifiers: bool = True  # R7.10: a payer profile may not use CQ/CO
    allocation: Mapping[str, int] | None = None
    assistant_untimed: Sequence[str] = ()

    def __init__(
        self,
        method: Method,
        discipline: Discipline,
        timed: Mapping[str, int],
        assistant_minutes: Mapping[str, int] | None = None,
        untimed: Sequence[str] = (),
        untimed_minutes: Mapping[str, int] | None = None,
        date_of_service: dt.date | None = None,
        assistant_modifiers: bool = True,
        allocation: Mapping[str, int] | None = None,
        assistant_untimed: Sequence[str] = (),
    ) -> None:
        # None stands for the field's default_factory: a new empty dict each time.
        _set(
            self,
            "__dict__",
            {
                "method": method,
                "discipline": discipline,
                "timed": timed,
                "assistant_minutes": {} if assistant_minutes is None else assistant_minutes,
                "untimed": untimed,
                "untimed_minutes": {} if untimed_minutes is None else untimed_minutes,
                "date_of_service": date_of_service,
                "assistant_modifiers": assistant_modifiers,
                "allocation": allocation,
                "assistant_untimed": assistant_untimed,
            },
        )


@frozen_record
class RuleWarning:
    """Something a person should look at; never a silent change to the billing.

    ``gist`` is a few plain words a day view can show wherever the rule number appears;
    ``severity`` says whether the biller must act or it is for information.
    """

    rule: str
    message: str
    severity: Severity = Severity.ACT
    gist: str = ""

    def __init__(
        self, rule: str, message: str, severity: Severity = Severity.ACT, gist: str = ""
    ) -> None:
        _set(
            self, "__dict__", {"rule": rule, "message": message, "severity": severity, "gist": gist}
        )


@frozen_record
class CodeResult:
    """One code's minutes and units in an answer."""

    code: str
    description: str
    kind: Kind
    minutes: int
    assistant_minutes: int
    units: int
    minutes_recorded: bool = True  # False for an untimed code whose minutes nobody gave

    def __init__(
        self,
        code: str,
        description: str,
        kind: Kind,
        minutes: int,
        assistant_minutes: int,
        units: int,
        minutes_recorded: bool = True,
    ) -> None:
        _set(
            self,
            "__dict__",
            {
                "code": code,
                "description": description,
                "kind": kind,
                "minutes": minutes,
                "assistant_minutes": assistant_minutes,
                "units": units,
                "minutes_recorded": minutes_recorded,
            },
        )


@frozen_record
class Line:
    """One billable claim line: a code, its units and its modifiers (GP/GO/GN, CQ/CO only)."""

    code: str
    units: int
    modifiers: tuple[str, ...]

    def __init__(self, code: str, units: int, modifiers: tuple[str, ...]) -> None:
        _set(self, "__dict__", {"code": code, "units": units, "modifiers": modifiers})

    @property
    def label(self) -> str:
        """The line as every screen, report and day line shows it: the units, a multiplication
        sign and the billed code, e.g. "2 (times) 97110-GP-CQ".

        The note writes the same line with a plain "x" (it is pasted into charts as ASCII text,
        and the answers of ``units`` are fixed by the golden file); both use ``billed_code``.
        """
        return f"{self.units} \N{MULTIPLICATION SIGN} {billed_code(self.code, self.modifiers)}"


def billed_code(code: str, modifiers: Iterable[str]) -> str:
    """A code as a claim line bills it, its modifiers after it: "97110-GP-CQ" (R6.1, R7.1)."""
    return "-".join((code, *modifiers))


@frozen_record
class Result:
    """The whole answer for one claim day (``evaluate``)."""

    method: Method
    discipline: Discipline
    date_of_service: dt.date | None
    total_timed_minutes: int
    total_timed_units: int
    total_treatment_minutes: int
    codes: tuple[CodeResult, ...]
    lines: tuple[Line, ...]
    allocation: Mapping[str, int]
    alternatives: tuple[Mapping[str, int], ...]
    warnings: tuple[RuleWarning, ...]
    note: str

    def __init__(
        self,
        method: Method,
        discipline: Discipline,
        date_of_service: dt.date | None,
        total_timed_minutes: int,
        total_timed_units: int,
        total_treatment_minutes: int,
        codes: tuple[CodeResult, ...],
        lines: tuple[Line, ...],
        allocation: Mapping[str, int],
        alternatives: tuple[Mapping[str, int], ...],
        warnings: tuple[RuleWarning, ...],
        note: str,
    ) -> None:
        _set(
            self,
            "__dict__",
            {
                "method": method,
                "discipline": discipline,
                "date_of_service": date_of_service,
                "total_timed_minutes": total_timed_minutes,
                "total_timed_units": total_timed_units,
                "total_treatment_minutes": total_treatment_minutes,
                "codes": codes,
                "lines": lines,
                "allocation": allocation,
                "alternatives": alternatives,
                "warnings": warnings,
                "note": note,
            },
        )


def _line(code: str, units: int, modifiers: tuple[str, ...]) -> Line:
    line: Line = from_fields(Line, {"code": code, "units": units, "modifiers": modifiers})
    return line


# --------------------------------------------------------------------------------------------
# Quoting what a person gave, briefly

QUOTE_LIMIT: Final = 80
"""Messages quote at most this many characters of what the user gave."""

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def quote(value: object) -> str:
    """A short repr of ``value`` for an error message: never longer than QUOTE_LIMIT.

    Huge integers are described, not printed (printing one over 4,300 digits raises).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a number of about {value.bit_length() * 30103 // 100000 + 1} digits"
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # an int inside a container too long to print
        text = f"a {type(value).__name__}"
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 3] + "..."
    return text


def key_text(raw: object) -> str:
    """A field name built from a key someone typed (e.g. ``timed.97110``), kept short."""
    text = raw[:40] if isinstance(raw, str) else quote(raw)
    if not text.isprintable():  # a newline or control character would break the sentence
        text = repr(text)[1:-1]
    return text if len(text) <= 20 else text[:17] + "..."


# --------------------------------------------------------------------------------------------
# Unit arithmetic


def cms_total_units(total_timed_minutes: int) -> int:
    """R2.2/R2.3: the unit chart in closed form; 0 under 8 minutes (R2.4)."""
    return (total_timed_minutes + 7) // UNIT_MINUTES


def ama_units(minutes: int) -> int:
    """R3.1/R3.2: a unit is attained when the midpoint (8 of 15 minutes) is passed, per code."""
    return (minutes + 7) // UNIT_MINUTES


class CmsSplit:
    """The shape of every valid CMS allocation of a day's timed units (R2.5-R2.8).

    Every code gets ``base`` (its whole 15-minute units, R2.5); every code in ``sure`` gets one
    unit more (its leftover beats the cut, R2.6); ``need`` of the ``tied`` codes get one more
    each, and any ``need`` of them will do (R2.8). ``count`` valid allocations exist.
    A plain class, not a dataclass: one is built per request, and generating a dataclass's
    methods costs start-up time (issue 13).
    """

    __slots__ = ("base", "need", "sure", "tied")

    def __init__(
        self, base: dict[str, int], sure: tuple[str, ...], tied: tuple[str, ...], need: int
    ) -> None:
        self.base = base
        self.sure = sure
        self.tied = tied
        self.need = need

    @property
    def count(self) -> int:
        return comb(len(self.tied), self.need)

    def allocation(self, chosen: Iterable[str]) -> dict[str, int]:
        allocation = self.base.copy()
        for code in self.sure:
            allocation[code] += 1
        for code in chosen:
            allocation[code] += 1
        return allocation


def cms_split(minutes: Mapping[str, int]) -> CmsSplit:
    """R2.5-R2.8 for one claim day's pooled timed minutes.

    R2.5: each code first gets its whole 15-minute units. R2.6: the remaining units go one each
    to the codes with the largest leftover minutes (R2.9 is the case of codes under 8 minutes).
    R2.7(a): the remaining units never outnumber the codes with a leftover, so no code gets more
    than base + 1. R2.8: codes that tie on leftover minutes at the cut may take the unit in any
    combination; they are returned as ``tied`` rather than enumerated (20 tied codes would make
    184,756 allocations).
    """
    base: dict[str, int] = {}
    leftover: dict[str, int] = {}
    total = whole = 0
    for code, m in minutes.items():
        units = base[code] = m // UNIT_MINUTES
        whole += units
        total += m
        if m != units * UNIT_MINUTES:
            leftover[code] = m - units * UNIT_MINUTES
    extra = cms_total_units(total) - whole
    if extra == 0:
        return CmsSplit(base, (), (), 0)
    if extra == len(leftover):  # every code with a leftover gets its unit: nothing to choose
        return CmsSplit(base, tuple(leftover), (), 0)
    cut = sorted(leftover.values(), reverse=True)[extra - 1]
    sure = tuple(c for c, left in leftover.items() if left > cut)
    tied = tuple(c for c, left in leftover.items() if left == cut)
    need = extra - len(sure)
    if need == len(tied):  # every tied code gets its unit: no choice to make
        return CmsSplit(base, sure + tied, (), 0)
    return CmsSplit(base, sure, tied, need)


class AssistantSplit:
    """How many of a code's units carry CQ/CO (R7.4-R7.7) and why, for one code."""

    __slots__ = ("warnings", "with_modifier", "without_modifier")

    def __init__(
        self, with_modifier: int, without_modifier: int, warnings: tuple[RuleWarning, ...] = ()
    ) -> None:
        self.with_modifier = with_modifier
        self.without_modifier = without_modifier
        self.warnings = warnings


def _exceeds_ten_percent(assistant: int, total: int) -> bool:
    """R7.4(B): the assistant's separate minutes *exceed* 10% of the minutes (10% exactly does not).

    Written as 10 * a > total to stay in whole numbers: CMS's "percentage method" (§7.5).
    """
    return 10 * assistant > total


def _simple_method_disagrees(assistant: int, total: int) -> bool:
    """§7.5: CMS's "simple method" (total / 10, rounded, + 1) can disagree with the percentage."""
    threshold = (total + 5) // 10 + 1  # total/10 rounded half up, plus one
    return (assistant >= threshold) != _exceeds_ten_percent(assistant, total)


def _ten_percent_test(
    code: str, assistant: int, total: int, modifier: str
) -> tuple[bool, tuple[RuleWarning, ...]]:
    applies = _exceeds_ten_percent(assistant, total)
    if not _simple_method_disagrees(assistant, total):
        return applies, ()
    verdict = "applies" if applies else "does not apply"
    other = "would not apply" if applies else "would apply"
    return applies, (
        RuleWarning(
            "R7.4",
            f"{code}: the assistant furnished {assistant} of {total} minutes. By the regulation's "
            f"words (more than 10%), {modifier} {verdict}; CMS's 'simple method' {other}. "
            "We follow the regulation; check with your payer if it uses the simple method.",
            Severity.ACT,
            "10% test: CMS's two methods disagree",
        ),
    )


def _unrecorded_warnings(code: str, therapist: int, modifier: str) -> tuple[RuleWarning, ...]:
    """R7.4 for an untimed service an assistant furnished a part of without minutes: in whole
    (A) when nobody else recorded any, else the 10% test (B) cannot be run."""
    if not therapist:
        return ()
    return (
        RuleWarning(
            "R7.4",
            f"{code}: an assistant furnished a part with no minutes recorded, beside the "
            f"therapist's {therapist} minutes, so the 10% test cannot be run: {modifier} is "
            "added, the safe reading. Record the assistant's minutes to test it.",
            Severity.ACT,
            "Assistant's minutes not recorded",
        ),
    )


def _assistant_untimed(
    request: Request, memo: _Memo, untimed: Mapping[str, int | None]
) -> frozenset[str]:
    """``Request.assistant_untimed`` checked: untimed codes of the request, each once."""
    listed = request.assistant_untimed
    if isinstance(listed, str | bytes | Mapping) or not isinstance(listed, Sequence):
        raise InvalidInput("assistant_untimed", f"must be a list of codes, got {quote(listed)}")
    codes: set[str] = set()
    for i, raw in enumerate(listed):
        code = memo.code(raw, "assistant_untimed", i).code
        where = f"assistant_untimed[{i}]"
        if code not in untimed:
            raise InvalidInput(where, f"{code} is not listed under untimed")
        if code in codes:
            raise InvalidInput(where, f"{code} is listed twice")
        codes.add(code)
    return frozenset(codes)


def assistant_split(
    code: str,
    units: int,
    minutes: int,
    assistant: int,
    modifier: str,
    revised: bool,
) -> AssistantSplit:
    """Split a timed code's units into those with and without CQ/CO (§7.3 reference algorithm).

    R7.4 applies the 10% test per unit; whole 15-minute blocks belong to whoever furnished them.
    R7.6 (2022+): the final unit is billed without the modifier when the therapist furnished 8 or
    more of its minutes. R7.7 (2022+): two remaining units with 9-14 minutes each are billed one
    with and one without. §11 Q2: before 2022 only the 10% test applied. §11 Q1: other splits of
    two remaining units have no sourced answer, so they are flagged, not guessed. ``revised``:
    the date of service is in 2022 or later, or not given (see ``_revised``).
    """
    therapist = minutes - assistant
    full_therapist, full_assistant = therapist // UNIT_MINUTES, assistant // UNIT_MINUTES
    remaining = units - full_therapist - full_assistant
    left_t, left_a = therapist % UNIT_MINUTES, assistant % UNIT_MINUTES
    # R2.5 gives every code at least its whole blocks, and R2.7(a) at most one unit more.
    assert 0 <= remaining <= 2, (code, units, minutes, assistant)
    if remaining == 0:
        return AssistantSplit(full_assistant, full_therapist)
    if left_a == 0:
        return AssistantSplit(full_assistant, full_therapist + remaining)
    if left_t == 0:
        return AssistantSplit(full_assistant + remaining, full_therapist)
    if remaining == 1:
        if revised and left_t >= 8:  # R7.6
            return AssistantSplit(full_assistant, full_therapist + 1)
        applies, notes = _ten_percent_test(code, left_a, left_t + left_a, modifier)
        if applies:
            return AssistantSplit(full_assistant + 1, full_therapist, notes)
        return AssistantSplit(full_assistant, full_therapist + 1, notes)
    # remaining == 2: the leftovers filled one unit and the code also won an extra unit (R2.6).
    # R7.7 (410.60(a)(4)(v)): each furnished 9-14 minutes and together at least 23; CMS's list
    # of qualifying splits (86 FR 65173-65174) has no pair under 23.
    if revised and 9 <= left_t <= 14 and 9 <= left_a <= 14 and left_t + left_a >= 23:
        return AssistantSplit(full_assistant + 1, full_therapist + 1)
    applies, notes = _ten_percent_test(code, left_a, left_t + left_a, modifier)
    if not revised:  # §11 Q2: the 2020-2021 de minimis test, without (iv) and (v)
        if applies:
            return AssistantSplit(full_assistant + 2, full_therapist, notes)
        return AssistantSplit(full_assistant, full_therapist + 2, notes)
    carried = "both carry" if applies else "neither carries"
    warning = RuleWarning(
        "R7.7",
        f"{code}: two units remain after whole 15-minute blocks, from {left_t} therapist and "
        f"{left_a} assistant minutes. The 9-14 minute rule (each 9-14, together 23 or more) "
        "does not cover this and no source "
        f"settles it (§11 Q1): {carried} {modifier} for now, the safe reading of the 10% test. "
        f"Review by hand; one unit with {modifier} and one without is also plausible.",
        Severity.ACT,
        "CQ/CO split of two units: review by hand",
    )
    if applies:
        return AssistantSplit(full_assistant + 2, full_therapist, (*notes, warning))
    return AssistantSplit(full_assistant, full_therapist + 2, (*notes, warning))


# --------------------------------------------------------------------------------------------
# What depends only on the catalogue or on a set of codes, computed once


class _Row:
    """One code's facts for its claim lines and its row of the note, under one plan of care.

    ``outcomes`` caches what the code contributes to an answer (its CodeResult, lines, note row,
    whether it is billed, its warnings) by the few numbers that decide it: a clinic's days repeat
    the same minutes per code far more often than they repeat whole requests.
    """

    # Outcomes kept per code (~2 KB each with their encoded text in the contract): a clinic's
    # days take a few hundred values per code; 100,000 random benchmark requests took 13,177
    # outcomes in 22 codes, at most 960 in one (29 MiB with the other caches).
    LIMIT = 4096

    __slots__ = (
        "assisted",
        "assisted_text",
        "bit",
        "code",
        "entry",
        "head",
        "outcomes",
        "plain",
        "plain_text",
        "pooled",
        "untimed",
    )

    def __init__(self, code: str, entry: Code, discipline: Discipline, bit: int) -> None:
        # R6.1/R6.3: the plan of care decides, even for a code listed for one discipline alone;
        # R6.2: only a discipline's evaluation or re-evaluation keeps its own.
        own = (entry.own_discipline if entry.evaluation else None) or discipline
        self.code = code
        self.bit = bit  # the code's bit in a set of billed codes (``_Memo.bit``)
        self.entry = entry
        self.plain = (DISCIPLINE_MODIFIER[own],)  # R6.1
        self.plain_text = billed_code(code, self.plain)
        amod = ASSISTANT_MODIFIER.get(own)  # R7.1: CQ only with GP, CO only with GO
        self.assisted = (DISCIPLINE_MODIFIER[own], amod) if amod else None
        self.assisted_text = billed_code(code, self.assisted or ())
        self.head = f"  {code} {entry.description}: "
        self.pooled = entry.kind is Kind.TIMED  # R2.1: plain 15-minute codes are pooled
        self.untimed = entry.kind is Kind.UNTIMED
        self.outcomes: dict[tuple[int | None, ...], _Outcome] = {}


_Outcome = tuple[
    "CodeResult", tuple["Line", ...], str, int, tuple["RuleWarning", ...], "RuleWarning | None"
]
"""A code's part of an answer: its result, its lines, its row of the note, its bit if it is
billed (else 0), its warnings (§5.3 for a code counted by hand, R7.4/R7.7 for a CQ/CO split)
and its R9.4 warning when its units exceed the clinic's MUE for it (else None)."""


def _row_outcome(
    row: _Row,
    given: int | None,
    units: int,
    helped: int,
    cq_allowed: bool,
    revised: bool,
    unrecorded: bool = False,
) -> _Outcome:
    """One code's lines (R6.1, R7.1-R7.7), result (R1.1: an untimed code is 1 unit) and its row
    of the note (R4.1: every code, billed or not). ``given`` is None for an untimed code whose
    minutes nobody gave; ``unrecorded``: an assistant furnished a part of this untimed code with
    no minutes recorded for it (``Request.assistant_untimed``)."""
    code, entry = row.code, row.entry
    minutes = given or 0
    minutes_text = f"{minutes} min" if given is not None else "minutes not recorded"
    code_result: CodeResult = from_fields(
        CodeResult,
        {
            "code": code,
            "description": entry.description,
            "kind": entry.kind,
            "minutes": minutes,
            "assistant_minutes": helped,
            "units": units,
            "minutes_recorded": given is not None,
        },
    )
    if helped:
        minutes_text += f" (therapist {minutes - helped}, assistant {helped})"
    if unrecorded:
        minutes_text += (
            ", and an assistant's part without minutes"
            if given is not None
            else " (an assistant furnished all or part of it)"
        )
    lines: tuple[Line, ...] = ()
    warnings: tuple[RuleWarning, ...] = ()
    over: RuleWarning | None = None
    if entry.kind is Kind.SPECIAL:
        billed = bool(minutes)  # counted by hand: assume it is billed (safer for R9.3)
        outcome = "units counted by hand (not a 15-minute code)"
        # R9.4: the engine has no units to hold to the MUE, so the person counting them does.
        cap = "" if entry.mue is None else f" (its MUE: {units_text(entry.mue)} a day)"
        warnings = (
            RuleWarning(
                "§5.3",
                f"{code} ({minutes} min) is not a plain 15-minute code and is not pooled: "
                f"{entry.handling} Count its units by hand{cap}.",
                Severity.ACT,
                "Count units by hand",
            ),
        )
    elif units == 0:
        billed = False
        outcome = "not billed (0 units)"
    else:
        billed = True
        if not ((helped or unrecorded) and cq_allowed and row.assisted and entry.assistant_allowed):
            lines = (_line(code, units, row.plain),)
            outcome = f"{units_text(units)}: {units} x {row.plain_text}"
        else:
            assisted = row.assisted
            if not row.untimed:
                part = assistant_split(code, units, minutes, helped, assisted[1], revised)
            elif unrecorded:
                part = AssistantSplit(
                    1, 0, _unrecorded_warnings(code, minutes - helped, assisted[1])
                )
            else:
                applies, notes = _ten_percent_test(code, helped, minutes, assisted[1])
                part = AssistantSplit(1, 0, notes) if applies else AssistantSplit(0, 1, notes)
            warnings = part.warnings
            parts = []
            if part.with_modifier:
                lines += (_line(code, part.with_modifier, assisted),)
                parts.append(f"{part.with_modifier} x {row.assisted_text}")
            if part.without_modifier:
                lines += (_line(code, part.without_modifier, row.plain),)
                parts.append(f"{part.without_modifier} x {row.plain_text}")
            outcome = f"{units_text(units)}: {', '.join(parts)}"
        if entry.mue is not None and units > entry.mue:
            over = _mue_warning(code, units, entry.mue)
    bit = row.bit if billed else 0
    return code_result, lines, f"{row.head}{minutes_text} - {outcome}", bit, warnings, over


class _Shape:
    """Facts about one set of codes under one plan of care (they never depend on minutes)."""

    __slots__ = ("assisted", "evaluations", "mues", "note_rows", "pooled", "rows", "warnings")

    def __init__(
        self,
        discipline: Discipline,
        entries: Mapping[str, Code],
        rows: dict[str, _Row],
        memo: _Memo,
    ) -> None:
        # Timed codes first, then the others, each by number. ``rows``: the plan of care's rows
        # so far, shared by every set of codes (a code's outcome does not depend on the others).
        ordered = sorted(entries, key=lambda c: (entries[c].kind is not Kind.TIMED, c))
        for code in ordered:
            if code not in rows:
                rows[code] = _Row(code, entries[code], discipline, memo.bit(code))
        self.rows = tuple(rows[code] for code in ordered)
        self.pooled = tuple(row.code for row in self.rows if row.pooled)
        # The note lists the timed (and special) rows, then the untimed: which rows are which,
        # None when no row is untimed.
        untimed = tuple(i for i, row in enumerate(self.rows) if row.untimed)
        timed = tuple(i for i, row in enumerate(self.rows) if not row.untimed)
        self.note_rows = (timed, untimed) if untimed else None
        # R7.1: each code's modifiers with CQ/CO, None where none applies (for ties).
        self.assisted = {row.code: row.assisted for row in self.rows}
        # R7.9: the codes only a therapist may furnish (evaluations), by number.
        self.evaluations = tuple(c for c in sorted(entries) if not entries[c].assistant_allowed)
        self.mues = any(entry.mue is not None for entry in entries.values())  # R9.4, for ties
        self.warnings = tuple(_catalogue_warnings(discipline, entries, ordered))  # R6.3, §5.2


class _Plan:
    """What the codes of a request decide, checked once for every request naming them alike."""

    __slots__ = ("entries", "shape")

    def __init__(self, entries: dict[str, Code], shape: _Shape) -> None:
        self.entries = entries
        self.shape = shape


_Checked = tuple[_Plan, Mapping[str, int], Mapping[str, int], dict[str, int | None]]


class _Memo:
    """Caches for one catalogue.

    Profiling 100,000 requests (benchmarks/bench_units.py) showed most of a request's time in
    work that depends only on which codes a request names: checking and looking up the codes,
    the code-pair warnings (R9.3), sorting codes, and the per-code text of the note.
    """

    LIMIT = 4096  # entries per cache; a clinic's days name a few hundred code sets at most

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.codes: dict[str, Code] = {}
        self.shapes: dict[tuple[Discipline, frozenset[str]], _Shape] = {}
        self.bits: dict[str, int] = {}
        self.pairs: dict[int, tuple[RuleWarning, ...]] = {}
        self.plans: dict[tuple[object, ...], _Plan] = {}
        self.heads: dict[tuple[dt.date | None, Discipline, Method], str] = {}
        self.minutes: dict[tuple[object, ...], tuple[RuleWarning, ...]] = {}
        self.rows: dict[Discipline, dict[str, _Row]] = {}

    def code(self, raw: object, where: str, index: int | None = None) -> Code:
        """The catalogue entry for a code someone typed; errors name ``where``."""
        entry = self.codes.get(raw) if type(raw) is str else None
        if entry is not None:
            return entry
        field_name = f"{where}[{index}]" if index is not None else f"{where}.{key_text(raw)}"
        if not isinstance(raw, str):
            raise InvalidInput(field_name, f"a billing code must be text, got {quote(raw)}")
        if len(raw) > 16:
            raise InvalidInput(
                field_name,
                f"{quote(raw)} is not a billing code (five digits, or a letter and four digits)",
            )
        entry = self.catalogue.get(raw, field_name)
        if len(self.codes) < self.LIMIT:
            self.codes[raw] = entry
        return entry

    def checked(self, request: Request) -> _Checked:
        """The request's codes and minutes, checked; errors name the field at fault.

        A request that names the same codes as an earlier valid one, each written exactly as
        the catalogue writes it, only has its numbers checked; anything else, and any number
        out of bounds, goes through ``_checked``, which finds the first mistake in the order a
        person reads the request. The codes' order never changes an answer, so it is no part
        of the key; the untimed list's is, as a list may name a code twice.
        """
        timed, untimed_list = request.timed, request.untimed
        given, helped = request.untimed_minutes, request.assistant_minutes
        key: tuple[object, ...] | None = None
        if not (untimed_list or given or helped) and type(timed) is dict:
            # Timed minutes alone, the most common request: a shorter key, only they to check.
            key = (request.discipline, frozenset(timed))
            plan = self.plans.get(key)
            if plan is not None:
                total = 0
                for value in timed.values():
                    if type(value) is not int or value < 0:
                        break
                    total += value
                else:
                    if total <= MAX_DAY_MINUTES:  # then so is each value
                        return plan, timed, helped, _NO_UNTIMED
        elif (
            type(timed) is dict
            and type(given) is dict
            and type(helped) is dict
            and type(untimed_list) in (tuple, list)
        ):
            key = (
                request.discipline,
                frozenset(timed),
                tuple(untimed_list),
                frozenset(given) if given else None,
                frozenset(helped) if helped else None,
            )
            try:
                plan = self.plans.get(key)
            except TypeError:  # an unhashable item in the untimed list: refused below
                plan = key = None
            if plan is not None:
                checked = _numbers(plan, timed, untimed_list, given, helped)
                if checked is not None:
                    return checked
        entries, codes, assistant, untimed = _checked(request, self)
        plan = _Plan(entries, self.shape(request.discipline, entries))
        if key is not None and all(
            raw in entries for group in (timed, untimed_list, given, helped) for raw in group
        ):
            if len(self.plans) >= self.LIMIT:
                self.plans.clear()
            self.plans[key] = plan
        return plan, codes, assistant, untimed

    def shape(self, discipline: Discipline, entries: Mapping[str, Code]) -> _Shape:
        key = (discipline, frozenset(entries))
        shape = self.shapes.get(key)
        if shape is None:
            shape = _Shape(discipline, entries, self.rows.setdefault(discipline, {}), self)
            if len(self.shapes) >= self.LIMIT:
                self.shapes.clear()
            self.shapes[key] = shape
        return shape

    def bit(self, code: str) -> int:
        """The code's bit: a set of billed codes is the sum of their bits (an int is cheaper to
        gather and to look up than a tuple or frozenset of codes)."""
        bit = self.bits.get(code)
        if bit is None:
            bit = self.bits[code] = 1 << len(self.bits)
        return bit

    def pair_warnings(self, billed: int, rows: Sequence[_Row]) -> tuple[RuleWarning, ...]:
        """R8.4/R9.3 warnings depend only on the set of billed codes (``billed``: their bits;
        ``rows``: the request's rows, among which they are)."""
        warnings = self.pairs.get(billed)
        if warnings is None:
            entries = {row.code: row.entry for row in rows if row.bit & billed}
            warnings = tuple(_combination_warnings(entries))
            if len(self.pairs) >= self.LIMIT:
                self.pairs.clear()
            self.pairs[billed] = warnings
        return warnings

    def minute_warnings(
        self, method: Method, unbilled: list[str], total_timed: int
    ) -> tuple[RuleWarning, ...]:
        """R2.4, R2.10, R3.2: they depend on the unbilled codes' minutes, and on the total only
        under 8 minutes, so one warning object serves every day with the same minutes."""
        key = (method, min(total_timed, 8), *unbilled)
        warnings = self.minutes.get(key)
        if warnings is None:
            warnings = tuple(_minute_warnings(method, unbilled, total_timed))
            if len(self.minutes) >= self.LIMIT:
                self.minutes.clear()
            self.minutes[key] = warnings
        return warnings

    def head(self, request: Request) -> str:
        """The note's first three lines (R4.1): date of service, plan of care, method."""
        key = (request.date_of_service, request.discipline, request.method)
        head = self.heads.get(key)
        if head is None:
            dos = request.date_of_service
            head = (
                f"Date of service: {dos.isoformat() if dos else 'not given'}\n"
                f"{_PLAN_LINE[request.discipline]}\n{_METHOD_LINE[request.method]}"
            )
            if len(self.heads) >= self.LIMIT:
                self.heads.clear()
            self.heads[key] = head
        return head


def _numbers(
    plan: _Plan,
    timed: dict[str, int],
    untimed_list: Sequence[str],
    given: dict[str, int],
    helped: dict[str, int],
) -> _Checked | None:
    """The minutes of a request whose codes ``plan`` checked, or None if any is out of bounds
    (then ``_checked`` names it)."""
    total = 0
    for value in timed.values():
        if type(value) is not int or not 0 <= value <= MAX_DAY_MINUTES:
            return None
        total += value
    if total > MAX_DAY_MINUTES:
        return None
    untimed: dict[str, int | None] = dict.fromkeys(untimed_list)
    for code, value in given.items():
        if type(value) is not int or not 0 <= value <= MAX_DAY_MINUTES:
            return None
        untimed[code] = value
    for code, value in helped.items():
        own = timed[code] if code in timed else untimed[code]
        if type(value) is not int or value < 0 or own is None or value > own:
            return None
    return plan, timed, helped, untimed


_NO_UNTIMED: dict[str, int | None] = {}  # shared, never changed: evaluate only reads it
_MEMOS: dict[int, _Memo] = {}


def _memo(catalogue: Catalogue) -> _Memo:
    # Keyed by identity: hashing a catalogue hashes every code in it. The memo holds the
    # catalogue, so its id cannot be reused while the entry lives.
    memo = _MEMOS.get(id(catalogue))
    if memo is None or memo.catalogue is not catalogue:
        if len(_MEMOS) >= 8:
            _MEMOS.clear()
        memo = _MEMOS[id(catalogue)] = _Memo(catalogue)
    return memo


def _catalogue_warnings(
    discipline: Discipline, entries: Mapping[str, Code], ordered: Sequence[str]
) -> Iterator[RuleWarning]:
    for code in ordered:
        entry = entries[code]
        if discipline not in entry.disciplines:
            owners = "/".join(sorted(d.value for d in entry.disciplines))
            yield RuleWarning(
                "R6.3",
                f"{code} belongs to {article(owners)} {owners} plan of care, not"
                f" {discipline.value}: "
                "each discipline bills under its own plan of care.",
                Severity.ACT,
                "Code outside this plan of care",
            )
        if entry.medicare_note:
            yield RuleWarning(
                "§5.2",
                f"{code}: {entry.medicare_note}",
                Severity.ACT,
                "Medicare codes it otherwise",
            )
        if entry.unlisted:
            yield RuleWarning(
                "§5.3",
                f"{code} is an unlisted code: how its time counts depends on what is "
                "reported. Confirm with the payer.",
                Severity.ACT,
                "Unlisted code: confirm with payer",
            )


# --------------------------------------------------------------------------------------------
# Validation of a request


def _minutes(value: object, where: str, raw: object, limit: int = MAX_DAY_MINUTES) -> int:
    if type(value) is int and 0 <= value <= limit:
        return value
    field_name = f"{where}.{key_text(raw)}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field_name, f"minutes must be a whole number, got {quote(value)}")
    if value < 0:
        raise InvalidInput(field_name, f"minutes cannot be negative, got {quote(value)}")
    raise InvalidInput(field_name, f"{quote(value)} minutes is more than a day holds ({limit})")


def _items(value: object, where: str) -> Iterable[tuple[Any, Any]]:
    if not isinstance(value, Mapping):
        raise InvalidInput(where, f"must be a mapping of code: minutes, got {quote(value)}")
    return value.items()


def _checked(
    request: Request, memo: _Memo
) -> tuple[dict[str, Code], dict[str, int], dict[str, int], dict[str, int | None]]:
    """Resolve every code and check every number; errors name the field at fault."""
    entries: dict[str, Code] = {}
    timed: dict[str, int] = {}
    for raw, value in _items(request.timed, "timed"):
        entry = memo.code(raw, "timed")
        code = entry.code
        if entry.kind is Kind.UNTIMED:
            raise InvalidInput(
                f"timed.{key_text(raw)}",
                f"{code} is untimed (one unit per service); list it under untimed",
            )
        if code in timed:
            raise InvalidInput(f"timed.{key_text(raw)}", f"{code} is listed twice")
        timed[code] = _minutes(value, "timed", raw)
        entries[code] = entry
    if sum(timed.values()) > MAX_DAY_MINUTES:
        raise InvalidInput("timed", "the timed minutes add up to more than a day holds")

    untimed: dict[str, int | None] = {}
    if request.untimed:
        if isinstance(request.untimed, str | bytes | Mapping):
            raise InvalidInput("untimed", f"must be a list of codes, got {quote(request.untimed)}")
        for i, raw in enumerate(request.untimed):
            entry = memo.code(raw, "untimed", i)
            code = entry.code
            if entry.kind is not Kind.UNTIMED:
                raise InvalidInput(
                    f"untimed[{i}]", f"{code} is a timed code; give its minutes under timed"
                )
            if code in untimed:
                raise InvalidInput(f"untimed[{i}]", f"{code} is listed twice")
            untimed[code] = None
            entries[code] = entry
    if request.untimed_minutes:
        given: set[str] = set()
        for raw, value in _items(request.untimed_minutes, "untimed_minutes"):
            code = memo.code(raw, "untimed_minutes").code
            if code not in untimed:
                raise InvalidInput(
                    f"untimed_minutes.{key_text(raw)}",
                    f"{code} has minutes but is not listed under untimed",
                )
            if code in given:
                raise InvalidInput(f"untimed_minutes.{key_text(raw)}", f"{code} is listed twice")
            given.add(code)
            untimed[code] = _minutes(value, "untimed_minutes", raw)

    assistant: dict[str, int] = {}
    if request.assistant_minutes:
        for raw, value in _items(request.assistant_minutes, "assistant_minutes"):
            code = memo.code(raw, "assistant_minutes").code
            where = f"assistant_minutes.{key_text(raw)}"
            if code in assistant:
                raise InvalidInput(where, f"{code} is listed twice")
            if code in timed:
                total = timed[code]
            elif untimed.get(code) is not None:
                total = untimed[code] or 0
            else:
                raise InvalidInput(
                    where, f"{code} has assistant minutes but no minutes of its own in the request"
                )
            minutes = _minutes(value, "assistant_minutes", raw)
            if minutes > total:
                raise InvalidInput(
                    where, f"assistant minutes ({minutes}) exceed the code's total ({total})"
                )
            assistant[code] = minutes
    return entries, timed, assistant, untimed


# --------------------------------------------------------------------------------------------
# Warnings about code combinations (R8.4, R9.3), only for codes actually billed


class _Codes:
    """Codes from 'A' or 'A-B' (numeric ranges of five-digit codes, or letter+4 digits).

    Tested without listing them (listing 97010-97799 cost start-up, issue 13): the ends of a
    range and every catalogue code are five characters of one form (``normalize_code``), so
    comparing their text compares their numbers, and a letter never falls in a digit range.
    """

    __slots__ = ("ranges",)

    def __init__(self, *items: str) -> None:
        ends = (item.partition("-") for item in items)
        self.ranges = tuple((low, high or low) for low, _, high in ends)

    def __contains__(self, code: str) -> bool:
        return len(code) == 5 and any(low <= code <= high for low, high in self.ranges)

    def among(self, codes: Iterable[str]) -> list[str]:
        """Those of ``codes`` in this set, sorted."""
        return sorted(c for c in codes if c in self)


class _Pair:
    """``across``: the source lets different disciplines report both with an NCCI-associated
    modifier, so the pair holds across a patient's claims of one date under two plans of care
    (``pairs_across_disciplines``)."""

    __slots__ = ("across", "first", "gist", "message", "second")

    def __init__(
        self,
        first: _Codes,
        second: _Codes,
        message: str,
        gist: str = "NCCI pair: modifier 59/X may apply",
        across: bool = False,
    ) -> None:
        self.first = first
        self.second = second
        self.message = message
        self.gist = gist
        self.across = across


PT_EVALUATIONS = _Codes("97161-97163")
ALL_EVALUATIONS = _Codes("97161-97168")
REEVALUATIONS = _Codes("97164", "97168")

# R9.3: only pairs with a source in billing-rules.md; 59/X{EPSU} is suggested, never applied (R9.2).
NCCI_PAIRS: tuple[_Pair, ...] = (
    _Pair(
        _Codes("97140"),
        PT_EVALUATIONS,
        "NCCI pairs 97140 with a PT evaluation (since January 2020): report both only if the "
        "manual therapy was a separate service, with 59 or an X modifier on 97140 (suggested, "
        "not applied).",
    ),
    _Pair(
        _Codes("97530", "97150"),
        _Codes("97164"),
        "NCCI pairs this code with the PT re-evaluation 97164: 59 or an X modifier is required "
        "to report both (suggested, not applied).",
    ),
    _Pair(
        _Codes("97530", "97150"),
        _Codes("97161-97163", "97165-97167"),
        "NCCI introduced hard edits for this code with an evaluation in 2020, withdrew them and "
        "announced their return; their current status is not confirmed. Check the current "
        "quarterly PTP table before billing both.",
        "NCCI edit: check the current PTP table",
    ),
    _Pair(
        _Codes("97750", "97755", "97763"),
        ALL_EVALUATIONS,
        "Not separately reportable with an evaluation or re-evaluation on the same date by the "
        "same practitioner or specialty; a different discipline may report both with an "
        "NCCI-associated modifier.",
        "NCCI: not billed together",
        across=True,
    ),
    _Pair(
        _Codes("97760", "97761"),
        REEVALUATIONS,
        "Not separately reportable with a re-evaluation on the same date by the same practitioner "
        "or specialty; a different discipline may report both with an NCCI-associated modifier.",
        "NCCI: not billed together",
        across=True,
    ),
    _Pair(
        _Codes("97140"),
        _Codes("97530"),
        "NCCI pairs 97140 and 97530: 59 is appropriate only if they were done in distinct "
        "15-minute blocks (split blocks allowed), never in the same block. Some commercial "
        "payers deny 97530-59.",
    ),
    _Pair(
        _Codes("97112", "97124", "97140"),
        _Codes("98940-98942"),
        "Not separately reportable in a spinal region treated with chiropractic manipulation; "
        "a different region may take 59 or XS (suggested, not applied).",
    ),
    _Pair(
        _Codes("97597-97602"),
        _Codes("11042-11047"),
        "Active wound care is not reported with surgical debridement of the same wound.",
        "NCCI: not billed together",
    ),
    _Pair(
        _Codes("97602"),
        _Codes("97597", "97598"),
        "97602 is not reported with 97597/97598.",
        "NCCI: not billed together",
    ),
    _Pair(
        _Codes("97010-97799"),
        _Codes("G0237-G0239"),
        "Therapy at the same encounter as respiratory therapy G0237-G0239 is included, not "
        "separately reportable; a separate encounter takes an NCCI-associated modifier.",
        "NCCI: included, not billed separately",
    ),
)


def _combination_warnings(billed: Mapping[str, Code]) -> list[RuleWarning]:
    """R8.4/R9.3 for the codes billed on the claim day (a code with 0 units draws no edit)."""
    warnings = []
    codes = set(billed)
    for pair in NCCI_PAIRS:
        for first in pair.first.among(codes):
            for second in (c for c in pair.second.among(codes) if c != first):
                warnings.append(
                    RuleWarning(
                        "R9.3", f"{first} with {second}: {pair.message}", Severity.ACT, pair.gist
                    )
                )
    reevaluations = REEVALUATIONS.among(codes)
    others = sorted(c for c in codes if c not in REEVALUATIONS and c.startswith("97"))
    for reeval in reevaluations:
        if others:
            warnings.append(
                RuleWarning(
                    "R9.3",
                    f"{reeval} with {', '.join(others)}: a re-evaluation is not routinely "
                    "reportable during a course of care; if the patient's status changed, report "
                    f"it with 59 or XU on {reeval} (suggested, not applied).",
                    Severity.ACT,
                    "Re-evaluation mid-course: 59/XU",
                )
            )
    low, high = ONE_ON_ONE_RANGE
    for group in sorted(c for c in codes if billed[c].group and c.startswith("97")):
        one_on_one = sorted(c for c in codes if low <= c <= high and billed[c].timed)
        if one_on_one:
            warnings.append(
                RuleWarning(
                    "R8.4",
                    f"{group} (group) with one-on-one {', '.join(one_on_one)}: allowed only as "
                    "distinct sessions with no overlapping time; MAC policy calls for modifier "
                    "59 to show it (suggested, not applied).",
                    Severity.ACT,
                    "Group and one-on-one: separate sessions",
                )
            )
    evaluations: dict[Discipline, list[str]] = {}
    for code in sorted(codes):
        entry = billed[code]
        own = entry.own_discipline
        if entry.evaluation and own is not None:
            evaluations.setdefault(own, []).append(code)
    for discipline, listed in evaluations.items():
        if len(listed) > 1:
            warnings.append(
                RuleWarning(
                    "R9.3",
                    f"{' and '.join(listed)}: only one {discipline.value} evaluation or "
                    "re-evaluation per date of service by the same practitioner.",
                    Severity.ACT,
                    "Two evaluations in one day",
                )
            )
    return warnings


def pairs_across_disciplines(
    own: Discipline, billed: Iterable[str], other: Discipline, others: Iterable[str]
) -> list[RuleWarning]:
    """R9.3 for a claim day billing ``billed`` under the ``own`` plan of care, beside the same
    patient's claim of that date under the ``other`` plan billing ``others`` (to one payer):
    the pairs whose source says different disciplines (PT vs OT) may report both with an
    NCCI-associated modifier (97750, 97755, 97763 with an evaluation; 97760, 97761 with a
    re-evaluation), which within one discipline are not reported together at all."""
    codes, theirs = set(billed), set(others)
    found = []
    for pair in NCCI_PAIRS:
        if not pair.across:
            continue
        for mine, beside in ((pair.first, pair.second), (pair.second, pair.first)):
            for code in mine.among(codes):
                for second in beside.among(theirs):
                    found.append(
                        RuleWarning(
                            "R9.3",
                            f"{code} ({own.value}) with {second}, billed on this patient's "
                            f"{other.value} claim of the same date: NCCI pairs them, and different "
                            "disciplines report both only with an NCCI-associated modifier "
                            "(59 or an X modifier; suggested, not applied).",
                            Severity.ACT,
                            "NCCI pair across PT/OT: modifier needed",
                        )
                    )
    return found


# --------------------------------------------------------------------------------------------
# Ties (R2.8)


def _modifier_units(
    code: str, units: int, minutes: int, assistant: int, modifier: str, revised: bool
) -> int:
    return assistant_split(code, units, minutes, assistant, modifier, revised).with_modifier


def _tie_order(
    split: CmsSplit,
    pooled: Mapping[str, int],
    assistant: Mapping[str, int],
    assisted: Mapping[str, tuple[str, ...] | None],
    entries: Mapping[str, Code],
    cq_allowed: bool,
    revised: bool,
    mues: bool,
    memo: _Memo,
) -> list[str]:
    """The tied codes in the order the default gives them the extra unit (R2.8; docs: "Ties");
    ``mues`` says whether some tied code has a MUE.

    1. An extra unit within the code's MUE first (R9.4): a unit over it is denied, not paid.
    2. Fewer CQ/CO units: CMS accepts either allocation (86 FR 65173 Example E), and a
       line without CQ/CO is paid 100% instead of 85% (R7.2), so the default pays the clinic.
    3. More minutes on the code (Example 1's wording: more units to the longer service).
    4. Catalogue order.
    Both costs of the extra unit are counted per code, so taking the first ``need`` codes gives
    the allocation with the fewest units over an MUE, then the fewest CQ/CO units.
    """
    extra_modifier_units: dict[str, int] = dict.fromkeys(split.tied, 0)
    if cq_allowed and assistant:
        for code in split.tied:
            helped = assistant.get(code, 0)
            modifiers = assisted[code]
            if helped and modifiers is not None and entries[code].assistant_allowed:
                base = split.base[code]
                args = (pooled[code], helped, modifiers[1], revised)
                extra_modifier_units[code] = _modifier_units(
                    code, base + 1, *args
                ) - _modifier_units(code, base, *args)
    rank = memo.catalogue.rank
    if not mues:  # most ties: no MUE to look at, nothing to work out for it
        return sorted(split.tied, key=lambda c: (extra_modifier_units[c], -pooled[c], rank(c)))
    # The extra unit is over the code's MUE when its whole units already reach it.
    over = {c: (mue := entries[c].mue) is not None and split.base[c] >= mue for c in split.tied}
    return sorted(split.tied, key=lambda c: (over[c], extra_modifier_units[c], -pooled[c], rank(c)))


def _chosen_allocation(
    chosen: Mapping[str, int], split: CmsSplit, pooled: Mapping[str, int], memo: _Memo
) -> tuple[dict[str, int], frozenset[str]]:
    """A tie choice the caller made, checked against R2.5-R2.8; returns it and its tied picks."""
    normalized: dict[str, int] = {}
    for raw, units in _items(chosen, "allocation"):
        code = memo.code(raw, "allocation").code
        where = f"allocation.{key_text(raw)}"
        if isinstance(units, bool) or not isinstance(units, int):
            raise InvalidInput(where, f"units must be a whole number, got {quote(units)}")
        if code in normalized:
            raise InvalidInput(where, f"{code} is listed twice")
        normalized[code] = units
    picked = frozenset(c for c in split.tied if normalized.get(c) == split.base[c] + 1)
    allocation = split.allocation(c for c in split.tied if c in picked)
    strays = any(units and code not in pooled for code, units in normalized.items())
    if (
        strays
        or len(picked) != split.need
        or any(normalized.get(c, 0) != u for c, u in allocation.items())
    ):
        raise InvalidInput("allocation", "is not one of the valid allocations of the timed units")
    return allocation, picked


def _tie_warnings(split: CmsSplit, listed: int, mues: bool) -> list[RuleWarning]:
    """``mues``: some tied code has a MUE, which the default looks at first."""
    others = split.count - 1
    warnings = []
    if others > listed:
        warnings.append(
            RuleWarning(
                "R2.8",
                f"{others} other allocations are valid; the first {listed} are listed.",
                Severity.INFO,
                f"Tie: first {listed} of {others} other splits listed",
            )
        )
    warnings.append(
        RuleWarning(
            "R2.8",
            f"{', '.join(sorted(split.tied))} tie on leftover minutes, so the extra unit may go "
            "to any of them. The default "
            f"{'keeps units within the MUEs (R9.4), then ' if mues else ''}"
            "bills the most units without CQ/CO (paid 100% rather "
            "than 85%), then gives the unit to the code with more minutes, then catalogue order; "
            f"{others} other allocation(s) are equally valid.",
            Severity.INFO,
            "Tie: other splits equally valid",
        )
    )
    return warnings


# --------------------------------------------------------------------------------------------
# Warnings about minutes (R2.4, R2.10, R2.11, R3.2)


def _minute_warnings(
    method: Method, unbilled: Sequence[str], total_timed: int
) -> list[RuleWarning]:
    """``unbilled``: each pooled code with minutes and no unit, as "97110 (5 min)"."""
    warnings: list[RuleWarning] = []
    under_eight = method is Method.CMS and total_timed < 8
    if under_eight and total_timed > 0:
        warnings.append(
            RuleWarning(
                "R2.4",
                f"Total timed minutes ({total_timed}) are under 8: no timed units can be billed. "
                "The minutes must still be documented.",
                Severity.ACT,
                "Under 8 minutes: not billed",
            )
        )
    if unbilled and not under_eight:
        listed = ", ".join(unbilled)
        cms = method is Method.CMS
        warnings.append(
            RuleWarning(
                "R2.10" if cms else "R3.2",
                f"Documented but not billed: {listed}. Keep them in the note: unbilled timed "
                "services still count toward the treatment record.",
                Severity.ACT,
                "Timed code not billed: document it" if cms else "Under 8 minutes: not billed",
            )
        )
    return warnings


def minutes_per_unit_warning(
    method: Method, total_timed_minutes: int, billed_units: int
) -> RuleWarning | None:
    """R2.11: average timed minutes per billed unit under 15, beyond what the chart explains.

    CMS expects about 15 minutes of direct contact per unit on average, and a provider who
    *routinely* bills less is highlighted for review. The chart itself rounds up from 8 minutes
    (23 minutes are 2 units, 8 minutes 1 unit), so units counted by the chart are never a
    reason to warn; only units above the chart's count for the minutes are (units billed by
    hand or imported from elsewhere). A CMS rule: never under the per-code method.
    ``evaluate`` counts units by the chart, so it never raises this itself.
    """
    if method is not Method.CMS or billed_units <= cms_total_units(total_timed_minutes):
        return None
    return RuleWarning(
        "R2.11",
        f"{total_timed_minutes / billed_units:.1f} timed minutes per billed unit: "
        f"{billed_units} units for {total_timed_minutes} minutes is more than the unit chart "
        f"gives ({cms_total_units(total_timed_minutes)}). CMS expects about 15 minutes per "
        "unit on average and highlights providers who routinely bill less for review.",
        Severity.INFO,
        "Under 15 minutes per unit",
    )


# --------------------------------------------------------------------------------------------
# Medically unlikely edits (R9.4)


def _mue_warning(code: str, units: int, mue: int) -> RuleWarning:
    """R9.4: the units stay as the minutes give them (docs: "MUEs are warned about, never
    capped"); the biller decides what the claim carries."""
    return RuleWarning(
        "R9.4",
        f"{code}: {units_text(units)} on this date of service, over its medically unlikely "
        f"edit (MUE) of {mue} in the clinic's codes.toml; units above the MUE are denied for "
        "that line. The units are billed as counted: check the record and the payer's edit "
        "before the claim goes out.",
        Severity.ACT,
        "Over the MUE",
    )


# --------------------------------------------------------------------------------------------
# The whole answer


def evaluate(
    request: Request,
    catalogue: Catalogue | None = None,
    remarks: Iterable[str] = (),
) -> Result:
    """Units, lines, alternatives, warnings and the note for one claim day.

    ``remarks`` are extra sentences for the note that only the caller knows (e.g. how stopwatch
    seconds were rounded, or that a closed session was amended).
    """
    if catalogue is None or not catalogue.codes:
        catalogue = builtin_catalogue()
    memo = _memo(catalogue)
    plan, timed, assistant, untimed = memo.checked(request)
    unrecorded = _assistant_untimed(request, memo, untimed) if request.assistant_untimed else ()
    shape = plan.shape
    method = request.method
    dos = request.date_of_service
    cq_allowed = request.assistant_modifiers and (dos is None or dos >= CQ_CO_FIRST_DATE)
    revised = dos is None or dos >= CY2022_REVISION_DATE
    warnings: list[RuleWarning] = []

    # §5.3: SPECIAL codes are never pooled. R2.1: untimed minutes never enter the timed total.
    pooled = {c: timed[c] for c in shape.pooled}
    total_timed = sum(pooled.values())
    alternatives: tuple[dict[str, int], ...] = ()
    if method is Method.CMS:
        split = cms_split(pooled)
        if not split.tied:
            allocation = split.allocation(())
            if request.allocation is not None:  # a choice where there is none is still checked
                allocation, _ = _chosen_allocation(request.allocation, split, pooled, memo)
        else:
            mues = shape.mues and any(plan.entries[c].mue is not None for c in split.tied)
            order = _tie_order(
                split,
                pooled,
                assistant,
                shape.assisted,
                plan.entries,
                cq_allowed,
                revised,
                mues,
                memo,
            )
            if request.allocation is not None:
                allocation, picked = _chosen_allocation(request.allocation, split, pooled, memo)
            else:
                picked = frozenset(order[: split.need])
                allocation = split.allocation(c for c in split.tied if c in picked)
            # Only the listed allocations are built (MAX_ALTERNATIVES); the count is comb().
            listed = (
                split.allocation(chosen)
                for chosen in combinations(order, split.need)
                if frozenset(chosen) != picked
            )
            alternatives = tuple(islice(listed, MAX_ALTERNATIVES))
            warnings.extend(_tie_warnings(split, len(alternatives), mues))
    else:
        allocation = {c: ama_units(m) for c, m in pooled.items()}  # R3.2
    total_units = sum(allocation.values())

    # Each code's part of the answer, from the cache of its row (see ``_row_outcome``).
    mode = 2 * cq_allowed + revised  # all that the date and payer change in a row's outcome
    results: list[CodeResult] = []
    lines: list[Line] = []
    rows: list[str] = []
    billed = 0  # the bits of the billed codes
    by_hand: list[RuleWarning] = []  # §5.3, before the CQ/CO splits' warnings
    splits: list[RuleWarning] = []
    over_mue: list[RuleWarning] = []
    unbilled: list[str] = []
    assistant_total = 0
    for row in shape.rows:
        code = row.code
        if row.untimed:
            given = untimed[code]
            units = 1
        else:
            given = timed[code]
            units = allocation.get(code, 0)
            if not units and given and row.pooled:
                unbilled.append(f"{code} ({given} min)")
        if assistant:
            helped = assistant.get(code, 0)
            key: tuple[int | None, ...] = (given, units, helped, mode) if helped else (given, units)
            assistant_total += helped
        else:
            helped = 0
            key = (given, units)
        unrecorded_part = code in unrecorded
        if unrecorded_part:
            key = (given, units, helped, mode, -1)  # -1: no minute count is negative
        outcome = row.outcomes.get(key)
        if outcome is None:
            outcome = _row_outcome(row, given, units, helped, cq_allowed, revised, unrecorded_part)
            if len(row.outcomes) >= _Row.LIMIT:
                row.outcomes.clear()
            row.outcomes[key] = outcome
        results.append(outcome[0])
        lines += outcome[1]
        rows.append(outcome[2])
        billed |= outcome[3]
        if outcome[4]:
            (splits if row.pooled or row.untimed else by_hand).extend(outcome[4])
        if outcome[5] is not None:
            over_mue.append(outcome[5])

    if unbilled or (method is Method.CMS and 0 < total_timed < 8):
        warnings += memo.minute_warnings(method, unbilled, total_timed)
    warnings += by_hand
    warnings += splits
    warnings += shape.warnings
    if assistant_total or unrecorded:  # an assistant furnished some of it (R7.1, R7.9)
        warnings += _assistant_warnings(request, shape.evaluations, assistant, unrecorded)
    pairs = memo.pairs.get(billed)
    if pairs is None:
        pairs = memo.pair_warnings(billed, shape.rows)
    warnings += pairs
    warnings += over_mue

    total_treatment = sum(timed.values())  # R4.2
    if untimed:
        total_treatment += sum(m for m in untimed.values() if m)
    note = [memo.head(request)]
    if shape.note_rows is None:
        if rows:
            note.append("Timed services:")
            note += rows
    else:
        timed_rows, untimed_rows = shape.note_rows
        if timed_rows:
            note.append("Timed services:")
            note += [rows[i] for i in timed_rows]
        note.append("Untimed services:")
        note += [rows[i] for i in untimed_rows]
    note.append(
        f"Total timed code treatment minutes: {total_timed}\n"
        f"Total treatment minutes: {total_treatment}\n"
        f"Timed units billed: {total_units}\n"
        f"Minutes furnished: therapist {total_treatment - assistant_total}, "
        f"assistant {assistant_total}"
    )
    note.extend(remarks)
    note.append("")
    result: Result = from_fields(
        Result,
        {
            "method": method,
            "discipline": request.discipline,
            "date_of_service": dos,
            "total_timed_minutes": total_timed,
            "total_timed_units": total_units,
            "total_treatment_minutes": total_treatment,
            "codes": tuple(results),
            "lines": tuple(lines),
            "allocation": allocation,
            "alternatives": alternatives,
            "warnings": tuple(warnings),
            "note": "\n".join(note),
        },
    )
    return result


_ANSWERS: dict[int, tuple[Catalogue, dict[tuple[object, ...], Result]]] = {}
_ANSWERS_LIMIT = 16_384  # a clinic-year asks ~10,000 distinct questions; a window keeps these


def evaluate_without_note(request: Request, catalogue: Catalogue | None = None) -> Result:
    """``evaluate``'s answer with an empty note, for a caller that never shows the note (the
    CSV export), memoised by everything that changes the rest of the answer.

    Only the note names the date of service; units, lines and warnings depend on it only
    through which rules were in force (CQ/CO from 2020: R7.1; the 2022 revision: R7.6, R7.7
    and §11 Q2), so the memo's key holds those two facts, not the date. A clinic-year's
    100,000 claim days ask about 10,000 distinct questions in this sense.
    """
    if catalogue is None or not catalogue.codes:
        catalogue = builtin_catalogue()
    dos = request.date_of_service
    try:
        key = answer_key(request)
        entry = _ANSWERS.get(id(catalogue))
        if entry is None or entry[0] is not catalogue:
            if len(_ANSWERS) >= 8:
                _ANSWERS.clear()
            entry = _ANSWERS[id(catalogue)] = (catalogue, {})
        answers = entry[1]
        known = answers.get(key)
    except TypeError:  # something unhashable in the request: evaluate refuses it
        return evaluate(request, catalogue)
    if known is None:
        known = evaluate(request, catalogue)
        known = from_fields(Result, {**vars(known), "note": ""})
        if len(answers) >= _ANSWERS_LIMIT:
            answers.clear()
        answers[key] = known
    if known.date_of_service == dos:
        return known
    answer: Result = from_fields(Result, {**vars(known), "date_of_service": dos})
    return answer


def answer_key(request: Request) -> tuple[object, ...]:
    """What of a request changes its answer other than its note (``evaluate_without_note``):
    every field but the date of service, which counts only by the rules in force on it (CQ/CO
    from 2020: R7.1; the 2022 revision: R7.6, R7.7 and §11 Q2). Two requests with equal keys
    get equal answers of one catalogue (a clinic's MUEs change answers too: R9.4), notes and
    dates aside; hashing the key raises TypeError when the request holds something unhashable
    (which ``evaluate`` refuses)."""
    return (
        request.method,
        request.discipline,
        tuple(request.timed.items()),
        tuple(request.assistant_minutes.items()),
        tuple(request.untimed),
        tuple(request.untimed_minutes.items()),
        request.assistant_modifiers,
        None if request.allocation is None else tuple(request.allocation.items()),
        rules_in_force(request.date_of_service),
        tuple(request.assistant_untimed),
    )


def rules_in_force(dos: dt.date | None) -> tuple[bool, bool]:
    """What of a date of service changes an answer other than its note: whether CQ/CO apply
    (from 2020: R7.1) and the 2022 revision (R7.6, R7.7 and §11 Q2)."""
    return (dos is None or dos >= CQ_CO_FIRST_DATE, dos is None or dos >= CY2022_REVISION_DATE)


_NO_SLP_ASSISTANT_MODIFIER = RuleWarning(
    "R7.1",
    "Assistant minutes under a speech-language pathology plan of care: there is no "
    "SLP assistant modifier. Review who may bill these minutes.",
    Severity.ACT,
    "No SLP assistant modifier",
)
_BEFORE_CQ_CO = RuleWarning(
    "R7.1",
    "CQ/CO apply from dates of service on 1 January 2020; none added.",
    Severity.INFO,
    "Before 2020: no CQ/CO",
)
_BEFORE_2022 = RuleWarning(
    "R7.4",
    "Date of service before 2022: CQ/CO follow the 10% test alone, without the 2022 "
    "final-unit and 9-14 minute rules (§11 Q2).",
    Severity.INFO,
    "Before 2022: 10% test only",
)


def _assistant_warnings(
    request: Request,
    evaluations: Sequence[str],
    assistant: Mapping[str, int],
    unrecorded: Collection[str],
) -> list[RuleWarning]:
    """For a request in which an assistant furnished some code; ``evaluations``: its codes an
    assistant may not furnish, by number; ``unrecorded``: its untimed codes with an assistant's
    part without minutes."""
    warnings = []
    for code in evaluations:
        if assistant.get(code, 0) > 0 or code in unrecorded:
            recorded = (
                f"{assistant[code]} minutes" if assistant.get(code) else "a part (no minutes)"
            )
            warnings.append(
                RuleWarning(
                    "R7.9",
                    f"{code}: an assistant recorded {recorded} on an evaluation. "
                    "Only the therapist may evaluate; no CQ/CO was added. Review the record.",
                    Severity.ACT,
                    "Assistant time on an evaluation",
                )
            )
    dos = request.date_of_service
    if request.discipline is Discipline.SLP:
        warnings.append(_NO_SLP_ASSISTANT_MODIFIER)
    elif not request.assistant_modifiers:
        pass  # R7.10: this payer does not use CQ/CO; nothing to say
    elif dos is not None and dos < CQ_CO_FIRST_DATE:
        warnings.append(_BEFORE_CQ_CO)
    elif dos is not None and dos < CY2022_REVISION_DATE:
        warnings.append(_BEFORE_2022)
    return warnings


# --------------------------------------------------------------------------------------------
# The note (R4.1-R4.3)


def units_text(n: int) -> str:
    """Units as every warning words them: "1 unit", "3 units"."""
    return f"{n} unit" if n == 1 else f"{n} units"


_PLAN_LINE = {
    d: f"Plan of care: {DISCIPLINE_NAME[d]} ({DISCIPLINE_MODIFIER[d]})" for d in Discipline
}
_METHOD_LINE = {m: f"Billing method: {METHOD_NAME[m]}" for m in Method}


# --------------------------------------------------------------------------------------------
# Concurrent treatment across patients (R8.3)

Interval = tuple[dt.datetime, dt.datetime]


def concurrent_sessions(one_on_one: Mapping[str, Sequence[Interval]]) -> dict[str, set[str]]:
    """R8.3: one clinician's sessions whose one-on-one (timed) intervals overlap another's
    (and R8.1: one patient's, ``billing.shared_patients``).

    ``one_on_one`` maps each session of one clinician and day to its timed intervals. Minutes
    where attention was split between patients are not one-on-one for either of them, so every
    session involved is named (the caller flags both; 97150 group may be what applies).

    Two intervals (a0, a1) and (b0, b1) overlap when a0 < b1 and b0 < a1. Swept in order of
    start, an interval overlaps exactly the earlier-starting ones still running when it starts
    (a busy day is not checked pair by pair); an empty or inverted one (stop not after start,
    as a clock set back may leave) is checked against every other by that definition.
    """
    flagged: dict[str, set[str]] = {}

    def flag(first: str, second: str) -> None:
        if first != second:
            flagged.setdefault(first, set()).add(second)
            flagged.setdefault(second, set()).add(first)

    every = [(start, stop, sid) for sid, spans in one_on_one.items() for start, stop in spans]
    running: list[tuple[dt.datetime, str]] = []
    for start, stop, sid in sorted(i for i in every if i[0] < i[1]):
        running = [(end, other) for end, other in running if end > start]
        for _end, other in running:
            flag(sid, other)
        running.append((stop, sid))
    for a0, a1, first in every:
        if a1 <= a0:
            for b0, b1, second in every:
                if a0 < b1 and b0 < a1:
                    flag(first, second)
    return flagged


def concurrent_warning(others: Sequence[str]) -> RuleWarning:
    """The R8.3 flag for a session whose timed minutes overlap the named patients' sessions."""
    return RuleWarning(
        "R8.3",
        f"The same clinician timed one-on-one codes for {', '.join(others)} during this "
        "session's timed minutes. Minutes with attention split between patients are not "
        "one-on-one for either; review them (group therapy 97150 may be what applies).",
        Severity.ACT,
        "Overlapping patients: not one-on-one",
    )


def shared_time_warning(clinicians: Sequence[str]) -> RuleWarning:
    """The R8.1 flag for a claim day of a patient whose timed codes ran at the same time in
    sessions of the named clinicians (R1.4 when they treated together), or in more than one
    session of one clinician."""
    if len(clinicians) == 1:
        # Named once, the message read as if a second clinician had been left out.
        message = (
            "Timed codes of this patient ran at the same time in more than one session of the"
            f" same clinician, {clinicians[0]}. Only one timed service may be billed for the"
            " same minutes: correct the times, or record the treatment in one session."
        )
    else:
        message = (
            f"Timed codes of this patient ran at the same time in sessions of"
            f" {', '.join(clinicians)}. Only one timed service may be billed for the same"
            " minutes, and when two clinicians treat together the minutes count once (R1.4):"
            " record joint treatment in one session as furnished together, or correct the"
            " times."
        )
    return RuleWarning(
        "R8.1",
        message,
        Severity.ACT,
        "Two timed codes at once for one patient",
    )
