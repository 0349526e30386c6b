"""Circuits follow the config's keys (issue 15): a key whose value changed gets fresh circuits, on start-up
(persisted states, compared by fingerprint) and on reload; a removed key's circuits are dropped."""

from __future__ import annotations

import json
import random

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.core.config.fingerprint import config_hash, key_fingerprints
from bkvy.core.config.gateway import build_config
from bkvy.models.types import ErrorClass

KEY = CircuitKey("openai", "gpt-4o-mini", "key-a")
OTHER_MODEL = CircuitKey("openai", "gpt-4o", "key-a")
OTHER_KEY = CircuitKey("openai", "gpt-4o-mini", "key-b")
PAIR, OTHER_PAIR = ("openai", "key-a"), ("openai", "key-b")


def _registry(clock: FakeClock) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(CircuitSettings(), clock, random.Random(1))


def _restarted(registry: CircuitBreakerRegistry, clock: FakeClock) -> CircuitBreakerRegistry:
    restarted = _registry(clock)
    restarted.load_dict(json.loads(json.dumps(registry.to_dict())))
    return restarted


def test_restart_with_the_same_key_keeps_its_auth_block() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.reconcile_keys({PAIR: "f1", OTHER_PAIR: "f2"})
    registry.record_failure(KEY, ErrorClass.AUTH)
    restarted = _restarted(registry, clock)
    assert restarted.reconcile_keys({PAIR: "f1", OTHER_PAIR: "f2"}) == []
    assert not restarted.allow_request(KEY)
    assert restarted.snapshot(OTHER_MODEL).open_reason is ErrorClass.AUTH  # the whole key stays blocked


def test_restart_with_a_fixed_key_closes_every_circuit_of_that_key() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.reconcile_keys({PAIR: "f1", OTHER_PAIR: "f2"})
    registry.record_failure(KEY, ErrorClass.AUTH)
    registry.record_failure(OTHER_KEY, ErrorClass.AUTH)
    restarted = _restarted(registry, clock)
    assert restarted.reconcile_keys({PAIR: "f1-fixed", OTHER_PAIR: "f2"}) == [PAIR]
    assert restarted.allow_request(KEY) and restarted.allow_request(OTHER_MODEL)
    assert restarted.snapshot(KEY).state is CircuitState.CLOSED
    assert not restarted.allow_request(OTHER_KEY)
    assert restarted.to_dict()["auth_blocked"] == [{"provider": "openai", "key_id": "key-b"}]


def test_a_changed_key_gets_fresh_circuits_not_only_auth_ones() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    registry.reconcile_keys({PAIR: "f1"})
    for _ in range(3):
        registry.record_failure(KEY, ErrorClass.SERVER)
    assert registry.snapshot(KEY).open_count == 1
    registry.reconcile_keys({PAIR: "f1-new"})
    snapshot = registry.snapshot(KEY)
    assert (snapshot.state, snapshot.open_count, snapshot.failures_in_window) == (CircuitState.CLOSED, 0, 0)


def test_a_removed_key_has_its_circuits_dropped() -> None:
    registry = _registry(FakeClock())
    registry.reconcile_keys({PAIR: "f1", OTHER_PAIR: "f2"})
    registry.record_failure(OTHER_KEY, ErrorClass.AUTH)
    registry.reconcile_keys({PAIR: "f1"})
    assert registry.snapshots() == []
    assert registry.to_dict()["auth_blocked"] == []


def test_a_state_saved_before_fingerprints_lifts_its_auth_blocks() -> None:
    """A file from before issue 15 cannot say whether the key changed: an auth block costs every request to that
    key, a wrong guess one failed attempt that fails over, so the block goes."""
    clock = FakeClock()
    registry = _registry(clock)
    registry.record_failure(KEY, ErrorClass.AUTH)
    saved = registry.to_dict()
    del saved["key_fingerprints"]
    restarted = _registry(clock)
    restarted.load_dict(saved)
    assert restarted.reconcile_keys({PAIR: "f1"}) == [PAIR]
    assert restarted.allow_request(KEY)


def _config(api_key: str, rpm: int = 10):
    providers = {
        "openai": {
            "type": "openai",
            "keys": {"key-a": {"api_key": api_key, "rate_limits": {"*": {"rpm": rpm}}}},
            "models": {"gpt-4o-mini": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001}},
        }
    }
    return build_config(providers, {}, {}, providers_file="p.json", routing_file="r.json")


def test_fingerprints_and_config_hash_change_with_the_key_and_never_show_it() -> None:
    secret = "sk-CANARY-fingerprint-1234567890"
    config = _config(secret)
    fingerprints = key_fingerprints(config)
    assert fingerprints == key_fingerprints(_config(secret))
    assert fingerprints != key_fingerprints(_config(secret + "x"))
    assert config_hash(config) == config_hash(_config(secret))
    assert config_hash(config) != config_hash(_config(secret + "x"))
    assert config_hash(config) != config_hash(_config(secret, rpm=11))
    registry = _registry(FakeClock())
    registry.reconcile_keys(fingerprints)
    saved = json.dumps(registry.to_dict())
    assert secret not in saved and secret not in config_hash(config)
    assert fingerprints[PAIR] in saved
