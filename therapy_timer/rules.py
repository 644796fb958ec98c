"""Pure billing rules: minutes per code become units, modifiers, warnings and a note.

Every rule cites the section of ``shared/billing-rules.md`` it implements (R-numbers, §-numbers).
No Qt, no SQLite and no clock here: the same inputs always give the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from typing import Any, TypeVar

from therapy_timer.codes import Catalogue, Code, Discipline, Kind, builtin_catalogue
from therapy_timer.codes import Method as Method  # re-exported: a Request names its method
from therapy_timer.errors import InvalidInput

UNIT_MINUTES = 15
MAX_DAY_MINUTES = 24 * 60
"""No code, and no day, can hold more minutes than a calendar day has (R1.2): more is a typo."""

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


@dataclass(frozen=True)
class Request:
    """One patient's date of service under one plan of care, as minutes per code.

    ``assistant_minutes`` are the minutes a PTA/OTA furnished *separately* from the therapist;
    they are part of the code's minutes. Joint minutes belong to the therapist (R7.5).
    ``allocation`` picks one of the valid CMS allocations when a tie allows a choice (R2.8).
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


@dataclass(frozen=True)
class RuleWarning:
    """Something a person should look at; never a silent change to the billing."""

    rule: str
    message: str


@dataclass(frozen=True)
class CodeResult:
    code: str
    description: str
    kind: Kind
    minutes: int
    assistant_minutes: int
    units: int
    minutes_recorded: bool = True  # False for an untimed code whose minutes nobody gave


@dataclass(frozen=True)
class Line:
    """One billable claim line: a code, its units and its modifiers (GP/GO/GN, CQ/CO only)."""

    code: str
    units: int
    modifiers: tuple[str, ...]


@dataclass(frozen=True)
class Result:
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

    def to_json(self) -> dict[str, Any]:
        """The answer of the ``units --json`` contract (issue 2); keys only ever get added."""
        return {
            "method": self.method.value,
            "total_timed_minutes": self.total_timed_minutes,
            "total_timed_units": self.total_timed_units,
            "total_treatment_minutes": self.total_treatment_minutes,
            "codes": {c.code: {"minutes": c.minutes, "units": c.units} for c in self.codes},
            "lines": [
                {"code": line.code, "units": line.units, "modifiers": list(line.modifiers)}
                for line in self.lines
            ],
            "alternatives": [dict(a) for a in self.alternatives],
            "warnings": [{"rule": w.rule, "message": w.message} for w in self.warnings],
            "note": self.note,
        }


# --------------------------------------------------------------------------------------------
# Unit arithmetic


def cms_total_units(total_timed_minutes: int) -> int:
    """R2.2/R2.3: the unit chart in closed form; 0 under 8 minutes (R2.4)."""
    return (total_timed_minutes + 7) // UNIT_MINUTES


def ama_units(minutes: int) -> int:
    """R3.1/R3.2: a unit is attained when the midpoint (8 of 15 minutes) is passed, per code."""
    return (minutes + 7) // UNIT_MINUTES


def cms_allocations(
    minutes: Mapping[str, int], preference: Sequence[str]
) -> tuple[dict[str, int], ...]:
    """Every valid CMS split of the day's timed units among codes, the default first.

    R2.5: each code first gets its whole 15-minute units. R2.6: the remaining units go one each
    to the codes with the largest leftover minutes (R2.9 is the case of codes under 8 minutes).
    R2.7(a): the remaining units never outnumber the codes with a leftover, so no code gets more
    than base + 1. R2.8: when codes tie on leftover minutes at the cut, any of them may take the
    unit; ``preference`` orders the tied codes for the default (the caller's documented rule).
    """
    units_total = cms_total_units(sum(minutes.values()))
    base = {code: m // UNIT_MINUTES for code, m in minutes.items()}
    extra = units_total - sum(base.values())
    if extra == 0:
        return (base,)
    leftover = {code: m % UNIT_MINUTES for code, m in minutes.items()}
    ranked = sorted((c for c in minutes if leftover[c] > 0), key=lambda c: -leftover[c])
    cut = leftover[ranked[extra - 1]]
    sure = [c for c in ranked if leftover[c] > cut]
    order = {code: i for i, code in enumerate(preference)}
    tied = sorted((c for c in ranked if leftover[c] == cut), key=order.__getitem__)
    allocations = []
    for chosen in combinations(tied, extra - len(sure)):
        allocation = dict(base)
        for code in (*sure, *chosen):
            allocation[code] += 1
        allocations.append(allocation)
    return tuple(allocations)


@dataclass(frozen=True)
class AssistantSplit:
    """How many of a code's units carry CQ/CO (R7.4-R7.7) and why, for one code."""

    with_modifier: int
    without_modifier: int
    warnings: tuple[RuleWarning, ...] = ()


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
        ),
    )


