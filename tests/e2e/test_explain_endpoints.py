"""POST /llm/explain and POST /v1/route/explain end to end on the demo config and the sim fleet: the plan with
every candidate and why, and nothing sent (the sim counts no call), no rate-limit slot taken, no circuit moved."""

from __future__ import annotations

import tempfile

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.circuits.types import CircuitState
from bkvy.core.config.settings import load_settings
from bkvy.core.limits.rate_limits import LaneKey
from bkvy.demo import demo_config
from bkvy.models.types import ErrorClass
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "Say something short."}]
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


def sim_calls(fleet: SimFleet) -> int:
    return sum(sum(server.stats.calls_by_path.values()) for server in fleet.servers.values())


def live_state(client: httpx.AsyncClient) -> tuple[list, list]:
    """Every lane's view (its counts and waits) and every circuit that is not plainly closed."""
    services = client.app.state.services  # type: ignore[attr-defined]
    lanes = [
        services.limiter.view(LaneKey(provider_name, key_id, model_name))
        for provider_name, provider in services.config.providers.items()
        for key_id in provider.keys
        for model_name in provider.models
    ]
    # A plan, as any request's, may register a circuit never seen before as CLOSED: what counts is that none moves.
    circuits = sorted(
        (s.key, s.state, s.open_until, s.open_count)
        for s in services.circuits.snapshots()
        if s.state is not CircuitState.CLOSED or s.open_count
    )
    return lanes, circuits


async def test_llm_explain_answers_each_body_kind_and_sends_nothing(demo_gateway, fleet: SimFleet):
    before = live_state(demo_gateway)
    bodies = [
        {"client_id": "e2e", "intelligence_level": "low", "messages": MESSAGES},
        {"client_id": "e2e", "scenario": "research", "messages": MESSAGES},
        {
            "client_id": "e2e",
            "provider": "openai",
            "model": "gpt-4o",
            "api_key_id": "openai_key_2",
            "messages": MESSAGES,
        },
    ]
    for _ in range(20):
        for body in bodies:
            response = await demo_gateway.post("/llm/explain", json=body)
            assert response.status_code == 200, response.text
    scenario_reply = (await demo_gateway.post("/llm/explain", json=bodies[1])).json()
    assert scenario_reply["chosen"] == {"provider": "gemini", "model": "gemini-2.5-pro", "key_id": "gemini_key_1"}
    assert scenario_reply["decision_reason"] == "scenario_priority"
    assert all(isinstance(c["reasons"], list) and c["reasons"] for c in scenario_reply["candidates"])
    direct_reply = (await demo_gateway.post("/llm/explain", json=bodies[2])).json()
    assert [c["key_id"] for c in direct_reply["candidates"]] == ["openai_key_2"]
    assert direct_reply["chosen"]["key_id"] == "openai_key_2"
    assert sim_calls(fleet) == 0
    assert live_state(demo_gateway) == before


async def test_llm_explain_shows_an_open_circuit_and_moves_it_not(demo_gateway, fleet: SimFleet):
    guard = demo_gateway.app.state.services.executor.breaker  # type: ignore[attr-defined]
    for _ in range(3):
        guard.record_failure("gemini", "gemini-2.5-pro", "gemini_key_1", ErrorClass.SERVER, None)
    before = live_state(demo_gateway)
    body = {"client_id": "e2e", "scenario": "research", "messages": MESSAGES}
    reply = (await demo_gateway.post("/llm/explain", json=body)).json()
    rows = {(c["provider"], c["model"]): c for c in reply["candidates"]}
    assert rows[("gemini", "gemini-2.5-pro")]["excluded_by"] == "circuit"
    assert rows[("gemini", "gemini-2.5-pro")]["reasons"][0].startswith("circuit open (server)")
    assert reply["chosen"]["model"] == "claude-sonnet-4-5"
    assert live_state(demo_gateway) == before and sim_calls(fleet) == 0


async def test_auto_is_planned_at_the_classified_level(demo_gateway, fleet: SimFleet):
    review = "Review this module for race conditions and propose a refactor:\n```python\n" + "x = 1\n" * 400 + "```"
    for content, level in (("hi", "low"), (review, "high")):
        messages = [{"role": "user", "content": content}]
        reply = (
            await demo_gateway.post(
                "/llm/explain", json={"client_id": "e2e", "intelligence_level": "auto", "messages": messages}
            )
        ).json()
        assert reply["route"]["level"] == reply["classification"]["level"] == level
        assert set(reply["classification"]) == {"level", "domain", "confidence", "features"}
        openai_reply = (
            await demo_gateway.post("/v1/route/explain", json={"model": "auto", "messages": messages})
        ).json()
        assert openai_reply["classification"] == reply["classification"]
        assert openai_reply["chosen"] == reply["chosen"]
    assert sim_calls(fleet) == 0


