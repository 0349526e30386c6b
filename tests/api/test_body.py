"""The one body reader (api.body.read_body), on ASGI messages: the JSON media type (415), the size cap (declared
or not) and a client that leaves mid-body (499); and ``parse_body``, whose validation errors name the field at fault
(OpenAI's ``param``)."""

from __future__ import annotations

import json
import re

import pytest

from bkvy.api.body import parse_body, read_body
from bkvy.models.errors import BodyTooLarge, ClientDisconnected, InvalidRequest, UnsupportedMediaType, ValidationFailed
from bkvy.models.openai_schemas import ChatCompletionIn

JSON = "application/json"


def _receive(*messages: dict):
    pending = list(messages)

    async def receive() -> dict:
        return pending.pop(0)

    return receive


def _piece(body: bytes, more: bool) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_pieces_are_joined() -> None:
    assert await read_body(_receive(_piece(b"ab", True), _piece(b"cd", False)), None, 4, content_type=JSON) == b"abcd"


async def test_one_message_at_the_limit_is_read() -> None:
    assert await read_body(_receive(_piece(b"abcd", False)), "4", 4, content_type=JSON) == b"abcd"


@pytest.mark.parametrize(
    "messages",
    [(_piece(b"abcde", False),), (_piece(b"abc", True), _piece(b"de", False))],
    ids=["one_message", "pieces"],
)
async def test_undeclared_body_over_the_limit_is_413(messages: tuple[dict, ...]) -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(_receive(*messages), None, 4, content_type=JSON)


async def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(_receive(), "5", 4, content_type=JSON)


async def test_length_that_is_not_a_number_is_400() -> None:
    with pytest.raises(InvalidRequest, match="Content-Length"):
        await read_body(_receive(), "-1", 4, content_type=JSON)


@pytest.mark.parametrize(
    "messages",
    [(_piece(b"ab", True), {"type": "http.disconnect"}), ({"type": "http.disconnect"},)],
    ids=["mid_body", "before_the_first_byte"],
)
async def test_client_leaving_before_the_whole_body_is_client_disconnected(messages: tuple[dict, ...]) -> None:
    with pytest.raises(ClientDisconnected, match="closed the connection"):
        await read_body(_receive(*messages), "100", 100, content_type=JSON)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON ;charset=UTF-8",
        "application/vnd.x+json",
    ],
)
async def test_json_media_types_are_read(content_type: str) -> None:
    assert await read_body(_receive(_piece(b"{}", False)), "2", 4, content_type=content_type) == b"{}"


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain", "declared text/plain; send it as JSON with Content-Type: application/json"),
        ("text/plain; charset=utf-8", "declared text/plain;"),
        ("application/x-www-form-urlencoded", "what curl -d sends"),
        ("multipart/form-data; boundary=x", "declared multipart/form-data;"),
        ("application/jsonx", "declared application/jsonx;"),
        ("text/json+xml\x1b[31m", "declared another media type;"),
        (None, "has no Content-Type"),
        ("", "has no Content-Type"),
    ],
)
async def test_a_body_not_declared_json_is_415_before_reading(content_type: str | None, message: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=re.escape(message)):
        await read_body(_receive(), "2", 4, content_type=content_type)


USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"messages": [USER, {"role": "wizard", "content": "hi"}]}, "messages[1].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "x"}]}]},
            "messages[0].content[1].type",
        ),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 12}]}, "messages[0].content"),
        ({"tool_choice": {"type": "function"}}, "tool_choice.function"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
        ({"bkvy": {"hedge": "no"}}, "bkvy.hedge"),
        ({"model": ...}, "model"),
        ({"n": 3}, "n"),
    ],
    ids=[
        "range",
        "literal",
        "union_descends",
        "message_rule",
        "union_at_field",
        "union_missing",
        "pattern",
        "extension",
        "missing",
        "n",
    ],
)
def test_validation_error_names_the_field_in_openai_notation(fields: dict, param: str) -> None:
    body = {"model": "auto", "messages": [USER], **fields}
    raw = json.dumps({name: value for name, value in body.items() if value is not ...}).encode()
    with pytest.raises(ValidationFailed) as raised:
        parse_body(raw, ChatCompletionIn)
    assert raised.value.param == param
    assert raised.value.message.startswith(f"{param}: ")


def test_body_that_is_not_an_object_names_no_field() -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_body(b"[1]", ChatCompletionIn)
    assert raised.value.param is None and raised.value.message.startswith("body: ")
