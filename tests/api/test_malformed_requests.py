"""Malformed requests to the routing endpoints: each gets the failure envelope with the right status and
`error.code`, never a 500, and never an echo of the request's message content."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest

CANARY = "CANARY-CONTENT-123"
USER = {"role": "user", "content": CANARY}
JSON_HEADERS = {"content-type": "application/json"}


def body(**fields: object) -> dict[str, object]:
    """A valid /llm/intelligence body with ``fields`` replaced; a value of ``...`` removes the field."""
    base: dict[str, object] = {"client_id": "malformed", "intelligence_level": "low", "messages": [USER]}
    base.update(fields)
    return {name: value for name, value in base.items() if value is not ...}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    code: str
    path: str = "/llm/intelligence"
    payload: object = None  # JSON-encoded when not bytes
    method: str = "POST"

    def content(self) -> bytes | None:
        if self.payload is None:
            return None
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload).encode()


CASES = [
    Case("bad_json", 400, "invalid_json", payload=b'{"client_id": "x", "messages": [' + CANARY.encode()),
    Case("empty_body", 400, "invalid_json", payload=b""),
    Case("whitespace_body", 400, "invalid_json", payload=b"  \n "),
    Case(
        "non_utf8_bytes",
        400,
        "invalid_encoding",
        payload=b'{"client_id": "x", "messages": [{"role": "user", "content": "\xff\xfe' + CANARY.encode() + b'"}]}',
    ),
    Case("json_array", 422, "validation_error", payload=[body()]),
    Case("json_string", 422, "validation_error", payload=CANARY),
    Case("missing_client_id", 422, "validation_error", payload=body(client_id=...)),
    Case("client_id_number", 422, "validation_error", payload=body(client_id=42)),
    Case("client_id_too_long", 422, "validation_error", payload=body(client_id="c" * 129)),
    Case("client_id_with_spaces", 422, "validation_error", payload=body(client_id="my client")),
    Case("client_id_empty", 422, "validation_error", payload=body(client_id="")),
    Case("missing_messages", 422, "validation_error", payload=body(messages=...)),
    Case("messages_not_a_list", 422, "validation_error", payload=body(messages=CANARY)),
    Case("empty_messages", 422, "validation_error", payload=body(messages=[])),
    Case("message_missing_role", 422, "validation_error", payload=body(messages=[{"content": CANARY}])),
    Case(
        "message_unknown_role", 422, "validation_error", payload=body(messages=[{"role": "wizard", "content": CANARY}])
    ),
    Case("message_missing_content", 422, "validation_error", payload=body(messages=[{"role": "user"}])),
    Case("content_number", 422, "validation_error", payload=body(messages=[{"role": "user", "content": 12345}])),
    Case("content_empty_parts", 422, "validation_error", payload=body(messages=[{"role": "user", "content": []}])),
    Case(
        "content_part_text_missing",
        422,
        "validation_error",
        payload=body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
    ),
    Case(
        "content_part_unknown_type",
        422,
        "validation_error",
        payload=body(messages=[{"role": "user", "content": [{"type": "audio", "text": CANARY}]}]),
    ),
    Case(
        "only_system_messages", 422, "validation_error", payload=body(messages=[{"role": "system", "content": CANARY}])
    ),
    Case(
        "message_extra_field",
        422,
        "validation_error",
        payload=body(messages=[{"role": "user", "content": CANARY, "name": CANARY}]),
    ),
    Case("unknown_intelligence_level", 422, "validation_error", payload=body(intelligence_level="genius")),
    Case("missing_intelligence_level", 422, "validation_error", payload=body(intelligence_level=...)),
    Case("negative_max_wait", 422, "validation_error", payload=body(max_wait_seconds=-1)),
    Case("max_wait_as_string", 422, "validation_error", payload=body(max_wait_seconds="soon")),
    Case("max_wait_as_numeric_string", 422, "validation_error", payload=body(max_wait_seconds="30")),
    Case("max_wait_too_large", 422, "validation_error", payload=body(max_wait_seconds=10**9)),
    Case("temperature_out_of_range", 422, "validation_error", payload=body(options={"temperature": 3.5})),
    Case("temperature_negative", 422, "validation_error", payload=body(options={"temperature": -0.1})),
    Case("top_p_zero", 422, "validation_error", payload=body(options={"top_p": 0})),
    Case("max_tokens_zero", 422, "validation_error", payload=body(options={"max_tokens": 0})),
    Case("max_tokens_float", 422, "validation_error", payload=body(options={"max_tokens": 1.5})),
    Case("max_tokens_as_string", 422, "validation_error", payload=body(options={"max_tokens": "100"})),
    Case("temperature_as_string", 422, "validation_error", payload=body(options={"temperature": "0.5"})),
    Case("too_many_stop_sequences", 422, "validation_error", payload=body(options={"stop": ["a", "b", "c", "d", "e"]})),
    Case("empty_stop_sequence", 422, "validation_error", payload=body(options={"stop": [""]})),
    Case("unknown_option", 422, "validation_error", payload=body(options={"frequency_penalty": 1})),
    Case("options_wrong_type", 422, "validation_error", payload=body(options=CANARY)),
    Case("unknown_extra_field", 422, "validation_error", payload=body(prompt=CANARY)),
    Case("debug_as_string", 422, "validation_error", payload=body(debug="yes please")),
    Case("debug_as_string_true", 422, "validation_error", payload=body(debug="true")),
    Case("debug_as_number", 422, "validation_error", payload=body(debug=1)),
    Case("disable_thinking_as_string", 422, "validation_error", payload=body(options={"disable_thinking": "yes"})),
    Case(
        "unknown_scenario",
        404,
        "unknown_scenario",
        "/llm/scenario",
        {"client_id": "malformed", "scenario": "no_such_scenario", "messages": [USER]},
    ),
    Case("scenario_missing", 422, "validation_error", "/llm/scenario", {"client_id": "malformed", "messages": [USER]}),
    Case("scenario_on_intelligence_endpoint", 422, "validation_error", payload=body(scenario="research")),
    Case(
        "unknown_provider",
        404,
        "unknown_provider",
        "/llm/direct",
        {"client_id": "malformed", "provider": "nope", "model": "gpt-4o", "messages": [USER]},
    ),
    Case(
        "unknown_model",
        404,
        "unknown_model",
        "/llm/direct",
        {"client_id": "malformed", "provider": "openai", "model": "gpt-99", "messages": [USER]},
    ),
    Case(
        "unknown_api_key_id",
        404,
        "unknown_key",
        "/llm/direct",
        {"client_id": "malformed", "provider": "openai", "model": "gpt-4o", "api_key_id": "nope", "messages": [USER]},
    ),
    Case(
        "direct_missing_model",
        422,
        "validation_error",
        "/llm/direct",
        {"client_id": "malformed", "provider": "openai", "messages": [USER]},
    ),
    Case(
        "body_over_1_mib",
        413,
        "body_too_large",
        payload=body(messages=[{"role": "user", "content": CANARY * (1024 * 1024 // len(CANARY) + 1)}]),
    ),
    Case("get_on_intelligence", 405, "method_not_allowed", method="GET"),
    Case("get_on_direct", 405, "method_not_allowed", "/llm/direct", method="GET"),
    Case("unknown_path", 404, "not_found", "/llm/telepathy", payload=body()),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_malformed_request_gets_envelope_and_status(demo_gateway: httpx.AsyncClient, case: Case) -> None:
    response = await demo_gateway.request(case.method, case.path, content=case.content(), headers=JSON_HEADERS)

    assert response.status_code != 500
    assert response.status_code == case.status, response.text
    envelope = response.json()
    assert set(envelope) == {"success", "request_id", "error"}
    assert envelope["success"] is False
    assert isinstance(envelope["request_id"], str) and envelope["request_id"]
    assert set(envelope["error"]) == {"code", "message"}
    assert envelope["error"]["code"] == case.code
    assert isinstance(envelope["error"]["message"], str) and envelope["error"]["message"]
    assert CANARY not in response.text


async def test_declared_content_length_over_limit_is_refused(demo_gateway: httpx.AsyncClient) -> None:
    response = await demo_gateway.post(
        "/llm/intelligence",
        content=json.dumps(body()).encode(),
        headers=JSON_HEADERS | {"content-length": str(2 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_malformed_requests_never_reach_a_provider(demo_gateway: httpx.AsyncClient, fleet) -> None:
    for case in CASES:
        await demo_gateway.request(case.method, case.path, content=case.content(), headers=JSON_HEADERS)
    assert sum(sum(server.stats.calls_by_path.values()) for server in fleet.servers.values()) == 0


def test_table_has_distinct_names() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 25