def assistant_split(
    code: str,
    units: int,
    minutes: int,
    assistant: int,
    modifier: str,
    date_of_service: dt.date | None,
) -> AssistantSplit:
    """Split a timed code's units into those with and without CQ/CO (§7.3 reference algorithm).

    R7.4 applies the 10% test per unit; whole 15-minute blocks belong to whoever furnished them.
    R7.6 (2022+): the final unit is billed without the modifier when the therapist furnished 8 or
    more of its minutes. R7.7 (2022+): two remaining units with 9-14 minutes each are billed one
    with and one without. §11 Q2: before 2022 only the 10% test applied. §11 Q1: other splits of
    two remaining units have no sourced answer, so they are flagged, not guessed.
    """
    therapist = minutes - assistant
    full_therapist, full_assistant = therapist // UNIT_MINUTES, assistant // UNIT_MINUTES
    remaining = units - full_therapist - full_assistant
    left_t, left_a = therapist % UNIT_MINUTES, assistant % UNIT_MINUTES
    revised = date_of_service is None or date_of_service >= CY2022_REVISION_DATE
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
    applies = _exceeds_ten_percent(left_a, left_t + left_a)
    if not revised:  # §11 Q2: the 2020-2021 de minimis test, without (iv) and (v)
        if applies:
            return AssistantSplit(full_assistant + 2, full_therapist)
        return AssistantSplit(full_assistant, full_therapist + 2)
    carried = "both carry" if applies else "neither carries"
    warning = RuleWarning(
        "R7.7",
        f"{code}: two units remain after whole 15-minute blocks, from {left_t} therapist and "
        f"{left_a} assistant minutes. The 9-14 minute rule (each 9-14, together 23 or more) "
        "does not cover this and no source "
        f"settles it (§11 Q1): {carried} {modifier} for now, the safe reading of the 10% test. "
        f"Review by hand; one unit with {modifier} and one without is also plausible.",
    )
    if applies:
        return AssistantSplit(full_assistant + 2, full_therapist, (warning,))
    return AssistantSplit(full_assistant, full_therapist + 2, (warning,))


# --------------------------------------------------------------------------------------------
# Validation of a request


