"""Every long-lived service of one gateway process, built and stopped together (STYLE: lifespan).

``Services.start`` starts the parts in order (transport, health prober, records, client keys); when one fails,
the parts already started are stopped (``stop``) and the error is raised. ``stop`` stops every part even when
one raises: each failure is logged (part and error class) and all are raised together as an ExceptionGroup.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bkvy.api.observability import spend_observer, start_records
from bkvy.clock import Clock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.circuits.store import CircuitStore, DebouncedSaver
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings
from bkvy.core.execution.executor import Executor
from bkvy.core.execution.hedge_budget import HedgeBudget
from bkvy.core.execution.hedging import HedgePolicy
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKeyStore
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.latency_store import LatencyStore
from bkvy.core.upstream.transport import AiohttpTransport, Transport
from bkvy.utils.recorder import Records

log = logging.getLogger(__name__)

CIRCUIT_STATE_FILE = "circuit_states.json"
LATENCY_FILE = "latency.json"
LATENCY_SAVE_DELAY_SECONDS = 5.0  # at most one write per 5 s of traffic; the hot path never writes


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
    records: Records | None = None  # transaction log, daily stats, dashboard aggregate, metrics
    client_keys: ClientKeyStore | None = None  # bkvy-sk-... keys, hashed in LOG_DIR/client_keys.sqlite3
    latency_saver: DebouncedSaver | None = None  # LOG_DIR/latency.json

    @classmethod
    async def start(
        cls,
        settings: Settings,
        config: GatewayConfig,
        *,
        clock: Clock,
        transport: Transport | None = None,
        rng: random.Random | None = None,
    ) -> Services:
        """Every service, started. Raises what a part raised, after stopping the parts started before it."""
        settings.log_dir.mkdir(parents=True, exist_ok=True)  # start-up, before serving
        owns_transport = transport is None
        transport = transport or AiohttpTransport()  # started below, with the other parts
        limiter = _configured_limiter(config, clock)
        circuits, guard, saver = _circuits(settings, clock, rng)
        latency, latency_saver = _latency(settings, clock)
        executor = Executor(
            config=config,
            clock=clock,
            transport=transport,
            limiter=limiter,
            latency=latency,
            breaker=guard,
            soft_timeout_seconds=settings.request_soft_timeout_seconds,
            hard_timeout_seconds=settings.request_hard_timeout_seconds,
            stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
            hedging=_hedge_policy(settings, clock),
        )
        services = cls(
            settings, config, clock, transport, limiter, latency, executor, circuits, None, saver, owns_transport
        )
        services.latency_saver = latency_saver
        try:
            await services._start_parts()
        except BaseException:
            with contextlib.suppress(Exception):  # stop has logged each of its own failures
                await services.stop()
            raise
        return services

    async def _start_parts(self) -> None:
        """In order; each part is set on ``self`` only once started, so ``stop`` stops exactly those."""
        if self._owns_transport and isinstance(self.transport, AiohttpTransport):
            await self.transport.start()
        if self.circuits is not None and self.settings.health_probe_enabled:
            prober = HealthProber(
                registry=self.circuits,
                config=self.config,
                transport=self.transport,
                clock=self.clock,
                interval_seconds=self.settings.health_probe_interval_seconds,
                timeout_seconds=self.settings.health_probe_timeout_seconds,
            )
            prober.start()
            self.prober = prober
        self.records = await start_records(self)
        client_keys = ClientKeyStore(self.settings.log_dir / CLIENT_KEYS_FILE, self.clock)
        await client_keys.start()
        self.client_keys = client_keys
        self.executor.add_observer(spend_observer(client_keys))

    async def stop(self) -> None:
        """Stop every part, even when one raises. Raises ExceptionGroup with every failure (each one logged)."""
        errors: list[Exception] = []
        for part, stop_part in self._stops():
            try:
                await stop_part()
            except Exception as error:
                log.error("service_stop_failed", extra={"part": part, "error": type(error).__name__})
                errors.append(error)
        if errors:
            raise ExceptionGroup("services failed to stop", errors)

    def _stops(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """What ``stop`` stops, in order: the records first, so every row is flushed before anything else goes."""
        stops: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.records is not None:
            stops.append(("records", self.records.stop))
        if self.client_keys is not None:
            stops.append(("client_keys", self.client_keys.stop))
        if self.prober is not None:
            stops.append(("prober", self.prober.stop))
        if self.circuit_saver is not None and self.circuits is not None:
            stops.append(("circuit_states", self._save_circuits))
        if self.latency_saver is not None:
            stops.append(("latency", self._save_latency))
        if self._owns_transport and isinstance(self.transport, AiohttpTransport):
            stops.append(("transport", self.transport.close))
        return stops

    async def _save_circuits(self) -> None:
        assert self.circuit_saver is not None and self.circuits is not None
        self.circuit_saver.schedule(self.circuits.to_dict)
        await self.circuit_saver.flush()

    async def _save_latency(self) -> None:
        assert self.latency_saver is not None
        self.latency_saver.schedule(self.latency.to_dict)
        await self.latency_saver.flush()


def _latency(settings: Settings, clock: Clock) -> tuple[LatencyTracker, DebouncedSaver]:
    """The latency learned before the restart (LOG_DIR/latency.json; a bad or missing file: nothing), saved
    again at most every ``LATENCY_SAVE_DELAY_SECONDS`` after a new sample."""
    latency = LatencyTracker()
    store = LatencyStore(settings.log_dir / LATENCY_FILE)
    saved = store.load()  # start-up, before serving: a sync read is fine here
    if saved is not None:
        log.info("latency_loaded", extra={"models": latency.load_dict(saved)})
    saver = DebouncedSaver(store, clock, delay_seconds=LATENCY_SAVE_DELAY_SECONDS)

    def schedule_save(_model_key: tuple[str, str]) -> None:
        if not saver.is_pending:  # one check per sample; the write happens later, in a thread
            saver.schedule(latency.to_dict)

    latency.on_change(schedule_save)
    return latency, saver


def _circuits(
    settings: Settings, clock: Clock, rng: random.Random | None
) -> tuple[CircuitBreakerRegistry | None, CircuitGuard | None, DebouncedSaver | None]:
    """The breaker registry restored from LOG_DIR, with debounced atomic persistence of every change."""
    if not settings.circuit_breaker_enabled:
        return None, None, None
    registry = CircuitBreakerRegistry(
        CircuitSettings(
            failure_threshold=settings.circuit_failure_threshold,
            sliding_window_seconds=settings.circuit_sliding_window_seconds,
            sliding_window_threshold=settings.circuit_sliding_window_threshold,
            max_backoff_seconds=settings.circuit_max_backoff_seconds,
            flapping_threshold=settings.circuit_flapping_threshold,
        ),
        clock,
        rng,
    )
    store = CircuitStore(settings.log_dir / CIRCUIT_STATE_FILE)
    saved = store.load()  # start-up, before serving: a sync read is fine here
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


def _hedge_policy(settings: Settings, clock: Clock) -> HedgePolicy | None:
    """HEDGING and its HEDGE_* settings; None when hedging is off."""
    if not settings.hedging:
        return None
    return HedgePolicy(
        HedgeBudget(clock, percent=settings.hedge_budget_percent),
        min_delay_seconds=settings.hedge_min_delay_ms / 1000.0,
        delay_factor=settings.hedge_delay_factor,
    )
