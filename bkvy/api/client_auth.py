"""Client keys at the edge: ``Authorization: Bearer bkvy-sk-...`` on /v1/* and /llm/* (SPEC §8).

Required once any client key exists, or always with BKVY_REQUIRE_CLIENT_KEYS=true. The key's name becomes
the request's client_id, and its rpm (429) and monthly budget (402) are enforced before any upstream call.
"""

from __future__ import annotations

from bkvy.api.services import Services
from bkvy.core.limits.client_keys import ClientKey
from bkvy.models.errors import Unauthorized


def authenticate_client(services: Services, authorization: str | None) -> ClientKey | None:
    """The client key in an ``Authorization`` header, admitted; None when client keys are not in use.

    Raises Unauthorized (401), ClientRateLimited (429) or BudgetExceeded (402).
    """
    store = services.client_keys
    if store is None or not (store.has_keys or services.settings.require_client_keys):
        return None
    scheme, _, token = (authorization or "").partition(" ")
    key = store.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized("a client key is required: send 'Authorization: Bearer bkvy-sk-...'")
    store.admit(key)
    return key
