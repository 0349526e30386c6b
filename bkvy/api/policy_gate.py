"""Policy at the door (issue 19): read a request's data class and source region, ask core's ``PolicyEngine``,
and hand the executor the request as policy lets it leave (redacted, its candidates narrowed, the decision
attached). The executor enforces ``block`` and "no candidate" so those outcomes are recorded like any other.

``x-bkvy-source-region`` is believed only from a TRUSTED_PROXIES peer or a client key that may set it; from
anyone else it is ignored. A malformed value is a 400 ``invalid_policy_input`` either way. Without policy.json
rules and without a tenant or key rules (``PolicyEngine.is_idle_for``) neither header is read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bkvy.api.allowlist import is_trusted_peer, parse_networks
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.core.policy.detector import RequestScan, find_sensitive, redact_request, redact_text, scan_request
from bkvy.core.policy.rules import PolicyInputs
from bkvy.models.errors import InvalidPolicyInput
from bkvy.models.policy import DataClass, PolicyAction

if TYPE_CHECKING:
    from bkvy.api.hot_path import Exchange

_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
POLICY_HEADER = "x-bkvy-policy"


def police(exchange: Exchange, execution: ExecutionRequest, data_class: DataClass | None = None) -> ExecutionRequest:
    """``execution`` as policy lets it leave; unchanged (and unscanned) when no policy applies. ``data_class``:
    the body's (/llm/*), else ``x-bkvy-data-class``. Raises InvalidPolicyInput (400) for a malformed header."""
    engine = exchange.services.executor.policy
    if engine.is_idle_for(execution.subject) and data_class is None:
        return execution  # no policy.json rules and no tenant or key rules: today's path, headers not even read
    class_header = exchange.header(b"x-bkvy-data-class")
    region_header = exchange.header(b"x-bkvy-source-region")
    route = execution.route
    inputs = PolicyInputs(
        _scan(execution) if engine.needs_scan else RequestScan(),
        data_class or _data_class(class_header),
        _source_region(exchange, execution, region_header),
        route.level,
        route.scenario,
        execution.subject,
    )
    decision = engine.decide(inputs)
    if decision.allowed is not None:
        route = route._replace(allowed=decision.allowed)
    tenant = execution.subject.tenant if execution.subject is not None else None
    if tenant is not None and tenant.preferred_models:
        route = route._replace(preferred=_pairs(tenant.preferred_models))
    execution = execution._replace(route=route, policy=decision)
    if decision.action is PolicyAction.REDACT and decision.kinds:
        if execution.embedding is not None:
            texts = tuple(_redacted(text) for text in execution.embedding.texts)
            return execution._replace(embedding=execution.embedding._replace(texts=texts))
        messages, options, _ = redact_request(execution.messages, execution.options)
        return execution._replace(messages=messages, options=options)
    return execution


def policy_headers(execution: ExecutionRequest) -> dict[str, str]:
    """``x-bkvy-policy`` when policy did something to the request (docs/POLICY.md)."""
    value = execution.policy.header_value if execution.policy is not None else None
    return {POLICY_HEADER: value} if value else {}


def _scan(execution: ExecutionRequest) -> RequestScan:
    if execution.embedding is None:
        return scan_request(execution.messages, execution.options)
    findings = [finding for text in execution.embedding.texts for finding in find_sensitive(text)]
    return RequestScan(frozenset(finding.kind for finding in findings), len(findings))


def _redacted(text: str) -> str:
    return redact_text(text, find_sensitive(text))


def _data_class(header: str | None) -> DataClass | None:
    if header is None:
        return None
    try:
        return DataClass(header.strip().lower())
    except ValueError:
        raise InvalidPolicyInput(
            f"x-bkvy-data-class: must be one of {[c.value for c in DataClass]}", param="x-bkvy-data-class"
        ) from None


def _source_region(exchange: Exchange, execution: ExecutionRequest, header: str | None) -> str | None:
    """The header's region when the sender may set it; None (ignored) otherwise."""
    if header is None:
        return None
    region = header.strip()
    if not _REGION.match(region):
        raise InvalidPolicyInput(
            "x-bkvy-source-region: a region name (letters, digits, '-', '_', '.', ':'), e.g. eu-west-1",
            param="x-bkvy-source-region",
        )
    subject = execution.subject
    if subject is not None and subject.may_set_source_region:
        return region
    proxies = parse_networks(exchange.services.settings.trusted_proxies, "TRUSTED_PROXIES")
    return region if is_trusted_peer(exchange.peer, proxies) else None


def _pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """ "provider/model" names as (provider, model) pairs; a name without a slash names no model."""
    return tuple((provider, model) for provider, _, model in (name.partition("/") for name in names) if model)
