"""Small wire helpers shared by the adapters: URL joining, data URLs, the probe call."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from bkvy.models.errors import UpstreamError
from bkvy.models.types import ChatMessage, ErrorClass, GenerationOptions, ToolCall, UpstreamCall

JSON_CONTENT_TYPE = {"content-type": "application/json"}


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path``, without doubling a version segment the base already ends in (``/v1``)."""
    base = base_url.rstrip("/")
    path = "/" + path.lstrip("/")
    version, _, rest = path[1:].partition("/")
    if rest and base.endswith("/" + version):
        return f"{base}/{rest}"
    return base + path


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; None for anything else."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64":
        return None
    return media_type or "application/octet-stream", payload


def image_url_of(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    return str(image.get("url", "")) if isinstance(image, dict) else str(image or "")


def unsupported_part(provider: str, part_type: str) -> UpstreamError:
    return UpstreamError(ErrorClass.BAD_REQUEST, f"{provider} adapter cannot send a {part_type} content part")


def probe_call(call: UpstreamCall) -> UpstreamCall:
    """The smallest chat call: one word in, one token out, no stream; thinking as the caller set it (the prober
    sends the model's OFF setting: off, or its floor)."""
    return call._replace(
        messages=(ChatMessage(role="user", content="ping"),),
        options=GenerationOptions(max_tokens=1),
        stream=False,
    )


def tool_arguments(provider: str, arguments: str) -> dict[str, Any]:
    """OpenAI's JSON-string tool arguments as the object Anthropic and Gemini expect."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        raise unsupported_part(provider, "tool_call with non-JSON arguments") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def new_call_id() -> str:
    """An id for a tool call the provider gave none (Gemini often does not). Random, not numbered: a client
    sends every earlier round's calls back in its history, so ids must differ across rounds, not just within one
    reply (``call_0`` twice made Anthropic answer 400 and Gemini get a result under the wrong name)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def with_unique_tool_ids(
    messages: tuple[ChatMessage, ...], clean: Callable[[str], str] | None = None
) -> tuple[ChatMessage, ...]:
    """The history with every tool call id unique (``clean``-ed first), each tool result re-pointed at its call.

    A client's history may repeat an id (from an older gateway, or from another one); a result belongs to the
    latest call before it with that id. Histories with unique, clean ids come back unchanged.
    """
    if not any(m.tool_calls for m in messages):
        return messages
    used: set[str] = set()
    latest: dict[str, str] = {}  # the client's id -> the id on the wire for its latest call
    result: list[ChatMessage] = []
    for message in messages:
        if message.tool_calls:
            calls = tuple(_renamed(call, clean, used, latest) for call in message.tool_calls)
            message = message._replace(tool_calls=calls)
        elif message.role == "tool" and message.tool_call_id is not None:
            fallback = clean(message.tool_call_id) if clean else message.tool_call_id
            message = message._replace(tool_call_id=latest.get(message.tool_call_id, fallback))
        result.append(message)
    return tuple(result)


def _renamed(call: ToolCall, clean: Callable[[str], str] | None, used: set[str], latest: dict[str, str]) -> ToolCall:
    base = clean(call.call_id) if clean else call.call_id
    wire_id, suffix = base, 1
    while wire_id in used:
        wire_id, suffix = f"{base}_{suffix}", suffix + 1
    used.add(wire_id)
    latest[call.call_id] = wire_id
    return call if wire_id == call.call_id else ToolCall(wire_id, call.name, call.arguments)
