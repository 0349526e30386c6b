"""Policy evaluation as a pure function (issue 19): first match in scope, data classes, residency, tenants."""

from __future__ import annotations

from typing import Any

from bkvy.core.config.policy_config import PolicyConfig
from bkvy.core.policy.detector import RequestScan
from bkvy.core.policy.rules import ModelPlace, PolicyInputs, decide
from bkvy.models.policy import DataClass, PiiKind, PolicyAction, PolicySubject, TenantRules
from bkvy.models.types import IntelligenceLevel

MODELS = (
    ModelPlace("openai", "gpt-4o-mini", False, "us"),
    ModelPlace("gemini", "gemini-2.5-flash", False, "eu-west-1"),
    ModelPlace("mistral", "mistral-large", False, "eu-west-1"),
    ModelPlace("ollama", "llama3.2", True, "on-prem"),
)
EMAIL = RequestScan(frozenset({PiiKind.EMAIL}), 2)
CLEAN = RequestScan()


def _policy(*rules: dict[str, Any], residency: tuple[dict[str, Any], ...] = ()) -> PolicyConfig:
    return PolicyConfig.model_validate({"rules": list(rules), "residency": list(residency)})


def _rule(name: str, match: dict[str, Any], action: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "match": match, "action": action, **extra}


def test_first_matching_rule_wins() -> None:
    policy = _policy(
        _rule("block-phone", {"pii_kinds": ["phone"]}, "block"),
        _rule("redact-email", {"pii_kinds": ["email"]}, "redact"),
        _rule("private-pii", {"pii": True}, "require_private"),
    )
    decision = decide(policy, MODELS, PolicyInputs(EMAIL))
    assert decision.action is PolicyAction.REDACT
    assert decision.rule == "redact-email"
    assert decision.allowed is None  # redact narrows nothing
    assert decision.lines == ("[block-phone] PASS: not matched", "[redact-email] PASS: found email: redact")
    assert decision.header_value == "redacted:email"


def test_no_rule_matches_a_clean_request() -> None:
    policy = _policy(_rule("private-pii", {"pii": True}, "require_private"))
    decision = decide(policy, MODELS, PolicyInputs(CLEAN))
    assert (decision.action, decision.rule, decision.allowed, decision.header_value) == (
        PolicyAction.ALLOW,
        None,
        None,
        None,
    )


def test_require_private_allows_private_models_only() -> None:
    policy = _policy(_rule("pii-to-private", {"pii": True}, "require_private"))
    decision = decide(policy, MODELS, PolicyInputs(EMAIL))
    assert decision.allowed == {("ollama", "llama3.2")}
    assert decision.header_value == "require_private:pii-to-private"
    assert "[pii-to-private] PASS: found email (2): require_private" in decision.lines


def test_block_line_names_kinds_only() -> None:
    decision = decide(_policy(_rule("no-pii", {"pii": True}, "block")), MODELS, PolicyInputs(EMAIL))
    assert decision.action is PolicyAction.BLOCK
    assert decision.lines == ("[no-pii] BLOCK: found email (2): block",)


def test_scope_limits_a_rule_to_its_scenarios_levels_and_keys() -> None:
    scoped = _rule(
        "support-only",
        {"pii": True},
        "block",
        scope={"scenarios": ["support"], "levels": ["low"], "client_keys": ["team-a"]},
    )
    policy = _policy(scoped)
    subject = PolicySubject(client_key="team-a")
    inside = PolicyInputs(EMAIL, level=IntelligenceLevel.LOW, scenario="support", subject=subject)
    assert decide(policy, MODELS, inside).action is PolicyAction.BLOCK
    for outside in (
        PolicyInputs(EMAIL, level=IntelligenceLevel.LOW, scenario="research", subject=subject),
        PolicyInputs(EMAIL, level=IntelligenceLevel.HIGH, scenario="support", subject=subject),
        PolicyInputs(EMAIL, level=IntelligenceLevel.LOW, scenario="support", subject=PolicySubject(client_key="b")),
        PolicyInputs(EMAIL, level=IntelligenceLevel.LOW, scenario="support"),
    ):
        assert decide(policy, MODELS, outside).action is PolicyAction.ALLOW


def test_tenant_policy_names_bring_a_rule_into_scope() -> None:
    policy = _policy(_rule("strict", {"pii": True}, "block", scope={"tenants": ["someone-else"]}))
    tenant = TenantRules("acme", policy=("strict",))
    assert decide(policy, MODELS, PolicyInputs(EMAIL, subject=PolicySubject(tenant=tenant))).rule == "strict"
    assert decide(policy, MODELS, PolicyInputs(EMAIL)).rule is None


def test_data_class_comes_from_the_request_else_the_key() -> None:
    policy = _policy(
        _rule("restricted-private", {"data_class": "restricted"}, "require_private"),
        _rule("confidential-eu", {"data_class": "confidential"}, "allow", allowed_regions=["eu-west-1"]),
    )
    key = PolicySubject(client_key="k", data_class=DataClass.RESTRICTED)
    assert decide(policy, MODELS, PolicyInputs(CLEAN, subject=key)).allowed == {("ollama", "llama3.2")}
    internal_key = PolicySubject(client_key="k", data_class=DataClass.INTERNAL)
    own = PolicyInputs(CLEAN, data_class=DataClass.CONFIDENTIAL, subject=internal_key)
    decision = decide(policy, MODELS, own)
    assert decision.allowed == {("gemini", "gemini-2.5-flash"), ("mistral", "mistral-large")}
    assert decision.data_class is DataClass.CONFIDENTIAL
    assert decision.header_value == "restricted:confidential-eu"


