"""The bandit shared through Redis (issue 18 §3): two replicas over one real redis-server learn together; Redis
down, each learns alone and no request fails. A FakeClock; the exchange is driven by calling ``sync``."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Mapping

import pytest

from bkvy.clock import FakeClock
from bkvy.core.routing.bandit import Pair, Posterior, discounted
from bkvy.core.shared.bandit import MAX_BATCH, SharedBandit
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


def _queue_updates(shared: SharedBandit, updates: list[tuple[Pair, float]]) -> None:
    for pair, reward in updates:
        shared._queued.append((ROUTE, pair, reward))


async def test_updates_queued_during_a_sync_of_a_full_queue_are_not_lost(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.8)
    async with replicas(config, fake_clock, redis_server.url, count=1, environ=ENVIRON) as (a,):
        adaptive, shared = services_of(a).adaptive, _shared(a)
        assert adaptive is not None
        start = dict(adaptive.book.routes[ROUTE])
        shared._queued = deque(maxlen=20)  # full below, as MAX_QUEUED would be
        first = [(FALLBACK_ARM, 1.0)] * 20
        during = [(PRIMARY_ARM, 0.0)] * 5
        _queue_updates(shared, first)
        exchange = shared._exchange
        calls: list[int] = []

        async def exchange_while_requests_finish(client, sent, routes):  # type: ignore[no-untyped-def]
            calls.append(len(sent))
            if len(calls) == 1:
                _queue_updates(shared, during)  # during the round trip, into the full queue
            return await exchange(client, sent, routes)

        shared._exchange = exchange_while_requests_finish  # type: ignore[method-assign]
        assert await shared.sync()
        assert list(shared._queued) == [(ROUTE, pair, reward) for pair, reward in during]  # kept for the next
        assert await shared.sync()
        assert not shared._queued and calls == [20, 5]
        expected = dict(start)
        for pair, reward in first + during:  # Redis saw each update once, in order
            expected = discounted(expected, pair, reward, 0.8)
        assert _flat(adaptive.book.routes[ROUTE]) == pytest.approx(_flat(expected))


async def test_a_backlog_is_sent_in_bounded_batches(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.9)
    async with replicas(config, fake_clock, redis_server.url, count=1, environ=ENVIRON) as (a,):
        adaptive, shared = services_of(a).adaptive, _shared(a)
        assert adaptive is not None
        start = dict(adaptive.book.routes[ROUTE])
        updates = [(PRIMARY_ARM if i % 3 else FALLBACK_ARM, (i % 5) / 4) for i in range(2 * MAX_BATCH + 7)]
        _queue_updates(shared, updates)
        exchange = shared._exchange
        calls: list[tuple[int, int]] = []

        async def counting(client, sent, routes):  # type: ignore[no-untyped-def]
            calls.append((len(sent), len(routes)))
            return await exchange(client, sent, routes)

        shared._exchange = counting  # type: ignore[method-assign]
        assert await shared.sync()
        assert calls == [(MAX_BATCH, 0), (MAX_BATCH, 0), (7, 1)]  # the route read back with the last
        assert not shared._queued
        expected = dict(start)
        for pair, reward in updates:
            expected = discounted(expected, pair, reward, 0.9)
        assert _flat(adaptive.book.routes[ROUTE]) == pytest.approx(_flat(expected))


async def test_redis_down_mid_backlog_keeps_the_unsent_in_front_in_order(
    fleet: SimFleet,
    fake_clock: FakeClock,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    config = adaptive_config(fleet, discount=0.9)
    async with replicas(config, fake_clock, redis_server.url, count=1, environ=ENVIRON) as (a,):
        shared = _shared(a)
        updates = [(PRIMARY_ARM, i / (MAX_BATCH + 10)) for i in range(MAX_BATCH + 10)]
        _queue_updates(shared, updates)
        exchange = shared._exchange

        async def down_after_the_first(client, sent, routes):  # type: ignore[no-untyped-def]
            if len(sent) < MAX_BATCH:
                _queue_updates(shared, [(FALLBACK_ARM, 1.0)])  # queued meanwhile
                raise ConnectionError("redis went away")
            return await exchange(client, sent, routes)

        shared._exchange = down_after_the_first  # type: ignore[method-assign]
        assert not await shared.sync()
        queued = [(pair, reward) for _, pair, reward in shared._queued]
        assert queued == updates[MAX_BATCH:] + [(FALLBACK_ARM, 1.0)]
