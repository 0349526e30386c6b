"""Whether a request is cached: its opt-in, ``cache_routes``, its temperature; and its scope."""

from __future__ import annotations

from bkvy.core.cache.rules import is_cache_wanted, is_cacheable, may_store_model, route_name, scope_of
from bkvy.core.config.cache_config import CacheSettings
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.policy import PolicySubject, TenantRules
from bkvy.models.types import GenerationOptions, IntelligenceLevel, RoutingMethod

LOW = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)
CHAT = RouteRequest(RoutingMethod.SCENARIO, scenario="chat")
MINI = RouteRequest(RoutingMethod.DIRECT, provider="openai", model="gpt-4o-mini")


def test_route_names_match_cache_routes_keys() -> None:
    assert [route_name(r) for r in (LOW, CHAT, MINI)] == ["low", "scenario:chat", "openai/gpt-4o-mini"]


def test_opt_in_works_unless_the_route_is_false() -> None:
    assert is_cache_wanted(LOW, True, {})
    assert not is_cache_wanted(LOW, None, {})
    assert not is_cache_wanted(LOW, True, {"low": False})
    assert is_cache_wanted(CHAT, None, {"scenario:chat": True})
    assert not is_cache_wanted(CHAT, False, {"scenario:chat": True})
    assert not is_cache_wanted(MINI, True, {"openai/gpt-4o-mini": False})
    assert not may_store_model("openai", "gpt-4o-mini", {"openai/gpt-4o-mini": False})
    assert may_store_model("openai", "gpt-4o", {"openai/gpt-4o-mini": False})


def test_temperature_above_zero_needs_cache_sampled() -> None:
    assert is_cacheable(GenerationOptions(), CacheSettings())
    assert is_cacheable(GenerationOptions(temperature=0.0), CacheSettings())
    assert not is_cacheable(GenerationOptions(temperature=0.2), CacheSettings())
    assert is_cacheable(GenerationOptions(temperature=0.2), CacheSettings(cache_sampled=True))


def test_scope_is_the_tenant_then_the_key_then_the_client_unless_shared() -> None:
    tenant = PolicySubject("team-a", TenantRules("acme"))
    assert scope_of(CacheSettings(), tenant, "ck_1", "team-a") == "tenant:acme"
    assert scope_of(CacheSettings(scope="key"), tenant, "ck_1", "team-a") == "key:ck_1"
    assert scope_of(CacheSettings(), PolicySubject("team-a"), "ck_1", "team-a") == "key:ck_1"
    assert scope_of(CacheSettings(), None, None, "app") == "client:app"
    assert scope_of(CacheSettings(scope="shared"), tenant, "ck_1", "team-a") == "shared"
