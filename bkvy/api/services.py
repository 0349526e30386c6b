"""Every long-lived service of one gateway process, built and stopped together (STYLE: lifespan).

``Services.start`` starts the parts in order (transport, health prober, records, client keys); when one fails,
the parts already started are stopped (``stop``) and the error is raised. ``stop`` stops every part even when
one raises: each failure is logged (part and error class) and all are raised together as an ExceptionGroup.

``reload`` (SIGHUP, ``POST /admin/reload``) reads and validates the config again and swaps it in between two
requests: a new ``Executor`` over the same lanes, circuits and learned latency (``Executor.with_config``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bkvy.api.adaptive_state import adaptive_routing
from bkvy.api.observability import spend_observer, start_records
from bkvy.api.shadow_state import start_shadow, stop_shadow
from bkvy.api.sharing import Sharing, start_sharing
from bkvy.api.stream_relay import StreamRelays
from bkvy.api.tenancy import start_tenants
from bkvy.clock import Clock
from bkvy.core.cache.build import build_cache
from bkvy.core.cache.service import ResponseCache
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.circuits.store import CircuitStore, DebouncedSaver
from bkvy.core.config.fingerprint import config_hash, key_fingerprints
from bkvy.core.config.gateway import ConfigError, GatewayConfig, ProviderConfig, RateLimit, load_config
from bkvy.core.config.settings import Settings
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.execution.classifier_model import LevelCache
from bkvy.core.execution.executor import Executor
from bkvy.core.execution.hedge_budget import HedgeBudget
from bkvy.core.execution.hedging import HedgePolicy
from bkvy.core.execution.replica_metrics import ReplicaMetricsPoller, replica_targets
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKeyStore
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.limits.tenants import TenantStore
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.latency_store import LatencyStore
from bkvy.core.shadow.runner import ShadowRunner
from bkvy.core.shared.bandit import SharedBandit
from bkvy.core.shared.budgets import FleetBudgets
from bkvy.core.shared.client_keys import SharedClientKeys
from bkvy.core.shared.state import SharedState
from bkvy.core.shared.stats import FleetStats
from bkvy.core.shared.tenants import SharedTenants
from bkvy.core.shared.windows import RedisWindows
from bkvy.core.upstream.transport import AiohttpTransport, Transport
from bkvy.utils.private_files import ensure_private_dir
from bkvy.utils.process_slot import ProcessSlot, release_slot, take_slot
from bkvy.utils.recorder import Records
from bkvy.utils.scrubber import Scrubber, SecretLogFilter, url_secrets

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
    config_source: Callable[[], GatewayConfig] | None = None  # what ``reload`` reads; raises ConfigError
    config_hash: str = ""  # ``core.config.fingerprint.config_hash`` of ``config``
    config_loaded_wall: float = 0.0  # when ``config`` was read (unix seconds)
    connections_ended: Mapping[str, int] = field(default_factory=dict)  # ``api.server.ConnectionCounts``, if served
    cache: ResponseCache | None = None  # the response cache (issue 20 §1): in memory, or CACHE_REDIS_URL
    relays: StreamRelays | None = None  # the streams being relayed: write watchdog, shutdown cut
    shared: SharedState | None = None  # REDIS_URL: state shared with other workers and replicas (docs/SCALING.md)
    slot: ProcessSlot | None = None  # REDIS_URL: this process's own files in LOG_DIR (utils/process_slot.py)
    fleet_stats: FleetStats | None = None  # REDIS_URL: statistics of every process (core/shared/stats.py)
    fleet_budgets: FleetBudgets | None = None  # REDIS_URL: retry and hedge budgets on fleet totals
    sharing: Sharing | None = None  # REDIS_URL: the bus, shared circuit states, reload announcements
    shared_keys: SharedClientKeys | None = None  # REDIS_URL: client keys and spend in Redis, ``client_keys`` its cache
    adaptive: AdaptiveRouting | None = None  # the bandit of adaptive routes (routing.json "strategies")
    bandit_saver: DebouncedSaver | None = None  # LOG_DIR/bandit_states.json (embedded mode)
    shared_bandit: SharedBandit | None = None  # REDIS_URL: the bandit's posteriors shared by the fleet
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    scrubber: Scrubber = field(default_factory=Scrubber)  # every configured secret; every sink uses this one
    _log_filter: SecretLogFilter | None = None
    classifier_cache: LevelCache = field(default_factory=LevelCache)  # routing.json "classifier": its answers
    replica_poller: ReplicaMetricsPoller | None = None  # replicated models: their /metrics, in the background
    tenants: TenantStore | None = None  # config/tenants.json and /admin/tenants (issue 19 §3)
    shared_tenants: SharedTenants | None = None  # REDIS_URL: API tenants, tenant rpm and spend in Redis
    shadow: ShadowRunner | None = None  # routing.json "shadow" (issue 20 §2): sampled calls after the reply
    shadow_saver: DebouncedSaver | None = None  # LOG_DIR/shadow_stats.json

    @classmethod
    async def start(
        cls,
        settings: Settings,
        config: GatewayConfig,
        *,
        clock: Clock,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        config_source: Callable[[], GatewayConfig] | None = None,
    ) -> Services:
        """Every service, started. Raises what a part raised, after stopping the parts started before it.
        ``config_source`` is what a reload reads (default: ``load_config(settings.config_dir)``)."""
        ensure_private_dir(settings.log_dir)  # start-up, before serving: 0700, state files in it are 0600
        owns_transport = transport is None
        transport = transport or AiohttpTransport()  # started below, with the other parts
        limiter = _configured_limiter(config, clock)
        circuits, guard, saver = _circuits(settings, clock, rng)
        latency, latency_saver = _latency(settings, clock)
        adaptive, bandit_saver = adaptive_routing(settings, config, clock, rng)
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
            adaptive=adaptive,
        )
        executor.add_observer(adaptive.observe)
        services = cls(
            settings, config, clock, transport, limiter, latency, executor, circuits, None, saver, owns_transport
        )
        services.latency_saver = latency_saver
        services.cache = build_cache(settings, config.routing, clock)
        services.adaptive, services.bandit_saver = adaptive, bandit_saver
        services.shadow, services.shadow_saver = start_shadow(services, rng)
        services.relays = StreamRelays(
            clock, write_timeout_seconds=settings.stream_write_timeout_seconds, scrubber=services.scrubber
        )
        services.config_source = config_source or (lambda: load_config(settings.config_dir))
        services.config_hash, services.config_loaded_wall = config_hash(config), clock.wall()
        services.scrubber.replace_secrets(configured_secrets(settings, config))
        services._add_log_filter()
        services._reconcile_circuits(config)  # a key replaced while we were down: its old auth block goes
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
        await self._start_shared()
        if self.settings.redis_url is not None:
            self.slot = await asyncio.to_thread(take_slot, self.settings.log_dir)
        await self._start_sharing()
        if self.shared is not None and self.adaptive is not None:
            shared_bandit = SharedBandit(self.shared, self.adaptive, clock=self.clock)
            await shared_bandit.start()
            self.shared_bandit = shared_bandit
        self._start_prober()
        self._start_replica_poller()
        self.records = await start_records(self)
        await self._start_fleet()
        client_keys = ClientKeyStore(self.settings.log_dir / CLIENT_KEYS_FILE, self.clock)
        await client_keys.start()
        self.client_keys = client_keys
        if self.shared is not None:
            bus = self.sharing.bus if self.sharing is not None else None
            shared_keys = SharedClientKeys(self.shared, client_keys, self.clock, bus=bus)
            await shared_keys.start()
            self.shared_keys = shared_keys
        self.executor.add_observer(spend_observer(self.shared_keys or client_keys))
        await start_tenants(self)

    async def _start_shared(self) -> None:
        """REDIS_URL: connect (a Redis down at start-up only makes the state degraded) and share the lanes."""
        if self.settings.redis_url is None:
            return
        shared = SharedState(
            self.settings.redis_url,
            prefix=self.settings.redis_prefix,
            timeout_seconds=self.settings.redis_timeout_ms / 1000,
            clock=self.clock,
        )
        await shared.start()
        self.shared = shared
        self.limiter.share(RedisWindows(shared))

    async def _start_fleet(self) -> None:
        """REDIS_URL: statistics and retry/hedge budgets exchanged with the other processes in the background."""
        if self.shared is None or self.slot is None:
            return
        records = self.records
        if records is not None and (records.daily_stats is not None or records.live is not None):
            fleet_stats = FleetStats(
                self.shared, stats_id=self.slot.stats_id, clock=self.clock, daily=records.daily_stats, live=records.live
            )
            await fleet_stats.start()
            self.fleet_stats = fleet_stats
        guard = self.executor.breaker
        hedging = self.executor.hedging
        fleet_budgets = FleetBudgets(
            self.shared,
            clock=self.clock,
            retry=guard.budget if isinstance(guard, CircuitGuard) else None,
            hedge=hedging.budget if hedging is not None else None,
        )
        await fleet_budgets.start()
        self.fleet_budgets = fleet_budgets

    async def _start_sharing(self) -> None:
        """REDIS_URL: circuit states from Redis (the JSON file is for the embedded mode), then the change bus."""
        if self.shared is None or self.settings.redis_url is None:
            return
        self.sharing = await start_sharing(
            self.shared,
            self.settings.redis_url,
            clock=self.clock,
            registry=self.circuits,
            reload=lambda: reload_and_log(self, announce=False),
            config_hash=lambda: self.config_hash,
        )

    def _start_prober(self) -> None:
        if self.circuits is None or not self.settings.health_probe_enabled:
            return
        prober = HealthProber(
            registry=self.circuits,
            config=self.config,
            transport=self.transport,
            clock=self.clock,
            interval_seconds=self.settings.health_probe_interval_seconds,
            timeout_seconds=self.settings.health_probe_timeout_seconds,
            claim=self.sharing.circuits.claim_probe if self.sharing and self.sharing.circuits else None,
        )
        prober.start()
        self.prober = prober

    def _start_replica_poller(self) -> None:
        """Once the config has a replica to read (it reads each reload's config from then on)."""
        if self.replica_poller is not None or not replica_targets(self.config):
            return
        poller = ReplicaMetricsPoller(
            config_of=lambda: self.config,
            health=self.executor.replica_health,
            transport=self.transport,
            clock=self.clock,
        )
        poller.start()
        self.replica_poller = poller

    async def reload(self, *, announce: bool = True) -> list[str]:
        """Read and validate the config again (``config_source``) and swap it in. Raises ConfigError, with the
        same one-line message as at start-up, and the running config stays. Returns the ``provider/key_id`` of
        each key whose value changed (its circuits were renewed).

        The swap is one synchronous step (no ``await`` between reading the new config and the last assignment),
        so each request sees either the old config and executor or the new ones, never a mix. With REDIS_URL the
        new hash is announced to every other worker and replica (``api.sharing``), unless ``announce`` is False: a
        reload caused by an announcement does not announce again."""
        assert self.config_source is not None
        async with self._reload_lock:  # two reloads at once: one after the other
            config = await asyncio.to_thread(self.config_source)  # file reads off the event loop
            _configure_lanes(self.limiter, config, previous=self.config)
            renewed = self._reconcile_circuits(config)
            if self.adaptive is not None:
                self.adaptive.configure(config)  # before the new executor reads its adaptive routes
            self.executor = self.executor.with_config(config)
            if config.routing.classifier != self.config.routing.classifier:  # another model's answers go
                self.classifier_cache = LevelCache()
            if self.cache is not None and config.routing.cache != self.config.routing.cache:
                self.cache.configure(config.routing.cache)  # ttl (and in memory its bounds): the rest is per request
            self.config, self.config_hash, self.config_loaded_wall = config, config_hash(config), self.clock.wall()
            if self.tenants is not None:
                self.tenants.configure(config.tenants)
            self.scrubber.replace_secrets(configured_secrets(self.settings, config))
            if self.prober is not None:  # the prober reads the config too: start it again over the new one
                prober, self.prober = self.prober, None
                await prober.stop()
                self._start_prober()
            self._start_replica_poller()
        changed = [f"{provider}/{key_id}" for provider, key_id in renewed]
        log.info("config_reloaded", extra={"config_hash": self.config_hash, "keys_changed": changed})
        if announce and self.sharing is not None:
            await self.sharing.fanout.announce(self.config_hash)
        return changed

    def _reconcile_circuits(self, config: GatewayConfig) -> list[tuple[str, str]]:
        """Renew the circuits of a key whose value changed, drop those of a removed key (``reconcile_keys``)."""
        if self.circuits is None:
            return []
        renewed = self.circuits.reconcile_keys(key_fingerprints(config))
        if self.circuit_saver is not None:
            registry = self.circuits
            self.circuit_saver.schedule(registry.to_dict)  # the new fingerprints are kept across a restart
        return renewed

    def _add_log_filter(self) -> None:
        """``SecretLogFilter`` on every handler of the root logger (bkvy's and uvicorn's lines end there)."""
        self._log_filter = SecretLogFilter(self.scrubber)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._log_filter)

    def _remove_log_filter(self) -> None:
        if self._log_filter is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._log_filter)

    async def stop(self) -> None:
        """Stop every part, even when one raises. Raises ExceptionGroup with every failure (each one logged)."""
        errors: list[Exception] = []
        for part, stop_part in self._stops():
            try:
                await stop_part()
            except Exception as error:
                log.error("service_stop_failed", extra={"part": part, "error": type(error).__name__})
                errors.append(error)
        self._remove_log_filter()  # after the parts' last lines
        if errors:
            raise ExceptionGroup("services failed to stop", errors)

    def _stops(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """What ``stop`` stops, in order: the records first, so every row is flushed before anything else goes."""
        stops: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.records is not None:
            stops.append(("records", self.records.stop))
        if self.shadow is not None and self.shadow_saver is not None:
            stops.append(("shadow", self._stop_shadow))
        if self.fleet_stats is not None:
            stops.append(("fleet_stats", self.fleet_stats.stop))
        if self.fleet_budgets is not None:
            stops.append(("fleet_budgets", self.fleet_budgets.stop))
        if self.shared_tenants is not None:
            stops.append(("shared_tenants", self.shared_tenants.stop))
        if self.shared_keys is not None:
            stops.append(("shared_client_keys", self.shared_keys.stop))
        if self.client_keys is not None:
            stops.append(("client_keys", self.client_keys.stop))
        if self.prober is not None:
            stops.append(("prober", self.prober.stop))
        if self.replica_poller is not None:
            stops.append(("replica_metrics", self.replica_poller.stop))
        if self.circuit_saver is not None and self.circuits is not None:
            stops.append(("circuit_states", self._save_circuits))
        if self.latency_saver is not None:
            stops.append(("latency", self._save_latency))
        if self.bandit_saver is not None and self.adaptive is not None:
            stops.append(("bandit_states", self._save_bandit))
        if self.shared_bandit is not None:
            stops.append(("shared_bandit", self.shared_bandit.stop))
        if self.sharing is not None:
            stops.append(("sharing", self.sharing.stop))
        if self.shared is not None:
            stops.append(("shared_state", self.shared.stop))
        if self.cache is not None:
            stops.append(("cache", self.cache.close))
        if self._owns_transport and isinstance(self.transport, AiohttpTransport):
            stops.append(("transport", self.transport.close))
        if self.slot is not None:
            stops.append(("slot", self._release_slot))
        return stops

    async def _release_slot(self) -> None:
        assert self.slot is not None
        release_slot(self.slot)

    async def _save_circuits(self) -> None:
        assert self.circuit_saver is not None and self.circuits is not None
        self.circuit_saver.schedule(self.circuits.to_dict)
        await self.circuit_saver.flush()

    async def _save_bandit(self) -> None:
        assert self.bandit_saver is not None and self.adaptive is not None
        if self.adaptive.arms:  # no adaptive route: no file
            self.bandit_saver.schedule(self.adaptive.book.to_dict)
        await self.bandit_saver.flush()

    async def _stop_shadow(self) -> None:
        assert self.shadow is not None and self.shadow_saver is not None
        await stop_shadow(self.shadow, self.shadow_saver)

    async def _save_latency(self) -> None:
        assert self.latency_saver is not None
        self.latency_saver.schedule(self.latency.to_dict)
        await self.latency_saver.flush()


def configured_secrets(settings: Settings, config: GatewayConfig) -> list[str]:
    """Every secret the process knows in clear: provider key values, credentials in a provider's base_url or in
    REDIS_URL, the admin and monitor keys. (Client keys are stored hashed: never known in clear after issue.)"""
    found = [key.api_key for provider in config.providers.values() for key in provider.keys.values()]
    found += [secret for provider in config.providers.values() for secret in url_secrets(provider.base_url)]
    found += [key for key in (settings.admin_api_key, settings.monitor_api_key) if key]
    found += url_secrets(settings.redis_url) if settings.redis_url else []
    found += url_secrets(settings.cache_redis_url) if settings.cache_redis_url else []
    return found


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
    if settings.redis_url is not None:  # Redis is the store (api.sharing); the file is for the embedded mode
        return registry, CircuitGuard(registry, RetryBudget(clock)), None
    store = CircuitStore(settings.log_dir / CIRCUIT_STATE_FILE)
    saved = store.load()  # start-up, before serving: a sync read is fine here
    if saved is not None:
        registry.load_dict(saved)
    saver = DebouncedSaver(store, clock, delay_seconds=1.0)
    registry.on_change(lambda _snapshot: saver.schedule(registry.to_dict))
    return registry, CircuitGuard(registry, RetryBudget(clock)), saver


def _configured_limiter(config: GatewayConfig, clock: Clock) -> RateLimiter:
    limiter = RateLimiter(clock)
    _configure_lanes(limiter, config, previous=None)
    return limiter


def _configure_lanes(limiter: RateLimiter, config: GatewayConfig, *, previous: GatewayConfig | None) -> None:
    """A lane for each key x model of ``config``. A lane whose limits are those it had under ``previous`` keeps
    its counts and queue; a new lane, or one whose limits changed, starts afresh. A lane that ``config`` no
    longer has stays in the limiter unused (requests may still wait in it), listed by ``/rates/status``."""
    for provider_name, provider in config.providers.items():
        for model_name in provider.models:
            for key_id in provider.key_ids_for(model_name):  # a replicated model: a lane per key per replica
                limits = _limits(provider, key_id, model_name)
                if previous is not None and _limits_before(previous, provider_name, key_id, model_name) == limits:
                    continue
                limiter.configure(
                    LaneKey(provider_name, key_id, model_name), rpm=limits.rpm, rpd=limits.rpd, tpm=limits.tpm
                )


def _limits_before(previous: GatewayConfig, provider_name: str, key_id: str, model_name: str) -> RateLimit | None:
    provider = previous.providers.get(provider_name)
    if provider is None or model_name not in provider.models or key_id not in provider.key_ids_for(model_name):
        return None
    return _limits(provider, key_id, model_name)


def _limits(provider: ProviderConfig, key_id: str, model_name: str) -> RateLimit:
    """A candidate key id's limits: its key's (a replica's lane has its key's limits, docs/ROUTING.md)."""
    target = provider.target(model_name, key_id)
    assert target is not None  # key ids come from ``key_ids_for``
    return target[0].limits_for(model_name)


async def reload_and_log(services: Services, *, announce: bool = True) -> bool:
    """``services.reload()`` for a signal or an announcement from another process: a refused config is a log line
    (its one-line message), never a raise. Returns whether the new config is in."""
    try:
        await services.reload(announce=announce)
    except ConfigError as error:
        log.error("config_reload_refused", extra={"error": str(error), "config_hash": services.config_hash})
        return False
    except Exception:  # a signal's task is an outermost handler: the process serves on, the old config in place
        log.exception("config_reload_failed")
        return False
    return True


def _hedge_policy(settings: Settings, clock: Clock) -> HedgePolicy | None:
    """HEDGING and its HEDGE_* settings; None when hedging is off."""
    if not settings.hedging:
        return None
    return HedgePolicy(
        HedgeBudget(clock, percent=settings.hedge_budget_percent),
        min_delay_seconds=settings.hedge_min_delay_ms / 1000.0,
        delay_factor=settings.hedge_delay_factor,
    )
