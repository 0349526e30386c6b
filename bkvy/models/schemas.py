"""Request bodies of the routing endpoints (SPEC §4), validated once at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bkvy.models.optimize import Optimize
from bkvy.models.policy import DataClass
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel

CLIENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$"  # a client_id, a client key's name (1-128)
_Name = Annotated[str, Field(min_length=1, max_length=128, pattern=CLIENT_NAME_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Part(BaseModel):
    # Unknown keys inside a part are dropped, never forwarded: OpenAI clients add some (e.g. cache hints), and
    # the payload rule below still refuses a part whose own field is misspelt.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ImageUrl(_Part):
    url: str = Field(min_length=1, max_length=20 * 1024 * 1024)
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(_Part):
    """One part of a message's content, on /llm/* and /v1/chat/completions alike."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _has_exactly_its_payload(self) -> ContentPart:
        if (self.type == "text") != (self.text is not None) or (self.type == "image_url") != (
            self.image_url is not None
        ):
            raise ValueError("a 'text' part needs 'text'; an 'image_url' part needs 'image_url'")
        return self

    def as_part(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class MessageIn(_Body):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    @field_validator("content")
    @classmethod
    def _parts_not_empty(cls, content: str | list[ContentPart]) -> str | list[ContentPart]:
        if isinstance(content, list) and not content:
            raise ValueError("content parts must not be empty")
        return content

    def to_message(self) -> ChatMessage:
        if isinstance(self.content, str):
            return ChatMessage(self.role, self.content)
        return ChatMessage(self.role, tuple(part.as_part() for part in self.content))


class OptionsIn(_Body):
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, strict=True)
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(default=None)
    disable_thinking: bool = Field(default=False, strict=True)
    json_mode: bool = Field(default=False, strict=True)
    hedge: bool = Field(default=True, strict=True)  # false: never race a second attempt (SPEC §6)
    optimize: Optimize | None = None  # issue 18 §2: rank what fits by score; None: routing.json's, else cost
    session_id: str | None = Field(default=None, min_length=1, max_length=256, strict=True)  # replica affinity
    cache: bool | None = Field(default=None, strict=True)  # issue 20 §1: the response cache; None: the route's

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    def to_options(self) -> GenerationOptions:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenerationOptions(
            self.max_tokens, self.temperature, self.top_p, stop, self.json_mode, self.disable_thinking
        )


class _RoutedRequest(_Body):
    client_id: _Name
    messages: list[MessageIn] = Field(min_length=1, max_length=10_000)
    options: OptionsIn = Field(default_factory=OptionsIn)
    debug: bool = Field(default=False, strict=True)  # "true", 1: 422, not a silent coercion
    max_wait_seconds: float | None = Field(default=None, ge=0.0, le=3600.0, strict=True)
    # The client's own deadline; above the gateway's hard timeout it is refused (400), never clamped.
    timeout_seconds: float | None = Field(default=None, gt=0.0, strict=True)
    data_class: DataClass | None = None  # policy (issue 19, docs/POLICY.md); else the client key's

    @field_validator("messages")
    @classmethod
    def _has_a_non_system_message(cls, messages: list[MessageIn]) -> list[MessageIn]:
        if all(message.role == "system" for message in messages):
            raise ValueError("needs at least one user or assistant message")
        return messages


class IntelligenceRequest(_RoutedRequest):
    intelligence_level: IntelligenceLevel | Literal["auto"]  # "auto": the classifier decides (issue 18 §1)


class ScenarioRequest(_RoutedRequest):
    scenario: _Name


class DirectRequest(_RoutedRequest):
    provider: _Name
    model: _Name
    api_key_id: _Name | None = None
