"""Tenants (issue 19 §3) through the real app: /admin/tenants, keys with a tenant, the tenant's budget, rpm,
tpm and disabling, its PolicySubject, the gauge, and no tenant config = today's behaviour."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig, build_config, load_config
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_config, demo_providers, demo_routing
from bkvy.models.policy import DataClass
from bkvy.sim import SimFleet
from tests.conftest import gateway

ADMIN = {"X-Admin-API-Key": "admin-secret"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
LLM = {"client_id": "body-id", "intelligence_level": "low", "messages": [{"role": "user", "content": "hi"}]}


def _settings(log_dir: str | None = None) -> Any:
    return load_settings({}, log_dir=log_dir or tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-secret")


def _config(fleet: SimFleet, tenants: dict[str, Any] | None = None) -> GatewayConfig:
    return build_config(demo_providers(fleet), demo_routing(), {}, tenants_raw=tenants)


async def _key(client: httpx.AsyncClient, name: str, **body: object) -> dict[str, str]:
    response = await client.post("/admin/keys", json={"name": name, **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def _tenant(client: httpx.AsyncClient, tenant_id: str, **fields: object) -> dict[str, Any]:
    response = await client.post("/admin/tenants", json={"id": tenant_id, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


async def test_tenant_routes_need_the_admin_key(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        assert (await client.post("/admin/tenants", json={"id": "acme"})).status_code == 401
        assert (await client.get("/admin/tenants", headers={"X-Admin-API-Key": "no"})).status_code == 401
        assert (await client.patch("/admin/tenants/acme", json={})).status_code == 401
        assert (await client.delete("/admin/tenants/acme")).status_code == 401


async def test_crud_persists_across_a_restart(fleet: SimFleet) -> None:
    log_dir = tempfile.mkdtemp(prefix="bkvy-test-")
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(log_dir)) as client:
        created = await _tenant(client, "acme", name="Acme", rpm=5, allowed_models=["openai/gpt-4o-mini"])
        assert created["source"] == "api" and created["rpm"] == 5
        again = await client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
        assert again.status_code == 409 and again.json()["error"]["code"] == "tenant_exists"
        patched = await client.patch("/admin/tenants/acme", json={"rpm": None, "tpm": 1000}, headers=ADMIN)
        assert patched.status_code == 200 and patched.json()["rpm"] is None and patched.json()["tpm"] == 1000
        assert patched.json()["name"] == "Acme"
        disabled = await client.delete("/admin/tenants/acme", headers=ADMIN)
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        missing = await client.get("/admin/tenants/nope", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_tenant"
    assert oct(os.stat(Path(log_dir) / "admin_tenants.json").st_mode & 0o777) == "0o600"
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings(log_dir)) as client:
        listed = (await client.get("/admin/tenants", headers=ADMIN)).json()["tenants"]
        assert [(t["id"], t["tpm"], t["disabled"], t["name"]) for t in listed] == [("acme", 1000, True, "Acme")]


async def test_bad_tenant_bodies_get_4xx_with_a_code(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        unknown_model = await client.post(
            "/admin/tenants", json={"id": "acme", "allowed_models": ["openai/nope"]}, headers=ADMIN
        )
        assert unknown_model.status_code == 400 and "allowed_models" in unknown_model.json()["error"]["message"]
        bad_class = await client.post(
            "/admin/tenants", json={"id": "acme", "allowed_data_classes": ["secret"]}, headers=ADMIN
        )
        assert 400 <= bad_class.status_code < 500
        bad_id = await client.post("/admin/tenants", json={"id": "a b"}, headers=ADMIN)
        assert 400 <= bad_id.status_code < 500
        no_tenant = await client.post("/admin/keys", json={"name": "k", "tenant": "ghost"}, headers=ADMIN)
        assert no_tenant.status_code == 404 and no_tenant.json()["error"]["code"] == "unknown_tenant"


async def test_a_file_tenant_is_read_only_through_the_api(fleet: SimFleet) -> None:
    config = _config(fleet, {"acme": {"name": "Acme", "rpm": 100}})
    async with gateway(config, clock=FakeClock(), settings=_settings()) as client:
        [listed] = (await client.get("/admin/tenants", headers=ADMIN)).json()["tenants"]
        assert listed["source"] == "file" and listed["name"] == "Acme"
        for response in (
            await client.patch("/admin/tenants/acme", json={"rpm": 1}, headers=ADMIN),
            await client.delete("/admin/tenants/acme", headers=ADMIN),
        ):
            assert response.status_code == 409 and response.json()["error"]["code"] == "tenant_read_only"
        taken = await client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
        assert taken.json()["error"]["code"] == "tenant_exists"


async def test_a_tenant_budget_stops_both_its_keys_and_alerts_once(
    fleet: SimFleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    config = _config(fleet, {"acme": {"monthly_budget_usd": 0.000001, "alert_threshold_percent": 50}})
    async with gateway(config, clock=FakeClock(), settings=_settings()) as client:
        first, second = await _key(client, "a1", tenant="acme"), await _key(client, "a2", tenant="acme")
        outsider = await _key(client, "other")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=first)).status_code == 200
        for headers in (first, second):
            over = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert over.status_code == 402 and over.json()["error"]["code"] == "budget_exceeded"
            assert "acme" in over.json()["error"]["message"]
        assert (await client.post("/llm/intelligence", json=LLM, headers=second)).status_code == 402
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=outsider)).status_code == 200
        alerts = [r for r in caplog.records if r.getMessage() == "tenant_budget_alert"]
        assert len(alerts) == 1 and alerts[0].tenant == "acme"  # type: ignore[attr-defined]
        metrics = (await client.get("/metrics")).text
        assert 'bkvy_tenant_budget_used_ratio{tenant="acme"}' in metrics
        [listed] = (await client.get("/admin/tenants", headers=ADMIN)).json()["tenants"]
        assert listed["budget_used_ratio"] >= 1 and listed["spend_usd_this_month"] > 0


async def test_tenant_rpm_counts_across_its_keys(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        await _tenant(client, "acme", rpm=2)
        first, second = await _key(client, "a1", tenant="acme"), await _key(client, "a2", tenant="acme")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=first)).status_code == 200
        assert (await client.post("/llm/intelligence", json=LLM, headers=second)).status_code == 200
        limited = await client.post("/v1/chat/completions", json=CHAT, headers=second)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "tenant_rate_limited"
        assert limited.headers["retry-after"] == "60"


async def test_tenant_tpm_refuses_once_the_minute_is_spent(fleet: SimFleet) -> None:
    clock = FakeClock()
    async with gateway(demo_config(fleet), clock=clock, settings=_settings()) as client:
        await _tenant(client, "acme", tpm=1)
        key = await _key(client, "a1", tenant="acme")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 200
        limited = await client.post("/v1/chat/completions", json=CHAT, headers=key)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "tenant_rate_limited"
        clock.advance(61)
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 200


async def test_a_disabled_tenant_gets_403_and_enabling_restores_it(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        await _tenant(client, "acme")
        key = await _key(client, "a1", tenant="acme")
        assert (await client.delete("/admin/tenants/acme", headers=ADMIN)).status_code == 200
        refused = await client.post("/llm/intelligence", json=LLM, headers=key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_disabled"
        assert (await client.patch("/admin/tenants/acme", json={"disabled": False}, headers=ADMIN)).status_code == 200
        assert (await client.post("/llm/intelligence", json=LLM, headers=key)).status_code == 200


async def test_each_request_carries_its_policy_subject(fleet: SimFleet) -> None:
    # Rules that let the request through (every model in region us): policy enforces them (tests/e2e/test_policy.py)
    providers = demo_providers(fleet)
    for provider in providers.values():
        for model in provider["models"].values():
            model["region"] = "us"
    tenants = {"acme": {"allowed_regions": ["us"], "allowed_data_classes": ["internal", "confidential"]}}
    config = build_config(providers, demo_routing(), {}, tenants_raw=tenants)
    async with gateway(config, clock=FakeClock(), settings=_settings()) as client:
        outcomes: list[RequestOutcome] = []
        client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
        scoped = await _key(
            client, "a1", tenant="acme", data_class="confidential", allowed_regions=["us"], allow_source_region=True
        )
        plain = await _key(client, "b1")
        served = await client.post("/v1/chat/completions", json=CHAT, headers=scoped)
        assert served.status_code == 200, served.text
        assert (await client.post("/llm/intelligence", json=LLM, headers=plain)).status_code == 200
        subject, plain_subject = outcomes[0].request.subject, outcomes[1].request.subject
        assert subject is not None and subject.tenant is not None
        assert subject.client_key == "a1" and subject.tenant.tenant_id == "acme"
        assert subject.tenant.allowed_regions == frozenset({"us"})
        assert subject.tenant.allowed_data_classes == frozenset({DataClass.INTERNAL, DataClass.CONFIDENTIAL})
        assert subject.data_class is DataClass.CONFIDENTIAL and subject.may_set_source_region
        assert plain_subject is not None and plain_subject.tenant is None and plain_subject.client_key == "b1"
        [listed, _] = (await client.get("/admin/keys", headers=ADMIN)).json()["keys"]
        assert listed["tenant"] == "acme" and listed["data_class"] == "confidential"


async def test_no_tenant_config_is_todays_behaviour(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        outcomes: list[RequestOutcome] = []
        client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert outcomes[0].request.subject is None
        assert "bkvy_tenant_budget_used_ratio{" not in (await client.get("/metrics")).text


async def test_statistics_and_dashboard_filter_by_tenant(fleet: SimFleet) -> None:
    log_dir = tempfile.mkdtemp(prefix="bkvy-test-")
    settings = load_settings(
        {}, log_dir=log_dir, admin_api_key="admin-secret", summary_stats=True, dashboard_enabled=True
    )
    config = _config(fleet, {"acme": {"monthly_budget_usd": 5}, "idle": {}})
    async with gateway(config, clock=FakeClock(), settings=settings) as client:
        key = await _key(client, "a1", tenant="acme")
        other = await _key(client, "b1")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 200
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=other)).status_code == 200
        everyone = (await client.get("/statistics/summary")).json()
        acme = (await client.get("/statistics/summary", params={"tenant": "acme"})).json()
        idle = (await client.get("/statistics/summary", params={"tenant": "idle"})).json()
        assert everyone["today"]["total"] == 2 and acme["today"]["total"] == 1 and idle["today"]["total"] == 0
        assert acme["tenant"] == "acme" and acme["today"]["by_key_id"]
        ghost = await client.get("/statistics/summary", params={"tenant": "ghost"})
        assert ghost.status_code == 404 and ghost.json()["error"]["code"] == "unknown_tenant"
        assert (await client.get("/statistics/summary", params={"tenant": "../x"})).status_code in (400, 422)
        board = (await client.get("/dashboard/data", params={"tenant": "acme"})).json()
        assert board["tenant"] == "acme" and board["summary"]["total"] == 1
        assert [r["client_id"] for r in board["recent"]] == ["a1"]
        whole = (await client.get("/dashboard/data")).json()
        assert whole["summary"]["total"] == 2 and {t["id"] for t in whole["tenants"]} == {"acme", "idle"}
    assert oct(os.stat(Path(log_dir) / "tenant_stats").st_mode & 0o777) == "0o700"
    assert oct(os.stat(Path(log_dir) / "tenant_stats" / "acme.json").st_mode & 0o777) == "0o600"
    async with gateway(config, clock=FakeClock(), settings=settings) as client:  # kept across a restart
        acme = (await client.get("/statistics/summary", params={"tenant": "acme"})).json()
        assert acme["today"]["total"] == 1


async def test_tenants_json_is_read_beside_providers_and_reloaded(fleet: SimFleet, tmp_path: Path) -> None:
    (tmp_path / "providers.json").write_text(json.dumps(demo_providers(fleet)))
    (tmp_path / "routing.json").write_text(json.dumps(demo_routing()))
    (tmp_path / "tenants.json").write_text(json.dumps({"acme": {"rpm": 1}}))
    config = load_config(tmp_path, {})
    assert config.tenants["acme"].rpm == 1
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-secret")
    async with gateway(config, clock=FakeClock(), settings=settings) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        services.config_source = lambda: load_config(tmp_path, {})
        key = await _key(client, "a1", tenant="acme")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 200
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 429
        (tmp_path / "tenants.json").write_text(json.dumps({"acme": {"rpm": 100}}))
        assert (await client.post("/admin/reload", headers=ADMIN)).status_code == 200
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code == 200
        (tmp_path / "tenants.json").write_text(json.dumps({"acme": {"allowed_models": ["openai/nope"]}}))
        refused = await client.post("/admin/reload", headers=ADMIN)
        assert refused.status_code == 400 and "tenants.json: acme.allowed_models" in refused.json()["error"]["message"]


async def test_key_scope_fields_are_validated(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        for body in ({"data_class": "secret"}, {"allowed_regions": ["eu west"]}, {"allow_source_region": "maybe"}):
            response = await client.post("/admin/keys", json={"name": "k", **body}, headers=ADMIN)
            assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error", body


async def test_a_key_without_a_data_class_takes_its_tenants(fleet: SimFleet) -> None:
    config = _config(fleet, {"acme": {"data_class": "internal"}})
    async with gateway(config, clock=FakeClock(), settings=_settings()) as client:
        outcomes: list[RequestOutcome] = []
        client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
        inherits = await _key(client, "a1", tenant="acme")
        own = await _key(client, "a2", tenant="acme", data_class="confidential")
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=inherits)).status_code == 200
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=own)).status_code == 200
        inherited, kept = (outcome.request.subject for outcome in outcomes)
        assert inherited is not None and inherited.data_class is DataClass.INTERNAL
        assert kept is not None and kept.data_class is DataClass.CONFIDENTIAL


async def test_an_api_tenant_names_only_rules_of_policy_json(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        rules = [rule.name for rule in client.app.state.services.config.policy.rules]  # type: ignore[attr-defined]
        assert (await _tenant(client, "acme", policy=rules[:1]))["id"] == "acme"
        refused = await client.post("/admin/tenants", json={"id": "beta", "policy": ["nope"]}, headers=ADMIN)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request", refused.text
        assert "unknown rule 'nope'" in refused.json()["error"]["message"]
        changed = await client.patch("/admin/tenants/acme", json={"policy": ["nope"]}, headers=ADMIN)
        assert changed.status_code == 400
        assert (await client.get("/admin/tenants/acme", headers=ADMIN)).json()["policy"] == rules[:1]


@pytest.mark.parametrize(
    ("field", "value", "default"),
    [
        ("blocked_models", ["openai/gpt-4o-mini"], []),
        ("preferred_models", ["openai/gpt-4o-mini"], []),
        ("policy", [], []),
        ("disabled", True, False),
        ("allowed_models", ["openai/gpt-4o-mini"], None),
        ("rpm", 5, None),
    ],
)
async def test_patch_null_puts_each_field_back_to_its_default(
    fleet: SimFleet, field: str, value: object, default: object
) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=_settings()) as client:
        await _tenant(client, "acme", name="Acme", **{field: value})
        reset = await client.patch("/admin/tenants/acme", json={field: None}, headers=ADMIN)
        assert reset.status_code == 200, reset.text
        assert reset.json()[field] == default and reset.json()["name"] == "Acme"
        unknown = await client.patch("/admin/tenants/acme", json={"nope": None}, headers=ADMIN)
        assert unknown.status_code == 422
