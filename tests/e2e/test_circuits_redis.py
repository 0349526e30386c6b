"""Two replicas (two apps in this process, each with its own services, LOG_DIR and Redis connections) over one
real redis-server and the simulated fleet (issue 17, test 2, and "reload reaches everyone").

"Within 1 s" is asserted on events: a listener on replica B's registry (or B's config fanout) sets an
``asyncio.Event`` that the test awaits with a 1 s bound; waits on the injected clock (the bus's reconnection
backoff) are driven by advancing the FakeClock."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from redis.asyncio import Redis

from bkvy.api.services import Services
from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitKey, CircuitSnapshot, CircuitState
from bkvy.core.config.fingerprint import config_hash
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import load_settings
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.fault_driver import (
    PRIMARY,
    PRIMARY_KEY,
    PRIMARY_KEY_ID,
    PRIMARY_MODEL,
    FixedJitter,
    scenario_body,
    two_provider_config,
)
from tests.e2e.replicas import replicas, services_of
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ADMIN = {"X-Admin-API-Key": "admin-secret"}
INTERVAL = 10.0
KEY = CircuitKey(PRIMARY, PRIMARY_MODEL, PRIMARY_KEY_ID)
PROPAGATION_SECONDS = 1.0  # the bound for a change to reach every replica
RESET = f"/circuits/reset/{PRIMARY}/{PRIMARY_MODEL}/{PRIMARY_KEY_ID}"


@asynccontextmanager
async def _replicas(
    config: GatewayConfig, clock: FakeClock, redis_url: str, count: int = 2
) -> AsyncIterator[list[httpx.AsyncClient]]:
    environ = {"BKVY_ADMIN_API_KEY": "admin-secret", "SUMMARY_STATS": "false"}
    rng = FixedJitter(0.5)
    async with replicas(
        config, clock, redis_url, count=count, environ=environ, rng=rng, health_probe_interval_seconds=INTERVAL
    ) as clients:
        for client in clients:
            await _subscribed(services_of(client))
        yield clients


async def _subscribed(services: Services) -> None:
    """The bus listens (it subscribes in a task of its own after start-up)."""
    assert services.sharing is not None
    async with asyncio.timeout(5.0):
        while not services.sharing.bus.is_subscribed:
            await asyncio.sleep(0.005)


def _when(services: Services, is_state: Callable[[CircuitSnapshot], bool]) -> asyncio.Event:
    """An event set when the primary's circuit on ``services`` takes a state that ``is_state`` accepts."""
    event = asyncio.Event()
    assert services.circuits is not None

    def check(snapshot: CircuitSnapshot) -> None:
        if snapshot.key == KEY and is_state(snapshot):
            event.set()

    services.circuits.on_change(check)
    return event


def _is_open(snapshot: CircuitSnapshot) -> bool:
    return snapshot.state is CircuitState.OPEN


def _is_closed(snapshot: CircuitSnapshot) -> bool:
    return snapshot.state is CircuitState.CLOSED


def _state(services: Services) -> CircuitState:
    assert services.circuits is not None
    return services.circuits.snapshot(KEY).state


async def _open_primary(client: httpx.AsyncClient, fleet: SimFleet) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).down = True
    for _ in range(10):
        response = await client.post("/llm/scenario", json=scenario_body())
        assert response.status_code == 200, response.text  # the fallback serves meanwhile
        if _state(services_of(client)) is CircuitState.OPEN:
            return
    raise AssertionError("the primary's circuit never opened")


async def test_opening_on_a_reaches_b_which_stops_sending_and_a_reset_on_b_closes_it_on_a(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(two_provider_config(fleet), fake_clock, redis_server.url) as (a, b):
        opened_on_b = _when(services_of(b), _is_open)
        await _open_primary(a, fleet)
        await asyncio.wait_for(opened_on_b.wait(), PROPAGATION_SECONDS)
        assert (await b.get(f"/circuits/{PRIMARY}/{PRIMARY_MODEL}/{PRIMARY_KEY_ID}")).json()["state"] == "open"
        shared_b = services_of(b).sharing.circuits  # type: ignore[union-attr]
        assert shared_b is not None and shared_b.writes + shared_b.pending_writes == 0  # applied, not echoed
        calls_before = fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY)
        for _ in range(5):
            response = await b.post("/llm/scenario", json=scenario_body())
            assert response.status_code == 200, response.text
        assert fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY) == calls_before  # B skips it

        closed_on_a = _when(services_of(a), _is_closed)
        assert (await b.post(RESET, headers=ADMIN)).json()["reset"] is True
        await asyncio.wait_for(closed_on_a.wait(), PROPAGATION_SECONDS)
        assert _state(services_of(a)) is CircuitState.CLOSED


