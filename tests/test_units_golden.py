"""The units engine answers 5,000 seeded random requests exactly as the code before issue 13 did.

tests/fixtures/units_golden.json.gz was written by tests/fixtures/make_units_golden.py running
on main at 2a8d178, before the engine and the contract were sped up: an earlier, independent
computation of every answer, compared byte for byte. The answers since changed on purpose, each
by a named fix: 335 lines of 92507/92508/92526 under a PT or OT plan of care, which took GN
where the plan's GP or GO (and CQ/CO) was due (R6.1); and R6.3's warning, which said "belongs
to a OT plan of care" (a OT/PT, a OT/SLP, a SLP) where "an" is said, in 4,963 answers.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fixtures.make_units_golden import OUT, answer
from therapy_timer.cli import main
from therapy_timer.contract import answer_batch, answer_batch_pieces, answer_batch_text, dumps


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


def numbered(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The golden answers as one batch answers them: errors numbered by position."""
    expected = []
    for i, case in enumerate(cases):
        wanted = case["answer"]
        if "error" in wanted:
            wanted = {"error": wanted["error"].replace("[0]", f"[{i}]", 1)}
        expected.append(wanted)
    return expected


def test_one_batch_of_all_requests_answers_the_same_text(cases: list[dict[str, Any]]) -> None:
    expected = numbered(cases)
    requests = [case["request"] for case in cases]
    assert dumps(answer_batch(requests), pretty=False) == json.dumps(expected)
    # The command writes an array's answers as text built from cached parts: the same bytes,
    # also the second time round, when every part comes from the cache.
    refused = sum("error" in answer for answer in expected)
    first, second = answer_batch_text(requests), answer_batch_text(requests)
    assert first == second == (json.dumps(expected), refused)
    # The command writes it in pieces: joined, the same text, whatever the size of a piece.
    for per_piece in (1, 7, 1000):
        pieces, counted = answer_batch_pieces(requests, per_piece=per_piece)
        assert ("".join(pieces), counted) == first


@pytest.mark.parametrize("count", [2, 600, 2500])
def test_the_command_prints_the_same_bytes_for_an_array(
    cases: list[dict[str, Any]], count: int, tmp_path: Path
) -> None:
    chosen = cases[:count]
    request = tmp_path / "batch.json"
    request.write_text(json.dumps([case["request"] for case in chosen]))
    run = CliRunner(env={"THERAPY_TIMER_DATA_DIR": str(tmp_path)})
    done = run.invoke(main, ["units", "--request", str(request), "--json"])
    expected = numbered(chosen)
    assert done.stdout == json.dumps(expected) + "\n"
    assert done.exit_code == (2 if any("error" in answer for answer in expected) else 0)
