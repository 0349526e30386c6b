"""Ollama /api/chat wire format: NDJSON streaming by default, no auth, nanosecond durations."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from .knobs import RateView
from .replies import ChatCall, SimReply, text_length
from .thinking import ThinkingAsk
from .wire import DOWN, NOT_FOUND, Failure, ModelNames, Rejection, int_or_none, json_line

_STATUS = {
    "server": 500,
    "timeout": 504,
    "auth": 401,
    "bad_request": 400,
    "rate_limited": 429,
    DOWN: 503,
    NOT_FOUND: 404,  # {"error": "model 'x' not found"}
    "stream_failed": 500,
}
_NS_PER_TOKEN = 10_000_000
_VERSION = "0.12.0"


class OllamaWire:
    name = "ollama"
    requires_key = False
    stream_content_type = "application/x-ndjson"
    chat_routes = ("/api/chat",)

    def parse_call(self, request: web.Request, body: dict) -> ChatCall:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise Rejection("bad_request", "model is required")
        messages = body.get("messages") or []
        options = body.get("options") or {}
        return ChatCall(
            model=body["model"],
            api_key=None,
            is_stream=body.get("stream", True) is not False,  # Ollama streams unless told not to
            max_tokens=int_or_none(options.get("num_predict")),
            prompt_chars=sum(text_length(m.get("content")) for m in messages if isinstance(m, dict)),
            is_thinking_off=body.get("think") is False,
            thinking=_thinking_ask(body.get("think")),
            # structured outputs: `format` is "json" or a JSON Schema object (Ollama 0.5+)
            json_schema=body["format"] if isinstance(body.get("format"), dict) else None,
        )

    def error_reply(self, failure: Failure) -> tuple[int, dict]:
        return _STATUS[failure.kind], {"error": failure.message}

    def rate_limit_headers(self, view: RateView) -> dict[str, str]:
        return {}

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        return {}

    def reply_body(self, reply: SimReply) -> dict:
        return self._final(reply, reply.text)

    def stream_head(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        return []

    def stream_chunk(self, reply: SimReply, call: ChatCall, text: str) -> bytes:
        return json_line(self._line(reply, text) | {"done": False})

    def stream_tail(self, reply: SimReply, call: ChatCall) -> list[bytes]:
        return [json_line(self._final(reply, ""))]

    def stream_cut(self, reply: SimReply) -> bytes | None:
        return None

    def info_routes(self, model_names: ModelNames) -> list[web.RouteDef]:
        async def version(request: web.Request) -> web.Response:
            return web.json_response({"version": _VERSION})

        async def tags(request: web.Request) -> web.Response:
            models = [
                {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 0, "digest": "sim"}
                for name in model_names.model_names()
            ]
            return web.json_response({"models": models})

        return [web.get("/api/version", version), web.get("/api/tags", tags)]

    def _line(self, reply: SimReply, text: str) -> dict:
        created_at = dt.datetime.fromtimestamp(reply.created_seconds, dt.UTC).isoformat()
        return {"model": reply.model, "created_at": created_at, "message": {"role": "assistant", "content": text}}

    def _final(self, reply: SimReply, text: str) -> dict:
        eval_ns = reply.completion_tokens * _NS_PER_TOKEN
        prompt_ns = reply.prompt_tokens * _NS_PER_TOKEN // 10
        return self._line(reply, text) | {
            "done": True,
            "done_reason": "length" if reply.is_truncated else "stop",
            "total_duration": eval_ns + prompt_ns,
            "load_duration": 0,
            "prompt_eval_count": reply.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": reply.completion_tokens,
            "eval_duration": eval_ns,
        }


def _thinking_ask(think: object) -> ThinkingAsk | None:
    """``think``: a bool, or a level for the models that take levels (gpt-oss)."""
    if think is None:
        return None
    if isinstance(think, bool):
        return ThinkingAsk("think", "true" if think else "false", is_off=not think)
    if think not in ("low", "medium", "high"):
        raise Rejection("bad_request", f"invalid think value: {think!r} (want true, false, or low, medium, high)")
    return ThinkingAsk("think", str(think), level=str(think))
