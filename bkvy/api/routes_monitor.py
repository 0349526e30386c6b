"""Read-only monitoring endpoints (SPEC §4). Key ids only, never key values."""

from __future__ import annotations

from fastapi import Request

from bkvy.api.deps import services_of
from bkvy.core.routing.plan import CandidateKey
from bkvy.models.types import IntelligenceLevel
from bkvy.utils.records import utc_timestamp
from bkvy.utils.scrubber import redact_url


async def health(request: Request) -> dict:
    services = services_of(request)
    shared = services.shared
    is_degraded = shared is not None and not shared.is_up
    return {
        "status": "degraded" if is_degraded else "ok",
        **({"degraded_reason": shared.down_reason} if is_degraded and shared is not None else {}),
        **({"replica": shared.replica_id} if shared is not None else {}),  # host:pid:random, with REDIS_URL
        "providers": len(services.config.providers),
        "models": sum(len(p.models) for p in services.config.providers.values()),
        "scenarios": len(services.config.routing.scenarios),
        "config_loaded_at": utc_timestamp(services.config_loaded_wall),  # start-up or the last reload
        "config_hash": services.config_hash,  # of the validated config, key values included (never shown)
    }


async def providers(request: Request) -> dict:
    config = services_of(request).config
    return {
        "providers": {
            name: {
                "type": provider.type.value,
                "base_url": redact_url(provider.base_url),  # no user:pass@, no ?api-key=
                "keys": sorted(provider.keys),
                "models": {
                    model_name: {
                        "intelligence_tier": model.intelligence_tier.value if model.intelligence_tier else None,
                        "input_cost_per_1k": model.input_price_per_1k,
                        "output_cost_per_1k": model.output_price_per_1k,
                        "supports_thinking": model.supports_thinking,
                        "capabilities": list(model.capabilities),
                    }
                    for model_name, model in provider.models.items()
                },
            }
            for name, provider in config.providers.items()
        }
    }


async def intelligence(request: Request, level: IntelligenceLevel) -> dict:
    services = services_of(request)
    rows = []
    for provider_name, provider in services.config.providers.items():
        for model_name, model in provider.models.items():
            if model.intelligence_tier is not level:
                continue
            for key_id in provider.key_ids_for(model_name):
                state = services.executor.candidate_state(CandidateKey(provider_name, model_name, key_id))
                rows.append(
                    {
                        "provider": provider_name,
                        "model": model_name,
                        "key_id": key_id,
                        "input_cost_per_1k": model.input_price_per_1k,
                        "output_cost_per_1k": model.output_price_per_1k,
                        "expected_latency_seconds": round(state.expected_latency_seconds, 3),
                        "rate_limit_wait_seconds": round(state.rate_limit_wait_seconds, 3),
                        "circuit_closed": state.is_closed,
                    }
                )
    return {"level": level.value, "candidates": rows}


async def scenarios(request: Request) -> dict:
    config = services_of(request).config
    return {
        "scenarios": {
            name: [
                {"provider": e.provider, "model": e.model, "priority": e.priority} for e in config.scenario(name) or []
            ]
            for name in config.routing.scenarios
        }
    }


async def queue_status(request: Request) -> dict:
    lanes = services_of(request).limiter.status()
    queued = [lane for lane in lanes if lane["queue_depth"]]
    return {"total_queued": sum(int(str(lane["queue_depth"])) for lane in lanes), "queues": queued}


async def rates_status(request: Request) -> dict:
    return {"lanes": services_of(request).limiter.status()}
