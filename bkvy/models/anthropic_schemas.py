"""The bodies of ``POST /v1/messages`` and ``/v1/messages/count_tokens`` (Anthropic's Messages API), validated once.

Checked against the official ``anthropic`` SDK's param types (2.12.0: ``MessageCreateParams``,
``MessageCountTokensParams``). Unknown fields are refused (400), never dropped: what bkvy cannot carry must not
silently change the answer. Two hints are accepted and not forwarded because they change cost, not the answer:
``cache_control`` (prompt caching) and ``service_tier`` (bkvy has no priority tier).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bkvy.models.openai_schemas import BkvyExtensionsIn

_ToolName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-.]+$")]
_Id = Annotated[str, Field(min_length=1, max_length=256)]
_MAX_IMAGE_CHARS = 20 * 1024 * 1024


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnthropicCacheControlIn(_In):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class AnthropicTextBlockIn(_In):
    type: Literal["text"]
    text: str
    cache_control: AnthropicCacheControlIn | None = None
    citations: list[Any] | None = Field(default=None, max_length=0)  # citations are output; bkvy makes none


class AnthropicBase64SourceIn(_In):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1, max_length=_MAX_IMAGE_CHARS)


class AnthropicUrlSourceIn(_In):
    type: Literal["url"]
    url: str = Field(min_length=1, max_length=8192, pattern=r"^https?://")


class AnthropicImageBlockIn(_In):
    type: Literal["image"]
    source: Annotated[AnthropicBase64SourceIn | AnthropicUrlSourceIn, Field(discriminator="type")]
    cache_control: AnthropicCacheControlIn | None = None


class AnthropicToolUseBlockIn(_In):
    type: Literal["tool_use"]
    id: _Id
    name: _ToolName
    input: dict[str, Any]
    cache_control: AnthropicCacheControlIn | None = None


AnthropicToolResultPartIn = Annotated[AnthropicTextBlockIn | AnthropicImageBlockIn, Field(discriminator="type")]


class AnthropicToolResultBlockIn(_In):
    type: Literal["tool_result"]
    tool_use_id: _Id
    content: str | list[AnthropicToolResultPartIn] = ""
    is_error: bool = False
    cache_control: AnthropicCacheControlIn | None = None


AnthropicContentBlockIn = Annotated[
    AnthropicTextBlockIn | AnthropicImageBlockIn | AnthropicToolUseBlockIn | AnthropicToolResultBlockIn,
    Field(discriminator="type"),
]


class AnthropicMessageIn(_In):
    role: Literal["user", "assistant", "system"]
    content: str | list[AnthropicContentBlockIn]

    @model_validator(mode="after")
    def _blocks_fit_the_role(self) -> AnthropicMessageIn:
        if isinstance(self.content, str):
            return self
        if not self.content:
            raise ValueError("content blocks must not be empty")
        kinds = {block.type for block in self.content}
        allowed = {"user": {"text", "image", "tool_result"}, "assistant": {"text", "tool_use"}, "system": {"text"}}
        wrong = sorted(kinds - allowed[self.role])
        if wrong:
            raise ValueError(f"a {self.role!r} message cannot hold {', '.join(wrong)} blocks")
        return self


class AnthropicToolIn(_In):
    """A client tool; server tools (web search, code execution...) have another ``type`` and are refused."""

    name: _ToolName
    input_schema: dict[str, Any]
    description: str | None = Field(default=None, max_length=16 * 1024)
    type: Literal["custom"] | None = None
    cache_control: AnthropicCacheControlIn | None = None


class AnthropicToolChoiceIn(_In):
    type: Literal["auto", "any", "tool", "none"]
    name: _ToolName | None = None
    disable_parallel_tool_use: bool = False

    @model_validator(mode="after")
    def _name_iff_tool(self) -> AnthropicToolChoiceIn:
        if (self.type == "tool") != (self.name is not None):
            raise ValueError("'name' is required with type 'tool', and only then")
        return self


class AnthropicThinkingIn(_In):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(default=None, ge=1)
    display: Literal["summarized", "omitted"] | None = None


class AnthropicMetadataIn(_In):
    user_id: str | None = Field(default=None, max_length=256)


class AnthropicJsonOutputFormatIn(_In):
    """Structured outputs: the reply is one text block of JSON matching ``schema`` (what ``messages.parse`` sends)."""

    type: Literal["json_schema"]
    # pydantic would shadow BaseModel.schema with a field of that name: alias it
    json_schema: dict[str, Any] = Field(alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _small_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(schema)) > 64 * 1024:
            raise ValueError("an output_config.format schema must be under 64 KiB")
        return schema


class AnthropicOutputConfigIn(_In):
    """``output_config``: ``format`` only; ``effort`` is refused like ``thinking`` (the model's tier decides)."""

    format: AnthropicJsonOutputFormatIn | None = None


class MessagesCountTokensIn(_In):
    """``POST /v1/messages/count_tokens``: what the model would read."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[AnthropicMessageIn] = Field(min_length=1, max_length=100_000)
    system: str | list[AnthropicTextBlockIn] | None = None
    tools: list[AnthropicToolIn] | None = Field(default=None, max_length=128)
    tool_choice: AnthropicToolChoiceIn | None = None
    thinking: AnthropicThinkingIn | None = None
    output_config: AnthropicOutputConfigIn | None = None
    cache_control: AnthropicCacheControlIn | None = None
    bkvy: BkvyExtensionsIn = Field(default_factory=BkvyExtensionsIn)

    @model_validator(mode="after")
    def _has_a_conversation_turn(self) -> MessagesCountTokensIn:
        if all(message.role == "system" for message in self.messages):
            raise ValueError("messages: needs at least one user or assistant message")
        return self


class MessagesCreateIn(MessagesCountTokensIn):
    """``POST /v1/messages``; ``max_tokens`` is required, as on Anthropic's API."""

    max_tokens: int = Field(ge=1, le=1_000_000, strict=True)
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, max_length=16)
    stream: bool = Field(default=False, strict=True)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    metadata: AnthropicMetadataIn | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
