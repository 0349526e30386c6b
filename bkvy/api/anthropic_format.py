"""Anthropic's Messages shapes: a request → bkvy's messages and options, a result → ``Message``, stream deltas →
Anthropic's SSE events, failures → ``{"type": "error", "error": {type, message, details}}``. Pure functions; the
routes (``api.routes_anthropic``) do the I/O. Checked against the ``anthropic`` SDK's types (2.12.0).
"""

from __future__ import annotations

import json
import math
from typing import Any

from bkvy.core.execution.executor import ExecutionResult
from bkvy.core.upstream.adapters import StreamDelta, ToolCallDelta
from bkvy.models.anthropic_schemas import (
    AnthropicImageBlockIn,
    AnthropicMessageIn,
    AnthropicTextBlockIn,
    AnthropicToolResultBlockIn,
    AnthropicToolUseBlockIn,
    MessagesCountTokensIn,
    MessagesCreateIn,
)
from bkvy.models.errors import InvalidRequest
from bkvy.models.types import (
    ChatMessage,
    FinishReason,
    GenerationOptions,
    JsonSchemaFormat,
    ToolCall,
    ToolChoice,
    ToolSpec,
)

_CHARS_PER_TOKEN = 4  # bkvy's one estimate, as on /v1/chat/completions: no tokenizer, no network
_TOKENS_PER_IMAGE = 1600  # Anthropic's cost of an image at its ~1.15 megapixel cap (width * height / 750)
_STOP_REASONS = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
}
_TOOL_CHOICE_MODES = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
_SCHEMA_NAME = "output"  # the name OpenAI-format providers need for a json_schema; Anthropic sends none
# Anthropic's error type per status (the SDK's ``ErrorType``); the SDK picks its exception class by status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# bkvy's status → Anthropic's: its API answers 400 to a body that does not validate (never 422), and 529 when
# it cannot serve now, which is what "every circuit is open" means (the SDK raises OverloadedError and retries).
_STATUSES = {422: 400, 503: 529}
ANTHROPIC_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})


# --- the request -------------------------------------------------------------------------------------------


def to_messages(body: MessagesCountTokensIn) -> tuple[ChatMessage, ...]:
    """The system prompt, then each message; a user turn's ``tool_result`` blocks become ``tool`` messages.

    Raises InvalidRequest (400) for what bkvy's messages cannot carry (images inside a tool result).
    """
    system = body.system
    if isinstance(system, str):
        messages = [ChatMessage("system", system)] if system else []
    else:
        messages = [ChatMessage("system", block.text) for block in system or ()]
    for index, message in enumerate(body.messages):
        messages += _converted(message, f"messages.{index}")
    return tuple(messages)


def _converted(message: AnthropicMessageIn, where: str) -> list[ChatMessage]:
    if isinstance(message.content, str):
        return [ChatMessage(message.role, message.content)]
    if message.role == "assistant":
        text = "".join(block.text for block in message.content if isinstance(block, AnthropicTextBlockIn))
        calls = tuple(
            ToolCall(block.id, block.name, json.dumps(block.input))
            for block in message.content
            if isinstance(block, AnthropicToolUseBlockIn)
        )
        return [ChatMessage("assistant", text, calls)]
    converted: list[ChatMessage] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(message.content):  # order kept: results answer the previous turn's calls
        if isinstance(block, AnthropicToolResultBlockIn):
            if parts:
                converted.append(ChatMessage(message.role, tuple(parts)))
                parts = []
            converted.append(_tool_result(block, f"{where}.content.{index}"))
        elif isinstance(block, AnthropicImageBlockIn):
            parts.append(_image_part(block))
        elif isinstance(block, AnthropicTextBlockIn):
            parts.append({"type": "text", "text": block.text})
    if parts:
        converted.append(ChatMessage(message.role, tuple(parts)))
    return converted


