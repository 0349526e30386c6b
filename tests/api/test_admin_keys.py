"""/admin/keys and client-key enforcement on /v1/* and /llm/*, through the real app."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

ADMIN = {"X-Admin-API-Key": "admin-secret"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
LLM = {"client_id": "body-id", "intelligence_level": "low", "messages": [{"role": "user", "content": "hi"}]}


def _settings(log_dir: str, **overrides: object):
    return load_settings({}, log_dir=log_dir, admin_api_key="admin-secret", **overrides)


async def _create(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post("/admin/keys", json={"name": "team-a", **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_admin_routes_refuse_without_the_admin_key(fleet: SimFleet) -> None:
    async with gateway(
        demo_config(fleet), clock=FakeClock(), settings=_settings(tempfile.mkdtemp(prefix="bkvy-test-"))
    ) as client:
        assert (await client.post("/admin/keys", json={"name": "x"})).status_code == 401
        assert (await client.get("/admin/keys", headers={"X-Admin-API-Key": "wrong"})).status_code == 401
        assert (await client.delete("/admin/keys/ck_00")).status_code == 401
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:  # no BKVY_ADMIN_API_KEY: disabled
        response = await client.get("/admin/keys", headers=ADMIN)
        assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


async def test_create_use_revoke_then_401(fleet: SimFleet, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log_dir = tempfile.mkdtemp(prefix="bkvy-test-")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(log_dir)) as client:
        outcomes: list[RequestOutcome] = []
        client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200  # no keys yet: open
        created = await _create(client)
        key = created["key"]
        missing = await client.post("/v1/chat/completions", json=CHAT)
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        assert (await client.post("/llm/intelligence", json=LLM)).status_code == 401
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))).status_code == 200
        assert (await client.post("/llm/intelligence", json=LLM, headers=_bearer(key))).status_code == 200
        assert [o.request.client_id for o in outcomes] == ["openai-client", "team-a", "team-a"]
        [listed] = (await client.get("/admin/keys", headers=ADMIN)).json()["keys"]
        assert listed["id"] == created["id"] and listed["requests"] == 2 and listed["spend_usd_this_month"] > 0
        assert key not in str(listed)
        revoked = await client.delete(f"/admin/keys/{created['id']}", headers=ADMIN)
        assert revoked.status_code == 200
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))).status_code == 401
        assert (await client.delete(f"/admin/keys/{created['id']}", headers=ADMIN)).status_code == 404
        assert (await client.delete("/admin/keys/..%2Fetc", headers=ADMIN)).status_code in (404, 422)
    for path in Path(log_dir).rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert all(key not in record.getMessage() and key not in str(record.__dict__) for record in caplog.records)


async def test_rpm_limit_gives_429_with_retry_after(fleet: SimFleet) -> None:
    async with gateway(
        demo_config(fleet), clock=FakeClock(), settings=_settings(tempfile.mkdtemp(prefix="bkvy-test-"))
    ) as client:
        key = (await _create(client, rpm=1))["key"]
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))).status_code == 200
        limited = await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))
        assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
        assert limited.json()["error"]["code"] == "client_rate_limited"
        llm_limited = await client.post("/llm/intelligence", json=LLM, headers=_bearer(key))
        assert llm_limited.status_code == 429 and llm_limited.json()["error"]["code"] == "client_rate_limited"


async def test_monthly_budget_gives_402_budget_exceeded(fleet: SimFleet) -> None:
    async with gateway(
        demo_config(fleet), clock=FakeClock(), settings=_settings(tempfile.mkdtemp(prefix="bkvy-test-"))
    ) as client:
        key = (await _create(client, monthly_budget_usd=0.000001))["key"]
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))).status_code == 200
        over = await client.post("/v1/chat/completions", json=CHAT, headers=_bearer(key))
        assert over.status_code == 402 and over.json()["error"]["code"] == "budget_exceeded"


async def test_required_client_keys_refuse_even_before_any_exists(fleet: SimFleet) -> None:
    settings = _settings(tempfile.mkdtemp(prefix="bkvy-test-"), require_client_keys=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        response = await client.post("/llm/intelligence", json=LLM)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


async def test_create_validates_its_body(fleet: SimFleet) -> None:
    async with gateway(
        demo_config(fleet), clock=FakeClock(), settings=_settings(tempfile.mkdtemp(prefix="bkvy-test-"))
    ) as client:
        response = await client.post("/admin/keys", json={"name": "x", "rpm": "ten"}, headers=ADMIN)
        assert response.status_code == 422
