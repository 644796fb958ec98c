"""Start-up and batch speed-ups of `units` that must not change what it answers (issue 13).

The batch pauses the cyclic garbage collector and always restores it; the built-in catalogue
is read precompiled only while it was made from exactly today's codes.toml.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from tests.test_startup import loaded_after
from therapy_timer import codes, contract
from therapy_timer.codes import (
    BUILTIN_CODES_FILE,
    PRECOMPILED_CODES_FILE,
    Catalogue,
    builtin_catalogue,
    load_builtin,
    precompiled_form,
)
from therapy_timer.paths import resource_path
from therapy_timer.rules import Request, evaluate

REQUEST = {"method": "cms", "discipline": "PT", "timed": {"97110": 38, "97140": 15}}


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_during_a_batch_and_left_as_it_was(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def watched(request: Request, catalogue: object = None) -> object:
        seen.append(gc.isenabled())
        return evaluate(request)

    monkeypatch.setattr(contract, "evaluate", watched)
    (gc.enable if enabled else gc.disable)()
    try:
        answers = contract.answer_batch([REQUEST, {"timed": "no"}, REQUEST])
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert seen == [False, False]
    assert (
        answers[0]
        == answers[2]
        == contract.result_json(evaluate(contract.request_from_json(REQUEST)))
    )
    assert set(answers[1]) == {"error"}


def test_the_collector_is_restored_when_an_answer_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(request: Request, catalogue: object = None) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(contract, "evaluate", broken)
    with pytest.raises(RuntimeError):
        contract.answer_batch([REQUEST])
    assert gc.isenabled()


# --------------------------------------------------------------------------------------------
# The built-in catalogue is read precompiled (issue 13), never from a stale file


def builtin_toml() -> Path:
    return resource_path(BUILTIN_CODES_FILE)


def test_the_precompiled_catalogue_is_made_from_todays_codes_toml() -> None:
    # Fails after an edit of resources/codes.toml until packaging/precompile_codes.py is run.
    toml = builtin_toml()
    stored = resource_path(PRECOMPILED_CODES_FILE).read_text(encoding="utf-8")
    assert stored == precompiled_form(Catalogue.from_toml(toml), toml.read_bytes()) + "\n"


def test_the_precompiled_catalogue_equals_the_toml_parse_and_skips_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = Catalogue.from_toml(builtin_toml())
    assert builtin_catalogue() == parsed
    assert [c.code for c in builtin_catalogue()] == [c.code for c in parsed]  # R2.8's order
    assert dict(builtin_catalogue().favourite_lists) == dict(parsed.favourite_lists)

    def no_parsing(*args: object) -> None:
        raise AssertionError("the TOML was parsed")

    monkeypatch.setattr(codes, "_parse", no_parsing)
    assert load_builtin(builtin_toml(), resource_path(PRECOMPILED_CODES_FILE)) == parsed


def test_a_stale_precompiled_catalogue_is_never_used(tmp_path: Path) -> None:
    text = builtin_toml().read_text(encoding="utf-8")
    assert 'description = "Therapeutic exercise"' in text
    edited = tmp_path / "codes.toml"
    edited.write_text(text.replace('"Therapeutic exercise"', '"Exercise, edited"'), "utf-8")
    catalogue = load_builtin(edited, resource_path(PRECOMPILED_CODES_FILE))
    assert catalogue.get("97110").description == "Exercise, edited"
    assert catalogue == Catalogue.from_toml(edited)
    # Even a change that leaves the catalogue the same (a comment) is parsed, not assumed.
    commented = tmp_path / "commented.toml"
    commented.write_text(text + "# a comment\n", "utf-8")
    parsed: list[str] = []
    real = codes._parse

    def parse(label: str, data: bytes, base: Catalogue | None) -> Catalogue:
        parsed.append(label)
        return real(label, data, base)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codes, "_parse", parse)
        assert load_builtin(commented, resource_path(PRECOMPILED_CODES_FILE)) == builtin_catalogue()
    assert parsed == [str(commented)]


def test_a_code_files_mue_survives_its_precompiled_form(tmp_path: Path) -> None:
    # None is shipped (R9.4), but a catalogue that sets one must not lose it when stored.
    text = builtin_toml().read_text(encoding="utf-8")
    edited = tmp_path / "codes.toml"
    exercise = 'description = "Therapeutic exercise"\n'
    assert exercise in text
    edited.write_text(text.replace(exercise, exercise + "mue = 4\n"), "utf-8")
    parsed = Catalogue.from_toml(edited)
    assert parsed.get("97110").mue == 4
    stored = tmp_path / "codes.precompiled.json"
    stored.write_text(precompiled_form(parsed, edited.read_bytes()), "utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codes, "_parse", None)  # read from the stored form or fail
        assert load_builtin(edited, stored) == parsed


@pytest.mark.parametrize(
    "stored",
    [
        None,  # missing
        "not json",
        '{"source": 5}',
        "[]",
        '{"codes": []}',
    ],
)
def test_an_unreadable_precompiled_catalogue_falls_back_to_the_toml(
    stored: str | None, tmp_path: Path
) -> None:
    precompiled = tmp_path / "codes.precompiled.json"
    if stored is not None:
        precompiled.write_text(stored, "utf-8")
    assert load_builtin(builtin_toml(), precompiled) == Catalogue.from_toml(builtin_toml())


def test_a_damaged_precompiled_catalogue_for_the_same_text_falls_back_to_the_toml(
    tmp_path: Path,
) -> None:
    good = json.loads(resource_path(PRECOMPILED_CODES_FILE).read_text(encoding="utf-8"))
    for damage in (
        {"codes": [["97110", "sideways", "x", ["PT"], {}]]},
        {"codes": [["97110", "timed", "x", ["PT"], {"colour": "red"}]]},
        {"favourites": {"XX": ["97110"]}},
    ):
        precompiled = tmp_path / "codes.precompiled.json"
        precompiled.write_text(json.dumps({**good, **damage}), "utf-8")
        assert load_builtin(builtin_toml(), precompiled) == Catalogue.from_toml(builtin_toml())


def test_units_and_version_parse_no_toml_and_look_up_no_platform_folders(tmp_path: Path) -> None:
    for args in (["units", "97110=20", "97140=10"], ["--version"]):
        loaded = loaded_after(
            f"""
            from click.testing import CliRunner
            from therapy_timer.cli import main
            result = CliRunner().invoke(main, ["--data-dir", {str(tmp_path)!r}, *{args!r}])
            assert result.exit_code == 0, result.output
            """
        )
        assert not loaded & {"tomllib", "platformdirs", "getpass"}, args


def test_version_loads_neither_the_rules_nor_the_units_contract(tmp_path: Path) -> None:
    loaded = loaded_after(
        f"""
        from click.testing import CliRunner
        from therapy_timer.cli import main
        result = CliRunner().invoke(main, ["--data-dir", {str(tmp_path)!r}, "--version"])
        assert result.exit_code == 0 and "version" in result.output, result.output
        """
    )
    assert "therapy_timer.cli" in loaded
    assert not loaded & {"therapy_timer.rules", "therapy_timer.contract"}
