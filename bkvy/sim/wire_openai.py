"""OpenAI Chat Completions wire format (also serves openai_compatible servers: vLLM, Groq, llama.cpp)."""

from __future__ import annotations

import math

from aiohttp import web

from .knobs import RateView
from .prefix_cache import message_text, prefix_chain
from .replies import ChatCall, SimReply, last_user_text, text_length
from .structured import ToolPick, pick_tool
from .thinking import ThinkingAsk
from .wire import DOWN, NOT_FOUND, Failure, ModelNames, Rejection, bearer_key, int_or_none, sse

# kind -> (status, error.type, error.code), as the real API sends them.
_ERRORS = {
    "server": (500, "server_error", None),
    "timeout": (504, "server_error", None),
    "auth": (401, "invalid_request_error", "invalid_api_key"),
    "bad_request": (400, "invalid_request_error", None),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    DOWN: (503, "server_error", "service_unavailable"),
    NOT_FOUND: (404, "invalid_request_error", "model_not_found"),
    "stream_failed": (500, "server_error", None),
}
_OFF_EFFORTS = frozenset({"none", "minimal"})
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


class OpenAIWire:
    requires_key = True
    stream_content_type = "text/event-stream"
    chat_routes = ("/v1/chat/completions",)

    def __init__(self, name: str = "openai") -> None:
        self.name = name

    def parse_call(self, request: web.Request, body: dict) -> ChatCall:
        messages = body.get("messages")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
            raise Rejection("bad_request", "'model' and a non-empty 'messages' array are required.")
        max_tokens = int_or_none(body.get("max_completion_tokens")) or int_or_none(body.get("max_tokens"))
        stream_options = body.get("stream_options") or {}
        thinking = self._thinking_ask(body)
        return ChatCall(
            model=body["model"],
            api_key=bearer_key(request),
            is_stream=body.get("stream") is True,
            max_tokens=max_tokens,
            prompt_chars=sum(text_length(m.get("content")) for m in messages if isinstance(m, dict)),
            is_thinking_off=thinking is not None and (thinking.is_off or thinking.level in _OFF_EFFORTS),
            include_usage=bool(stream_options.get("include_usage")),
            tool_to_call=_tool_to_call(body.get("tools"), messages),
            json_schema=_json_schema(body.get("response_format")),
            thinking=thinking,
            prefix=prefix_chain(
                [(str(m.get("role")), message_text(m.get("content"))) for m in messages if isinstance(m, dict)]
            ),
        )

    def _thinking_ask(self, body: dict) -> ThinkingAsk | None:
        """``reasoning_effort`` (openai SDK 3.57 ``ReasoningEffort``), or on a compatible server (vLLM, SGLang)
        ``chat_template_kwargs.enable_thinking``, which api.openai.com refuses as an unknown argument."""
        if "chat_template_kwargs" in body and self.name == "openai":
            raise Rejection("bad_request", "Unrecognized request argument supplied: chat_template_kwargs")
        effort = body.get("reasoning_effort")
        if effort is not None:
            if effort not in _EFFORTS:
                supported = ", ".join(repr(value) for value in _EFFORTS)
                raise Rejection("bad_request", f"Invalid value: {effort!r}. Supported values are: {supported}.")
            return ThinkingAsk("reasoning_effort", effort, level=effort, is_off=effort == "none")
        switch = _template_switch(body)
        if switch is None:
            return None
        shown = "true" if switch else "false"
        return ThinkingAsk("chat_template_kwargs.enable_thinking", shown, is_off=not switch, is_template_hint=True)

    def error_reply(self, failure: Failure) -> tuple[int, dict]:
        status, error_type, code = _ERRORS[failure.kind]
        return status, {"error": {"message": failure.message, "type": error_type, "param": None, "code": code}}

    def rate_limit_headers(self, view: RateView) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{view.budget}": str(view.limit),
            f"x-ratelimit-remaining-{view.budget}": str(view.remaining),
            f"x-ratelimit-reset-{view.budget}": f"{math.ceil(view.reset_seconds)}s",
        }

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": f"req_{request_id}"}

    def reply_body(self, reply: SimReply) -> dict:
        return {
            "id": f"chatcmpl-{reply.response_id}",
            "object": "chat.completion",
            "created": reply.created_seconds,
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": _message(reply),
                    "logprobs": None,
                    "finish_reason": _finish_reason(reply),
                }
            ],
            "usage": _usage(reply),
            "system_fingerprint": "fp_sim",
        }

    def stream_head(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        head = [self._chunk(reply, call, {"role": "assistant", "content": ""}, None)]
        if reply.tool_call is not None:  # id and name first, then the arguments, as the real API streams them
            head.append(
                self._chunk(
                    reply,
                    call,
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": reply.tool_call_id,
                                "type": "function",
                                "function": {"name": reply.tool_call, "arguments": ""},
                            }
                        ]
                    },
                    None,
                )
            )
            arguments = {"tool_calls": [{"index": 0, "function": {"arguments": reply.tool_arguments}}]}
            head.append(self._chunk(reply, call, arguments, None))
        return head

    def stream_chunk(self, reply: SimReply, call: ChatCall, text: str) -> bytes:
        return self._chunk(reply, call, {"content": text}, None)

    def stream_tail(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        frames = [self._chunk(reply, call, {}, _finish_reason(reply))]
        if call.include_usage:
            usage_chunk = self._envelope(reply) | {"choices": [], "usage": _usage(reply)}
            frames.append(sse(usage_chunk))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def stream_cut(self, reply: SimReply) -> bytes | None:
        return None  # OpenAI just drops the connection

    def info_routes(self, model_names: ModelNames) -> list[web.RouteDef]:
        async def list_models(request: web.Request) -> web.Response:
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "sim"} for name in model_names.model_names()
            ]
            return web.json_response({"object": "list", "data": data})

        return [web.get("/v1/models", list_models)]

    def _envelope(self, reply: SimReply) -> dict:
        return {
            "id": f"chatcmpl-{reply.response_id}",
            "object": "chat.completion.chunk",
            "created": reply.created_seconds,
            "model": reply.model,
            "system_fingerprint": "fp_sim",
        }

    def _chunk(self, reply: SimReply, call: ChatCall, delta: dict, finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = self._envelope(reply) | {"choices": [choice]}
        if call.include_usage:
            chunk["usage"] = None
        return sse(chunk)


def _template_switch(body: dict) -> bool | None:
    kwargs = body.get("chat_template_kwargs")
    switch = kwargs.get("enable_thinking") if isinstance(kwargs, dict) else None
    return switch if isinstance(switch, bool) else None


def _finish_reason(reply: SimReply) -> str:
    if reply.tool_call is not None:
        return "tool_calls"
    return "length" if reply.is_truncated else "stop"


def _message(reply: SimReply) -> dict:
    if reply.tool_call is None:
        return {"role": "assistant", "content": reply.text, "refusal": None}
    function = {"name": reply.tool_call, "arguments": reply.tool_arguments}
    call = {"id": reply.tool_call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}


def _tool_to_call(tools: object, messages: list) -> ToolPick | None:
    """Deterministic tool use: offered tools and a user turn last -> call the tool the user names, else the
    first; else answer in text."""
    if not isinstance(tools, list) or not tools or not isinstance(messages[-1], dict):
        return None
    if messages[-1].get("role") != "user":
        return None
    functions = [t.get("function") for t in tools if isinstance(t, dict)]
    schemas = {str(f["name"]): f.get("parameters") for f in functions if isinstance(f, dict) and f.get("name")}
    return pick_tool(schemas, last_user_text(messages))


def _json_schema(response_format: object) -> dict | None:
    """``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``: the schema; the real API answers
    400 without a name."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise Rejection("bad_request", "Missing required parameter: 'response_format.json_schema.name'.")
    schema = spec.get("schema")
    return schema if isinstance(schema, dict) else {}


def _usage(reply: SimReply) -> dict:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens + reply.thought_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens + reply.thought_tokens,
        "completion_tokens_details": {"reasoning_tokens": reply.thought_tokens},
    }
