"""The replicas' own load, read in the background from their ``/metrics`` (vLLM's Prometheus text).

Never on the request path: a task reads each replica's ``vllm:num_requests_waiting`` and KV-cache usage
(``vllm:kv_cache_usage_perc``, vLLM V1; ``vllm:gpu_cache_usage_perc``, its name before, both read) every
``replica_metrics.interval_seconds`` of its model, and marks a replica saturated in ``ReplicaHealth`` while either is
above its threshold; ``ReplicaRouter`` then tries it after the others. A replica that answers 404 (not a vLLM, or
metrics off) is asked again only after ``missing_retry_seconds``; one that cannot be reached is not saturated
(its circuit deals with it).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from bkvy.clock import Clock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.replicas import ReplicaMetricsConfig
from bkvy.core.routing.replicas import ReplicaHealth
from bkvy.core.upstream.transport import Transport
from bkvy.models.errors import UpstreamError
from bkvy.models.types import UpstreamRequest

log = logging.getLogger(__name__)

METRIC_WAITING = "vllm:num_requests_waiting"
METRICS_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_MISSING = frozenset({404, 405})
_MAX_READ_SECONDS = 2.0  # one /metrics read at most (and at most its model's interval)


@dataclass(frozen=True, slots=True)
class ReplicaGauges:
    waiting: float | None  # requests queued, summed over the server's engines
    cache_usage: float | None  # KV-cache usage 0..1, the fullest engine's


def parse_gauges(text: str) -> ReplicaGauges:
    """The two gauges from Prometheus text (None: absent). Raises ValueError on text that is not Prometheus'."""
    waiting: float | None = None
    usage: float | None = None
    for family in text_string_to_metric_families(text):
        values = [sample.value for sample in family.samples if sample.name == family.name]
        if family.name == METRIC_WAITING and values:
            waiting = sum(values)
        elif family.name in METRICS_CACHE_USAGE and values:
            usage = max(max(values), usage or 0.0)
    return ReplicaGauges(waiting, usage)


def is_saturated(gauges: ReplicaGauges, limits: ReplicaMetricsConfig) -> bool:
    """Above either threshold: too many requests queued, or its KV cache nearly full."""
    return (gauges.waiting is not None and gauges.waiting > limits.max_requests_waiting) or (
        gauges.cache_usage is not None and gauges.cache_usage > limits.max_cache_usage
    )


def metrics_url(base_url: str) -> str:
    """Where a replica serves ``/metrics``: at its server's root, also when its base URL ends in ``/v1``."""
    root = base_url.rstrip("/")
    return (root.removesuffix("/v1") or root) + "/metrics"


def replica_targets(config: GatewayConfig) -> dict[str, ReplicaMetricsConfig]:
    """Each replica's base URL and its model's metrics settings (the first model listing a URL decides)."""
    targets: dict[str, ReplicaMetricsConfig] = {}
    for provider in config.providers.values():
        for model in provider.models.values():
            if model.endpoints is not None and model.replica_metrics.enabled:
                for url in model.endpoints:
                    targets.setdefault(url, model.replica_metrics)
    return targets


class ReplicaMetricsPoller:
    """Reads every replica's ``/metrics`` when due and keeps ``health.saturated_urls`` up to date."""

    def __init__(
        self, *, config_of: Callable[[], GatewayConfig], health: ReplicaHealth, transport: Transport, clock: Clock
    ) -> None:
        self._config_of = config_of  # read each cycle: a reload's replicas are polled from then on
        self._health = health
        self._transport = transport
        self._clock = clock
        self._due_at: dict[str, float] = {}
        self._saturated: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # /metrics requests sent

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bkvy-replica-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_due()
            except Exception:  # the poller must outlive any one bad cycle
                log.exception("replica_metrics_cycle_failed")
            await self._clock.sleep(self._seconds_to_next())

    def _seconds_to_next(self) -> float:
        soonest = min(self._due_at.values(), default=math.inf)
        return min(max(soonest - self._clock.now(), 0.05), 60.0)

    async def poll_due(self) -> int:
        """Read every replica due now; returns how many were read."""
        targets = replica_targets(self._config_of())
        now = self._clock.now()
        due = [(url, limits) for url, limits in targets.items() if self._due_at.get(url, now) <= now]
        await asyncio.gather(*(self._read(url, limits) for url, limits in due))
        for url in set(self._due_at) - set(targets):  # no longer configured
            del self._due_at[url]
            self._saturated.discard(url)
        self._health.saturated_urls = frozenset(self._saturated)
        return len(due)

    async def _read(self, url: str, limits: ReplicaMetricsConfig) -> None:
        self._due_at[url] = self._clock.now() + limits.interval_seconds
        self.reads += 1
        request = UpstreamRequest("GET", metrics_url(url), {}, None)
        try:
            async with self._clock.timeout(min(limits.interval_seconds, _MAX_READ_SECONDS)):
                reply = await self._transport.send(request)
            if reply.status in _MISSING:
                self._due_at[url] = self._clock.now() + limits.missing_retry_seconds
                self._saturated.discard(url)
                return
            gauges = parse_gauges(reply.body.decode()) if reply.status < 300 else ReplicaGauges(None, None)
        except (TimeoutError, UpstreamError, ValueError, UnicodeDecodeError):
            gauges = ReplicaGauges(None, None)
        self._mark(url, is_saturated(gauges, limits))

    def _mark(self, url: str, saturated: bool) -> None:
        if saturated and url not in self._saturated:
            log.info("replica_saturated", extra={"replica": url})
        elif not saturated and url in self._saturated:
            log.info("replica_recovered", extra={"replica": url})
        if saturated:
            self._saturated.add(url)
        else:
            self._saturated.discard(url)
