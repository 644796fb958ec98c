"""The units JSON contract: hostile input gets one plain refusal naming the field, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from therapy_timer.contract import answer_batch, answer_json, loads, request_from_json
from therapy_timer.errors import InvalidInput

TIMED = ["97110", "97112", "97116", "97140", "97530", "97535"]
UNTIMED = ["97161", "97012", "97150"]
BASE = '{"method": "cms", "discipline": "PT", '


def refusal(text: str | bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        answer_json(loads(text))
    return caught.value


def assert_plain(error: InvalidInput) -> None:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert len(text) <= 200, text  # field + one sentence quoting at most ~80 characters


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (BASE + '"timed": {"97110": 36, "97110": 5}}', "timed.97110"),
        (
            BASE + '"timed": {"97110": 36}, "assistant_minutes": {"97110": 3, "97110": 4}}',
            "assistant_minutes.97110",
        ),
        ('{"method": "cms", "method": "ama", "discipline": "PT"}', "method"),
        (
            BASE + '"timed": {"97110": 20, "97112": 20}, "allocation": {"97110": 2, "97110": 1}}',
            "allocation.97110",
        ),
        (
            BASE + '"untimed": ["97161"], "untimed_minutes": {"97161": 5, "97161": 6}}',
            "untimed_minutes.97161",
        ),
    ],
)
def test_repeated_keys_are_refused_naming_the_key_never_last_wins(text: str, field: str) -> None:
    error = refusal(text)
    assert error.field == field
    assert "twice" in error.message
    assert_plain(error)


def test_the_same_code_spelt_two_ways_is_listed_twice() -> None:
    error = refusal(
        BASE + '"timed": {"97110": 10}, "assistant_minutes": {"97110": 3, " 97110": 4}}'
    )
    assert error.field.startswith("assistant_minutes.") and "twice" in error.message


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (b'{"method": "cms", "discipline": "P\xff"}', "request", "UTF-8"),
        ("[" * 200_000 + "]" * 200_000, "request", "deeper"),
        (BASE + '"timed": {"97110": ' + "9" * 5000 + "}}", "request", "4,300 digits"),
        (BASE + '"timed": {"97110": ' + "9" * 4000 + "}}", "timed.97110", "digits"),
        (BASE + '"timed": {"97110": NaN}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": Infinity}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": -Infinity}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": 1e400}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": 15.0}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": "15"}}', "timed.97110", "whole number"),
        (BASE + '"timed": {"97110": 1441}}', "timed.97110", "more than a day"),
        (BASE + '"timed": [97110, 15]}', "timed", "object"),
        (BASE + '"untimed": "97161"}', "untimed", "list"),
        (BASE + '"untimed": [[["97161"]]]}', "untimed[0]", "text"),
        (BASE + '"timed": {"' + "9" * 10_000 + '": 5}}', "timed.", "not a billing code"),
        ('{"method": "' + "x" * 10_000 + '", "discipline": "PT"}', "method", "must be one of"),
        (BASE + '"date_of_service": "2026-02-30"}', "date_of_service", "YYYY-MM-DD"),
        (BASE + '"date_of_service": 20261120}', "date_of_service", "YYYY-MM-DD"),
        (BASE + '"date_of_service": "20261120"}', "date_of_service", "YYYY-MM-DD"),
        (BASE + '"date_of_service": "2026-W47-5"}', "date_of_service", "YYYY-MM-DD"),
        (BASE + '"assistant_modifiers": "yes"}', "assistant_modifiers", "true or false"),
        (BASE + '"assistant_untimed": "97012"}', "assistant_untimed", "list"),
        (BASE + '"assistant_untimed": ["97012"]}', "assistant_untimed[0]", "not listed"),
        (
            BASE + '"timed": {"97110": 20, "97112": 20}, "allocation": {"97110": NaN}}',
            "allocation.97110",
            "whole number",
        ),
        ('"just text"', "request", "object"),
        (BASE + '"timd": {}}', "timd", "not a field"),
        (BASE + '"' + "k" * 5000 + '": 1}', "kkkkk", "not a field"),
    ],
)
def test_hostile_input_is_one_plain_sentence_naming_the_field(
    text: str | bytes, field: str, words: str
) -> None:
    error = refusal(text)
    assert error.field.startswith(field), error
    assert words in error.message, error
    assert_plain(error)


def test_assistant_untimed_names_an_assistant_s_service_without_minutes() -> None:
    # R7.4 (A): a traction an assistant set up, its minutes not recorded, takes CQ.
    answer = answer_json(
        loads(BASE + '"untimed": ["97012"], "assistant_untimed": ["97012"], "timed": {}}')
    )
    assert answer["lines"] == [{"code": "97012", "units": 1, "modifiers": ["GP", "CQ"]}]


def test_answers_only_add_keys() -> None:
    answer = answer_json({"method": "cms", "discipline": "PT", "timed": {"97112": 20, "97110": 20}})
    assert set(answer) >= {
        "method",
        "total_timed_minutes",
        "total_timed_units",
        "total_treatment_minutes",
        "codes",
        "lines",
        "alternatives",
        "warnings",
        "note",
    }
    for warning in answer["warnings"]:
        assert {"rule", "message", "severity", "gist"} <= set(warning)
        assert warning["severity"] in ("act", "info")
    json.dumps(answer)  # plain JSON types only


def test_a_batch_answers_bad_items_in_place() -> None:
    items = loads(
        "["
        + BASE
        + '"timed": {"97110": 8}}, '
        + BASE
        + '"timed": {"97110": 8, "97110": 9}}, '
        + BASE
        + '"timed": {"97110": NaN}}]'
    )
    answers = answer_batch(items)
    assert answers[0]["total_timed_units"] == 1
    assert answers[1]["error"].startswith("[1] timed.97110")
    assert answers[2]["error"].startswith("[2] timed.97110")


# --------------------------------------------------------------------------------------------
# Hypothesis: hostile requests get a plain refusal or a correct answer, never a traceback

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-1, max_value=1500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
codes = st.sampled_from(TIMED) | st.sampled_from([" 97110", "97110 ", "9711", "99999", "g0283", ""])
minutes = st.integers(min_value=0, max_value=120) | json_values


@st.composite
def hostile_requests(draw: st.DrawFn) -> str | bytes:
    """Request text: mostly well-formed, with hostile values, keys, repeats and bytes mixed in."""
    fields: list[tuple[str, Any]] = []
    if draw(st.integers(0, 9)):  # sometimes missing: 'method' is required
        fields.append(
            ("method", draw(st.sampled_from(["cms", "ama", "CMS", " Ama "]) | json_values))
        )
    if draw(st.integers(0, 9)):
        fields.append(("discipline", draw(st.sampled_from(["PT", "OT", "slp"]) | json_values)))
    timed_pairs = draw(st.lists(st.tuples(codes, minutes), max_size=5))
    fields.append(("timed", timed_pairs))
    if draw(st.booleans()):
        code = draw(codes)
        fields.append(("assistant_minutes", [(code, draw(minutes))]))
    if draw(st.booleans()):
        fields.append(
            ("untimed", draw(st.lists(st.sampled_from(UNTIMED) | json_values, max_size=3)))
        )
    if draw(st.booleans()):
        fields.append(
            ("date_of_service", draw(st.sampled_from(["2026-11-20", "2019-06-01"]) | json_values))
        )
    if draw(st.integers(0, 5)) == 0:
        fields.append((draw(st.text(max_size=8)), draw(json_values)))
    if draw(st.integers(0, 5)) == 0 and fields:
        fields.append(draw(st.sampled_from(fields)))  # a repeated key at the top level

    def encode(value: Any) -> str:
        if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
            return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in value) + "}"
        return json.dumps(value)  # NaN and Infinity come out as JSON's non-standard words

    text = "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in fields) + "}"
    damage = draw(st.integers(0, 9))
    if damage == 0:
        return text.encode() + draw(st.binary(min_size=1, max_size=4))
    if damage == 1:
        depth = draw(st.integers(1, 50_000))
        return "[" * depth + text + "]" * depth
    return text


def chart_units(total: int) -> int:
    """R2.2 by table walk, sharing nothing with the engine."""
    units = 0
    while total >= 8 + 15 * units:
        units += 1
    return units


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_requests())
def test_hostile_requests_get_a_plain_refusal_or_a_correct_answer(text: str | bytes) -> None:
    try:
        payload = loads(text)
        items = payload if isinstance(payload, list) else [payload]
        answers = [answer_json(item) for item in items[:1]] if items else []
    except InvalidInput as error:
        assert_plain(error)
        return
    for item, answer in zip(items, answers, strict=False):
        request = request_from_json(item)  # it was accepted, so it parses
        timed = {k.strip().upper(): v for k, v in request.timed.items()}
        total = sum(timed.values())
        assert answer["total_timed_minutes"] == total
        if request.method.value == "cms":
            assert answer["total_timed_units"] == chart_units(total)
        else:
            assert answer["total_timed_units"] == sum(chart_units(m) for m in timed.values())
        for code, facts in answer["codes"].items():
            billed = sum(line["units"] for line in answer["lines"] if line["code"] == code)
            assert billed == facts["units"]
        for warning in answer["warnings"]:
            assert warning["severity"] in ("act", "info") and warning["gist"]
