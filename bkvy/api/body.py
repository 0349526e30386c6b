"""Reading a JSON body safely: size cap before reading, UTF-8, JSON, then the pydantic schema."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from bkvy.models.errors import BodyTooLarge, InvalidEncoding, InvalidJson, InvalidRequest, ValidationFailed

Body = TypeVar("Body", bound=BaseModel)


async def read_body(request: Request, limit_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise BodyTooLarge(f"request body over {limit_bytes} bytes")
        chunks.append(chunk)
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
