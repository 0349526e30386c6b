"""Prometheus metrics of one gateway (``GET /metrics``), in a registry of its own: no global state.

Label values are bounded: provider and model names only when they are in the config (else ``other``), key
ids never values, error codes and classes from fixed enums, HTTP routes as their templates. Client-supplied
text (client ids, unknown names, messages) never becomes a label.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bkvy.models.outcomes import Attempt, AttemptOutcome, HedgeOutcome

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
    state: str  # "closed", "open" or "half_open"


class _LiveCollector(Collector):
    """Values read at scrape time: queue depth and circuit states."""

    def __init__(
        self,
        queue_depth: Callable[[], int],
        circuits: Callable[[], Iterable[CircuitSample]],
        connections_ended: Callable[[], Mapping[str, int]],
        shared_state_up: Callable[[], float | None],
    ) -> None:
        self._queue_depth = queue_depth
        self._circuits = circuits
        self._connections_ended = connections_ended
        self._shared_state_up = shared_state_up

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("bkvy_queue_depth", "Requests waiting for a rate-limit slot", value=self._queue_depth())
        states = GaugeMetricFamily(
            "bkvy_circuit_state",
            "1 for the circuit's current state, else 0",
            labels=["provider", "model", "key_id", "state"],
        )
        for sample in self._circuits():
            for state in _CIRCUIT_STATES:
                states.add_metric(
                    [sample.provider, sample.model, sample.key_id, state], 1.0 if sample.state == state else 0.0
                )
        yield states
        ended = CounterMetricFamily(
            "bkvy_connections_ended",
            "Connections the server ended itself: over the connection cap, headers too large, read timeouts",
            labels=["reason"],
        )
        for reason, count in self._connections_ended().items():
            ended.add_metric([reason], float(count))
        yield ended
        shared_up = self._shared_state_up()
        if shared_up is not None:  # only with REDIS_URL set
            yield GaugeMetricFamily(
                "bkvy_shared_state_up", "1 when Redis (shared state) is usable, 0 when on local state", value=shared_up
            )

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _CounterTally:
    """A labelled counter kept as a plain dict: one add per event on the request path, exported at scrape."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):  # list(): a scrape may run while requests count
            family.add_metric(labels, value)
        return family


