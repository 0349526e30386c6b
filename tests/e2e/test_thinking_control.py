"""Thinking control end to end (SPEC §5): the app over httpx's ASGI transport, real HTTP to the sim, whose models
take or refuse each vendor's parameter as the real APIs do. Each attempt's debug record says what was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.demo import demo_providers, demo_routing
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "Say something short."}]


def _direct(provider: str, model: str, **options: Any) -> dict[str, Any]:
    return {"client_id": "e2e", "provider": provider, "model": model, "messages": MESSAGES, "debug": True, **options}


def _attempts(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["metadata"]["attempts"]


@pytest.fixture
async def thinking_gateway(fleet: SimFleet, fake_clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The demo config plus a Qwen3 on the vLLM server and a gpt-oss on Ollama (both think)."""
    providers = demo_providers(fleet)
    qwen3 = {"intelligence_tier": "medium", "cost_per_1k_tokens": 0.0001, "supports_thinking": True}
    providers["vllm"]["models"]["qwen3-8b"] = qwen3
    gpt_oss = {"intelligence_tier": "medium", "cost_per_1k_tokens": 0.0, "thinking": {"can_disable": False}}
    providers["ollama"]["models"]["gpt-oss"] = gpt_oss
    fleet.servers["openai_compatible"].knobs("qwen3-8b").thinks = True
    ollama = fleet.servers["ollama"].knobs("gpt-oss")
    ollama.thinks, ollama.can_disable_thinking = True, False
    config = build_config(providers, demo_routing(), {}, providers_file="<test>", routing_file="<test>")
    async with gateway(config, clock=fake_clock) as client:
        yield client


async def test_gemini_model_that_cannot_switch_off_gets_its_floor(demo_gateway, fleet) -> None:
    # gemini-2.5-pro answers 400 to thinkingBudget 0; bkvy sent 0 before the model's floor was in its config.
    body = _direct("gemini", "gemini-2.5-pro", options={"disable_thinking": True})
    attempts = _attempts(await demo_gateway.post("/llm/direct", json=body))
    assert attempts[-1]["thinking"] == "off: generationConfig.thinkingConfig.thinkingBudget=128"
    assert fleet.servers["gemini"].stats.thinking_asks["gemini-2.5-pro"] == {"thinkingBudget=128": 1}


async def test_low_request_switches_a_gemini_model_off_that_can(demo_gateway, fleet) -> None:
    # Every low-tier model and the cheaper medium one are down: the fallback is gemini-2.5-flash (thinks).
    for server, model in (
        ("ollama", "llama3.2"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-3-5-haiku-latest"),
        ("openai_compatible", "qwen2.5-7b-instruct"),
        ("openai_compatible", "llama-3.1-8b-instruct"),
    ):
        fleet.servers[server].knobs(model).down = True
    body = {"client_id": "e2e", "intelligence_level": "low", "messages": MESSAGES, "debug": True}
    attempts = _attempts(await demo_gateway.post("/llm/intelligence", json=body))
    assert attempts[-1]["model"] == "gemini-2.5-flash"
    assert attempts[-1]["thinking"] == "off: generationConfig.thinkingConfig.thinkingBudget=0"
    assert [a["thinking"] for a in attempts[:-1]] == [None] * (len(attempts) - 1)  # models that do not think


async def test_high_request_enables_anthropic_thinking_with_room_for_the_answer(demo_gateway, fleet) -> None:
    fleet.servers["openai"].knobs("o3-mini").down = True
    fleet.servers["gemini"].knobs("gemini-2.5-pro").down = True
    body = {"client_id": "e2e", "intelligence_level": "high", "messages": MESSAGES, "debug": True}
    attempts = _attempts(await demo_gateway.post("/llm/intelligence", json=body))
    assert attempts[-1]["model"] == "claude-sonnet-4-5" and attempts[-1]["outcome"] == "success"
    assert attempts[-1]["thinking"] == "on: thinking.type=enabled thinking.budget_tokens=4096 max_tokens=8192"
    assert fleet.servers["anthropic"].stats.thinking_asks["claude-sonnet-4-5"] == {"thinking.budget_tokens=4096": 1}
    sent_to_the_others = {a["model"]: a["thinking"] for a in attempts[:-1]}
    assert sent_to_the_others == {
        "o3-mini": "on: reasoning_effort=medium",
        "gemini-2.5-pro": "on: generationConfig.thinkingConfig.thinkingBudget=-1",
    }


async def test_disable_thinking_leaves_anthropic_without_a_thinking_block(demo_gateway, fleet) -> None:
    body = _direct("anthropic", "claude-sonnet-4-5", options={"disable_thinking": True})
    attempts = _attempts(await demo_gateway.post("/llm/direct", json=body))
    assert attempts[-1]["thinking"] == "off: nothing sent"
    assert fleet.servers["anthropic"].stats.thinking_off_calls["claude-sonnet-4-5"] == 1
    assert not fleet.servers["anthropic"].stats.thinking_asks["claude-sonnet-4-5"]


async def test_openai_reasoning_model_gets_the_lowest_effort_it_takes(demo_gateway, fleet) -> None:
    body = _direct("openai", "o3-mini", options={"disable_thinking": True})
    attempts = _attempts(await demo_gateway.post("/llm/direct", json=body))
    assert attempts[-1]["thinking"] == "off: reasoning_effort=low"
    assert fleet.servers["openai"].stats.thinking_asks["o3-mini"] == {"reasoning_effort=low": 1}


async def test_vllm_qwen3_gets_chat_template_kwargs(thinking_gateway, fleet) -> None:
    body = _direct("vllm", "qwen3-8b", options={"disable_thinking": True})
    attempts = _attempts(await thinking_gateway.post("/llm/direct", json=body))
    assert attempts[-1]["thinking"] == "off: chat_template_kwargs.enable_thinking=false"
    stats = fleet.servers["openai_compatible"].stats
    assert stats.thinking_off_calls["qwen3-8b"] == 1
    assert stats.thinking_asks["qwen3-8b"] == {"chat_template_kwargs.enable_thinking=false": 1}


async def test_ollama_gpt_oss_gets_its_lowest_level_not_false(thinking_gateway, fleet) -> None:
    body = _direct("ollama", "gpt-oss", options={"disable_thinking": True})
    attempts = _attempts(await thinking_gateway.post("/llm/direct", json=body))
    assert attempts[-1]["thinking"] == "off: think=low"
    assert fleet.servers["ollama"].stats.thinking_asks["gpt-oss"] == {"think=low": 1}


async def test_medium_request_asks_nothing(thinking_gateway, fleet) -> None:
    attempts = _attempts(await thinking_gateway.post("/llm/direct", json=_direct("vllm", "qwen3-8b")))
    assert attempts[-1]["thinking"] is None
    assert not fleet.servers["openai_compatible"].stats.thinking_asks["qwen3-8b"]
