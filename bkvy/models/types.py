"""Internal value types shared by core, api and sim.

Everything here is a frozen dataclass or an enum: validated data crosses the
boundaries once (pydantic, in ``schemas`` and ``core.config``) and is plain and
immutable inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from bkvy.models.thinking import ThinkingSetting


class IntelligenceLevel(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {IntelligenceLevel.LOW: 0, IntelligenceLevel.MEDIUM: 1, IntelligenceLevel.HIGH: 2}


class ProviderType(str, Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai_compatible"


class RoutingMethod(str, Enum):
    INTELLIGENCE = "intelligence"
    SCENARIO = "scenario"
    DIRECT = "direct"


class FinishReason(str, Enum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"


class ErrorClass(str, Enum):
    """How an upstream failure is treated by failover and the circuit breaker."""

    AUTH = "auth"  # 401/403: the key is bad
    RATE_LIMITED = "rate_limited"  # 429: wait retry_after_seconds
    SERVER = "server"  # 5xx, or an unparseable reply
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_REQUEST = "bad_request"  # this input is wrong: no failover, no circuit blame
    # 404 for the model (retired, never pulled, misspelt in providers.json): not the client's input. Fail over;
    # the model's circuits open for every key of its provider.
    NOT_FOUND = "not_found"

    @property
    def is_retryable(self) -> bool:
        return self is not ErrorClass.BAD_REQUEST


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call asked for by the model; ``arguments`` is a JSON object as text (OpenAI's form)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One function the model may call; ``parameters`` is its JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``mode``: "auto", "none", "required", or "function" (then ``name`` says which)."""

    mode: str = "auto"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    """``response_format: {"type": "json_schema"}``: the reply must be JSON matching ``schema``.

    ``name`` and ``strict`` are OpenAI's; the other wire formats carry only the schema.
    """

    name: str
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class ChatMessage(NamedTuple):
    """One message; ``content`` is text or a list of OpenAI-style content parts.

    Roles: system, user, assistant (optionally with ``tool_calls``) and tool (a result for ``tool_call_id``).
    """

    role: str
    content: str | tuple[dict[str, Any], ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class GenerationOptions(NamedTuple):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False
    disable_thinking: bool = False
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    user: str | None = None  # the end user's id, for the provider's abuse monitoring
    json_schema: JsonSchemaFormat | None = None  # structured output; implies JSON mode whatever json_mode says


class UpstreamCall(NamedTuple):
    """Everything an adapter needs to build one upstream request."""

    base_url: str
    model: str  # the provider's model id, e.g. "gpt-4o-mini" or "models/..." stripped
    api_key: str  # the key value; adapters put it in headers only, never in the URL
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions = GenerationOptions()
    thinking: ThinkingSetting | None = None  # SPEC §5 thinking control, decided by core.upstream.thinking
    endpoint: str | None = None  # per-model override of the path, from config
    stream: bool = False


class UpstreamRequest(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    json_body: dict[str, Any] | None
    # What the adapter sent for thinking control, e.g. "off: reasoning_effort=low"; None: nothing was asked.
    thinking: str | None = None


class UpstreamReply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Usage(NamedTuple):
    """Tokens as billed. ``output_tokens`` includes ``reasoning_tokens`` (thinking), which every provider
    bills as output; ``reasoning_tokens`` is the part of it the client never sees as text."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class RateLimitHint(NamedTuple):
    """What a provider's headers said about the key's remaining budget: requests, and tokens (the total, and
    Anthropic's separate input and output budgets), with the seconds until each resets."""

    remaining_requests: int | None = None
    reset_seconds: float | None = None  # the requests' reset
    remaining_tokens: int | None = None
    remaining_input_tokens: int | None = None
    remaining_output_tokens: int | None = None
    tokens_reset_seconds: float | None = None  # the latest of the token budgets' resets


class Completion(NamedTuple):
    content: str
    usage: Usage
    finish_reason: FinishReason
    model_reported: str | None = None
    rate_limit_hint: RateLimitHint | None = None
    tool_calls: tuple[ToolCall, ...] = ()
