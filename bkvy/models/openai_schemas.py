"""The body of ``POST /v1/chat/completions``, validated once at the edge.

Unknown fields are ignored (OpenAI clients send many we have no use for) and never forwarded: only the
fields below reach an adapter, and none of them can choose an upstream URL or key.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bkvy.models.optimize import Optimize
from bkvy.models.schemas import ContentPart
from bkvy.models.types import ChatMessage, GenerationOptions, JsonSchemaFormat, ToolCall, ToolChoice, ToolSpec

_FunctionName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]
_ClientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FunctionCallIn(_In):
    name: _FunctionName
    arguments: str = Field(default="{}", max_length=1024 * 1024)


class ToolCallIn(_In):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn

    def to_tool_call(self) -> ToolCall:
        return ToolCall(self.id, self.function.name, self.function.arguments or "{}")


class OpenAIMessageIn(_In):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _fits_its_role(self) -> OpenAIMessageIn:
        if isinstance(self.content, list) and not self.content:
            raise ValueError("content parts must not be empty")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a 'tool' message needs 'tool_call_id'")
        if self.role == "assistant":
            if self.content is None and not self.tool_calls:
                raise ValueError("an 'assistant' message needs 'content' or 'tool_calls'")
        elif self.content is None:
            raise ValueError(f"a {self.role!r} message needs 'content'")
        return self

    def to_message(self) -> ChatMessage:
        role = "system" if self.role == "developer" else self.role  # developer: the o-series name for system
        if self.content is None:
            content: str | tuple[dict[str, Any], ...] = ""
        elif isinstance(self.content, str):
            content = self.content
        else:
            content = tuple(part.as_part() for part in self.content)
        calls = tuple(call.to_tool_call() for call in self.tool_calls or ())
        return ChatMessage(role, content, calls, self.tool_call_id if self.role == "tool" else None)


class FunctionSpecIn(_In):
    name: _FunctionName
    description: str | None = Field(default=None, max_length=16 * 1024)
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _small_schema(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if parameters is not None and len(json.dumps(parameters)) > 64 * 1024:
            raise ValueError("a function's parameters schema must be under 64 KiB")
        return parameters


class ToolIn(_In):
    type: Literal["function"] = "function"
    function: FunctionSpecIn


class NamedFunctionIn(_In):
    name: _FunctionName


class ToolChoiceIn(_In):
    type: Literal["function"] = "function"
    function: NamedFunctionIn


class JsonSchemaIn(_In):
    """OpenAI's ``response_format.json_schema``; what ``client.chat.completions.parse()`` sends."""

    name: _FunctionName
    description: str | None = Field(default=None, max_length=16 * 1024)
    # pydantic would shadow BaseModel.schema with a field of that name: alias it
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("json_schema")
    @classmethod
    def _small_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(schema)) > 64 * 1024:
            raise ValueError("a response_format schema must be under 64 KiB")
        return schema


class ResponseFormatIn(_In):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None

    @model_validator(mode="after")
    def _schema_when_asked(self) -> ResponseFormatIn:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a 'json_schema' object with 'name' and 'schema'")
        return self

    def to_json_schema(self) -> JsonSchemaFormat | None:
        spec = self.json_schema
        if self.type != "json_schema" or spec is None:
            return None
        return JsonSchemaFormat(spec.name, spec.json_schema, spec.description, spec.strict)


class StreamOptionsIn(_In):
    include_usage: bool = False


class BkvyExtensionsIn(_In):
    """``extra_body={"bkvy": {...}}`` with the openai SDK."""

    max_wait_seconds: float | None = Field(default=None, ge=0.0, le=3600.0)
    disable_thinking: bool = Field(default=False, strict=True)
    client_id: _ClientId | None = None
    # The SDK's own ``timeout`` never reaches the gateway; this does. Above the hard timeout: 400.
    timeout_seconds: float | None = Field(default=None, gt=0.0, strict=True)
    hedge: bool = Field(default=True, strict=True)  # false: never race a second attempt (SPEC §6)
    optimize: Optimize | None = None  # issue 18 §2: rank what fits by score; None: routing.json's, else cost
    session_id: str | None = Field(default=None, min_length=1, max_length=256, strict=True)  # replica affinity
    cache: bool | None = Field(default=None, strict=True)  # issue 20 §1: the response cache; None: the route's


class ChatCompletionIn(_In):
    model: str = Field(min_length=1, max_length=256)
    messages: list[OpenAIMessageIn] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    n: int | None = Field(default=None, ge=1)  # one choice per request: see _one_choice
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(default=None)
    response_format: ResponseFormatIn | None = None
    user: str | None = Field(default=None, max_length=256)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptionsIn | None = None
    tools: list[ToolIn] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceIn | None = None
    bkvy: BkvyExtensionsIn = Field(default_factory=BkvyExtensionsIn)

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        # Refused, not served as n routed calls: n calls bill the prompt n times (OpenAI bills it once), may land
        # on n different models under one ``model``, and a stream would interleave n relays. Never ignored.
        if n is not None and n > 1:
            raise PydanticCustomError(
                "unsupported_value",
                "bkvy answers one choice per request (n=1); send {n} requests for {n} choices",
                {"n": n},
            )
        return n

    @field_validator("messages")
    @classmethod
    def _has_a_non_system_message(cls, messages: list[OpenAIMessageIn]) -> list[OpenAIMessageIn]:
        if all(message.role in ("system", "developer") for message in messages):
            raise ValueError("needs at least one user or assistant message")
        return messages

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def to_messages(self) -> tuple[ChatMessage, ...]:
        return tuple(message.to_message() for message in self.messages)

    def to_options(self) -> GenerationOptions:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        is_json = self.response_format is not None and self.response_format.type != "text"
        tools = tuple(
            ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in self.tools or ()
        )
        return GenerationOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            json_mode=is_json,
            disable_thinking=self.bkvy.disable_thinking,
            tools=tools,
            tool_choice=self._tool_choice() if tools else None,
            user=self.user,
            json_schema=self.response_format.to_json_schema() if self.response_format else None,
        )

    def _tool_choice(self) -> ToolChoice | None:
        if self.tool_choice is None:
            return None
        if isinstance(self.tool_choice, str):
            return ToolChoice(self.tool_choice)
        return ToolChoice("function", self.tool_choice.function.name)
