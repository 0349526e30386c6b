from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim


def _client(base_url: str, api_key: str = VALID_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=5)


MESSAGES = [{"role": "user", "content": "a secret prompt that must never be echoed"}]


@pytest.mark.asyncio
async def test_non_stream_reply_parses_with_official_sdk(start_sim):
    server = await start_sim("openai", tokens_per_reply=8)
    completion = await _client(server.base_url).chat.completions.create(model="m1", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    content = completion.choices[0].message.content
    assert content and "secret" not in content
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens > 3
    assert server.calls_for("m1") == 1


@pytest.mark.asyncio
async def test_stream_with_usage_ends_with_usage_chunk(start_sim):
    server = await start_sim("openai", tokens_per_reply=5)
    stream = await _client(server.base_url).chat.completions.create(
        model="m1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


@pytest.mark.asyncio
async def test_max_completion_tokens_truncates_with_length(start_sim):
    server = await start_sim("openai", tokens_per_reply=10)
    completion = await _client(server.base_url).chat.completions.create(
        model="m1", messages=MESSAGES, max_completion_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


@pytest.mark.asyncio
async def test_wrong_key_raises_authentication_error(start_sim):
    server = await start_sim("openai")
    with pytest.raises(openai.AuthenticationError) as caught:
        await _client(server.base_url, "sk-wrong").chat.completions.create(model="m1", messages=MESSAGES)
    assert caught.value.body["code"] == "invalid_api_key"


@pytest.mark.asyncio
async def test_burst_429_raises_rate_limit_error_with_retry_after(start_sim):
    server = await start_sim("openai")
    server.knobs("m1").burst_429(2, retry_after_seconds=7)
    client = _client(server.base_url)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="m1", messages=MESSAGES)
        assert caught.value.response.headers["retry-after"] == "7"
    await client.chat.completions.create(model="m1", messages=MESSAGES)
    assert server.stats.failures_by_kind["rate_limited"] == 2


@pytest.mark.asyncio
async def test_rpm_limit_headers_count_down_then_429(start_sim):
    server = await start_sim("openai", rpm_limit=2)
    client = _client(server.base_url)
    remaining = []
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(model="m1", messages=MESSAGES)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [1, 0]
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m1", messages=MESSAGES)
    assert int(caught.value.response.headers["retry-after"]) > 0


@pytest.mark.asyncio
async def test_tpm_limit_headers_count_billed_tokens_down_then_429(start_sim):
    # "a secret prompt that must never be echoed" is 42 characters: 3 + 10 prompt tokens, + 6 completion = 19.
    server = await start_sim("openai", tpm_limit=40, tokens_per_reply=6)
    client = _client(server.base_url)
    remaining = []
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(model="m1", messages=MESSAGES)
        completion = raw.parse()
        assert completion.usage is not None and completion.usage.total_tokens == 19
        assert raw.headers["x-ratelimit-limit-tokens"] == "40"
        assert raw.headers["x-ratelimit-reset-tokens"].endswith("s")
        remaining.append(int(raw.headers["x-ratelimit-remaining-tokens"]))
    assert remaining == [21, 2]
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m1", messages=MESSAGES)
    assert int(caught.value.response.headers["retry-after"]) > 0
    assert caught.value.response.headers["x-ratelimit-remaining-tokens"] == "2"


@pytest.mark.asyncio
async def test_stream_cut_raises_in_sdk_and_counts(start_sim):
    server = await start_sim("openai", stream_cut_after_chunks=2)
    stream = await _client(server.base_url).chat.completions.create(model="m1", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3  # role chunk + 2 content chunks
    assert server.stats.streams_cut == 1


@pytest.mark.asyncio
async def test_stream_fail_before_first_byte_is_500(start_sim):
    server = await start_sim("openai", stream_fail_before_first_byte=True)
    with pytest.raises(openai.InternalServerError):
        await _client(server.base_url).chat.completions.create(model="m1", messages=MESSAGES, stream=True)


@pytest.mark.asyncio
async def test_down_returns_503(start_sim):
    server = await start_sim("openai_compatible", down=True)
    with pytest.raises(openai.APIStatusError) as caught:
        await _client(server.base_url).chat.completions.create(model="m1", messages=MESSAGES)
    assert caught.value.status_code == 503


@pytest.mark.asyncio
async def test_timeout_hangs_until_client_gives_up(start_sim):
    server = await start_sim("openai", error_rates={"timeout": 1.0})
    client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=VALID_KEY, max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m1", messages=MESSAGES)
    await client.close()
    for _ in range(50):  # the server sees the disconnect asynchronously
        if server.stats.client_disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.stats.client_disconnects == 1


@pytest.mark.asyncio
async def test_models_list_names_configured_models(start_sim):
    server = await start_sim("openai")
    models = await _client(server.base_url).models.list()
    assert [model.id for model in models.data] == ["m1"]
