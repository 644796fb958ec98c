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
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from therapy_timer.codes import Catalogue, Discipline
from therapy_timer.errors import InvalidInput
from therapy_timer.rules import Method, Request, Result, evaluate, key_text, quote

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
    }
)

_MAPPINGS = ("timed", "assistant_minutes", "untimed_minutes")


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


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, _EMPTY)
    if not isinstance(value, dict):
        raise InvalidInput(key, f"must be an object of code: number, got {quote(value)}")
    _no_repeats(value, key)
    return value


def request_from_json(data: object) -> Request:
    """Parse one request object of the JSON contract; errors name the field at fault."""
    if not isinstance(data, dict):
        raise InvalidInput("request", f"must be a JSON object, got {_json_type(data)}")
    _no_repeats(data, "")
    if not REQUEST_FIELDS.issuperset(data):
        unknown = sorted(data.keys() - REQUEST_FIELDS)
        raise InvalidInput(key_text(unknown[0]), "is not a field of a units request")
    for required in ("method", "discipline"):
        if required not in data:
            raise InvalidInput(required, "is required")
    date_of_service = None
    raw = data.get("date_of_service")
    if raw is not None:
        try:
            date_of_service = dt.date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            date_of_service = None
        if date_of_service is None or len(raw) != 10:
            raise InvalidInput("date_of_service", f"must be a date as YYYY-MM-DD, got {quote(raw)}")
    untimed = data.get("untimed", [])
    if not isinstance(untimed, list):
        raise InvalidInput("untimed", f"must be a list of codes, got {quote(untimed)}")
    modifiers = data.get("assistant_modifiers", True)
    if not isinstance(modifiers, bool):
        raise InvalidInput("assistant_modifiers", f"must be true or false, got {quote(modifiers)}")
    allocation = None if data.get("allocation") is None else _mapping(data, "allocation")
    return Request(
        method=_enum(Method, data["method"], "method"),
        discipline=_enum(Discipline, data["discipline"], "discipline"),
        timed=_mapping(data, "timed"),
        assistant_minutes=_mapping(data, "assistant_minutes"),
        untimed=tuple(untimed),
        untimed_minutes=_mapping(data, "untimed_minutes"),
        date_of_service=date_of_service,
        assistant_modifiers=modifiers,
        allocation=allocation,
    )


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


# --------------------------------------------------------------------------------------------
# Answers


def result_json(result: Result) -> dict[str, Any]:
    """The answer of the ``units --json`` contract; keys only ever get added.

    Warnings carry ``severity`` ("act" or "info") and a short ``gist`` beside ``rule`` and
    ``message``.
    """
    return {
        "method": result.method.value,
        "total_timed_minutes": result.total_timed_minutes,
        "total_timed_units": result.total_timed_units,
        "total_treatment_minutes": result.total_treatment_minutes,
        "codes": {c.code: {"minutes": c.minutes, "units": c.units} for c in result.codes},
        "lines": [
            {"code": line.code, "units": line.units, "modifiers": list(line.modifiers)}
            for line in result.lines
        ],
        "alternatives": [dict(a) for a in result.alternatives],
        "warnings": [
            {"rule": w.rule, "message": w.message, "severity": w.severity.value, "gist": w.gist}
            for w in result.warnings
        ],
        "note": result.note,
    }


def answer_json(data: object, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Answer one request object; raises InvalidInput for bad input."""
    return result_json(evaluate(request_from_json(data), catalogue))


def answer_batch(
    items: Sequence[object], catalogue: Catalogue | None = None
) -> list[dict[str, Any]]:
    """Answer a JSON array in order; a bad item answers ``{"error": ...}`` and the rest go on."""
    answers: list[dict[str, Any]] = []
    append = answers.append
    # The batch builds many small objects and no reference cycles, so the cyclic collector only
    # rescans the growing answer list over and over (~20% of a batch's time, issue 13): paused
    # for the batch, and put back as it was even if an answer raises.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for i, item in enumerate(items):
            try:
                append(result_json(evaluate(request_from_json(item), catalogue)))
            except InvalidInput as exc:
                append({"error": f"[{i}] {exc}"})
    finally:
        if collecting:
            gc.enable()
    return answers


def dumps(answer: object, pretty: bool) -> str:
    """Answer text. Without ``pretty`` json uses its C encoder (indent forces the Python one)."""
    return json.dumps(answer, indent=2) if pretty else json.dumps(answer)
