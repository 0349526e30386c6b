"""OpenAI Chat Completions, also spoken by vLLM, llama.cpp, Groq and other compatible servers."""

from __future__ import annotations

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
    join_url,
    new_call_id,
    probe_call,
    with_unique_tool_ids,
)
from bkvy.core.upstream.adapters.base import StreamDelta, ToolCallDelta
from bkvy.core.upstream.thinking import thinking_record
from bkvy.models.thinking import ThinkingParam, ThinkingSetting
from bkvy.models.types import (
    ChatMessage,
    Completion,
    FinishReason,
    GenerationOptions,
    ToolCall,
    ToolChoice,
    UpstreamCall,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}


def is_reasoning_model(model: str) -> bool:
    return model.lower().startswith(_REASONING_PREFIXES)


class OpenAIAdapter:
    """``is_native``: api.openai.com, where reasoning models take different parameters."""

    def __init__(self, *, is_native: bool) -> None:
        self._is_native = is_native

    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        url = join_url(call.base_url, call.endpoint or "/v1/chat/completions")
        headers = dict(JSON_CONTENT_TYPE)
        if call.api_key:  # local compatible servers often run without a key
            headers["authorization"] = f"Bearer {call.api_key}"
        body = self._body(call)
        thinking = _thinking_params(call.thinking)
        body.update(thinking)
        return UpstreamRequest("POST", url, headers, body, thinking_record(call.thinking, thinking))

    def parse_reply(self, reply: UpstreamReply) -> Completion:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        try:
            choice = payload["choices"][0]
            content = choice["message"].get("content") or ""
            tool_calls = tuple(_tool_call(raw) for raw in choice["message"].get("tool_calls") or ())
            usage = _usage(payload.get("usage"))
            finish = _FINISH.get(choice.get("finish_reason") or "stop", FinishReason.STOP)
        except (KeyError, IndexError, TypeError, AttributeError):
            raise unparseable_reply(reply.status) from None
        return Completion(
            content=content,
            usage=usage or Usage(),
            finish_reason=finish,
            model_reported=payload.get("model"),
            rate_limit_hint=rate_limit_hint(reply.headers),
            tool_calls=tool_calls,
        )

    def build_probe(self, call: UpstreamCall) -> UpstreamRequest:
        return self.build_request(probe_call(call))

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def _body(self, call: UpstreamCall) -> dict[str, Any]:
        options = call.options
        messages = with_unique_tool_ids(call.messages)
        body: dict[str, Any] = {"model": call.model, "messages": [_message(m) for m in messages]}
        if self._is_native and is_reasoning_model(call.model):
            body.update(_reasoning_params(call))
        else:
            body.update(_sampling_params(call))
        if options.json_mode or options.json_schema is not None:
            body["response_format"] = _response_format(options)
        if options.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                    },
                }
                for t in options.tools
            ]
            if options.tool_choice is not None:
                body["tool_choice"] = _tool_choice(options.tool_choice)
        if options.user:
            body["user"] = options.user
        if call.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body


def _response_format(options: GenerationOptions) -> dict[str, Any]:
    """``json_schema`` as the client sent it (name, schema, strict, description); else ``json_object``."""
    schema = options.json_schema
    if schema is None:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": schema.name, "schema": schema.schema}
    if schema.description is not None:
        spec["description"] = schema.description
    if schema.strict is not None:
        spec["strict"] = schema.strict
    return {"type": "json_schema", "json_schema": spec}


def _reasoning_params(call: UpstreamCall) -> dict[str, Any]:
    # Reasoning models reject temperature/top_p/stop and count hidden reasoning in max_completion_tokens.
    params: dict[str, Any] = {}
    if call.options.max_tokens is not None:
        params["max_completion_tokens"] = call.options.max_tokens
    return params


def _thinking_params(setting: ThinkingSetting | None) -> dict[str, Any]:
    """``reasoning_effort`` (openai SDK ``ReasoningEffort``; the lowest value each model takes is in its config),
    or vLLM/SGLang's ``chat_template_kwargs.enable_thinking``, which the model's chat template reads."""
    if setting is None or setting.value is None:
        return {}
    if setting.param is ThinkingParam.ENABLE_THINKING:
        return {"chat_template_kwargs": {"enable_thinking": setting.value}}
    return {"reasoning_effort": setting.value}


def _sampling_params(call: UpstreamCall) -> dict[str, Any]:
    options = call.options
    params: dict[str, Any] = {}
    if options.max_tokens is not None:
        params["max_tokens"] = options.max_tokens
    if options.temperature is not None:
        params["temperature"] = options.temperature
    if options.top_p is not None:
        params["top_p"] = options.top_p
    if options.stop:
        params["stop"] = list(options.stop)
    return params


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _message(message: ChatMessage) -> dict[str, Any]:
    content = message.content if isinstance(message.content, str) else [dict(p) for p in message.content]
    result: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        result["content"] = content or None
        result["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        result["tool_call_id"] = message.tool_call_id
    return result


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw["function"]
    # Some compatible servers (older llama.cpp, Ollama's /v1) send no id; the round trip needs one.
    call_id = str(raw.get("id") or new_call_id())
    return ToolCall(call_id, str(function["name"]), str(function.get("arguments") or "{}"))


def _usage(raw: Any) -> Usage | None:
    """``completion_tokens`` already includes ``completion_tokens_details.reasoning_tokens`` (both billed)."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0), int(reasoning or 0))


class OpenAIStreamDecoder:
    """``data: {chunk}`` events ending ``data: [DONE]``; usage arrives in a last chunk with no choices."""

    def __init__(self) -> None:
        self._events = SseBuffer()
        self._call_indexes: set[int] = set()  # tool calls begun: their first fragment carried (or got) an id

    def feed(self, chunk: bytes) -> list[StreamDelta]:
        deltas: list[StreamDelta] = []
        for data in self._events.feed(chunk):
            if data.strip() == "[DONE]":
                continue
            delta = _chunk_delta(decode_event_json(data))
            if delta is not None:
                deltas.append(self._with_call_ids(delta) if delta.tool_calls else delta)
        return deltas

    def _with_call_ids(self, delta: StreamDelta) -> StreamDelta:
        """A call's first fragment without an id (some compatible servers) gets one, as ``parse_reply`` does."""
        calls = []
        for call in delta.tool_calls:
            if call.index not in self._call_indexes:
                self._call_indexes.add(call.index)
                if not call.call_id:
                    call = ToolCallDelta(call.index, new_call_id(), call.name, call.arguments)
            calls.append(call)
        return StreamDelta(delta.content, delta.finish_reason, delta.usage, tuple(calls))


def _chunk_delta(payload: dict[str, Any]) -> StreamDelta | None:
    if "error" in payload:
        raise error_from_event(payload)
    choices = payload.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    content = delta.get("content") or ""
    tool_calls = tuple(_tool_call_delta(raw) for raw in delta.get("tool_calls") or () if isinstance(raw, dict))
    raw_finish = choice.get("finish_reason")
    finish = _FINISH.get(raw_finish, FinishReason.STOP) if raw_finish else None
    usage = _usage(payload.get("usage"))
    if not content and not tool_calls and finish is None and usage is None:
        return None
    return StreamDelta(content=content, finish_reason=finish, usage=usage, tool_calls=tool_calls)


def _tool_call_delta(raw: dict[str, Any]) -> ToolCallDelta:
    function = raw.get("function") or {}
    return ToolCallDelta(
        int(raw.get("index") or 0), raw.get("id"), function.get("name"), str(function.get("arguments") or "")
    )