def test_residency_applies_to_its_source_regions_only() -> None:
    residency = {
        "name": "eu-stays-in-eu",
        "source_regions": ["eu-west-1"],
        "allowed_model_regions": ["eu-west-1", "on-prem"],
        "blocked_providers": ["mistral"],
    }
    policy = _policy(residency=(residency,))
    eu = decide(policy, MODELS, PolicyInputs(CLEAN, source_region="eu-west-1"))
    assert eu.allowed == {("gemini", "gemini-2.5-flash"), ("ollama", "llama3.2")}
    assert eu.narrowed_by == ("eu-stays-in-eu",)
    assert decide(policy, MODELS, PolicyInputs(CLEAN, source_region="us")).allowed is None
    assert decide(policy, MODELS, PolicyInputs(CLEAN)).allowed is None


def test_tenant_and_key_constraints_narrow_together() -> None:
    tenant = TenantRules(
        "acme",
        blocked_models=frozenset({"gemini/gemini-2.5-flash"}),
        allowed_regions=frozenset({"eu-west-1", "us"}),
    )
    subject = PolicySubject(client_key="k1", tenant=tenant, allowed_regions=frozenset({"eu-west-1"}))
    decision = decide(None, MODELS, PolicyInputs(CLEAN, subject=subject))
    assert decision.allowed == {("mistral", "mistral-large")}
    assert decision.narrowed_by == ("tenant:acme", "client_key:k1")


def test_tenant_refuses_a_data_class_it_does_not_allow() -> None:
    tenant = TenantRules("acme", allowed_data_classes=frozenset({DataClass.PUBLIC}))
    inputs = PolicyInputs(CLEAN, data_class=DataClass.RESTRICTED, subject=PolicySubject(tenant=tenant))
    decision = decide(None, MODELS, inputs)
    assert decision.allowed == frozenset()
    assert "[tenant:acme] BLOCK: data class restricted not allowed" in decision.lines


def test_no_policy_and_no_subject_decides_nothing() -> None:
    decision = decide(None, MODELS, PolicyInputs(EMAIL))
    assert (decision.action, decision.allowed, decision.lines) == (PolicyAction.ALLOW, None, ())


def test_a_client_cannot_lower_its_keys_data_class() -> None:
    policy = _policy(_rule("restricted-private", {"data_class": "restricted"}, "require_private"))
    key = PolicySubject(client_key="k", data_class=DataClass.RESTRICTED)
    for own in DataClass:
        decision = decide(policy, MODELS, PolicyInputs(CLEAN, data_class=own, subject=key))
        assert (decision.data_class, decision.allowed) == (DataClass.RESTRICTED, {("ollama", "llama3.2")})
    public_key = PolicySubject(client_key="k", data_class=DataClass.PUBLIC)
    raised = decide(policy, MODELS, PolicyInputs(CLEAN, data_class=DataClass.RESTRICTED, subject=public_key))
    assert raised.data_class is DataClass.RESTRICTED
    assert decide(policy, MODELS, PolicyInputs(CLEAN, data_class=DataClass.INTERNAL)).data_class is DataClass.INTERNAL


def test_a_tenants_policy_names_satisfy_who_asks_but_not_the_scenario_or_level() -> None:
    scope = {"scenarios": ["research"], "levels": ["high"], "tenants": [], "client_keys": ["other"]}
    policy = _policy(_rule("no-pii-in-research", {"pii": True}, "block", scope=scope))
    subject = PolicySubject(client_key="k", tenant=TenantRules("acme", policy=("no-pii-in-research",)))
    inside = PolicyInputs(EMAIL, level=IntelligenceLevel.HIGH, scenario="research", subject=subject)
    assert decide(policy, MODELS, inside).rule == "no-pii-in-research"
    for outside in (
        PolicyInputs(EMAIL, level=IntelligenceLevel.HIGH, scenario="customer_support", subject=subject),
        PolicyInputs(EMAIL, level=IntelligenceLevel.LOW, scenario="research", subject=subject),
    ):
        assert decide(policy, MODELS, outside).rule is None


def test_a_constraint_that_refuses_every_model_says_block() -> None:
    policy = _policy(_rule("nowhere", {"pii": True}, "allow", allowed_regions=["mars"]))
    decision = decide(policy, MODELS, PolicyInputs(EMAIL))
    assert decision.allowed == frozenset()
    assert "[nowhere] BLOCK: model regions mars" in decision.lines
    tenant = TenantRules("acme", allowed_regions=frozenset({"us"}))
    subject = PolicySubject(client_key="k1", tenant=tenant, allowed_regions=frozenset({"eu-west-1"}))
    emptied = decide(None, MODELS, PolicyInputs(CLEAN, subject=subject))
    assert emptied.allowed == frozenset()
    assert emptied.lines == ("[tenant:acme] PASS: model regions us", "[client_key:k1] BLOCK: model regions eu-west-1")


def test_a_redact_rule_on_a_data_class_names_what_it_redacted_and_never_an_empty_list() -> None:
    policy = _policy(_rule("conf-redact", {"data_class": "confidential"}, "redact"))
    found = decide(policy, MODELS, PolicyInputs(EMAIL, data_class=DataClass.CONFIDENTIAL))
    assert (found.action, found.header_value) == (PolicyAction.REDACT, "redacted:email")
    clean = decide(policy, MODELS, PolicyInputs(CLEAN, data_class=DataClass.CONFIDENTIAL))
    assert (clean.action, clean.header_value) == (PolicyAction.REDACT, None)
