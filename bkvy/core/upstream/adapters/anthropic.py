"""Anthropic Messages API."""

from __future__ import annotations

import json
import re
from typing import Any

from bkvy.core.upstream.adapters._errors import (
    error_from_event,
    json_object_or_raise,
    rate_limit_hint,
    unparseable_reply,
    upstream_error,
)
from bkvy.core.upstream.adapters._streams import SseBuffer, decode_event_json
from bkvy.core.upstream.adapters._wire import (
    JSON_CONTENT_TYPE,
    image_url_of,
    join_url,
    parse_data_url,
    probe_call,
    tool_arguments,
    unsupported_part,
    with_unique_tool_ids,
)
from bkvy.core.upstream.adapters.base import StreamDelta, ToolCallDelta
from bkvy.core.upstream.thinking import thinking_record
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode, ThinkingParam
from bkvy.models.types import (
    ChatMessage,
    Completion,
    FinishReason,
    ToolCall,
    ToolChoice,
    UpstreamCall,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)

ANTHROPIC_VERSION = "2023-06-01"
_NOT_IN_TOOL_ID = re.compile(r"[^A-Za-z0-9_-]")  # tool_use ids must match ^[a-zA-Z0-9_-]+$
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; clients often send none
_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


class AnthropicAdapter:
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        headers = {**JSON_CONTENT_TYPE, "x-api-key": call.api_key, "anthropic-version": ANTHROPIC_VERSION}
        body = _body(call)
        thinking, note = _thinking_params(call, body["max_tokens"])
        for name, value in thinking.items():
            body[name] = {**body[name], **value} if name == "output_config" and name in body else value
        url = join_url(call.base_url, call.endpoint or "/v1/messages")
        return UpstreamRequest("POST", url, headers, body, thinking_record(call.thinking, thinking, note))

    def parse_reply(self, reply: UpstreamReply) -> Completion:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        try:
            blocks = payload["content"]
            content = "".join(b["text"] for b in blocks if b.get("type") == "text")
            tool_calls = tuple(
                ToolCall(str(b["id"]), str(b["name"]), json.dumps(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use"
            )
            tokens = _usage(payload["usage"])
        except (KeyError, TypeError, AttributeError):
            raise unparseable_reply(reply.status) from None
        finish = _FINISH.get(payload.get("stop_reason") or "end_turn", FinishReason.STOP)
        return Completion(
            content=content,
            usage=tokens,
            finish_reason=finish,
            model_reported=payload.get("model"),
            rate_limit_hint=rate_limit_hint(reply.headers),
            tool_calls=tool_calls,
        )

    def build_probe(self, call: UpstreamCall) -> UpstreamRequest:
        return self.build_request(probe_call(call))

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()


def _body(call: UpstreamCall) -> dict[str, Any]:
    # No temperature/top_p: the Messages params of anthropic SDK 2.12.0 no longer have them, so they are dropped
    # rather than risk a 400 (and thinking refuses a changed temperature anyway). `thinking`: _thinking_params.
    options = call.options
    system = "\n\n".join(m.text() for m in call.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": options.max_tokens if options.max_tokens is not None else DEFAULT_MAX_TOKENS,
        "messages": _alternating_messages(with_unique_tool_ids(call.messages, _clean_tool_id)),
    }
    if system:
        body["system"] = system
    if options.stop:
        body["stop_sequences"] = list(options.stop)
    if options.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters or {"type": "object", "properties": {}},
            }
            for t in options.tools
        ]
        if options.tool_choice is not None:
            body["tool_choice"] = _tool_choice(options.tool_choice)
    if options.json_schema is not None:
        # Structured outputs (anthropic SDK 2.12 ``output_config.format``): the reply is one text block of JSON.
        body["output_config"] = {"format": {"type": "json_schema", "schema": options.json_schema.schema}}
    if options.user:
        body["metadata"] = {"user_id": options.user}
    if call.stream:
        body["stream"] = True
    return body


def _thinking_params(call: UpstreamCall, max_tokens: int) -> tuple[dict[str, Any], str]:
    """``thinking`` (anthropic SDK 2.15 ``ThinkingConfigParam``), and a note when it was held back. No block is
    off (SPEC §5); a floor or ON enables it. A budget (``enabled``: >= 1024, < max_tokens) comes on top of the
    answer's max_tokens; ``adaptive`` takes its depth from ``output_config.effort``."""
    setting = call.thinking
    if setting is None or (setting.mode is ThinkingMode.OFF and setting.value is None):
        return {}, ""
    blocker = _thinking_blocker(call)
    if blocker:
        return {}, blocker
    if setting.param is ThinkingParam.ADAPTIVE:
        params: dict[str, Any] = {"thinking": {"type": "adaptive"}}
        if setting.value is not None:
            params["output_config"] = {"effort": setting.value}
        return params, ""
    budget = setting.value if isinstance(setting.value, int) else 0
    return {"thinking": {"type": "enabled", "budget_tokens": budget}, "max_tokens": max_tokens + budget}, ""