def _minutes(value: object, where: str, limit: int = MAX_DAY_MINUTES) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(where, f"minutes must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput(where, f"minutes cannot be negative, got {value}")
    if value > limit:
        raise InvalidInput(where, f"{value} minutes is more than a day holds ({limit})")
    return value


def _checked(
    request: Request, catalogue: Catalogue
) -> tuple[dict[str, Code], dict[str, int], dict[str, int], dict[str, int | None]]:
    """Resolve every code and check every number; errors name the field at fault."""
    codes: dict[str, Code] = {}
    timed: dict[str, int] = {}
    for raw, value in request.timed.items():
        where = f"timed.{raw}"
        entry = catalogue.get(raw, where)
        if entry.kind is Kind.UNTIMED:
            raise InvalidInput(
                where, f"{entry.code} is untimed (one unit per service); list it under untimed"
            )
        if entry.code in timed:
            raise InvalidInput(where, f"{entry.code} is listed twice")
        timed[entry.code] = _minutes(value, where)
        codes[entry.code] = entry
    if sum(timed.values()) > MAX_DAY_MINUTES:
        raise InvalidInput("timed", "the timed minutes add up to more than a day holds")

    untimed: dict[str, int | None] = {}
    for i, raw in enumerate(request.untimed):
        where = f"untimed[{i}]"
        entry = catalogue.get(raw, where)
        if entry.kind is not Kind.UNTIMED:
            raise InvalidInput(where, f"{entry.code} is a timed code; give its minutes under timed")
        if entry.code in untimed:
            raise InvalidInput(where, f"{entry.code} is listed twice")
        untimed[entry.code] = None
        codes[entry.code] = entry
    for raw, value in request.untimed_minutes.items():
        where = f"untimed_minutes.{raw}"
        code = catalogue.get(raw, where).code
        if code not in untimed:
            raise InvalidInput(where, f"{code} has minutes but is not listed under untimed")
        untimed[code] = _minutes(value, where)

    assistant: dict[str, int] = {}
    for raw, value in request.assistant_minutes.items():
        where = f"assistant_minutes.{raw}"
        code = catalogue.get(raw, where).code
        if code in timed:
            total = timed[code]
        elif untimed.get(code) is not None:
            total = untimed[code] or 0
        else:
            raise InvalidInput(
                where, f"{code} has assistant minutes but no minutes of its own in the request"
            )
        minutes = _minutes(value, where)
        if minutes > total:
            raise InvalidInput(
                where, f"assistant minutes ({minutes}) exceed the code's total ({total})"
            )
        assistant[code] = minutes
    return codes, timed, assistant, untimed


# --------------------------------------------------------------------------------------------
# Warnings about code combinations (R8.4, R9.3)


@dataclass(frozen=True)
class _Pair:
    first: frozenset[str]
    second: frozenset[str]
    message: str


def _codes(*ranges: str) -> frozenset[str]:
    """Codes from 'A' or 'A-B' (numeric ranges of five-digit codes, or letter+4 digits)."""
    out: set[str] = set()
    for item in ranges:
        low, _, high = item.partition("-")
        if not high:
            out.add(low)
            continue
        prefix = low[0] if low[0].isalpha() else ""
        start, stop = int(low[len(prefix) :]), int(high[len(prefix) :])
        width = len(low) - len(prefix)
        out.update(f"{prefix}{n:0{width}d}" for n in range(start, stop + 1))
    return frozenset(out)


PT_EVALUATIONS = _codes("97161-97163")
ALL_EVALUATIONS = _codes("97161-97168")
REEVALUATIONS = _codes("97164", "97168")

# R9.3: only pairs with a source in billing-rules.md; 59/X{EPSU} is suggested, never applied (R9.2).
NCCI_PAIRS: tuple[_Pair, ...] = (
    _Pair(
        _codes("97140"),
        PT_EVALUATIONS,
        "NCCI pairs 97140 with a PT evaluation (since January 2020): report both only if the "
        "manual therapy was a separate service, with 59 or an X modifier on 97140 (suggested, "
        "not applied).",
    ),
    _Pair(
        _codes("97530", "97150"),
        _codes("97164"),
        "NCCI pairs this code with the PT re-evaluation 97164: 59 or an X modifier is required "
        "to report both (suggested, not applied).",
    ),
    _Pair(
        _codes("97530", "97150"),
        _codes("97161-97163", "97165-97167"),
        "NCCI introduced hard edits for this code with an evaluation in 2020, withdrew them and "
        "announced their return; their current status is not confirmed. Check the current "
        "quarterly PTP table before billing both.",
    ),
    _Pair(
        _codes("97750", "97755", "97763"),
        ALL_EVALUATIONS,
        "Not separately reportable with an evaluation or re-evaluation on the same date by the "
        "same practitioner or specialty; a different discipline may report both with an "
        "NCCI-associated modifier.",
    ),
    _Pair(
        _codes("97760", "97761"),
        REEVALUATIONS,
        "Not separately reportable with a re-evaluation on the same date by the same practitioner "
        "or specialty; a different discipline may report both with an NCCI-associated modifier.",
    ),
    _Pair(
        _codes("97140"),
        _codes("97530"),
        "NCCI pairs 97140 and 97530: 59 is appropriate only if they were done in distinct "
        "15-minute blocks (split blocks allowed), never in the same block. Some commercial "
        "payers deny 97530-59.",
    ),
    _Pair(
        _codes("97112", "97124", "97140"),
        _codes("98940-98942"),
        "Not separately reportable in a spinal region treated with chiropractic manipulation; "
        "a different region may take 59 or XS (suggested, not applied).",
    ),
    _Pair(
        _codes("97597-97602"),
        _codes("11042-11047"),
        "Active wound care is not reported with surgical debridement of the same wound.",
    ),
    _Pair(_codes("97602"), _codes("97597", "97598"), "97602 is not reported with 97597/97598."),
    _Pair(
        _codes("97010-97799"),
        _codes("G0237-G0239"),
        "Therapy at the same encounter as respiratory therapy G0237-G0239 is included, not "
        "separately reportable; a separate encounter takes an NCCI-associated modifier.",
    ),
)


def _combination_warnings(present: Mapping[str, Code]) -> list[RuleWarning]:
    warnings = []
    codes = set(present)
    for pair in NCCI_PAIRS:
        for first in sorted(codes & pair.first):
            for second in sorted((codes & pair.second) - {first}):
                warnings.append(RuleWarning("R9.3", f"{first} with {second}: {pair.message}"))
    reevaluations = sorted(codes & REEVALUATIONS)
    others = sorted(c for c in codes - REEVALUATIONS if c.startswith("97"))
    for reeval in reevaluations:
        if others:
            warnings.append(
                RuleWarning(
                    "R9.3",
                    f"{reeval} with {', '.join(others)}: a re-evaluation is not routinely "
                    "reportable during a course of care; if the patient's status changed, report "
                    f"it with 59 or XU on {reeval} (suggested, not applied).",
                )
            )
    low, high = ONE_ON_ONE_RANGE
    for group in sorted(c for c in codes if present[c].group and c.startswith("97")):
        one_on_one = sorted(c for c in codes if low <= c <= high and present[c].timed)
        if one_on_one:
            warnings.append(
                RuleWarning(
                    "R8.4",
                    f"{group} (group) with one-on-one {', '.join(one_on_one)}: allowed only as "
                    "distinct sessions with no overlapping time; MAC policy calls for modifier "
                    "59 to show it (suggested, not applied).",
                )
            )
    evaluations: dict[Discipline, list[str]] = {}
    for code in sorted(codes):
        entry = present[code]
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
                )
            )
    return warnings


