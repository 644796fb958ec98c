"""The ``units`` JSON contract: parsing and checking requests, encoding answers.

``therapy-timer units --request FILE|- --json`` reads one request object or an array of them
and answers in the same shape (docs/billing-rules.md, "The units command"). Keys of an answer
are only ever added, never changed. Anything a person or program gives us that we cannot use is
refused with one plain sentence naming the field (``InvalidInput``), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from therapy_timer.codes import Catalogue, Discipline
from therapy_timer.errors import InvalidInput
from therapy_timer.rules import (
    CodeResult,
    Line,
    Method,
    Request,
    Result,
    RuleWarning,
    Severity,
    evaluate,
    key_text,
    quote,
)

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
        "assistant_untimed",
    }
)

MAX_REQUEST_BYTES = 256 << 20
"""A request file or stdin larger than this (about two million requests of ~130 bytes, ~5 GB
to answer in memory) is refused; read whole, /dev/zero ran until memory ran out."""


# --------------------------------------------------------------------------------------------
# Reading JSON text


class _Repeated(dict[str, Any]):
    """A JSON object in which a key appeared more than once (the repeats are in ``repeated``).

    JSON parsers keep the last value silently; a request that names a code twice is a mistake
    to refuse ("Records that cannot be lost", item 13), so the field check names the key.
    """

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated = []
    for key, _ in pairs:
        if key in seen:
            repeated.append(key)
        seen.add(key)
    flagged = _Repeated(obj)
    flagged.repeated = tuple(repeated)
    return flagged


def loads(text: bytes | str, source: str = "request") -> Any:
    """Parse JSON request text strictly; errors are one sentence naming ``source``.

    Refused: text that is not UTF-8, invalid JSON, nesting deeper than the parser allows,
    integers over Python's 4,300-digit conversion limit. Repeated keys are kept for the field
    check to name (see ``_Repeated``); NaN and Infinity parse as floats and are refused by the
    check of the field they sit in, which can name it.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                source, f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})"
            ) from None
    try:
        with collector_paused():
            return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            source, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise InvalidInput(source, "nests arrays or objects deeper than it can read") from None
    except ValueError:  # int() refuses more than 4,300 digits (CVE-2020-10735)
        raise InvalidInput(source, "holds a number too long to read (over 4,300 digits)") from None


# --------------------------------------------------------------------------------------------
# Requests

_E = TypeVar("_E", Method, Discipline)

_CHOICES: dict[type[Any], dict[str, Any]] = {
    kind: {m.value.casefold(): m for m in kind} for kind in (Method, Discipline)
}


def _enum(kind: type[_E], value: object, where: str) -> _E:
    choices = _CHOICES[kind]
    if isinstance(value, str):
        member = choices.get(value) or choices.get(value.strip().casefold())
        if member is not None:
            found: _E = member
            return found
    listed = ", ".join(repr(m.value) for m in kind)
    raise InvalidInput(where, f"must be one of {listed}, got {quote(value)}")


def _no_repeats(value: object, where: str) -> None:
    if isinstance(value, _Repeated):
        key = key_text(value.repeated[0])
        raise InvalidInput(
            f"{where}.{key}" if where else key,
            "appears twice in one object; give it once (a repeated key is never overwritten)",
        )


_EMPTY: dict[str, Any] = {}  # shared, never changed: the rules only read a request
_NO_CODES: list[str] = []


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, _EMPTY)
    if type(value) is dict:  # the common case: a plain object (a repeated key makes a subclass)
        return value
    if not isinstance(value, dict):
        raise InvalidInput(key, f"must be an object of code: number, got {quote(value)}")
    _no_repeats(value, key)
    return value


# The values exactly as the contract spells them ("cms", "PT"), for the common case.
_METHODS: dict[str, Method] = {m.value: m for m in Method}
_DISCIPLINES: dict[str, Discipline] = {d.value: d for d in Discipline}

# Dates of service already read, by their text: a batch names a few dates many times.
_DATES: dict[str, dt.date] = {}
_DATES_LIMIT = 4096


