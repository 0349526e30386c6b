"""``POST /v1/embeddings`` through the real app (lifespan included) against the simulated fleet: the same keys,
rate limits, circuits, failover and records as chat."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config, demo_providers, demo_routing
from bkvy.sim import SimFleet
from tests.conftest import gateway

TEXTS = ["first text", "second text"]


def _body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "input": TEXTS, "encoding_format": "float", **extra}


def _rows(log_dir: Path) -> dict[str, dict[str, str]]:
    with open(log_dir / "transactions.csv", newline="", encoding="utf-8") as handle:
        return {row["request_id"]: row for row in csv.DictReader(handle)}


async def test_records_hold_input_tokens_and_cost(fleet: SimFleet, tmp_path: Path) -> None:
    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True, summary_stats=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        reply = await client.post(
            "/v1/embeddings", json=_body("openai/text-embedding-3-large", bkvy={"client_id": "indexer"})
        )
        assert reply.status_code == 200
    request_id = reply.headers["x-bkvy-request-id"]
    tokens = reply.json()["usage"]["prompt_tokens"]
    row = _rows(tmp_path)[request_id]
    assert (row["client_id"], row["provider_used"], row["model_used"]) == (
        "indexer",
        "openai",
        "text-embedding-3-large",
    )
    assert (row["input_tokens"], row["output_tokens"], row["success"]) == (str(tokens), "0", "true")
    assert float(row["cost_estimate"]) == tokens * 0.00013 / 1000
    assert "first text" not in (tmp_path / "transactions.csv").read_text()


async def test_gemini_without_usage_is_estimated_from_the_text(demo_gateway: httpx.AsyncClient) -> None:
    reply = await demo_gateway.post("/v1/embeddings", json=_body("gemini/gemini-embedding-001"))
    assert reply.json()["usage"]["prompt_tokens"] == sum(len(t) // 4 + 1 for t in TEXTS)


async def test_a_bad_key_fails_over_to_the_next_key(fleet: SimFleet, fake_clock: FakeClock) -> None:
    fleet.servers["openai"].valid_keys = {"demo-openai-2"}  # key 1 is refused: 401
    async with gateway(demo_config(fleet), clock=fake_clock) as client:
        for _ in range(3):
            reply = await client.post("/v1/embeddings", json=_body("openai/text-embedding-3-small"))
            assert reply.status_code == 200
        circuits = (await client.get("/circuits/status")).json()
    assert fleet.servers["openai"].stats.calls_for_key("demo-openai-1") == 1  # then its circuit is open
    assert fleet.servers["openai"].stats.calls_for_key("demo-openai-2") == 3
    text = str(circuits)
    assert "text-embedding-3-small" in text and "openai_key_1" in text


async def test_every_key_rate_limited_is_429_with_retry_after(fleet: SimFleet, demo_gateway: httpx.AsyncClient) -> None:
    fleet.servers["openai"].knobs("text-embedding-3-small").burst_429(2, retry_after_seconds=7)
    reply = await demo_gateway.post("/v1/embeddings", json=_body("openai/text-embedding-3-small"))
    assert reply.status_code == 429 and reply.json()["error"]["code"] == "rate_limited"
    assert int(reply.headers["retry-after"]) >= 7


async def test_a_scenario_fails_over_to_its_next_embedding_model(fleet: SimFleet, fake_clock: FakeClock) -> None:
    routing = demo_routing()
    routing["scenarios"]["embed_chain"] = [
        {"provider": "gemini", "model": "gemini-embedding-001", "priority": 1},
        {"provider": "ollama", "model": "nomic-embed-text", "priority": 2},
    ]
    config = build_config(demo_providers(fleet), routing, {})
    fleet.servers["gemini"].knobs("gemini-embedding-001").down = True
    async with gateway(config, clock=fake_clock) as client:
        reply = await client.post("/v1/embeddings", json=_body("scenario:embed_chain"))
    assert reply.status_code == 200 and reply.headers["x-bkvy-provider"] == "ollama"
    assert reply.json()["model"] == "nomic-embed-text" and len(reply.json()["data"]) == 2


async def test_an_upstream_bad_request_is_400_without_failover(
    fleet: SimFleet, demo_gateway: httpx.AsyncClient
) -> None:
    fleet.servers["openai"].knobs("text-embedding-3-small").error_rates["bad_request"] = 1.0
    reply = await demo_gateway.post("/v1/embeddings", json=_body("openai/text-embedding-3-small"))
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "upstream_bad_request"
    assert fleet.servers["openai"].calls_for("text-embedding-3-small") == 1


async def test_chat_routing_never_picks_an_embedding_model(fleet: SimFleet, demo_gateway: httpx.AsyncClient) -> None:
    for level in ("low", "medium", "high"):
        reply = await demo_gateway.post(
            "/llm/intelligence",
            json={"client_id": "c", "intelligence_level": level, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200
        assert "embed" not in reply.json()["model_used"] and "bge" not in reply.json()["model_used"]
    direct = await demo_gateway.post(
        "/llm/direct",
        json={
            "client_id": "c",
            "provider": "ollama",
            "model": "nomic-embed-text",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert direct.status_code == 400 and direct.json()["error"]["code"] == "not_a_chat_model"


async def test_client_keys_guard_embeddings_too(fleet: SimFleet, tmp_path: Path) -> None:
    settings = load_settings({}, log_dir=tmp_path, require_client_keys=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        reply = await client.post("/v1/embeddings", json=_body("openai/text-embedding-3-small"))
    assert reply.status_code == 401 and reply.json()["error"]["type"] == "authentication_error"
