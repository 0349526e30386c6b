"""The response cache end to end (issue 20 §1): real app over httpx's ASGI transport, the simulated fleet on
loopback, a FakeClock (nothing sleeps). A hit makes no upstream call, says so in its headers and its record."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import httpx

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "Say something short."}]
ON = {"x-bkvy-cache": "on"}
ADMIN = {"X-Admin-API-Key": "admin-secret"}


def upstream_calls(fleet: SimFleet) -> int:
    return sum(sum(server.stats.calls_by_model.values()) for server in fleet.servers.values())


def cached_config(fleet: SimFleet, **routing: object) -> GatewayConfig:
    config = demo_config(fleet)
    return config.model_copy(update={"routing": config.routing.model_copy(update=routing)})


def direct(**extra: object) -> dict[str, object]:
    return {"client_id": "e2e", "provider": "openai", "model": "gpt-4o-mini", "messages": MESSAGES, **extra}


def chat(**extra: object) -> dict[str, object]:
    return {"model": "openai/gpt-4o-mini", "messages": MESSAGES, **extra}


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def test_llm_hit_makes_no_upstream_call_and_says_so(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        first = await client.post("/llm/direct", json=direct(options={"cache": True}))
        calls = upstream_calls(fleet)
        second = await client.post("/llm/direct", json=direct(options={"cache": True}, debug=True))
        assert first.status_code == second.status_code == 200, second.text
        assert first.headers["x-bkvy-cache"] == "miss" and "x-bkvy-cache-age" not in first.headers
        assert second.headers["x-bkvy-cache"] == "hit" and second.headers["x-bkvy-cache-age"] == "0"
        assert upstream_calls(fleet) == calls
        assert second.json()["content"] == first.json()["content"]
        assert second.json()["cost_estimate_usd"] == 0 and second.json()["decision_reason"] == "cache_hit"


async def test_no_opt_in_is_todays_path(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        for _ in range(2):
            response = await client.post("/llm/direct", json=direct())
            assert "x-bkvy-cache" not in response.headers
        assert upstream_calls(fleet) == 2


async def test_header_off_and_route_false_refuse_the_cache(fleet: SimFleet) -> None:
    config = cached_config(fleet, cache_routes={"openai/gpt-4o-mini": False, "low": True})
    async with gateway(config, clock=FakeClock()) as client:
        for _ in range(2):
            response = await client.post("/llm/direct", json=direct(options={"cache": True}))
            assert "x-bkvy-cache" not in response.headers  # its route is false: an opt-in does not override
        level = {"client_id": "e2e", "intelligence_level": "low", "messages": MESSAGES}
        by_default = await client.post("/llm/intelligence", json=level)
        assert by_default.headers["x-bkvy-cache"] == "miss"  # "low": true caches without an opt-in
        refused = await client.post("/llm/intelligence", json=level, headers={"x-bkvy-cache": "off"})
        assert "x-bkvy-cache" not in refused.headers
        bad = await client.post("/llm/intelligence", json=level, headers={"x-bkvy-cache": "maybe"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cache_input"


async def test_sampled_requests_are_not_cached_unless_configured(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        for _ in range(2):
            response = await client.post("/llm/direct", json=direct(options={"temperature": 0.7}), headers=ON)
            assert "x-bkvy-cache" not in response.headers
    config = cached_config(fleet, cache=demo_config(fleet).routing.cache.model_copy(update={"cache_sampled": True}))
    async with gateway(config, clock=FakeClock()) as client:
        await client.post("/llm/direct", json=direct(options={"temperature": 0.7}), headers=ON)
        response = await client.post("/llm/direct", json=direct(options={"temperature": 0.7}), headers=ON)
        assert response.headers["x-bkvy-cache"] == "hit"


async def test_errors_are_never_cached(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        fleet.servers["openai"].knobs("gpt-4o-mini").down = True
        failed = await client.post("/llm/direct", json=direct(), headers=ON)
        assert failed.status_code >= 500
        fleet.servers["openai"].knobs("gpt-4o-mini").down = False
        retried = await client.post("/llm/direct", json=direct(), headers=ON)
        assert retried.status_code == 200 and retried.headers["x-bkvy-cache"] == "miss"


async def test_v1_chat_plain_and_stream_hits(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        first = await client.post("/v1/chat/completions", json=chat(extra_body=None, bkvy={"cache": True}))
        calls = upstream_calls(fleet)
        plain = await client.post("/v1/chat/completions", json=chat(bkvy={"cache": True}))
        assert first.headers["x-bkvy-cache"] == "miss" and plain.headers["x-bkvy-cache"] == "hit"
        content = first.json()["choices"][0]["message"]["content"]
        assert plain.json()["choices"][0]["message"]["content"] == content
        streamed = await client.post(
            "/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True}), headers=ON
        )
        assert streamed.headers["x-bkvy-cache"] == "hit"
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = sse_data(streamed.text)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == content
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        assert upstream_calls(fleet) == calls


async def test_v1_messages_plain_and_stream_hits(fleet: SimFleet) -> None:
    body = {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 100, "messages": MESSAGES}
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        first = await client.post("/v1/messages", json=body, headers=ON)
        calls = upstream_calls(fleet)
        plain = await client.post("/v1/messages", json=body, headers=ON)
        streamed = await client.post("/v1/messages", json={**body, "stream": True}, headers=ON)
        assert first.headers["x-bkvy-cache"] == "miss" and plain.headers["x-bkvy-cache"] == "hit"
        assert plain.json()["content"] == first.json()["content"]
        assert streamed.headers["x-bkvy-cache"] == "hit"
        kinds = [json.loads(event)["type"] for event in sse_data(streamed.text)]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
        assert upstream_calls(fleet) == calls


async def test_streamed_miss_is_kept_once_complete(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        streamed = await client.post("/v1/chat/completions", json=chat(stream=True), headers=ON)
        assert streamed.headers["x-bkvy-cache"] == "miss" and sse_data(streamed.text)[-1] == "[DONE]"
        chunks = [json.loads(event) for event in sse_data(streamed.text)[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        calls = upstream_calls(fleet)
        plain = await client.post("/v1/chat/completions", json=chat(), headers=ON)
        assert plain.headers["x-bkvy-cache"] == "hit" and upstream_calls(fleet) == calls
        assert plain.json()["choices"][0]["message"]["content"] == text
        assert plain.json()["usage"]["completion_tokens"] > 0


async def test_interrupted_stream_is_not_kept(fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs("gpt-4o-mini").stream_cut_after_chunks = 2
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        cut = await client.post("/v1/chat/completions", json=chat(stream=True), headers=ON)
        assert cut.headers["x-bkvy-cache"] == "miss" and '"stream_interrupted"' in cut.text
        fleet.servers["openai"].knobs("gpt-4o-mini").stream_cut_after_chunks = None
        again = await client.post("/v1/chat/completions", json=chat(), headers=ON)
        assert again.headers["x-bkvy-cache"] == "miss"


async def test_anthropic_streamed_miss_is_kept(fleet: SimFleet) -> None:
    body = {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 100, "messages": MESSAGES, "stream": True}
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        first = await client.post("/v1/messages", json=body, headers=ON)
        second = await client.post("/v1/messages", json=body, headers=ON)
        assert first.headers["x-bkvy-cache"] == "miss" and second.headers["x-bkvy-cache"] == "hit"

        def text_of(response: httpx.Response) -> str:
            events = [json.loads(event) for event in sse_data(response.text)]
            return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")

        assert text_of(second) == text_of(first) and text_of(first)


async def test_purge_whole_and_by_scope(fleet: SimFleet) -> None:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-secret")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        await client.post("/llm/direct", json=direct(), headers=ON)
        await client.post("/llm/direct", json=direct(client_id="other"), headers=ON)
        assert (await client.delete("/admin/cache")).status_code == 401
        bad = await client.delete("/admin/cache", params={"scope": "nope"}, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cache_input"
        one = await client.delete("/admin/cache", params={"scope": "client:other"}, headers=ADMIN)
        assert one.json() == {"purged": 1, "scope": "client:other"}
        kept = await client.post("/llm/direct", json=direct(), headers=ON)
        assert kept.headers["x-bkvy-cache"] == "hit"
        whole = await client.delete("/admin/cache", headers=ADMIN)
        assert whole.json()["purged"] == 1
        gone = await client.post("/llm/direct", json=direct(), headers=ON)
        assert gone.headers["x-bkvy-cache"] == "miss"


async def test_purge_a_client_whose_name_has_a_slash(fleet: SimFleet) -> None:
    """A client_id may hold "/" (``team/app``): its scope can be purged like any other."""
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-secret")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        stored = await client.post("/llm/direct", json=direct(client_id="team/app"), headers=ON)
        assert stored.status_code == 200, stored.text
        one = await client.delete("/admin/cache", params={"scope": "client:team/app"}, headers=ADMIN)
        assert one.status_code == 200 and one.json() == {"purged": 1, "scope": "client:team/app"}
        for bad in ("client:/app", "tenant:team/app", "client:" + "a" * 129):
            refused = await client.delete("/admin/cache", params={"scope": bad}, headers=ADMIN)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_cache_input"


async def test_scopes_keep_clients_apart_unless_shared(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        await client.post("/llm/direct", json=direct(client_id="a"), headers=ON)
        other = await client.post("/llm/direct", json=direct(client_id="b"), headers=ON)
        assert other.headers["x-bkvy-cache"] == "miss"
    shared = demo_config(fleet).routing.cache.model_copy(update={"scope": "shared"})
    async with gateway(cached_config(fleet, cache=shared), clock=FakeClock()) as client:
        await client.post("/llm/direct", json=direct(client_id="a"), headers=ON)
        other = await client.post("/llm/direct", json=direct(client_id="b"), headers=ON)
        assert other.headers["x-bkvy-cache"] == "hit"


async def test_hit_is_recorded_with_cost_zero_and_money_saved(fleet: SimFleet) -> None:
    log_dir = tempfile.mkdtemp(prefix="bkvy-test-")
    settings = load_settings({}, log_dir=log_dir, dashboard_enabled=True, transaction_logging=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        miss = await client.post("/llm/direct", json=direct(debug=True), headers=ON)
        await client.post("/llm/direct", json=direct(), headers=ON)
        dashboard = (await client.get("/dashboard/data", params={"range": "1h"})).json()
        assert dashboard.get("summary"), dashboard
        summary = dashboard["summary"]
        assert summary["cache_hits"] == 1 and summary["cache_hit_rate"] == 0.5
        assert abs(summary["cache_saved_usd"] - miss.json()["cost_estimate_usd"]) < 1e-9
    with open(Path(log_dir) / "transactions.csv", newline="", encoding="utf-8") as handle:
        header, first, hit_row = list(csv.reader(handle))
    assert "cache_hit" in header and "cache_saved_usd" in header  # appended (their order: test_transaction_log)
    hit = dict(zip(header, hit_row, strict=True))
    assert dict(zip(header, first, strict=True))["cache_hit"] == "false"
    assert hit["cache_hit"] == "true" and hit["decision_reason"] == "cache_hit"
    assert float(hit["cost_estimate"] or 0) == 0.0 and float(hit["cache_saved_usd"]) > 0


async def test_hits_count_against_the_client_keys_rpm(fleet: SimFleet) -> None:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-secret")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        created = await client.post("/admin/keys", json={"name": "team-a", "rpm": 2}, headers=ADMIN)
        auth = {"Authorization": f"Bearer {created.json()['key']}", **ON}
        miss = await client.post("/llm/direct", json=direct(debug=True), headers=auth)
        hit = await client.post("/llm/direct", json=direct(), headers=auth)
        assert (miss.headers["x-bkvy-cache"], hit.headers["x-bkvy-cache"]) == ("miss", "hit")
        limited = await client.post("/llm/direct", json=direct(), headers=auth)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "client_rate_limited"
        listed = (await client.get("/admin/keys", headers=ADMIN)).json()["keys"][0]
        assert listed["requests"] == 2  # the miss and the hit (the refused one is not a request served)
        assert abs(listed["spend_usd_this_month"] - miss.json()["cost_estimate_usd"]) < 1e-9  # a hit costs 0


async def test_a_request_policy_now_blocks_is_refused_not_answered_from_the_cache(fleet: SimFleet) -> None:
    from bkvy.core.config.policy_config import build_policy

    no_policy = cached_config(fleet).model_copy(update={"policy": None})
    body = direct(messages=[{"role": "user", "content": "mail ana@example.org"}], options={"cache": True})
    async with gateway(no_policy, clock=FakeClock()) as client:
        assert (await client.post("/llm/direct", json=body)).headers["x-bkvy-cache"] == "miss"
        assert (await client.post("/llm/direct", json=body)).headers["x-bkvy-cache"] == "hit"
        blocking = {"rules": [{"name": "no-pii", "match": {"pii": True}, "action": "block"}]}
        services = client.app.state.services  # type: ignore[attr-defined]
        services.config_source = lambda: no_policy.model_copy(update={"policy": build_policy(blocking, no_policy)})
        await services.reload(announce=False)
        refused = await client.post("/llm/direct", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "sensitive_data_blocked", refused.text
    assert "x-bkvy-cache" not in refused.headers and "ana@example.org" not in refused.text


async def test_a_miss_is_sent_before_its_reply_is_stored(fleet: SimFleet) -> None:
    """Storing a miss (encoding, compressing, a Redis SET) is not on its latency path: it happens in the reply's
    report, once the reply was sent."""
    from bkvy.api.app import create_app

    events: list[str] = []
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"))
    app = create_app(settings, demo_config(fleet), clock=FakeClock())

    async def recording(scope, receive, send) -> None:
        async def logged(message) -> None:
            if message["type"] == "http.response.body" and scope.get("path", "").startswith("/llm/"):
                events.append("reply_sent")
            await send(message)

        await app(scope, receive, logged)

    async with app.router.lifespan_context(app):
        store = app.state.services.cache.store
        put_now = store.put_now

        def stored(*args: object) -> None:
            events.append("stored")
            put_now(*args)

        store.put_now = stored
        http = httpx.ASGITransport(app=recording, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=http, base_url="http://bkvy.test") as client:
            miss = await client.post("/llm/direct", json=direct(), headers=ON)
            hit = await client.post("/llm/direct", json=direct(), headers=ON)
    assert miss.headers["x-bkvy-cache"] == "miss" and hit.headers["x-bkvy-cache"] == "hit"
    assert events == ["reply_sent", "stored", "reply_sent"], events
