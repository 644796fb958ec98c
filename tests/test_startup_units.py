"""The units batch pauses the cyclic garbage collector for speed and always restores it."""

from __future__ import annotations

import gc

import pytest

from therapy_timer import contract
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
