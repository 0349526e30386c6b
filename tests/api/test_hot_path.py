"""The routing endpoints are answered before FastAPI's stack (api.hot_path): the same envelopes, statuses and
limits as every other route, a body read in pieces with its cap enforced, and /metrics still counting them."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bkvy.models.errors import BodyTooLarge

CANARY = "CANARY-HOT-PATH-77"
BODY = {"client_id": "hot", "intelligence_level": "low", "messages": [{"role": "user", "content": CANARY}]}


async def _pieces(payload: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def test_body_sent_in_pieces_without_length_is_read_whole(demo_gateway: httpx.AsyncClient) -> None:
    payload = json.dumps(BODY).encode()
    response = await demo_gateway.post(
        "/llm/intelligence", content=_pieces(payload, 7), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


async def test_body_over_the_limit_without_length_is_refused(demo_gateway: httpx.AsyncClient) -> None:
    filler = "x" * (1024 * 1024)
    payload = json.dumps({**BODY, "messages": [{"role": "user", "content": filler}]}).encode()
    response = await demo_gateway.post(
        "/llm/intelligence", content=_pieces(payload, 64 * 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == BodyTooLarge.status
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("path", ["/llm/direct", "/v1/chat/completions"])
async def test_wrong_method_says_which_one_to_use(demo_gateway: httpx.AsyncClient, path: str) -> None:
    response = await demo_gateway.get(path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_unexpected_error_is_a_500_envelope_without_content(
    demo_gateway: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: object) -> None:
        raise RuntimeError(CANARY)  # a bug's message may hold anything: it must not reach the client

    demo_gateway.app.state.services.executor.execute_then_report = broken  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    chat = {"model": "auto", "messages": BODY["messages"]}
    for path, body in (("/llm/intelligence", BODY), ("/v1/chat/completions", chat)):
        response = await demo_gateway.post(path, json=body)
        assert response.status_code == 500
        assert CANARY not in response.text
        envelope = response.json()
        assert envelope["error"]["code"] == "internal_error"
    assert CANARY not in caplog.text
    assert "unhandled_error" in caplog.text


async def test_metrics_count_hot_paths_by_template_and_status(demo_gateway: httpx.AsyncClient) -> None:
    assert (await demo_gateway.post("/llm/intelligence", json=BODY)).status_code == 200
    assert (await demo_gateway.get("/llm/intelligence")).status_code == 405
    text = (await demo_gateway.get("/metrics")).text
    assert 'bkvy_http_requests_total{method="POST",route="/llm/intelligence",status="200"} 1.0' in text
    assert 'bkvy_http_requests_total{method="GET",route="/llm/intelligence",status="405"} 1.0' in text
