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


BAD_PARAMETERS = [
    ({"temperature": 5}, "temperature"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.function"),
    ({"n": 2}, "n"),
    ({"n": 2, "stream": True}, "n"),
    ({"extra_body": {"bkvy": {"hedge": "no"}}}, "bkvy.hedge"),
]


@pytest.mark.parametrize(
    ("fields", "param"),
    BAD_PARAMETERS,
    ids=[f"{param}-{'stream' if 'stream' in fields else 'json'}" for fields, param in BAD_PARAMETERS],
)
async def test_bad_parameter_raises_bad_request_naming_it(
    sdk: openai.AsyncOpenAI, fleet: SimFleet, fields: dict, param: str
) -> None:
    # OpenAI answers a bad parameter 400 invalid_request_error with ``param``; the SDKs raise BadRequestError.
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(**{"model": "openai/gpt-4o-mini", "messages": MESSAGES, **fields})
    assert raised.value.status_code == 400 and raised.value.type == "invalid_request_error"
    assert raised.value.param == param and raised.value.code == "validation_error"
    assert raised.value.body["message"].startswith(f"{param}: ")
    assert fleet.servers["openai"].calls_for("gpt-4o-mini") == 0


async def test_n_above_one_is_refused_by_name_never_served_as_one_choice(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(model="auto", messages=MESSAGES, n=3)
    assert raised.value.param == "n" and "one choice per request" in raised.value.message
    completion = await sdk.chat.completions.create(model="auto", messages=MESSAGES, n=1)
    assert [choice.index for choice in completion.choices] == [0]


async def test_bad_parameter_on_llm_endpoints_stays_422(demo_gateway) -> None:
    body = {"client_id": "t", "intelligence_level": "low", "messages": MESSAGES, "options": {"temperature": 5}}
    response = await demo_gateway.post("/llm/intelligence", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


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
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.retrieve("auto")


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
