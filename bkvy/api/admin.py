"""Admin authentication (SPEC §8): ``X-Admin-API-Key`` equal to BKVY_ADMIN_API_KEY, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from bkvy.api.deps import services_of
from bkvy.models.errors import AdminDisabled, Unauthorized


def require_admin(request: Request) -> None:
    """Raises AdminDisabled (403) when no admin key is configured, Unauthorized (401) on a wrong or missing key."""
    expected = services_of(request).settings.admin_api_key
    if not expected:
        raise AdminDisabled("admin endpoints are disabled: set BKVY_ADMIN_API_KEY to enable them")
    # Header values arrive as latin-1 decoded str; compare bytes so non-ASCII input cannot raise.
    given = request.headers.get("x-admin-api-key", "").encode("latin-1", errors="replace")
    if not hmac.compare_digest(given, expected.encode("utf-8")):
        raise Unauthorized("missing or wrong X-Admin-API-Key")
