"""A clinic's codes.toml is checked strictly: every problem is a plain refusal naming file and line."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from therapy_timer import codes
from therapy_timer.codes import Discipline, Kind, builtin_catalogue, load_catalogue
from therapy_timer.errors import InvalidInput

BUILTIN = builtin_catalogue()

NEW = '[[code]]\ncode = "97799"\nkind = "timed"\ndescription = "Clinic protocol"\ndisciplines = ["PT"]\n'
"""A valid new code on lines 1-5; rows below add lines 6 onwards."""


def refusal(path: Path) -> InvalidInput:
    """The InvalidInput ``load_catalogue(path)`` raises; its message always names the file."""
    with pytest.raises(InvalidInput) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)
    return info.value


# (content, line named in the message or None for a whole-file refusal, fragments of the message)
BAD_FILES: dict[str, tuple[str | bytes, int | None, tuple[str, ...]]] = {
    "bool as text": (
        NEW + 'assistant_allowed = "false"\n',
        6,
        ("code 97799, assistant_allowed", "true or false", "the text 'false'"),
    ),
    "bool as number": (NEW + "group = 1\n", 6, ("code 97799, group", "the number 1")),
    "empty disciplines": (
        NEW.replace('["PT"]', "[]"),
        5,
        ("code 97799, disciplines", "one or more", "a list of 0 items"),
    ),
    "discipline as text": (NEW.replace('["PT"]', '"PT"'), 5, ("disciplines", "the text 'PT'")),
    "unknown discipline": (NEW.replace('["PT"]', '["PTA"]'), 5, ("disciplines", "'PTA'")),
    "discipline twice": (NEW.replace('["PT"]', '["PT", "PT"]'), 5, ("disciplines", "twice")),
    "discipline not text": (NEW.replace('["PT"]', "[1]"), 5, ("disciplines", "the number 1")),
    "single-bracket table": (
        '[code]\ncode = "97799"\nkind = "timed"\ndescription = "x"\ndisciplines = ["PT"]\n',
        1,
        ("code", "[[code]]"),
    ),
    "top-level code is a number": ("code = 5\n", 1, ("code", "the number 5")),
    "code entry's code is a number": (
        NEW.replace('code = "97799"', "code = 5"),
        2,
        ("code entry 1, code", "the number 5"),
    ),
    "code entry's code is malformed": (
        NEW.replace('code = "97799"', 'code = "97-99"'),
        2,
        ("code entry 1, code", "'97-99'", "not a billing code"),
    ),
    "code missing": ('[[code]]\nkind = "timed"\n', 1, ("code entry 1, code", "missing")),
    "inline-array entry not a table": ("code = [1]\n", 1, ("code entry 1", "the number 1")),
    "kind unknown": (NEW.replace('"timed"', '"hourly"'), 3, ("code 97799, kind", "'hourly'")),
    "kind missing for a new code": (
        NEW.replace('kind = "timed"\n', ""),
        1,
        ("code 97799, kind", "missing"),
    ),
    "description empty": (
        NEW.replace('"Clinic protocol"', '"  "'),
        4,
        ("description", "empty"),
    ),
    "description too long": (
        NEW.replace("Clinic protocol", "y" * 300),
        4,
        ("description", "300 characters long"),
    ),
    "description on two lines": (
        NEW.replace('"Clinic protocol"', '"""Clinic\nprotocol"""'),
        4,
        ("description", "one line", "U+000A"),
    ),
    "description is a date": (
        NEW.replace('"Clinic protocol"', "2024-01-31"),
        4,
        ("description", "the date or time 2024-01-31"),
    ),
    "note is a number": (NEW + "medicare_note = 5\n", 6, ("medicare_note", "the number 5")),
    "unknown key, misspelt": (
        NEW + "assitant_allowed = false\n",
        6,
        ("code 97799, 'assitant_allowed'", "did you mean 'assistant_allowed'"),
    ),
    "sub-table of an entry": (
        NEW + "[code.extra]\nx = 1\n",
        6,
        ("code 97799, 'extra'", "not a field"),
    ),
    "unknown section": ("[settings]\nx = 1\n", 1, ("'settings'", "not part of a code file")),
    "misspelt section": (
        '[favorites]\nPT = ["97110"]\n',
        1,
        ("'favorites'", "did you mean 'favourites'?"),
    ),
    "unknown top-level key": ("\n\ncolour = 1\n", 3, ("'colour'", "not part of a code file")),
    "same code twice": (
        NEW + "\n" + NEW.replace("Clinic protocol", "Again"),
        7,
        ("code 97799", "twice", "first on line 1"),
    ),
    "same code twice, written differently": (
        '[[code]]\ncode = "G9999"\nkind = "untimed"\ndescription = "a"\ndisciplines = ["PT"]\n'
        '[[code]]\ncode = " g9999"\nkind = "untimed"\ndescription = "b"\ndisciplines = ["PT"]\n',
        6,
        ("code G9999", "twice"),
    ),
    "new timed code as a supervised modality": (
        NEW + "supervised_modality = true\n",
        6,
        ("code 97799, supervised_modality", "untimed"),
    ),
    "new untimed code with constant attendance": (
        NEW.replace('"timed"', '"untimed"') + "constant_attendance = true\n",
        6,
        ("constant_attendance", "for an untimed code", "timed code"),
    ),
    "new timed evaluation": (NEW + "evaluation = true\n", 6, ("code 97799, evaluation",)),
    "re-evaluation that is no evaluation": (
        NEW.replace('"timed"', '"untimed"') + "reevaluation = true\n",
        6,
        ("reevaluation", "evaluation = true"),
    ),
    "new timed group code": (NEW + "group = true\n", 6, ("code 97799, group", "untimed")),
    # Built-in codes keep their billing facts: a clinic file may change the description only.
    "97110 made a supervised modality": (
        '\n[[code]]\ncode = "97110"\ndescription = "Ther ex"\nsupervised_modality = true\n',
        5,
        ("code 97110, supervised_modality", "built-in", "stays false"),
    ),
    "97110 made untimed": (
        '[[code]]\ncode = "97110"\nkind = "untimed"\n',
        3,
        ("code 97110, kind", "built-in", 'stays "timed"', '"untimed"'),
    ),
    "97161 given to assistants": (
        '[[code]]\ncode = "97161"\nassistant_allowed = true\n',
        3,
        ("code 97161, assistant_allowed", "built-in"),
    ),
    "97010 made an evaluation": (
        '[[code]]\ncode = "97010"\nevaluation = true\n',
        3,
        ("code 97010, evaluation", "built-in"),
    ),
    "97110 given to SLP": (
        '[[code]]\ncode = "97110"\ndisciplines = ["SLP"]\n',
        3,
        ("code 97110, disciplines", '["PT", "OT"]'),
    ),
    "97014's Medicare note dropped": (
        '[[code]]\ncode = "97014"\nmedicare_note = ""\n',
        3,
        ("code 97014, medicare_note", "built-in"),
    ),
    # A medically unlikely edit (R9.4) is a positive whole number of units.
    "mue zero": (
        NEW + "mue = 0\n",
        6,
        ("code 97799, mue", "positive whole number", "the number 0"),
    ),
    "mue negative": (NEW + "mue = -2\n", 6, ("code 97799, mue", "the number -2")),
    "mue a fraction": (NEW + "mue = 4.5\n", 6, ("code 97799, mue", "the number 4.5")),
    "mue as text": (NEW + 'mue = "4"\n', 6, ("code 97799, mue", "without quotes", "the text '4'")),
    "mue true": (NEW + "mue = true\n", 6, ("code 97799, mue", "not true")),
    "built-in code's mue as a list": (
        '[[code]]\ncode = "97110"\n\nmue = [4]\n',
        4,
        ("code 97110, mue", "a list of 1 item"),
    ),
    "misspelt mue": (NEW + "meu = 4\n", 6, ("code 97799, 'meu'", "did you mean 'mue'")),
    # Favourites
    "favourites not a table": ('favourites = ["97110"]\n', 1, ("favourites", "[favourites] table")),
    "favourites for a role": ('[favourites]\nPTA = ["97110"]\n', 2, ("'PTA'", "not a discipline")),
    "favourites empty": ("[favourites]\nPT = []\n", 2, ("favourites, PT", "one or more")),
    "favourite unknown": (
        '[favourites]\n\nOT = ["97110", "97999"]\n',
        3,
        ("favourites, OT", "97999", "not in the catalogue"),
    ),
    "favourite of another discipline": (
        '[favourites]\nOT = ["97161"]\n',
        2,
        ("favourites, OT", "97161", "not for OT"),
    ),
    "favourite twice": ('[favourites]\nSLP = ["92507", "92507"]\n', 2, ("SLP", "twice")),
    "favourite not text": ("[favourites]\nSLP = [92507]\n", 2, ("SLP", "the number 92507")),
    "too many favourites": (
        "[favourites]\nPT = [" + ", ".join(['"97110"'] * 41) + "]\n",
        2,
        ("favourites, PT", "at most 40"),
    ),
    # Not TOML, not UTF-8
    "TOML syntax": (NEW + "\nkind = \n", 7, ("not a valid code file", "column")),
    "TOML redefinition": (NEW + 'kind = "untimed"\n', 6, ("not a valid code file",)),
    "unterminated": ('[[code]]\ncode = "97799\n', 2, ("not a valid code file",)),
    "integer too long for Python": ("x = " + "1" * 5000 + "\n", None, ("a number is too long",)),
    "nested too deeply": (
        "x = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n",
        None,
        ("nested too deeply",),
    ),
    "Latin-1": (
        (NEW.replace("Clinic protocol", "Rééducation")).encode("latin-1"),
        4,
        ("is not UTF-8 text", "0xE9"),
    ),
    "UTF-16 with BOM": (NEW.encode("utf-16"), None, ("UTF-16", "UTF-8")),
    "UTF-16 without BOM": (NEW.encode("utf-16-le"), 1, ("not UTF-8 text", "NUL")),
    "random bytes": (b"\xff\xfe\xfd\x00\x80", None, ("UTF",)),
}


@pytest.mark.parametrize(
    ("content", "line", "fragments"), list(BAD_FILES.values()), ids=list(BAD_FILES)
)
def test_a_bad_clinic_file_is_refused_naming_file_line_and_field(
    tmp_path: Path, content: str | bytes, line: int | None, fragments: tuple[str, ...]
) -> None:
    clinic = tmp_path / "codes.toml"
    if isinstance(content, str):
        clinic.write_text(content, encoding="utf-8")
    else:
        clinic.write_bytes(content)
    error = refusal(clinic)
    message = str(error)
    if line is not None:
        assert f"{clinic}, line {line}" in message
    for fragment in fragments:
        assert fragment in message
    # The message quotes at most about 80 characters of any bad value.
    assert len(message) < len(str(clinic)) + 400


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone.toml")


def _link_loop(path: Path) -> None:
    other = path.parent / "other.toml"
    other.symlink_to(path)
    path.symlink_to(other)


def _too_large(path: Path) -> None:
    with path.open("wb") as handle:
        handle.truncate(codes.MAX_FILE_BYTES + 1)


def _parent_is_a_file(path: Path) -> None:
    path.parent.write_text("")  # "folder" is a file


SPECIAL_FILES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (make it, file name under tmp_path, fragment of the message)
    "a directory": (_directory, "codes.toml", "is a folder"),
    "a FIFO": (_fifo, "codes.toml", "not a regular file"),
    "a dangling symlink": (_dangling_link, "codes.toml", "does not exist"),
    "a symlink loop": (_link_loop, "codes.toml", "loops"),
    "over 1 MiB": (_too_large, "codes.toml", "larger than 1024 KiB"),
    "under a file, not a folder": (_parent_is_a_file, "folder/codes.toml", "cannot be read"),
}


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and symlinks need POSIX")
@pytest.mark.parametrize(
    ("make", "name", "fragment"), list(SPECIAL_FILES.values()), ids=list(SPECIAL_FILES)
)
def test_anything_but_a_small_regular_file_is_refused(
    tmp_path: Path, make: Callable[[Path], None], name: str, fragment: str
) -> None:
    clinic = tmp_path / name
    make(clinic)
    assert fragment in str(refusal(clinic))


def test_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(NEW)
    real_open = os.open

    def denied(path: object, flags: int, *args: int, **kwargs: object) -> int:
        if os.fspath(path) == str(clinic):  # type: ignore[call-overload]
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    # chmod 000 does not stop root, who runs CI containers: fail the open itself.
    monkeypatch.setattr(os, "open", denied)
    assert "cannot be read (Permission denied)" in str(refusal(clinic))


def test_absent_file_means_the_built_in_catalogue(tmp_path: Path) -> None:
    assert load_catalogue(tmp_path / "codes.toml") is BUILTIN
    assert load_catalogue(None) is BUILTIN


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_link_to_a_good_file_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "shared-codes.toml"
    real.write_text(NEW)
    clinic = tmp_path / "codes.toml"
    clinic.symlink_to(real)
    assert "97799" in load_catalogue(clinic)


def test_utf8_with_bom_and_crlf_is_accepted(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_bytes(b"\xef\xbb\xbf" + NEW.replace("\n", "\r\n").encode())
    assert load_catalogue(clinic).get("97799").description == "Clinic protocol"


def test_an_empty_file_changes_nothing(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text("# our codes will go here\n")
    assert load_catalogue(clinic) == BUILTIN


def test_a_built_in_code_may_be_redescribed_and_keeps_its_place(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(
        '[[code]]\ncode = "97110"\ndescription = "Ther-ex (clinic)"\n\n'
        # Restating a built-in value unchanged is allowed.
        '[[code]]\ncode = "97010"\nkind = "untimed"\nsupervised_modality = true\n'
        'disciplines = ["OT", "PT"]\n'
    )
    catalogue = load_catalogue(clinic)
    entry = catalogue.get("97110")
    assert entry.description == "Ther-ex (clinic)"
    assert entry.kind is Kind.TIMED and not entry.supervised_modality
    assert catalogue.rank("97110") == BUILTIN.rank("97110")  # the R2.8 tie-break order stays
    assert catalogue.get("97010") is BUILTIN.get("97010")
    assert [c.code for c in catalogue] == [c.code for c in BUILTIN]


def test_no_mue_is_shipped() -> None:
    # R9.4's values are not in the specification's sources and some are confidential.
    assert [c.code for c in BUILTIN if c.mue is not None] == []


def test_a_clinic_may_give_built_in_and_new_codes_a_mue(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(
        '[[code]]\ncode = "97110"\nmue = 4\n\n'
        '[[code]]\ncode = "97140"\ndescription = "Manual (clinic)"\nmue = 2\n\n' + NEW + "mue = 1\n"
    )
    catalogue = load_catalogue(clinic)
    assert catalogue.get("97110") == replace(BUILTIN.get("97110"), mue=4)
    assert catalogue.get("97140") == replace(
        BUILTIN.get("97140"), description="Manual (clinic)", mue=2
    )
    assert catalogue.get("97799").mue == 1
    assert catalogue.get("97530") is BUILTIN.get("97530")
    assert [c.code for c in catalogue] == [c.code for c in BUILTIN] + ["97799"]


def test_a_new_code_gets_the_defaults_and_goes_last(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(NEW.replace('"97799"', '" g9999 "') + 'medicare_note = "  Ask first.  "\n')
    catalogue = load_catalogue(clinic)
    entry = catalogue.get("G9999")
    assert (entry.code, entry.medicare_note, entry.assistant_allowed, entry.mue) == (
        "G9999",
        "Ask first.",
        True,
        None,
    )
    assert entry.disciplines == {Discipline.PT}
    assert catalogue.rank("G9999") == len(BUILTIN)


def test_a_clinic_list_of_favourites_replaces_that_discipline_only(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(NEW + '\n[favourites]\nPT = ["97799", " g0283", "97110"]\n')
    catalogue = load_catalogue(clinic)
    assert catalogue.favourites(Discipline.PT) == ("97799", "G0283", "97110")
    assert catalogue.favourites(Discipline.OT) == BUILTIN.favourites(Discipline.OT)
    assert catalogue.favourites(Discipline.SLP) == BUILTIN.favourites(Discipline.SLP)


def test_a_long_bad_value_is_quoted_short(tmp_path: Path) -> None:
    clinic = tmp_path / "codes.toml"
    clinic.write_text(NEW.replace('"timed"', '"' + "x" * 5000 + '"'))
    message = str(refusal(clinic))
    assert "x" * 80 in message and "x" * 81 not in message
    assert "5000 characters" in message
