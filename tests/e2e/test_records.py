"""Transaction log, daily statistics, statistics API, allowlist and /metrics through the real app (lifespan
included) against the simulated fleet on loopback."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bkvy.api.app import create_app
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config, demo_providers, demo_routing
from bkvy.sim import SimFleet
from bkvy.utils.records import COLUMNS
from tests.conftest import gateway
from tests.e2e.fault_driver import FALLBACK, FALLBACK_MODEL, PRIMARY, PRIMARY_MODEL, FaultDriver, two_provider_config

MESSAGES = [{"role": "user", "content": "SECRET-PROMPT-TEXT please answer"}]
CANARY = "sk-CANARY-DO-NOT-LEAK-123"


def _settings(log_dir: Path, **extra: object):
    return load_settings(
        {}, log_dir=log_dir, transaction_logging=True, summary_stats=True, dashboard_enabled=True, **extra
    )


def _csv_rows(log_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(log_dir / "transactions.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert all(len(row) == len(header) for row in rows), "a torn or short row"
    return header, [dict(zip(header, row, strict=False)) for row in rows]


async def _mixed_requests(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    bodies = {
        "low": ("/llm/intelligence", {"client_id": "c1", "intelligence_level": "low", "messages": MESSAGES}),
        "scenario": ("/llm/scenario", {"client_id": "c2", "scenario": "customer_support", "messages": MESSAGES}),
        "direct": (
            "/llm/direct",
            {"client_id": "c3", "provider": "openai", "model": "gpt-4o-mini", "messages": MESSAGES},
        ),
        "unknown": ("/llm/direct", {"client_id": "c4", "provider": "nope", "model": "x", "messages": MESSAGES}),
    }
    return {name: await client.post(path, json=body) for name, (path, body) in bodies.items()}


async def test_every_request_writes_exactly_one_row_with_its_columns(fleet: SimFleet, tmp_path: Path) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(tmp_path)) as client:
        responses = await _mixed_requests(client)
        assert (await client.get("/health")).status_code == 200  # not a routed request: no row
    header, rows = _csv_rows(tmp_path)
    assert tuple(header) == COLUMNS
    by_id = {row["request_id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(responses)
    low = by_id[responses["low"].json()["request_id"]]
    assert (low["success"], low["routing_method"], low["intelligence_level"]) == ("true", "intelligence", "low")
    assert low["provider_used"] == "ollama" and low["api_key_used"] == "default" and low["finish_reason"] == "stop"
    assert low["decision_reason"] and low["cost_estimate"] == "0.0" and int(low["output_tokens"]) > 0
    scenario = by_id[responses["scenario"].json()["request_id"]]
    assert scenario["scenario"] == "customer_support" and scenario["provider_used"] == "anthropic"
    direct = by_id[responses["direct"].json()["request_id"]]
    assert (direct["requested_provider"], direct["requested_model"]) == ("openai", "gpt-4o-mini")
    assert direct["api_key_used"] in ("openai_key_1", "openai_key_2") and float(direct["cost_estimate"]) > 0
    failed = by_id[responses["unknown"].json()["request_id"]]
    assert (failed["success"], failed["error_type"]) == ("false", "unknown_provider")
    assert failed["error_message"] and failed["fallback_attempts"] == "0"
    assert "SECRET-PROMPT-TEXT" not in (tmp_path / "transactions.csv").read_text()


async def test_daily_stats_continue_after_restart(fleet: SimFleet, tmp_path: Path) -> None:
    settings = load_settings({}, log_dir=tmp_path, summary_stats=True)
    body = {"client_id": "c", "provider": "ollama", "model": "llama3.2", "messages": MESSAGES}
    async with gateway(demo_config(fleet), settings=settings) as client:
        for _ in range(5):
            assert (await client.post("/llm/direct", json=body)).status_code == 200
        before = (await client.get("/statistics/aggregate")).json()
    saved = json.loads((tmp_path / "daily_stats.json").read_text())
    assert sum(day["total"] for day in saved["days"].values()) == 5
    async with gateway(demo_config(fleet), settings=settings) as client:
        for _ in range(3):
            assert (await client.post("/llm/direct", json=body)).status_code == 200
        after = (await client.get("/statistics/aggregate")).json()
        summary = (await client.get("/statistics/summary")).json()
    assert after["total"] == 8 and after["successes"] == 8 and after["by_provider"] == {"ollama": 8}
    assert after["total_latency_ms"] > before["total_latency_ms"]
    assert after["min_ms"] <= before["min_ms"] and after["max_ms"] >= before["max_ms"]
    assert after["p50_ms"] is not None and after["p95_ms"] is not None
    assert summary["all_time"]["total"] == 8


async def test_statistics_endpoints_validate_dates_and_say_when_empty(fleet: SimFleet, tmp_path: Path) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(tmp_path)) as client:
        await _mixed_requests(client)
        today = (await client.get("/statistics/daily")).json()["days"][0]
        assert (await client.get(f"/statistics/daily/{today}")).json()["total"] == 4
        for bad in ("2023-13-01", "yesterday", "1700000000", "2023-02-30"):
            response = await client.get(f"/statistics/daily/{bad}")
            assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
        missing = await client.get("/statistics/daily/2001-01-01")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_data"
        ranged = await client.get("/statistics/aggregate", params={"start": today, "end": today})
        assert ranged.json()["total"] == 4 and ranged.json()["day_count"] == 1
        backwards = await client.get("/statistics/aggregate", params={"start": "2030-01-02", "end": "2030-01-01"})
        assert backwards.status_code == 422
        assert (await client.get("/statistics/aggregate", params={"start": "x"})).status_code == 422
        status = (await client.get("/statistics/status")).json()
        assert status["summary_stats"] is True and status["transaction_logging"] is True


async def test_statistics_when_disabled_say_so(fleet: SimFleet, tmp_path: Path) -> None:
    async with gateway(demo_config(fleet), settings=load_settings({}, log_dir=tmp_path)) as client:
        for path in (
            "/statistics/summary",
            "/statistics/aggregate",
            "/statistics/daily",
            "/statistics/daily/2024-01-01",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "statistics_disabled"
            assert "SUMMARY_STATS" in response.json()["error"]["message"]
        status = await client.get("/statistics/status")
        assert status.status_code == 200 and status.json()["summary_stats"] is False
        dashboard = await client.get("/dashboard")
        assert dashboard.status_code == 404 and dashboard.json()["error"]["code"] == "dashboard_disabled"


async def _client_from(app, host: str, **headers: str):
    transport = httpx.ASGITransport(app=app, client=(host, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://bkvy.test", headers=headers)


async def test_forwarded_for_from_an_untrusted_peer_is_refused(fleet: SimFleet, tmp_path: Path) -> None:
    settings = _settings(tmp_path, trusted_proxies="10.0.0.5", dashboard_allowed_ips="127.0.0.1,::1,192.168.0.0/16")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as local:
        app = local.app  # type: ignore[attr-defined]
        assert (await local.get("/statistics/status")).status_code == 200
        cases = [
            ("203.0.113.9", {"X-Forwarded-For": "127.0.0.1"}, 403),
            ("203.0.113.9", {}, 403),
            ("10.0.0.5", {"X-Forwarded-For": "127.0.0.1"}, 200),
            ("10.0.0.5", {"X-Forwarded-For": "192.168.4.4"}, 200),
            ("10.0.0.5", {"X-Forwarded-For": "127.0.0.1, 198.51.100.7"}, 403),  # right-most untrusted hop
            ("10.0.0.5", {}, 403),
        ]  # the proxy itself
        for peer, headers, status in cases:
            async with await _client_from(app, peer, **headers) as client:
                for path in ("/statistics/status", "/dashboard", "/dashboard/data", "/dashboard/static/dashboard.js"):
                    response = await client.get(path)
                    assert response.status_code == status, (peer, headers, path)
                    if status == 403:
                        assert response.json()["error"]["code"] == "forbidden"
                assert (await client.get("/health")).status_code == 200  # only the operator's views


async def test_metrics_parse_with_bounded_labels(fleet: SimFleet, tmp_path: Path) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(tmp_path)) as client:
        await _mixed_requests(client)
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    for name in (
        "bkvy_llm_requests",
        "bkvy_llm_request_duration_seconds",
        "bkvy_upstream_attempts",
        "bkvy_http_requests",
        "bkvy_tokens",
        "bkvy_cost_usd",
        "bkvy_queue_depth",
        "bkvy_circuit_state",
        "bkvy_rate_limit_wait_seconds",
        "bkvy_hedges",
    ):
        assert name in families, name
    hedges = {s.labels["outcome"]: s.value for s in families["bkvy_hedges"].samples if s.name == "bkvy_hedges_total"}
    assert hedges == {"won": 0.0, "lost": 0.0, "skipped_budget": 0.0, "skipped_no_candidate": 0.0}
    requests = [s for s in families["bkvy_llm_requests"].samples if s.name == "bkvy_llm_requests_total"]
    outcomes = {(s.labels["provider"], s.labels["outcome"]) for s in requests}
    assert ("ollama", "success") in outcomes and ("none", "unknown_provider") in outcomes
    labels = {value for s in requests for value in s.labels.values()}
    assert "nope" not in labels and "c4" not in labels  # never client-supplied text
    routes = {s.labels["route"] for s in families["bkvy_http_requests"].samples}
    assert "/llm/direct" in routes


async def test_canary_key_appears_in_no_record(
    fleet: SimFleet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    providers = demo_providers(fleet)
    providers["openai"]["keys"] = {"canary_key": {"api_key": CANARY, "rate_limits": {"*": {"rpm": 100}}}}
    config = build_config(providers, demo_routing(), {}, providers_file="<test>", routing_file="<test>")
    fleet_failure = {"client_id": "c", "provider": "openai", "model": "gpt-4o", "messages": MESSAGES}
    caplog.set_level(logging.DEBUG)
    async with gateway(config, clock=FakeClock(), settings=_settings(tmp_path)) as client:
        for _ in range(3):
            ok = await client.post("/llm/direct", json={**fleet_failure, "model": "gpt-4o-mini"})
            assert ok.status_code == 200 and ok.json()["success"]
        await client.post("/llm/direct", json=fleet_failure)
        await client.post("/llm/direct", json={**fleet_failure, "model": "not-a-model"})
        exposed = [
            await client.get(path)
            for path in (
                "/dashboard",
                "/dashboard/data?range=1h",
                "/dashboard/data?range=365d",
                "/metrics",
                "/statistics/summary",
                "/statistics/aggregate",
                "/statistics/status",
            )
        ]
    assert all(response.status_code == 200 for response in exposed)
    texts = [response.text + str(response.headers) for response in exposed]
    texts += [path.read_text(encoding="utf-8", errors="replace") for path in tmp_path.iterdir() if path.is_file()]
    texts += [caplog.text] + [repr(record.__dict__) for record in caplog.records]
    assert any("canary_key" in text for text in texts)  # the key id is recorded...
    for text in texts:
        assert CANARY not in text  # ...its value never
        assert "SECRET-PROMPT-TEXT" not in text


def test_statistics_and_dashboard_need_an_allowed_address_at_build(tmp_path: Path) -> None:
    from bkvy.core.config.gateway import ConfigError

    with pytest.raises(ConfigError, match="DASHBOARD_ALLOWED_IPS"):
        create_app(
            _settings(tmp_path, dashboard_allowed_ips="not-an-ip"),
            build_config(
                {
                    "ollama": {
                        "base_url": "http://127.0.0.1:1",
                        "models": {"m": {"intelligence_tier": "low", "cost_per_1k_tokens": 0}},
                    }
                },
                {"scenarios": {}},
                {},
                providers_file="<t>",
                routing_file="<t>",
            ),
        )


@pytest.fixture
async def timed_fleet(fake_clock: FakeClock) -> AsyncIterator[SimFleet]:
    """The simulated providers, their latency on the test's fake clock."""
    sim = SimFleet(seed=1, with_default_latency=False, clock=fake_clock)
    await sim.start("127.0.0.1")
    try:
        yield sim
    finally:
        await sim.stop()


