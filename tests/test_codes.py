"""The code catalogue: what §5 of the rules lists, and a clinic's own additions."""

from __future__ import annotations

from pathlib import Path

import pytest

from therapy_timer.codes import Catalogue, Discipline, Kind, builtin_catalogue, load_catalogue
from therapy_timer.errors import InvalidInput, UnknownCode

CATALOGUE = builtin_catalogue()


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("97110", Kind.TIMED),
        ("97530", Kind.TIMED),
        ("97035", Kind.TIMED),
        ("97763", Kind.TIMED),
        ("97161", Kind.UNTIMED),
        ("97168", Kind.UNTIMED),
        ("97012", Kind.UNTIMED),
        ("G0283", Kind.UNTIMED),
        ("97150", Kind.UNTIMED),
        ("92507", Kind.UNTIMED),
        ("92521", Kind.UNTIMED),
        ("97129", Kind.SPECIAL),
        ("92607", Kind.SPECIAL),
    ],
)
def test_section_5_kinds(code: str, kind: Kind) -> None:
    assert CATALOGUE.get(code).kind is kind


def test_flags_from_section_5() -> None:
    assert CATALOGUE.get("97012").supervised_modality
    assert not CATALOGUE.get("97110").supervised_modality
    assert CATALOGUE.get("97164").evaluation and CATALOGUE.get("97164").reevaluation
    assert not CATALOGUE.get("97161").assistant_allowed  # R7.9
    assert CATALOGUE.get("97150").group
    assert CATALOGUE.get("97161").own_discipline is Discipline.PT
    assert CATALOGUE.get("97110").own_discipline is None  # PT and OT
    assert "G0283" in CATALOGUE.get("97014").medicare_note


def test_lookups_normalise_and_name_the_field() -> None:
    assert CATALOGUE.get(" g0283 ").code == "G0283"
    with pytest.raises(UnknownCode) as unknown:
        CATALOGUE.get("97999", "timed.97999")
    assert unknown.value.field == "timed.97999" and "97999" in str(unknown.value)
    with pytest.raises(InvalidInput, match="not a billing code"):
        CATALOGUE.get("971100")


def test_search_matches_number_and_description() -> None:
    assert [c.code for c in CATALOGUE.search("gait")] == ["97116"]
    assert "97110" in [c.code for c in CATALOGUE.search("9711")]


def test_clinic_file_adds_and_replaces_codes(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(
        '[[code]]\ncode = "97799"\nkind = "timed"\ndescription = "Clinic protocol"\n'
        'disciplines = ["PT"]\n\n'
        '[[code]]\ncode = "97039"\nkind = "timed"\ndescription = "Laser (clinic)"\n'
        'disciplines = ["PT", "OT"]\nconstant_attendance = true\n'
    )
    catalogue = load_catalogue(clinic)
    assert catalogue.get("97799").timed
    assert catalogue.get("97039").description == "Laser (clinic)"
    assert len(catalogue) == len(CATALOGUE) + 1
    assert load_catalogue(tmp_path / "absent.toml") is CATALOGUE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[code]]\ncode = "97799"\nkind = "hourly"\ndescription = "x"\ndisciplines = ["PT"]\n',
            "hourly",
        ),
        ('[[code]]\ncode = "97799"\nkind = "timed"\ndisciplines = ["PT"]\n', "description"),
        (
            '[[code]]\ncode = "977"\nkind = "timed"\ndescription = "x"\ndisciplines = ["PT"]\n',
            "not a billing code",
        ),
        ("[[code]\n", "not a valid code file"),
    ],
)
def test_a_bad_clinic_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_catalogue(clinic)


def test_duplicate_codes_are_refused() -> None:
    entry = CATALOGUE.get("97110")
    with pytest.raises(InvalidInput, match="twice"):
        Catalogue((entry, entry))


def test_favourites_are_catalogue_data_in_the_gui_order() -> None:
    # Moved from gui/controller.py's DEFAULT_FAVOURITES, order kept (tiles left to right).
    assert CATALOGUE.favourites(Discipline.PT) == (
        "97110", "97112", "97140", "97530", "97116", "97035", "97010", "97012", "G0283",
        "97161", "97162", "97163", "97164",
    )  # fmt: skip
    assert CATALOGUE.favourites(Discipline.OT) == (
        "97110", "97530", "97535", "97112", "97140", "97533", "97010", "97018",
        "97165", "97166", "97167", "97168",
    )  # fmt: skip
    assert CATALOGUE.favourites(Discipline.SLP) == (
        "97129", "97130", "92507", "92526", "92521", "92522", "92523", "92610",
    )  # fmt: skip
    for discipline in Discipline:
        for code in CATALOGUE.favourites(discipline):
            assert discipline in CATALOGUE.get(code).disciplines


def test_favourites_must_be_codes_of_their_discipline() -> None:
    codes = (CATALOGUE.get("97110"), CATALOGUE.get("97161"))
    assert Catalogue(codes, {Discipline.PT: ("97161",)}).favourites(Discipline.PT) == ("97161",)
    assert Catalogue(codes).favourites(Discipline.SLP) == ()
    with pytest.raises(InvalidInput, match="not a code for OT"):
        Catalogue(codes, {Discipline.OT: ("97161",)})
    with pytest.raises(InvalidInput, match="not a code for PT"):
        Catalogue(codes, {Discipline.PT: ("97530",)})


def test_the_built_in_catalogue_is_parsed_once() -> None:
    assert builtin_catalogue() is builtin_catalogue() is load_catalogue()


@pytest.mark.parametrize("raw", ["97110", " 97110\n", "g0283", "G0283 "])
def test_lookups_accept_typed_forms(raw: str) -> None:
    assert CATALOGUE.get(raw).code == raw.strip().upper()
    assert raw in CATALOGUE


@pytest.mark.parametrize(
    "raw", ["٩٧١١٠", "\uff19\uff17\uff11\uff11\uff10", "9711O", "GG283", "97 10", "", "Ä0283"]
)
def test_lookups_refuse_look_alike_codes(raw: str) -> None:
    with pytest.raises(InvalidInput, match="not a billing code"):
        CATALOGUE.get(raw)
    assert raw not in CATALOGUE
