"""Reading a JSON body safely: size cap before reading, UTF-8, JSON, then the pydantic schema.

``read_body`` is the one body reader of every route: the hot paths (``api.hot_path``) and the FastAPI routes
(``request.receive``) both call it, so the 413 rule lives here only.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from bkvy.models.errors import BodyTooLarge, InvalidEncoding, InvalidJson, InvalidRequest, ValidationFailed

Body = TypeVar("Body", bound=BaseModel)


async def read_body(receive: Receive, content_length: str | None, limit_bytes: int) -> bytes:
    """The whole body from ASGI ``receive``, refused once it passes ``limit_bytes``, declared or not.

    Raises BodyTooLarge (413), or InvalidRequest (400) for a bad Content-Length or a client that left mid-body.
    """
    if content_length is not None:
        if not content_length.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(content_length) > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit_bytes:  # one message: the usual case
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
        chunks.append(chunk)
    if size > limit_bytes:
        raise BodyTooLarge(f"request body over {limit_bytes} bytes")
    return b"".join(chunks)


def parse_body(raw: bytes, schema: type[Body]) -> Body:
    """Validate raw bytes against ``schema``. Raises InvalidEncoding/InvalidJson (400) or ValidationFailed (422)."""
    if not raw.strip():
        raise InvalidJson("request body is empty; send a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEncoding("request body is not valid UTF-8") from None
    try:
        return schema.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidJson(f"request body is not valid JSON: {first['msg']}") from None
        location = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ValidationFailed(f"{location}: {first['msg']}{more}") from None
