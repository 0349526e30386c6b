"""The bandit shared through Redis (issue 18 §3): two replicas over one real redis-server learn together; Redis
down, each learns alone and no request fails. A FakeClock; the exchange is driven by calling ``sync``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

import pytest

from bkvy.clock import FakeClock
from bkvy.core.routing.bandit import Pair, Posterior, discounted
from bkvy.core.shared.bandit import SharedBandit
from bkvy.sim import SimFleet
from tests.e2e.adaptive_fleet import FALLBACK_ARM, PRIMARY_ARM, ROUTE, adaptive_config, first_choices
from tests.e2e.fault_driver import PRIMARY, PRIMARY_MODEL
from tests.e2e.replicas import replicas, services_of
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

ENVIRON = {"CIRCUIT_BREAKER_ENABLED": "false", "SUMMARY_STATS": "false"}


def _flat(arms: Mapping[Pair, Posterior]) -> dict[tuple[str, str, str], float]:
    """Posteriors as plain numbers, for ``pytest.approx`` (Lua prints numbers with 14 significant digits)."""
    return {(*pair, name): value for pair, posterior in arms.items() for name, value in posterior._asdict().items()}


def _shared(client) -> SharedBandit:  # type: ignore[no-untyped-def]
    shared = services_of(client).shared_bandit
    assert shared is not None
    return shared


async def test_two_replicas_learn_together(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.9)
    fleet.servers["openai"].knobs(PRIMARY_MODEL).error_rates = {"server": 1.0}
    async with replicas(config, fake_clock, redis_server.url, environ=ENVIRON, rng=random.Random(5)) as (a, b):
        await first_choices(a, 12)  # only replica a sees the primary fail
        assert await _shared(a).sync() and await _shared(b).sync()
        book_a, book_b = services_of(a).adaptive.book, services_of(b).adaptive.book  # type: ignore[union-attr]
        assert _flat(book_b.routes[ROUTE]) == pytest.approx(_flat(book_a.routes[ROUTE]))
        primary = book_b.arm_view(ROUTE, PRIMARY_ARM)
        assert primary is not None and primary.failures > 0  # b learned a's failures without serving any
        firsts = await first_choices(b, 10)
        assert firsts.count(PRIMARY) <= 3
        # b's updates reach a the same way, each applied once (Lua: discount, then reward)
        before = dict(book_b.routes[ROUTE])
        await first_choices(b, 1)
        assert await _shared(b).sync() and await _shared(a).sync()
        assert _flat(book_a.routes[ROUTE]) == pytest.approx(_flat(book_b.routes[ROUTE]))
        assert _flat(book_a.routes[ROUTE]) != pytest.approx(_flat(before))


async def test_the_lua_update_is_the_local_rule(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.8)
    async with replicas(config, fake_clock, redis_server.url, count=1, environ=ENVIRON) as (a,):
        adaptive, shared = services_of(a).adaptive, _shared(a)
        assert adaptive is not None
        expected = dict(adaptive.book.routes[ROUTE])
        for pair, reward in [(PRIMARY_ARM, 0.25), (FALLBACK_ARM, 1.0), (PRIMARY_ARM, 0.0)]:
            adaptive.book.update(ROUTE, pair, reward)
            shared._queued.append((ROUTE, pair, reward))
            expected = discounted(expected, pair, reward, 0.8)
        assert await shared.sync()
        assert _flat(adaptive.book.routes[ROUTE]) == pytest.approx(_flat(expected))


async def test_redis_down_each_learns_alone_and_no_request_fails(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.9)
    async with replicas(config, fake_clock, redis_server.url, count=1, environ=ENVIRON, rng=random.Random(2)) as (a,):
        redis_server.kill()
        fleet.servers["openai"].knobs(PRIMARY_MODEL).error_rates = {"server": 1.0}
        firsts = await first_choices(a, 30)  # every one answered (first_choices asserts 200)
        assert not await _shared(a).sync()
        assert firsts[15:].count(PRIMARY) <= 3  # learned locally
        queued = len(_shared(a)._queued)
        assert queued >= 30  # kept for Redis's return
        redis_server.start()
        assert await services_of(a).shared.beat()  # type: ignore[union-attr]
        assert await _shared(a).sync()
        assert not _shared(a)._queued
        primary = services_of(a).adaptive.arm_view(ROUTE, PRIMARY_ARM)  # type: ignore[union-attr]
        assert primary is not None and primary.failures > 0.5


async def test_replicas_exchange_every_sync_interval_in_the_background(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, sync_interval_seconds=5.0)
    async with replicas(config, fake_clock, redis_server.url, environ=ENVIRON) as (a, b):
        await first_choices(a, 3)
        book_b = services_of(b).adaptive.book  # type: ignore[union-attr]
        assert sum(p.evidence for p in book_b.routes[ROUTE].values()) == 0  # nothing exchanged yet
        fake_clock.advance(4.0)
        await asyncio.sleep(0.05)
        assert sum(p.evidence for p in book_b.routes[ROUTE].values()) == 0  # not before the interval
        async with asyncio.timeout(5.0):  # real seconds: a bound, never reached when it works
            while sum(p.evidence for p in book_b.routes[ROUTE].values()) == 0:
                fake_clock.advance(1.0)
                await asyncio.sleep(0.01)
