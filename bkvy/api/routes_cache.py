"""``DELETE /admin/cache`` (issue 20 §1): purge the response cache, whole or one scope (admin key)."""

from __future__ import annotations

import logging
import re

from fastapi import Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from bkvy.api.deps import services_of
from bkvy.core.cache.rules import SHARED_SCOPE
from bkvy.core.config.tenants import TENANT_ID_PATTERN
from bkvy.models.errors import CacheUnavailable, InvalidCacheInput
from bkvy.models.schemas import CLIENT_NAME_PATTERN

log = logging.getLogger(__name__)


def _body(pattern: str) -> str:
    """An anchored pattern (``^...$``) as a part of another."""
    return pattern.removeprefix("^").removesuffix("$")


# What ``core.cache.rules.scope_of`` makes: tenant:ID, key:ID, client:NAME, or shared; the tenant and the client
# name by the patterns their ids are accepted with (a client_id may hold "/": ``team/app``).
_SCOPE = re.compile(
    rf"^(?:tenant:{_body(TENANT_ID_PATTERN)}|key:[A-Za-z0-9_.:@-]{{1,128}}|client:(?=.{{1,128}}$){_body(CLIENT_NAME_PATTERN)}"
    rf"|{SHARED_SCOPE})$"
)


async def purge_cache(request: Request) -> JSONResponse:
    """Every entry, or with ``?scope=tenant:ID`` (``key:ID``, ``client:NAME``, ``shared``) one scope's."""
    scope = request.query_params.get("scope")
    if scope is not None and not _SCOPE.match(scope):
        raise InvalidCacheInput(
            "scope: not a cache scope. Fix: use tenant:ID, key:ID, client:NAME or shared (omit it to purge all)"
        )
    cache = services_of(request).cache
    if cache is None:
        return JSONResponse({"purged": 0, "scope": scope})
    try:
        purged = await cache.purge(scope)
    except (RedisError, OSError) as error:
        log.warning("cache_purge_failed", extra={"error": type(error).__name__})
        raise CacheUnavailable("the cache's Redis (CACHE_REDIS_URL) did not answer; try again") from None
    log.info("cache_purged", extra={"purged": purged, "is_whole": scope is None})
    return JSONResponse({"purged": purged, "scope": scope})
