"""Google Gemini ``generateContent`` (v1beta). The key travels only in ``x-goog-api-key``."""

from __future__ import annotations

import json
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
    new_call_id,
    parse_data_url,
    tool_arguments,
    unsupported_part,
    with_unique_tool_ids,
)
from bkvy.core.upstream.adapters.base import StreamDelta, ToolCallDelta
from bkvy.core.upstream.thinking import thinking_record
from bkvy.models.thinking import ThinkingParam, ThinkingSetting
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

_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
)
_FINISH = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "MALFORMED_FUNCTION_CALL": FinishReason.TOOL_CALLS,
    **{reason: FinishReason.CONTENT_FILTER for reason in _FILTERED},
}


class GeminiAdapter:
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        method = ":streamGenerateContent?alt=sse" if call.stream else ":generateContent"
        path = call.endpoint or f"/v1beta/models/{_model_id(call.model)}{method}"
        body = _body(call)
        thinking = _thinking_config(call.thinking)
        sent = {"generationConfig": {"thinkingConfig": thinking}} if thinking else {}
        if thinking:
            body.setdefault("generationConfig", {})["thinkingConfig"] = thinking
        record = thinking_record(call.thinking, sent)
        return UpstreamRequest("POST", join_url(call.base_url, path), _headers(call), body, record)

    def parse_reply(self, reply: UpstreamReply) -> Completion:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        try:
            delta = _response_delta(payload)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise unparseable_reply(reply.status) from None
        if delta is None:  # neither candidates nor a block reason
            raise unparseable_reply(reply.status)
        usage = _usage(payload.get("usageMetadata")) or Usage()
        tool_calls = tuple(ToolCall(c.call_id or new_call_id(), c.name or "", c.arguments) for c in delta.tool_calls)
        return Completion(
            content=delta.content,
            usage=usage,
            finish_reason=delta.finish_reason or FinishReason.STOP,
            model_reported=payload.get("modelVersion"),
            rate_limit_hint=rate_limit_hint(reply.headers),
            tool_calls=tool_calls,
        )

    def build_probe(self, call: UpstreamCall) -> UpstreamRequest:
        """Model info (``GET models/{model}``): proves key and model without spending tokens."""
        url = join_url(call.base_url, f"/v1beta/models/{_model_id(call.model)}")
        return UpstreamRequest("GET", url, _headers(call), None)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()


def _model_id(model: str) -> str:
    return model.removeprefix("models/")


def _headers(call: UpstreamCall) -> dict[str, str]:
    return {**JSON_CONTENT_TYPE, "x-goog-api-key": call.api_key}


def _body(call: UpstreamCall) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(call.messages)}
    system = "\n\n".join(m.text() for m in call.messages if m.role == "system")
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config = _generation_config(call)
    if config:
        body["generationConfig"] = config
    if call.options.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        **({"parameters": t.parameters} if t.parameters else {}),
                    }
                    for t in call.options.tools
                ]
            }
        ]
        if call.options.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _tool_choice(call.options.tool_choice)}
    return body


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "function":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"required": "ANY", "none": "NONE"}.get(choice.mode, "AUTO")}


def _generation_config(call: UpstreamCall) -> dict[str, Any]:
    options = call.options
    candidates = {
        "maxOutputTokens": options.max_tokens,
        "temperature": options.temperature,
        "topP": options.top_p,
        "stopSequences": list(options.stop) or None,
        "responseMimeType": "application/json" if options.json_mode or options.json_schema else None,
        # responseJsonSchema (google-genai 3.4 ``response_json_schema``) takes JSON Schema as OpenAI clients
        # send it ($defs, $ref, additionalProperties); responseSchema takes an OpenAPI subset that rejects those.
        "responseJsonSchema": options.json_schema.schema if options.json_schema else None,
    }
    return {name: value for name, value in candidates.items() if value is not None}


def _thinking_config(setting: ThinkingSetting | None) -> dict[str, Any]:
    """google-genai 3.4 ``ThinkingConfig``: ``thinkingBudget`` (0 off, -1 dynamic, a floor per model: SPEC §5) or,
    on Gemini 3, ``thinkingLevel`` by its ``ThinkingLevel`` name, as the SDK sends it. Never both (a 400)."""
    if setting is None or setting.value is None:
        return {}
    if setting.param is ThinkingParam.THINKING_LEVEL:
        return {"thinkingLevel": str(setting.value).upper()}
    return {"thinkingBudget": setting.value}


