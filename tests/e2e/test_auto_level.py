"""``auto`` end to end (issue 18 §1) on the simulated fleet: /llm/intelligence, /v1/chat/completions (plain and
streamed) and /v1/messages; the header, the debug field, the record; the optional classifier model with its
cache and its timeout fallback (a FakeClock moved by hand: nothing here sleeps on the wall clock)."""

from __future__ import annotations

import asyncio
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
from tests.e2e.fault_driver import FaultDriver

HI = [{"role": "user", "content": "hi"}]
CODE_REVIEW = [
    {
        "role": "user",
        "content": "Review this code for race conditions and security vulnerabilities, explain each, then "
        "refactor it step by step:\n```python\nimport threading\nclass Cache:\n    def put(self, k, v):\n"
        "        self.data[k] = v\n```\n" * 3,
    }
]
TIERS = {"low": 0, "medium": 1, "high": 2}
CLASSIFIER_MODEL = ("openai", "gpt-4o-mini")


def _tier_of(fleet_config: Any, provider: str, model: str) -> int:
    return TIERS[fleet_config.providers[provider].models[model].intelligence_tier.value]


def _header(response: httpx.Response) -> dict[str, str]:
    text = response.headers["x-bkvy-classification"]
    return dict(part.strip().split("=", 1) for part in text.split(";"))


async def test_auto_on_llm_intelligence_sends_a_code_review_above_hi(fleet: SimFleet) -> None:
    config = demo_config(fleet)
    async with gateway(config, clock=FakeClock()) as client:
        hi = await client.post("/llm/intelligence", json={"client_id": "t", "intelligence_level": "auto",
                                                          "messages": HI, "debug": True})  # fmt: skip
        review = await client.post("/llm/intelligence", json={"client_id": "t", "intelligence_level": "auto",
                                                              "messages": CODE_REVIEW, "debug": True})  # fmt: skip
    assert hi.status_code == review.status_code == 200, (hi.text, review.text)
    assert _header(hi)["level"] == "low" and _header(review)["level"] == "high"
    assert _header(review)["domain"] == "code" and 0 < float(_header(review)["confidence"]) <= 1
    classification = review.json()["classification"]
    assert set(classification) == {"level", "domain", "confidence", "features"}
    assert "code_blocks=3" in classification["features"] and "lang=python" in classification["features"]
    hi_tier = _tier_of(config, hi.json()["provider_used"], hi.json()["model_used"])
    review_tier = _tier_of(config, review.json()["provider_used"], review.json()["model_used"])
    assert review_tier > hi_tier


async def test_a_fixed_level_has_no_classification(demo_gateway: httpx.AsyncClient) -> None:
    body = {"client_id": "t", "intelligence_level": "low", "messages": HI, "debug": True}
    response = await demo_gateway.post("/llm/intelligence", json=body)
    assert response.status_code == 200
    assert "x-bkvy-classification" not in response.headers and "classification" not in response.json()


async def test_other_level_names_are_still_422(demo_gateway: httpx.AsyncClient) -> None:
    for level in ("AUTO", "automatic", "", None, 1):
        body = {"client_id": "t", "intelligence_level": level, "messages": HI}
        assert (await demo_gateway.post("/llm/intelligence", json=body)).status_code == 422


async def test_auto_on_v1_chat_completions_plain_and_streamed(fleet: SimFleet) -> None:
    config = demo_config(fleet)
    async with gateway(config, clock=FakeClock()) as client:
        hi = await client.post("/v1/chat/completions", json={"model": "auto", "messages": HI})
        review = await client.post("/v1/chat/completions", json={"model": "auto", "messages": CODE_REVIEW})
        streamed = await client.post(
            "/v1/chat/completions", json={"model": "auto", "messages": CODE_REVIEW, "stream": True}
        )
        fixed = await client.post("/v1/chat/completions", json={"model": "medium", "messages": HI})
    assert hi.status_code == review.status_code == streamed.status_code == 200
    assert _header(hi)["level"] == "low" and _header(review)["level"] == "high"
    assert _header(streamed) == _header(review) and streamed.text.rstrip().endswith("data: [DONE]")
    assert "x-bkvy-classification" not in fixed.headers
    hi_tier = _tier_of(config, hi.headers["x-bkvy-provider"], hi.headers["x-bkvy-model"])
    assert _tier_of(config, review.headers["x-bkvy-provider"], review.headers["x-bkvy-model"]) > hi_tier


