"""One endpoint table: the hot-path dispatcher, FastAPI's routes and the OpenAPI document all read it."""

from __future__ import annotations

import tempfile

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from bkvy.api.app import GatewayApp, create_app
from bkvy.api.endpoints import ENDPOINTS
from bkvy.core.config.settings import load_settings

HOT = {
    "/llm/intelligence",
    "/llm/scenario",
    "/llm/direct",
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/embeddings",
    "/llm/explain",  # same body reader and client-key auth as the routes they explain
    "/v1/route/explain",
}


@pytest.fixture
def app() -> GatewayApp:
    app = create_app(load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-")), None)  # type: ignore[arg-type]
    assert isinstance(app, GatewayApp)
    return app


def _table() -> set[tuple[str, str]]:
    return {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}


def test_fastapi_routes_are_the_table(app: GatewayApp) -> None:
    routes = {(method, route.path) for route in app.routes if isinstance(route, APIRoute) for method in route.methods}
    assert routes == _table()
    assert len(ENDPOINTS) == len(_table())


def test_dispatcher_answers_exactly_the_hot_rows_fastapi_also_lists(app: GatewayApp) -> None:
    hot_rows = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS if endpoint.is_hot}
    assert app.hot_paths.routes() == hot_rows
    assert {path for _, path in hot_rows} == HOT
    fastapi_routes = {
        (method, route.path) for route in app.routes if isinstance(route, APIRoute) for method in route.methods
    }
    assert app.hot_paths.routes() <= fastapi_routes


def test_openapi_lists_every_endpoint_with_its_request_schema(app: GatewayApp) -> None:
    document = app.openapi()
    listed = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    assert listed == {(method, compile_path(path)[1]) for method, path in _table()}
    schemas = document["components"]["schemas"]
    for endpoint in ENDPOINTS:
        operation = document["paths"][compile_path(endpoint.path)[1]][endpoint.method.lower()]
        if endpoint.request_schema is None:
            assert "requestBody" not in operation, endpoint.path
            continue
        reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert reference == f"#/components/schemas/{endpoint.request_schema.__name__}"
        assert schemas[endpoint.request_schema.__name__]["properties"], endpoint.path


async def test_openapi_json_lists_the_chat_completions_schema(demo_gateway: httpx.AsyncClient) -> None:
    document = (await demo_gateway.get("/openapi.json")).json()
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ChatCompletionIn"
    assert "messages" in document["components"]["schemas"]["ChatCompletionIn"]["properties"]
    assert "/llm/direct" in document["paths"]
    assert (await demo_gateway.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "template", "allow"),
    [
        ("GET", "/llm/direct", "/llm/direct", "POST"),  # a hot path
        ("DELETE", "/health", "/health", "GET"),  # a FastAPI route
        ("PUT", "/admin/keys/ck_1", "/admin/keys/{key_id}", "DELETE"),
    ],
)
async def test_wrong_method_is_one_envelope_on_both_paths(
    demo_gateway: httpx.AsyncClient, method: str, path: str, template: str, allow: str
) -> None:
    response = await demo_gateway.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"] == {
        "code": "method_not_allowed",
        "message": f"{method} is not allowed on {template}; use {allow}",
    }


async def test_both_paths_are_counted_by_the_one_metrics_hook(demo_gateway: httpx.AsyncClient) -> None:
    assert (await demo_gateway.get("/health")).status_code == 200
    assert (await demo_gateway.get("/llm/direct")).status_code == 405
    text = (await demo_gateway.get("/metrics")).text
    assert 'bkvy_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'bkvy_http_requests_total{method="GET",route="/llm/direct",status="405"} 1.0' in text
