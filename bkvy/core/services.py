"""Every long-lived service of one gateway process, built and stopped together (STYLE: lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

from bkvy.core.clock import Clock
from bkvy.core.config import GatewayConfig
from bkvy.core.executor import Executor
from bkvy.core.latency import LatencyTracker
from bkvy.core.rate_limits import LaneKey, RateLimiter
from bkvy.core.settings import Settings
from bkvy.core.transport import AiohttpTransport, Transport


@dataclass
class Services:
    settings: Settings
    config: GatewayConfig
    clock: Clock
    transport: Transport
    limiter: RateLimiter
    latency: LatencyTracker
    executor: Executor
    _owns_transport: bool = False

    @classmethod
    async def start(cls, settings: Settings, config: GatewayConfig, *, clock: Clock,
                    transport: Transport | None = None) -> Services:
        owns_transport = transport is None
        if transport is None:
            aiohttp_transport = AiohttpTransport()
            await aiohttp_transport.start()
            transport = aiohttp_transport
        limiter = _configured_limiter(config, clock)
        latency = LatencyTracker()
        executor = Executor(config=config, clock=clock, transport=transport, limiter=limiter, latency=latency,
                            soft_timeout_seconds=settings.request_soft_timeout_seconds,
                            hard_timeout_seconds=settings.request_hard_timeout_seconds)
        return cls(settings, config, clock, transport, limiter, latency, executor, owns_transport)

    async def stop(self) -> None:
        if self._owns_transport and isinstance(self.transport, AiohttpTransport):
            await self.transport.close()


def _configured_limiter(config: GatewayConfig, clock: Clock) -> RateLimiter:
    limiter = RateLimiter(clock)
    for provider_name, provider in config.providers.items():
        for key_id, key in provider.keys.items():
            for model_name in provider.models:
                limits = key.limits_for(model_name)
                limiter.configure(LaneKey(provider_name, key_id, model_name), rpm=limits.rpm, rpd=limits.rpd)
    return limiter
