"""The CSV's memoised answers (``rules.evaluate_without_note``) are never answers made with
another catalogue: a clinic's codes.toml can make one code timed, untimed or special, give it
its own Medicare note, a MUE (R9.4) or another description, and two clinics can be exported in
one process.

Each request is asked of catalogues in turn, interleaved, on dates under each regime of the
rules (before CQ/CO, before the 2022 revision, after it, none given), and the memo's answer
must be the full answer without its note (or the same refusal).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from therapy_timer import rules
from therapy_timer.codes import Catalogue, Discipline, Method, builtin_catalogue, load_catalogue
from therapy_timer.errors import InvalidInput

CLINIC_FILES = (
    """
[[code]]
code = "X1000"
kind = "timed"
description = "Clinic timed"
disciplines = ["PT", "OT"]
medicare_note = "Medicare bills it as 97530"

[[code]]
code = "97110"
kind = "timed"
description = "Exercise, in our words"
disciplines = ["PT", "OT"]
""",
    """
[[code]]
code = "X1000"
kind = "untimed"
description = "Clinic untimed"
disciplines = ["PT"]
""",
    """
[[code]]
code = "X1000"
kind = "special"
description = "Clinic special"
disciplines = ["OT"]
handling = "Count it by the clinic's rule."
""",
    """
[[code]]
code = "97110"
mue = 1

[[code]]
code = "97140"
mue = 2

[[code]]
code = "X1000"
kind = "timed"
description = "Clinic timed, capped"
disciplines = ["PT"]
mue = 1
""",
)
CODES = ("97110", "97140", "97530", "X1000", "97129")
UNTIMED = ("97161", "97012", "97150", "X1000")
DATES = (None, dt.date(2019, 12, 31), dt.date(2020, 1, 1), dt.date(2022, 1, 1), dt.date(2025, 5, 5))


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory: pytest.TempPathFactory) -> list[Catalogue]:
    found = [builtin_catalogue()]
    for n, text in enumerate(CLINIC_FILES):
        path: Path = tmp_path_factory.mktemp(f"clinic{n}") / "codes.toml"
        path.write_text(text)
        found += [load_catalogue(path), load_catalogue(path)]  # the same file, two objects
    return found


minutes = st.sampled_from((0, 5, 7, 8, 15, 20, 23, 38))
request = st.builds(
    lambda method, discipline, timed, untimed, given, helped, day, cq, allocation: rules.Request(
        method,
        discipline,
        timed,
        {c: min(m, helped) for c, m in {**timed, **given}.items() if helped},
        tuple(untimed),
        {c: m for c, m in given.items() if c in untimed},
        day,
        cq,
        allocation,
    ),
    st.sampled_from(list(Method)),
    st.sampled_from(list(Discipline)),
    st.dictionaries(st.sampled_from(CODES), minutes, max_size=3),
    st.lists(st.sampled_from(UNTIMED), max_size=2, unique=True),
    st.dictionaries(st.sampled_from(UNTIMED), st.sampled_from((0, 10, 30)), max_size=2),
    st.sampled_from((0, 0, 3, 8, 9, 14)),
    st.just(None),
    st.booleans(),
    st.sampled_from((None, None, {"97110": 1}, {"97110": 1, "97140": 1})),
)


def _answer(request: rules.Request, catalogue: Catalogue, memo: bool) -> object:
    try:
        if memo:
            return rules.evaluate_without_note(request, catalogue)
        return replace(rules.evaluate(request, catalogue, ["a remark"]), note="")
    except InvalidInput as refused:
        return str(refused)


@settings(max_examples=300, deadline=None)
@given(
    asked=st.lists(
        st.tuples(request, st.integers(0, 2 * len(CLINIC_FILES))), min_size=1, max_size=8
    )
)
def test_a_memoised_answer_is_never_one_made_with_another_catalogue(
    catalogues: list[Catalogue], asked: list[tuple[rules.Request, int]]
) -> None:
    for request, which in asked:
        catalogue = catalogues[which]
        for day in DATES:  # the same question on days under other rules, in turn
            dated = replace(request, date_of_service=day)
            assert _answer(dated, catalogue, memo=True) == _answer(dated, catalogue, memo=False)
