"""GatewayMetrics counts with plain dicts and renders through prometheus-client: the exposition must parse
and say exactly what was observed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bkvy.models.outcomes import HedgeOutcome
from bkvy.utils.metrics import GatewayMetrics


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(metrics.render().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    metrics = GatewayMetrics([("p", "m", "k")])
    for seconds in (0.005, 0.025, 0.3, 500.0):  # 0.025 sits exactly on a bound: le is "less or equal"
        metrics.observe_http("/llm/direct", "POST", 200, seconds)
    samples = _samples(metrics)
    route = (("method", "POST"), ("route", "/llm/direct"))

    def bucket(le: str) -> float:
        return samples[("bkvy_http_request_duration_seconds_bucket", tuple(sorted((*route, ("le", le)))))]

    assert [bucket("0.01"), bucket("0.025"), bucket("0.25"), bucket("0.5"), bucket("120.0"), bucket("+Inf")] == [
        1,
        2,
        2,
        3,
        3,
        4,
    ]
    assert samples[("bkvy_http_request_duration_seconds_count", route)] == 4
    assert abs(samples[("bkvy_http_request_duration_seconds_sum", route)] - 500.33) < 1e-9


def test_counters_add_per_label_set() -> None:
    metrics = GatewayMetrics([("p", "m", "k")])
    for status in (200, 200, 429):
        metrics.observe_http("/v1/chat/completions", "POST", status, 0.01)
    samples = _samples(metrics)
    key = "bkvy_http_requests_total"
    assert samples[(key, (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200")))] == 2
    assert samples[(key, (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "429")))] == 1


def test_every_hedge_outcome_is_exported_from_the_start_and_counts() -> None:
    metrics = GatewayMetrics([("p", "m", "k")])
    text = metrics.render().decode()
    for outcome in HedgeOutcome:
        assert f'bkvy_hedges_total{{outcome="{outcome.value}"}} 0.0' in text
    metrics.observe_hedges([HedgeOutcome.WON, HedgeOutcome.SKIPPED_BUDGET, HedgeOutcome.SKIPPED_BUDGET])
    samples = _samples(metrics)
    assert samples[("bkvy_hedges_total", (("outcome", "won"),))] == 1
    assert samples[("bkvy_hedges_total", (("outcome", "skipped_budget"),))] == 2
    assert samples[("bkvy_hedges_total", (("outcome", "lost"),))] == 0
    assert 'bkvy_hedges_total{outcome="won"} 1.0' in metrics.render().decode()
