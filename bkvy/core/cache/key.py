"""A request's cache key: the sha256 of its normalised form (issue 20 §1).

What makes two requests the same: the route (method, level, scenario, provider, model, key, policy's allowed
models, the ``optimize`` weights, the domain, the tenant's preferred models: everything that picks the model),
the messages as sent upstream (after policy redaction), tools, the response format and the sampling
parameters. Text is whitespace-normalised (runs of whitespace are one space, the ends stripped); JSON objects
(tools' schemas, content parts, a json_schema) are dumped with sorted keys, so their key order does not matter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import ChatMessage, GenerationOptions

_WHITESPACE = re.compile(r"\s+")
_KEY_VERSION = "v2"  # bump when the normal form changes: old entries then simply miss


def normal_text(text: str) -> str:
    """``text`` with each run of whitespace made one space and the ends stripped."""
    return _WHITESPACE.sub(" ", text).strip()


def cache_key(route: RouteRequest, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
    """The hex sha256 of the normalised request."""
    normal = [_KEY_VERSION, _route_part(route), [_message_part(m) for m in messages], _options_part(options)]
    dumped = json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(dumped.encode("utf-8")).hexdigest()


def _route_part(route: RouteRequest) -> list[Any]:
    allowed = sorted(f"{p}/{m}" for p, m in route.allowed) if route.allowed is not None else None
    level = route.level.value if route.level is not None else None
    weights = list(route.weights) if route.weights is not None else None
    preferred = [f"{p}/{m}" for p, m in route.preferred]  # in order: the first fit wins
    return [
        route.method.value,
        level,
        route.scenario,
        route.provider,
        route.model,
        route.key_id,
        allowed,
        weights,
        route.domain,
        preferred,
    ]


def _message_part(message: ChatMessage) -> list[Any]:
    if isinstance(message.content, str):
        content: Any = normal_text(message.content)
    else:
        content = [_normal_part(part) for part in message.content]
    calls = [[c.call_id, c.name, _normal_json_text(c.arguments)] for c in message.tool_calls]
    return [message.role, content, calls, message.tool_call_id]


def _normal_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "text" and isinstance(part.get("text"), str):
        return {**part, "text": normal_text(part["text"])}
    return part  # images and other parts: as sent, their keys sorted by the dump


def _normal_json_text(text: str) -> Any:
    """A tool call's arguments (JSON as text): parsed, so key order and spacing do not matter."""
    try:
        return json.loads(text)
    except ValueError:
        return normal_text(text)


def _options_part(options: GenerationOptions) -> list[Any]:
    tools = [[t.name, normal_text(t.description or ""), t.parameters] for t in options.tools]
    choice = [options.tool_choice.mode, options.tool_choice.name] if options.tool_choice is not None else None
    schema = options.json_schema
    response_format = [schema.name, schema.schema, schema.strict] if schema is not None else None
    return [
        options.max_tokens,
        options.temperature,
        options.top_p,
        list(options.stop),
        options.json_mode,
        options.disable_thinking,
        tools,
        choice,
        response_format,
    ]
