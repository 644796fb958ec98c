"""frozen_record classes behave as the classes ``@dataclass(frozen=True)`` generates.

Each record is held against its twin: the same fields declared to ``dataclasses`` and built by
the stdlib decorator. Equality, hash values, repr, immutability, ``fields`` and ``replace``
must agree, so no layer can tell the records were written by hand (issue 13: start-up).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import subprocess
import sys
from typing import Any

import pytest

from therapy_timer.codes import Catalogue, Code, Discipline, Kind, Method, builtin_catalogue
from therapy_timer.frozen import from_fields, frozen_record
from therapy_timer.rules import CodeResult, Line, Request, Result, RuleWarning, Severity

WARNING = RuleWarning("R2.4", "Under 8 minutes.", Severity.INFO, "Under 8")
LINE = Line("97110", 2, ("GP", "CQ"))
CODE_RESULT = CodeResult("97110", "Therapeutic exercise", Kind.TIMED, 23, 5, 2)

# Each record with two sets of arguments for its __init__: every field given, and defaults.
SAMPLES: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = [
    (Line, ("97110", 2, ("GP", "CQ")), {}),
    (RuleWarning, ("R2.4", "Under 8 minutes.", Severity.INFO, "Under 8"), {}),
    (RuleWarning, ("R9.3", "A pair."), {}),
    (CodeResult, ("97110", "Therapeutic exercise", Kind.TIMED, 23, 5, 2, False), {}),
    (CodeResult, ("97161", "PT evaluation", Kind.UNTIMED, 0, 0, 1), {}),
    (
        Request,
        (Method.CMS, Discipline.PT, {"97110": 23}),
        {
            "assistant_minutes": {"97110": 5},
            "untimed": ("97161",),
            "untimed_minutes": {"97161": 30},
            "date_of_service": dt.date(2026, 11, 20),
            "assistant_modifiers": False,
            "allocation": {"97110": 2},
        },
    ),
    (Request, (Method.AMA, Discipline.OT, {}), {}),
    (
        Result,
        (Method.CMS, Discipline.PT, dt.date(2026, 11, 20), 23, 2, 23),
        {
            "codes": (CODE_RESULT,),
            "lines": (LINE,),
            "allocation": {"97110": 2},
            "alternatives": (),
            "warnings": (WARNING,),
            "note": "Timed services:\n  97110",
        },
    ),
    (
        Code,
        ("97110", Kind.TIMED, "Therapeutic exercise", frozenset({Discipline.PT})),
        {"constant_attendance": True, "group": True, "medicare_note": "n", "handling": "h"},
    ),
    (Code, ("G0283", Kind.UNTIMED, "E-stim", frozenset(Discipline)), {}),
    (Catalogue, (builtin_catalogue().codes,), {"favourite_lists": {"PT": ("97110", "97140")}}),
    (Catalogue, (builtin_catalogue().codes[:3],), {}),
]


def twin(record: type[Any]) -> type[Any]:
    """The class ``@dataclass(frozen=True)`` makes of the same field declarations."""
    declared = [
        (
            f.name,
            f.type,
            dataclasses.field(
                default=f.default,
                default_factory=f.default_factory,
                init=f.init,
                repr=f.repr,
                hash=f.hash,
                compare=f.compare,
            ),
        )
        for f in dataclasses.fields(record)
    ]
    namespace = {"__post_init__": record.__post_init__} if "__post_init__" in vars(record) else {}
    return dataclasses.make_dataclass(record.__name__, declared, frozen=True, namespace=namespace)


@pytest.mark.parametrize(("record", "args", "kwargs"), SAMPLES)
def test_a_record_behaves_as_its_generated_twin(
    record: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    generated = twin(record)
    ours, theirs = record(*args, **kwargs), generated(*args, **kwargs)
    assert dataclasses.is_dataclass(record) and not isinstance(ours, type)
    assert [f.name for f in dataclasses.fields(ours)] == [
        f.name for f in dataclasses.fields(theirs)
    ]
    assert {f.name: getattr(ours, f.name) for f in dataclasses.fields(record)} == {
        f.name: getattr(theirs, f.name) for f in dataclasses.fields(generated)
    }  # defaults filled alike
    assert vars(ours) == vars(theirs)
    assert repr(ours) == repr(theirs)
    assert ours == record(*args, **kwargs)
    assert not ours != record(*args, **kwargs)  # noqa: SIM202 (the != operator itself)
    assert ours != theirs  # another class, as between two dataclasses
    assert ours.__eq__(theirs) is NotImplemented
    assert vars(record)["__match_args__"] == vars(generated)["__match_args__"]
    # What dataclasses reads of a class: a dataclass subclass is made or refused alike (a
    # frozen one of a frozen base only), and a reader of the parameters sees a frozen record.
    for name in ("init", "repr", "eq", "order", "unsafe_hash", "frozen"):
        assert getattr(vars(record)["__dataclass_params__"], name) == getattr(
            vars(generated)["__dataclass_params__"], name
        ), name
    for frozen in (True, False):
        for base in (record, generated):
            try:
                dataclasses.dataclass(frozen=frozen)(type("Sub", (base,), {}))
            except TypeError as exc:
                assert not frozen and "frozen" in str(exc)
            else:
                assert frozen
    try:
        expected_hash: int | None = hash(theirs)
    except TypeError:  # a field holds a dict: neither is hashable
        expected_hash = None
    if expected_hash is None:
        with pytest.raises(TypeError):
            hash(ours)
    else:
        assert hash(ours) == expected_hash

    # The __init__ signature: the same names and kinds, the same defaults; None where the
    # twin makes a new value (default_factory).
    mine = inspect.signature(record).parameters
    generated_parameters = inspect.signature(generated).parameters
    assert list(mine) == list(generated_parameters)
    for f in dataclasses.fields(record):
        if not f.init:
            continue
        assert mine[f.name].kind == generated_parameters[f.name].kind
        if f.default is not dataclasses.MISSING:
            assert mine[f.name].default == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert mine[f.name].default is None
        else:
            assert mine[f.name].default is inspect.Parameter.empty

    # Frozen: the same errors, with the same words.
    for name in vars(theirs):
        for target in (ours, theirs):
            with pytest.raises(dataclasses.FrozenInstanceError) as caught:
                setattr(target, name, None)
            assert str(caught.value) == f"cannot assign to field {name!r}"
            with pytest.raises(dataclasses.FrozenInstanceError) as gone:
                delattr(target, name)
            assert str(gone.value) == f"cannot delete field {name!r}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.not_a_field = 1

    # Each field compared: changing any one changes equality as it does for the twin (or is
    # refused by both, as a catalogue refuses codes that are not codes).
    for f in dataclasses.fields(record):
        if not f.init:
            continue
        try:
            changed = dataclasses.replace(ours, **{f.name: "changed"})
        except Exception as exc:  # the twin must fail alike
            with pytest.raises(type(exc)):
                dataclasses.replace(theirs, **{f.name: "changed"})
            continue
        assert type(changed) is record
        assert getattr(changed, f.name) == "changed"
        assert (changed == ours) == (dataclasses.replace(theirs, **{f.name: "changed"}) == theirs)


def test_a_record_inside_itself_prints_as_its_twin_does() -> None:
    looped: list[object] = []
    line = Line("97110", 1, looped)  # type: ignore[arg-type]
    looped.append(line)
    twin_looped: list[object] = []
    twin_line = twin(Line)("97110", 1, twin_looped)
    twin_looped.append(twin_line)
    assert repr(line) == repr(twin_line) == "Line(code='97110', units=1, modifiers=[...])"


def test_a_request_gets_its_own_empty_minutes() -> None:
    first = Request(Method.CMS, Discipline.PT, {"97110": 8})
    second = Request(Method.CMS, Discipline.PT, {"97110": 8})
    assert first.assistant_minutes == {} and first.untimed_minutes == {}
    assert first.assistant_minutes is not second.assistant_minutes  # default_factory=dict
    assert type(first.assistant_minutes) is dict


def test_a_record_from_its_fields_is_the_record_its_init_makes() -> None:
    made = Line("97110", 2, ("GP", "CQ"))
    built = from_fields(Line, {"code": "97110", "units": 2, "modifiers": ("GP", "CQ")})
    assert type(built) is Line
    assert (built, hash(built), repr(built)) == (made, hash(made), repr(made))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.units = 3  # type: ignore[misc]


def test_a_record_must_write_its_init() -> None:
    with pytest.raises(TypeError, match="must define __init__"):

        @frozen_record
        class Loose:
            value: int


def test_the_units_command_defines_no_dataclass_code() -> None:
    """A `units` start execs no dataclass methods and loads no pathlib (issue 13)."""
    script = (
        "import dataclasses, sys\n"
        "made = []\n"
        "real = dataclasses._create_fn\n"
        "def spy(name, *args, **kwargs):\n"
        "    made.append(name)\n"
        "    return real(name, *args, **kwargs)\n"
        "dataclasses._create_fn = spy\n"
        "from therapy_timer.cli import main\n"
        "try:\n"
        "    main(['--data-dir', sys.argv[1], 'units', '97110=20'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({*made}), 'pathlib' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "unused-data-dir"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "97110-GP" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[] False"
