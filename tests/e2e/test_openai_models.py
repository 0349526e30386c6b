"""``GET /v1/models/{id}`` through the openai SDK: every listed id is retrievable, a slash as is or as ``%2F``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai.types import Model


@pytest.fixture
async def sdk(demo_gateway: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    yield openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=demo_gateway, max_retries=0)


async def test_every_listed_model_is_retrievable(sdk: openai.AsyncOpenAI) -> None:
    listed = [model async for model in sdk.models.list()]
    assert any("/" in model.id for model in listed) and any(model.id == "auto" for model in listed)
    for model in listed:
        raw = await sdk.models.with_raw_response.retrieve(model.id)
        Model.model_validate(raw.http_response.json())
        assert raw.parse() == model
        if "/" in model.id:  # the SDK escapes the slash: the gateway sees it decoded
            assert b"%2F" in raw.http_request.url.raw_path


@pytest.mark.parametrize("path", ["/v1/models/openai/gpt-4o-mini", "/v1/models/openai%2Fgpt-4o-mini"])
async def test_slash_in_an_id_works_escaped_or_not(demo_gateway: httpx.AsyncClient, path: str) -> None:
    response = await demo_gateway.get(path)
    assert response.status_code == 200
    assert response.json() == {"id": "openai/gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}


async def test_a_bare_model_name_is_retrievable_as_chat_takes_it(sdk: openai.AsyncOpenAI) -> None:
    model = await sdk.models.retrieve("gpt-4o-mini")
    assert (model.id, model.owned_by) == ("gpt-4o-mini", "openai")


@pytest.mark.parametrize("model_id", ["nope", "openai/nope", "scenario:nope", "openai/gpt-4o-mini/extra"])
async def test_unknown_id_raises_not_found_in_openai_shape(sdk: openai.AsyncOpenAI, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await sdk.models.retrieve(model_id)
    assert raised.value.body == {
        "message": raised.value.body["message"],
        "type": "invalid_request_error",
        "code": "unknown_model",
        "param": "model",
    }


async def test_empty_id_is_not_found(demo_gateway: httpx.AsyncClient) -> None:
    response = await demo_gateway.get("/v1/models/")
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