async def test_route_explain_takes_the_openai_body(demo_gateway, fleet: SimFleet):
    before = live_state(demo_gateway)
    for model in ("auto", "low", "scenario:customer_support", "openai/gpt-4o-mini", "gpt-4o"):
        response = await demo_gateway.post("/v1/route/explain", json={"model": model, "messages": MESSAGES})
        assert response.status_code == 200, (model, response.text)
        reply = response.json()
        assert reply["chosen"] is not None and reply["candidates"]
        assert ("classification" in reply) == (model == "auto")
    schema = {"model": "low", "messages": MESSAGES, "response_format": SCHEMA_FORMAT}
    reply = (await demo_gateway.post("/v1/route/explain", json=schema)).json()
    assert reply["route"]["needs_json"] is True
    assert sim_calls(fleet) == 0 and live_state(demo_gateway) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"client_id": "e2e", "messages": MESSAGES}, 400, "route_kind_unclear"),
        ({"client_id": "e2e", "scenario": "research", "intelligence_level": "low", "messages": MESSAGES}, 400,
         "route_kind_unclear"),
        ({"client_id": "e2e", "scenario": "nope", "messages": MESSAGES}, 404, "unknown_scenario"),
        ({"client_id": "e2e", "intelligence_level": "huge", "messages": MESSAGES}, 422, "validation_error"),
        ({"client_id": "e2e", "provider": "openai", "messages": MESSAGES}, 422, "validation_error"),
        ({"client_id": "e2e", "scenario": "research", "messages": []}, 422, "validation_error"),
        ([1, 2], 422, "validation_error"),
    ],
)  # fmt: skip
async def test_llm_explain_refuses_bad_bodies_with_a_code(demo_gateway, body, status, code):
    response = await demo_gateway.post("/llm/explain", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_explain_bodies_that_are_not_json_are_400_never_500(demo_gateway):
    for path in ("/llm/explain", "/v1/route/explain"):
        response = await demo_gateway.post(path, content=b"{nope", headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
    response = await demo_gateway.post("/v1/route/explain", json={"model": "no-such", "messages": MESSAGES})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model"  # OpenAI's envelope, as on /v1/chat/completions
    response = await demo_gateway.post("/v1/route/explain", json={"model": "low", "messages": "hi"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"


async def test_explain_needs_a_client_key_when_the_routes_do(fleet: SimFleet):
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), require_client_keys=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        body = {"client_id": "e2e", "scenario": "research", "messages": MESSAGES}
        assert (await client.post("/llm/explain", json=body)).status_code == 401
        response = await client.post("/v1/route/explain", json={"model": "low", "messages": MESSAGES})
        assert response.status_code == 401


async def test_explain_plans_an_adaptive_scenario_over_the_bandits_draws(demo_gateway, fleet: SimFleet):
    body = {"client_id": "e2e", "scenario": "adaptive_support", "messages": MESSAGES}
    reply = (await demo_gateway.post("/llm/explain", json=body)).json()
    assert reply["decision_reason"] == "adaptive"
    tried = [c for c in reply["candidates"] if c.get("excluded_by") is None]
    assert len({(c["provider"], c["model"]) for c in tried}) == 3
    assert all(any(r.startswith("adaptive: bandit draw") for r in c["reasons"]) for c in tried)
    assert sim_calls(fleet) == 0


async def test_explain_with_optimize_shows_scores(demo_gateway):
    body = {"client_id": "e2e", "intelligence_level": "high", "messages": MESSAGES, "options": {"optimize": "quality"}}
    reply = (await demo_gateway.post("/llm/explain", json=body)).json()
    assert reply["decision_reason"] == "highest_score_within_estimate"
    scored = [c for c in reply["candidates"] if "score" in c]
    assert scored and all(
        set(c["score_components"]) == {"cost", "latency", "quality", "load", "health"} for c in scored
    )
    openai_reply = await demo_gateway.post(
        "/v1/route/explain", json={"model": "high", "messages": MESSAGES, "bkvy": {"optimize": "quality"}}
    )
    assert openai_reply.json()["chosen"] == reply["chosen"]


async def test_scores_survive_a_replicated_models_replica_order(demo_gateway):
    # The demo's low tier holds a replicated model (vllm/llama-3.1-8b-instruct): its replica order must keep the
    # plan's scores, in explain and in a real request's debug output.
    body = {"client_id": "e2e", "intelligence_level": "low", "messages": MESSAGES, "options": {"optimize": "balanced"}}
    reply = (await demo_gateway.post("/llm/explain", json=body)).json()
    assert any(c["key_id"].endswith("@0") for c in reply["candidates"])
    assert all("score" in c for c in reply["candidates"] if c.get("excluded_by") is None)
    debug = (await demo_gateway.post("/llm/intelligence", json={**body, "debug": True})).json()
    considered = [a for a in debug["metadata"]["alternatives_considered"] if "skipped" not in a]
    assert considered and all("score_components" in a for a in considered)
