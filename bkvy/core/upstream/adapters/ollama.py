"""Ollama native chat API (``/api/chat``); streams NDJSON. No key: Ollama runs on a trusted host."""

from __future__ import annotations

from typing import Any

from bkvy.core.upstream.adapters._errors import (
    error_from_event,
    json_object_or_raise,
    unparseable_reply,
    upstream_error,
)
from bkvy.core.upstream.adapters._streams import LineBuffer, decode_event_json
from bkvy.core.upstream.adapters._wire import (
    JSON_CONTENT_TYPE,
    image_url_of,
    join_url,
    parse_data_url,
    unsupported_part,
)
from bkvy.core.upstream.adapters.base import StreamDelta
from bkvy.core.upstream.thinking import thinking_record
from bkvy.models.types import (
    ChatMessage,
    Completion,
    FinishReason,
    UpstreamCall,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OllamaAdapter:
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        url = join_url(call.base_url, call.endpoint or "/api/chat")
        body = _body(call)
        record = thinking_record(call.thinking, {"think": body["think"]} if "think" in body else {})
        return UpstreamRequest("POST", url, dict(JSON_CONTENT_TYPE), body, record)

    def parse_reply(self, reply: UpstreamReply) -> Completion:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        try:
            content = str(payload["message"].get("content") or "")
            delta = _final_delta(payload)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise unparseable_reply(reply.status) from None
        return Completion(
            content=content,
            usage=delta.usage or Usage(),
            finish_reason=delta.finish_reason or FinishReason.STOP,
            model_reported=payload.get("model"),
        )

    def build_probe(self, call: UpstreamCall) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(call.base_url, "/api/version"), {}, None)

    def stream_decoder(self) -> OllamaStreamDecoder:
        return OllamaStreamDecoder()


def _body(call: UpstreamCall) -> dict[str, Any]:
    options = call.options
    if options.tools or any(m.tool_calls or m.role == "tool" for m in call.messages):
        # Not translated yet: failover moves such a request to a provider that takes tools.
        raise unsupported_part("ollama", "tools")
    candidates = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "stop": list(options.stop) or None,
    }
    body: dict[str, Any] = {
        "model": call.model,
        "messages": [_message(m) for m in call.messages],
        "stream": call.stream,
    }
    sampling = {name: value for name, value in candidates.items() if value is not None}
    if sampling:
        body["options"] = sampling
    if options.json_schema is not None:
        body["format"] = options.json_schema.schema  # Ollama's structured outputs: a JSON Schema as `format`
    elif options.json_mode:
        body["format"] = "json"
    if call.thinking is not None and call.thinking.value is not None:
        body["think"] = call.thinking.value  # false, true, or a level ("low" for gpt-oss, which cannot be off)
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    images: list[str] = []
    for part in message.content:
        if part.get("type") == "text":
            continue
        inline = parse_data_url(image_url_of(part)) if part.get("type") == "image_url" else None
        if inline is None:
            raise unsupported_part("ollama", str(part.get("type")))
        images.append(inline[1])
    result: dict[str, Any] = {"role": message.role, "content": message.text()}
    if images:
        result["images"] = images
    return result


def _final_delta(payload: dict[str, Any]) -> StreamDelta:
    usage = Usage(int(payload.get("prompt_eval_count") or 0), int(payload.get("eval_count") or 0))
    finish = _FINISH.get(payload.get("done_reason") or "stop", FinishReason.STOP)
    return StreamDelta(finish_reason=finish, usage=usage)


class OllamaStreamDecoder:
    """NDJSON: one object per line, ``done: true`` on the last (with counts and done_reason)."""

    def __init__(self) -> None:
        self._lines = LineBuffer()

    def feed(self, chunk: bytes) -> list[StreamDelta]:
        deltas: list[StreamDelta] = []
        for line in self._lines.feed(chunk):
            if not line.strip():
                continue
            payload = decode_event_json(line)
            if "error" in payload:  # Ollama's errors are {"error": "<text>"}: no code to keep
                raise error_from_event({})
            content = str((payload.get("message") or {}).get("content") or "")
            if payload.get("done"):
                final = _final_delta(payload)
                deltas.append(StreamDelta(content, final.finish_reason, final.usage))
            elif content:
                deltas.append(StreamDelta(content=content))
        return deltas
