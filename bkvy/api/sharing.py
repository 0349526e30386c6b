"""With REDIS_URL: the change bus, the shared circuit states and the config version (issue 17; docs/SCALING.md,
"Circuits and reload").

A successful reload (SIGHUP, ``POST /admin/reload``) on any worker or replica publishes the new config hash with
a fleet-wide counter on the bus's ``config`` channel. Every other process, on receiving it, reloads its own files
with the same validator (a serving worker is never restarted) and does not publish again, so there is no loop.
A process whose files give another hash keeps its own config and logs both hashes (``/health`` shows its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bkvy.clock import Clock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry
from bkvy.core.shared.bus import SharedBus
from bkvy.core.shared.circuits import SharedCircuits
from bkvy.core.shared.state import SharedState, SharedStateDown

__all__ = ["CONFIG_CHANNEL", "ConfigFanout", "Sharing", "start_sharing"]

log = logging.getLogger(__name__)

CONFIG_CHANNEL = "config"
ReloadFn = Callable[[], Awaitable[bool]]  # reload without announcing; False when the files were refused


class ConfigFanout:
    def __init__(self, shared: SharedState, bus: SharedBus, reload: ReloadFn, config_hash: Callable[[], str]) -> None:
        self._shared = shared
        self._bus = bus
        self._reload = reload
        self._config_hash = config_hash
        self._lock = asyncio.Lock()
        self.handled = asyncio.Event()  # set after each announcement from elsewhere is acted on (tests wait on it)
        self.reloads_from_fleet = 0

    def start(self) -> None:
        self._bus.subscribe(CONFIG_CHANNEL, self._on_message)

    async def announce(self, config_hash: str) -> bool:
        """Tell every other process to reload; False when Redis is down (they keep their config)."""
        counter_key = f"{self._shared.prefix}config:version"
        try:
            version = int(await self._shared.call(lambda client: client.incr(counter_key)))
        except SharedStateDown:
            return False
        is_sent = await self._bus.publish(CONFIG_CHANNEL, {"config_hash": config_hash, "version": version})
        log.info("config_announced", extra={"config_hash": config_hash, "version": version, "is_sent": is_sent})
        return is_sent

    async def _on_message(self, data: dict[str, Any]) -> None:
        announced, version = str(data.get("config_hash", "")), data.get("version")
        try:
            async with self._lock:  # announcements in a burst: one reload after the other
                if announced and announced == self._config_hash():
                    return
                is_reloaded = await self._reload()
                self.reloads_from_fleet += is_reloaded
                own = self._config_hash()
                if own != announced:
                    log.warning(
                        "config_differs_from_fleet",
                        extra={"config_hash": own, "announced_hash": announced, "version": version},
                    )
        finally:
            self.handled.set()


class Sharing:
    """The parts started over one ``SharedState``; ``stop`` stops them (before the state itself)."""

    def __init__(self, bus: SharedBus, circuits: SharedCircuits | None, fanout: ConfigFanout) -> None:
        self.bus = bus
        self.circuits = circuits
        self.fanout = fanout

    async def stop(self) -> None:
        if self.circuits is not None:
            with contextlib.suppress(SharedStateDown):
                await self.circuits.stop()
        await self.bus.stop()


async def start_sharing(
    shared: SharedState,
    url: str,
    *,
    clock: Clock,
    registry: CircuitBreakerRegistry | None,
    reload: ReloadFn,
    config_hash: Callable[[], str],
) -> Sharing:
    """Load the stored circuit states (before serving), then listen to the other processes."""
    bus = SharedBus(shared, url, clock=clock)
    circuits = None
    if registry is not None:
        circuits = SharedCircuits(registry, shared, bus, clock)
        loaded = await circuits.load()
        log.info("shared_circuits_loaded", extra={"circuits": loaded})
        circuits.start()
    fanout = ConfigFanout(shared, bus, reload, config_hash)
    fanout.start()
    bus.start()
    return Sharing(bus, circuits, fanout)