def _image_part(block: AnthropicImageBlockIn) -> dict[str, Any]:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: AnthropicToolResultBlockIn, where: str) -> ChatMessage:
    if isinstance(block.content, str):
        text = block.content
    else:
        if any(isinstance(part, AnthropicImageBlockIn) for part in block.content):
            raise InvalidRequest(f"{where}.content: images inside a tool_result are not supported by bkvy")
        text = "".join(part.text for part in block.content if isinstance(part, AnthropicTextBlockIn))
    # Only Anthropic has a flag for a failed tool; every wire format carries the words, so the flag becomes them.
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return ChatMessage("tool", text, tool_call_id=block.tool_use_id)


def to_options(body: MessagesCreateIn) -> GenerationOptions:
    """Raises InvalidRequest (400) for ``thinking`` other than ``disabled`` and ``disable_parallel_tool_use``."""
    thinking = body.thinking
    if thinking is not None and thinking.type != "disabled":
        raise InvalidRequest(
            f"thinking: type {thinking.type!r} is not supported by bkvy; omit 'thinking' (the model's tier decides"
            " reasoning: 'high' enables it where the model supports it) or send {'type': 'disabled'}"
        )
    tools = to_tools(body)
    return GenerationOptions(
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(body.stop_sequences or ()),
        disable_thinking=body.bkvy.disable_thinking or thinking is not None,  # only 'disabled' gets here
        tools=tools,
        tool_choice=_tool_choice(body) if tools else None,
        user=body.metadata.user_id if body.metadata else None,
        json_schema=_json_schema(body),
    )


def _json_schema(body: MessagesCreateIn) -> JsonSchemaFormat | None:
    """``output_config.format``: carried like OpenAI's ``json_schema`` (Anthropic's has no name; OpenAI needs one)."""
    output_format = body.output_config.format if body.output_config else None
    return None if output_format is None else JsonSchemaFormat(_SCHEMA_NAME, output_format.json_schema)


def to_tools(body: MessagesCountTokensIn) -> tuple[ToolSpec, ...]:
    return tuple(ToolSpec(t.name, t.description, t.input_schema) for t in body.tools or ())


def _tool_choice(body: MessagesCreateIn) -> ToolChoice | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if choice.disable_parallel_tool_use:
        raise InvalidRequest("tool_choice.disable_parallel_tool_use: true is not supported by bkvy")
    return ToolChoice(_TOOL_CHOICE_MODES[choice.type], choice.name)


def estimate_input_tokens(messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...]) -> int:
    """bkvy's estimate: every character the model reads (text, tool calls, tool definitions) / 4, rounded up,
    plus 1,600 per image. No tokenizer and no network: close for English prose, low for code and CJK text."""
    chars = sum(len(m.text()) + sum(len(c.name) + len(c.arguments) for c in m.tool_calls) for m in messages)
    chars += sum(len(t.name) + len(t.description or "") + len(json.dumps(t.parameters or {})) for t in tools)
    images = sum(
        1 for m in messages if not isinstance(m.content, str) for part in m.content if part.get("type") == "image_url"
    )
    return math.ceil(chars / _CHARS_PER_TOKEN) + images * _TOKENS_PER_IMAGE


# --- the reply ---------------------------------------------------------------------------------------------