def _thinking_blocker(call: UpstreamCall) -> str:
    """Why thinking cannot be enabled on this call, else "". The API refuses it with a forced tool choice, and
    on a turn that answers tool calls unless that assistant turn starts with its thinking blocks, which bkvy
    does not keep."""
    choice = call.options.tool_choice
    if choice is not None and choice.mode in ("required", "function"):
        return "held back: a forced tool choice"
    last_assistant = next((m for m in reversed(call.messages) if m.role == "assistant"), None)
    if last_assistant is not None and last_assistant.tool_calls:
        return "held back: a tool-use turn without its thinking blocks"
    return ""


def _clean_tool_id(call_id: str) -> str:
    return _NOT_IN_TOOL_ID.sub("_", call_id)


def _usage(raw: dict[str, Any]) -> Usage:
    """``output_tokens`` is the billed total, thinking included; ``output_tokens_details.thinking_tokens`` is the
    thinking part of it (anthropic SDK 2.12 ``OutputTokensDetails``)."""
    details = raw.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return Usage(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0), int(thinking or 0))


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "function":
        return {"type": "tool", "name": choice.name}
    return {"type": {"required": "any"}.get(choice.mode, choice.mode)}  # auto, any, none


def _alternating_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    """Anthropic requires user/assistant alternation: merge runs of one role into one message."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "user" if message.role == "tool" else message.role  # tool results travel in a user turn
        blocks = _blocks(message)
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": blocks})
    return merged


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text()}]
    if isinstance(message.content, str):
        blocks = [{"type": "text", "text": message.content}] if message.content or not message.tool_calls else []
    else:
        blocks = [_block(part) for part in message.content]
    return blocks + [
        {"type": "tool_use", "id": c.call_id, "name": c.name, "input": tool_arguments("anthropic", c.arguments)}
        for c in message.tool_calls
    ]


def _block(part: dict[str, Any]) -> dict[str, Any]:
    part_type = str(part.get("type"))
    if part_type == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if part_type != "image_url":
        raise unsupported_part("anthropic", part_type)
    url = image_url_of(part)
    inline = parse_data_url(url)
    if inline is not None:
        media_type, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


class AnthropicStreamDecoder:
    """SSE: message_start (input tokens), content_block_delta (text), message_delta (stop, output)."""

    def __init__(self) -> None:
        self._events = SseBuffer()
        self._input_tokens = 0
        self._tool_index_by_block: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._pending_error: UpstreamError | None = None

    def feed(self, chunk: bytes) -> list[StreamDelta]:
        if self._pending_error is not None:
            raise self._pending_error
        deltas: list[StreamDelta] = []
        for data in self._events.feed(chunk):
            try:
                delta = self._event_delta(decode_event_json(data))
            except UpstreamError as error:
                if not deltas:
                    raise
                # Text that arrived in the same read as the error event still reaches the client;
                # the error is raised on the next feed (or the stream ends without a finish reason).
                self._pending_error = error
                return deltas
            if delta is not None:
                deltas.append(delta)
        return deltas

    def _event_delta(self, event: dict[str, Any]) -> StreamDelta | None:
        event_type = event.get("type")
        if event_type == "error":
            raise error_from_event(event)
        if event_type == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self._input_tokens = int(usage.get("input_tokens") or 0)
        elif event_type == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tool_index_by_block.setdefault(
                    int(event.get("index") or 0), len(self._tool_index_by_block)
                )
                return StreamDelta(tool_calls=(ToolCallDelta(index, str(block.get("id")), str(block.get("name"))),))
        elif event_type == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return StreamDelta(content=str(delta["text"]))
            tool_index = self._tool_index_by_block.get(int(event.get("index") or 0))
            if delta.get("type") == "input_json_delta" and tool_index is not None and delta.get("partial_json"):
                return StreamDelta(tool_calls=(ToolCallDelta(tool_index, arguments=str(delta["partial_json"])),))
        elif event_type == "message_delta":
            return self._final_delta(event)
        return None  # ping, text block starts, content_block_stop, message_stop, thinking deltas

    def _final_delta(self, event: dict[str, Any]) -> StreamDelta:
        usage = event.get("usage") or {}
        input_tokens = usage.get("input_tokens")
        if input_tokens is not None:
            self._input_tokens = int(input_tokens)
        stop_reason = (event.get("delta") or {}).get("stop_reason") or "end_turn"
        return StreamDelta(
            finish_reason=_FINISH.get(stop_reason, FinishReason.STOP),
            usage=_usage({**usage, "input_tokens": self._input_tokens}),
        )