async def test_auto_on_v1_messages(demo_gateway: httpx.AsyncClient) -> None:
    body = {"model": "auto", "max_tokens": 100, "messages": CODE_REVIEW}
    response = await demo_gateway.post("/v1/messages", json=body)
    streamed = await demo_gateway.post("/v1/messages", json={**body, "stream": True})
    assert response.status_code == streamed.status_code == 200, response.text
    assert _header(response)["level"] == "high" and _header(streamed)["domain"] == "code"


async def test_the_record_carries_the_classification_and_no_text(fleet: SimFleet, tmp_path: Path) -> None:
    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        review = await client.post("/v1/chat/completions", json={"model": "auto", "messages": CODE_REVIEW})
        plain = await client.post("/v1/chat/completions", json={"model": "low", "messages": HI})
    assert review.status_code == plain.status_code == 200
    with open(tmp_path / "transactions.csv", newline="", encoding="utf-8") as handle:
        rows = {row["request_id"]: row for row in csv.DictReader(handle)}
    row = rows[review.headers["x-request-id"]]
    assert (row["intelligence_level"], row["domain"]) == ("high", "code")
    assert 0 < float(row["classification_confidence"]) <= 1
    assert "code_blocks=3" in row["classification_features"].split()
    other = rows[plain.headers["x-request-id"]]
    assert (other["domain"], other["classification_confidence"], other["classification_features"]) == ("", "", "")
    assert "race conditions" not in (tmp_path / "transactions.csv").read_text()


def _classifier_config(fleet: SimFleet, **classifier: object) -> Any:
    routing = {**demo_routing(), "classifier": {"model": "/".join(CLASSIFIER_MODEL), **classifier}}
    return build_config(demo_providers(fleet), routing, {})


def _classifier_calls(fleet: SimFleet) -> int:
    return fleet.servers[CLASSIFIER_MODEL[0]].stats.calls_by_model.get(CLASSIFIER_MODEL[1], 0)


async def test_the_classifier_model_decides_and_its_answer_is_cached(fleet: SimFleet, tmp_path: Path) -> None:
    # The sim answers a json_schema with each enum's first value: {"level": "low"}, whatever the prompt.
    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True)
    async with gateway(_classifier_config(fleet), clock=FakeClock(), settings=settings) as client:
        body = {"client_id": "t", "intelligence_level": "auto", "messages": CODE_REVIEW, "debug": True}
        first = await client.post("/llm/intelligence", json=body)
        second = await client.post("/llm/intelligence", json=body)
        calls = _classifier_calls(fleet)
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["classification"]["level"] == "low"  # the model's answer, not the heuristic's high
    assert "classifier=model" in first.json()["classification"]["features"]
    assert "classifier=cache" in second.json()["classification"]["features"]
    assert _header(second)["level"] == "low" and _header(second)["domain"] == "code"
    assert calls == 1 + (first.json()["model_used"] == CLASSIFIER_MODEL[1]) + (
        second.json()["model_used"] == CLASSIFIER_MODEL[1]
    )
    with open(tmp_path / "transactions.csv", newline="", encoding="utf-8") as handle:
        clients = [row["client_id"] for row in csv.DictReader(handle)]
    assert clients.count("bkvy-classifier") == 1  # a real, recorded call


