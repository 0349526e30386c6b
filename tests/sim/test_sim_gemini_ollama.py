from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
PROMPT = "a secret prompt that must never be echoed"


def _gemini(base_url: str, api_key: str = VALID_KEY) -> genai.Client:
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=base_url))


@pytest.mark.asyncio
async def test_gemini_generate_content_parses_with_official_sdk(start_sim):
    server = await start_sim("gemini", tokens_per_reply=7)
    response = await _gemini(server.base_url).aio.models.generate_content(model="m1", contents=PROMPT)
    assert response.text and "secret" not in response.text
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.candidates_token_count == 7
    assert response.usage_metadata.thoughts_token_count is None
    assert server.calls_for("m1") == 1 and server.stats.query_key_calls == 0


@pytest.mark.asyncio
async def test_gemini_thinking_model_reports_thoughts_unless_budget_zero(start_sim):
    server = await start_sim("gemini", thinks=True)
    client = _gemini(server.base_url)
    thinking = await client.aio.models.generate_content(model="m1", contents=PROMPT)
    off = await client.aio.models.generate_content(
        model="m1",
        contents=PROMPT,
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0)),
    )
    assert thinking.usage_metadata.thoughts_token_count > 0
    assert off.usage_metadata.thoughts_token_count is None
    assert server.stats.thinking_off_calls["m1"] == 1


@pytest.mark.asyncio
async def test_gemini_stream_concatenates_to_full_text(start_sim):
    server = await start_sim("gemini", tokens_per_reply=5)
    stream = await _gemini(server.base_url).aio.models.generate_content_stream(model="m1", contents=PROMPT)
    pieces = [chunk async for chunk in stream]
    assert len("".join(p.text or "" for p in pieces).split()) == 5
    assert pieces[-1].usage_metadata.total_token_count > 5


@pytest.mark.asyncio
async def test_gemini_429_is_resource_exhausted(start_sim):
    server = await start_sim("gemini", error_rates={"rate_limited": 1.0})
    with pytest.raises(errors.ClientError) as caught:
        await _gemini(server.base_url).aio.models.generate_content(model="m1", contents=PROMPT)
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"


@pytest.mark.asyncio
async def test_gemini_query_key_is_accepted_but_counted(start_sim):
    server = await start_sim("gemini")
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            server.base_url + "/v1beta/models/m1:generateContent",
            params={"key": VALID_KEY},
            json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
        )
        info = await http.get(server.base_url + "/v1beta/models/m1", headers={"x-goog-api-key": VALID_KEY})
    assert reply.status_code == 200
    assert server.stats.query_key_calls == 1
    assert info.json()["name"] == "models/m1"


@pytest.mark.asyncio
async def test_ollama_chat_non_stream_and_ndjson_stream(start_sim):
    server = await start_sim("ollama", tokens_per_reply=4)
    body = {"model": "m1", "messages": [{"role": "user", "content": PROMPT}]}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        single = (await http.post("/api/chat", json=body | {"stream": False})).json()
        streamed = await http.post("/api/chat", json=body)
        version = (await http.get("/api/version")).json()
        tags = (await http.get("/api/tags")).json()
    assert single["done"] is True and single["done_reason"] == "stop" and single["eval_count"] == 4
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    assert [line["done"] for line in lines] == [False] * 4 + [True]
    assert lines[-1]["prompt_eval_count"] > 0 and "total_duration" in lines[-1]
    assert len("".join(line["message"]["content"] for line in lines).split()) == 4
    assert version["version"] and tags["models"][0]["name"] == "m1"


@pytest.mark.asyncio
async def test_ollama_stream_cut_drops_connection(start_sim):
    server = await start_sim("ollama", stream_cut_after_chunks=2)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        with pytest.raises(httpx.HTTPError):
            await http.post("/api/chat", json={"model": "m1", "messages": []})
    assert server.stats.streams_cut == 1
