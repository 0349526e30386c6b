"""Background health probes for open circuits (SPEC §6).

Every ``interval_seconds`` the prober takes the open circuits whose backoff has ended (never auth ones),
and sends each the cheapest call its provider offers, at most ``max_concurrent`` at a time, each bounded
by ``timeout_seconds``. A 2xx moves the circuit to HALF_OPEN; anything else keeps it open, backoff grown.
"""

from __future__ import annotations

import asyncio
import logging

from bkvy.clock import Clock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.upstream.adapters import adapter_for
from bkvy.core.upstream.adapters._errors import upstream_error
from bkvy.core.upstream.embeddings import embedding_adapter_for
from bkvy.core.upstream.embeddings.base import PROBE_INPUT
from bkvy.core.upstream.transport import Transport
from bkvy.models.embeddings import EmbeddingCall
from bkvy.models.errors import UpstreamError
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
    ) -> None:
        self._registry = registry
        self._config = config
        self._transport = transport
        self._clock = clock
        self._interval_seconds = interval_seconds
        self._timeout_seconds = timeout_seconds
        self._max_concurrent = max_concurrent
        self._task: asyncio.Task[None] | None = None
        self.probes_sent = 0

    def start(self) -> None:
        self._registry.set_prober_running(True)  # from now on only probes reopen the way (SPEC §6)
        self._task = asyncio.create_task(self._run(), name="bkvy-health-prober")

    async def stop(self) -> None:
        self._registry.set_prober_running(False)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._interval_seconds)
            try:
                await self.probe_due()
            except Exception:  # the prober must outlive any one bad cycle
                log.exception("probe_cycle_failed")

    async def probe_due(self) -> int:
        """Probe every circuit due now. Returns how many probes were sent."""
        keys = [k for k in self._registry.due_for_probe() if k.provider in self._config.providers]
        limit = asyncio.Semaphore(self._max_concurrent)

        async def _bounded(key: CircuitKey) -> None:
            async with limit:
                await self._probe(key)

        await asyncio.gather(*(_bounded(key) for key in keys))
        return len(keys)

    async def _probe(self, key: CircuitKey) -> None:
        provider = self._config.providers[key.provider]
        model = provider.models.get(key.model)
        key_config = provider.keys.get(key.key_id)
        if model is None or key_config is None:
            return
        call = UpstreamCall(
            base_url=provider.base_url,
            model=key.model,
            api_key=key_config.api_key,
            messages=(ChatMessage("user", "ping"),),
            supports_thinking=model.supports_thinking,
            thinking_off=True,
            endpoint=model.endpoint,
        )
        if model.is_embedding_model:  # a chat probe would fail on an embedding model, and keep it open
            request = embedding_adapter_for(provider.type).build_probe(
                EmbeddingCall(provider.base_url, key.model, key_config.api_key, PROBE_INPUT, model.endpoint)
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
            self._registry.record_probe_failure(key, error.error_class)
            return
        if 200 <= reply.status < 300:
            self._registry.record_probe_success(key)
            log.info("probe_succeeded", extra={"provider": key.provider, "model": key.model, "key_id": key.key_id})
        else:
            reply_error = upstream_error(reply.status, reply.headers, reply.body)
            self._registry.record_probe_failure(key, reply_error.error_class)
