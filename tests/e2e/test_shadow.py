"""Shadow traffic end to end on the simulated fleet (issue 20 §2): sampled requests reach each shadow model after
the reply was sent, within policy and the caps, and only numbers are kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from bkvy.api.app import create_app
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings, load_settings
from bkvy.core.config.shadow_config import ShadowRoute
from bkvy.core.upstream.transport import AiohttpTransport
from bkvy.demo import demo_config
from bkvy.models.types import UpstreamReply, UpstreamRequest
from bkvy.sim import SimFleet

PROMPT = "zebra-quartz-7781 please summarise the plan"
SHADOWS = ("gemini/gemini-2.5-flash", "openai/gpt-4o")  # neither is a "low" model: never a low route's primary


def _shadowed(fleet: SimFleet, models: tuple[str, ...] = SHADOWS, percent: float = 100.0) -> GatewayConfig:
    config = demo_config(fleet)
    shadow = {"low": ShadowRoute(models=models, sample_percent=percent)}
    return config.model_copy(update={"routing": config.routing.model_copy(update={"shadow": shadow})})


class _GatedTransport:
    """The real transport; sends to a shadow model wait for ``gate``; every send is logged in ``events``."""

    def __init__(self, events: list[str]) -> None:
        self.inner = AiohttpTransport()
        self.events = events
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        shadow = next((name for name in SHADOWS if name.split("/")[1] in request.url + str(request.json_body)), None)
        self.events.append(f"upstream:{shadow or 'primary'}")
        if shadow is not None:
            await asyncio.wait_for(self.gate.wait(), timeout=10)
        return await self.inner.send(request)

    def stream(self, request: UpstreamRequest):
        return self.inner.stream(request)


@contextlib.asynccontextmanager
async def _gateway(
    config: GatewayConfig, settings: Settings, transport: _GatedTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind httpx; with ``transport``, every response body sent is logged in its ``events``."""
    app = create_app(settings, config, clock=FakeClock(), transport=transport)
    asgi: Callable[..., Awaitable[None]] = app
    if transport is not None:
        await transport.inner.start()

        async def recording(scope, receive, send) -> None:
            async def logged(message) -> None:
                if message["type"] == "http.response.body" and scope.get("path", "").startswith("/llm/"):
                    transport.events.append("reply_sent")
                await send(message)

            await app(scope, receive, logged)

        asgi = recording
    try:
        async with app.router.lifespan_context(app):
            http = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=http, base_url="http://bkvy.test") as client:
                client.app = app  # type: ignore[attr-defined]
                yield client
    finally:
        if transport is not None:
            await transport.inner.close()


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings({}, log_dir=tmp_path, transaction_logging=True, summary_stats=True, **overrides)


async def _ask(client: httpx.AsyncClient, **extra: object) -> httpx.Response:
    body = {"client_id": "shadow-test", "intelligence_level": "low", "messages": [{"role": "user", "content": PROMPT}]}
    response = await client.post("/llm/intelligence", json=body | extra)
    assert response.status_code == 200, response.text
    return response


async def _drain(client: httpx.AsyncClient) -> None:
    await client.app.state.services.shadow.drain(10.0)  # type: ignore[attr-defined]


async def test_sampled_requests_reach_each_shadow_and_only_numbers_are_kept(fleet: SimFleet, tmp_path: Path) -> None:
    answers = []
    async with _gateway(_shadowed(fleet), _settings(tmp_path)) as client:
        for _ in range(4):
            answers.append((await _ask(client)).json()["content"])
        await _drain(client)
        stats = (await client.get("/statistics/shadow")).json()
    low = stats["routes"]["low"]
    assert low["primary"]["calls"] == 4 and low["primary"]["success_rate"] == 1.0
    for name in SHADOWS:
        row = low[name]
        assert row["calls"] == 4 and row["success_rate"] == 1.0, row
        assert row["mean_similarity"] is not None and 0.0 <= row["mean_similarity"] <= 1.0
        assert row["cost_per_request_usd"] > 0 and row["p95_ms"] is not None
        assert row["finish_reasons"] == {"stop": 4}
    assert stats["configured"]["low"]["sample_percent"] == 100.0
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "shadow_stats.json" for path in files)
    for path in files:  # the transaction log, daily statistics, shadow_stats.json...
        text = path.read_bytes().decode("utf-8", "replace")
        assert "zebra-quartz-7781" not in text, path.name
        assert all(answer not in text for answer in answers if len(answer) > 8), path.name


