"""``api.policy_gate.police``: who may set the source region, what a tenant adds, and nothing at all without
policy (the request object comes back as it went in)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bkvy.api.policy_gate import police, policy_headers
from bkvy.core.config.gateway import build_config
from bkvy.core.config.policy_config import build_policy
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.policy.engine import PolicyEngine
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.errors import InvalidPolicyInput
from bkvy.models.policy import PolicySubject, TenantRules
from bkvy.models.types import ChatMessage, GenerationOptions, RoutingMethod

MODEL = {"cost_per_1k_tokens": 0.001, "intelligence_tier": "low"}
CONFIG = build_config(
    {
        "openai": {"keys": {"k": {"api_key": "x"}}, "models": {"gpt": {**MODEL, "region": "us"}}},
        "ollama": {"models": {"llama": {**MODEL, "region": "eu"}}},
    },
    {},
    {},
)
RESIDENCY = {"residency": [{"name": "eu-stays", "source_regions": ["eu"], "allowed_model_regions": ["eu"]}]}


def _exchange(policy: dict[str, Any] | None, headers: dict[str, str], *, peer: str = "10.0.0.9") -> Any:
    config = CONFIG if policy is None else CONFIG.model_copy(update={"policy": build_policy(policy, CONFIG)})
    services = SimpleNamespace(
        executor=SimpleNamespace(policy=PolicyEngine.compile(config)),
        settings=SimpleNamespace(trusted_proxies=("10.0.0.1",)),
    )
    return SimpleNamespace(services=services, peer=peer, header=lambda name: headers.get(name.decode()))


def _request(subject: PolicySubject | None = None, text: str = "hi") -> ExecutionRequest:
    route = RouteRequest(RoutingMethod.INTELLIGENCE)
    return ExecutionRequest("r1", "c", route, (ChatMessage("user", text),), GenerationOptions(), subject=subject)


def test_without_policy_the_request_is_untouched() -> None:
    request = _request(text="mail jane@example.org")
    assert police(_exchange(None, {}), request) is request
    assert policy_headers(request) == {}


def test_source_region_counts_from_a_trusted_proxy_or_a_key_that_may_set_it() -> None:
    headers = {"x-bkvy-source-region": "eu"}
    untrusted = police(_exchange(RESIDENCY, headers), _request())
    assert untrusted.route.allowed is None
    proxied = police(_exchange(RESIDENCY, headers, peer="10.0.0.1"), _request())
    assert proxied.route.allowed == {("ollama", "llama")}
    keyed = police(_exchange(RESIDENCY, headers), _request(PolicySubject("k", may_set_source_region=True)))
    assert keyed.route.allowed == {("ollama", "llama")}
    assert policy_headers(keyed) == {"x-bkvy-policy": "restricted:eu-stays"}


@pytest.mark.parametrize("headers", [{"x-bkvy-source-region": "eu west"}, {"x-bkvy-data-class": "secret"}])
def test_malformed_policy_headers_are_400(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidPolicyInput):
        police(_exchange(RESIDENCY, headers), _request())


def test_a_tenant_brings_its_preferred_models_and_lists() -> None:
    tenant = TenantRules("acme", blocked_models=frozenset({"openai/gpt"}), preferred_models=("ollama/llama",))
    request = police(_exchange(None, {}), _request(PolicySubject("k", tenant=tenant)))
    assert request.route.allowed == {("ollama", "llama")}
    assert request.route.preferred == (("ollama", "llama"),)


def test_a_redact_rule_on_a_data_class_scans_and_redacts() -> None:
    policy = {"rules": [{"name": "conf-redact", "match": {"data_class": "confidential"}, "action": "redact"}]}
    headers = {"x-bkvy-data-class": "confidential"}
    policed = police(_exchange(policy, headers), _request(text="mail jane@example.org"))
    assert policed.messages[0].content == "mail [REDACTED:email]"
    assert policy_headers(policed) == {"x-bkvy-policy": "redacted:email"}
    clean = police(_exchange(policy, headers), _request(text="hello"))
    assert clean.messages[0].content == "hello" and policy_headers(clean) == {}
