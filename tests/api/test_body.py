"""The one body reader (api.body.read_body), on ASGI messages: the size cap, declared or not; and
``parse_body``, whose validation errors name the field at fault (OpenAI's ``param``)."""

from __future__ import annotations

import json

import pytest

from bkvy.api.body import parse_body, read_body
from bkvy.models.errors import BodyTooLarge, InvalidRequest, ValidationFailed
from bkvy.models.openai_schemas import ChatCompletionIn


def _receive(*messages: dict):
    pending = list(messages)

    async def receive() -> dict:
        return pending.pop(0)

    return receive


def _piece(body: bytes, more: bool) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_pieces_are_joined() -> None:
    assert await read_body(_receive(_piece(b"ab", True), _piece(b"cd", False)), None, 4) == b"abcd"


async def test_one_message_at_the_limit_is_read() -> None:
    assert await read_body(_receive(_piece(b"abcd", False)), "4", 4) == b"abcd"


@pytest.mark.parametrize(
    "messages",
    [(_piece(b"abcde", False),), (_piece(b"abc", True), _piece(b"de", False))],
    ids=["one_message", "pieces"],
)
async def test_undeclared_body_over_the_limit_is_413(messages: tuple[dict, ...]) -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(_receive(*messages), None, 4)


async def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(_receive(), "5", 4)


async def test_length_that_is_not_a_number_is_400() -> None:
    with pytest.raises(InvalidRequest, match="Content-Length"):
        await read_body(_receive(), "-1", 4)


async def test_client_leaving_mid_body_is_400() -> None:
    with pytest.raises(InvalidRequest, match="closed the connection"):
        await read_body(_receive(_piece(b"ab", True), {"type": "http.disconnect"}), None, 4)


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
