"""Medically unlikely edits (R9.4): a clinic's codes.toml may give a code its MUE, the most
units a payer accepts of it on one date of service; a claim day billing more is warned about
(act, "Over the MUE") and never capped: the units stay what the minutes give."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClock
from therapy_timer import billing, rules
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Method, Role
from therapy_timer.codes import builtin_catalogue as _builtin

BUILTIN = _builtin()


@functools.cache
def with_mues(**mues: int) -> Catalogue:
    """The built-in catalogue with these codes' MUEs set, as a clinic's codes.toml sets them."""
    return BUILTIN.extended(replace(BUILTIN.get(code), mue=mue) for code, mue in mues.items())


def request(
    method: Method = Method.CMS, assistant: dict[str, int] | None = None, **timed: int
) -> rules.Request:
    return rules.Request(
        method, Discipline.PT, {code.removeprefix("c"): m for code, m in timed.items()}, assistant
    )


def over_mue(result: rules.Result) -> list[rules.RuleWarning]:
    return [w for w in result.warnings if w.rule == "R9.4"]


def test_units_over_the_mue_are_warned_about_naming_code_units_and_cap() -> None:
    # 53 minutes of 97110 alone: (53 + 7) // 15 = 4 units (R2.2); the clinic's MUE is 3.
    result = rules.evaluate(request(c97110=53), with_mues(**{"97110": 3}))
    assert [(line.code, line.units) for line in result.lines] == [("97110", 4)]
    assert over_mue(result) == [
        rules.RuleWarning(
            "R9.4",
            "97110: 4 units on this date of service, over its medically unlikely edit (MUE) of "
            "3 in the clinic's codes.toml; units above the MUE are denied for that line. The "
            "units are billed as counted: check the record and the payer's edit before the "
            "claim goes out.",
            rules.Severity.ACT,
            "Over the MUE",
        )
    ]
    assert result.warnings[-1] is over_mue(result)[0]  # after R9.3, in rule order


def test_units_at_the_mue_draw_no_warning() -> None:
    assert over_mue(rules.evaluate(request(c97110=53), with_mues(**{"97110": 4}))) == []
    assert over_mue(rules.evaluate(request(c97110=52), with_mues(**{"97110": 3}))) == []


def test_the_mue_is_warned_about_never_capped() -> None:
    # 97110 53 min and 97140 36: 89 minutes, 6 units (R2.2): 97110 3 + 1, 97140 2 (R2.6); an
    # assistant's 20 minutes of 97110 split its units over two lines (R7.4-R7.6).
    asked = request(assistant={"97110": 20}, c97110=53, c97140=36)
    capped = rules.evaluate(asked, with_mues(**{"97110": 1, "97140": 1}))
    plain = rules.evaluate(asked, BUILTIN)
    assert [w.message.split(":")[0] for w in over_mue(capped)] == ["97110", "97140"]
    assert [line.code for line in capped.lines] == ["97110", "97110", "97140"]
    assert "97110: 4 units" in over_mue(capped)[0].message  # the code's lines together
    assert replace(capped, warnings=()) == replace(plain, warnings=())
    assert [w for w in capped.warnings if w.rule != "R9.4"] == list(plain.warnings)
    assert sum(line.units for line in capped.lines) == 6


def test_a_tie_gives_the_extra_unit_to_a_code_it_keeps_within_its_mue() -> None:
    # 97110 53 min and 97140 38: 91 minutes, 6 units (R2.2); whole units 3 and 2 leave 8 and 8
    # minutes, a tie for the sixth unit (R2.8), which the default gives the longer 97110.
    asked = request(c97110=53, c97140=38)
    plain = rules.evaluate(asked, BUILTIN)
    assert plain.allocation == {"97110": 4, "97140": 2}
    # With 97110's MUE at 3 the unit goes to 97140: equally valid, and nothing is denied.
    kept = rules.evaluate(asked, with_mues(**{"97110": 3}))
    assert kept.allocation == {"97110": 3, "97140": 3}
    assert kept.alternatives == ({"97110": 4, "97140": 2},)
    assert over_mue(kept) == []
    (tie,) = [w for w in kept.warnings if w.rule == "R2.8"]
    assert "The default keeps units within the MUEs (R9.4), then bills" in tie.message
    # Over either way: the next rule decides, and the one code over is named.
    both = rules.evaluate(asked, with_mues(**{"97110": 3, "97140": 2}))
    assert both.allocation == plain.allocation
    assert [w.message.split(":")[0] for w in over_mue(both)] == ["97110"]
    # A choice the therapist made stands.
    chosen = rules.evaluate(
        replace(asked, allocation={"97110": 4, "97140": 2}), with_mues(**{"97110": 3})
    )
    assert chosen.allocation == {"97110": 4, "97140": 2} and over_mue(chosen)


def test_the_per_code_method_is_held_to_the_mue_too() -> None:
    # AMA/CPT: each code (m + 7) // 15 on its own (R3.1): 38 minutes are 3 units.
    result = rules.evaluate(
        request(Method.AMA, c97110=38, c97140=38), with_mues(**{"97110": 2, "97140": 3})
    )
    assert [w.message.split(":")[0] for w in over_mue(result)] == ["97110"]
    assert "3 units" in over_mue(result)[0].message


def test_an_untimed_code_is_one_unit_and_a_code_counted_by_hand_is_left_to_the_biller() -> None:
    catalogue = with_mues(**{"97012": 1, "97129": 1})
    untimed = rules.evaluate(
        rules.Request(Method.CMS, Discipline.PT, {}, untimed=["97012"]), catalogue
    )
    assert over_mue(untimed) == []
    special = rules.evaluate(rules.Request(Method.CMS, Discipline.SLP, {"97129": 40}), catalogue)
    assert over_mue(special) == []
    (by_hand,) = [w for w in special.warnings if w.rule == "§5.3"]
    assert by_hand.message.endswith("Count its units by hand (its MUE: 1 unit a day).")
    builtin = rules.evaluate(rules.Request(Method.CMS, Discipline.SLP, {"97129": 40}), BUILTIN)
    (plain,) = [w for w in builtin.warnings if w.rule == "§5.3"]
    assert plain.message.endswith("Count its units by hand.")


CODES = ("97110", "97140", "97530", "97112")


@settings(max_examples=400, deadline=None)
@example(  # three codes tie; the same default, its alternatives in another order
    minutes={"97110": 109, "97140": 109, "97530": 124},
    helped=0,
    mues={"97110": 1},
    method=Method.CMS,
    untimed=False,
    dos=None,
)
@example(  # both codes over either way, 4 units over either way: the next rule decides
    minutes={"97110": 19, "97140": 64},
    helped=20,
    mues={"97110": 1, "97140": 1},
    method=Method.CMS,
    untimed=False,
    dos=None,
)
@given(
    minutes=st.dictionaries(st.sampled_from(CODES), st.integers(0, 130), max_size=4),
    helped=st.integers(0, 30),
    mues=st.dictionaries(st.sampled_from((*CODES, "97012")), st.integers(1, 5), max_size=5),
    method=st.sampled_from(list(Method)),
    untimed=st.booleans(),
    dos=st.sampled_from((None, datetime(2021, 3, 1).date(), datetime(2025, 3, 1).date())),
)
def test_the_warning_appears_iff_a_codes_units_exceed_its_mue_and_only_a_tie_moves_a_unit(
    minutes: dict[str, int],
    helped: int,
    mues: dict[str, int],
    method: Method,
    untimed: bool,
    dos: object,
) -> None:
    assistant = {c: min(m, helped) for c, m in minutes.items() if helped}
    asked = rules.Request(
        method,
        Discipline.PT,
        minutes,
        assistant,
        ["97012"] if untimed else [],
        date_of_service=dos,  # type: ignore[arg-type]
    )
    catalogue = with_mues(**mues)
    result = rules.evaluate(asked, catalogue)
    plain = rules.evaluate(asked, BUILTIN)
    units = {r.code: r.units for r in result.codes}
    expected = [c for c in units if c in mues and units[c] > mues[c]]
    warned = over_mue(result)
    assert [w.message.split(":")[0] for w in warned] == expected
    for warning, code in zip(warned, expected, strict=True):
        assert f"{code}: {units[code]} unit" in warning.message
        assert f"(MUE) of {mues[code]} " in warning.message
        assert (warning.severity, warning.gist) == (rules.Severity.ACT, "Over the MUE")
    # Never capped: the same units in all, and the same valid allocations (R2.8) to choose
    # from; the default is one with the fewest units over an MUE (docs: "Ties"), the units a
    # payer denies (R9.4).
    assert result.total_timed_units == plain.total_timed_units
    valid = {tuple(sorted(a.items())) for a in (plain.allocation, *plain.alternatives)}
    assert {tuple(sorted(a.items())) for a in (result.allocation, *result.alternatives)} == valid

    def over(allocation: Mapping[str, int]) -> int:
        return sum(max(0, n - mues[c]) for c, n in allocation.items() if c in mues)

    assert over(result.allocation) == min(over(dict(a)) for a in valid)
    # When the default is the same, everything but R9.4 (and the tie's words) is too; the
    # alternatives (the same, above) are listed in the default's order of preference.
    if result.allocation == plain.allocation:
        assert replace(result, warnings=(), alternatives=()) == replace(
            plain, warnings=(), alternatives=()
        )
        kept = [w for w in result.warnings if w.rule not in ("R9.4", "R2.8")]
        assert kept == [w for w in plain.warnings if w.rule != "R2.8"]
    # The CSV's memoised answer says the same.
    assert rules.evaluate_without_note(asked, catalogue) == replace(result, note="")


MUE_FILE = '[[code]]\ncode = "97110"\nmue = 3\n'


def _one_visit(clinic: Clinic, clock: FakeClock, patient: str, minutes: int) -> None:
    session = clinic.open_session(
        patient_ref=patient, clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110", FurnishedBy.THERAPIST)
    clock.advance(minutes=minutes)
    clinic.end_session(session.id)


@pytest.mark.parametrize("pooled", [False, True])
def test_the_csv_carries_the_warning_on_the_day_over_the_mue(tmp_path: Path, pooled: bool) -> None:
    """Through the clinic's codes.toml, as the desk exports: MRN1's day bills 4 units of
    97110 (53 minutes, or 30 + 23 in two visits pooled into one claim day, R1.2), MRN2's 3."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "codes.toml").write_text(MUE_FILE, "utf-8")
    clock = FakeClock(datetime(2025, 3, 10, 14, 0, tzinfo=UTC))
    with Clinic.open(data, clock=clock) as clinic:
        if pooled:
            _one_visit(clinic, clock, "MRN1", 30)
            _one_visit(clinic, clock, "MRN1", 23)
        else:
            _one_visit(clinic, clock, "MRN1", 53)
        _one_visit(clinic, clock, "MRN2", 45)
        day = clock.now().astimezone().date()
        text = clinic.export("csv", day, mark=False).text
    assert text is not None
    rows = {r["patient_ref"]: r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert rows["MRN1"]["units"] == "4"
    assert "R9.4: Over the MUE" in rows["MRN1"]["warnings"].split(" | ")
    assert rows["MRN2"]["units"] == "3"
    assert "R9.4" not in rows["MRN2"]["warnings"]


def _visit(
    clinic: Clinic, clock: FakeClock, patient: str, role: Role, minutes: int, payer: str
) -> None:
    session = clinic.open_session(
        patient_ref=patient, clinician=f"{role.value} one", role=role, payer_profile=payer
    )
    clinic.start(session.id, "97110", FurnishedBy.THERAPIST)
    clock.advance(minutes=minutes)
    clinic.end_session(session.id)


ACROSS = '[[code]]\ncode = "97110"\nmue = 4\n'


def _across(
    tmp_path: Path, visits: list[tuple[str, Role, int]], payers: tuple[str, ...] = ()
) -> Clinic:
    """A clinic whose codes.toml caps 97110 at 4 units, with these visits of 97110 today
    billed to Medicare, or to each of ``payers`` in turn (CMS profiles added here)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "codes.toml").write_text(ACROSS, "utf-8")
    clock = FakeClock(datetime(2025, 3, 10, 14, 0, tzinfo=UTC))
    clinic = Clinic.open(data, clock=clock)
    for payer in set(payers) - {"Medicare"}:
        clinic.add_payer_profile(payer, "cms")
    for n, (patient, role, minutes) in enumerate(visits):
        _visit(clinic, clock, patient, role, minutes, payers[n] if payers else "Medicare")
    return clinic


SUMMED = (
    "97110: 6 units on this date of service, summed over the patient's claim days of that "
    "date billed to Medicare (OT under Medicare: 3 units; PT under Medicare: 3 units), over "
    "its medically unlikely edit (MUE) of 4 in the clinic's codes.toml"
)


def test_a_codes_units_are_held_to_its_mue_across_a_patients_claim_days_of_one_date(
    tmp_path: Path,
) -> None:
    """R9.4 caps a code per patient and date of service across claims: 3 units of 97110
    under a PT plan and 3 under an OT plan (45 minutes each) are 6 against a MUE of 4, and
    each claim day says so; MRN2's PT day of 3 units and mrn1's reference (the same patient,
    compared as claim days compare it) show that only the patient's own days are summed."""
    visits = [("MRN1", Role.PT, 45), ("mrn1", Role.OT, 45), ("MRN2", Role.PT, 45)]
    with _across(tmp_path, visits) as clinic:
        days = clinic.claim_days(clinic.today())
    assert [(d.patient_ref, d.discipline, billing.lines_text(d.result)) for d in days] == [
        ("mrn1", Discipline.OT, "3 \N{MULTIPLICATION SIGN} 97110-GO"),
        ("MRN1", Discipline.PT, "3 \N{MULTIPLICATION SIGN} 97110-GP"),
        ("MRN2", Discipline.PT, "3 \N{MULTIPLICATION SIGN} 97110-GP"),
    ]
    for day in days[:2]:
        [warning] = over_mue(day.result)
        assert warning.message.startswith(SUMMED)
        assert (warning.severity, warning.gist) == (rules.Severity.ACT, "Over the MUE")
    assert over_mue(days[2].result) == []


def test_claim_days_billed_to_different_payers_are_not_summed_against_the_mue(
    tmp_path: Path,
) -> None:
    """Each payer denies units over the MUE on its own claims only: MRN1's 3 units of 97110
    under PT and 3 under SLP billed to Medicare are 6 against its MUE of 4, while the 3 under
    OT billed to a workers' compensation payer are that payer's and are neither summed nor
    warned about."""
    visits = [("MRN1", Role.PT, 45), ("MRN1", Role.OT, 45), ("MRN1", Role.SLP, 45)]
    payers = ("Medicare", "Workers comp", "Medicare")
    with _across(tmp_path, visits, payers) as clinic:
        days = clinic.claim_days(clinic.today())
    warned = {(d.discipline, d.payer_profile): over_mue(d.result) for d in days}
    assert warned.pop((Discipline.OT, "Workers comp")) == []
    assert sorted(warned) == [(Discipline.PT, "Medicare"), (Discipline.SLP, "Medicare")]
    for [warning] in warned.values():
        assert warning.message.startswith(
            "97110: 6 units on this date of service, summed over the patient's claim days of "
            "that date billed to Medicare (PT under Medicare: 3 units; SLP under Medicare: 3 "
            "units)"
        )


def test_a_patients_only_claim_day_of_a_date_keeps_the_rules_own_warning_alone(
    tmp_path: Path,
) -> None:
    """One claim day (two visits pooled, R1.2) is held to the MUE by the rules as before:
    53 + 15 minutes bill 5 units, warned once, in the rules' words; 3 units draw none."""
    with _across(tmp_path, [("MRN1", Role.PT, 53), ("MRN1", Role.PT, 15)]) as clinic:
        [day] = clinic.claim_days(clinic.today())
        expected = rules.evaluate(
            rules.Request(Method.CMS, Discipline.PT, {"97110": 68}),
            with_mues(**{"97110": 4}),
        )
        assert day.result.warnings == expected.warnings
    assert [w.message[:34] for w in over_mue(day.result)] == ["97110: 5 units on this date of ser"]


def test_a_day_over_the_mue_alone_is_warned_once_and_names_no_sum(tmp_path: Path) -> None:
    """5 units under PT (68 minutes) and 1 under OT: the PT day carries the rules' warning
    (the same denial), the OT day the summed one, naming both days."""
    with _across(tmp_path, [("MRN1", Role.PT, 68), ("MRN1", Role.OT, 15)]) as clinic:
        ot, pt = clinic.claim_days(clinic.today())
    [alone] = over_mue(pt.result)
    assert alone.message.startswith("97110: 5 units on this date of service, over its")
    [summed] = over_mue(ot.result)
    assert summed.message.startswith(
        "97110: 6 units on this date of service, summed over the patient's claim days of that "
        "date billed to Medicare (OT under Medicare: 1 unit; PT under Medicare: 5 units)"
    )


def test_the_csv_carries_the_summed_warning_on_each_claim_day(tmp_path: Path) -> None:
    """The desk's export: both of MRN1's days carry it, through the CSV's plain-day path's
    fallback as through its full one (a clinician's export lists only the days they saw)."""
    visits = [("MRN1", Role.PT, 45), ("MRN1", Role.OT, 45), ("MRN2", Role.PT, 45)]
    with _across(tmp_path, visits) as clinic:
        day = clinic.today()
        text = clinic.export("csv", day, mark=False).text
        assert text is not None
        assert text == ex.report_text(clinic.claim_days(day), "csv")
        ot_only = clinic.export("csv", day, clinician="OT one", mark=False).text
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    warned = [
        (r["patient_ref"], r["discipline"], "R9.4: Over the MUE" in r["warnings"].split(" | "))
        for r in rows
    ]
    assert warned == [("MRN1", "OT", True), ("MRN1", "PT", True), ("MRN2", "PT", False)]
    assert ot_only is not None
    [ot_row] = csv.DictReader(io.StringIO(ot_only.lstrip("\ufeff")))
    assert (ot_row["discipline"], "R9.4: Over the MUE" in ot_row["warnings"]) == ("OT", True)


def test_the_summed_warning_matches_an_independent_count_per_payer_and_code(
    tmp_path: Path,
) -> None:
    """billing.over_mue_across against a plain count: a day billing a code carries the summed
    warning iff it is within the MUE on its own and that code's units over the patient's days
    of the date billed to the same payer (two or more of them) exceed the MUE. Days are made
    from one real claim day with their payer and lines replaced."""
    with _across(tmp_path, [("MRN1", Role.PT, 45)]) as clinic:
        [template] = clinic.claim_days(clinic.today())
    catalogue = with_mues(**{"97110": 4, "97140": 2})

    def day(payer: str, units: Mapping[str, int]) -> billing.ClaimDay:
        session = replace(template.visits[0].session, payer_profile=payer)
        lines = tuple(rules.Line(code, n, ("GP",)) for code, n in units.items())
        result = replace(template.result, lines=lines, warnings=())
        return replace(
            template, visits=(replace(template.visits[0], session=session),), result=result
        )

    days_of_a_date = st.lists(
        st.tuples(
            st.sampled_from(["Medicare", "Workers comp"]),
            st.dictionaries(st.sampled_from(["97110", "97140"]), st.integers(1, 6), max_size=2),
        ),
        min_size=1,
        max_size=4,
    )

    @settings(max_examples=300, deadline=None)
    @given(days_of_a_date)
    def check(billed: list[tuple[str, dict[str, int]]]) -> None:
        days = [day(payer, units) for payer, units in billed]
        warned = billing.over_mue_across(days, catalogue)
        for n, (payer, units) in enumerate(billed):
            expected = set()
            for code, count in units.items():
                mue = catalogue.get(code).mue
                assert mue is not None
                shares = [u[code] for p, u in billed if p == payer and code in u]
                if count <= mue and len(shares) >= 2 and sum(shares) > mue:
                    expected.add(code)
            said = {w.message.split(":", 1)[0] for w in over_mue(warned[n].result)}
            assert said == expected, (billed, n)
            for w in over_mue(warned[n].result):
                assert f"billed to {payer} (" in w.message

    check()
