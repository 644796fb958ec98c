"""Property tests of the rules engine: R2.7 (a)-(c), AMA, CQ/CO, and an exhaustive oracle check."""

from __future__ import annotations

import datetime as dt
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from therapy_timer.codes import Discipline
from therapy_timer.rules import Method, Request, evaluate

TIMED_CODES = ["97110", "97112", "97116", "97140", "97530", "97535"]

minutes_per_code = st.dictionaries(
    st.sampled_from(TIMED_CODES), st.integers(min_value=0, max_value=120), min_size=1, max_size=6
)


def oracle_valid_allocations(minutes: dict[str, int]) -> list[dict[str, int]]:
    """Brute force, written from the manual's words, sharing no code with the engine.

    Units = the chart (0-7 -> 0, 8-22 -> 1, ... by table lookup); every code keeps its whole
    15-minute blocks; the other units go to codes whose leftover is not beaten by a code left out.
    """
    total = sum(minutes.values())
    chart_units = 0
    while total >= 8 + 15 * chart_units:
        chart_units += 1
    codes = sorted(minutes)
    valid = []
    for extras in product((0, 1), repeat=len(codes)):
        allocation = {c: minutes[c] // 15 + e for c, e in zip(codes, extras, strict=True)}
        if sum(allocation.values()) != chart_units:
            continue
        winners = [minutes[c] % 15 for c, e in zip(codes, extras, strict=True) if e]
        losers = [minutes[c] % 15 for c, e in zip(codes, extras, strict=True) if not e]
        if any(w == 0 for w in winners):
            continue
        if winners and losers and min(winners) < max(losers):
            continue
        valid.append(allocation)
    return valid


def test_every_two_code_split_up_to_75_minutes_matches_the_oracle() -> None:
    for a in range(76):
        for b in range(76):
            minutes = {"97110": a, "97140": b}
            result = evaluate(Request(Method.CMS, Discipline.PT, timed=minutes))
            found = [dict(result.allocation), *(dict(x) for x in result.alternatives)]
            expected = oracle_valid_allocations(minutes)
            assert sorted(map(sorted_pairs, found)) == sorted(map(sorted_pairs, expected)), minutes


def sorted_pairs(allocation: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(allocation.items())


@settings(max_examples=300)
@given(minutes_per_code)
def test_cms_allocation_properties_r2_7(minutes: dict[str, int]) -> None:
    result = evaluate(Request(Method.CMS, Discipline.PT, timed=minutes))
    total = sum(minutes.values())
    for allocation in (result.allocation, *result.alternatives):
        # (c) the units add up to the chart's units; codes with no minutes get none.
        assert sum(allocation.values()) == (total + 7) // 15
        for code, units in allocation.items():
            base = minutes[code] // 15
            # (a) never more than base + 1, never fewer than the whole blocks (R2.5).
            assert base <= units <= base + 1
            if minutes[code] == 0:
                assert units == 0
        # (b) monotonic: more minutes never means fewer units.
        for x, y in product(minutes, repeat=2):
            if minutes[x] > minutes[y]:
                assert allocation[x] >= allocation[y]
    assert result.total_timed_units == (total + 7) // 15
    assert result.total_timed_minutes == total


@settings(max_examples=300)
@given(minutes_per_code)
def test_ama_units_are_per_code_midpoint(minutes: dict[str, int]) -> None:
    result = evaluate(Request(Method.AMA, Discipline.OT, timed=minutes))
    for code in result.codes:
        m = minutes[code.code]
        assert code.units == (0 if m < 8 else (m - 8) // 15 + 1)  # R3.1: 8-22 = 1, 23-37 = 2 ...
    assert result.total_timed_units == sum(c.units for c in result.codes)
    assert result.alternatives == ()


@st.composite
def assisted_requests(draw: st.DrawFn) -> Request:
    minutes = draw(minutes_per_code)
    assistant = {c: draw(st.integers(0, m)) for c, m in minutes.items()}
    discipline = draw(st.sampled_from([Discipline.PT, Discipline.OT]))
    method = draw(st.sampled_from(list(Method)))
    dos = draw(st.dates(min_value=dt.date(2018, 1, 1), max_value=dt.date(2027, 12, 31)))
    return Request(
        method, discipline, timed=minutes, assistant_minutes=assistant, date_of_service=dos
    )


@settings(max_examples=400)
@given(assisted_requests())
def test_cq_co_lines_add_up_to_each_codes_units(request: Request) -> None:
    result = evaluate(request)
    modifier = {"PT": ("GP", "CQ"), "OT": ("GO", "CO")}[request.discipline.value]
    for code in result.codes:
        lines = [line for line in result.lines if line.code == code.code]
        assert sum(line.units for line in lines) == code.units
        assert len(lines) <= 2
        for line in lines:
            assert line.modifiers in ((modifier[0],), modifier)
        with_modifier = sum(line.units for line in lines if len(line.modifiers) == 2)
        if code.assistant_minutes == 0 or request.date_of_service < dt.date(2020, 1, 1):  # type: ignore[operator]
            assert with_modifier == 0  # R7.1 / R7.4: no assistant minutes, no modifier
        # Whole 15-minute blocks belong to whoever furnished them (§7.3).
        assert with_modifier >= min(code.assistant_minutes // 15, code.units) or (
            request.date_of_service < dt.date(2020, 1, 1)  # type: ignore[operator]
        )
        therapist_blocks = (code.minutes - code.assistant_minutes) // 15
        assert code.units - with_modifier >= min(therapist_blocks, code.units)


@settings(max_examples=200)
@given(assisted_requests())
def test_answers_are_deterministic_and_the_note_is_ascii(request: Request) -> None:
    first, second = evaluate(request), evaluate(request)
    assert first == second
    assert first.note.isascii()
    for code in first.codes:
        assert f"  {code.code} " in first.note  # R4.1: every code, billed or not


_BASE = dt.datetime(2025, 3, 10, 8, 0, tzinfo=dt.UTC)
# Minutes from 8:00 on a small grid: starts and stops often equal, some intervals empty
# (stop at start) or inverted (stop before start, as a clock set back may leave).
interval = st.tuples(st.integers(0, 12), st.integers(0, 12)).map(
    lambda pair: (_BASE + dt.timedelta(minutes=pair[0]), _BASE + dt.timedelta(minutes=pair[1]))
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from("abcdefg"), st.lists(interval, max_size=4), min_size=0, max_size=7
    )
)
def test_concurrent_sessions_are_every_pair_whose_intervals_overlap_r8_3(
    one_on_one: dict[str, list[tuple[dt.datetime, dt.datetime]]],
) -> None:
    """R8.3 by its definition, pair by pair: a0 < b1 and b0 < a1 for some two intervals."""
    from therapy_timer.rules import concurrent_sessions

    expected: dict[str, set[str]] = {}
    for first, mine in one_on_one.items():
        for second, theirs in one_on_one.items():
            if first != second and any(a0 < b1 and b0 < a1 for a0, a1 in mine for b0, b1 in theirs):
                expected.setdefault(first, set()).add(second)
    assert concurrent_sessions(one_on_one) == expected