def _tool_input(arguments: str) -> dict[str, Any]:
    """OpenAI-style JSON text as Anthropic's ``input`` object; text that is no JSON object is kept, not lost."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens}


def message_json(request_id: str, result: ExecutionResult) -> dict[str, Any]:
    """An Anthropic ``Message``."""
    completion = result.completion
    content: list[dict[str, Any]] = []
    if completion.content or not completion.tool_calls:
        content.append({"type": "text", "text": completion.content})
    content += [
        {"type": "tool_use", "id": call.call_id, "name": call.name, "input": _tool_input(call.arguments)}
        for call in completion.tool_calls
    ]
    return {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": result.candidate.model,
        "content": content,
        "stop_reason": _STOP_REASONS[completion.finish_reason],
        "stop_sequence": None,  # which stop sequence matched is not reported by every provider, so never
        "usage": _usage(completion.usage.input_tokens, completion.usage.output_tokens),
    }


def _event(name: str, payload: dict[str, Any]) -> bytes:
    # The SDK skips an event without an ``event:`` line, so every event names itself.
    return f"event: {name}\ndata: ".encode() + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class EventWriter:
    """Turns bkvy's stream deltas into Anthropic's events: one content block open at a time, text and tool_use
    blocks in arrival order; ``message_delta`` (stop reason, usage) waits for the end, as usage may come last."""

    def __init__(self, request_id: str, model: str, *, input_tokens_estimate: int) -> None:
        self._request_id = request_id
        self._model = model
        self._input_tokens = input_tokens_estimate
        self._output_tokens = 0
        self._next_index = 0
        self._open: int | None = None  # the open block's index
        self._open_text: int | None = None  # the open block's index, when it is a text block
        self._tool_blocks: dict[int, int] = {}  # bkvy's tool-call index → the block's index
        self._stop_reason: str | None = None

    def opening_events(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_{self._request_id}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self._input_tokens, 0),  # bkvy's estimate; message_delta carries the provider's count
        }
        return _event("message_start", {"type": "message_start", "message": message}) + _event("ping", {"type": "ping"})

    def delta_events(self, delta: StreamDelta) -> bytes:
        events = b""
        if delta.content:
            if self._open_text is None:
                events += self._start({"type": "text", "text": ""})
                self._open_text = self._next_index - 1  # the block just opened
            events += self._delta(self._open_text, {"type": "text_delta", "text": delta.content})
        for call in delta.tool_calls:
            events += self._tool_events(call)
        if delta.finish_reason is not None:
            self._stop_reason = _STOP_REASONS[delta.finish_reason]
        if delta.usage is not None:
            self._input_tokens, self._output_tokens = delta.usage.input_tokens, delta.usage.output_tokens
        return events

    def closing_events(self) -> bytes:
        """Only after the upstream gave a finish reason (``LiveStream`` raises otherwise)."""
        events = self._stop()
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
            "usage": _usage(self._input_tokens, self._output_tokens),
        }
        return events + _event("message_delta", message_delta) + _event("message_stop", {"type": "message_stop"})

    def _tool_events(self, call: ToolCallDelta) -> bytes:
        events = b""
        if call.index not in self._tool_blocks:
            block = {"type": "tool_use", "id": call.call_id or f"toolu_{self._request_id}_{call.index}"}
            events += self._start({**block, "name": call.name or "", "input": {}})
            self._tool_blocks[call.index] = self._next_index - 1  # the block just opened
        if call.arguments:
            partial = {"type": "input_json_delta", "partial_json": call.arguments}
            events += self._delta(self._tool_blocks[call.index], partial)
        return events

    def _start(self, block: dict[str, Any]) -> bytes:
        events = self._stop()
        self._open, self._next_index = self._next_index, self._next_index + 1
        return events + _event(
            "content_block_start", {"type": "content_block_start", "index": self._open, "content_block": block}
        )

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _stop(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._open_text = self._open, None, None
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})


# --- failures ----------------------------------------------------------------------------------------------


def anthropic_status(status: int) -> int:
    return _STATUSES.get(status, status)


def error_body(status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    """Anthropic's error envelope; bkvy's stable code rides in ``details.error_code`` (the SDK's ``error_code``)."""
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error = {"type": error_type, "message": message, "details": {"error_code": code}}
    return {"type": "error", "error": error, "request_id": request_id}


def error_event(status: int, code: str, message: str, request_id: str) -> bytes:
    """The event that ends a stream broken after content was sent: the SDK raises ``APIStatusError``."""
    return _event("error", error_body(anthropic_status(status), code, message, request_id))
