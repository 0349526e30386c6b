"""Browsers on other sites (issue 16 item 5), through the real app: a JSON route takes only a JSON body (415), a
foreign web origin is refused (403 ``origin_not_allowed``) unless CORS_ALLOWED_ORIGINS lists it, and a listed
one gets CORS headers and its preflight answered, on the hot paths and the FastAPI routes alike."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from bkvy.api.app import create_app
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import ConfigError
from bkvy.core.config.settings import load_settings
from bkvy.core.execution.executor import RequestOutcome
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

ADMIN_KEY = "admin-secret"
MESSAGES = [{"role": "user", "content": "hi"}]
# Each JSON route with a body that works, and the envelope its errors come in.
JSON_ROUTES = [
    ("/llm/direct", {"client_id": "web", "provider": "openai", "model": "gpt-4o-mini", "messages": MESSAGES}),
    ("/llm/intelligence", {"client_id": "web", "intelligence_level": "low", "messages": MESSAGES}),
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": MESSAGES}),
    ("/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "hi"}),
    ("/v1/messages", {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 16, "messages": MESSAGES}),
    ("/v1/messages/count_tokens", {"model": "anthropic/claude-3-5-haiku-latest", "messages": MESSAGES}),
    ("/admin/keys", {"name": "team-a"}),
]
FOREIGN = "https://evil.example"
LISTED = "https://app.example.com"


@asynccontextmanager
async def _gateway(
    fleet: SimFleet, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, list[RequestOutcome]]]:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key=ADMIN_KEY, **overrides)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        outcomes: list[RequestOutcome] = []
        client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
        yield client, outcomes


def _post(client: httpx.AsyncClient, path: str, body: dict, **headers: str) -> object:
    return client.post(path, content=json.dumps(body).encode(), headers={"x-admin-api-key": ADMIN_KEY, **headers})


def _code(response: httpx.Response) -> str:
    error = response.json()["error"]
    return error.get("code") or error.get("details", {}).get("error_code")


@pytest.mark.parametrize(("path", "body"), JSON_ROUTES, ids=[path for path, _ in JSON_ROUTES])
async def test_json_routes_serve_json_bodies(fleet: SimFleet, path: str, body: dict) -> None:
    async with _gateway(fleet) as (client, _):
        for content_type in ("application/json", "application/json; charset=utf-8"):
            response = await _post(client, path, body, **{"content-type": content_type})
            assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(("path", "body"), JSON_ROUTES, ids=[path for path, _ in JSON_ROUTES])
async def test_a_body_not_declared_json_is_415_and_not_billed(fleet: SimFleet, path: str, body: dict) -> None:
    async with _gateway(fleet) as (client, outcomes):
        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            None,
        ):
            headers = {} if content_type is None else {"content-type": content_type}
            response = await _post(client, path, body, **headers)
            assert response.status_code == 415, (content_type, response.text)
            assert _code(response) == "unsupported_media_type"
            assert "Content-Type: application/json" in response.text
        assert outcomes == []
        keys = await client.get("/admin/keys", headers={"x-admin-api-key": ADMIN_KEY})
        assert keys.json()["keys"] == []


@pytest.mark.parametrize(("path", "body"), JSON_ROUTES, ids=[path for path, _ in JSON_ROUTES])
async def test_a_foreign_origin_is_403_whatever_it_sends(fleet: SimFleet, path: str, body: dict) -> None:
    async with _gateway(fleet) as (client, outcomes):
        for content_type in ("text/plain", "application/json"):
            response = await _post(client, path, body, origin=FOREIGN, **{"content-type": content_type})
            assert response.status_code == 403, response.text
            assert _code(response) == "origin_not_allowed"
            assert "access-control-allow-origin" not in response.headers
        preflight = await client.options(path, headers={"origin": FOREIGN, "access-control-request-method": "POST"})
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
        assert outcomes == []
        metrics = (await client.get("/metrics")).text
        assert 'status="403"' in metrics


async def test_a_foreign_origin_is_refused_on_reads_too(fleet: SimFleet) -> None:
    async with _gateway(fleet) as (client, _):
        for path in ("/health", "/statistics/summary", "/v1/models", "/dashboard/data"):
            response = await client.get(path, headers={"origin": FOREIGN})
            assert response.status_code == 403, path


async def test_the_gateways_own_origin_is_served_without_cors_headers(fleet: SimFleet) -> None:
    async with _gateway(fleet, dashboard_enabled=True) as (client, _):  # the client's Host is bkvy.test
        for origin in ("http://bkvy.test", "https://bkvy.test"):
            response = await _post(client, *JSON_ROUTES[0], origin=origin, **{"content-type": "application/json"})
            assert response.status_code == 200, response.text
            assert "access-control-allow-origin" not in response.headers
        assert (await client.get("/dashboard/data", headers={"origin": "http://bkvy.test"})).status_code == 200
        spoofed = await client.get("/health", headers={"origin": "http://bkvy.test.evil.example"})
        assert spoofed.status_code == 403


@pytest.mark.parametrize("path", ["/llm/direct", "/v1/messages", "/admin/keys"])
async def test_a_listed_origin_gets_cors_headers_and_its_preflight(fleet: SimFleet, path: str) -> None:
    body = dict(JSON_ROUTES)[path]
    async with _gateway(fleet, cors_allowed_origins=f"{LISTED}, http://localhost:3000") as (client, _):
        preflight = await client.options(
            path,
            headers={
                "origin": LISTED,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, authorization, x-stainless-os, x-evil",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == LISTED
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = {name.strip() for name in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-api-key", "anthropic-version", "x-stainless-os"} <= allowed
        assert "x-evil" not in allowed
        assert int(preflight.headers["access-control-max-age"]) > 0
        response = await _post(client, path, body, origin=LISTED, **{"content-type": "application/json"})
        assert response.status_code in (200, 201), response.text
        assert response.headers["access-control-allow-origin"] == LISTED
        assert "Origin" in response.headers.get_list("vary")
        plain = await _post(client, path, body, origin=LISTED, **{"content-type": "text/plain"})
        assert plain.status_code == 415 and plain.headers["access-control-allow-origin"] == LISTED
        refused = await _post(client, path, body, origin=FOREIGN, **{"content-type": "application/json"})
        assert refused.status_code == 403


async def test_star_lists_every_origin(fleet: SimFleet) -> None:
    async with _gateway(fleet, cors_allowed_origins="*") as (client, _):
        response = await client.get("/health", headers={"origin": "null"})
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "null"


@pytest.mark.parametrize("entry", ["app.example.com", "https://app.example.com/", "ftp://x", "https://a.example/path"])
async def test_an_entry_that_is_not_an_origin_stops_start_up(fleet: SimFleet, entry: str) -> None:
    settings = load_settings({"CORS_ALLOWED_ORIGINS": f"https://ok.example,{entry}"})
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        create_app(settings, demo_config(fleet))
