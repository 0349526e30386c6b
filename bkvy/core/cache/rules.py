"""Whether a request is cached, and under which scope (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping

from bkvy.core.config.cache_config import SCENARIO_PREFIX, CacheSettings
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.policy import PolicySubject
from bkvy.models.types import GenerationOptions, RoutingMethod

SHARED_SCOPE = "shared"


def route_name(route: RouteRequest) -> str | None:
    """The route's name in ``cache_routes``: a level, ``scenario:NAME`` or ``provider/model``."""
    if route.method is RoutingMethod.SCENARIO:
        return f"{SCENARIO_PREFIX}{route.scenario}"
    if route.method is RoutingMethod.DIRECT:
        return f"{route.provider}/{route.model}"
    return route.level.value if route.level is not None else None


def is_cache_wanted(route: RouteRequest, request_flag: bool | None, cache_routes: Mapping[str, bool]) -> bool:
    """The request's own ``on``/``off`` wins, except that a route set to ``false`` is never cached; without one,
    the route's ``true`` caches by default."""
    route_setting = cache_routes.get(route_name(route) or "") if cache_routes else None
    if route_setting is False or request_flag is False:
        return False
    return request_flag is True or route_setting is True


def is_cacheable(options: GenerationOptions, settings: CacheSettings) -> bool:
    """Sampled replies (``temperature > 0``) differ by design: cached only with ``cache_sampled``."""
    return not options.temperature or settings.cache_sampled


def may_store_model(provider: str, model: str, cache_routes: Mapping[str, bool]) -> bool:
    """A model set to ``false`` in ``cache_routes`` never has its replies stored, whatever route chose it."""
    return cache_routes.get(f"{provider}/{model}") is not False


def scope_of(settings: CacheSettings, subject: PolicySubject | None, client_key_id: str | None, client_id: str) -> str:
    """``tenant:ID`` (the key's tenant), ``key:ID`` (a client key), ``client:NAME`` (no key), or ``shared``."""
    if settings.scope == "shared":
        return SHARED_SCOPE
    if settings.scope == "tenant" and subject is not None and subject.tenant is not None:
        return f"tenant:{subject.tenant.tenant_id}"
    if client_key_id is not None:
        return f"key:{client_key_id}"
    return f"client:{client_id}"