class _HistogramTally:
    """A labelled histogram kept as per-bucket counts; buckets are cumulated only at scrape time."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}  # per-bucket counts (+ the +Inf one), then the sum

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, counts in list(self.series.items()):
            counts = list(counts)
            cumulative = list(accumulate(counts[:-1]))
            buckets = [(floatToGoString(bound), cumulative[i]) for i, bound in enumerate(self.bounds)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric(labels, buckets, counts[-1])
        return family


class _TallyCollector(Collector):
    def __init__(self, tallies: Sequence[_CounterTally | _HistogramTally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[Metric]:
        for tally in self._tallies:
            yield tally.family()

    def describe(self) -> Iterator[Metric]:
        return iter(())


class GatewayMetrics:
    """Counted on the event loop with dict updates (prometheus-client's labelled metrics take a lock and
    build label tuples per call: a fifth of bkvy's own per-request CPU when measured); prometheus-client
    renders them, with the live gauges, at scrape time."""

    def __init__(
        self,
        configured: Iterable[tuple[str, str, str]],
        *,
        queue_depth: Callable[[], int] = lambda: 0,
        circuits: Callable[[], Iterable[CircuitSample]] = lambda: (),
        connections_ended: Callable[[], Mapping[str, int]] = dict,
        shared_state_up: Callable[[], float | None] = lambda: None,
    ) -> None:
        """``configured``: every (provider, model, key_id) of the config: the only label values allowed."""
        self._keys = set(configured)
        self._models = {(p, m) for p, m, _ in self._keys}
        self.registry = CollectorRegistry(auto_describe=False)
        self._http_requests = _CounterTally(
            "bkvy_http_requests", "HTTP requests by route template and status", ["route", "method", "status"]
        )
        self._http_seconds = _HistogramTally(
            "bkvy_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            _LATENCY_BUCKETS_SECONDS,
        )
        labels = ["routing_method", "provider", "model", "outcome"]
        self._requests = _CounterTally("bkvy_llm_requests", "Routed LLM requests", labels)
        self._request_seconds = _HistogramTally(
            "bkvy_llm_request_duration_seconds", "Routed LLM request latency", labels, _LATENCY_BUCKETS_SECONDS
        )
        self._attempts = _CounterTally(
            "bkvy_upstream_attempts",
            "Upstream attempts by provider, model, key id and result",
            ["provider", "model", "key_id", "outcome"],
        )
        self._rate_limit_wait = _HistogramTally(
            "bkvy_rate_limit_wait_seconds",
            "Time a request waited for a rate-limit slot",
            ["routing_method"],
            _WAIT_BUCKETS_SECONDS,
        )
        self._tokens = _CounterTally("bkvy_tokens", "Tokens used", ["provider", "model", "direction"])
        self._cost = _CounterTally("bkvy_cost_usd", "Estimated cost in USD", ["provider", "model"])
        self._hedges = _CounterTally("bkvy_hedges", "Chances to hedge a request, by what became of each", ["outcome"])
        # Policy (issue 19): rule names come from policy.json (bounded); "" when no rule matched.
        self._policy = _CounterTally("bkvy_policy_decisions", "Policy decisions by rule and action", ["rule", "action"])
        for hedge in HedgeOutcome:  # every outcome is exported from the start, at 0
            self._hedges.add((hedge.value,), 0.0)
        self.registry.register(
            _TallyCollector(
                [
                    self._http_requests,
                    self._http_seconds,
                    self._requests,
                    self._request_seconds,
                    self._attempts,
                    self._rate_limit_wait,
                    self._tokens,
                    self._cost,
                    self._hedges,
                    self._policy,
                ]
            )
        )
        self.registry.register(_LiveCollector(queue_depth, circuits, connections_ended, shared_state_up))

    def observe_served(
        self,
        routing_method: str,
        provider: str,
        model: str,
        *,
        total_ms: float,
        queue_wait_ms: float,
        attempts: Iterable[Attempt],
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
    ) -> None:
        """One routed request that was answered by ``provider``/``model``. O(attempts).

        ``cost_usd`` is the request's whole spend: what other attempts were billed (a hedge race's loser) goes
        to their own provider/model, the rest to the one that answered."""
        provider, model = self._model_labels(provider, model)
        attempts = tuple(attempts)
        self._observe_request((routing_method, provider, model, "success"), total_ms, queue_wait_ms, attempts)
        self._tokens.add((provider, model, "input"), max(input_tokens, 0))
        self._tokens.add((provider, model, "output"), max(output_tokens, 0))
        billed_to_others = self._bill_unanswered(attempts)
        self._cost.add((provider, model), max(cost_usd - billed_to_others, 0.0))

    def observe_hedges(self, hedges: Iterable[HedgeOutcome]) -> None:
        """What became of each chance to hedge one request (any request, served or failed)."""
        for hedge in hedges:
            self._hedges.add((hedge.value,))

    def observe_policy(self, action: str, rule: str) -> None:
        """One request that policy decided on: its action and the rule that decided ("none": no rule matched)."""
        self._policy.add((rule or "none", action))

    def observe_failed(
        self,
        routing_method: str,
        error_code: str,
        *,
        total_ms: float,
        queue_wait_ms: float,
        attempts: Iterable[Attempt],
    ) -> None:
        """One routed request that ended with the error ``error_code``. O(attempts)."""
        attempts = tuple(attempts)
        self._observe_request((routing_method, _NONE, _NONE, error_code), total_ms, queue_wait_ms, attempts)
        self._bill_unanswered(attempts)

    def _observe_request(
        self, labels: tuple[str, str, str, str], total_ms: float, queue_wait_ms: float, attempts: Iterable[Attempt]
    ) -> None:
        self._requests.add(labels)
        self._request_seconds.observe(labels, total_ms / 1000.0)
        self._rate_limit_wait.observe((labels[0],), queue_wait_ms / 1000.0)
        for attempt in attempts:
            key = (attempt.provider, attempt.model, attempt.key_id)
            outcome = attempt.outcome.value
            self._attempts.add((*key, outcome) if key in self._keys else (_OTHER, _OTHER, _OTHER, outcome))

    def _bill_unanswered(self, attempts: Sequence[Attempt]) -> float:
        """Count what attempts that did not answer were billed (a lost hedge) to their own model; the sum."""
        billed = 0.0
        for attempt in attempts:
            if attempt.cost_usd > 0 and attempt.outcome is not AttemptOutcome.SUCCESS:
                self._cost.add(self._model_labels(attempt.provider, attempt.model), attempt.cost_usd)
                billed += attempt.cost_usd
        return billed

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self._http_requests.add((route, method, str(status)))
        self._http_seconds.observe((route, method), seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _model_labels(self, provider: str, model: str) -> tuple[str, str]:
        return (provider, model) if (provider, model) in self._models else (_OTHER, _OTHER)