async def test_open_circuit_survives_a_restart_of_every_replica(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = two_provider_config(fleet)
    async with _replicas(config, fake_clock, redis_server.url) as (a, b):
        opened_on_b = _when(services_of(b), _is_open)
        await _open_primary(a, fleet)
        await asyncio.wait_for(opened_on_b.wait(), PROPAGATION_SECONDS)
    async with _replicas(config, fake_clock, redis_server.url) as replicas:  # new processes, new LOG_DIRs
        for client in replicas:
            assert _state(services_of(client)) is CircuitState.OPEN
        calls_before = fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY)
        assert (await replicas[1].post("/llm/scenario", json=scenario_body())).status_code == 200
        assert fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY) == calls_before


async def test_only_one_of_two_replicas_probes_an_open_circuit_per_interval(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(two_provider_config(fleet), fake_clock, redis_server.url) as (a, b):
        opened_on_b = _when(services_of(b), _is_open)
        await _open_primary(a, fleet)
        await asyncio.wait_for(opened_on_b.wait(), PROPAGATION_SECONDS)
        probers = [services_of(client).prober for client in (a, b)]
        calls_before = fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY)
        for interval in (1, 2):
            fake_clock.advance(INTERVAL)
            await _probes_done(a, b)
            assert sum(p.probes_sent for p in probers if p is not None) == interval  # one replica per interval
        assert fleet.servers["openai"].stats.calls_for_key(PRIMARY_KEY) == calls_before + 2


async def _probes_done(*clients: httpx.AsyncClient) -> None:
    """Both probers have taken the due circuit (probed it, or lost the lock) and have nothing in flight."""
    async with asyncio.timeout(5.0):
        while True:
            await asyncio.sleep(0.005)
            services = [services_of(client) for client in clients]
            if all(s.circuits is not None and not s.circuits.due_for_probe() for s in services) and not any(
                s.prober is not None and s.prober.in_flight for s in services
            ):
                return


