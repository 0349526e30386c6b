"""``optimize`` end to end on the demo's simulated fleet (issue 18 §2): the quality preset picks the model with
the best declared quality, cost the cheap one, and ``debug`` shows each candidate's score components. Bad values
are 422 on /llm/* and 400 on /v1, never 500."""

from __future__ import annotations

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "Say something short."}]
COMPONENTS = {"cost", "latency", "quality", "load", "health"}


def _intelligence(level: str, optimize: object = None) -> dict[str, object]:
    options = {} if optimize is None else {"optimize": optimize}
    return {"client_id": "e2e", "intelligence_level": level, "messages": MESSAGES, "options": options, "debug": True}


@pytest.mark.parametrize(
    ("level", "optimize", "model", "reason"),
    [
        ("high", "quality", "gemini-2.5-pro", "highest_score_within_estimate"),
        ("high", "cost", "o3-mini", "cheapest_within_estimate"),
        ("high", None, "o3-mini", "cheapest_within_estimate"),
        ("low", "quality", "gpt-4o-mini", "highest_score_within_estimate"),
        ("low", "cost", "llama3.2", "cheapest_within_estimate"),
    ],
)
async def test_optimize_picks_the_model_its_objective_prefers(
    demo_gateway: httpx.AsyncClient, level: str, optimize: str | None, model: str, reason: str
) -> None:
    response = await demo_gateway.post("/llm/intelligence", json=_intelligence(level, optimize))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_used"], body["decision_reason"]) == (model, reason)


async def test_debug_shows_each_candidates_score_components(demo_gateway: httpx.AsyncClient) -> None:
    body = (await demo_gateway.post("/llm/intelligence", json=_intelligence("high", "quality"))).json()
    considered = [c for c in body["metadata"]["alternatives_considered"] if "skipped" not in c]
    assert considered[0]["model"] == "gemini-2.5-pro"
    scores = [c["score"] for c in considered]
    assert scores == sorted(scores, reverse=True)
    for candidate in considered:
        assert set(candidate["score_components"]) - {"quality_source"} == COMPONENTS
        assert all(0.0 <= value <= 1.0 for name, value in candidate["score_components"].items() if name in COMPONENTS)
    sonnet = next(c for c in considered if c["model"] == "claude-sonnet-4-5")
    assert sonnet["score_components"]["quality_source"] == "default"  # the demo gives it no quality
    assert considered[0]["score_components"]["quality"] == 1.0


async def test_cost_ranking_shows_no_score(demo_gateway: httpx.AsyncClient) -> None:
    body = (await demo_gateway.post("/llm/intelligence", json=_intelligence("high"))).json()
    assert all("score" not in c for c in body["metadata"]["alternatives_considered"])


async def test_explicit_weights_rank_by_them(demo_gateway: httpx.AsyncClient) -> None:
    response = await demo_gateway.post("/llm/intelligence", json=_intelligence("high", {"latency": 1}))
    assert response.json()["model_used"] == "claude-sonnet-4-5"  # the fastest high model (1.2 s)
    response = await demo_gateway.post("/llm/intelligence", json=_intelligence("high", {"quality": 3, "cost": 1}))
    assert response.json()["model_used"] == "gemini-2.5-pro"


async def test_openai_and_anthropic_bodies_take_optimize_in_the_bkvy_extension(
    demo_gateway: httpx.AsyncClient,
) -> None:
    chat = {"model": "high", "messages": MESSAGES, "bkvy": {"optimize": "quality"}}
    response = await demo_gateway.post("/v1/chat/completions", json=chat)
    assert response.status_code == 200, response.text
    assert response.headers["x-bkvy-model"] == "gemini-2.5-pro"
    assert response.headers["x-bkvy-decision-reason"] == "highest_score_within_estimate"
    anthropic = {"model": "high", "max_tokens": 64, "messages": MESSAGES, "bkvy": {"optimize": "cost"}}
    response = await demo_gateway.post("/v1/messages", json=anthropic, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    assert response.headers["x-bkvy-model"] == "o3-mini"


async def test_routing_json_optimize_is_the_levels_default_and_the_request_wins(fleet: SimFleet) -> None:
    config = demo_config(fleet)
    routing = config.routing.model_copy(update={"optimize": {"high": "quality"}})
    async with gateway(config.model_copy(update={"routing": routing}), clock=FakeClock()) as client:
        configured = (await client.post("/llm/intelligence", json=_intelligence("high"))).json()
        assert configured["model_used"] == "gemini-2.5-pro"
        overridden = (await client.post("/llm/intelligence", json=_intelligence("high", "cost"))).json()
        assert overridden["model_used"] == "o3-mini"


BAD = [
    ("cheapest", "optimize must be one of"),
    ({"speed": 1}, "unknown weight 'speed'"),
    ({"cost": -1}, "weights must be between 0 and 1e+06"),
    ({"cost": 0}, "at least one weight must be above 0"),
    ({"cost": "high"}, "weight 'cost' must be a number"),
    (7, "optimize must be one of"),
]


@pytest.mark.parametrize(("optimize", "message"), BAD)
async def test_bad_optimize_is_422_on_llm_naming_the_field(
    demo_gateway: httpx.AsyncClient, optimize: object, message: str
) -> None:
    response = await demo_gateway.post("/llm/intelligence", json=_intelligence("low", optimize))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["message"].startswith("options.optimize: ")
    assert message in error["message"]


@pytest.mark.parametrize(("optimize", "message"), BAD)
async def test_bad_optimize_is_400_on_v1(demo_gateway: httpx.AsyncClient, optimize: object, message: str) -> None:
    body = {"model": "low", "messages": MESSAGES, "bkvy": {"optimize": optimize}}
    response = await demo_gateway.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == "bkvy.optimize"
    assert message in error["message"]
