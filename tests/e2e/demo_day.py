"""A recorded "day" of the demo, for replay tests: the demo's providers and routing on the simulated fleet,
served in process with the transaction log on, a few hundred requests of every kind, some of them through a
burst of 429s and a slow spell. Rate limits are raised so the run takes seconds, not an hour of rpm windows."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from bkvy.clock import MonotonicClock
from bkvy.core.config.gateway import GatewayConfig, load_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import _placed, demo_policy, demo_providers, demo_routing
from bkvy.sim import SimFleet
from tests.conftest import gateway

_MESSAGES = [{"role": "user", "content": "Say hello in a short sentence."}]
_BODIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("/llm/intelligence", {"intelligence_level": "low"}),
    ("/llm/intelligence", {"intelligence_level": "low"}),
    ("/llm/intelligence", {"intelligence_level": "medium"}),
    ("/llm/intelligence", {"intelligence_level": "high"}),
    ("/llm/scenario", {"scenario": "customer_support"}),
    ("/llm/scenario", {"scenario": "research"}),
    ("/llm/direct", {"provider": "openai", "model": "gpt-4o"}),
)


def demo_raw_config(fleet: SimFleet, *, rpm: int = 100_000) -> dict[str, Any]:
    """The demo's providers.json, routing.json and policy.json, every key's rpm set to ``rpm``."""
    providers = _placed(demo_providers(fleet))
    for provider in providers.values():
        for key in provider.get("keys", {}).values():
            key["rate_limits"] = {"*": {"rpm": rpm, "rpd": rpm * 100}}
    return {"providers.json": providers, "routing.json": demo_routing(), "policy.json": demo_policy()}


def write_config(directory: Path, raw: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in raw.items():
        (directory / name).write_text(json.dumps(value), encoding="utf-8")
    return directory


def _shape_fleet(fleet: SimFleet) -> None:
    """Jitter and a heavy tail, so percentiles have something to fit."""
    for server in fleet.servers.values():
        for knobs in map(server.knobs, server.model_names()):
            knobs.latency_jitter_ms = knobs.latency_ms / 2
            knobs.slow_fraction, knobs.slow_latency_ms = 0.05, knobs.latency_ms * 4


def _faults(fleet: SimFleet, batch_start: int, requests: int) -> None:
    """A third of the way in, haiku answers 6 calls with 429; from half to two thirds gemini-2.5-pro fails 40 %."""
    if batch_start == requests // 3 // 8 * 8:
        fleet.servers["anthropic"].knobs("claude-3-5-haiku-latest").burst_429(6)
    gemini_pro = fleet.servers["gemini"].knobs("gemini-2.5-pro")
    gemini_pro.error_rates = {"server": 0.4} if requests // 2 <= batch_start < requests * 2 // 3 else {}


async def record_demo_day(log_dir: Path, *, requests: int = 300, seed: int = 3) -> tuple[Path, GatewayConfig]:
    """Run the demo fleet and gateway for ``requests`` requests, 8 at a time, through ``_faults``. Returns the
    config directory used (the log is LOG_DIR/transactions.csv) and the config."""
    rng = random.Random(seed)
    fleet = SimFleet(seed=seed)
    await fleet.start("127.0.0.1")
    try:
        _shape_fleet(fleet)
        config_dir = write_config(Path(tempfile.mkdtemp(prefix="bkvy-replay-config-")), demo_raw_config(fleet))
        config = load_config(config_dir, {})
        settings = load_settings({}, log_dir=log_dir, transaction_logging=True)
        async with gateway(config, clock=MonotonicClock(), settings=settings) as client:
            for batch_start in range(0, requests, 8):
                _faults(fleet, batch_start, requests)
                batch = [rng.choice(_BODIES) for _ in range(min(8, requests - batch_start))]
                await asyncio.gather(
                    *(client.post(path, json={"client_id": "day", "messages": _MESSAGES, **b}) for path, b in batch)
                )
    finally:
        await fleet.stop()
    return config_dir, config
