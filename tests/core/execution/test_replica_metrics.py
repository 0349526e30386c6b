"""The /metrics poller: vLLM's gauges parsed with prometheus_client, saturation marked, 404s asked rarely."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.replicas import ReplicaMetricsConfig
from bkvy.core.execution.replica_metrics import (
    ReplicaGauges,
    ReplicaMetricsPoller,
    is_saturated,
    metrics_url,
    parse_gauges,
)
from bkvy.core.routing.replicas import ReplicaHealth
from bkvy.core.upstream.transport import StreamHead
from bkvy.models.errors import UpstreamError
from bkvy.models.types import ErrorClass, UpstreamReply, UpstreamRequest

# As vLLM V1 serves them (vllm/v1/metrics/loggers.py): one series per engine, labelled.
VLLM_TEXT = """# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.97
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="llama"} 1234.0
"""
LIMITS = ReplicaMetricsConfig()


def test_parse_sums_waiting_and_takes_the_fullest_cache() -> None:
    assert parse_gauges(VLLM_TEXT) == ReplicaGauges(5.0, 0.97)


def test_the_v0_cache_gauge_name_is_read_too() -> None:
    assert parse_gauges("vllm:gpu_cache_usage_perc 0.4\n") == ReplicaGauges(None, 0.4)


def test_text_without_the_gauges_reads_as_unknown() -> None:
    assert parse_gauges("# TYPE other gauge\nother 1\n") == ReplicaGauges(None, None)


@pytest.mark.parametrize(
    "gauges, expected",
    [
        (ReplicaGauges(8.0, 0.95), False),  # at the thresholds: not above
        (ReplicaGauges(9.0, None), True),
        (ReplicaGauges(None, 0.96), True),
        (ReplicaGauges(None, None), False),
    ],
)
def test_saturated_above_either_threshold(gauges: ReplicaGauges, expected: bool) -> None:
    assert is_saturated(gauges, LIMITS) is expected


def test_metrics_live_at_the_server_root() -> None:
    assert metrics_url("http://h:8000/v1") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/") == "http://h:8000/metrics"


class MetricsTransport:
    """Answers ``GET <url>/metrics`` from ``replies`` (status, text); a missing URL fails to connect."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, str]] = {}
        self.asked: list[str] = []

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        assert request.method == "GET"
        self.asked.append(request.url)
        if request.url not in self.replies:
            raise UpstreamError(ErrorClass.CONNECTION, "connection failed")
        status, text = self.replies[request.url]
        return UpstreamReply(status, {}, text.encode())

    def stream(self, request: UpstreamRequest) -> AbstractAsyncContextManager[StreamHead]:
        raise NotImplementedError


def _config(interval: float = 5.0):
    model = {
        "intelligence_tier": "low",
        "cost_per_1k_tokens": 0,
        "endpoints": ["http://a:1", "http://b:1", "http://c:1"],
        "replica_metrics": {"interval_seconds": interval, "missing_retry_seconds": 600},
    }
    return build_config({"vllm": {"type": "openai_compatible", "models": {"m": model}}}, {}, {})


async def test_a_saturated_replica_is_marked_until_it_recovers() -> None:
    clock, transport, health = FakeClock(), MetricsTransport(), ReplicaHealth()
    config = _config()
    poller = ReplicaMetricsPoller(config_of=lambda: config, health=health, transport=transport, clock=clock)
    transport.replies = {
        "http://a:1/metrics": (200, VLLM_TEXT),
        "http://b:1/metrics": (200, "vllm:num_requests_waiting 0\n"),
    }
    assert await poller.poll_due() == 3
    assert health.saturated_urls == {"http://a:1"}  # c cannot be reached: its circuit's business, not saturated
    assert await poller.poll_due() == 0  # none due before the interval
    clock.advance(5.0)
    transport.replies["http://a:1/metrics"] = (200, "vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.2\n")
    assert await poller.poll_due() == 3
    assert health.saturated_urls == frozenset()


async def test_a_replica_without_metrics_is_asked_again_only_after_the_retry_delay() -> None:
    clock, transport, health = FakeClock(), MetricsTransport(), ReplicaHealth()
    config = _config(interval=1.0)
    poller = ReplicaMetricsPoller(config_of=lambda: config, health=health, transport=transport, clock=clock)
    transport.replies = {url: (404, "not found") for url in ("http://a:1/metrics", "http://b:1/metrics")}
    transport.replies["http://c:1/metrics"] = (200, "vllm:num_requests_waiting 0\n")
    await poller.poll_due()
    for _ in range(10):
        clock.advance(1.0)
        await poller.poll_due()
    assert transport.asked.count("http://a:1/metrics") == 1
    assert transport.asked.count("http://c:1/metrics") == 11
    clock.advance(600.0)
    await poller.poll_due()
    assert transport.asked.count("http://a:1/metrics") == 2


async def test_the_background_task_polls_on_its_interval_and_stops() -> None:
    clock, transport, health = FakeClock(), MetricsTransport(), ReplicaHealth()
    config = _config(interval=2.0)
    transport.replies = {f"http://{h}:1/metrics": (200, VLLM_TEXT) for h in "abc"}
    poller = ReplicaMetricsPoller(config_of=lambda: config, health=health, transport=transport, clock=clock)
    poller.start()
    for _ in range(3):
        for _ in range(20):  # let the task read and go back to sleep
            await asyncio.sleep(0)
        clock.advance(2.0)
    await poller.stop()
    assert poller.reads >= 6 and health.saturated_urls == {"http://a:1", "http://b:1", "http://c:1"}