# --------------------------------------------------------------------------------------------
# The whole answer


def evaluate(
    request: Request,
    catalogue: Catalogue | None = None,
    remarks: Iterable[str] = (),
) -> Result:
    """Units, lines, alternatives, warnings and the note for one request.

    ``remarks`` are extra sentences for the note that only the caller knows (e.g. how stopwatch
    seconds were rounded, or that a closed session was amended).
    """
    catalogue = catalogue or builtin_catalogue()
    codes, timed, assistant, untimed = _checked(request, catalogue)
    warnings: list[RuleWarning] = []

    # §5.3: SPECIAL codes are never pooled. Sorted so that answers list codes in one order.
    pooled = {c: timed[c] for c in sorted(timed) if codes[c].kind is Kind.TIMED}
    total_timed = sum(pooled.values())  # R2.1: untimed minutes never enter the timed total
    alternatives: tuple[dict[str, int], ...] = ()
    if request.method is Method.CMS:
        # R2.8 default: more total minutes first (Example 1's wording), then catalogue order.
        preference = sorted(pooled, key=lambda c: (-pooled[c], catalogue.rank(c)))
        valid = cms_allocations(pooled, preference)
        allocation = valid[0]
        if request.allocation is not None:
            allocation = _chosen_allocation(request.allocation, valid, catalogue)
        alternatives = tuple(a for a in valid if a != allocation)
        if len(alternatives) > MAX_ALTERNATIVES:
            warnings.append(
                RuleWarning(
                    "R2.8",
                    f"{len(alternatives)} other allocations are valid; the first "
                    f"{MAX_ALTERNATIVES} are listed.",
                )
            )
            alternatives = alternatives[:MAX_ALTERNATIVES]
        if alternatives:
            warnings.append(_tie_warning(pooled, allocation, alternatives))
    else:
        allocation = {c: ama_units(m) for c, m in pooled.items()}  # R3.2
    total_units = sum(allocation.values())

    warnings.extend(_minute_warnings(request.method, pooled, allocation, total_timed, total_units))
    for code in sorted(timed.keys() - pooled.keys()):
        warnings.append(
            RuleWarning(
                "§5.3",
                f"{code} ({timed[code]} min) is not a plain 15-minute code and is not pooled: "
                f"{codes[code].handling} Count its units by hand.",
            )
        )

    lines, line_warnings = _lines(request, codes, allocation, timed, assistant, untimed)
    warnings.extend(line_warnings)
    warnings.extend(_code_warnings(request, codes, assistant))
    warnings.extend(_combination_warnings(_present(codes, timed)))

    results = tuple(
        CodeResult(
            code=code,
            description=codes[code].description,
            kind=codes[code].kind,
            minutes=timed[code] if code in timed else untimed[code] or 0,
            assistant_minutes=assistant.get(code, 0),
            units=allocation.get(code, 0) if code in timed else 1,  # R1.1: untimed = 1 unit
            minutes_recorded=code in timed or untimed[code] is not None,
        )
        for code in _ordered(codes)
    )
    total_treatment = sum(timed.values()) + sum(m or 0 for m in untimed.values())  # R4.2
    note = _note(request, results, lines, total_timed, total_units, total_treatment, remarks)
    return Result(
        method=request.method,
        discipline=request.discipline,
        date_of_service=request.date_of_service,
        total_timed_minutes=total_timed,
        total_timed_units=total_units,
        total_treatment_minutes=total_treatment,
        codes=results,
        lines=tuple(lines),
        allocation=allocation,
        alternatives=alternatives,
        warnings=tuple(warnings),
        note=note,
    )


