"""Each failure raises the openai SDK's matching exception class (status + OpenAI's error envelope)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator

import openai
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def sdk(demo_gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    # The SDK over the in-process app: httpx's ASGI transport, no socket, no retries.
    yield openai.AsyncOpenAI(base_url="http://bkvy.test/v1", api_key="unused", http_client=demo_gateway, max_retries=0)


async def test_unknown_model_raises_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await sdk.chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert raised.value.code == "unknown_model"
    assert raised.value.body["type"] == "invalid_request_error"


async def test_unknown_scenario_raises_not_found_when_streaming(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await sdk.chat.completions.create(model="scenario:nope", messages=MESSAGES, stream=True)
    assert raised.value.code == "unknown_scenario"


async def test_upstream_bad_request_raises_bad_request(sdk: openai.AsyncOpenAI, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").error_rates = {"bad_request": 1.0}
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert raised.value.code == "upstream_bad_request"


async def test_invalid_body_raises_unprocessable_entity(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        await sdk.chat.completions.create(model="auto", messages=MESSAGES, temperature=5)
    assert raised.value.code == "validation_error" and "temperature" in raised.value.message


async def test_all_rate_limited_raises_rate_limit_with_retry_after(sdk: openai.AsyncOpenAI, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").burst_429(2, retry_after_seconds=30)  # both demo keys
    with pytest.raises(openai.RateLimitError) as raised:
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert raised.value.code == "rate_limited"
    assert raised.value.response.headers["retry-after"] == "30"


async def test_all_failed_raises_internal_server_error(sdk: openai.AsyncOpenAI, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").error_rates = {"server": 1.0}
    with pytest.raises(openai.InternalServerError) as raised:
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True)
    assert raised.value.status_code == 502 and raised.value.code == "all_candidates_failed"


async def test_missing_client_key_raises_authentication_error(fleet: SimFleet) -> None:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), require_client_keys=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        sdk = openai.AsyncOpenAI(
            base_url="http://bkvy.test/v1", api_key="bkvy-sk-wrong", http_client=client, max_retries=0
        )
        with pytest.raises(openai.AuthenticationError) as raised:
            await sdk.chat.completions.create(model="auto", messages=MESSAGES)
        assert raised.value.code == "unauthorized"
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()


async def test_unknown_fields_are_ignored_and_not_forwarded(sdk: openai.AsyncOpenAI, fleet: SimFleet) -> None:
    completion = await sdk.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        seed=3,
        logprobs=False,
        extra_body={"base_url": "http://169.254.169.254", "api_key": "stolen", "bkvy": {"disable_thinking": True}},
    )
    assert completion.choices[0].message.content
    assert fleet.servers["openai"].calls_for("gpt-4o-mini") == 1
