"""The automatic level's classifier (issue 18 §1): pure, so each cue is tested on hand-built messages."""

from __future__ import annotations

import time

from bkvy.core.routing.classifier import classify, images_in
from bkvy.models.optimize import DOMAINS
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel, JsonSchemaFormat, ToolSpec

LOW, MEDIUM, HIGH = IntelligenceLevel.LOW, IntelligenceLevel.MEDIUM, IntelligenceLevel.HIGH
CODE = "```python\ndef add(a, b):\n    return a + b\n```\n"


def user(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("user", text),)


def test_a_greeting_is_low_chat() -> None:
    result = classify(user("hi"))
    assert (result.level, result.domain) == (LOW, "chat")
    assert "simple" in result.features


def test_code_blocks_and_language_decide_the_domain() -> None:
    result = classify(user("Why does this fail?\n" + CODE + CODE))
    assert result.domain == "code"
    assert "code_blocks=2" in result.features and "lang=python" in result.features


def test_an_unknown_fence_tag_is_never_shown_as_written() -> None:
    result = classify(user("```secret-project-name\nx = 1\n```"))
    assert "lang=other" in result.features
    assert not any("secret" in feature for feature in result.features)


def test_a_code_review_with_hard_cues_is_high() -> None:
    text = "Review this for race conditions and security vulnerabilities, then refactor it step by step.\n" + CODE * 3
    assert classify(user(text)).level is HIGH


def test_a_proof_is_high_math() -> None:
    result = classify(user("Prove that there are infinitely many primes congruent to 3 modulo 4."))
    assert (result.level, result.domain) == (HIGH, "math")


def test_arithmetic_is_low_math_features() -> None:
    result = classify(user("What is 7 * 8?"))
    assert result.level is LOW and "math" in result.features


def test_creative_writing_is_medium_and_a_long_one_high() -> None:
    story = user("Write a short story (about 500 words) about a lighthouse keeper and a bottle.")
    assert classify(story).level is MEDIUM
    long_story = classify(user("Write the first chapter of a novel about a vineyard."), GenerationOptions(8000))
    assert (long_story.level, long_story.domain) == (HIGH, "creative")
    assert "max_tokens=8000" in long_story.features


def test_a_tiny_max_tokens_pulls_the_level_down() -> None:
    ask = user("Classify the sentiment of this review: the battery died after two days.")
    assert classify(ask, GenerationOptions(max_tokens=5)).level is LOW


def test_extraction_with_a_schema_is_extraction() -> None:
    schema = JsonSchemaFormat("invoice", {"type": "object", "properties": {"total": {"type": "number"}}})
    result = classify(user("Extract the total from: Coffee 3.50, Tax 0.20"), GenerationOptions(json_schema=schema))
    assert (result.level, result.domain) == (LOW, "extraction") and "json_schema" in result.features


def test_many_tools_raise_the_level() -> None:
    ask = user("Plan a trip to Japan and book it.")
    few = classify(ask, GenerationOptions(tools=(ToolSpec("search"),)))
    many = classify(ask, GenerationOptions(tools=tuple(ToolSpec(f"tool{i}") for i in range(5))))
    assert many.level.rank > few.level.rank - 1 and "tools=5" in many.features
    assert many.level.rank >= MEDIUM.rank


def test_images_count_and_raise_the_level() -> None:
    parts = ({"type": "text", "text": "Read this invoice"}, {"type": "image_url", "image_url": {"url": "x"}})
    messages = (ChatMessage("user", parts),)
    assert images_in(messages) == 1
    assert "images=1" in classify(messages, images=1).features


def test_images_only_is_classified_without_text() -> None:
    messages = (ChatMessage("user", ({"type": "image_url", "image_url": {"url": "x"}},)),)
    result = classify(messages, images=images_in(messages))
    assert result.domain == "chat" and "images=1" in result.features and "prompt_tokens=0" in result.features


def test_an_empty_prompt_and_a_system_prompt_only_do_not_raise() -> None:
    assert classify(user("")).level is LOW
    assert classify(()).level is LOW
    system_only = classify((ChatMessage("system", "You are a senior Python reviewer. Find bugs in code."),))
    assert "system_prompt" in system_only.features and system_only.domain == "code"


def test_turns_are_counted() -> None:
    turns = tuple(ChatMessage("user" if i % 2 == 0 else "assistant", "and then?") for i in range(7))
    assert "turns=7" in classify(turns).features


def test_a_huge_prompt_is_high_and_classified_well_under_a_millisecond() -> None:
    text = ("The service handles 2,000 requests a second. " + CODE) * 3_000  # ~100k tokens
    messages = user("Summarise the incidents below.\n" + text)
    result = classify(messages)
    assert result.level is HIGH and f"prompt_tokens={len(messages[0].content) // 4}" in result.features
    started = time.perf_counter()
    classify(messages)
    assert time.perf_counter() - started < 0.05  # a generous bound for a busy machine; the benchmark measures


def test_classification_is_deterministic_and_bounded() -> None:
    ask = user("Compare renting and buying a home: the trade-offs, step by step.")
    first, second = classify(ask), classify(ask)
    assert first == second
    assert 0.0 <= first.confidence <= 1.0 and first.domain in DOMAINS


def test_the_header_and_debug_shapes() -> None:
    result = classify(user("hi"))
    assert result.header_value() == f"level=low; domain=chat; confidence={result.confidence:.2f}"
    assert set(result.as_dict()) == {"level", "domain", "confidence", "features"}


def test_any_text_is_classified_without_raising() -> None:
    for text in ("\ud800 lone surrogate", "café 数学 の証明", "\x00\x1b[31m", "```" * 101):
        assert classify(user(text)).domain in DOMAINS