def _ordered(codes: Mapping[str, Code]) -> list[str]:
    """Timed codes first, then untimed, each by code number: the order of lines and the note."""
    return sorted(codes, key=lambda c: (codes[c].kind is not Kind.TIMED, c))


def _present(codes: Mapping[str, Code], timed: Mapping[str, int]) -> dict[str, Code]:
    """Codes actually furnished: a timed code listed with 0 minutes was not performed."""
    return {c: entry for c, entry in codes.items() if c not in timed or timed[c] > 0}


def _chosen_allocation(
    chosen: Mapping[str, int], valid: Sequence[dict[str, int]], catalogue: Catalogue
) -> dict[str, int]:
    normalized = {catalogue.get(c, f"allocation.{c}").code: u for c, u in chosen.items()}
    for allocation in valid:
        if {c: u for c, u in allocation.items() if u} == {c: u for c, u in normalized.items() if u}:
            return allocation
    raise InvalidInput("allocation", "is not one of the valid allocations of the timed units")


def _tie_warning(
    pooled: Mapping[str, int],
    allocation: Mapping[str, int],
    alternatives: Sequence[Mapping[str, int]],
) -> RuleWarning:
    tied = sorted({c for a in alternatives for c in pooled if a[c] != allocation[c]})
    return RuleWarning(
        "R2.8",
        f"{', '.join(tied)} tie on leftover minutes, so the extra unit may go to any of them. "
        "The default gives it to the code with more minutes, then catalogue order; "
        f"{len(alternatives)} other allocation(s) are equally valid.",
    )