def request_from_json(data: object) -> Request:
    """Parse one request object of the JSON contract; errors name the field at fault."""
    if type(data) is not dict:  # the common case is a plain object: no call
        if not isinstance(data, dict):
            raise InvalidInput("request", f"must be a JSON object, got {_json_type(data)}")
        _no_repeats(data, "")
    if not REQUEST_FIELDS.issuperset(data):
        unknown = sorted(data.keys() - REQUEST_FIELDS)
        raise InvalidInput(key_text(unknown[0]), "is not a field of a units request")
    for required in ("method", "discipline"):
        if required not in data:
            raise InvalidInput(required, "is required")
    raw = data.get("date_of_service")
    date_of_service = _DATES.get(raw) if type(raw) is str else None
    if date_of_service is None and raw is not None:
        try:
            date_of_service = dt.date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            date_of_service = None
        # 3.11's fromisoformat also reads 20261120 and the week date 2026-W47-5 (ten long).
        if date_of_service is None or len(raw) != 10 or raw[4] + raw[7] != "--":
            raise InvalidInput("date_of_service", f"must be a date as YYYY-MM-DD, got {quote(raw)}")
        if len(_DATES) >= _DATES_LIMIT:
            _DATES.clear()
        _DATES[raw] = date_of_service
    untimed = data.get("untimed", _NO_CODES)
    if not isinstance(untimed, list):
        raise InvalidInput("untimed", f"must be a list of codes, got {quote(untimed)}")
    modifiers = data.get("assistant_modifiers", True)
    if modifiers is not True and modifiers is not False:
        raise InvalidInput("assistant_modifiers", f"must be true or false, got {quote(modifiers)}")
    allocation = None if data.get("allocation") is None else _mapping(data, "allocation")
    assistant_untimed = data.get("assistant_untimed", _NO_CODES)
    if not isinstance(assistant_untimed, list):
        raise InvalidInput(
            "assistant_untimed", f"must be a list of codes, got {quote(assistant_untimed)}"
        )
    method = data["method"]
    method = (type(method) is str and _METHODS.get(method)) or _enum(Method, method, "method")
    discipline = data["discipline"]
    discipline = (type(discipline) is str and _DISCIPLINES.get(discipline)) or _enum(
        Discipline, discipline, "discipline"
    )
    # _mapping's first test, here: most requests' objects are plain, and calls cost.
    timed = data.get("timed", _EMPTY)
    if type(timed) is not dict:
        timed = _mapping(data, "timed")
    assistant_minutes = data.get("assistant_minutes", _EMPTY)
    if type(assistant_minutes) is not dict:
        assistant_minutes = _mapping(data, "assistant_minutes")
    untimed_minutes = data.get("untimed_minutes", _EMPTY)
    if type(untimed_minutes) is not dict:
        untimed_minutes = _mapping(data, "untimed_minutes")
    # By position, in the order of Request's fields: nine keywords cost ~2 us more per call
    # here (issue 13); the golden answers would show any two mappings swapped.
    return Request(
        method,
        discipline,
        timed,
        assistant_minutes,
        tuple(untimed),
        untimed_minutes,
        date_of_service,
        modifiers,
        allocation,
        tuple(assistant_untimed),
    )


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


# --------------------------------------------------------------------------------------------
# Answers


def result_json(result: Result) -> dict[str, Any]:
    """The answer of the ``units --json`` contract; keys only ever get added.

    Warnings carry ``severity`` ("act" or "info") and a short ``gist`` beside ``rule`` and
    ``message``. ``_result_text`` writes the same answer as text: change both together.
    """
    return {
        "method": result.method.value,
        "total_timed_minutes": result.total_timed_minutes,
        "total_timed_units": result.total_timed_units,
        "total_treatment_minutes": result.total_treatment_minutes,
        "codes": {c.code: _code_json(c) for c in result.codes},
        "lines": [_line_json(line) for line in result.lines],
        "alternatives": [dict(a) for a in result.alternatives],
        "warnings": [_warning_json(w) for w in result.warnings],
        "note": result.note,
    }


def _code_json(code: CodeResult) -> dict[str, Any]:
    return {"minutes": code.minutes, "units": code.units}


def _line_json(line: Line) -> dict[str, Any]:
    return {"code": line.code, "units": line.units, "modifiers": list(line.modifiers)}


def _warning_json(w: RuleWarning) -> dict[str, Any]:
    return {"rule": w.rule, "message": w.message, "severity": w.severity.value, "gist": w.gist}


# The text of the parts of answers, by the record they encode. The engine hands out the same
# record objects for the same codes and minutes (rules._row_outcome, its warning caches), so
# most parts of an answer are encoded once. Keyed by id(): hashing a frozen record calls its
# Python __hash__. The record is kept beside its text, so an id is never reused while cached.
_TEXTS: dict[int, tuple[object, str]] = {}
_TEXTS_LIMIT = 1 << 16  # ~0.5 KB each, with the record it keeps alive
_METHOD_TEXT = {m: json.dumps(m.value) for m in Method}
_SEVERITY_TEXT = {s: json.dumps(s.value) for s in Severity}
_encode_text = json.encoder.encode_basestring_ascii

# The parts are written with f-strings, not json.dumps: each dumps call builds an encoder
# (~7 us here against ~2 us), and a cold batch encodes tens of thousands of parts. What they
# write is what json.dumps writes (default separators, ASCII escapes, ints by repr): the
# golden answers and the check against dumps(answer_batch(...)) in tests/test_units_golden.py hold
# them to it.


def _code_text(code: CodeResult) -> str:
    return f'{_encode_text(code.code)}: {{"minutes": {code.minutes}, "units": {code.units}}}'


def _line_text(line: Line) -> str:
    modifiers = ", ".join([_encode_text(m) for m in line.modifiers])
    return (
        f'{{"code": {_encode_text(line.code)}, "units": {line.units}, "modifiers": [{modifiers}]}}'
    )


