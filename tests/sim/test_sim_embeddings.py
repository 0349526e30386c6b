"""The simulated providers' embeddings wire formats, driven by the vendors' own SDKs where installed."""

from __future__ import annotations

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from bkvy.sim.embeddings import DEFAULT_DIMENSIONS, vector_for

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
TEXTS = ["alpha", "beta"]


async def _post(url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient() as client:  # async: the sim runs on this test's event loop
        return await client.post(url, **kwargs)  # type: ignore[arg-type]


def test_vectors_are_deterministic_unit_vectors_per_model_text_and_size() -> None:
    vector = vector_for("m1", "alpha", 40)
    assert len(vector) == 40 and abs(sum(v * v for v in vector) - 1.0) < 1e-9
    assert vector == vector_for("m1", "alpha", 40)
    assert vector != vector_for("m2", "alpha", 40) and vector != vector_for("m1", "beta", 40)


@pytest.mark.asyncio
async def test_openai_embeddings_with_the_sdk_float_base64_and_tokens(start_sim) -> None:
    server = await start_sim("openai")
    async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=VALID_KEY, max_retries=0) as client:
        floats = await client.embeddings.create(model="m1", input=TEXTS, encoding_format="float", dimensions=8)
        decoded = await client.embeddings.create(model="m1", input="alpha")  # base64 on the wire, decoded
        tokens = await client.embeddings.create(model="m1", input=[[1, 2], [3]], encoding_format="float")
    assert [item.embedding for item in floats.data] == [vector_for("m1", t, 8) for t in TEXTS]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    assert len(decoded.data[0].embedding) == DEFAULT_DIMENSIONS
    assert abs(decoded.data[0].embedding[0] - vector_for("m1", "alpha", DEFAULT_DIMENSIONS)[0]) < 1e-6
    assert tokens.usage.prompt_tokens == 3 and len(tokens.data) == 2
    assert server.stats.calls_by_path["/v1/embeddings"] == 3


@pytest.mark.asyncio
async def test_openai_embeddings_share_the_gate(start_sim) -> None:
    server = await start_sim("openai")
    async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="sk-wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.embeddings.create(model="m1", input="x")
    server.knobs("m1").burst_429(1, retry_after_seconds=3)
    reply = await _post(
        server.base_url + "/v1/embeddings",
        json={"model": "m1", "input": "x"},
        headers={"authorization": f"Bearer {VALID_KEY}"},
    )
    assert reply.status_code == 429 and reply.headers["retry-after"] == "3"


@pytest.mark.asyncio
async def test_gemini_embed_content_with_the_sdk(start_sim) -> None:
    server = await start_sim("gemini")
    client = genai.Client(api_key=VALID_KEY, http_options=types.HttpOptions(base_url=server.base_url))
    response = await client.aio.models.embed_content(
        model="m1", contents=TEXTS, config=types.EmbedContentConfig(output_dimensionality=8)
    )
    assert [e.values for e in response.embeddings] == [vector_for("m1", t, 8) for t in TEXTS]
    with pytest.raises(errors.ClientError):
        await genai.Client(
            api_key="wrong", http_options=types.HttpOptions(base_url=server.base_url)
        ).aio.models.embed_content(model="m1", contents="x")
    assert server.stats.query_key_calls == 0


@pytest.mark.asyncio
async def test_gemini_single_embed_content_and_batch_model_check(start_sim) -> None:
    server = await start_sim("gemini")
    headers = {"x-goog-api-key": VALID_KEY}
    one = await _post(
        server.base_url + "/v1beta/models/m1:embedContent",
        json={"content": {"parts": [{"text": "alpha"}]}},
        headers=headers,
    )
    assert one.json() == {"embedding": {"values": vector_for("m1", "alpha", DEFAULT_DIMENSIONS)}}
    wrong_model = await _post(
        server.base_url + "/v1beta/models/m1:batchEmbedContents",
        json={"requests": [{"model": "models/other", "content": {"parts": [{"text": "alpha"}]}}]},
        headers=headers,
    )
    assert wrong_model.status_code == 400 and wrong_model.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.asyncio
async def test_ollama_api_embed(start_sim) -> None:
    server = await start_sim("ollama")
    reply = await _post(server.base_url + "/api/embed", json={"model": "m1", "input": TEXTS, "dimensions": 4})
    payload = reply.json()
    assert payload["embeddings"] == [vector_for("m1", t, 4) for t in TEXTS]
    assert payload["model"] == "m1" and payload["prompt_eval_count"] > 0
    empty = await _post(server.base_url + "/api/embed", json={"model": "m1", "input": []})
    assert empty.status_code == 400 and "error" in empty.json()


@pytest.mark.asyncio
async def test_anthropic_has_no_embeddings_route(start_sim) -> None:
    server = await start_sim("anthropic")
    assert (await _post(server.base_url + "/v1/embeddings", json={"model": "m1", "input": "x"})).status_code == 404
