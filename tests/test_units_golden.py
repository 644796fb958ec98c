"""The units engine answers 5,000 seeded random requests exactly as the code before issue 13 did.

tests/fixtures/units_golden.json.gz was written by tests/fixtures/make_units_golden.py running
on main at 2a8d178, before the engine and the contract were sped up: an earlier, independent
computation of every answer, compared byte for byte.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from tests.fixtures.make_units_golden import OUT, answer
from therapy_timer.contract import answer_batch, dumps


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(gzip.decompress(OUT.read_bytes()))
    assert len(loaded) == 5000
    return loaded


def test_every_answer_and_result_is_what_the_earlier_code_gave(cases: list[dict[str, Any]]) -> None:
    for case in cases:
        got = answer(case["request"])
        # Compared as text, so the order of keys counts too.
        assert json.dumps(got) == json.dumps({"answer": case["answer"], "facts": case["facts"]}), (
            case["request"]
        )


def test_one_batch_of_all_requests_answers_the_same_text(cases: list[dict[str, Any]]) -> None:
    # The command's path: one array in, one JSON text out, errors numbered by position.
    expected = []
    for i, case in enumerate(cases):
        wanted = case["answer"]
        if "error" in wanted:
            wanted = {"error": wanted["error"].replace("[0]", f"[{i}]", 1)}
        expected.append(wanted)
    got = dumps(answer_batch([case["request"] for case in cases]), pretty=False)
    assert got == json.dumps(expected)
