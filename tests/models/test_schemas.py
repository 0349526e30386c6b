"""One content-part schema for /llm/* and /v1/chat/completions: the same rule, the same output."""

from __future__ import annotations

import pydantic
import pytest

from bkvy.models.openai_schemas import ChatCompletionIn
from bkvy.models.schemas import ContentPart, IntelligenceRequest


def _llm(parts: list[dict]) -> IntelligenceRequest:
    return IntelligenceRequest.model_validate(
        {"client_id": "c", "intelligence_level": "low", "messages": [{"role": "user", "content": parts}]}
    )


def _openai(parts: list[dict]) -> ChatCompletionIn:
    return ChatCompletionIn.model_validate({"model": "auto", "messages": [{"role": "user", "content": parts}]})


def test_both_bodies_use_the_one_content_part() -> None:
    parts = [{"type": "text", "text": "hi"}]
    assert type(_llm(parts).messages[0].content[0]) is ContentPart
    assert type(_openai(parts).messages[0].content[0]) is ContentPart


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text"},
        {"type": "image_url", "text": "no image"},
        {"type": "text", "text": "hi", "image_url": {"url": "https://example.com/a.png"}},
    ],
    ids=["text_without_text", "image_without_image_url", "text_with_an_image_too"],
)
@pytest.mark.parametrize("parse", [_llm, _openai], ids=["llm", "openai"])
def test_a_part_carries_exactly_its_payload(parse, part: dict) -> None:
    with pytest.raises(pydantic.ValidationError, match="a 'text' part needs 'text'"):
        parse([part])


@pytest.mark.parametrize("parse", [_llm, _openai], ids=["llm", "openai"])
def test_unknown_keys_in_a_part_are_dropped_not_forwarded(parse) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "fit": "x"}, "cache_control": 1}
    message = parse([{"type": "text", "text": "what is this?"}, image]).messages[0].to_message()
    assert message.content == (
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    )