def _minute_warnings(
    method: Method,
    pooled: Mapping[str, int],
    allocation: Mapping[str, int],
    total_timed: int,
    total_units: int,
) -> list[RuleWarning]:
    warnings = []
    if method is Method.CMS and 0 < total_timed < 8:
        warnings.append(
            RuleWarning(
                "R2.4",
                f"Total timed minutes ({total_timed}) are under 8: no timed units can be billed. "
                "The minutes must still be documented.",
            )
        )
    unbilled = [c for c in sorted(pooled) if pooled[c] > 0 and allocation[c] == 0]
    if unbilled and not (method is Method.CMS and total_timed < 8):
        rule = "R2.10" if method is Method.CMS else "R3.2"
        listed = ", ".join(f"{c} ({pooled[c]} min)" for c in unbilled)
        warnings.append(
            RuleWarning(
                rule,
                f"Documented but not billed: {listed}. Keep them in the note: unbilled timed "
                "services still count toward the treatment record.",
            )
        )
    if total_units and total_timed < UNIT_MINUTES * total_units:
        warnings.append(
            RuleWarning(
                "R2.11",
                f"{total_timed / total_units:.1f} timed minutes per billed unit, under the 15 CMS "
                "expects on average. Information only: routinely billing below 15 may be "
                "highlighted for review.",
            )
        )
    return warnings


def _lines(
    request: Request,
    codes: Mapping[str, Code],
    allocation: Mapping[str, int],
    timed: Mapping[str, int],
    assistant: Mapping[str, int],
    untimed: Mapping[str, int | None],
) -> tuple[list[Line], list[RuleWarning]]:
    lines: list[Line] = []
    warnings: list[RuleWarning] = []
    cq_allowed = request.assistant_modifiers and (
        request.date_of_service is None or request.date_of_service >= CQ_CO_FIRST_DATE
    )
    for code in _ordered(codes):
        entry = codes[code]
        discipline = entry.own_discipline or request.discipline  # R6.2: an evaluation keeps its own
        gmod = DISCIPLINE_MODIFIER[discipline]  # R6.1
        amod = ASSISTANT_MODIFIER.get(discipline)  # R7.1: CQ only with GP, CO only with GO
        units = allocation.get(code, 0) if code in timed else 1
        if code in timed and entry.kind is not Kind.TIMED:
            continue  # §5.3: counted by hand; the warning says so
        if units == 0:
            continue
        split = AssistantSplit(0, units)
        helped = assistant.get(code, 0)
        if helped and cq_allowed and amod is not None and entry.assistant_allowed:
            if code in timed:
                split = assistant_split(
                    code, units, timed[code], helped, amod, request.date_of_service
                )
            else:
                applies, notes = _ten_percent_test(code, helped, untimed[code] or 0, amod)
                split = AssistantSplit(1, 0, notes) if applies else AssistantSplit(0, 1, notes)
        warnings.extend(split.warnings)
        if split.with_modifier:
            lines.append(Line(code, split.with_modifier, (gmod, amod or "")))
        if split.without_modifier:
            lines.append(Line(code, split.without_modifier, (gmod,)))
    return lines, warnings


