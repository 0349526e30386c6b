"""Anthropic Messages wire format: required headers and max_tokens, SSE events, `event: error` on a cut."""

from __future__ import annotations

import datetime as dt
import json
import re

from aiohttp import web

from .knobs import RateView
from .replies import ChatCall, SimReply, last_user_text, text_length
from .structured import ToolPick, pick_tool
from .thinking import ThinkingAsk
from .wire import DOWN, NOT_FOUND, Failure, ModelNames, Rejection, bearer_key, int_or_none, sse

# kind -> (status, error.type). `server` is 529 overloaded, the failure Anthropic actually sends under load.
_ERRORS = {
    "server": (529, "overloaded_error"),
    "timeout": (504, "timeout_error"),
    "auth": (401, "authentication_error"),
    "bad_request": (400, "invalid_request_error"),
    "rate_limited": (429, "rate_limit_error"),
    DOWN: (503, "api_error"),
    NOT_FOUND: (404, "not_found_error"),
    "stream_failed": (500, "api_error"),
}


class AnthropicWire:
    name = "anthropic"
    requires_key = True
    stream_content_type = "text/event-stream"
    chat_routes = ("/v1/messages",)

    def parse_call(self, request: web.Request, body: dict) -> ChatCall:
        if not request.headers.get("anthropic-version"):
            raise Rejection("bad_request", "anthropic-version: header is required")
        max_tokens = int_or_none(body.get("max_tokens"))
        if max_tokens is None:
            raise Rejection("bad_request", "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
            raise Rejection("bad_request", "model and messages: Field required")
        _check_tool_blocks(messages)
        thinking_ask = _thinking_ask(body, max_tokens)
        return ChatCall(
            model=body["model"],
            # SDK 2.x sends the key as `Authorization: Bearer`; older clients and curl use `x-api-key`.
            api_key=request.headers.get("x-api-key") or bearer_key(request),
            is_stream=body.get("stream") is True,
            max_tokens=max_tokens,
            prompt_chars=text_length(body.get("system"))
            + sum(text_length(m.get("content")) for m in messages if isinstance(m, dict)),
            # Claude thinks only when asked: no `thinking` block (or type disabled) means off.
            is_thinking_off=thinking_ask is None or thinking_ask.is_off,
            tool_to_call=_tool_to_call(body.get("tools"), messages),
            json_schema=_json_schema(body.get("output_config")),
            thinking=thinking_ask,
        )

    def error_reply(self, failure: Failure) -> tuple[int, dict]:
        status, error_type = _ERRORS[failure.kind]
        return status, _error_body(error_type, failure.message)

    def rate_limit_headers(self, view: RateView) -> dict[str, str]:
        reset_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=view.reset_seconds)
        # The sim bills one token budget (input + output): Anthropic's "tokens" family, not its input/output ones.
        return {
            f"anthropic-ratelimit-{view.budget}-limit": str(view.limit),
            f"anthropic-ratelimit-{view.budget}-remaining": str(view.remaining),
            f"anthropic-ratelimit-{view.budget}-reset": reset_at.replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
        }

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": f"req_{request_id}"}

    def reply_body(self, reply: SimReply) -> dict:
        if reply.tool_call is not None:
            block = {"type": "tool_use", "id": f"toolu_{reply.response_id}", "name": reply.tool_call}
            block["input"] = json.loads(reply.tool_arguments)
            return self._message(reply, [block], "tool_use", None)
        return self._message(reply, [{"type": "text", "text": reply.text}], _stop_reason(reply), None)

    def stream_head(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        if reply.tool_call is not None:
            block = {"type": "tool_use", "id": f"toolu_{reply.response_id}", "name": reply.tool_call, "input": {}}
            json_delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": reply.tool_arguments},
            }
            return [
                sse({"type": "message_start", "message": self._message(reply, [], None, 1)}, "message_start"),
                sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
                sse(json_delta, "content_block_delta"),
            ]
        return [
            sse({"type": "message_start", "message": self._message(reply, [], None, 1)}, "message_start"),
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]

    def stream_chunk(self, reply: SimReply, call: ChatCall, text: str) -> bytes:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return sse(delta, "content_block_delta")

    def stream_tail(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
            "usage": _output_usage(reply),
        }
        return [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(message_delta, "message_delta"),
            sse({"type": "message_stop"}, "message_stop"),
        ]

    def stream_cut(self, reply: SimReply) -> bytes | None:
        return sse(_error_body("overloaded_error", "Overloaded"), "error")

    def info_routes(self, model_names: ModelNames) -> list[web.RouteDef]:
        async def list_models(request: web.Request) -> web.Response:
            data = [
                {"type": "model", "id": name, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}
                for name in model_names.model_names()
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return web.json_response({"data": data, "has_more": False, "first_id": first, "last_id": last})

        return [web.get("/v1/models", list_models)]

    def _message(self, reply: SimReply, content: list, stop_reason: str | None, output_tokens: int | None) -> dict:
        """A Message; ``output_tokens`` None: the reply's whole usage (message_start carries a placeholder)."""
        return {
            "id": f"msg_{reply.response_id}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.prompt_tokens} | _output_usage(reply, output_tokens),
        }


def _stop_reason(reply: SimReply) -> str:
    if reply.tool_call is not None:
        return "tool_use"
    return "max_tokens" if reply.is_truncated else "end_turn"


def _output_tokens(reply: SimReply) -> int:
    return reply.completion_tokens + reply.thought_tokens  # thinking is billed as output


def _output_usage(reply: SimReply, output_tokens: int | None = None) -> dict:
    """``output_tokens`` (thinking included) and, when it thought, ``output_tokens_details.thinking_tokens``."""
    usage: dict = {"output_tokens": _output_tokens(reply) if output_tokens is None else output_tokens}
    if reply.thought_tokens and output_tokens is None:
        usage["output_tokens_details"] = {"thinking_tokens": reply.thought_tokens}
    return usage


def _tool_to_call(tools: object, messages: list) -> ToolPick | None:
    """Offered tools and a user turn last that is not a tool result -> call the tool the user names, else the
    first; else text."""
    if not isinstance(tools, list):
        return None
    schemas = {str(t["name"]): t.get("input_schema") for t in tools if isinstance(t, dict) and t.get("name")}
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if not schemas or last.get("role") != "user" or _blocks(last, "tool_result"):
        return None
    return pick_tool(schemas, last_user_text(messages))


_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")  # anthropic 2.15 ThinkingConfigParam
_EFFORTS = ("low", "medium", "high", "xhigh", "max")  # OutputConfigParam.effort
_MIN_BUDGET = 1024  # ThinkingConfigEnabledParam.budget_tokens: ">=1024 and less than max_tokens"


def _blocks(message: object, block_type: str) -> list[dict]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == block_type]


