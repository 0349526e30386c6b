"""The one body reader (api.body.read_body), on ASGI messages: the size cap, declared or not."""

from __future__ import annotations

import pytest

from bkvy.api.body import read_body
from bkvy.models.errors import BodyTooLarge, InvalidRequest


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
