"""A plain Starlette route for the hot paths, which still tells middleware which route template matched."""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Route
from starlette.types import Scope


class HotRoute(Route):
    """Handlers that take the raw Request and validate the body themselves skip FastAPI's per-request
    dependency solving (query params, body checks), which is pure overhead there. Like FastAPI's routes,
    it puts itself in ``scope["route"]`` so metrics label by template, never by the raw path."""

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope
