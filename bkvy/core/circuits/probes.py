"""Background health probes for open circuits (SPEC §6).

The prober sends each open circuit (never an auth one) the cheapest call its provider offers when the registry
says it is due: a rate-limited circuit when its retry-after ends, any other one every ``interval_seconds``,
whatever its backoff (the backoff holds back user traffic, not probes). At most one probe per circuit per
interval, at most ``max_concurrent`` at a time, each bounded by ``timeout_seconds``. A 2xx moves the circuit to
HALF_OPEN; anything else keeps it open, backoff grown, a 429's retry-after honoured.

It sleeps until the next probe falls due, and wakes early when a circuit changes (a 429 opening with a short
retry-after must not wait for the next tick).

With several replicas (REDIS_URL), ``claim(key)`` is asked before each probe: only the replica that gets the
circuit's lock for this interval probes it; the others skip, and learn the outcome through the shared state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bkvy.clock import Clock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.upstream.adapters import adapter_for
from bkvy.core.upstream.adapters._errors import upstream_error
from bkvy.core.upstream.embeddings import embedding_adapter_for
from bkvy.core.upstream.embeddings.base import PROBE_INPUT
from bkvy.core.upstream.thinking import thinking_setting
from bkvy.core.upstream.transport import Transport
from bkvy.models.embeddings import EmbeddingCall
from bkvy.models.errors import UpstreamError
from bkvy.models.thinking import ThinkingMode
from bkvy.models.types import ChatMessage, ErrorClass, UpstreamCall

log = logging.getLogger(__name__)


class HealthProber:
    def __init__(
        self,
        *,
        registry: CircuitBreakerRegistry,
        config: GatewayConfig,
        transport: Transport,
        clock: Clock,
        interval_seconds: float,
        timeout_seconds: float,
        max_concurrent: int = 5,
        claim: Callable[[CircuitKey, float], Awaitable[bool]] | None = None,
    ) -> None:
        """``claim(key, interval_seconds)``: whether this process may probe ``key`` now (None: always)."""
        self._registry = registry
        self._config = config
        self._transport = transport
        self._clock = clock
        self._interval_seconds = interval_seconds
        self._timeout_seconds = timeout_seconds
        self._max_concurrent = max_concurrent
        self._claim = claim
        self._limit = asyncio.Semaphore(max_concurrent)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.probes_sent = 0

    @property
    def in_flight(self) -> int:
        """Probes started and not finished yet."""
        return len(self._in_flight)

    def start(self) -> None:
        # from now on only probes reopen the way (SPEC §6), on this prober's cadence
        self._registry.set_prober_running(True, probe_interval_seconds=self._interval_seconds)
        self._registry.on_change(lambda _snapshot: self._wake.set())
        self._task = asyncio.create_task(self._run(), name="bkvy-health-prober")

    async def stop(self) -> None:
        self._registry.set_prober_running(False)
        tasks = [task for task in (self._task, *self._in_flight) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._in_flight.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a change from here on wakes the sleep below
            try:
                self._start_due_probes()
            except Exception:  # the prober must outlive any one bad cycle
                log.exception("probe_cycle_failed")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        """Until the next probe falls due (at most one interval), or until a circuit changes."""
        next_at = self._registry.next_probe_at()
        delay = self._interval_seconds if next_at is None else min(self._interval_seconds, next_at - self._clock.now())
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def probe_due(self) -> int:
        """Probe every circuit due now and wait for the replies. Returns how many probes were started."""
        tasks = self._start_due_probes()
        await asyncio.gather(*tasks)
        return len(tasks)

    def _start_due_probes(self) -> list[asyncio.Task[None]]:
        """One task per due circuit; each is marked started at once, so it is not due again for an interval."""
        tasks = []
        for key in self._registry.due_for_probe():
            self._registry.record_probe_started(key)  # also for a provider no longer configured: no busy loop
            if key.provider not in self._config.providers:
                continue
            task = asyncio.create_task(self._bounded_probe(key), name="bkvy-health-probe")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            tasks.append(task)
        return tasks

    async def _bounded_probe(self, key: CircuitKey) -> None:
        async with self._limit:
            try:
                if self._claim is not None and not await self._claim(key, self._interval_seconds):
                    return  # another replica probes it in this interval
                await self._probe(key)
            except Exception:  # one bad probe must not end the others; the circuit stays open
                log.exception("probe_failed_unexpectedly", extra={"provider": key.provider, "key_id": key.key_id})

    async def _probe(self, key: CircuitKey) -> None:
        provider = self._config.providers[key.provider]
        model = provider.models.get(key.model)
        target = provider.target(key.model, key.key_id)  # a replica's key id: its key, on its replica
        if model is None or target is None:
            return
        key_config, base_url = target
        call = UpstreamCall(
            base_url=base_url,
            model=key.model,
            api_key=key_config.api_key,
            messages=(ChatMessage("user", "ping"),),
            thinking=thinking_setting(provider.thinking_spec(key.model), ThinkingMode.OFF),
            endpoint=model.endpoint,
        )
        if model.is_embedding_model:  # a chat probe would fail on an embedding model, and keep it open
            request = embedding_adapter_for(provider.type).build_probe(
                EmbeddingCall(base_url, key.model, key_config.api_key, PROBE_INPUT, model.endpoint)
            )
        else:
            request = adapter_for(provider.type).build_probe(call)
        self.probes_sent += 1
        try:
            async with self._clock.timeout(self._timeout_seconds):
                reply = await self._transport.send(request)
        except TimeoutError:
            self._registry.record_probe_failure(key, ErrorClass.TIMEOUT)
            return
        except UpstreamError as error:
            self._registry.record_probe_failure(key, error.error_class, error.retry_after_seconds)
            return
        if 200 <= reply.status < 300:
            self._registry.record_probe_success(key)
            log.info("probe_succeeded", extra={"provider": key.provider, "model": key.model, "key_id": key.key_id})
        else:
            reply_error = upstream_error(reply.status, reply.headers, reply.body, now_wall=self._clock.wall())
            self._registry.record_probe_failure(key, reply_error.error_class, reply_error.retry_after_seconds)