def _code_warnings(
    request: Request, codes: Mapping[str, Code], assistant: Mapping[str, int]
) -> list[RuleWarning]:
    warnings = []
    for code in _ordered(codes):
        entry = codes[code]
        if request.discipline not in entry.disciplines:
            owners = "/".join(sorted(d.value for d in entry.disciplines))
            warnings.append(
                RuleWarning(
                    "R6.3",
                    f"{code} belongs to a {owners} plan of care, not {request.discipline.value}: "
                    "each discipline bills under its own plan of care.",
                )
            )
        if entry.medicare_note:
            warnings.append(RuleWarning("§5.2", f"{code}: {entry.medicare_note}"))
        if entry.unlisted:
            warnings.append(
                RuleWarning(
                    "§5.3",
                    f"{code} is an unlisted code: how its time counts depends on what is "
                    "reported. Confirm with the payer.",
                )
            )
    assisted = sorted(c for c, m in assistant.items() if m > 0)
    for code in assisted:
        if not codes[code].assistant_allowed:
            warnings.append(
                RuleWarning(
                    "R7.9",
                    f"{code}: an assistant recorded {assistant[code]} minutes on an evaluation. "
                    "Only the therapist may evaluate; no CQ/CO was added. Review the record.",
                )
            )
    if not assisted:
        return warnings
    if request.discipline is Discipline.SLP:
        warnings.append(
            RuleWarning(
                "R7.1",
                "Assistant minutes under a speech-language pathology plan of care: there is no "
                "SLP assistant modifier. Review who may bill these minutes.",
            )
        )
    elif not request.assistant_modifiers:
        pass  # R7.10: this payer does not use CQ/CO; nothing to say
    elif request.date_of_service is not None and request.date_of_service < CQ_CO_FIRST_DATE:
        warnings.append(
            RuleWarning("R7.1", "CQ/CO apply from dates of service on 1 January 2020; none added.")
        )
    elif request.date_of_service is not None and request.date_of_service < CY2022_REVISION_DATE:
        warnings.append(
            RuleWarning(
                "R7.4",
                "Date of service before 2022: CQ/CO follow the 10% test alone, without the 2022 "
                "final-unit and 9-14 minute rules (§11 Q2).",
            )
        )
    return warnings


# --------------------------------------------------------------------------------------------
# The note (R4.1-R4.3)