async def _slow_primary_request(
    fleet: SimFleet, clock: FakeClock, log_dir: Path, *, hedging: bool
) -> tuple[httpx.Response, dict, dict, str]:
    """A 3 s primary and a 0.1 s fallback, soft timeout 1 s: the reply, /dashboard/data, /statistics/aggregate
    and /metrics."""
    fleet.servers["openai"].knobs(PRIMARY_MODEL).latency_ms = 3000
    fleet.servers["anthropic"].knobs(FALLBACK_MODEL).latency_ms = 100
    settings = _settings(
        log_dir,
        request_soft_timeout_seconds=1.0,
        request_hard_timeout_seconds=2.0,
        health_probe_enabled=False,
        hedging=hedging,
    )
    body = {"client_id": "c", "scenario": "chat", "messages": MESSAGES}
    async with gateway(two_provider_config(fleet), clock=clock, settings=settings) as client:
        drive = FaultDriver(client, clock, fleet)
        pending = asyncio.ensure_future(client.post("/llm/scenario", json=body))
        await drive.settle()
        for _ in range(100):
            if pending.done():
                break
            await drive.advance(0.05)
        dashboard = (await client.get("/dashboard/data", params={"range": "1h"})).json()
        aggregate = (await client.get("/statistics/aggregate")).json()
        metrics = (await client.get("/metrics")).text
    return pending.result(), dashboard, aggregate, metrics


