"""Every worked example of shared/billing-rules.md (and CMS's CQ/CO examples) as a table test."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from therapy_timer.codes import Discipline
from therapy_timer.errors import InvalidInput, UnknownCode
from therapy_timer.rules import Method, Request, Result, evaluate

PT, OT, SLP = Discipline.PT, Discipline.OT, Discipline.SLP


def cms(timed: dict[str, int], discipline: Discipline = PT, **kwargs: Any) -> Result:
    return evaluate(Request(Method.CMS, discipline, timed, **kwargs))


def ama(timed: dict[str, int], discipline: Discipline = PT, **kwargs: Any) -> Result:
    return evaluate(Request(Method.AMA, discipline, timed, **kwargs))


def units(result: Result) -> dict[str, int]:
    return {c.code: c.units for c in result.codes}


def all_allocations(result: Result) -> list[dict[str, int]]:
    return [dict(result.allocation), *(dict(a) for a in result.alternatives)]


def line_set(result: Result) -> set[tuple[str, int, tuple[str, ...]]]:
    return {(line.code, line.units, line.modifiers) for line in result.lines}


def rules_of(result: Result) -> list[str]:
    return [w.rule for w in result.warnings]


# §2.3 official examples and the MAC/professional examples (CMS method); ties list every option.
CMS_EXAMPLES = [
    pytest.param({"97530": 60}, [{"97530": 4}], id="§20.2B timed 60 min"),
    pytest.param({"97112": 24, "97110": 23}, [{"97112": 2, "97110": 1}], id="Ex1 24+23"),
    pytest.param(
        {"97112": 20, "97110": 20},
        [{"97112": 2, "97110": 1}, {"97112": 1, "97110": 2}],
        id="Ex2 20+20 either",
    ),
    pytest.param({"97110": 33, "97140": 7}, [{"97110": 2, "97140": 1}], id="Ex3 33+7"),
    pytest.param(
        {"97110": 18, "97140": 13, "97116": 10, "97035": 8},
        [{"97110": 1, "97140": 1, "97116": 1, "97035": 0}],
        id="Ex4 18+13+10+8",
    ),
    pytest.param(
        {"97112": 7, "97110": 7, "97140": 7},
        [
            {"97112": 1, "97110": 0, "97140": 0},
            {"97112": 0, "97110": 1, "97140": 0},
            {"97112": 0, "97110": 0, "97140": 1},
        ],
        id="Ex5 7+7+7 any one",
    ),
    pytest.param(
        {"97140": 20, "97110": 20},
        [{"97140": 2, "97110": 1}, {"97140": 1, "97110": 2}],
        id="A52758 Ex1",
    ),
    pytest.param({"97140": 35, "97035": 7}, [{"97140": 2, "97035": 1}], id="A52758 Ex2"),
    pytest.param({"97110": 18, "97140": 10}, [{"97110": 1, "97140": 1}], id="UTHealth 18+10"),
    pytest.param(
        {"97110": 8, "97140": 8},
        [{"97110": 1, "97140": 0}, {"97110": 0, "97140": 1}],
        id="R2.12 8+8",
    ),
    pytest.param({"97110": 4, "97140": 3}, [{"97110": 0, "97140": 0}], id="R2.4 4+3"),
    pytest.param(
        {"97110": 20, "97112": 35},
        [{"97110": 1, "97112": 3}, {"97110": 2, "97112": 2}],
        id="R2.8 20+35 different totals",
    ),
    pytest.param({"97110": 128}, [{"97110": 9}], id="R2.3 128 min"),
]


@pytest.mark.parametrize(("timed", "valid"), CMS_EXAMPLES)
def test_cms_examples_give_exactly_the_valid_allocations(
    timed: dict[str, int], valid: list[dict[str, int]]
) -> None:
    result = cms(timed)
    found = all_allocations(result)
    assert sorted(found, key=sorted_items) == sorted(valid, key=sorted_items)
    assert result.total_timed_units == sum(valid[0].values())
    assert units(result) == dict(result.allocation)


def sorted_items(allocation: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(allocation.items())


def test_tie_default_prefers_more_minutes_then_catalogue_order() -> None:
    # R2.8: the documented default; Example 1's wording favours the code with more minutes.
    assert dict(cms({"97110": 20, "97112": 35}).allocation) == {"97110": 1, "97112": 3}
    # Equal minutes: catalogue order (97110 precedes 97112 in resources/codes.toml).
    assert dict(cms({"97112": 20, "97110": 20}).allocation) == {"97110": 2, "97112": 1}
    assert "R2.8" in rules_of(cms({"97112": 20, "97110": 20}))


def test_chosen_tie_alternative_is_honoured_and_checked() -> None:
    result = cms({"97112": 20, "97110": 20}, allocation={"97112": 2, "97110": 1})
    assert units(result) == {"97110": 1, "97112": 2}
    assert result.alternatives == ({"97110": 2, "97112": 1},)
    with pytest.raises(InvalidInput, match="allocation"):
        cms({"97112": 20, "97110": 20}, allocation={"97112": 3, "97110": 0})


def test_untimed_examples() -> None:
    # §20.2 B: SLP evaluation 92521 is untimed = 1 unit.
    result = evaluate(Request(Method.CMS, SLP, timed={}, untimed=("92521",)))
    assert line_set(result) == {("92521", 1, ("GN",))}
    # AAPC (Gawenda): 35 timed + 20 untimed -> 2 timed units + 1 untimed; 35 timed, 55 total.
    result = cms({"97110": 35}, untimed=("97012",), untimed_minutes={"97012": 20})
    assert units(result) == {"97110": 2, "97012": 1}
    assert (result.total_timed_minutes, result.total_treatment_minutes) == (35, 55)
    assert "Total timed code treatment minutes: 35" in result.note
    assert "Total treatment minutes: 55" in result.note


# R3.4: the AMA per-code method beside CMS.
AMA_EXAMPLES = [
    ({"97112": 24, "97110": 23}, {"97112": 2, "97110": 2}, 3),
    ({"97112": 20, "97110": 20}, {"97112": 1, "97110": 1}, 3),
    ({"97110": 33, "97140": 7}, {"97110": 2, "97140": 0}, 3),
    (
        {"97110": 18, "97140": 13, "97116": 10, "97035": 8},
        {"97110": 1, "97140": 1, "97116": 1, "97035": 1},
        3,
    ),
    ({"97112": 7, "97110": 7, "97140": 7}, {"97112": 0, "97110": 0, "97140": 0}, 1),
    ({"97110": 8, "97140": 8}, {"97110": 1, "97140": 1}, 1),
]


@pytest.mark.parametrize(("timed", "expected", "cms_units"), AMA_EXAMPLES)
def test_ama_table_r3_4(timed: dict[str, int], expected: dict[str, int], cms_units: int) -> None:
    result = ama(timed)
    assert units(result) == expected
    assert result.alternatives == ()
    assert cms(timed).total_timed_units == cms_units


# §7.4 and the CY 2022 PFS final rule examples (86 FR 65171-65174), dates of service in 2026.
DOS = dt.date(2026, 11, 20)
CQ_EXAMPLES = [
    pytest.param(
        {"97110": 36, "97140": 30},
        {"97110": 23},
        {("97140", 2, ("GP",)), ("97110", 1, ("GP", "CQ")), ("97110", 1, ("GP",))},
        id="§7.4 scenario 1: PTA 23 + PT 13; 97140 PT 30",
    ),
    pytest.param(
        {"97110": 15}, {"97110": 10}, {("97110", 1, ("GP", "CQ"))}, id="Ex A: PT 5 PTA 10"
    ),
    pytest.param({"97110": 11}, {"97110": 5}, {("97110", 1, ("GP", "CQ"))}, id="Ex B: PT 6 PTA 5"),
    pytest.param({"97110": 12}, {"97110": 7}, {("97110", 1, ("GP", "CQ"))}, id="PTA 7 PT 5"),
    pytest.param(
        {"97110": 45},
        {"97110": 22},
        {("97110", 1, ("GP", "CQ")), ("97110", 2, ("GP",))},
        id="Ex C: PT 23 PTA 22",
    ),
    pytest.param(
        {"97110": 26, "97140": 20},
        {"97110": 14},
        {("97140", 1, ("GP",)), ("97110", 1, ("GP", "CQ")), ("97110", 1, ("GP",))},
        id="Ex D: PT 12 PTA 14; 97140 PT 20",
    ),
    pytest.param(
        {"97110": 29},
        {"97110": 19},
        {("97110", 1, ("GP", "CQ")), ("97110", 1, ("GP",))},
        id="Ex 2 (final policy): PT 10 PTA 19",
    ),
    pytest.param({"97110": 22}, {"97110": 14}, {("97110", 1, ("GP",))}, id="R7.6: PT 8 PTA 14"),
    pytest.param({"97110": 30}, {"97110": 30}, {("97110", 2, ("GP", "CQ"))}, id="all by assistant"),
    pytest.param({"97110": 30}, {"97110": 3}, {("97110", 2, ("GP",))}, id="exactly 10% of a unit"),
]


@pytest.mark.parametrize(("timed", "assistant", "expected"), CQ_EXAMPLES)
def test_cq_examples(
    timed: dict[str, int],
    assistant: dict[str, int],
    expected: set[tuple[str, int, tuple[str, ...]]],
) -> None:
    result = cms(timed, assistant_minutes=assistant, date_of_service=DOS)
    assert line_set(result) == expected


@pytest.mark.parametrize(
    ("therapist", "assistant"),
    [
        (9, 14),
        (10, 13),
        (10, 14),
        (11, 12),
        (11, 13),
        (11, 14),
        (12, 12),
        (12, 13),
        (12, 14),
        (13, 12),
        (13, 13),
        (13, 14),
        (14, 14),
    ],
)
def test_two_remaining_units_split_one_with_one_without(therapist: int, assistant: int) -> None:
    # R7.7 and CMS's list of qualifying splits (86 FR 65173-65174), both ways round.
    for t, a in ((therapist, assistant), (assistant, therapist)):
        result = cms({"97110": t + a}, assistant_minutes={"97110": a}, date_of_service=DOS)
        assert line_set(result) == {("97110", 1, ("GP", "CQ")), ("97110", 1, ("GP",))}
        assert "R7.7" not in rules_of(result)


def test_ot_example_e_tie_between_therapist_and_assistant_codes() -> None:
    # 86 FR 65173 Example E: OT 11 min of 97530, OTA 11 min of 97535: either bill is valid.
    request = {"timed": {"97530": 11, "97535": 11}, "assistant_minutes": {"97535": 11}}
    result = cms(
        request["timed"],
        assistant_minutes=request["assistant_minutes"],
        discipline=OT,
        date_of_service=DOS,
    )
    assert line_set(result) == {("97530", 1, ("GO",))}
    chosen = cms(
        request["timed"],
        assistant_minutes=request["assistant_minutes"],
        discipline=OT,
        date_of_service=DOS,
        allocation={"97535": 1},
    )
    assert line_set(chosen) == {("97535", 1, ("GO", "CO"))}


def test_ot_example_f_group_untimed_with_assistant() -> None:
    # 86 FR 65173 Example F: 97150 group, OT 20 + OTA 20 -> 1 unit with CO (10% test on the service).
    result = evaluate(
        Request(
            Method.CMS,
            OT,
            timed={},
            untimed=("97150",),
            untimed_minutes={"97150": 40},
            assistant_minutes={"97150": 20},
            date_of_service=DOS,
        )
    )
    assert line_set(result) == {("97150", 1, ("GO", "CO"))}


def test_q1_two_remaining_units_outside_the_rule_are_flagged_not_guessed() -> None:
    # §11 Q1: PT 14 + PTA 8 of 97110 beside 97140 16 gives 97110 two units with no sourced split.
    result = cms({"97110": 22, "97140": 16}, assistant_minutes={"97110": 8}, date_of_service=DOS)
    assert units(result) == {"97110": 2, "97140": 1}
    assert "R7.7" in rules_of(result)
    assert ("97110", 2, ("GP", "CQ")) in line_set(result)
    # 10 + 12 = 22 minutes: each in 9-14 but under the 23-minute total, so (v) does not apply.
    result = cms({"97110": 22, "97140": 20}, assistant_minutes={"97110": 12}, date_of_service=DOS)
    assert units(result)["97110"] == 2
    assert "R7.7" in rules_of(result)


def test_simple_method_disagreement_is_warned() -> None:
    # §7.5: final unit of 7 therapist + 1 assistant minutes: the percentage method gives CQ.
    result = cms({"97110": 8}, assistant_minutes={"97110": 1}, date_of_service=DOS)
    assert line_set(result) == {("97110", 1, ("GP", "CQ"))}
    assert "R7.4" in rules_of(result)


@pytest.mark.parametrize("dos", [dt.date(2021, 6, 1), DOS])
def test_simple_method_disagreement_is_warned_on_two_remaining_units(dos: dt.date) -> None:
    # §7.5: wherever the simple method would answer otherwise, a warning. Two remaining units
    # of 14 therapist + 2 assistant minutes take CQ by the 10% test (20% > 10%: before 2022,
    # §11 Q2; from 2022 outside (v), §11 Q1); the simple method (16 / 10 rounded, + 1 = 3
    # minutes) would not add it. 97110 wins the day's second unit in an eight-way tie of
    # 1-minute leftovers (R2.8).
    others = dict.fromkeys(["97112", "97140", "97530", "97116", "97035", "97113", "97124"], 1)
    result = cms(
        {"97110": 16, **others},
        assistant_minutes={"97110": 2},
        date_of_service=dos,
        allocation={"97110": 2},
    )
    assert line_set(result) == {("97110", 2, ("GP", "CQ"))}
    assert "10% test: CMS's two methods disagree" in [w.gist for w in result.warnings]


@pytest.mark.parametrize(
    ("dos", "expected"),
    [
        (dt.date(2019, 12, 31), {("97110", 1, ("GP",))}),  # R7.1: none before 2020
        (dt.date(2021, 6, 1), {("97110", 1, ("GP", "CQ"))}),  # §11 Q2: 10% test alone
        (dt.date(2022, 1, 1), {("97110", 1, ("GP",))}),  # R7.6: therapist 8 of the final unit
    ],
)
def test_cq_depends_on_date_of_service(dos: dt.date, expected: set[object]) -> None:
    result = cms({"97110": 22}, assistant_minutes={"97110": 14}, date_of_service=dos)
    assert line_set(result) == expected


def test_no_assistant_modifier_for_slp_or_payers_without_cq() -> None:
    result = evaluate(
        Request(
            Method.CMS,
            SLP,
            timed={},
            untimed=("92507",),
            untimed_minutes={"92507": 30},
            assistant_minutes={"92507": 30},
        )
    )
    assert line_set(result) == {("92507", 1, ("GN",))}
    assert "R7.1" in rules_of(result)
    result = cms({"97110": 30}, assistant_minutes={"97110": 30}, assistant_modifiers=False)
    assert line_set(result) == {("97110", 2, ("GP",))}


@pytest.mark.parametrize(
    ("discipline", "code", "minutes", "extra", "expected", "rule"),
    [
        # R7.4 (A): furnished in whole by the assistant, minutes or not: CQ/CO.
        (PT, "97012", None, {}, ("GP", "CQ"), None),
        # R7.4 (B) cannot be tested without the assistant's minutes: CO, the safe reading, and
        # an act warning to record them (20 therapist minutes are known).
        (OT, "G0283", 20, {}, ("GO", "CO"), "R7.4"),
        (SLP, "92507", None, {}, ("GN",), "R7.1"),  # no SLP assistant modifier
        (PT, "97161", None, {}, ("GP",), "R7.9"),  # never on an evaluation
        (PT, "97012", None, {"date_of_service": dt.date(2019, 6, 3)}, ("GP",), "R7.1"),
        (PT, "97012", None, {"assistant_modifiers": False}, ("GP",), None),
    ],
)
def test_an_untimed_service_an_assistant_furnished_without_minutes(
    discipline: Discipline,
    code: str,
    minutes: int | None,
    extra: dict[str, Any],
    expected: tuple[str, ...],
    rule: str | None,
) -> None:
    # A supervised modality's minutes are optional (untimed, 1 unit), so a PTA who sets up the
    # traction may record none; it was billed as the therapist's, without CQ.
    result = evaluate(
        Request(
            Method.CMS,
            discipline,
            timed={},
            untimed=(code,),
            untimed_minutes={} if minutes is None else {code: minutes},
            assistant_untimed=(code,),
            **{"date_of_service": DOS, **extra},
        )
    )
    assert line_set(result) == {(code, 1, expected)}
    assert rules_of(result) == ([rule] if rule else [])


def test_assistant_untimed_names_untimed_codes_of_the_request() -> None:
    with pytest.raises(InvalidInput, match=r"assistant_untimed\[0\]"):
        evaluate(Request(Method.CMS, PT, timed={}, assistant_untimed=("97012",)))
    with pytest.raises(InvalidInput, match=r"assistant_untimed\[1\]"):
        evaluate(
            Request(
                Method.CMS, PT, timed={}, untimed=("97012",), assistant_untimed=("97012", "97012")
            )
        )


def test_assistant_minutes_on_evaluation_warn_r7_9() -> None:
    result = cms(
        {}, untimed=("97161",), untimed_minutes={"97161": 30}, assistant_minutes={"97161": 10}
    )
    assert line_set(result) == {("97161", 1, ("GP",))}
    assert "R7.9" in rules_of(result)


WARNING_CASES = [
    pytest.param(dict(timed={"97110": 4, "97140": 3}), "R2.4", id="under 8 total"),
    pytest.param(
        dict(timed={"97110": 18, "97140": 13, "97116": 10, "97035": 8}),
        "R2.10",
        id="documented not billed",
    ),
    pytest.param(dict(timed={}, untimed=("97161", "97164")), "R9.3", id="two PT evaluations"),
    pytest.param(dict(timed={"97110": 30}, untimed=("97150",)), "R8.4", id="group with one-on-one"),
    pytest.param(dict(timed={"97140": 15}, untimed=("97161",)), "R9.3", id="97140 with PT eval"),
    pytest.param(dict(timed={"97140": 15, "97530": 15}), "R9.3", id="97140 with 97530"),
    pytest.param(dict(timed={"97750": 15}, untimed=("97163",)), "R9.3", id="97750 with eval"),
    pytest.param(dict(timed={"97110": 15}, untimed=("97164",)), "R9.3", id="PM&R with re-eval"),
    pytest.param(dict(timed={}, untimed=("97014",)), "§5.2", id="97014 not Medicare"),
    pytest.param(dict(timed={"97129": 20}), "§5.3", id="special code"),
    pytest.param(dict(timed={}, untimed=("92507",)), "R6.3", id="SLP code in PT plan"),
]


@pytest.mark.parametrize(("fields", "rule"), WARNING_CASES)
def test_warnings_name_their_rule(fields: dict[str, object], rule: str) -> None:
    assert rule in rules_of(evaluate(Request(Method.CMS, PT, **fields)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "timed",
    [
        {"97110": 8},
        {"97110": 23},
        {"97110": 38},
        {"97110": 20, "97140": 20},
        {"97110": 8, "97140": 8},
    ],
)
def test_r2_11_never_fires_on_units_the_chart_gives(timed: dict[str, int]) -> None:
    # R2.11 (§20.2 C): CMS highlights a provider who *routinely* bills under 15 minutes per unit.
    # The chart itself rounds up from 8 minutes (8 -> 1 unit, 23 -> 2 units, R2.2), so units
    # counted by the chart are not that; and R2.11 is a CMS rule, never the per-code method's.
    for result in (cms(timed), ama(timed)):
        assert "R2.11" not in rules_of(result)
        assert not any("CMS expects" in w.message for w in result.warnings)


def test_r2_11_flags_units_above_the_chart_as_information() -> None:
    from therapy_timer.rules import Severity, minutes_per_unit_warning

    # 23 minutes are 2 units by the chart (>=23 through 37); 3 billed units average 7.7 minutes.
    warning = minutes_per_unit_warning(Method.CMS, 23, 3)
    assert warning is not None and warning.rule == "R2.11"
    assert warning.severity is Severity.INFO and warning.gist
    assert minutes_per_unit_warning(Method.CMS, 23, 2) is None
    assert minutes_per_unit_warning(Method.CMS, 8, 1) is None
    assert minutes_per_unit_warning(Method.AMA, 16, 2) is None  # AMA 8 + 8 = 2 units
    assert minutes_per_unit_warning(Method.AMA, 23, 3) is None  # never under the per-code method


def test_no_warnings_on_a_clean_session() -> None:
    assert cms({"97112": 24, "97110": 23}).warnings == ()


def test_special_codes_are_not_pooled() -> None:
    result = cms({"97110": 20, "97129": 20})
    assert result.total_timed_minutes == 20
    assert result.total_treatment_minutes == 40
    assert all(line.code != "97129" for line in result.lines)


def test_evaluation_keeps_its_own_discipline_modifier() -> None:
    # R6.2: discipline-specific evaluations carry their own discipline's modifier.
    result = evaluate(Request(Method.CMS, OT, timed={}, untimed=("97161",)))
    assert line_set(result) == {("97161", 1, ("GP",))}
    assert "R6.3" in rules_of(result)


@pytest.mark.parametrize(
    ("discipline", "code", "timed", "plan"),
    [
        (PT, "97165", False, "an OT plan of care"),
        (PT, "92507", False, "an SLP plan of care"),
        (SLP, "97032", True, "an OT/PT plan of care"),
        (PT, "97129", True, "an OT/SLP plan of care"),
        (OT, "97161", False, "a PT plan of care"),
    ],
)
def test_the_plan_a_code_belongs_to_is_named_with_its_article(
    discipline: Discipline, code: str, timed: bool, plan: str
) -> None:
    # R6.3's message read "belongs to a OT plan of care": the letters are said one by one.
    result = cms({code: 15}, discipline) if timed else cms({}, discipline, untimed=(code,))
    (message,) = [w.message for w in result.warnings if w.rule == "R6.3"]
    assert message.startswith(f"{code} belongs to {plan}, not {discipline.value}: ")


@pytest.mark.parametrize(
    ("discipline", "expected"),
    [(OT, ("GO", "CO")), (PT, ("GP", "CQ"))],
)
def test_a_treatment_code_of_one_discipline_takes_the_plans_modifier(
    discipline: Discipline, expected: tuple[str, ...]
) -> None:
    # R6.1/R6.3: the modifier comes from the plan of care it was furnished under; only an
    # evaluation keeps its own discipline's (R6.2). 92526 is listed for SLP alone, yet under an
    # OT plan it is billed GO, and the assistant's 20 of 30 minutes take CO (R7.4).
    result = cms(
        {},
        discipline,
        untimed=("92526",),
        untimed_minutes={"92526": 30},
        assistant_minutes={"92526": 20},
        date_of_service=dt.date(2024, 3, 4),
    )
    assert line_set(result) == {("92526", 1, expected)}
    assert "R6.3" in rules_of(result)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (Request(Method.CMS, PT, timed={"97110": -1}), "timed.97110"),
        (Request(Method.CMS, PT, timed={"97110": 1441}), "timed.97110"),
        (Request(Method.CMS, PT, timed={"97110": 2.5}), "timed.97110"),  # type: ignore[dict-item]
        (Request(Method.CMS, PT, timed={"97110": True}), "timed.97110"),
        (Request(Method.CMS, PT, timed={"97161": 30}), "timed.97161"),
        (Request(Method.CMS, PT, timed={}, untimed=("97110",)), "untimed[0]"),
        (
            Request(Method.CMS, PT, timed={"97110": 10}, assistant_minutes={"97110": 11}),
            "assistant_minutes.97110",
        ),
        (
            Request(Method.CMS, PT, timed={"97110": 10}, assistant_minutes={"97140": 1}),
            "assistant_minutes.97140",
        ),
        (Request(Method.CMS, PT, timed={}, untimed_minutes={"97012": 5}), "untimed_minutes.97012"),
        (Request(Method.CMS, PT, timed={"9711": 10}), "timed.9711"),
    ],
)
def test_bad_input_names_the_field(request_: Request, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        evaluate(request_)
    assert caught.value.field == field


def test_unknown_code_is_named() -> None:
    with pytest.raises(UnknownCode, match="99999"):
        cms({"99999": 10})


def test_note_lists_every_code_with_minutes_units_and_modifiers() -> None:
    result = cms(
        {"97110": 36, "97140": 30, "97035": 1},
        assistant_minutes={"97110": 23},
        untimed=("97161",),
        untimed_minutes={"97161": 30},
        date_of_service=DOS,
    )
    assert result.note == (
        "Date of service: 2026-11-20\n"
        "Plan of care: Physical therapy (GP)\n"
        "Billing method: CMS total-time method (8-minute rule)\n"
        "Timed services:\n"
        "  97035 Ultrasound: 1 min - not billed (0 units)\n"
        "  97110 Therapeutic exercise: 36 min (therapist 13, assistant 23) - 2 units: "
        "1 x 97110-GP-CQ, 1 x 97110-GP\n"
        "  97140 Manual therapy techniques: 30 min - 2 units: 2 x 97140-GP\n"
        "Untimed services:\n"
        "  97161 PT evaluation, low complexity: 30 min - 1 unit: 1 x 97161-GP\n"
        "Total timed code treatment minutes: 67\n"
        "Total treatment minutes: 97\n"
        "Timed units billed: 4\n"
        "Minutes furnished: therapist 74, assistant 23\n"
    )
    assert result.note.isascii()
    assert evaluate(
        Request(
            Method.CMS,
            PT,
            timed={"97110": 36, "97140": 30, "97035": 1},
            assistant_minutes={"97110": 23},
            untimed=("97161",),
            untimed_minutes={"97161": 30},
            date_of_service=DOS,
        ),
        remarks=["Amended after closing: minutes of 97110 corrected."],
    ).note.endswith("Amended after closing: minutes of 97110 corrected.\n")


def test_concurrent_sessions_r8_3() -> None:
    from therapy_timer.rules import concurrent_sessions

    t = dt.datetime(2026, 11, 20, 14, 0, tzinfo=dt.UTC)
    m = dt.timedelta(minutes=1)
    spans = {
        "a": [(t, t + 20 * m)],
        "b": [(t + 19 * m, t + 30 * m)],  # overlaps a by one minute
        "c": [(t + 30 * m, t + 40 * m)],  # starts exactly when b stops: sequential
        "d": [],
    }
    assert concurrent_sessions(spans) == {"a": {"b"}, "b": {"a"}}


# R2.8 tie default (docs/billing-rules.md "Ties"): fewer CQ/CO units, then more minutes, then
# catalogue order. 86 FR 65173 Example E: a tie between a therapist's code and an assistant's
# code may be billed either way; the line without CQ/CO is paid 100% instead of 85% (R7.2).


def test_example_e_reversed_default_bills_the_therapists_code_not_catalogue_order() -> None:
    # OTA 11 min of 97530, OT 11 min of 97535: 22 min = 1 unit (R2.2), leftovers tie at 11.
    # Catalogue order alone would give the unit to 97530 (listed first), which carries CO.
    timed = {"97530": 11, "97535": 11}
    result = cms(timed, OT, assistant_minutes={"97530": 11}, date_of_service=DOS)
    assert line_set(result) == {("97535", 1, ("GO",))}
    assert [dict(a) for a in result.alternatives] == [{"97530": 1, "97535": 0}]
    tie = [w for w in result.warnings if w.rule == "R2.8"]
    assert tie and all(w.severity.value == "info" for w in tie)
    # The other allocation stays valid and may be chosen; it then carries CO (R7.4(A)).
    chosen = cms(
        timed, OT, assistant_minutes={"97530": 11}, date_of_service=DOS, allocation={"97530": 1}
    )
    assert line_set(chosen) == {("97530", 1, ("GO", "CO"))}
    with pytest.raises(InvalidInput, match="allocation"):
        cms(
            timed,
            OT,
            assistant_minutes={"97530": 11},
            date_of_service=DOS,
            allocation={"97530": 1, "97535": 1},
        )


def test_fewer_cq_units_beat_more_minutes() -> None:
    # 97110 26 min all by the PTA, 97112 11 min by the PT: 37 min = 2 units; base 1 + 0 and the
    # leftovers tie at 11. Worked by hand: 97110 x 2 -> both units CQ (the PTA furnished every
    # minute); 97110 x 1 + 97112 x 1 -> one CQ unit. The default is the second, although the
    # "more minutes" tiebreak alone would pick the first.
    result = cms({"97110": 26, "97112": 11}, assistant_minutes={"97110": 26}, date_of_service=DOS)
    assert line_set(result) == {("97110", 1, ("GP", "CQ")), ("97112", 1, ("GP",))}
    assert [dict(a) for a in result.alternatives] == [{"97110": 2, "97112": 0}]
    # Without the assistant the CQ/CO counts are equal, and more minutes decide (unchanged).
    assert units(cms({"97110": 26, "97112": 11})) == {"97110": 2, "97112": 0}
    # A payer without CQ/CO (R7.10) or a date before 2020 (R7.1): no modifier either way.
    no_cq = cms(
        {"97110": 26, "97112": 11}, assistant_minutes={"97110": 26}, assistant_modifiers=False
    )
    assert units(no_cq) == {"97110": 2, "97112": 0}


def test_many_ties_are_counted_not_enumerated_and_any_choice_is_accepted() -> None:
    from math import comb

    codes = ["97110", "97112", "97113", "97116", "97124", "97140", "97530", "97533", "97535"]
    codes += ["97537", "97542", "97750", "97755", "97760", "97761", "97763", "97032", "97033"]
    codes += ["97034", "97036"]
    timed = dict.fromkeys(codes, 7)  # 20 x 7 = 140 min = 9 units (R2.2); every leftover ties
    result = cms(timed)
    assert result.total_timed_units == 9
    assert len(result.alternatives) == 50  # MAX_ALTERNATIVES
    others = comb(20, 9) - 1
    assert any(f"{others} other allocations are valid" in w.message for w in result.warnings)
    # The last combination in catalogue order is far beyond the listed ones and still valid.
    last = dict.fromkeys(codes[-9:], 1)
    chosen = cms(timed, allocation=last)
    assert {c for c, u in chosen.allocation.items() if u} == set(codes[-9:])
    with pytest.raises(InvalidInput, match="allocation"):
        cms(timed, allocation=dict.fromkeys(codes[:10], 1))  # 10 units: one too many


# Warning severity and gist (claim-day issue item 5)


@pytest.mark.parametrize(
    ("fields", "rule", "severity"),
    [
        (dict(timed={"97110": 4, "97140": 3}), "R2.4", "act"),
        (dict(timed={"97110": 18, "97140": 13, "97116": 10, "97035": 8}), "R2.10", "act"),
        (dict(timed={"97112": 20, "97110": 20}), "R2.8", "info"),
        (
            dict(
                timed={},
                untimed=("97161",),
                untimed_minutes={"97161": 30},
                assistant_minutes={"97161": 10},
            ),
            "R7.9",
            "act",
        ),
        (
            dict(
                timed={"97110": 22, "97140": 16},
                assistant_minutes={"97110": 8},
                date_of_service=DOS,
            ),
            "R7.7",
            "act",
        ),
        (
            dict(timed={"97110": 8}, assistant_minutes={"97110": 1}, date_of_service=DOS),
            "R7.4",
            "act",
        ),
        (
            dict(
                timed={"97110": 22},
                assistant_minutes={"97110": 14},
                date_of_service=dt.date(2019, 6, 1),
            ),
            "R7.1",
            "info",
        ),
        (dict(timed={"97140": 15}, untimed=("97161",)), "R9.3", "act"),
        (dict(timed={"97129": 20}), "§5.3", "act"),
        (dict(timed={}, untimed=("92507",)), "R6.3", "act"),
    ],
)
def test_each_warning_has_a_severity_and_a_gist(
    fields: dict[str, object], rule: str, severity: str
) -> None:
    result = evaluate(Request(Method.CMS, PT, **fields))  # type: ignore[arg-type]
    found = [w for w in result.warnings if w.rule == rule]
    assert found, rules_of(result)
    for warning in found:
        assert warning.severity.value == severity
        assert 0 < len(warning.gist) <= 45 and "\n" not in warning.gist


def test_concurrent_warning_is_act() -> None:
    from therapy_timer.rules import concurrent_warning

    warning = concurrent_warning(["B. Patient"])
    assert (warning.rule, warning.severity.value) == ("R8.3", "act")
    assert "B. Patient" in warning.message and warning.gist


def test_ncci_pairs_only_for_codes_billed() -> None:
    # 97140 38 + 97530 7 = 45 min = 3 units (R2.2): base 2 + 0, leftovers 8 > 7, so 97530 bills 0.
    result = cms({"97140": 38, "97530": 7})
    assert units(result) == {"97140": 3, "97530": 0}
    assert not any("97140 with 97530" in w.message for w in result.warnings)
    # 97140 20 + 97530 7 = 27 min = 2 units: leftovers 5 < 7, so both bill and R9.3 fires.
    result = cms({"97140": 20, "97530": 7})
    assert units(result) == {"97140": 1, "97530": 1}
    assert any("97140 with 97530" in w.message for w in result.warnings)
    # A manual therapy of 5 min beside an evaluation bills nothing: no 97140/97161 edit.
    result = cms({"97140": 5}, untimed=("97161",))
    assert not any(w.rule == "R9.3" for w in result.warnings)
