"""Policy end to end on the simulated fleet (issue 19 §1–2, §4): private-only routing, redaction, blocking,
residency that never fails over outside its regions, and no detected value in any byte bkvy keeps."""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.policy_config import build_policy
from bkvy.core.config.settings import Settings, load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

EMAIL = "jane.canary@example.org"
PROMPT = [{"role": "user", "content": f"Please write to {EMAIL} about the invoice."}]
PRIVATE = {"ollama", "vllm"}
US = ("openai", "anthropic")


def _settings(log_dir: str | None = None, **environ: str) -> Settings:
    return load_settings(environ, log_dir=log_dir or tempfile.mkdtemp(prefix="bkvy-policy-"))


def _with_policy(config: GatewayConfig, policy: dict[str, Any]) -> GatewayConfig:
    return config.model_copy(update={"policy": build_policy(policy, config)})


def _us_calls(fleet: SimFleet) -> int:
    return sum(sum(fleet.servers[name].stats.calls_by_model.values()) for name in US)


async def test_an_email_routes_only_to_a_private_model(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        body = {"client_id": "c", "intelligence_level": "low", "messages": PROMPT, "debug": True}
        reply = await client.post("/llm/intelligence", json=body)
        chat = await client.post("/v1/chat/completions", json={"model": "low", "messages": PROMPT, "stream": True})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-bkvy-policy"] == "require_private:pii-to-private"
    assert reply.json()["provider_used"] in PRIVATE
    assert {c["provider"] for c in reply.json()["metadata"]["alternatives_considered"]} <= PRIVATE
    assert "[pii-to-private] PASS: found email (1): require_private" in reply.json()["policy"]
    assert chat.status_code == 200 and chat.headers["x-bkvy-provider"] in PRIVATE
    assert chat.headers["x-bkvy-policy"] == "require_private:pii-to-private"
    assert _us_calls(fleet) == 0


async def test_redact_sends_the_redacted_text(fleet: SimFleet) -> None:
    received = fleet.servers["anthropic"].record_bodies()
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        reply = await client.post(
            "/llm/scenario", json={"client_id": "c", "scenario": "customer_support", "messages": PROMPT}
        )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-bkvy-policy"] == "redacted:email"
    assert len(received) == 1
    assert "Please write to [REDACTED:email] about the invoice." in received[0]
    assert EMAIL not in received[0]


@pytest.mark.parametrize("stream", [False, True])
async def test_block_is_a_400_that_echoes_no_value(fleet: SimFleet, stream: bool) -> None:
    config = _with_policy(
        demo_config(fleet), {"rules": [{"name": "no-pii", "match": {"pii": True}, "action": "block"}]}
    )
    async with gateway(config, clock=FakeClock()) as client:
        reply = await client.post("/v1/chat/completions", json={"model": "low", "messages": PROMPT, "stream": stream})
        llm = await client.post("/llm/scenario", json={"client_id": "c", "scenario": "research", "messages": PROMPT})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "sensitive_data_blocked"
    assert "email" in reply.json()["error"]["message"] and "no-pii" in reply.json()["error"]["message"]
    assert llm.status_code == 400 and llm.json()["error"]["code"] == "sensitive_data_blocked"
    for response in (reply, llm):
        assert EMAIL not in response.text and "jane" not in response.text
    assert sum(sum(s.stats.calls_by_model.values()) for s in fleet.servers.values()) == 0


EU_ONLY = {
    "residency": [
        {"name": "eu-data-stays-in-eu", "source_regions": ["eu-west-1"], "allowed_model_regions": ["eu-west-1"]}
    ]
}


async def test_eu_residency_never_fails_over_to_a_us_model(fleet: SimFleet) -> None:
    # Auth failures open the EU circuits for good (no panic-mode retry, which server errors would get).
    for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
        fleet.servers["gemini"].knobs(model).error_rates = {"auth": 1.0}
    config = _with_policy(demo_config(fleet), EU_ONLY)
    headers = {"x-bkvy-source-region": "eu-west-1"}
    replies = []
    async with gateway(config, clock=FakeClock(), settings=_settings(TRUSTED_PROXIES="127.0.0.1")) as client:
        for _ in range(12):  # bounded: the circuits open after a few failures
            body = {"client_id": "c", "intelligence_level": "medium", "messages": [{"role": "user", "content": "hi"}]}
            replies.append(await client.post("/llm/intelligence", json=body, headers=headers))
            if replies[-1].json().get("error", {}).get("code") == "circuits_open":
                break
    assert _us_calls(fleet) == 0
    assert {r.status_code for r in replies[:-1]} <= {502}
    last = replies[-1].json()["error"]
    assert replies[-1].status_code == 503 and last["code"] == "circuits_open"
    assert "eu-data-stays-in-eu" in last["message"]  # auth-open circuits recover by no time: no Retry-After
    for reply in replies:
        tried = {a["provider"] for a in reply.json()["error"].get("attempts") or []}
        assert tried <= {"gemini"}


async def test_eu_models_down_fail_within_the_eu_with_retry_after(fleet: SimFleet, fake_clock: FakeClock) -> None:
    for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
        fleet.servers["gemini"].knobs(model).down = True
    config = _with_policy(demo_config(fleet), EU_ONLY)
    headers = {"x-bkvy-source-region": "eu-west-1"}
    body = {"model": "medium", "messages": [{"role": "user", "content": "hi"}]}
    async with gateway(config, clock=fake_clock, settings=_settings(TRUSTED_PROXIES="127.0.0.1")) as client:
        replies = [await client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(8)]
        stream = await client.post("/v1/chat/completions", json={**body, "stream": True}, headers=headers)
    assert _us_calls(fleet) == 0
    assert {r.status_code for r in [*replies, stream]} <= {502, 503}
    opened = [r for r in replies if r.status_code == 503]
    for reply in opened:  # every EU circuit open: panic mode tries one of them, else 503 naming the rule
        assert "eu-data-stays-in-eu" in reply.json()["error"]["message"] and "retry-after" in reply.headers


async def test_no_allowed_candidate_is_a_403_naming_the_rule(fleet: SimFleet) -> None:
    config = _with_policy(demo_config(fleet), EU_ONLY)
    headers = {"x-bkvy-source-region": "eu-west-1"}
    async with gateway(config, clock=FakeClock(), settings=_settings(TRUSTED_PROXIES="127.0.0.1")) as client:
        direct = {"client_id": "c", "provider": "openai", "model": "gpt-4o-mini", "messages": PROMPT}
        reply = await client.post("/llm/direct", json=direct, headers=headers)
        explain = await client.post("/llm/explain", json=direct, headers=headers)
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "policy_no_candidate"
    assert "eu-data-stays-in-eu" in reply.json()["error"]["message"]
    assert explain.status_code == 200
    assert {c["excluded_by"] for c in explain.json()["candidates"]} == {"policy"}
    assert any("[eu-data-stays-in-eu] PASS" in line for line in explain.json()["policy"])
    assert _us_calls(fleet) == 0


async def test_source_region_from_an_untrusted_peer_is_ignored(fleet: SimFleet) -> None:
    config = _with_policy(demo_config(fleet), EU_ONLY)
    async with gateway(config, clock=FakeClock()) as client:
        direct = {
            "client_id": "c",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
        }
        reply = await client.post("/llm/direct", json=direct, headers={"x-bkvy-source-region": "eu-west-1"})
        bad = await client.post("/llm/direct", json=direct, headers={"x-bkvy-source-region": "eu west/1"})
        bad_class = await client.post(
            "/v1/chat/completions",
            json={"model": "low", "messages": PROMPT},
            headers={"x-bkvy-data-class": "top-secret"},
        )
    assert reply.status_code == 200 and "x-bkvy-policy" not in reply.headers
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_policy_input"
    assert bad_class.status_code == 400 and bad_class.json()["error"]["code"] == "invalid_policy_input"


async def test_data_class_restricts_regions(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        body = {"client_id": "c", "intelligence_level": "medium", "messages": [{"role": "user", "content": "hi"}]}
        llm = await client.post("/llm/intelligence", json={**body, "data_class": "confidential", "debug": True})
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "high", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-bkvy-data-class": "restricted"},
        )
    assert llm.status_code == 200 and llm.headers["x-bkvy-policy"] == "restricted:confidential-in-eu"
    assert llm.json()["provider_used"] in {"gemini", *PRIVATE}
    assert chat.status_code == 403 and chat.json()["error"]["code"] == "policy_no_candidate"  # no private high model
    assert "restricted-on-prem" in chat.json()["error"]["message"]


def _csv_rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "transactions.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_a_detected_value_appears_in_no_log_record_stat_or_metric(
    fleet: SimFleet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_prompt = [{"role": "user", "content": f"mail {EMAIL} now"}]
    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True, summary_stats=True, dashboard_enabled=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        await client.post(
            "/llm/intelligence", json={"client_id": "c", "intelligence_level": "low", "messages": secret_prompt}
        )
        await client.post("/llm/scenario", json={"client_id": "c", "scenario": "research", "messages": secret_prompt})
        await client.post(
            "/llm/scenario", json={"client_id": "c", "scenario": "customer_support", "messages": secret_prompt}
        )
        pages = [
            await client.get(path)
            for path in ("/metrics", "/statistics/summary", "/statistics/aggregate", "/dashboard/data")
        ]
    assert [page.status_code for page in pages] == [200] * 4
    metrics = pages[0].text
    assert 'bkvy_policy_decisions_total{action="require_private",rule="pii-to-private"} 1.0' in metrics
    assert 'bkvy_policy_decisions_total{action="block",rule="no-pii-in-research"} 1.0' in metrics
    rows = _csv_rows(tmp_path)
    assert [(r["policy_action"], r["policy_rule"], r["pii_kinds"]) for r in rows] == [
        ("require_private", "pii-to-private", "email"),
        ("block", "no-pii-in-research", "email"),
        ("redact", "redact-support", "email"),
    ]
    kept = [page.text for page in pages] + [caplog.text]
    kept += [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()]
    for text in kept:
        assert EMAIL not in text and "jane.canary" not in text
    assert json.dumps(rows)  # rows parsed whole


# Secret canaries (issue 19 review): their distinctive middles must appear in no byte bkvy keeps.
SK_CANARY = "sk-proj-Canary7Xq2Lm9Pz4Rt6Vw8Yb3Nd5Hf1Jk0"
PEM_CANARY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACanaryBodyQ8Zx3Lp7Vt2Wm9\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
SECRET_MARKS = ("Canary7Xq2Lm9Pz4Rt6Vw8Yb3Nd5Hf1Jk0", "CanaryBodyQ8Zx3Lp7Vt2Wm9")


async def test_a_detected_secret_appears_in_no_log_record_stat_or_metric(
    fleet: SimFleet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_prompt = [{"role": "user", "content": f"deploy with {SK_CANARY} and\n{PEM_CANARY}\nthanks"}]
    arguments = json.dumps({"api_key": SK_CANARY, "ssh_key": PEM_CANARY, "note": f"key {SK_CANARY}"})
    with_tool_call = [
        {"role": "user", "content": "set up the server"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "deploy", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True, summary_stats=True, dashboard_enabled=True)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        for body in (
            {"client_id": "c", "intelligence_level": "low", "messages": secret_prompt},
            {"client_id": "c", "scenario": "research", "messages": secret_prompt},
            {"client_id": "c", "scenario": "customer_support", "messages": secret_prompt},
        ):
            path = "/llm/intelligence" if "intelligence_level" in body else "/llm/scenario"
            assert (await client.post(path, json=body)).status_code < 500
        chat = await client.post("/v1/chat/completions", json={"model": "ollama/llama3.2", "messages": with_tool_call})
        assert chat.status_code < 500, chat.text
        pages = [
            await client.get(path)
            for path in ("/metrics", "/statistics/summary", "/statistics/aggregate", "/dashboard/data")
        ]
    assert [page.status_code for page in pages] == [200] * 4
    rows = _csv_rows(tmp_path)
    assert [(r["policy_action"], r["policy_rule"], r["pii_kinds"]) for r in rows] == [
        ("block", "block-secrets", "secret"),
        ("block", "no-pii-in-research", "secret"),
        ("block", "block-secrets", "secret"),
        ("block", "block-secrets", "secret"),  # found in the tool-call arguments only
    ]
    kept = [page.text for page in pages] + [caplog.text, chat.text]
    kept += [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()]
    for text in kept:
        for mark in SECRET_MARKS:
            assert mark not in text


async def test_explain_marks_what_policy_leaves_out(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        body = {"client_id": "c", "intelligence_level": "low", "messages": PROMPT}
        explain = await client.post("/llm/explain", json=body)
        chat = await client.post("/v1/route/explain", json={"model": "low", "messages": PROMPT})
    for reply in (explain, chat):
        assert reply.status_code == 200, reply.text
        assert reply.json()["chosen"]["provider"] in PRIVATE
        excluded = [c for c in reply.json()["candidates"] if c.get("excluded_by") == "policy"]
        assert excluded and all(c["provider"] not in PRIVATE for c in excluded)
        assert all("policy rule 'pii-to-private'" in c["reasons"][0] for c in excluded)
        assert "[pii-to-private] PASS: found email (1): require_private" in reply.json()["policy"]
        assert EMAIL not in reply.text
    assert sum(sum(s.stats.calls_by_model.values()) for s in fleet.servers.values()) == 0


async def test_embeddings_and_messages_follow_policy(fleet: SimFleet) -> None:
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        embed = await client.post("/v1/embeddings", json={"model": "scenario:search_index", "input": f"to {EMAIL}"})
        private_embed = await client.post("/v1/embeddings", json={"model": "ollama/nomic-embed-text", "input": EMAIL})
        messages = await client.post(
            "/v1/messages", json={"model": "low", "max_tokens": 50, "messages": PROMPT}, headers={"x-api-key": "x"}
        )
    assert embed.status_code == 403 and embed.json()["error"]["code"] == "policy_no_candidate"
    assert "pii-to-private" in embed.json()["error"]["message"] and EMAIL not in embed.text
    assert private_embed.status_code == 200
    assert private_embed.headers["x-bkvy-policy"] == "require_private:pii-to-private"
    assert messages.status_code == 200, messages.text
    assert messages.headers["x-bkvy-provider"] in PRIVATE
    assert messages.headers["x-bkvy-policy"] == "require_private:pii-to-private"


async def test_explain_of_a_request_policy_blocks_chooses_nothing(fleet: SimFleet) -> None:
    # The demo's research scenario blocks any finding (no-pii-in-research): the request would get 400.
    async with gateway(demo_config(fleet), clock=FakeClock()) as client:
        body = {"client_id": "c", "scenario": "research", "messages": PROMPT}
        explained = await client.post("/llm/explain", json=body)
        served = await client.post("/llm/scenario", json=body)
    assert served.status_code == 400 and served.json()["error"]["code"] == "sensitive_data_blocked"
    reply = explained.json()
    assert reply["chosen"] is None and reply["blocked_by"] == "no-pii-in-research", reply
    assert any(line.startswith("[no-pii-in-research] BLOCK") for line in reply["policy"])
    assert EMAIL not in explained.text