async def test_a_slow_classifier_model_falls_back_to_the_heuristic(fleet: SimFleet, tmp_path: Path) -> None:
    fleet.servers[CLASSIFIER_MODEL[0]].knobs(CLASSIFIER_MODEL[1]).latency_ms = 5_000
    clock = FakeClock()
    settings = load_settings({}, log_dir=tmp_path, health_probe_enabled=False)
    async with gateway(_classifier_config(fleet, timeout_ms=500), clock=clock, settings=settings) as client:
        drive = FaultDriver(client, clock, fleet)
        body = {"client_id": "t", "intelligence_level": "auto", "messages": CODE_REVIEW, "debug": True}
        pending = asyncio.ensure_future(client.post("/llm/intelligence", json=body))
        await drive.settle()
        for _ in range(20):  # 0.1 s of fake time a step, at most 2 s: the 0.5 s deadline cuts it
            if pending.done():
                break
            await drive.advance(0.1)
        response = await asyncio.wait_for(pending, timeout=10)
    assert response.status_code == 200, response.text
    classification = response.json()["classification"]
    assert classification["level"] == "high" and "classifier=fallback_timeout" in classification["features"]


def test_an_unknown_classifier_model_is_a_config_error(fleet: SimFleet) -> None:
    import pytest

    from bkvy.core.config.gateway import ConfigError

    with pytest.raises(ConfigError, match=r"routing.json: classifier.model: 'openai/nope' .* Fix: use one of"):
        build_config(demo_providers(fleet), {**demo_routing(), "classifier": {"model": "openai/nope"}}, {})


async def test_a_reload_that_changes_the_classifier_empties_its_cache(fleet: SimFleet) -> None:
    async with gateway(_classifier_config(fleet), clock=FakeClock()) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        body = {"client_id": "t", "intelligence_level": "auto", "messages": CODE_REVIEW}
        assert (await client.post("/llm/intelligence", json=body)).status_code == 200
        assert len(services.classifier_cache) == 1
        services.config_source = lambda: _classifier_config(fleet)
        await services.reload(announce=False)
        assert len(services.classifier_cache) == 1  # the same classifier: its answers stand
        services.config_source = lambda: _classifier_config(fleet, timeout_ms=900)
        await services.reload(announce=False)
        assert len(services.classifier_cache) == 0


def _policed_classifier_config(fleet: SimFleet, action: str) -> Any:
    from bkvy.core.config.policy_config import build_policy

    config = _classifier_config(fleet)
    rules = {"rules": [{"name": "pii-rule", "match": {"pii": True}, "action": action}]}
    return config.model_copy(update={"policy": build_policy(rules, config)})


EMAIL_PROMPT = [{"role": "user", "content": "Review this module for race conditions, then write to ana@example.org"}]


async def test_the_classifier_model_is_not_asked_where_policy_forbids_it(fleet: SimFleet) -> None:
    # require_private: the classifier model (openai, not private) may not see this request; the heuristic decides.
    async with gateway(_policed_classifier_config(fleet, "require_private"), clock=FakeClock()) as client:
        body = {"client_id": "t", "intelligence_level": "auto", "messages": EMAIL_PROMPT, "debug": True}
        reply = await client.post("/llm/intelligence", json=body)
    assert reply.status_code == 200, reply.text
    assert "classifier=skipped_policy" in reply.json()["classification"]["features"]
    assert _classifier_calls(fleet) == 0


async def test_the_classifier_model_sees_the_request_as_policy_lets_it_leave(fleet: SimFleet) -> None:
    received = fleet.servers[CLASSIFIER_MODEL[0]].record_bodies()
    async with gateway(_policed_classifier_config(fleet, "redact"), clock=FakeClock()) as client:
        body = {"client_id": "t", "intelligence_level": "auto", "messages": EMAIL_PROMPT, "debug": True}
        reply = await client.post("/llm/intelligence", json=body)
    assert reply.status_code == 200, reply.text
    assert "classifier=model" in reply.json()["classification"]["features"]
    assert received and all("ana@example.org" not in sent for sent in received)
    assert any("[REDACTED:email]" in sent for sent in received)