def _contents(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    """Gemini pairs a functionResponse with its call by name and position, never by id (its request side
    rejects ``id``): each result takes its call's name, and a run of results is one turn, as many parts as the
    model turn had calls."""
    messages = with_unique_tool_ids(messages)
    names = {c.call_id: c.name for m in messages for c in m.tool_calls}
    contents: list[dict[str, Any]] = []
    previous_role = None
    for message in messages:
        if message.role == "system":
            continue
        if message.role != "tool":
            contents.append(_content(message))
        else:
            name = names.get(message.tool_call_id or "", message.tool_call_id or "")
            part = {"functionResponse": {"name": name, "response": {"content": message.text()}}}
            if previous_role == "tool":
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        previous_role = message.role
    return contents


def _content(message: ChatMessage) -> dict[str, Any]:
    role = "model" if message.role == "assistant" else "user"
    parts: list[dict[str, Any]]
    if isinstance(message.content, str):
        parts = [{"text": message.content}] if message.content or not message.tool_calls else []
    else:
        parts = [_part(p) for p in message.content]
    parts += [
        {"functionCall": {"name": c.name, "args": tool_arguments("gemini", c.arguments)}} for c in message.tool_calls
    ]
    return {"role": role, "parts": parts}


def _part(part: dict[str, Any]) -> dict[str, Any]:
    part_type = str(part.get("type"))
    if part_type == "text":
        return {"text": str(part.get("text", ""))}
    inline = parse_data_url(image_url_of(part)) if part_type == "image_url" else None
    if inline is None:  # remote image URLs would need a Files API upload first
        raise unsupported_part("gemini", part_type)
    media_type, data = inline
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _response_delta(payload: dict[str, Any]) -> StreamDelta | None:
    """One GenerateContentResponse (whole reply or stream chunk) as a delta; None when empty."""
    if "error" in payload:
        raise error_from_event(payload)
    usage = _usage(payload.get("usageMetadata"))
    candidates = payload.get("candidates") or []
    if not candidates:
        if (payload.get("promptFeedback") or {}).get("blockReason"):
            return StreamDelta(finish_reason=FinishReason.CONTENT_FILTER, usage=usage)
        return None
    candidate = candidates[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(str(p.get("text", "")) for p in parts if not p.get("thought"))
    calls = tuple(
        ToolCallDelta(
            index,
            p["functionCall"].get("id"),
            str(p["functionCall"].get("name") or ""),
            json.dumps(p["functionCall"].get("args") or {}),
        )
        for index, p in enumerate(q for q in parts if isinstance(q.get("functionCall"), dict))
    )
    raw_finish = candidate.get("finishReason")
    finish = _FINISH.get(raw_finish, FinishReason.STOP) if raw_finish else None
    if calls and finish is FinishReason.STOP:  # Gemini says STOP after a function call; OpenAI says tool_calls
        finish = FinishReason.TOOL_CALLS
    return StreamDelta(content=text, finish_reason=finish, usage=usage if finish else None, tool_calls=calls)


def _usage(raw: Any) -> Usage | None:
    """Billed tokens: thoughts are output Gemini leaves out of candidatesTokenCount, tool-use prompt tokens are
    input it leaves out of promptTokenCount (totalTokenCount is the sum of all four)."""
    if not isinstance(raw, dict):
        return None
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0),
        int(raw.get("candidatesTokenCount") or 0) + thoughts,
        thoughts,
    )


class GeminiStreamDecoder:
    """``alt=sse``: each event is a whole GenerateContentResponse; usage is taken at the finish."""

    def __init__(self) -> None:
        self._events = SseBuffer()
        self._tool_calls_seen = 0  # Gemini sends whole calls, one chunk each: number them across chunks

    def feed(self, chunk: bytes) -> list[StreamDelta]:
        deltas: list[StreamDelta] = []
        for data in self._events.feed(chunk):
            delta = _response_delta(decode_event_json(data))
            if delta is None or not (delta.content or delta.finish_reason or delta.tool_calls):
                continue
            if delta.tool_calls:
                delta = self._numbered(delta)
            elif delta.finish_reason is FinishReason.STOP and self._tool_calls_seen:
                delta = StreamDelta(delta.content, FinishReason.TOOL_CALLS, delta.usage)
            deltas.append(delta)
        return deltas

    def _numbered(self, delta: StreamDelta) -> StreamDelta:
        calls = []
        for call in delta.tool_calls:
            index = self._tool_calls_seen
            self._tool_calls_seen += 1
            calls.append(ToolCallDelta(index, call.call_id or new_call_id(), call.name, call.arguments))
        return StreamDelta(delta.content, delta.finish_reason, delta.usage, tuple(calls))
