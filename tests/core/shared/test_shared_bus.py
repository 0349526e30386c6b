"""The change bus and the shared circuit states over a real redis-server: no echo of a process's own messages,
malformed messages dropped, newer versions win, and the probe lock follows the caller's clock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitKey, CircuitSettings, CircuitState
from bkvy.core.shared.bus import SharedBus
from bkvy.core.shared.circuits import SharedCircuits
from bkvy.core.shared.state import SharedState
from bkvy.models.types import ErrorClass
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

KEY = CircuitKey("openai", "gpt-4o-mini", "k1")


class _Process:
    """One process's view: its SharedState, bus, registry and shared circuits."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.clock = clock
        self.shared = SharedState(url, prefix="t:", timeout_seconds=1.0, clock=clock)
        self.bus = SharedBus(self.shared, url, clock=clock)
        self.registry = CircuitBreakerRegistry(CircuitSettings(), clock)
        self.circuits = SharedCircuits(self.registry, self.shared, self.bus, clock)

    async def start(self) -> None:
        await self.shared.start()
        self.circuits.start()
        self.bus.start()
        async with asyncio.timeout(5.0):
            while not self.bus.is_subscribed:
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        await self.circuits.stop()
        await self.bus.stop()
        await self.shared.stop()


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[_Process, _Process]]:  # noqa: F811
    clock = FakeClock()
    processes = (_Process(redis_server.url, clock), _Process(redis_server.url, clock))
    for process in processes:
        await process.start()
    try:
        yield processes
    finally:
        for process in processes:
            await process.stop()


async def test_a_message_reaches_other_processes_and_never_its_sender(pair: tuple[_Process, _Process]) -> None:
    sender, receiver = pair
    received: dict[str, list[dict[str, Any]]] = {"sender": [], "receiver": []}
    arrived = asyncio.Event()
    sender.bus.subscribe("news", received["sender"].append)

    def on_receiver(data: dict[str, Any]) -> None:
        received["receiver"].append(data)
        arrived.set()

    receiver.bus.subscribe("news", on_receiver)
    assert await sender.bus.publish("news", {"n": 1})
    await asyncio.wait_for(arrived.wait(), 1.0)
    assert received == {"sender": [], "receiver": [{"n": 1}]}


async def test_a_malformed_message_is_dropped_with_a_log_line(
    pair: tuple[_Process, _Process], caplog: pytest.LogCaptureFixture
) -> None:
    sender, receiver = pair
    arrived = asyncio.Event()
    receiver.bus.subscribe("news", lambda _data: arrived.set())
    with caplog.at_level(logging.WARNING, logger="bkvy.core.shared.bus"):
        await sender.shared.client.publish(sender.bus.channel_name("news"), b"not json")
        assert await sender.bus.publish("news", {"n": 2})  # published after: arrives after the bad one
        await asyncio.wait_for(arrived.wait(), 1.0)
    assert [record.getMessage() for record in caplog.records] == ["shared_bus_message_malformed"]


async def test_an_older_version_never_replaces_a_newer_one(pair: tuple[_Process, _Process]) -> None:
    writer, reader = pair
    opened = asyncio.Event()
    reader.registry.on_change(lambda snapshot: opened.set() if snapshot.state is CircuitState.OPEN else None)
    writer.registry.record_failure(KEY, ErrorClass.RATE_LIMITED, 30.0)
    await asyncio.wait_for(opened.wait(), 1.0)
    stale = writer.registry.export_circuit(KEY) | {"state": "closed", "open_reason": None, "open_until_wall": None}
    message = writer.bus.envelope({"v": 1, "s": stale})  # version 1 is the opening itself: not newer
    await writer.shared.client.publish(writer.bus.channel_name("circuits"), message)
    newer = asyncio.Event()
    reader.bus.subscribe("circuits", lambda _data: newer.set())  # after the circuits' own callback
    await writer.shared.client.publish(writer.bus.channel_name("circuits"), writer.bus.envelope({"v": 0, "s": {}}))
    await asyncio.wait_for(newer.wait(), 1.0)
    assert reader.registry.snapshot(KEY).state is CircuitState.OPEN and reader.circuits.applied == 1
    stored = await writer.shared.client.hget('t:circuit:["openai","gpt-4o-mini","k1"]', "state")
    assert json.loads(stored)["state"] == "open"


async def test_a_change_whose_write_failed_is_written_when_redis_answers_again_though_the_bus_stayed_up(
    pair: tuple[_Process, _Process],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    writer, reader = pair
    opened = asyncio.Event()
    reader.registry.on_change(lambda snapshot: opened.set() if snapshot.state is CircuitState.OPEN else None)
    admin = Redis.from_url(redis_server.url)
    try:  # the command connections drop (a timeout, an outage's stale pool); the subscribers stay connected
        await admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        await admin.aclose()
    writer.registry.record_failure(KEY, ErrorClass.RATE_LIMITED, 30.0)
    async with asyncio.timeout(5.0):
        while writer.shared.is_up or writer.circuits.pending_writes:  # the write failed: the change stays local
            await asyncio.sleep(0.005)
        assert writer.bus.is_subscribed and reader.bus.is_subscribed  # no resubscription, hence no bus resync
        while not opened.is_set():  # the heartbeat finds Redis again on the fake clock
            writer.clock.advance(0.5)
            await asyncio.sleep(0.01)
    assert reader.registry.snapshot(KEY).state is CircuitState.OPEN


async def test_the_probe_lock_is_one_holder_per_interval_of_the_callers_clock(redis_server: RedisServer) -> None:  # noqa: F811
    clock = FakeClock()
    first, second = _Process(redis_server.url, clock), _Process(redis_server.url, clock)
    for process in (first, second):
        assert await process.shared.beat()  # up, without the heartbeat task: nothing here waits on the clock
    try:
        assert await first.circuits.claim_probe(KEY, 10.0)
        assert not await second.circuits.claim_probe(KEY, 10.0)
        assert not await first.circuits.claim_probe(KEY, 10.0)  # once per interval, whoever asks
        clock.advance(10.0)
        assert await second.circuits.claim_probe(KEY, 10.0)
        redis_server.kill()
        assert await first.circuits.claim_probe(KEY, 10.0)  # Redis down: each probes on its own, as embedded
    finally:
        for process in (first, second):
            await process.bus.stop()
            await process.shared.stop()


def test_a_shared_state_for_another_key_value_is_ignored() -> None:
    clock = FakeClock()
    source, target = (CircuitBreakerRegistry(CircuitSettings(), clock) for _ in range(2))
    source.reconcile_keys({("openai", "k1"): "fingerprint-a"})
    target.reconcile_keys({("openai", "k1"): "fingerprint-b"})  # the same key id, another value
    source.record_failure(KEY, ErrorClass.AUTH)
    assert target.apply_shared(source.export_circuit(KEY)) is None
    assert target.snapshot(KEY).state is CircuitState.CLOSED
    target.reconcile_keys({("openai", "k1"): "fingerprint-a"})
    assert target.apply_shared(source.export_circuit(KEY)) == KEY
    assert target.snapshot(KEY).state is CircuitState.OPEN and target.snapshot(KEY).open_reason is ErrorClass.AUTH
