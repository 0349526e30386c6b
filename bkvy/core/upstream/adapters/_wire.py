"""Small wire helpers shared by the adapters: URL joining, data URLs, the probe call."""

from __future__ import annotations

import json
from typing import Any

from bkvy.models.errors import UpstreamError
from bkvy.models.types import ChatMessage, ErrorClass, GenerationOptions, UpstreamCall

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
    """The smallest chat call: one word in, one token out, thinking off, no stream."""
    return call._replace(
        messages=(ChatMessage(role="user", content="ping"),),
        options=GenerationOptions(max_tokens=1),
        thinking_off=True,
        stream=False,
    )


def tool_arguments(provider: str, arguments: str) -> dict[str, Any]:
    """OpenAI's JSON-string tool arguments as the object Anthropic and Gemini expect."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        raise unsupported_part(provider, "tool_call with non-JSON arguments") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}
