"""Circuit breaker endpoints (SPEC §4, §6). Key ids only, never key values."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

from bkvy.api.deps import services_of
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSnapshot
from bkvy.models.errors import BkvyError, UnknownKey, UnknownModel, UnknownProvider

_Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
_Model = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$")]  # vLLM: 'org/x'


class CircuitsDisabled(BkvyError):
    code = "circuits_disabled"
    status = 404


def _registry(request: Request) -> CircuitBreakerRegistry:
    registry = services_of(request).circuits
    if registry is None:
        raise CircuitsDisabled("circuit breakers are disabled (CIRCUIT_BREAKER_ENABLED=false)")
    return registry


def _known_key(request: Request, provider: str, model: str, key_id: str) -> CircuitKey:
    config = services_of(request).config
    if provider not in config.providers:
        raise UnknownProvider(f"unknown provider {provider!r}")
    if model not in config.providers[provider].models:
        raise UnknownModel(f"provider {provider!r} has no model {model!r}")
    if key_id not in config.providers[provider].key_ids_for(model):  # a replica: ``<key>@<n>``
        raise UnknownKey(f"provider {provider!r} has no key id {key_id!r}")
    return CircuitKey(provider, model, key_id)


def _as_dict(snapshot: CircuitSnapshot, now: float) -> dict[str, object]:
    remaining = None if snapshot.open_until is None else round(max(0.0, snapshot.open_until - now), 3)
    return {
        "provider": snapshot.key.provider,
        "model": snapshot.key.model,
        "key_id": snapshot.key.key_id,
        "state": snapshot.state.value,
        "open_reason": snapshot.open_reason.value if snapshot.open_reason else None,
        "open_for_seconds": remaining,
        "consecutive_failures": snapshot.consecutive_failures,
        "failures_in_window": snapshot.failures_in_window,
        "calls_in_window": snapshot.calls_in_window,
        "open_count": snapshot.open_count,
        "is_flapping": snapshot.is_flapping,
        "needs_probe": snapshot.needs_probe,
    }


def _all_keys(request: Request) -> list[CircuitKey]:
    config = services_of(request).config
    return [
        CircuitKey(p, m, k)
        for p, provider in config.providers.items()
        for m in provider.models
        for k in provider.key_ids_for(m)
    ]


async def circuits_status(request: Request) -> dict:
    registry = _registry(request)
    now = services_of(request).clock.now()
    return {"circuits": [_as_dict(registry.snapshot(key), now) for key in _all_keys(request)]}


async def circuits_summary(request: Request) -> dict:
    registry = _registry(request)
    snapshots = [registry.snapshot(key) for key in _all_keys(request)]
    by_state: dict[str, int] = {}
    for snapshot in snapshots:
        by_state[snapshot.state.value] = by_state.get(snapshot.state.value, 0) + 1
    providers = {name: registry.provider_health(name) for name in services_of(request).config.providers}
    return {
        "total": len(snapshots),
        "by_state": by_state,
        "flapping": sum(1 for s in snapshots if s.is_flapping),
        "providers": providers,
    }


async def circuits_of_provider(request: Request, provider: _Name) -> dict:
    registry = _registry(request)
    if provider not in services_of(request).config.providers:
        raise UnknownProvider(f"unknown provider {provider!r}")
    now = services_of(request).clock.now()
    circuits = [_as_dict(registry.snapshot(k), now) for k in _all_keys(request) if k.provider == provider]
    return {"provider": provider, "health": registry.provider_health(provider), "circuits": circuits}


async def circuit_detail(request: Request, provider: _Name, model: _Model, key_id: _Name) -> dict:
    registry = _registry(request)
    key = _known_key(request, provider, model, key_id)
    return _as_dict(registry.snapshot(key), services_of(request).clock.now())


async def circuit_reset(request: Request, provider: _Name, model: _Model, key_id: _Name) -> dict:
    registry = _registry(request)
    key = _known_key(request, provider, model, key_id)
    was_open = registry.reset(key)
    return {
        "success": True,
        "reset": was_open,
        "circuit": _as_dict(registry.snapshot(key), services_of(request).clock.now()),
    }
