"""``POST /v1/embeddings`` with the official openai SDK (and langchain's OpenAIEmbeddings) against a live
``python main.py --demo``: every provider that embeds, float and base64, errors, failover and records.

The simulated providers' vectors are a pure function of (model, input, dimensions) (``bkvy.sim.embeddings``),
so each reply is checked against the vector the upstream must have sent, number for number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse

from bkvy.sim.embeddings import DEFAULT_DIMENSIONS, vector_for
from tests.e2e.live_demo import start_demo, stop_demo

EMBEDDING_MODELS = [
    "openai/text-embedding-3-small",
    "gemini/gemini-embedding-001",
    "ollama/nomic-embed-text",
    "vllm/bge-m3",
]
TEXTS = ["The sky is blue.", "Embeddings map text to vectors."]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log_dir = tmp_path_factory.mktemp("bkvy-embeddings")
    process, port = start_demo({}, log_dir)
    try:
        yield f"http://127.0.0.1:{port}", log_dir
    finally:
        stop_demo(process)


@pytest.fixture
def client(demo: tuple[str, Path]) -> openai.OpenAI:
    return openai.OpenAI(base_url=demo[0] + "/v1", api_key="unused", max_retries=0)


def _assert_close(got: list[float], want: list[float], *, tolerance: float = 0.0) -> None:
    assert len(got) == len(want)
    assert all(math.isclose(g, w, rel_tol=tolerance, abs_tol=tolerance) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_sdk_float_vectors_from_every_provider_that_embeds(client: openai.OpenAI, model: str) -> None:
    raw = client.embeddings.with_raw_response.create(model=model, input=TEXTS, encoding_format="float")
    response = raw.parse()
    CreateEmbeddingResponse.model_validate(json.loads(raw.text))
    provider, model_name = model.split("/")
    assert raw.headers["x-bkvy-provider"] == provider and raw.headers["x-bkvy-model"] == model_name
    assert response.object == "list" and response.model == model_name
    assert [item.index for item in response.data] == [0, 1]
    for item, text in zip(response.data, TEXTS, strict=True):
        _assert_close(item.embedding, vector_for(model_name, text, DEFAULT_DIMENSIONS))
    assert response.usage.prompt_tokens > 0 and response.usage.total_tokens == response.usage.prompt_tokens


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_sdk_default_is_base64_and_decodes_to_the_same_vectors(client: openai.OpenAI, model: str) -> None:
    response = client.embeddings.create(model=model, input="one text")  # the SDK asks for base64 and decodes it
    want = vector_for(model.split("/")[1], "one text", DEFAULT_DIMENSIONS)
    _assert_close(response.data[0].embedding, want, tolerance=1e-6)  # float32 on the wire


def test_explicit_base64_is_little_endian_float32(client: openai.OpenAI) -> None:
    import base64
    import struct

    response = client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="base64")
    encoded = response.data[0].embedding
    assert isinstance(encoded, str)  # the SDK leaves an explicitly asked format alone
    decoded = list(struct.unpack(f"<{DEFAULT_DIMENSIONS}f", base64.b64decode(encoded)))
    _assert_close(decoded, vector_for("text-embedding-3-small", "x", DEFAULT_DIMENSIONS), tolerance=1e-6)


@pytest.mark.parametrize("model", ["openai/text-embedding-3-small", "gemini/gemini-embedding-001"])
def test_dimensions_reach_the_upstream(client: openai.OpenAI, model: str) -> None:
    response = client.embeddings.create(model=model, input=TEXTS, dimensions=8, encoding_format="float")
    assert [len(item.embedding) for item in response.data] == [8, 8]
    _assert_close(response.data[1].embedding, vector_for(model.split("/")[1], TEXTS[1], 8))


async def test_async_client_and_a_scenario(demo: tuple[str, Path]) -> None:
    async with openai.AsyncOpenAI(base_url=demo[0] + "/v1", api_key="unused", max_retries=0) as client:
        response = await client.embeddings.create(model="scenario:search_index", input=TEXTS)
    assert response.model == "text-embedding-3-small" and len(response.data) == 2


def test_token_arrays_go_to_openai_format_models_only(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model="openai/text-embedding-3-small", input=[[1, 2, 3], [4]])
    assert response.usage.prompt_tokens == 4 and len(response.data) == 2
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="gemini/gemini-embedding-001", input=[1, 2, 3])
    assert raised.value.code == "unsupported_input"


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("auto", "not_an_embedding_model"),
        ("low", "not_an_embedding_model"),
        ("openai/gpt-4o-mini", "not_an_embedding_model"),
        ("scenario:customer_support", "not_an_embedding_model"),
    ],
)
def test_chat_models_and_levels_are_refused_with_400(client: openai.OpenAI, model: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model=model, input="x")
    assert raised.value.status_code == 400 and raised.value.code == code


def test_an_embedding_model_is_never_a_chat_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="openai/text-embedding-3-small", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.code == "not_a_chat_model"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="openai/nope", input="x")


@pytest.mark.parametrize("bad_input", ["", [], ["a", ""], ["a", 1], [-1], [[]]])
def test_bad_input_is_a_4xx_naming_input(demo: tuple[str, Path], bad_input: object) -> None:
    reply = httpx.post(demo[0] + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": bad_input})
    assert reply.status_code in (400, 422)
    assert reply.json()["error"]["message"].startswith("input")


def test_langchain_openai_embeddings(demo: tuple[str, Path]) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    embedder = langchain_openai.OpenAIEmbeddings(
        model="openai/text-embedding-3-small",
        base_url=demo[0] + "/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # else it tokenises with tiktoken, which downloads its tables
        max_retries=0,
    )
    vectors = embedder.embed_documents(TEXTS)
    query = embedder.embed_query("The sky is blue.")
    assert len(vectors) == 2 and len(vectors[0]) == DEFAULT_DIMENSIONS
    _assert_close(query, vectors[0], tolerance=1e-6)
