"""Prometheus metrics of one gateway (``GET /metrics``), in a registry of its own: no global state.

Label values are bounded: provider and model names only when they are in the config (else ``other``), key
ids never values, error codes and classes from fixed enums, HTTP routes as their templates. Client-supplied
text (client ids, unknown names, messages) never becomes a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bkvy.core.executor import RequestOutcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_OTHER = "other"
_NONE = "none"
_LATENCY_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WAIT_BUCKETS_SECONDS = (0.0, 0.1, 0.5, 1, 5, 10, 30, 60, 300)
_CIRCUIT_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class CircuitSample:
    provider: str
    model: str
    key_id: str
    state: str                                        # "closed", "open" or "half_open"


class _LiveCollector(Collector):
    """Values read at scrape time: queue depth and circuit states."""

    def __init__(self, queue_depth: Callable[[], int], circuits: Callable[[], Iterable[CircuitSample]]) -> None:
        self._queue_depth = queue_depth
        self._circuits = circuits

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("bkvy_queue_depth", "Requests waiting for a rate-limit slot", value=self._queue_depth())
        states = GaugeMetricFamily("bkvy_circuit_state", "1 for the circuit's current state, else 0",
                                   labels=["provider", "model", "key_id", "state"])
        for sample in self._circuits():
            for state in _CIRCUIT_STATES:
                states.add_metric([sample.provider, sample.model, sample.key_id, state],
                                  1.0 if sample.state == state else 0.0)
        yield states

    def describe(self) -> Iterator[Metric]:
        return iter(())


class GatewayMetrics:
    def __init__(self, configured: Iterable[tuple[str, str, str]], *,
                 queue_depth: Callable[[], int] = lambda: 0,
                 circuits: Callable[[], Iterable[CircuitSample]] = lambda: ()) -> None:
        """``configured``: every (provider, model, key_id) of the config: the only label values allowed."""
        self._keys = set(configured)
        self._models = {(p, m) for p, m, _ in self._keys}
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._http_requests = Counter("bkvy_http_requests", "HTTP requests by route template and status",
                                      ["route", "method", "status"], registry=r)
        self._http_seconds = Histogram("bkvy_http_request_duration_seconds", "HTTP request latency by route",
                                       ["route", "method"], buckets=_LATENCY_BUCKETS_SECONDS, registry=r)
        labels = ["routing_method", "provider", "model", "outcome"]
        self._requests = Counter("bkvy_llm_requests", "Routed LLM requests", labels, registry=r)
        self._request_seconds = Histogram("bkvy_llm_request_duration_seconds", "Routed LLM request latency",
                                          labels, buckets=_LATENCY_BUCKETS_SECONDS, registry=r)
        self._attempts = Counter("bkvy_upstream_attempts", "Upstream attempts by provider, model, key id and result",
                                 ["provider", "model", "key_id", "outcome"], registry=r)
        self._rate_limit_wait = Histogram("bkvy_rate_limit_wait_seconds", "Time a request waited for a rate-limit slot",
                                          ["routing_method"], buckets=_WAIT_BUCKETS_SECONDS, registry=r)
        self._tokens = Counter("bkvy_tokens", "Tokens used", ["provider", "model", "direction"], registry=r)
        self._cost = Counter("bkvy_cost_usd", "Estimated cost in USD", ["provider", "model"], registry=r)
        r.register(_LiveCollector(queue_depth, circuits))

    def observe(self, outcome: RequestOutcome) -> None:
        """One routed request. O(attempts)."""
        method = outcome.request.route.method.value
        result = outcome.result
        if result is not None:
            provider, model = self._model_labels(result.candidate.provider, result.candidate.model)
            label = "success"
        else:
            provider, model = _NONE, _NONE
            label = outcome.error.code if outcome.error is not None else "unknown"
        self._requests.labels(method, provider, model, label).inc()
        self._request_seconds.labels(method, provider, model, label).observe(outcome.total_ms / 1000.0)
        self._rate_limit_wait.labels(method).observe(outcome.queue_wait_ms / 1000.0)
        for attempt in outcome.attempts:
            key = (attempt.provider, attempt.model, attempt.key_id)
            labels = key if key in self._keys else (_OTHER, _OTHER, _OTHER)
            self._attempts.labels(*labels, attempt.outcome).inc()
        if result is not None:
            usage = result.completion.usage
            self._tokens.labels(provider, model, "input").inc(max(usage.input_tokens, 0))
            self._tokens.labels(provider, model, "output").inc(max(usage.output_tokens, 0))
            self._cost.labels(provider, model).inc(max(result.cost_usd, 0.0))

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self._http_requests.labels(route, method, str(status)).inc()
        self._http_seconds.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _model_labels(self, provider: str, model: str) -> tuple[str, str]:
        return (provider, model) if (provider, model) in self._models else (_OTHER, _OTHER)