async def test_no_sample_no_shadow_call(fleet: SimFleet, tmp_path: Path) -> None:
    events: list[str] = []
    async with _gateway(_shadowed(fleet, percent=0.0), _settings(tmp_path), _GatedTransport(events)) as client:
        for _ in range(5):
            await _ask(client)
        await _drain(client)
        stats = (await client.get("/statistics/shadow")).json()
    assert stats["routes"] == {} and events.count("reply_sent") == 5
    assert not [event for event in events if event.startswith("upstream:") and event != "upstream:primary"]


async def test_the_reply_is_sent_before_any_shadow_call_starts(fleet: SimFleet, tmp_path: Path) -> None:
    events: list[str] = []
    transport = _GatedTransport(events)
    async with _gateway(_shadowed(fleet), _settings(tmp_path), transport) as client:
        await _ask(client)
        await _drain(client)
    shadow_events = [i for i, event in enumerate(events) if event in {f"upstream:{name}" for name in SHADOWS}]
    assert len(shadow_events) == len(SHADOWS), events  # (health probes may log "upstream:primary" sends too)
    assert events.index("reply_sent") < min(shadow_events), events


async def test_a_shadow_model_the_policy_disallows_is_skipped(fleet: SimFleet, tmp_path: Path) -> None:
    async with _gateway(_shadowed(fleet), _settings(tmp_path)) as client:
        # "confidential-in-eu" (demo policy): only eu-west-1 and on-prem models; openai runs in "us"
        await _ask(client, data_class="confidential")
        await _drain(client)
        low = (await client.get("/statistics/shadow")).json()["routes"]["low"]
    assert low["openai/gpt-4o"]["calls"] == 0 and low["openai/gpt-4o"]["skipped"] == {"policy": 1}
    assert low["gemini/gemini-2.5-flash"]["calls"] == 1


async def test_excess_shadows_are_dropped_at_the_concurrency_cap(fleet: SimFleet, tmp_path: Path) -> None:
    transport = _GatedTransport([])
    transport.gate.clear()  # shadow calls stay in flight until the gate opens
    settings = _settings(tmp_path, shadow_max_concurrency=2)
    async with _gateway(_shadowed(fleet, ("openai/gpt-4o",)), settings, transport) as client:
        for _ in range(5):
            await _ask(client)
        runner = client.app.state.services.shadow  # type: ignore[attr-defined]
        assert runner.in_flight == 2
        transport.gate.set()
        await _drain(client)
        stats = (await client.get("/statistics/shadow")).json()
    row = stats["routes"]["low"]["openai/gpt-4o"]
    assert row["calls"] == 2 and row["skipped"] == {"concurrency": 3}
    assert stats["dropped_at_concurrency_cap"] == 3


async def test_the_daily_budget_stops_shadow_calls(fleet: SimFleet, tmp_path: Path) -> None:
    transport = _GatedTransport([])
    transport.gate.clear()
    # gpt-4o at $0.01 per 1k output tokens: max_tokens 2000 makes each call's estimate ~$0.02
    settings = _settings(tmp_path, shadow_daily_budget_usd=0.03)
    async with _gateway(_shadowed(fleet, ("openai/gpt-4o",)), settings, transport) as client:
        for _ in range(3):
            await _ask(client, options={"max_tokens": 2000})
        transport.gate.set()
        await _drain(client)
        stats = (await client.get("/statistics/shadow")).json()
    row = stats["routes"]["low"]["openai/gpt-4o"]
    assert row["calls"] == 1 and row["skipped"] == {"budget": 2}
    assert 0 < stats["spent_today_usd"] <= 0.03


async def test_a_zero_budget_sends_no_shadow(fleet: SimFleet, tmp_path: Path) -> None:
    settings = _settings(tmp_path, shadow_daily_budget_usd=0.0)
    async with _gateway(_shadowed(fleet), settings) as client:
        await _ask(client)
        await _drain(client)
        low = (await client.get("/statistics/shadow")).json()["routes"]["low"]
    assert all(low[name]["calls"] == 0 and low[name]["skipped"] == {"budget": 1} for name in SHADOWS)


