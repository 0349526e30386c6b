"""Circuit endpoints: read-only views, and an admin-only reset that never reveals key values."""

from __future__ import annotations

import httpx
import pytest

from bkvy.core.circuits.breaker import CircuitKey
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.models.types import ErrorClass
from tests.conftest import gateway

RESET = "/circuits/reset/openai/gpt-4o-mini/openai_key_1"


@pytest.fixture
async def admin_gateway(fleet, fake_clock, tmp_path):
    settings = load_settings({"BKVY_ADMIN_API_KEY": "admin-secret-ü"}, log_dir=tmp_path)
    async with gateway(demo_config(fleet), clock=fake_clock, settings=settings) as client:
        yield client


def _registry(client: httpx.AsyncClient):
    return client.app.state.services.circuits  # type: ignore[attr-defined]


async def test_status_lists_every_circuit_by_key_id_only(demo_gateway):
    body = (await demo_gateway.get("/circuits/status")).text
    assert "openai_key_1" in body and "demo-openai-1" not in body


async def test_auth_failure_shows_as_auth_pattern_for_the_provider(admin_gateway):
    _registry(admin_gateway).record_failure(CircuitKey("openai", "gpt-4o-mini", "openai_key_1"), ErrorClass.AUTH)
    health = (await admin_gateway.get("/circuits/provider/openai")).json()["health"]
    assert health["pattern"] == "auth" and health["recommended_action"]
    detail = (await admin_gateway.get("/circuits/openai/gpt-4o/openai_key_1")).json()
    assert detail["state"] == "open" and detail["open_reason"] == "auth"


async def test_reset_needs_the_admin_key(admin_gateway):
    assert (await admin_gateway.post(RESET)).status_code == 401
    wrong = await admin_gateway.post(RESET, headers={"X-Admin-API-Key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


async def test_reset_with_non_ascii_key_does_not_crash(admin_gateway):
    response = await admin_gateway.post(RESET, headers={"X-Admin-API-Key": "admin-secret-ü".encode()})
    assert response.status_code in (200, 401)
    response = await admin_gateway.post(RESET, headers={"X-Admin-API-Key": b"\xff\xfe"})
    assert response.status_code == 401


async def test_reset_closes_an_auth_open_circuit(admin_gateway):
    key = CircuitKey("openai", "gpt-4o-mini", "openai_key_1")
    _registry(admin_gateway).record_failure(key, ErrorClass.AUTH)
    response = await admin_gateway.post(RESET, headers={"X-Admin-API-Key": "admin-secret-ü".encode()})
    assert response.status_code == 200, response.text
    assert response.json()["circuit"]["state"] == "closed"


async def test_reset_without_configured_admin_key_is_admin_disabled(demo_gateway):
    response = await demo_gateway.post(RESET, headers={"X-Admin-API-Key": "anything"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    "path",
    [
        "/circuits/reset/nope/gpt-4o-mini/openai_key_1",
        "/circuits/reset/openai/nope/openai_key_1",
        "/circuits/reset/openai/gpt-4o-mini/nope",
    ],
)
async def test_reset_of_unknown_circuit_is_404(admin_gateway, path):
    response = await admin_gateway.post(path, headers={"X-Admin-API-Key": "admin-secret-ü".encode()})
    assert response.status_code == 404


async def test_summary_counts_states(demo_gateway):
    summary = (await demo_gateway.get("/circuits/summary")).json()
    assert summary["by_state"] == {"closed": summary["total"]}
    assert summary["providers"]["openai"]["pattern"] == "healthy"
