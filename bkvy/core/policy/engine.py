"""Policy for one config (issue 19): ``PolicyEngine`` compiles what policy needs from a GatewayConfig (the rules,
each model's privacy and region) and answers for one request; rebuilt with the config on reload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.policy_config import PolicyConfig
from bkvy.core.policy.rules import ModelPlace, Pair, PolicyDecision, PolicyInputs, decide
from bkvy.models.errors import PolicyNoCandidate, SensitiveDataBlocked
from bkvy.models.policy import PolicyAction, PolicySubject
from bkvy.models.types import ProviderType


def is_private_model(provider_type: ProviderType, private: bool | None) -> bool:
    """providers.json ``"private"``; unset: true for ollama (self-hosted), false for the others."""
    return private if private is not None else provider_type is ProviderType.OLLAMA


@dataclass(frozen=True, slots=True)
class PolicyEngine:
    policy: PolicyConfig | None
    models: tuple[ModelPlace, ...]
    # some rule looks at what the detector finds or redacts it (else a request is never scanned)
    needs_scan: bool = False

    @classmethod
    def compile(cls, config: GatewayConfig) -> PolicyEngine:
        places = tuple(
            ModelPlace(provider_name, model_name, is_private_model(provider.type, model.private), model.region)
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
        )
        rules = config.policy.rules if config.policy is not None else ()
        needs_scan = any(rule.match.data_class is None or rule.action is PolicyAction.REDACT for rule in rules)
        return cls(config.policy, places, needs_scan)

    def is_idle_for(self, subject: PolicySubject | None) -> bool:
        """Nothing to decide: no rules, no residency and no subject (the path of a gateway without policy)."""
        return subject is None and (self.policy is None or not (self.policy.rules or self.policy.residency))

    def decide(self, inputs: PolicyInputs) -> PolicyDecision:
        return decide(self.policy, self.models, inputs)


def enforce(decision: PolicyDecision, listed: Iterable[Pair]) -> None:
    """Raises SensitiveDataBlocked (400) for ``block``, PolicyNoCandidate (403) when none of the route's
    ``listed`` (provider, model) pairs is allowed. Messages name kinds and rules, never a value."""
    if decision.action is PolicyAction.BLOCK:
        kinds = ",".join(sorted(kind.value for kind in decision.kinds)) or decision.data_class_name
        raise SensitiveDataBlocked(f"policy rule {decision.rule!r} blocks this request: it holds {kinds}")
    allowed = decision.allowed
    if allowed is not None and not any(pair in allowed for pair in listed):
        raise PolicyNoCandidate(
            f"policy {narrowed_words(decision)} leaves no candidate for this request; "
            "see GET /v1/models and docs/POLICY.md"
        )


def narrowed_words(decision: PolicyDecision) -> str:
    names = decision.narrowed_by
    return ("rule " if len(names) == 1 else "rules ") + ", ".join(repr(name) for name in names)