def _warning_text(w: RuleWarning) -> str:
    return (
        f'{{"rule": {_encode_text(w.rule)}, "message": {_encode_text(w.message)}, '
        f'"severity": {_SEVERITY_TEXT[w.severity]}, "gist": {_encode_text(w.gist)}}}'
    )


def _allocation_text(allocation: Mapping[str, int]) -> str:
    return f"{{{', '.join([f'{_encode_text(c)}: {u}' for c, u in allocation.items()])}}}"


def _parts(records: Sequence[Any], encode: Callable[[Any], str]) -> str:
    if not records:
        return ""
    texts = _TEXTS
    out = []
    for record in records:
        cached = texts.get(id(record))
        if cached is None or cached[0] is not record:
            if len(texts) >= _TEXTS_LIMIT:
                texts.clear()
            cached = texts[id(record)] = (record, encode(record))
        out.append(cached[1])
    return ", ".join(out)


def _result_text(result: Result) -> str:
    """``json.dumps(result_json(result))``, built from the cached text of its parts."""
    alternatives = (
        ", ".join(map(_allocation_text, result.alternatives)) if result.alternatives else ""
    )
    return (
        f'{{"method": {_METHOD_TEXT[result.method]}, '
        f'"total_timed_minutes": {result.total_timed_minutes}, '
        f'"total_timed_units": {result.total_timed_units}, '
        f'"total_treatment_minutes": {result.total_treatment_minutes}, '
        f'"codes": {{{_parts(result.codes, _code_text)}}}, '
        f'"lines": [{_parts(result.lines, _line_text)}], '
        f'"alternatives": [{alternatives}], '
        f'"warnings": [{_parts(result.warnings, _warning_text)}], '
        f'"note": {_encode_text(result.note)}}}'
    )


def answer_json(data: object, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Answer one request object; raises InvalidInput for bad input."""
    return result_json(evaluate(request_from_json(data), catalogue))


_T = TypeVar("_T")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, and put it back as it was even if the body raises.

    For work that builds many small objects and no reference cycles (clinic's export too).
    Reading a request file and answering a batch build many small objects and no reference
    cycles, so the collector only rescans the growing lists over and over (~20% of a batch's
    time, issue 13).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _each(
    items: Sequence[object],
    catalogue: Catalogue | None,
    encode: Callable[[Result], _T],
    refuse: Callable[[str], _T],
) -> tuple[list[_T], int]:
    """Answer each item in order; a bad item answers ``refuse(message)`` and the rest go on.

    Returns the answers and how many items were refused.
    """
    answers: list[_T] = []
    append = answers.append
    refused = 0
    with collector_paused():
        for i, item in enumerate(items):
            try:
                append(encode(evaluate(request_from_json(item), catalogue)))
            except InvalidInput as exc:
                append(refuse(f"[{i}] {exc}"))
                refused += 1
    return answers, refused


def answer_batch(
    items: Sequence[object], catalogue: Catalogue | None = None
) -> list[dict[str, Any]]:
    """Answer a JSON array in order; a bad item answers ``{"error": ...}`` and the rest go on."""
    return _each(items, catalogue, result_json, _refusal)[0]


def answer_batch_text(
    items: Sequence[object], catalogue: Catalogue | None = None
) -> tuple[str, int]:
    """``dumps(answer_batch(items, catalogue), pretty=False)`` without building the answers,
    and how many items were refused.

    Most of an answer's text is the same from one request to the next (see ``_TEXTS``), so it
    is encoded once, not per answer.
    """
    answers, refused = _each(items, catalogue, _result_text, _refusal_text)
    return "".join(_array_pieces(answers, len(answers) or 1)), refused


def answer_batch_pieces(
    items: Sequence[object], catalogue: Catalogue | None = None, per_piece: int = 1000
) -> tuple[Iterator[str], int]:
    """``answer_batch_text`` in pieces of at most ``per_piece`` answers each (joined, the same
    text), and how many items were refused; every item is answered before this returns.

    The ``units --request`` command's path for an array: written whole, 100,000 answers were
    ~107 MB of text joined into one string, then encoded into as many bytes again before the
    write, ~0.4 s of the command's ~2.4 s, most of it the kernel handing out fresh pages (issue
    13). Pieces of ~1 MB are written as they are joined.
    """
    answers, refused = _each(items, catalogue, _result_text, _refusal_text)
    return _array_pieces(answers, per_piece), refused


def _array_pieces(answers: list[str], per_piece: int) -> Iterator[str]:
    yield "["
    for start in range(0, len(answers), per_piece):
        if start:
            yield ", "
        yield ", ".join(answers[start : start + per_piece])
    yield "]"


def _refusal(message: str) -> dict[str, Any]:
    return {"error": message}


def _refusal_text(message: str) -> str:
    return json.dumps(_refusal(message))


def dumps(answer: object, pretty: bool) -> str:
    """Answer text. Without ``pretty`` json uses its C encoder (indent forces the Python one)."""
    return json.dumps(answer, indent=2) if pretty else json.dumps(answer)