def _units_text(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def _note(
    request: Request,
    results: Sequence[CodeResult],
    lines: Sequence[Line],
    total_timed: int,
    total_units: int,
    total_treatment: int,
    remarks: Iterable[str],
) -> str:
    """Plain ASCII text for any EMR: every code billed or not, its minutes, units and modifiers."""
    dos = request.date_of_service.isoformat() if request.date_of_service else "not recorded"
    discipline = request.discipline
    out = [
        f"Date of service: {dos}",
        f"Plan of care: {DISCIPLINE_NAME[discipline]} ({DISCIPLINE_MODIFIER[discipline]})",
        f"Billing method: {METHOD_NAME[request.method]}",
    ]
    by_code: dict[str, list[Line]] = {}
    for line in lines:
        by_code.setdefault(line.code, []).append(line)

    def describe(result: CodeResult) -> str:
        if result.minutes_recorded:
            minutes = f"{result.minutes} min"
            if result.assistant_minutes:
                therapist = result.minutes - result.assistant_minutes
                minutes += f" (therapist {therapist}, assistant {result.assistant_minutes})"
        else:
            minutes = "minutes not recorded"
        billed = by_code.get(result.code)
        if result.kind is Kind.SPECIAL:
            outcome = "units counted by hand (not a 15-minute code)"
        elif not billed:
            outcome = "not billed (0 units)"
        else:
            parts = [f"{ln.units} x {'-'.join((ln.code, *ln.modifiers))}" for ln in billed]
            outcome = f"{_units_text(result.units)}: {', '.join(parts)}"
        return f"  {result.code} {result.description}: {minutes} - {outcome}"

    timed_results = [r for r in results if r.kind is not Kind.UNTIMED]
    untimed_results = [r for r in results if r.kind is Kind.UNTIMED]
    if timed_results:
        out.append("Timed services:")
        out.extend(describe(r) for r in timed_results)
    if untimed_results:
        out.append("Untimed services:")
        out.extend(describe(r) for r in untimed_results)
    assistant_total = sum(r.assistant_minutes for r in results)
    out += [
        f"Total timed code treatment minutes: {total_timed}",
        f"Total treatment minutes: {total_treatment}",
        f"Timed units billed: {total_units}",
        f"Minutes furnished: therapist {total_treatment - assistant_total}, "
        f"assistant {assistant_total}",
    ]
    out.extend(remarks)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Concurrent treatment across patients (R8.3)

Interval = tuple[dt.datetime, dt.datetime]


def concurrent_sessions(one_on_one: Mapping[str, Sequence[Interval]]) -> dict[str, set[str]]:
    """R8.3: one clinician's sessions whose one-on-one (timed) intervals overlap another's.

    ``one_on_one`` maps each session of one clinician and day to its timed intervals. Minutes
    where attention was split between patients are not one-on-one for either of them, so every
    session involved is named (the caller flags both; 97150 group may be what applies).
    """
    flagged: dict[str, set[str]] = {}
    items = sorted(one_on_one.items())
    for i, (first, first_spans) in enumerate(items):
        for second, second_spans in items[i + 1 :]:
            if any(a0 < b1 and b0 < a1 for a0, a1 in first_spans for b0, b1 in second_spans):
                flagged.setdefault(first, set()).add(second)
                flagged.setdefault(second, set()).add(first)
    return flagged


def concurrent_warning(others: Sequence[str]) -> RuleWarning:
    """The R8.3 flag for a session whose timed minutes overlap the named patients' sessions."""
    return RuleWarning(
        "R8.3",
        f"The same clinician timed one-on-one codes for {', '.join(others)} during this "
        "session's timed minutes. Minutes with attention split between patients are not "
        "one-on-one for either; review them (group therapy 97150 may be what applies).",
    )


# --------------------------------------------------------------------------------------------
# The JSON contract (`therapy-timer units --request FILE --json`)

_E = TypeVar("_E", bound=StrEnum)

REQUEST_FIELDS = frozenset(
    {
        "method",
        "discipline",
        "date_of_service",
        "timed",
        "assistant_minutes",
        "untimed",
        "untimed_minutes",
        "assistant_modifiers",
        "allocation",
    }
)


def _enum(kind: type[_E], value: object, where: str) -> _E:
    if isinstance(value, str):
        for member in kind:
            if member.value.casefold() == value.strip().casefold():
                return member
    choices = ", ".join(repr(m.value) for m in kind)
    raise InvalidInput(where, f"must be one of {choices}, got {value!r}")


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidInput(key, f"must be an object of code: minutes, got {value!r}")
    return value


def request_from_json(data: object) -> Request:
    """Parse one request object of the JSON contract; errors name the field at fault."""
    if not isinstance(data, dict):
        raise InvalidInput("request", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - REQUEST_FIELDS)
    if unknown:
        raise InvalidInput(unknown[0], "is not a field of a units request")
    for required in ("method", "discipline"):
        if required not in data:
            raise InvalidInput(required, "is required")
    date_of_service = None
    if data.get("date_of_service") is not None:
        raw = data["date_of_service"]
        try:
            date_of_service = dt.date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            date_of_service = None
        if date_of_service is None or len(raw) != 10:
            raise InvalidInput("date_of_service", f"must be a date as YYYY-MM-DD, got {raw!r}")
    untimed = data.get("untimed", [])
    if not isinstance(untimed, list):
        raise InvalidInput("untimed", f"must be a list of codes, got {untimed!r}")
    modifiers = data.get("assistant_modifiers", True)
    if not isinstance(modifiers, bool):
        raise InvalidInput("assistant_modifiers", f"must be true or false, got {modifiers!r}")
    allocation = data.get("allocation")
    if allocation is not None:
        allocation = _mapping(data, "allocation")
    return Request(
        method=_enum(Method, data["method"], "method"),
        discipline=_enum(Discipline, data["discipline"], "discipline"),
        timed=_mapping(data, "timed"),
        assistant_minutes=_mapping(data, "assistant_minutes"),
        untimed=tuple(untimed),
        untimed_minutes=_mapping(data, "untimed_minutes"),
        date_of_service=date_of_service,
        assistant_modifiers=modifiers,
        allocation=allocation,
    )


def answer_json(data: object, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Answer one request object; raises InvalidInput for bad input."""
    return evaluate(request_from_json(data), catalogue).to_json()


def answer_batch(
    items: Sequence[object], catalogue: Catalogue | None = None
) -> list[dict[str, Any]]:
    """Answer a JSON array in order; a bad item answers ``{"error": ...}`` and the rest go on."""
    answers: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            answers.append(answer_json(item, catalogue))
        except InvalidInput as exc:
            answers.append({"error": f"[{i}] {exc}"})
    return answers
