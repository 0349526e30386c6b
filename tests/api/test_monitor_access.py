"""The monitoring endpoints behind MONITOR_ALLOWED_IPS (default: the dashboard's) and BKVY_MONITOR_API_KEY."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bkvy.api.allowlist import has_bearer_key
from bkvy.api.app import create_app
from bkvy.api.endpoints import ENDPOINTS
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import ConfigError
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MONITOR_KEY = "mon-7f3c9a1e-secret"
_PARAMS = {
    "{level}": "low",
    "{provider}": "openai",
    "{model:path}": "gpt-4o-mini",
    "{key_id}": "openai_key_1",
    "{day}": "2024-01-01",
}
MONITORING_URLS = []
for _endpoint in ENDPOINTS:
    if _endpoint.is_monitoring:
        _url = _endpoint.path
        for _name, _value in _PARAMS.items():
            _url = _url.replace(_name, _value)
        MONITORING_URLS.append(_url)


def test_the_table_marks_every_monitoring_read() -> None:
    monitoring = {endpoint.path for endpoint in ENDPOINTS if endpoint.is_monitoring}
    assert monitoring == {
        "/providers",
        "/intelligence/{level}",
        "/scenarios",
        "/queue/status",
        "/rates/status",
        "/circuits/status",
        "/circuits/summary",
        "/circuits/provider/{provider}",
        "/circuits/{provider}/{model:path}/{key_id}",
        "/statistics/status",
        "/statistics/summary",
        "/statistics/aggregate",
        "/statistics/daily",
        "/statistics/daily/{day}",
        "/statistics/shadow",
        "/metrics",
    }
    for endpoint in ENDPOINTS:
        if endpoint.is_monitoring:
            assert endpoint.method == "GET" and not endpoint.is_hot and not endpoint.is_admin, endpoint.path


def _settings(tmp_path: Path, **environ: str):
    return load_settings(environ, log_dir=tmp_path)


def _client(app, host: str, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://bkvy.test", headers=headers)


async def test_monitoring_answers_only_the_dashboard_allowlist_by_default(fleet: SimFleet, tmp_path: Path) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(tmp_path)) as local:
        for url in MONITORING_URLS:
            assert (await local.get(url)).status_code not in (401, 403), url  # loopback: as before
        async with _client(local.app, "203.0.113.9") as remote:  # type: ignore[attr-defined]
            for url in MONITORING_URLS:
                response = await remote.get(url)
                assert response.status_code == 403, url
                assert response.json()["error"]["code"] == "forbidden"
                assert "MONITOR_ALLOWED_IPS" in response.json()["error"]["message"]
                assert "openai_key_1" not in response.text
            health = await remote.get("/health")
            assert health.status_code == 200
            assert not any(key_id in health.text for key_id in ("openai_key_1", "anthropic_key_1", "gemini_key_1"))
            assert "demo-openai-1" not in health.text


async def test_monitor_allowlist_of_its_own_leaves_the_dashboard_alone(fleet: SimFleet, tmp_path: Path) -> None:
    settings = _settings(tmp_path, DASHBOARD_ENABLED="true", MONITOR_ALLOWED_IPS="10.9.0.0/16")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as local:
        app = local.app  # type: ignore[attr-defined]
        assert (await local.get("/metrics")).status_code == 403  # loopback is not in 10.9.0.0/16
        assert (await local.get("/dashboard/data")).status_code == 200
        async with _client(app, "10.9.3.4") as scraper:
            assert (await scraper.get("/metrics")).status_code == 200
            assert (await scraper.get("/statistics/status")).status_code == 200
            assert (await scraper.get("/dashboard/data")).status_code == 403


async def test_monitor_key_is_required_as_a_bearer_token(fleet: SimFleet, tmp_path: Path) -> None:
    settings = _settings(tmp_path, BKVY_MONITOR_API_KEY=MONITOR_KEY, DASHBOARD_ENABLED="true")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        for url in MONITORING_URLS:
            missing = await client.get(url)
            assert missing.status_code == 401, url
            assert missing.json()["error"]["code"] == "unauthorized"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert MONITOR_KEY not in missing.text
            for wrong in (
                f"Bearer {MONITOR_KEY}x",
                MONITOR_KEY,
                f"Basic {MONITOR_KEY}",
                "Bearer ",
                "Bearer \xe9".encode("latin-1"),
            ):
                assert (await client.get(url, headers={"Authorization": wrong})).status_code == 401, (url, wrong)
            # What Prometheus's bearer_token / authorization.credentials sends: "Authorization: Bearer <token>".
            allowed = await client.get(url, headers={"Authorization": f"Bearer {MONITOR_KEY}"})
            assert allowed.status_code not in (401, 403), url
        assert (await client.get("/metrics", headers={"Authorization": f"bearer {MONITOR_KEY}"})).status_code == 200
        assert (await client.get("/health")).status_code == 200  # load balancers send no key
        assert (await client.get("/dashboard/data")).status_code == 200  # a browser sends no bearer key
        assert (await client.get("/v1/models")).status_code == 200
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200  # hot path untouched
        reset = await client.post("/circuits/reset/openai/gpt-4o-mini/openai_key_1")
        assert reset.json()["error"]["code"] == "admin_disabled"  # an admin route, not a monitoring read


async def test_the_key_does_not_open_a_refused_address(fleet: SimFleet, tmp_path: Path) -> None:
    settings = _settings(tmp_path, BKVY_MONITOR_API_KEY=MONITOR_KEY)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as local:
        remote = _client(local.app, "203.0.113.9", Authorization=f"Bearer {MONITOR_KEY}")  # type: ignore[attr-defined]
        async with remote:
            assert (await remote.get("/metrics")).status_code == 403


def test_has_bearer_key() -> None:
    key = MONITOR_KEY.encode()
    assert has_bearer_key([f"Bearer {MONITOR_KEY}"], key)
    assert has_bearer_key([f"  BEARER   {MONITOR_KEY} "], key)
    assert not has_bearer_key([], key)
    assert not has_bearer_key([f"Token {MONITOR_KEY}"], key)
    assert not has_bearer_key([MONITOR_KEY[:-1]], key)


async def test_monitor_settings_from_the_environment(fleet: SimFleet, tmp_path: Path) -> None:
    assert load_settings({}).monitor_allowlist == ("127.0.0.1", "::1")
    assert load_settings({"DASHBOARD_ALLOWED_IPS": "10.0.0.0/8"}).monitor_allowlist == ("10.0.0.0/8",)
    assert load_settings({"MONITOR_ALLOWED_IPS": "0.0.0.0/0, ::/0"}).monitor_allowlist == ("0.0.0.0/0", "::/0")
    assert load_settings({"BKVY_MONITOR_API_KEY": "  "}).monitor_api_key is None
    with pytest.raises(ConfigError, match="MONITOR_ALLOWED_IPS"):
        create_app(load_settings({"MONITOR_ALLOWED_IPS": "10.0.0.0/33"}, log_dir=tmp_path), demo_config(fleet))
