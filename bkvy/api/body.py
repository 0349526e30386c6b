"""Reading a JSON body safely: its media type and size cap before reading, UTF-8, JSON, then the pydantic schema.

``read_body`` is the one body reader of every route: the hot paths (``api.hot_path``) and the FastAPI routes
(``request.receive``) both call it, so the 415 and 413 rules and what a client leaving mid-body means live here
only.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.types import Receive

from bkvy.models.errors import (
    BodyTooLarge,
    ClientDisconnected,
    InvalidEncoding,
    InvalidJson,
    InvalidRequest,
    UnsupportedMediaType,
    ValidationFailed,
)

Body = TypeVar("Body", bound=BaseModel)

_MEDIA_TYPE_SHOWN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_JSON_HEADER = "Content-Type: application/json"


def require_json(content_type: str | None) -> None:
    """Raises UnsupportedMediaType (415) unless the body is declared JSON: ``application/json`` or a JSON
    structured syntax (``application/<name>+json``, RFC 6839), parameters allowed (``; charset=utf-8``).

    Why: a browser sends ``text/plain``, a form or no Content-Type to another site without asking it first (a
    CORS "simple" request), so without this rule any web page could spend through the gateway. A JSON media type
    needs a preflight, which ``api.cross_origin`` answers only for CORS_ALLOWED_ORIGINS."""
    if content_type == "application/json":  # what the SDKs send: the one comparison most requests pay
        return
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    if not media_type:
        raise UnsupportedMediaType(f"the request has no Content-Type; send the JSON body with {_JSON_HEADER}")
    shown = media_type if _MEDIA_TYPE_SHOWN.fullmatch(media_type) else "another media type"
    hint = " (what curl -d sends unless told otherwise)" if media_type == "application/x-www-form-urlencoded" else ""
    raise UnsupportedMediaType(f"the body is declared {shown}{hint}; send it as JSON with {_JSON_HEADER}")


async def read_body(
    receive: Receive, content_length: str | None, limit_bytes: int, *, content_type: str | None
) -> bytes:
    """The whole JSON body from ASGI ``receive``, refused once it passes ``limit_bytes``, declared or not.

    Raises UnsupportedMediaType (415, ``require_json``) before reading, BodyTooLarge (413), InvalidRequest (400)
    for a bad Content-Length, or ClientDisconnected (499) for a client that left before the whole body came: the
    route answers nothing then, and the metrics count a 499, not a server error.
    """
    require_json(content_type)
    if content_length is not None:
        if not content_length.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(content_length) > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _left_mid_body()
    body = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit_bytes:  # one message: the usual case
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _left_mid_body()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
        chunks.append(chunk)
    if size > limit_bytes:
        raise BodyTooLarge(f"request body over {limit_bytes} bytes")
    return b"".join(chunks)


def _left_mid_body() -> ClientDisconnected:
    return ClientDisconnected("the client closed the connection before sending the whole body")


def parse_body(raw: bytes, schema: type[Body]) -> Body:
    """Validate raw bytes against ``schema``. Raises InvalidEncoding/InvalidJson (400) or ValidationFailed (422,
    with ``param``: the field's path in the body, e.g. ``messages[0].role``)."""
    if not raw.strip():
        raise InvalidJson("request body is empty; send a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEncoding("request body is not valid UTF-8") from None
    try:
        return schema.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors()
        if errors[0]["type"] == "json_invalid":
            raise InvalidJson(f"request body is not valid JSON: {errors[0]['msg']}") from None
        param, message = _named_error(errors, _document_of(raw))
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ValidationFailed(f"{param or 'body'}: {message}{more}", param=param) from None


def _document_of(raw: bytes) -> Any:
    """The body as JSON, only to name an error's field; None if json cannot read what pydantic could."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _named_error(errors: list[ErrorDetails], document: Any) -> tuple[str | None, str]:
    """The first error's field path and message. When the field is a union (``content``: a string or parts),
    pydantic reports each alternative: the deepest one under the same field says the most."""
    first_param = _param_of(errors[0], document)
    named = [(_param_of(item, document), item["msg"]) for item in errors]
    alternatives = [(param, message) for param, message in named if _is_within(param, first_param)]
    return max(alternatives, key=lambda pair: len(pair[0] or ""))


def _is_within(param: str | None, outer: str | None) -> bool:
    if outer is None or param == outer:
        return True
    return param is not None and (param.startswith(outer + ".") or param.startswith(outer + "["))


def _param_of(error: ErrorDetails, document: Any) -> str | None:
    """The error's location as OpenAI writes ``param`` (``messages[0].content[1].type``), or None for the body.

    pydantic's location also names union alternatives (``str``, ``list[ContentPart]``); walking the body keeps
    only the parts that are in it, and the last one of a missing field."""
    path = ""
    cursor = document
    location = error["loc"]
    for index, part in enumerate(location):
        if isinstance(part, int) and isinstance(cursor, list) and 0 <= part < len(cursor):
            path, cursor = f"{path}[{part}]", cursor[part]
        elif isinstance(part, str) and isinstance(cursor, dict) and part in cursor:
            path, cursor = f"{path}.{part}" if path else part, cursor[part]
        elif index == len(location) - 1 and error["type"] == "missing":
            path = f"{path}.{part}" if path else str(part)
    return path or None
