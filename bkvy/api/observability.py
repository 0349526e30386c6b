"""Wire the records (transaction log, daily stats, dashboard aggregate, metrics) to one gateway's services."""

from __future__ import annotations

from typing import Any

from bkvy.utils.metrics import CircuitSample, GatewayMetrics
from bkvy.utils.recorder import Records


async def start_records(services: Any) -> Records:
    """Build the records of ``services`` (a ``Services``), start their writers, observe its executor."""
    config = services.config
    configured = [(provider_name, model_name, key_id)
                  for provider_name, provider in config.providers.items()
                  for model_name in provider.models for key_id in provider.keys]
    metrics = GatewayMetrics(configured,
                             queue_depth=lambda: _queue_depth(services),
                             circuits=lambda: circuit_samples(getattr(services, "circuits", None)))
    records = Records.from_settings(services.settings, services.clock, metrics)
    await records.start()
    services.executor.add_observer(records.observe)
    return records


def circuit_samples(circuits: Any) -> list[CircuitSample]:
    """Circuit states from a circuit registry with ``snapshots()``; empty when there is none."""
    snapshots = getattr(circuits, "snapshots", None)
    if snapshots is None:
        return []
    return [CircuitSample(s.key.provider, s.key.model, s.key.key_id, getattr(s.state, "value", str(s.state)))
            for s in snapshots()]


def _queue_depth(services: Any) -> int:
    return sum(int(lane.get("queue_depth", 0)) for lane in services.limiter.status())
