from __future__ import annotations

import anthropic
import httpx
import pytest

VALID_KEY = "sk-sim-valid"  # matches conftest.start_sim
MESSAGES = [{"role": "user", "content": "a secret prompt that must never be echoed"}]


def _client(base_url: str, api_key: str = VALID_KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=5)


@pytest.mark.asyncio
async def test_non_stream_message_parses_with_official_sdk(start_sim):
    server = await start_sim("anthropic", tokens_per_reply=6)
    raw = await _client(server.base_url).messages.with_raw_response.create(
        model="m1", max_tokens=100, messages=MESSAGES
    )
    message = await raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 6
    assert "secret" not in message.content[0].text


@pytest.mark.asyncio
async def test_stream_events_yield_text_and_final_message(start_sim):
    server = await start_sim("anthropic", tokens_per_reply=4)
    async with _client(server.base_url).messages.stream(model="m1", max_tokens=2, messages=MESSAGES) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 2


@pytest.mark.asyncio
async def test_missing_max_tokens_is_invalid_request(start_sim):
    server = await start_sim("anthropic")
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            server.base_url + "/v1/messages",
            headers={"x-api-key": VALID_KEY, "anthropic-version": "2023-06-01"},
            json={"model": "m1", "messages": MESSAGES},
        )
        no_version = await http.post(
            server.base_url + "/v1/messages",
            headers={"x-api-key": VALID_KEY},
            json={"model": "m1", "max_tokens": 5, "messages": MESSAGES},
        )
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert no_version.status_code == 400


@pytest.mark.asyncio
async def test_server_error_knob_is_529_overloaded(start_sim):
    server = await start_sim("anthropic", error_rates={"server": 1.0})
    with pytest.raises(anthropic.InternalServerError) as caught:
        await _client(server.base_url).messages.create(model="m1", max_tokens=10, messages=MESSAGES)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.asyncio
async def test_wrong_key_is_authentication_error(start_sim):
    server = await start_sim("anthropic")
    with pytest.raises(anthropic.AuthenticationError):
        await _client(server.base_url, "wrong").messages.create(model="m1", max_tokens=10, messages=MESSAGES)


@pytest.mark.asyncio
async def test_rate_limit_headers_and_retry_after(start_sim):
    server = await start_sim("anthropic", rpm_limit=1)
    client = _client(server.base_url)
    raw = await client.messages.with_raw_response.create(model="m1", max_tokens=10, messages=MESSAGES)
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(model="m1", max_tokens=10, messages=MESSAGES)
    assert caught.value.response.headers["retry-after"]


@pytest.mark.asyncio
async def test_tpm_limit_fills_the_tokens_headers(start_sim):
    server = await start_sim("anthropic", tpm_limit=1000, tokens_per_reply=6)
    raw = await _client(server.base_url).messages.with_raw_response.create(model="m1", max_tokens=10, messages=MESSAGES)
    message = await raw.parse()
    billed = message.usage.input_tokens + message.usage.output_tokens
    assert raw.headers["anthropic-ratelimit-tokens-limit"] == "1000"
    assert raw.headers["anthropic-ratelimit-tokens-remaining"] == str(1000 - billed)
    assert raw.headers["anthropic-ratelimit-tokens-reset"].endswith("Z")
    assert "anthropic-ratelimit-requests-remaining" not in raw.headers  # no rpm knob: no request headers


@pytest.mark.asyncio
async def test_stream_cut_sends_error_event(start_sim):
    server = await start_sim("anthropic", stream_cut_after_chunks=1)
    received = []
    with pytest.raises(anthropic.APIStatusError):
        async with _client(server.base_url).messages.stream(model="m1", max_tokens=50, messages=MESSAGES) as stream:
            async for piece in stream.text_stream:
                received.append(piece)
    assert len(received) == 1
    assert server.stats.streams_cut == 1
