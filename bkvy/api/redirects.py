"""A path with a trailing slash too many or too few is redirected to its route, with a relative ``Location``.

Starlette's own redirect (``redirect_slashes``) writes an absolute URL from the ``Host`` header, which a client
writes: ``GET /health/`` with ``Host: evil.example`` was sent to ``http://evil.example/health`` (issue 16). A
relative reference is a valid ``Location`` (RFC 9110 §10.2.2) and names no host at all.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router, get_route_path
from starlette.types import Receive, Scope, Send


def install_relative_slash_redirects(router: Router) -> None:
    """Replace the router's slash redirect with ``_other_slash_location``'s; anything else stays a 404."""
    not_found = router.default
    router.redirect_slashes = False

    async def redirect_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        location = _other_slash_location(router, scope) if scope["type"] == "http" else None
        if location is None:
            await not_found(scope, receive, send)
            return
        await RedirectResponse(location, status_code=307)(scope, receive, send)

    router.default = redirect_or_not_found


def _other_slash_location(router: Router, scope: Scope) -> str | None:
    """The path with its trailing slash removed or added, when a route takes that one; never ``//...``, which a
    browser reads as another host."""
    if get_route_path(scope) == "/":
        return None
    path = scope["path"]
    other_path = path.rstrip("/") if path.endswith("/") else path + "/"
    if not other_path.startswith("/") or other_path.startswith(("//", "/\\")):
        return None
    other_scope = {**scope, "path": other_path}
    if all(route.matches(other_scope)[0] is Match.NONE for route in router.routes):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{other_path}?{query}" if query else other_path
