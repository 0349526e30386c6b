"""The optional classifier model (issue 18 §1): its answer, its cache and its fallbacks, over a fake executor."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.core.config.gateway import ClassifierConfig
from bkvy.core.execution.classifier_model import (
    CLASSIFIER_CLIENT_ID,
    LevelCache,
    ask_classifier_model,
    parse_level,
    prompt_fingerprint,
)
from bkvy.core.execution.records import ExecutionRequest
from bkvy.core.routing.classifier import classify
from bkvy.models.errors import AllCandidatesFailed, HardTimeout
from bkvy.models.types import ChatMessage, Completion, FinishReason, IntelligenceLevel, RoutingMethod, Usage

MESSAGES = (ChatMessage("user", "hi there"),)
CONFIG = ClassifierConfig(model="openai/gpt-4o-mini", timeout_ms=300, cache_entries=2)


class _Result:
    def __init__(self, content: str) -> None:
        self.completion = Completion(content, Usage(1, 1), FinishReason.STOP)


class FakeExecutor:
    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.requests: list[ExecutionRequest] = []

    async def execute(self, request: ExecutionRequest) -> _Result:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return _Result(self.answer)


def _ask(executor: FakeExecutor, cache: LevelCache, messages: tuple[ChatMessage, ...] = MESSAGES):
    heuristic = classify(messages)
    return asyncio.run(ask_classifier_model(executor, cache, CONFIG, "r1", messages, heuristic))  # type: ignore[arg-type]


def test_the_model_answer_sets_the_level_and_the_request_is_a_direct_short_call() -> None:
    executor = FakeExecutor('{"level": "high"}')
    result = _ask(executor, LevelCache())
    assert result.level is IntelligenceLevel.HIGH and result.domain == "chat"
    assert "classifier=model" in result.features
    [request] = executor.requests
    assert request.client_id == CLASSIFIER_CLIENT_ID and request.timeout_seconds == pytest.approx(0.3)
    assert request.route.method is RoutingMethod.DIRECT
    assert (request.route.provider, request.route.model) == ("openai", "gpt-4o-mini")
    assert request.hedge is False and request.options.json_schema is not None


def test_a_second_ask_is_a_cache_hit() -> None:
    executor, cache = FakeExecutor('{"level": "medium"}'), LevelCache()
    _ask(executor, cache)
    again = _ask(executor, cache, (ChatMessage("user", "  HI   there "),))  # normalised: the same fingerprint
    assert len(executor.requests) == 1 and "classifier=cache" in again.features
    assert again.level is IntelligenceLevel.MEDIUM


def test_the_cache_is_bounded_least_recently_used_first_out() -> None:
    cache = LevelCache()
    for name in ("a", "b", "c"):
        cache.put(name, IntelligenceLevel.LOW, max_entries=2)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") is IntelligenceLevel.LOW


@pytest.mark.parametrize(
    ("answer", "feature"),
    [
        (HardTimeout("no answer within 0.3s"), "classifier=fallback_timeout"),
        (AllCandidatesFailed("down"), "classifier=fallback_error:all_candidates_failed"),
        ("I cannot say", "classifier=fallback_unparseable"),
    ],
)
def test_failures_fall_back_to_the_heuristic_and_say_why(answer: str | Exception, feature: str) -> None:
    cache = LevelCache()
    result = _ask(FakeExecutor(answer), cache)
    heuristic = classify(MESSAGES)
    assert (result.level, result.confidence) == (heuristic.level, heuristic.confidence)
    assert result.features[-1] == feature and len(cache) == 0


def test_parse_level_takes_json_or_a_level_word() -> None:
    assert parse_level('{"level": "low"}') is IntelligenceLevel.LOW
    assert parse_level("Level: HIGH.") is IntelligenceLevel.HIGH
    assert parse_level('{"level": "extreme"}') is None and parse_level("") is None


def test_the_fingerprint_keeps_no_text() -> None:
    fingerprint = prompt_fingerprint((ChatMessage("user", "secret words"),))
    assert len(fingerprint) == 64 and "secret" not in fingerprint
    assert fingerprint != prompt_fingerprint((ChatMessage("system", "secret words"),))
