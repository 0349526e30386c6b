"""A scenario of two candidates on the simulated fleet with an adaptive strategy (issue 18 §3's e2e tests)."""

from __future__ import annotations

from typing import Any

import httpx

from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.sim import SimFleet
from tests.e2e.fault_driver import (
    FALLBACK,
    FALLBACK_KEY_ID,
    FALLBACK_MODEL,
    PRIMARY,
    PRIMARY_KEY_ID,
    PRIMARY_MODEL,
    attempts_of,
    scenario_body,
    two_provider_config,
)

ROUTE = "scenario:chat"
PRIMARY_ARM, FALLBACK_ARM = (PRIMARY, PRIMARY_MODEL), (FALLBACK, FALLBACK_MODEL)
__all__ = ["FALLBACK_ARM", "FALLBACK_KEY_ID", "PRIMARY_ARM", "PRIMARY_KEY_ID", "ROUTE", "adaptive_config"]


def adaptive_config(fleet: SimFleet, **knobs: float) -> GatewayConfig:
    """fault_driver's two-provider scenario 'chat' (primary, then fallback), its strategy adaptive."""
    base = two_provider_config(fleet)
    providers = {
        name: provider.model_dump(mode="json", exclude_unset=True) for name, provider in base.providers.items()
    }
    for provider in providers.values():
        provider["keys"] = {key_id: {"api_key": key["api_key"]} for key_id, key in provider["keys"].items()}
    routing: dict[str, Any] = base.routing.model_dump(mode="json", exclude={"strategies", "adaptive"})
    routing["strategies"] = {ROUTE: "adaptive"}
    routing["adaptive"] = knobs
    return build_config(providers, routing, {})


async def first_choices(client: httpx.AsyncClient, count: int) -> list[str]:
    """Send ``count`` requests one after the other; the provider each tried first."""
    firsts = []
    for _ in range(count):
        response = await client.post("/llm/scenario", json=scenario_body())
        assert response.status_code == 200, response.text
        firsts.append(attempts_of(response.json())[0]["provider"])
    return firsts
