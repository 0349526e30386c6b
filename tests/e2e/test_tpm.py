"""tpm end to end (issue 15, item 4): the real app over httpx's ASGI transport, real HTTP to the simulated OpenAI
and Anthropic providers, a FakeClock for the gateway's windows.

A ``tpm`` in providers.json is enforced (a request is reserved its prompt estimate and ``max_tokens``, settled to
the usage the provider reports, refused with 429 and Retry-After when it cannot fit), and a provider's own token
headers keep the gateway from sending what the provider would refuse.

Figures: "Say something short." is 20 characters, estimated at 6 prompt tokens; with ``max_tokens: 20`` a
request reserves 26. The sim bills it 8 prompt + 16 completion = 24 tokens.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

KEY = "sk-sim-tpm"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}
BODY_MESSAGES = [{"role": "user", "content": "Say something short."}]
RESERVED, BILLED = 26, 24


def _config(fleet: SimFleet, wire_format: str, *, tpm: int | None = None) -> GatewayConfig:
    limits = {"*": {"tpm": tpm}} if tpm is not None else {}
    providers = {
        "only": {
            "type": wire_format,
            "base_url": fleet.base_url(wire_format),
            "keys": {"k1": {"api_key": KEY, "rate_limits": limits}},
            "models": {
                MODELS[wire_format]: {
                    "intelligence_tier": "low",
                    "cost_per_1k_tokens": 0.001,
                    "expected_latency_ms": 50,
                }
            },
        }
    }
    return build_config(providers, {}, {})


async def _ask(client: httpx.AsyncClient, wire_format: str) -> httpx.Response:
    body: dict[str, Any] = {"model": f"only/{MODELS[wire_format]}", "messages": BODY_MESSAGES, "max_tokens": 20}
    return await client.post("/v1/chat/completions", json=body)


async def _lane(client: httpx.AsyncClient) -> dict[str, Any]:
    [lane] = (await client.get("/rates/status")).json()["lanes"]
    return lane


@pytest.mark.parametrize("wire_format", ["openai", "anthropic"])
async def test_a_configured_tpm_is_enforced_settled_to_billed_usage_and_refused_with_retry_after(
    fleet: SimFleet, fake_clock: FakeClock, wire_format: str
) -> None:
    server = fleet.servers[wire_format]
    async with gateway(_config(fleet, wire_format, tpm=100), clock=fake_clock) as client:
        for sent in range(1, 5):
            response = await _ask(client, wire_format)
            assert response.status_code == 200, response.text
            assert (await _lane(client))["used"] == {"tpm": BILLED * sent}  # settled, not the 26 reserved
        refused = await _ask(client, wire_format)  # 96 + 26 > 100
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["retry-after"] == "60"  # until the first start's 24 tokens leave the window
        assert server.stats.calls_for_key(KEY) == 4
        fake_clock.advance(60.0)
        assert (await _ask(client, wire_format)).status_code == 200
        assert (await _lane(client))["limits"] == {"tpm": 100}


@pytest.mark.parametrize("wire_format", ["openai", "anthropic"])
async def test_provider_token_headers_hold_the_lane_before_the_provider_refuses(
    fleet: SimFleet, fake_clock: FakeClock, wire_format: str
) -> None:
    server = fleet.servers[wire_format]
    server.knobs(MODELS[wire_format]).tpm_limit = 60  # the provider's own limit; none in our config
    async with gateway(_config(fleet, wire_format), clock=fake_clock) as client:
        assert (await _ask(client, wire_format)).status_code == 200  # 36 left: a like request (26) fits
        assert (await _ask(client, wire_format)).status_code == 200  # 12 left: it would not
        held = await _ask(client, wire_format)
        assert held.status_code == 429 and 55 <= int(held.headers["retry-after"]) <= 60
        assert server.stats.calls_for_key(KEY) == 2
        assert server.stats.failures_by_kind["rate_limited"] == 0  # no 429 was spent finding out
        assert (await _lane(client))["blocked_by_provider_seconds"] > 55
