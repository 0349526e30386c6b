"""A trailing slash too many or too few is redirected with a relative Location: never to the Host header's host
(issue 16 item 9)."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router

from bkvy.api.redirects import _other_slash_location, install_relative_slash_redirects

EVIL_HOST = {"host": "evil.example"}


@pytest.mark.parametrize(
    ("method", "path", "location"),
    [
        ("GET", "/health/", "/health"),
        ("GET", "/statistics/daily/", "/statistics/daily"),
        ("POST", "/admin/keys/", "/admin/keys"),
        ("POST", "/llm/direct/", "/llm/direct"),
        ("GET", "/docs/", "/docs"),
        ("GET", "/health/?verbose=1&x=%2F", "/health?verbose=1&x=%2F"),
    ],
)
async def test_slash_redirect_is_relative_whatever_the_host(
    demo_gateway: httpx.AsyncClient, method: str, path: str, location: str
) -> None:
    response = await demo_gateway.request(method, path, headers=EVIL_HOST)
    assert response.status_code == 307
    assert response.headers["location"] == location


def test_a_route_that_takes_any_path_never_redirects_to_another_host() -> None:
    router = Router(routes=[Route("/{rest:path}", PlainTextResponse("hi"))])
    install_relative_slash_redirects(router)
    scope = {"type": "http", "method": "GET", "path": "//evil.example/", "root_path": "", "query_string": b""}
    assert _other_slash_location(router, scope) is None  # "//evil.example" would be another host's URL
    assert _other_slash_location(router, {**scope, "path": "/\\evil.example/"}) is None
    assert _other_slash_location(router, {**scope, "path": "/ax/"}) == "/ax"


@pytest.mark.parametrize("path", ["//evil.example/", "//health/", "/nowhere/", "/health//x"])
async def test_no_redirect_without_a_route_or_to_another_host(demo_gateway: httpx.AsyncClient, path: str) -> None:
    response = await demo_gateway.get(httpx.URL(f"http://bkvy.test{path}"), headers=EVIL_HOST)  # path kept as is
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "evil.example" not in response.text
