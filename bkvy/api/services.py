"""Every long-lived service of one gateway process, built and stopped together (STYLE: lifespan)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.store import CircuitStore, DebouncedSaver
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKeyStore
from bkvy.clock import Clock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.executor import Executor
from bkvy.core.routing.latency import LatencyTracker
from bkvy.api.observability import start_records
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.config.settings import Settings
from bkvy.core.upstream.transport import AiohttpTransport, Transport
from bkvy.utils.recorder import Records

CIRCUIT_STATE_FILE = "circuit_states.json"


@dataclass
class Services:
    settings: Settings
    config: GatewayConfig
    clock: Clock
    transport: Transport
    limiter: RateLimiter
    latency: LatencyTracker
    executor: Executor
    circuits: CircuitBreakerRegistry | None = None
    prober: HealthProber | None = None
    circuit_saver: DebouncedSaver | None = None
    _owns_transport: bool = False
    records: Records | None = None          # transaction log, daily stats, dashboard aggregate, metrics
    client_keys: ClientKeyStore | None = None   # bkvy-sk-... keys, hashed in LOG_DIR/client_keys.sqlite3

    @classmethod
    async def start(cls, settings: Settings, config: GatewayConfig, *, clock: Clock,
                    transport: Transport | None = None, rng: random.Random | None = None) -> Services:
        owns_transport = transport is None
        settings.log_dir.mkdir(parents=True, exist_ok=True)   # start-up, before serving
        if transport is None:
            aiohttp_transport = AiohttpTransport()
            await aiohttp_transport.start()
            transport = aiohttp_transport
        limiter = _configured_limiter(config, clock)
        latency = LatencyTracker()
        circuits, guard, saver = _circuits(settings, clock, rng)
        executor = Executor(config=config, clock=clock, transport=transport, limiter=limiter, latency=latency,
                            breaker=guard, soft_timeout_seconds=settings.request_soft_timeout_seconds,
                            hard_timeout_seconds=settings.request_hard_timeout_seconds)
        prober = None
        if circuits is not None and settings.health_probe_enabled:
            prober = HealthProber(registry=circuits, config=config, transport=transport, clock=clock,
                                  interval_seconds=settings.health_probe_interval_seconds,
                                  timeout_seconds=settings.health_probe_timeout_seconds)
            prober.start()
        services = cls(settings, config, clock, transport, limiter, latency, executor, circuits, prober, saver,
                       owns_transport)
        services.records = await start_records(services)
        services.client_keys = ClientKeyStore(settings.log_dir / CLIENT_KEYS_FILE, clock)
        await services.client_keys.start()
        executor.add_observer(services.client_keys.observe)
        return services

    async def stop(self) -> None:
        if self.records is not None:            # first: flush every row before anything else goes
            await self.records.stop()
        if self.client_keys is not None:
            await self.client_keys.stop()
        if self.prober is not None:
            await self.prober.stop()
        if self.circuit_saver is not None and self.circuits is not None:
            circuits = self.circuits
            self.circuit_saver.schedule(circuits.to_dict)
            await self.circuit_saver.flush()
        if self._owns_transport and isinstance(self.transport, AiohttpTransport):
            await self.transport.close()


def _circuits(settings: Settings, clock: Clock, rng: random.Random | None
              ) -> tuple[CircuitBreakerRegistry | None, CircuitGuard | None, DebouncedSaver | None]:
    """The breaker registry restored from LOG_DIR, with debounced atomic persistence of every change."""
    if not settings.circuit_breaker_enabled:
        return None, None, None
    registry = CircuitBreakerRegistry(CircuitSettings(
        failure_threshold=settings.circuit_failure_threshold,
        sliding_window_seconds=settings.circuit_sliding_window_seconds,
        sliding_window_threshold=settings.circuit_sliding_window_threshold,
        max_backoff_seconds=settings.circuit_max_backoff_seconds,
        flapping_threshold=settings.circuit_flapping_threshold), clock, rng)
    store = CircuitStore(settings.log_dir / CIRCUIT_STATE_FILE)
    saved = store.load()   # start-up, before serving: a sync read is fine here
    if saved is not None:
        registry.load_dict(saved)
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    registry.on_change(lambda _snapshot: saver.schedule(registry.to_dict))
    return registry, CircuitGuard(registry, RetryBudget(clock)), saver


def _configured_limiter(config: GatewayConfig, clock: Clock) -> RateLimiter:
    limiter = RateLimiter(clock)
    for provider_name, provider in config.providers.items():
        for key_id, key in provider.keys.items():
            for model_name in provider.models:
                limits = key.limits_for(model_name)
                limiter.configure(LaneKey(provider_name, key_id, model_name), rpm=limits.rpm, rpd=limits.rpd)
    return limiter
