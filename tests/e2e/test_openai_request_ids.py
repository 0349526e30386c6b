"""Every /v1 reply names its request in ``x-request-id`` (what the openai SDK reads into ``_request_id`` and an
error's ``request_id``), the same value as ``x-bkvy-request-id``: success, stream and error alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from bkvy.sim import SimFleet

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def sdk(demo_gateway: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    yield openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=demo_gateway, max_retries=0)


def _request_id_of(headers: httpx.Headers) -> str:
    assert headers["x-request-id"] == headers["x-bkvy-request-id"] != ""
    return headers["x-request-id"]


async def test_completion_carries_the_request_id(sdk: openai.AsyncOpenAI) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    completion = raw.parse()
    assert completion._request_id == _request_id_of(raw.headers)
    assert completion.id == f"chatcmpl-{completion._request_id}"


async def test_stream_carries_the_request_id(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(model="gemini/gemini-2.5-flash", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].id == f"chatcmpl-{_request_id_of(stream.response.headers)}"


@pytest.mark.parametrize(
    ("fields", "error_class"),
    [({"model": "nope"}, openai.NotFoundError), ({"temperature": 9}, openai.BadRequestError)],
    ids=["not_found", "bad_request"],
)
async def test_error_carries_the_request_id(
    sdk: openai.AsyncOpenAI, fields: dict, error_class: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error_class) as raised:
        await sdk.chat.completions.create(**{"model": "auto", "messages": MESSAGES, **fields})
    assert raised.value.request_id == _request_id_of(raised.value.response.headers)


async def test_failed_stream_carries_the_request_id(sdk: openai.AsyncOpenAI, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").error_rates = {"server": 1.0}
    with pytest.raises(openai.InternalServerError) as raised:
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True)
    assert raised.value.request_id == _request_id_of(raised.value.response.headers)


async def test_models_carry_the_request_id(sdk: openai.AsyncOpenAI) -> None:
    listed = await sdk.models.with_raw_response.list()
    retrieved = await sdk.models.with_raw_response.retrieve("auto")
    ids = {_request_id_of(listed.headers), _request_id_of(retrieved.headers)}
    assert retrieved.parse()._request_id in ids and len(ids) == 2


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/chat/completions"), ("GET", "/v1/nothing-here")])
async def test_routing_errors_carry_the_request_id(demo_gateway: httpx.AsyncClient, method: str, path: str) -> None:
    response = await demo_gateway.request(method, path)
    assert response.status_code in (404, 405)
    _request_id_of(response.headers)
