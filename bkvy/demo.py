"""``python main.py --demo``: the simulated fleet on loopback plus a config that covers every feature."""

from __future__ import annotations

from typing import Any

from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.config.policy_config import build_policy
from bkvy.sim import SimFleet


def _model(
    tier: str,
    input_cost: float,
    output_cost: float,
    latency_ms: float,
    *,
    thinking: dict[str, Any] | None = None,
    capabilities: tuple[str, ...] = ("json",),
    quality: float | dict[str, float] | None = None,
) -> dict[str, Any]:
    """``thinking``: the model's reasoning switch (docs/CONFIGURATION.md "Thinking control"); None: it does not
    think. ``quality``: 0–1 from a public leaderboard (docs/ROUTING.md "Quality-aware scoring"); None: its tier's
    default."""
    model: dict[str, Any] = {
        "intelligence_tier": tier,
        "input_cost_per_1k": input_cost,
        "output_cost_per_1k": output_cost,
        "expected_latency_ms": latency_ms,
        "capabilities": list(capabilities),
    }
    if thinking is not None:
        model["thinking"] = thinking
    if quality is not None:
        model["quality"] = quality
    return model


def _embedding_model(input_cost: float, latency_ms: float) -> dict[str, Any]:
    return {"capabilities": ["embeddings"], "input_cost_per_1k": input_cost, "expected_latency_ms": latency_ms}


def demo_providers(fleet: SimFleet) -> dict[str, Any]:
    """Provider config pointing at ``fleet``; the keys are dummies the simulator accepts."""
    small = {"rpm": 20, "rpd": 2000}
    return {
        "openai": {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {
                "openai_key_1": {"api_key": "demo-openai-1", "rate_limits": {"*": small}},
                "openai_key_2": {"api_key": "demo-openai-2", "rate_limits": {"*": small}},
            },
            "models": {
                "gpt-4o-mini": _model(
                    "low", 0.00015, 0.0006, 400, capabilities=("json", "tools"), quality={"overall": 0.55, "code": 0.57}
                ),
                "gpt-4o": _model("medium", 0.0025, 0.01, 800, capabilities=("json", "tools", "vision")),
                # o-series: "low" is the least reasoning it takes ("minimal" and "none" are 400s)
                "o3-mini": _model(
                    "high",
                    0.0011,
                    0.0044,
                    1500,
                    thinking={"min_effort": "low"},
                    quality={"overall": 0.61, "code": 0.71},
                ),
                "text-embedding-3-small": _embedding_model(0.00002, 150),
                "text-embedding-3-large": _embedding_model(0.00013, 200),
            },
        },
        "anthropic": {
            "type": "anthropic",
            "base_url": fleet.base_url("anthropic"),
            "keys": {
                "anthropic_key_1": {"api_key": "demo-anthropic-1", "rate_limits": {"*": {"rpm": 10, "rpd": 1000}}}
            },
            "models": {
                "claude-3-5-haiku-latest": _model("low", 0.0008, 0.004, 500),
                "claude-sonnet-4-5": _model(
                    "high", 0.003, 0.015, 1200, thinking={"param": "budget_tokens", "budget": 4096}
                ),
            },
        },
        "gemini": {
            "type": "gemini",
            "base_url": fleet.base_url("gemini"),
            "keys": {"gemini_key_1": {"api_key": "demo-gemini-1", "rate_limits": {"*": small}}},
            "models": {
                "gemini-2.5-flash": _model(
                    "medium",
                    0.0003,
                    0.0025,
                    600,
                    thinking={"can_disable": True},
                    quality={"overall": 0.84, "code": 0.85},
                ),
                # thinkingBudget 128..32768: it cannot switch thinking off, so low requests get its floor
                "gemini-2.5-pro": _model(
                    "high",
                    0.00125,
                    0.01,
                    1400,
                    thinking={"can_disable": False, "min_budget": 128},
                    quality={"overall": 0.95, "code": 0.98},
                ),
                "gemini-embedding-001": _embedding_model(0.00015, 200),
            },
        },
        "ollama": {
            "type": "ollama",
            "base_url": fleet.base_url("ollama"),
            "models": {
                "llama3.2": _model("low", 0.0, 0.0, 700, quality=0.21),
                "nomic-embed-text": _embedding_model(0.0, 100),
            },
        },
        "vllm": {
            "type": "openai_compatible",
            "base_url": fleet.base_url("openai_compatible"),
            "models": {
                "qwen2.5-7b-instruct": _model("medium", 0.0001, 0.0001, 500),
                # Replicas (docs/ROUTING.md "Prefix affinity"): here one simulated server reached by two URLs.
                "llama-3.1-8b-instruct": {
                    **_model("low", 0.0003, 0.0012, 600),
                    "endpoints": [fleet.base_url("openai_compatible"), fleet.base_url("openai_compatible") + "/v1"],
                },
                "bge-m3": _embedding_model(0.00001, 100),
            },
        },
    }