async def test_redis_restarted_empty_gets_the_state_the_replicas_hold(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = two_provider_config(fleet)
    async with _replicas(config, fake_clock, redis_server.url) as (a, b):
        opened_on_b = _when(services_of(b), _is_open)
        await _open_primary(a, fleet)
        await asyncio.wait_for(opened_on_b.wait(), PROPAGATION_SECONDS)
        redis_server.restart()  # SIGKILL, and back without its data (no persistence in tests)
        buses = [s.sharing.bus for s in map(services_of, (a, b)) if s.sharing is not None]
        async with asyncio.timeout(10.0):
            while not all(bus.subscriptions >= 2 for bus in buses):  # resynced: backoff on the fake clock
                fake_clock.advance(0.5)
                await asyncio.sleep(0.01)
            while not await _stored_circuits(redis_server):  # written by the writer task, which waits for the
                if _is_away(a, b):  # heartbeat (fake clock) when a pooled connection from before failed
                    fake_clock.advance(0.5)
                await asyncio.sleep(0.01)
        async with _replicas(config, fake_clock, redis_server.url, count=1) as (newcomer,):
            assert _state(services_of(newcomer)) is CircuitState.OPEN  # the replicas stored it again


async def _stored_circuits(redis_server: RedisServer) -> list[bytes]:  # noqa: F811
    """The circuit hashes in Redis, read on a connection of the test's own (a replica's pool may hold dead ones)."""
    redis = Redis.from_url(redis_server.url)
    try:
        return list(await redis.keys("bkvy:circuit:*"))
    finally:
        await redis.aclose()


async def test_changes_made_while_redis_was_down_are_written_on_resync_unless_newer_ones_exist(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with _replicas(two_provider_config(fleet), fake_clock, redis_server.url) as (a, b):
        opened_on_b, closed_on_a = _when(services_of(b), _is_open), _when(services_of(a), _is_closed)
        await _open_primary(a, fleet)
        await asyncio.wait_for(opened_on_b.wait(), PROPAGATION_SECONDS)
        assert (await b.post(RESET, headers=ADMIN)).json()["reset"] is True
        await asyncio.wait_for(closed_on_a.wait(), PROPAGATION_SECONDS)  # both hold the closed state, stored
        assert services_of(a).shared is not None
        await services_of(a).shared.client.save()  # a Redis that keeps its data across the restart
        redis_server.kill()
        opened_on_b.clear()
        await _open_primary(a, fleet)  # while down: only A knows
        redis_server.start()
        assert await _advance_until(fake_clock, opened_on_b, a, b) < INTERVAL  # from the resync, not a probe
        assert _state(services_of(b)) is CircuitState.OPEN


async def _advance_until(clock: FakeClock, event: asyncio.Event, *clients: httpx.AsyncClient) -> float:
    """The buses and shared states reconnect with a backoff on the injected clock: move it on while one of them is
    away, until ``event`` is set. Returns the fake seconds it took: the backoffs', whatever the machine's speed
    (the rest of the way, reading, writing and publishing, is real I/O and takes no fake time)."""
    advanced = 0.0
    async with asyncio.timeout(10.0):
        while not event.is_set():
            if _is_away(*clients):
                clock.advance(0.5)
                advanced += 0.5
            await asyncio.sleep(0.01)
    return advanced


def _is_away(*clients: httpx.AsyncClient) -> bool:
    """Whether a replica waits for a reconnection (its bus's or its shared state's backoff, on the fake clock)."""
    services = [services_of(client) for client in clients]
    return not all(s.sharing is not None and s.sharing.bus.is_subscribed and s.shared.is_up for s in services)


def _rotated(config: GatewayConfig) -> GatewayConfig:
    """``config`` with the primary's key value replaced: another config hash."""
    primary = config.providers[PRIMARY]
    key = primary.keys[PRIMARY_KEY_ID].model_copy(update={"api_key": "sk-sim-rotated"})
    provider = primary.model_copy(update={"keys": {**primary.keys, PRIMARY_KEY_ID: key}})
    return config.model_copy(update={"providers": {**config.providers, PRIMARY: provider}})


async def test_a_reload_on_a_makes_b_reload_its_own_files_without_restarting(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    before = two_provider_config(fleet)
    after = _rotated(before)
    async with _replicas(before, fake_clock, redis_server.url) as (a, b):
        services_a, services_b = services_of(a), services_of(b)
        services_a.config_source = services_b.config_source = lambda: after
        assert services_b.sharing is not None and services_a.sharing is not None
        response = await a.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        await asyncio.wait_for(services_b.sharing.fanout.handled.wait(), PROPAGATION_SECONDS)
        assert services_b.config_hash == services_a.config_hash == config_hash(after) != config_hash(before)
        assert services_of(b) is services_b and services_b.sharing.fanout.reloads_from_fleet == 1
        assert services_a.sharing.fanout.reloads_from_fleet == 0
        assert services_a.shared is not None  # B's reload announced nothing: one announcement, no loop
        assert int(await services_a.shared.client.get("bkvy:config:version")) == 1
        assert (await b.get("/health")).json()["config_hash"] == config_hash(after)


async def test_a_replica_whose_files_differ_keeps_its_own_config_hash(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    before = two_provider_config(fleet)
    after = _rotated(before)
    async with _replicas(before, fake_clock, redis_server.url) as (a, b):
        services_of(a).config_source = lambda: after
        services_of(b).config_source = lambda: before  # B's files were not updated
        assert await services_of(a).reload() == [f"{PRIMARY}/{PRIMARY_KEY_ID}"]
        sharing_b = services_of(b).sharing
        assert sharing_b is not None
        await asyncio.wait_for(sharing_b.fanout.handled.wait(), PROPAGATION_SECONDS)
        assert services_of(b).config_hash == config_hash(before) != services_of(a).config_hash


async def test_an_embedded_open_circuit_is_open_on_the_replicas_after_migrate_to_redis(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    from pathlib import Path

    from bkvy.api.services import CIRCUIT_STATE_FILE
    from bkvy.core.shared.migrate import migrate_circuits

    config = two_provider_config(fleet)
    log_dir = Path(tempfile.mkdtemp(prefix="bkvy-test-"))
    embedded = load_settings({"SUMMARY_STATS": "false"}, log_dir=log_dir, health_probe_interval_seconds=INTERVAL)
    async with gateway(config, clock=fake_clock, settings=embedded, rng=FixedJitter(0.5)) as client:  # type: ignore[arg-type]
        await _open_primary(client, fleet)
    assert (log_dir / CIRCUIT_STATE_FILE).exists()  # written at stop, as in the embedded mode
    redis = Redis.from_url(redis_server.url)
    try:
        state_file = log_dir / CIRCUIT_STATE_FILE
        found, copied = await migrate_circuits(redis, prefix="bkvy:", state_file=state_file)
        assert found >= 1 and copied == found
        assert await migrate_circuits(redis, prefix="bkvy:", state_file=state_file) == (found, 0)  # idempotent
    finally:
        await redis.aclose()
    async with _replicas(config, fake_clock, redis_server.url) as replicas:
        for replica in replicas:
            assert _state(services_of(replica)) is CircuitState.OPEN
