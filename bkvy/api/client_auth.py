"""Client keys at the edge: ``Authorization: Bearer bkvy-sk-...`` on /v1/* and /llm/*, and ``x-api-key`` as well
on /v1/messages (SPEC §8).

Required once any client key exists, or always with BKVY_REQUIRE_CLIENT_KEYS=true. The key's name becomes
the request's client_id, and its rpm (429) and monthly budget (402) are enforced before any upstream call.
"""

from __future__ import annotations

from bkvy.api.services import Services
from bkvy.api.tenancy import admit_tenant
from bkvy.core.limits.client_keys import ClientKey
from bkvy.models.errors import Unauthorized


async def authenticate_client(services: Services, authorization: str | None) -> ClientKey | None:
    """The client key in an ``Authorization`` header, admitted; None when client keys are not in use.

    Raises Unauthorized (401), ClientRateLimited (429) or BudgetExceeded (402).
    """
    return await _admitted(services, _bearer_token(authorization), "'Authorization: Bearer bkvy-sk-...'")


async def authenticate_anthropic_client(
    services: Services, authorization: str | None, x_api_key: str | None
) -> ClientKey | None:
    """As ``authenticate_client``, for Anthropic's clients: ``x-api-key`` (curl, Claude Code), else
    ``Authorization: Bearer`` (the anthropic SDK 2.x sends its ``api_key`` so)."""
    token = x_api_key.strip() if x_api_key is not None else _bearer_token(authorization)
    return await _admitted(services, token, "'x-api-key: bkvy-sk-...' or 'Authorization: Bearer bkvy-sk-...'")


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _admitted(services: Services, token: str | None, how: str) -> ClientKey | None:
    store = services.client_keys
    if store is None or not (store.has_keys or services.settings.require_client_keys):
        return None
    if services.shared_keys is not None:  # REDIS_URL: a cache miss is one lookup, admission one script
        key = await services.shared_keys.authenticate(token) if token is not None else None
        if key is None:
            raise Unauthorized(f"a client key is required: send {how}")
        await services.shared_keys.admit(key)
        await admit_tenant(services, key)
        return key
    key = store.authenticate(token) if token is not None else None
    if key is None:
        raise Unauthorized(f"a client key is required: send {how}")
    store.admit(key)
    await admit_tenant(services, key)
    return key