def _check_tool_blocks(messages: list) -> None:
    """What the real API rejects: a repeated or malformed tool_use id, and a tool_result that answers no
    tool_use of the message just before it."""
    seen: set[str] = set()
    previous_ids: set[str] = set()
    for index, message in enumerate(messages):
        ids = [str(block.get("id")) for block in _blocks(message, "tool_use")]
        for tool_id in ids:
            if not _TOOL_ID.match(tool_id):
                raise Rejection(
                    "bad_request",
                    f"messages.{index}.content: tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
                )
            if tool_id in seen:
                raise Rejection("bad_request", f"messages.{index}.content: `tool_use` ids must be unique")
            seen.add(tool_id)
        for block in _blocks(message, "tool_result"):
            if block.get("tool_use_id") not in previous_ids:
                raise Rejection(
                    "bad_request",
                    f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks. Each"
                    " `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                )
        previous_ids = set(ids)


def _json_schema(output_config: object) -> dict | None:
    """Structured outputs: ``output_config.format = {"type": "json_schema", "schema": {...}}``."""
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    schema = output_format.get("schema")
    if not isinstance(schema, dict):
        raise Rejection("bad_request", "output_config.format.schema: Field required")
    return schema


def _thinking_ask(body: dict, max_tokens: int) -> ThinkingAsk | None:
    """``thinking`` and ``output_config.effort`` as anthropic SDK 2.15 types them. What every model refuses is
    refused here; what differs per model (which types it takes) is the knobs' part (sim.thinking)."""
    thinking = body.get("thinking")
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if effort is not None and effort not in _EFFORTS:
        raise Rejection("bad_request", f"output_config.effort: Input should be {' or '.join(map(repr, _EFFORTS))}")
    if thinking is None:
        return None if effort is None else ThinkingAsk("output_config.effort", effort, level=effort)
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in _THINKING_TYPES:
        raise Rejection("bad_request", f"thinking.type: Input tag {kind!r} does not match any of the expected tags")
    if kind in ("disabled", "between_tools"):
        return ThinkingAsk("thinking.type", str(kind), is_off=True)
    _check_thinking_allowed(body)
    if kind == "adaptive":
        shown = "adaptive" if effort is None else f"adaptive output_config.effort={effort}"
        return ThinkingAsk("thinking.type", shown, level=effort)
    budget = int_or_none(thinking.get("budget_tokens"))
    if budget is None or budget < _MIN_BUDGET:
        raise Rejection("bad_request", f"thinking.enabled.budget_tokens: Input should be an integer >= {_MIN_BUDGET}")
    if budget >= max_tokens:
        raise Rejection("bad_request", "`max_tokens` must be greater than `thinking.budget_tokens`.")
    return ThinkingAsk("thinking.budget_tokens", str(budget), budget=budget)


def _check_thinking_allowed(body: dict) -> None:
    """Thinking refuses a forced tool, and a final assistant turn with tool calls that does not open with its
    thinking blocks (the API wants them back to continue the tool loop)."""
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        raise Rejection("bad_request", "Thinking may not be enabled when tool_choice forces tool use.")
    messages = body["messages"]
    assistants = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistants or not _blocks(messages[assistants[-1]], "tool_use"):
        return
    first = messages[assistants[-1]]["content"][0]
    if not isinstance(first, dict) or first.get("type") not in ("thinking", "redacted_thinking"):
        raise Rejection(
            "bad_request",
            f"messages.{assistants[-1]}.content.0.type: Expected `thinking` or `redacted_thinking`, but found"
            f" {first.get('type') if isinstance(first, dict) else None!r}. When `thinking` is enabled, a final"
            " `assistant` message must start with a thinking block.",
        )


def _error_body(error_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}}
