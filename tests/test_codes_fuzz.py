"""Mutated code files: a plain refusal naming the file, or a valid catalogue; never a traceback."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from therapy_timer.codes import Catalogue, Discipline, builtin_catalogue, load_catalogue
from therapy_timer.errors import InvalidInput
from therapy_timer.paths import resource_path

BUILTIN = builtin_catalogue()
BUILTIN_TEXT = resource_path("codes.toml").read_text(encoding="utf-8")

VALID: dict[str, Any] = {
    "code": [
        {
            "code": "97799",
            "kind": "timed",
            "description": "Clinic protocol",
            "disciplines": ["PT", "OT"],
            "constant_attendance": True,
        },
        {
            "code": "G9999",
            "kind": "untimed",
            "description": "Clinic modality",
            "disciplines": ["PT"],
            "supervised_modality": True,
            "medicare_note": "Not for Medicare.",
        },
        {"code": "97110", "description": "Ther-ex (clinic)"},
        {"code": "97161", "kind": "untimed", "assistant_allowed": False},
    ],
    "favourites": {"PT": ["97799", "97110", "G9999"], "SLP": ["92507"]},
}
"""A valid clinic file that uses every part of the format; the mutations start from it."""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (bar lone surrogates)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(data: dict[str, Any]) -> str:
    """``data`` as a code file is written: [[code]] entries, then [favourites]."""
    lines: list[str] = []
    for key, value in data.items():
        if key not in ("code", "favourites"):
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    entries = data.get("code")
    if isinstance(entries, list) and all(isinstance(e, dict) for e in entries):
        for entry in entries:
            lines.append("[[code]]")
            lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in entry.items())
    elif "code" in data:
        lines.insert(0, f"code = {toml_value(entries)}")
    favourites = data.get("favourites")
    if isinstance(favourites, dict):
        lines.append("[favourites]")
        lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in favourites.items())
    elif "favourites" in data:
        lines.insert(0, f"favourites = {toml_value(favourites)}")
    return "\n".join(lines) + "\n"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=120),
    st.sampled_from(
        ["true", "false", "timed", "untimed", "special", "PT", "OT", "SLP", "97110", "", " "]
    ),
    st.dates(),
    st.datetimes(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
key_names = st.one_of(
    st.sampled_from(
        [
            "code",
            "kind",
            "description",
            "disciplines",
            "assistant_allowed",
            "supervised_modality",
            "evaluation",
            "reevaluation",
            "group",
            "unlisted",
            "constant_attendance",
            "medicare_note",
            "handling",
            "favourites",
            "PT",
            "OT",
            "SLP",
            "PTA",
        ]
    ),
    st.text(min_size=1, max_size=20),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``data`` a mutation can touch."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths(value, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = list(paths(data))[1:]
        if not places:  # everything deleted: an empty file
            break
        where = draw(st.sampled_from(places))
        parent: Any = data
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[where[-1]] = draw(values)
        elif action == "delete":
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(key_names)] = draw(values)
        elif action == "add":
            parent.append(draw(values))
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[where[-1]]))
    return data


def check(path: Path, content: bytes) -> None:
    """The property: a valid catalogue that kept the built-in facts, or a plain refusal."""
    path.write_bytes(content)
    try:
        catalogue = load_catalogue(path)
    except InvalidInput as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(catalogue, Catalogue)
    for entry in BUILTIN:
        kept = catalogue.get(entry.code)
        assert kept.__dict__ | {"description": ""} == entry.__dict__ | {"description": ""}
        assert catalogue.rank(entry.code) == BUILTIN.rank(entry.code)
    for discipline in Discipline:
        for code in catalogue.favourites(discipline):
            assert discipline in catalogue.get(code).disciplines


@pytest.fixture(scope="module")
def clinic_file() -> Iterator[Path]:
    # One folder for all examples: hypothesis may not use function-scoped fixtures.
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "codes.toml"


def test_the_unmutated_files_are_valid(clinic_file: Path) -> None:
    clinic_file.write_text(toml_text(VALID))
    catalogue = load_catalogue(clinic_file)
    assert catalogue.favourites(Discipline.PT) == ("97799", "97110", "G9999")
    clinic_file.write_text(BUILTIN_TEXT)  # the built-in file restates every built-in code as is
    assert load_catalogue(clinic_file) == BUILTIN


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_values_and_keys(clinic_file: Path, data: dict[str, Any]) -> None:
    check(clinic_file, toml_text(data).encode("utf-8", "surrogatepass"))


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from([toml_text(VALID), BUILTIN_TEXT]))
    encoding = draw(
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"])
    )
    raw = bytearray(text.replace("Ther-ex", "Thér-ex").encode(encoding, "replace"))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "insert":
            raw[at:at] = chunk
        elif action == "delete":
            del raw[at : at + len(chunk)]
        elif action == "replace":
            raw[at : at + len(chunk)] = chunk
        else:
            del raw[at:]
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=damaged_bytes())
def test_damaged_bytes_and_other_encodings(clinic_file: Path, content: bytes) -> None:
    check(clinic_file, content)


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=300))
def test_random_bytes(clinic_file: Path, content: bytes) -> None:
    check(clinic_file, content)