# Data residency (docs/POLICY.md): each provider's models run in one region; ollama and vllm are self-hosted.
_REGIONS = {"openai": "us", "anthropic": "us", "gemini": "eu-west-1", "ollama": "on-prem", "vllm": "on-prem"}


def _placed(providers: dict[str, Any]) -> dict[str, Any]:
    """Every model with its provider's region; vllm's marked private (ollama's are by default)."""
    for name, provider in providers.items():
        for model in provider["models"].values():
            model["region"] = _REGIONS[name]
            if name == "vllm":
                model["private"] = True
    return providers


def demo_policy() -> dict[str, Any]:
    """config/policy.example.json's rules (docs/POLICY.md walks through each against --demo)."""
    return {
        "rules": [
            {
                "name": "redact-support",
                "scope": {"scenarios": ["customer_support"]},
                "match": {"pii_kinds": ["email", "phone"]},
                "action": "redact",
            },
            {
                "name": "no-pii-in-research",
                "scope": {"scenarios": ["research"]},
                "match": {"pii": True},
                "action": "block",
            },
            {"name": "block-secrets", "match": {"pii_kinds": ["secret"]}, "action": "block"},
            {"name": "pii-to-private", "match": {"pii": True}, "action": "require_private"},
            {"name": "restricted-on-prem", "match": {"data_class": "restricted"}, "action": "require_private"},
            {
                "name": "confidential-in-eu",
                "match": {"data_class": "confidential"},
                "action": "allow",
                "allowed_regions": ["eu-west-1", "on-prem"],
            },
        ],
        "residency": [
            {
                "name": "eu-data-stays-in-eu",
                "source_regions": ["eu-west-1", "eu-central-1"],
                "allowed_model_regions": ["eu-west-1", "on-prem"],
            }
        ],
    }


def demo_routing() -> dict[str, Any]:
    return {
        "scenarios": {
            "customer_support": [
                {"provider": "anthropic", "model": "claude-3-5-haiku-latest", "priority": 1},
                {"provider": "openai", "model": "gpt-4o-mini", "priority": 2},
            ],
            "research": [
                {"provider": "gemini", "model": "gemini-2.5-pro", "priority": 1},
                {"provider": "anthropic", "model": "claude-sonnet-4-5", "priority": 2},
                {"provider": "openai", "model": "o3-mini", "priority": 3},
            ],
            # Embedding models get scenarios of their own; one model keeps one vector space (its keys fail over).
            "search_index": [{"provider": "openai", "model": "text-embedding-3-small", "priority": 1}],
            # Adaptive (docs/ROUTING.md, "Adaptive choice"): the bandit learns which of these serves best.
            "adaptive_support": [
                {"provider": "anthropic", "model": "claude-3-5-haiku-latest", "priority": 1},
                {"provider": "openai", "model": "gpt-4o-mini", "priority": 2},
                {"provider": "vllm", "model": "qwen2.5-7b-instruct", "priority": 3},
            ],
        },
        "strategies": {"scenario:adaptive_support": "adaptive"},
        # Shadow traffic (docs/EVALUATION.md): every research answer is also asked of the self-hosted qwen, after
        # the reply went out, to compare success, latency, cost and similarity (GET /statistics/shadow).
        "shadow": {"scenario:research": {"models": ["vllm/qwen2.5-7b-instruct"], "sample_percent": 100}},
    }


def demo_providers_offline() -> dict[str, Any]:
    """The demo's providers.json without its fleet running: a placeholder loopback URL per provider (for tools
    that send nothing over the network: ``replay --write-demo-config``)."""
    fleet = SimFleet(seed=7)
    for wire_format, server in fleet.servers.items():
        server.base_url = f"http://127.0.0.1:9/{wire_format}"
    return _placed(demo_providers(fleet))


def demo_config(fleet: SimFleet) -> GatewayConfig:
    config = build_config(
        _placed(demo_providers(fleet)),
        demo_routing(),
        {},
        providers_file="<demo providers>",
        routing_file="<demo routing>",
    )
    return config.model_copy(update={"policy": build_policy(demo_policy(), config, policy_file="<demo policy>")})
