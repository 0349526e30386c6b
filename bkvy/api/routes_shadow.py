"""``GET /statistics/shadow`` (issue 20 §2): what shadow traffic has shown, numbers only."""

from __future__ import annotations

from fastapi import Request

from bkvy.api.deps import services_of


async def statistics_shadow(request: Request) -> dict:
    """Per shadowed route: the primary and each shadow model (success, p50/p95, cost per request, similarity)."""
    services = services_of(request)
    runner = services.shadow
    body = runner.book.summary() if runner is not None else {"routes": {}}
    return body | {"configured": {key: route.model_dump() for key, route in services.config.routing.shadow.items()}}