async def test_a_hedged_request_is_recorded_as_hedged_everywhere(
    timed_fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    reply, dashboard, aggregate, metrics = await _slow_primary_request(timed_fleet, fake_clock, tmp_path, hedging=True)
    assert reply.status_code == 200 and reply.headers["x-bkvy-hedged"] == "true"
    header, [row] = _csv_rows(tmp_path)
    assert tuple(header) == COLUMNS and header.index("hedged") == COLUMNS.index("alternatives_tried") + 1
    assert (row["hedged"], row["fallback_attempts"], row["provider_used"]) == ("true", "0", FALLBACK)
    assert row["alternatives_tried"].startswith(f"{PRIMARY}/")  # the loser, with its bill in cost_estimate
    assert (dashboard["summary"]["hedge_rate"], dashboard["summary"]["retry_rate"]) == (1.0, 0.0)
    assert dashboard["recent"][0]["hedged"] is True
    assert (aggregate["hedged"], aggregate["retried"]) == (1, 0)
    assert 'bkvy_hedges_total{outcome="won"} 1.0' in metrics
    assert 'bkvy_hedges_total{outcome="lost"} 0.0' in metrics


async def test_a_switch_at_the_soft_timeout_is_a_retry_not_a_hedge(
    timed_fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    reply, dashboard, aggregate, metrics = await _slow_primary_request(timed_fleet, fake_clock, tmp_path, hedging=False)
    assert reply.status_code == 200 and "x-bkvy-hedged" not in reply.headers
    _, [row] = _csv_rows(tmp_path)
    assert (row["hedged"], row["fallback_attempts"], row["provider_used"]) == ("false", "1", FALLBACK)
    assert (dashboard["summary"]["hedge_rate"], dashboard["summary"]["retry_rate"]) == (0.0, 1.0)
    assert (aggregate["hedged"], aggregate["retried"]) == (0, 1)
    assert 'bkvy_hedges_total{outcome="won"} 0.0' in metrics
