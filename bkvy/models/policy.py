"""Policy's vocabulary (issue 19): what the detector finds, data classes, rule actions, and who a request comes
from as policy sees it (its client key and tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class PiiKind(str, Enum):
    """A kind of sensitive data the detector finds (``pii_kinds`` in policy.json)."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"  # payment card number, Luhn-checked
    IBAN = "iban"  # checksum-checked
    SSN = "ssn"  # US social security number
    IP = "ip"
    SECRET = "secret"  # API keys and tokens, private-key blocks, high-entropy values in assignments


class DataClass(str, Enum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class PolicyAction(str, Enum):
    ALLOW = "allow"
    REQUIRE_PRIVATE = "require_private"  # only models marked "private": true
    REDACT = "redact"  # each finding replaced by [REDACTED:<kind>] before the request leaves
    BLOCK = "block"  # 400 sensitive_data_blocked


@dataclass(frozen=True, slots=True)
class TenantRules:
    """What policy and routing need of a request's tenant (config/tenants.json or /admin/tenants); budgets and
    limits stay with the tenant store."""

    tenant_id: str
    allowed_models: frozenset[str] | None = None  # "provider/model"; None: every model
    blocked_models: frozenset[str] = frozenset()
    preferred_models: tuple[str, ...] = ()  # tried first among those that fit, in this order
    allowed_regions: frozenset[str] | None = None  # model regions; None: any
    allowed_data_classes: frozenset[DataClass] | None = None  # None: any
    policy: tuple[str, ...] = ()  # names of policy.json rules that apply to this tenant's requests
    data_class: DataClass | None = None  # its keys' requests' data class unless the key or request says one


@dataclass(frozen=True, slots=True)
class PolicySubject:
    """Who sends a request, as policy sees it; built by the api layer from the client key (and its tenant)."""

    client_key: str | None = None  # the client key's name, if the request used one
    tenant: TenantRules | None = None
    data_class: DataClass | None = None  # the key's default data class (the request's own wins)
    allowed_regions: frozenset[str] | None = None  # the key's allowed model regions; None: any
    may_set_source_region: bool = False  # the key may send x-bkvy-source-region (else only trusted proxies)
