"""The three routing endpoints end to end: real app over httpx's ASGI transport, real HTTP to the sim on
loopback, a FakeClock for every wait (nothing here sleeps on the wall clock)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.sim import SimFleet

MESSAGES = [{"role": "user", "content": "Say something short."}]
SIMPLIFIED_KEYS = {"success", "request_id", "model_used", "content", "usage", "finish_reason"}
DEBUG_KEYS = {"provider_used", "key_used", "routing_method", "decision_reason", "metadata"}
KEY_VALUES = ("demo-openai-1", "demo-openai-2", "demo-anthropic-1", "demo-gemini-1")
ANTHROPIC_RPM = 10  # bkvy.demo: anthropic_key_1 allows 10 requests a minute
HAIKU = "claude-3-5-haiku-latest"


def intelligence(level: str, **extra: object) -> dict[str, object]:
    return {"client_id": "e2e", "intelligence_level": level, "messages": MESSAGES, **extra}


def scenario(name: str, **extra: object) -> dict[str, object]:
    return {"client_id": "e2e", "scenario": name, "messages": MESSAGES, **extra}


def direct(provider: str, model: str, **extra: object) -> dict[str, object]:
    return {"client_id": "e2e", "provider": provider, "model": model, "messages": MESSAGES, **extra}


def assert_no_key_values(response: httpx.Response) -> None:
    for value in KEY_VALUES:
        assert value not in response.text
        assert value not in str(response.headers)


def assert_simplified_success(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == SIMPLIFIED_KEYS
    assert body["success"] is True
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert isinstance(body["content"], str) and body["content"]
    usage = body["usage"]
    assert set(usage) == {"input_tokens", "output_tokens", "total_tokens"}
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert body["finish_reason"] == "stop"
    assert_no_key_values(response)
    return body


def assert_debug_success(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert set(body) >= DEBUG_KEYS
    metadata = body["metadata"]
    assert isinstance(metadata["alternatives_considered"], list) and metadata["alternatives_considered"]
    assert isinstance(metadata["attempts"], list) and metadata["attempts"]
    assert metadata["attempts"][-1]["outcome"] == "success"
    assert metadata["total_completion_time_ms"] >= 0
    assert_no_key_values(response)
    return body


def outcomes(body: dict) -> list[tuple[str, str, str]]:
    attempts = body.get("metadata", {}).get("attempts") or body.get("attempts") or []
    return [(a["provider"], a["model"], a["outcome"]) for a in attempts]


async def let_tasks_run(ticks: int = 50) -> None:
    for _ in range(ticks):
        await asyncio.sleep(0)


async def exhaust_anthropic_haiku(client: httpx.AsyncClient) -> None:
    for _ in range(ANTHROPIC_RPM):
        response = await client.post("/llm/direct", json=direct("anthropic", HAIKU))
        assert response.status_code == 200, response.text


# -- the three endpoints succeed ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["low", "medium", "high"])
async def test_intelligence_level_returns_simplified_reply(demo_gateway: httpx.AsyncClient, level: str) -> None:
    response = await demo_gateway.post("/llm/intelligence", json=intelligence(level))
    assert_simplified_success(response)


@pytest.mark.parametrize("name", ["customer_support", "research"])
async def test_scenario_returns_simplified_reply(demo_gateway: httpx.AsyncClient, name: str) -> None:
    response = await demo_gateway.post("/llm/scenario", json=scenario(name))
    assert_simplified_success(response)


async def test_direct_without_key_id_returns_simplified_reply(demo_gateway: httpx.AsyncClient) -> None:
    body = assert_simplified_success(await demo_gateway.post("/llm/direct", json=direct("openai", "gpt-4o")))
    assert body["model_used"] == "gpt-4o"


async def test_direct_with_key_id_uses_that_key(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    response = await demo_gateway.post(
        "/llm/direct", json=direct("openai", "gpt-4o", api_key_id="openai_key_2", debug=True)
    )
    body = assert_debug_success(response)
    assert body["key_used"] == "openai_key_2"
    assert fleet.servers["openai"].stats.calls_for_key("demo-openai-2") == 1
    assert fleet.servers["openai"].stats.calls_for_key("demo-openai-1") == 0


@pytest.mark.parametrize(
    "level, tier_models",
    [
        ("low", {"llama3.2", "gpt-4o-mini", HAIKU}),
        ("medium", {"gpt-4o", "gemini-2.5-flash", "qwen2.5-7b-instruct"}),
        ("high", {"o3-mini", "claude-sonnet-4-5", "gemini-2.5-pro"}),
    ],
)
async def test_intelligence_debug_reply_explains_the_choice(
    demo_gateway: httpx.AsyncClient, level: str, tier_models: set[str]
) -> None:
    body = assert_debug_success(await demo_gateway.post("/llm/intelligence", json=intelligence(level, debug=True)))
    assert body["model_used"] in tier_models
    assert body["routing_method"] == "intelligence"
    assert body["decision_reason"] == "cheapest_within_estimate"
    assert body["key_used"] in {"openai_key_1", "openai_key_2", "anthropic_key_1", "gemini_key_1", "default"}
    considered = body["metadata"]["alternatives_considered"]
    assert {c["model"] for c in considered} >= tier_models
    assert all("api_key" not in c for c in considered)


async def test_scenario_debug_reply_uses_priority_order(demo_gateway: httpx.AsyncClient) -> None:
    body = assert_debug_success(await demo_gateway.post("/llm/scenario", json=scenario("research", debug=True)))
    assert (body["provider_used"], body["model_used"], body["key_used"]) == ("gemini", "gemini-2.5-pro", "gemini_key_1")
    assert body["routing_method"] == "scenario"
    assert body["decision_reason"] == "scenario_priority"
    assert [c["model"] for c in body["metadata"]["alternatives_considered"]][:1] == ["gemini-2.5-pro"]
    assert outcomes(body) == [("gemini", "gemini-2.5-pro", "success")]


async def test_direct_debug_reply_names_key_id_not_key_value(demo_gateway: httpx.AsyncClient) -> None:
    body = assert_debug_success(await demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU, debug=True)))
    assert body["provider_used"] == "anthropic"
    assert body["key_used"] == "anthropic_key_1"
    assert body["routing_method"] == "direct"
    assert body["decision_reason"] == "direct"


# -- failover -------------------------------------------------------------------------------------------------


async def test_server_error_fails_over_to_next_scenario_entry(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["anthropic"].knobs(HAIKU).error_rates = {"server": 1.0}
    response = await demo_gateway.post("/llm/scenario", json=scenario("customer_support", debug=True))
    body = assert_debug_success(response)
    assert (body["provider_used"], body["model_used"]) == ("openai", "gpt-4o-mini")
    assert outcomes(body) == [("anthropic", HAIKU, "server"), ("openai", "gpt-4o-mini", "success")]
    assert body["metadata"]["attempts"][0]["status"] >= 500  # the anthropic sim says 529 overloaded
    assert fleet.servers["anthropic"].stats.calls_for(HAIKU) == 1


async def test_every_candidate_failing_gives_502_with_attempts(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    fleet.servers["anthropic"].knobs(HAIKU).error_rates = {"server": 1.0}
    fleet.servers["openai"].knobs("gpt-4o-mini").down = True
    response = await demo_gateway.post("/llm/scenario", json=scenario("customer_support"))
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "all_candidates_failed"
    assert [a["outcome"] for a in body["attempts"]] == ["server", "server", "server"]
    assert_no_key_values(response)


async def test_upstream_bad_request_is_not_failed_over(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["anthropic"].knobs(HAIKU).error_rates = {"bad_request": 1.0}
    response = await demo_gateway.post("/llm/scenario", json=scenario("customer_support"))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "upstream_bad_request"
    assert fleet.servers["anthropic"].stats.calls_for(HAIKU) == 1
    assert fleet.servers["openai"].stats.calls_for("gpt-4o-mini") == 0
    assert sum(fleet.servers["openai"].stats.calls_by_model.values()) == 0
    assert_no_key_values(response)


# -- rate limits ----------------------------------------------------------------------------------------------


async def test_exhausted_key_without_max_wait_gives_429_with_retry_after(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    await exhaust_anthropic_haiku(demo_gateway)
    response = await demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU))
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0
    assert int(retry_after) <= 60
    assert fleet.servers["anthropic"].stats.calls_for(HAIKU) == ANTHROPIC_RPM  # the 11th never went upstream
    assert_no_key_values(response)


async def test_upstream_429_on_every_candidate_gives_429(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").burst_429(2, retry_after_seconds=30)
    response = await demo_gateway.post("/llm/direct", json=direct("openai", "gpt-4o-mini"))
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    assert sorted((a["key_id"], a["outcome"]) for a in body["attempts"]) == [
        ("openai_key_1", "rate_limited"),
        ("openai_key_2", "rate_limited"),
    ]
    assert int(response.headers["Retry-After"]) == 30
    assert fleet.servers["openai"].stats.failures_by_kind["rate_limited"] == 2
    assert_no_key_values(response)


async def test_request_waits_in_queue_until_window_frees(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet, fake_clock: FakeClock
) -> None:
    await exhaust_anthropic_haiku(demo_gateway)
    waiting = asyncio.create_task(
        demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU, max_wait_seconds=120, debug=True))
    )
    try:
        status: dict = {}
        for _ in range(200):
            await asyncio.sleep(0)
            status = (await demo_gateway.get("/queue/status")).json()
            if status["total_queued"]:
                break
        assert status["total_queued"] == 1
        assert [(q["provider"], q["model"], q["key_id"]) for q in status["queues"]] == [
            ("anthropic", HAIKU, "anthropic_key_1")
        ]
        await let_tasks_run()
        assert not waiting.done()
        assert fleet.servers["anthropic"].stats.calls_for(HAIKU) == ANTHROPIC_RPM

        fake_clock.advance(61)
        response = await asyncio.wait_for(waiting, timeout=5)
    finally:
        waiting.cancel()
    body = assert_debug_success(response)
    assert body["metadata"]["queue_wait_ms"] > 0
    assert body["metadata"]["attempts"][-1]["waited_ms"] > 0
    assert fleet.servers["anthropic"].stats.calls_for(HAIKU) == ANTHROPIC_RPM + 1
    assert (await demo_gateway.get("/queue/status")).json()["total_queued"] == 0


async def test_request_whose_wait_exceeds_max_wait_is_not_queued(demo_gateway: httpx.AsyncClient) -> None:
    await exhaust_anthropic_haiku(demo_gateway)
    response = await demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU, max_wait_seconds=30))
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert (await demo_gateway.get("/queue/status")).json()["total_queued"] == 0


# -- thinking control -----------------------------------------------------------------------------------------


async def test_disable_thinking_option_reaches_gemini_as_budget_zero(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    response = await demo_gateway.post(
        "/llm/direct", json=direct("gemini", "gemini-2.5-flash", options={"disable_thinking": True})
    )
    assert_simplified_success(response)
    assert fleet.servers["gemini"].stats.thinking_off_calls["gemini-2.5-flash"] == 1


async def test_thinking_left_on_by_default(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    response = await demo_gateway.post("/llm/direct", json=direct("gemini", "gemini-2.5-flash"))
    assert_simplified_success(response)
    assert fleet.servers["gemini"].stats.calls_for("gemini-2.5-flash") == 1
    assert fleet.servers["gemini"].stats.thinking_off_calls["gemini-2.5-flash"] == 0


async def test_low_request_falling_back_to_thinking_model_switches_thinking_off(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    # Every low-tier model and the cheaper medium one are down: the fallback is gemini-2.5-flash (thinks).
    fleet.servers["ollama"].knobs("llama3.2").down = True
    fleet.servers["openai"].knobs("gpt-4o-mini").down = True
    fleet.servers["anthropic"].knobs(HAIKU).down = True
    fleet.servers["openai_compatible"].knobs("qwen2.5-7b-instruct").down = True
    fleet.servers["openai_compatible"].knobs("llama-3.1-8b-instruct").down = True  # the replicated one
    response = await demo_gateway.post("/llm/intelligence", json=intelligence("low", debug=True))
    body = assert_debug_success(response)
    assert body["model_used"] == "gemini-2.5-flash"
    assert fleet.servers["gemini"].stats.thinking_off_calls["gemini-2.5-flash"] == 1


# -- monitoring -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/providers",
        "/intelligence/low",
        "/intelligence/high",
        "/scenarios",
        "/queue/status",
        "/rates/status",
    ],
)
async def test_monitoring_endpoint_answers_without_key_values(demo_gateway: httpx.AsyncClient, path: str) -> None:
    await demo_gateway.post("/llm/direct", json=direct("openai", "gpt-4o-mini"))  # some live state to report
    response = await demo_gateway.get(path)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), dict)
    assert_no_key_values(response)


async def test_unknown_intelligence_level_is_422(demo_gateway: httpx.AsyncClient) -> None:
    response = await demo_gateway.get("/intelligence/bogus")
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "validation_error"


async def test_providers_lists_key_ids(demo_gateway: httpx.AsyncClient) -> None:
    providers = (await demo_gateway.get("/providers")).json()["providers"]
    assert providers["openai"]["keys"] == ["openai_key_1", "openai_key_2"]
    assert set(providers) == {"openai", "anthropic", "gemini", "ollama", "vllm"}


async def test_rates_status_counts_requests_per_lane(demo_gateway: httpx.AsyncClient) -> None:
    await demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU))
    lanes = (await demo_gateway.get("/rates/status")).json()["lanes"]
    haiku = [lane for lane in lanes if lane["model"] == HAIKU]
    assert len(haiku) == 1
    assert haiku[0]["used"]["rpm"] == 1
    assert haiku[0]["limits"]["rpm"] == ANTHROPIC_RPM


async def test_request_served_after_long_queue_wait_gets_a_usable_upstream_timeout(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet, fake_clock: FakeClock
) -> None:
    await exhaust_anthropic_haiku(demo_gateway)
    fleet.servers["anthropic"].knobs(HAIKU).latency_ms = 100  # the upstream call stays in flight ~0.1 s
    waiting = asyncio.create_task(
        demo_gateway.post("/llm/direct", json=direct("anthropic", HAIKU, max_wait_seconds=120, debug=True))
    )
    try:
        for _ in range(200):
            await asyncio.sleep(0)
            if (await demo_gateway.get("/queue/status")).json()["total_queued"]:
                break
        fake_clock.advance(61)
        for _ in range(200):  # until the sim has the call in hand
            if fleet.servers["anthropic"].stats.calls_for(HAIKU) > ANTHROPIC_RPM:
                break
            await asyncio.sleep(0.005)
        fake_clock.advance(0.05)  # 50 ms of upstream time must not time the attempt out
        response = await asyncio.wait_for(waiting, timeout=5)
    finally:
        waiting.cancel()
    assert_debug_success(response)


async def test_image_request_is_routed_to_a_model_that_accepts_images(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    response = await demo_gateway.post("/llm/intelligence", json=intelligence("low", messages=image))
    assert response.status_code == 200, response.text


async def test_input_no_candidate_can_take_is_400_unsupported_input_not_503(demo_gateway: httpx.AsyncClient) -> None:
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    response = await demo_gateway.post(
        "/llm/direct", json={"client_id": "t", "provider": "ollama", "model": "llama3.2", "messages": image}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_input"