async def test_a_zero_budget_sends_no_shadow_even_to_a_free_model(fleet: SimFleet, tmp_path: Path) -> None:
    # ollama/llama3.2 costs 0 in the demo: its estimate is 0, and "0 + 0 > 0" used to let it through
    settings = _settings(tmp_path, shadow_daily_budget_usd=0.0)
    async with _gateway(_shadowed(fleet, ("ollama/llama3.2",)), settings) as client:
        for _ in range(2):
            await _ask(client)
        await _drain(client)
        row = (await client.get("/statistics/shadow")).json()["routes"]["low"]["ollama/llama3.2"]
    assert row["calls"] == 0 and row["skipped"] == {"budget": 2}


async def test_cache_hits_are_not_shadowed_or_tallied(fleet: SimFleet, tmp_path: Path) -> None:
    """Only the miss (the one upstream call) is shadowed; hits, plain or streamed, reach no shadow model and do
    not count as primary calls (their latency and cost 0 would skew the primary's numbers)."""
    async with _gateway(_shadowed(fleet), _settings(tmp_path)) as client:
        for _ in range(3):
            response = await _ask(client, options={"cache": True})
        assert response.headers["x-bkvy-cache"] == "hit"
        body = {"model": "low", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        body["bkvy"] = {"cache": True, "client_id": "shadow-test"}
        async with client.stream("POST", "/v1/chat/completions", json=body) as streamed:
            assert streamed.status_code == 200 and streamed.headers["x-bkvy-cache"] == "hit"
            async for _ in streamed.aiter_bytes():
                pass
        await _drain(client)
        low = (await client.get("/statistics/shadow")).json()["routes"]["low"]
    assert low["primary"]["calls"] == 1, low["primary"]
    assert all(low[name]["calls"] == 1 for name in SHADOWS), low


async def test_a_stream_is_shadowed_after_it_ends(fleet: SimFleet, tmp_path: Path) -> None:
    events: list[str] = []
    async with _gateway(_shadowed(fleet), _settings(tmp_path), _GatedTransport(events)) as client:
        body = {"model": "low", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for _ in response.aiter_bytes():
                pass
        await _drain(client)
        low = (await client.get("/statistics/shadow")).json()["routes"]["low"]
    for name in SHADOWS:  # a stream's text is relayed, not kept: nothing to compare it with
        assert low[name]["calls"] == 1 and low[name]["mean_similarity"] is None


async def test_a_request_policy_blocked_is_never_shadowed(fleet: SimFleet, tmp_path: Path) -> None:
    # the demo shadows scenario:research to vllm/qwen2.5-7b-instruct; "no-pii-in-research" blocks PII there
    events: list[str] = []
    async with _gateway(demo_config(fleet), _settings(tmp_path), _GatedTransport(events)) as client:
        body = {"client_id": "t", "scenario": "research", "messages": [{"role": "user", "content": "mail a@b.example"}]}
        assert (await client.post("/llm/scenario", json=body)).status_code == 400
        body["messages"] = [{"role": "user", "content": PROMPT}]
        assert (await client.post("/llm/scenario", json=body)).status_code == 200
        await _drain(client)
        research = (await client.get("/statistics/shadow")).json()["routes"]["scenario:research"]
    assert research["primary"]["calls"] == 2 and research["primary"]["success_rate"] == 0.5
    assert research["vllm/qwen2.5-7b-instruct"]["calls"] == 1


async def test_failing_shadows_never_touch_circuits_latency_or_records(fleet: SimFleet, tmp_path: Path) -> None:
    fleet.servers["openai"].knobs("gpt-4o").down = True  # every shadow call to it fails
    settings = _settings(tmp_path, health_probe_enabled=False)  # a probe of the downed model would count
    async with _gateway(_shadowed(fleet, ("openai/gpt-4o",)), settings) as client:
        for _ in range(6):  # past CIRCUIT_FAILURE_THRESHOLD (3) if shadows fed the breaker
            await _ask(client)
        await _drain(client)
        services = client.app.state.services  # type: ignore[attr-defined]
        row = (await client.get("/statistics/shadow")).json()["routes"]["low"]["openai/gpt-4o"]
        learned = {(m["provider"], m["model"]) for m in services.latency.to_dict()["models"]}
        touched = [s for s in services.circuits.snapshots() if s.calls_in_window or s.consecutive_failures]
        day = (await client.get("/statistics/summary")).json()["today"]
    assert row["calls"] == 6 and row["success_rate"] == 0.0
    assert ("openai", "gpt-4o") not in learned
    assert all(s.key.model != "gpt-4o" and s.state.value == "closed" for s in touched), touched
    assert day["total"] == 6  # the primary requests only: shadow calls are not records
