"""Replicas of one model end to end: four simulated vLLM-like servers on loopback behind the real app, a FakeClock
for every wait. Same session → same replica; a replica whose circuit opens hands its sessions to the next one on
the ring, the others stay; a replica saturated per /metrics is avoided; a model without endpoints is as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import RoutingMethod
from bkvy.sim import ModelKnobs, SimServer
from tests.conftest import gateway
from tests.e2e.replicas import services_of

MODEL = "llama"
SESSIONS = [f"session-{n}" for n in range(24)]


@pytest.fixture
async def servers() -> AsyncIterator[list[SimServer]]:
    started = [SimServer("openai_compatible", seed=n, models={MODEL: ModelKnobs()}) for n in range(4)]
    for server in started:
        await server.start("127.0.0.1")
    try:
        yield started
    finally:
        for server in started:
            await server.stop()


def _config(servers: list[SimServer], **model_extra: object) -> GatewayConfig:
    replicated = {
        "intelligence_tier": "low",
        "cost_per_1k_tokens": 0.0,
        "endpoints": [s.base_url for s in servers],
        **model_extra,
    }
    plain = {"intelligence_tier": "medium", "cost_per_1k_tokens": 0.0}
    return build_config(
        {
            "vllm": {"type": "openai_compatible", "models": {MODEL: replicated}},
            "single": {"type": "openai_compatible", "base_url": servers[0].base_url, "models": {"mistral": plain}},
        },
        {},
        {},
    )


def _body(session: str | None = None, content: str = "Hello there.") -> dict:
    options = {"session_id": session} if session else {}
    return {
        "client_id": "e2e",
        "provider": "vllm",
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "options": options,
        "debug": True,
    }


async def _replica_of(client: httpx.AsyncClient, session: str | None = None, content: str = "Hello there.") -> str:
    reply = await client.post("/llm/direct", json=_body(session, content))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["key_used"])


async def test_the_same_session_always_reaches_the_same_replica(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        first = {session: await _replica_of(client, session) for session in SESSIONS}
        again = {session: await _replica_of(client, session) for session in SESSIONS}
    assert first == again
    assert len(set(first.values())) >= 3  # sessions spread over the replicas
    assert sum(s.calls_for(MODEL) for s in servers) == 2 * len(SESSIONS)


async def test_without_a_session_the_conversations_opening_decides(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        replicas = {await _replica_of(client, content="Tell me about the sea.") for _ in range(5)}
        openai_reply = await client.post(
            "/v1/chat/completions",
            json={"model": f"vllm/{MODEL}", "messages": [{"role": "user", "content": "x"}], "user": "u-1"},
        )
    assert len(replicas) == 1
    assert openai_reply.status_code == 200


async def test_a_replica_whose_circuit_opens_hands_its_sessions_to_the_next(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        before = {session: await _replica_of(client, session) for session in SESSIONS}
        down = before[SESSIONS[0]]
        servers[int(down.split("@")[1])].knobs(MODEL).down = True  # 503 from now on
        moved = [s for s in SESSIONS if before[s] == down]
        for session in moved:  # fail over: each of its sessions still gets an answer
            await _replica_of(client, session)
        circuits = (await client.get("/circuits/status")).json()["circuits"]
        assert {c["key_id"]: c["state"] for c in circuits if c["model"] == MODEL}[down] == "open"
        after = {session: await _replica_of(client, session) for session in SESSIONS}
        ring = services_of(client).executor.replicas._models[("vllm", MODEL)].ring
    for session in SESSIONS:
        if before[session] == down:
            assert after[session] == f"default@{ring.walk(session)[1]}"  # the next replica on the ring
        else:
            assert after[session] == before[session]  # the others stay where their cache is


async def test_a_replica_saturated_per_its_metrics_is_avoided_until_it_recovers(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        services = services_of(client)
        assert services.replica_poller is not None
        session = SESSIONS[0]
        usual = await _replica_of(client, session)
        async with httpx.AsyncClient() as http:
            busy = servers[int(usual.split("@")[1])].base_url
            await http.post(busy + "/_sim/gauges", json={"waiting": 50})
            services.clock.advance(5.0)  # type: ignore[attr-defined]  # the next read is due
            await services.replica_poller.poll_due()
            assert services.executor.replica_health.saturated_urls == {busy}
            assert await _replica_of(client, session) != usual
            await http.post(busy + "/_sim/gauges", json={"waiting": None})
            services.clock.advance(5.0)  # type: ignore[attr-defined]
            await services.replica_poller.poll_due()
        assert await _replica_of(client, session) == usual


async def test_round_robin_spreads_one_session_over_every_replica(servers: list[SimServer]) -> None:
    async with gateway(_config(servers, balancing="round_robin"), clock=FakeClock()) as client:
        replicas = [await _replica_of(client, "one-session") for _ in range(8)]
    assert replicas == [f"default@{n % 4}" for n in range(8)]


async def test_a_model_without_endpoints_is_routed_as_before(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        body = {**_body("s"), "provider": "single", "model": "mistral"}
        reply = await client.post("/llm/direct", json=body)
        assert reply.status_code == 200 and reply.json()["key_used"] == "default"
        executor = services_of(client).executor
        assert executor.replicas is not None
        plan = executor.plan(RouteRequest(RoutingMethod.DIRECT, provider="single", model="mistral"))
        assert executor.replicas.order(plan, lambda: "never asked") is plan
    assert servers[0].calls_for("mistral") == 1


async def test_a_session_id_that_is_not_a_string_is_a_422(servers: list[SimServer]) -> None:
    async with gateway(_config(servers), clock=FakeClock()) as client:
        reply = await client.post("/llm/direct", json={**_body(), "options": {"session_id": 12}})
        openai_reply = await client.post(
            "/v1/chat/completions",
            json={"model": f"vllm/{MODEL}", "messages": [{"role": "user", "content": "x"}], "bkvy": {"session_id": ""}},
        )
    assert reply.status_code == 422 and reply.json()["success"] is False
    assert openai_reply.status_code in (400, 422) and "session_id" in openai_reply.text


async def test_the_keys_rate_limit_applies_to_each_replica(servers: list[SimServer]) -> None:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0, "endpoints": [s.base_url for s in servers]}
    keys = {"default": {"api_key": "", "rate_limits": {MODEL: {"rpm": 1}}}}
    config = build_config({"vllm": {"type": "openai_compatible", "keys": keys, "models": {MODEL: model}}}, {}, {})
    async with gateway(config, clock=FakeClock()) as client:
        served = [await _replica_of(client, "one-session") for _ in range(4)]
        refused = await client.post("/llm/direct", json=_body("one-session"))
    assert sorted(served) == [f"default@{n}" for n in range(4)]  # a full replica passes the session on
    assert refused.status_code == 429
