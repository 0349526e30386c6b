"""Gemini generateContent wire format (v1beta), JSON and `alt=sse` streaming."""

from __future__ import annotations

import json

from aiohttp import web

from .knobs import RateView
from .replies import ChatCall, SimReply, last_user_text, text_length
from .structured import ToolPick, pick_tool
from .thinking import DYNAMIC_BUDGET, ThinkingAsk
from .wire import DOWN, NOT_FOUND, Failure, ModelNames, Rejection, int_or_none, sse

# kind -> (status, google.rpc status name)
_ERRORS = {
    "server": (500, "INTERNAL"),
    "timeout": (504, "DEADLINE_EXCEEDED"),
    "auth": (401, "UNAUTHENTICATED"),
    "bad_request": (400, "INVALID_ARGUMENT"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    DOWN: (503, "UNAVAILABLE"),
    NOT_FOUND: (404, "NOT_FOUND"),
    "stream_failed": (500, "INTERNAL"),
}
_ACTIONS = {"generateContent": False, "streamGenerateContent": True}
QUERY_KEY_MARK = web.RequestKey("sim.query_key", bool)  # lets the engine count `?key=` use


class GeminiWire:
    name = "gemini"
    requires_key = True
    stream_content_type = "text/event-stream"
    # google-genai 3.x calls /v1 by default; older SDKs and most docs use /v1beta. Both are live upstream.
    chat_routes = ("/v1beta/models/{name}", "/v1/models/{name}")

    def parse_call(self, request: web.Request, body: dict) -> ChatCall:
        model, _, action = request.match_info["name"].partition(":")
        if action not in _ACTIONS:
            raise Rejection("bad_request", f"Unknown method: {action or '(none)'}")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Rejection("bad_request", "* GenerateContentRequest.contents: contents is not specified")
        _check_function_turns(contents)
        config = body.get("generationConfig") or {}
        thinking_ask = _thinking_ask(config.get("thinkingConfig", config.get("thinking_config")))
        system_parts = (body.get("systemInstruction") or {}).get("parts")
        prompt_chars = text_length(system_parts) + sum(
            text_length(c.get("parts")) for c in contents if isinstance(c, dict)
        )
        return ChatCall(
            model=model,
            api_key=self._api_key(request),
            is_stream=_ACTIONS[action],
            max_tokens=int_or_none(config.get("maxOutputTokens")),
            prompt_chars=prompt_chars,
            is_thinking_off=thinking_ask is not None and thinking_ask.is_off,
            tool_to_call=_tool_to_call(body.get("tools"), contents),
            json_schema=_json_schema(config),
            thinking=thinking_ask,
        )

    def error_reply(self, failure: Failure) -> tuple[int, dict]:
        status, rpc_status = _ERRORS[failure.kind]
        return status, {"error": {"code": status, "message": failure.message, "status": rpc_status}}

    def rate_limit_headers(self, view: RateView) -> dict[str, str]:
        return {}  # Gemini sends no rate-limit headers; only a 429 body (and our retry-after)

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        return {}

    def reply_body(self, reply: SimReply) -> dict:
        return self._response(reply, _parts(reply), _finish_reason(reply), with_usage=True)

    def stream_head(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        if reply.tool_call is not None:  # Gemini streams a function call whole, in one chunk
            return [sse(self._response(reply, _parts(reply), None, with_usage=False))]
        return []

    def stream_chunk(self, reply: SimReply, call: ChatCall, text: str) -> bytes:
        return sse(self._response(reply, [{"text": text}], None, with_usage=False))

    def stream_tail(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        return [sse(self._response(reply, [{"text": ""}], _finish_reason(reply), with_usage=True))]

    def stream_cut(self, reply: SimReply) -> bytes | None:
        return None

    def info_routes(self, model_names: ModelNames) -> list[web.RouteDef]:
        async def model_info(request: web.Request) -> web.Response:
            model = request.match_info["name"]
            if model_names.knobs(model).down:  # an outage covers the probe route too, as for the real service
                status, body = self.error_reply(Failure("down", "The service is currently unavailable."))
                return web.json_response(body, status=status)
            return web.json_response(_model_info(model))

        async def list_models(request: web.Request) -> web.Response:
            return web.json_response({"models": [_model_info(name) for name in model_names.model_names()]})

        return [
            web.get(f"/{version}/models{suffix}", handler)
            for version in ("v1beta", "v1")
            for suffix, handler in (("/{name}", model_info), ("", list_models))
        ]

    def _api_key(self, request: web.Request) -> str | None:
        header_key = request.headers.get("x-goog-api-key")
        if header_key:
            return header_key
        query_key = request.query.get("key")
        if query_key:
            # The real API accepts `?key=`, but it leaks keys into URLs and logs: counted so tests can forbid it.
            request[QUERY_KEY_MARK] = True
        return query_key or None

    def _response(self, reply: SimReply, parts: list[dict], finish_reason: str | None, *, with_usage: bool) -> dict:
        candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason:
            candidate["finishReason"] = finish_reason
        response: dict = {"candidates": [candidate], "modelVersion": reply.model, "responseId": reply.response_id}
        usage: dict = {"promptTokenCount": reply.prompt_tokens}
        if with_usage:
            usage["candidatesTokenCount"] = reply.completion_tokens
            usage["totalTokenCount"] = reply.prompt_tokens + reply.completion_tokens + reply.thought_tokens
            if reply.thought_tokens:
                usage["thoughtsTokenCount"] = reply.thought_tokens
        response["usageMetadata"] = usage
        return response


def _parts(reply: SimReply) -> list[dict]:
    if reply.tool_call is not None:
        return [{"functionCall": {"name": reply.tool_call, "args": json.loads(reply.tool_arguments)}}]
    return [{"text": reply.text}]


def _tool_to_call(tools: object, contents: list) -> ToolPick | None:
    """Offered functions and a user turn last that is not a functionResponse -> call the first; else text."""
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    declarations = tools[0].get("functionDeclarations") or tools[0].get("function_declarations") or []
    schemas = {
        str(d["name"]): d.get("parameters") or d.get("parametersJsonSchema")
        for d in declarations
        if isinstance(d, dict) and d.get("name")
    }
    if not schemas:
        return None
    last = contents[-1] if isinstance(contents[-1], dict) else {}
    if last.get("role", "user") != "user" or _function_parts(last, "functionResponse"):
        return None
    return pick_tool(schemas, last_user_text(contents))


def _function_parts(content: object, kind: str) -> list[dict]:
    """The ``functionCall`` / ``functionResponse`` objects of one content (either case of the field name)."""
    parts = content.get("parts") if isinstance(content, dict) else None
    snake = "function_call" if kind == "functionCall" else "function_response"
    found = [p.get(kind, p.get(snake)) for p in parts or [] if isinstance(p, dict)]
    return [f for f in found if isinstance(f, dict)]


def _check_function_turns(contents: list) -> None:
    """What the real API rejects: ``id`` on a request's functionCall/functionResponse (it only sends them), and
    a results turn whose parts do not answer the calls of the model turn before it. Stricter than the service on
    one point: a result must carry the name of a call of that turn (a wrong name makes the model misread it)."""
    previous_calls: list[dict] = []
    for index, content in enumerate(contents):
        calls, results = _function_parts(content, "functionCall"), _function_parts(content, "functionResponse")
        for kind, items in (("function_call", calls), ("function_response", results)):
            if any("id" in item for item in items):
                raise Rejection(
                    "bad_request",
                    f"Invalid JSON payload received. Unknown name \"id\" at 'contents[{index}].parts[0].{kind}':"
                    " Cannot find field.",
                )
        if results:
            if len(results) != len(previous_calls):
                raise Rejection(
                    "bad_request",
                    "Please ensure that the number of function response parts is equal to the number of function"
                    " call parts of the function call turn.",
                )
            if sorted(str(r.get("name")) for r in results) != sorted(str(c.get("name")) for c in previous_calls):
                raise Rejection("bad_request", f"contents[{index}]: a function response names no call of its turn.")
        previous_calls = calls


def _json_schema(config: dict) -> dict | None:
    """``responseJsonSchema`` (JSON Schema) or ``responseSchema`` (OpenAPI subset); either needs the JSON mime type."""
    schema = config.get("responseJsonSchema", config.get("response_json_schema"))
    if schema is None:
        schema = config.get("responseSchema", config.get("response_schema"))
    if schema is None:
        return None
    if config.get("responseMimeType", config.get("response_mime_type")) != "application/json":
        raise Rejection("bad_request", "responseMimeType must be application/json when a response schema is set.")
    return schema if isinstance(schema, dict) else {}


def _finish_reason(reply: SimReply) -> str:
    return "MAX_TOKENS" if reply.is_truncated else "STOP"


def _model_info(model: str) -> dict:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")  # google-genai 3.4 ThinkingLevel
_THINKING_CONFIG = "generation_config.thinking_config"


def _thinking_ask(thinking_config: object) -> ThinkingAsk | None:
    """``thinkingBudget`` (0 off, -1 dynamic) or ``thinkingLevel``, never both (the API's 400). Google's JSON
    parser takes proto field names in either case; google-genai 3.x sends snake_case here."""
    if not isinstance(thinking_config, dict):
        return None
    budget_value = thinking_config.get("thinkingBudget", thinking_config.get("thinking_budget"))
    level = thinking_config.get("thinkingLevel", thinking_config.get("thinking_level"))
    if budget_value is not None and level is not None:
        raise Rejection("bad_request", "You cannot use both thinking_level and the legacy thinking_budget parameter.")
    if level is not None:
        if not isinstance(level, str) or level.upper() not in _LEVELS:
            raise Rejection("bad_request", f"Invalid value at '{_THINKING_CONFIG}.thinking_level' ({level!r})")
        return ThinkingAsk("thinkingLevel", level, level=level.lower())
    if budget_value is None:
        return None
    budget = int_or_none(budget_value)
    if budget is None or budget < DYNAMIC_BUDGET:
        raise Rejection("bad_request", f"Invalid value at '{_THINKING_CONFIG}.thinking_budget' ({budget_value!r})")
    return ThinkingAsk("thinkingBudget", str(budget), budget=budget, is_off=budget == 0)
