"""Statistics of the whole fleet (issue 17): each process publishes its own totals to Redis in the background;
a read on any process merges everyone's (docs/SCALING.md, "Statistics, budgets and logs").

Keys (``<prefix>`` = BKVY_REDIS_PREFIX; ``<id>`` = the process's ``stats_id``, ``utils.process_slot``)::

    <prefix>stats:ids            sorted set: stats ids, scored by their last publish (unix s)
    <prefix>stats:days           sorted set: UTC days with totals, scored by the day's start (unix s)
    <prefix>stats:day:<day>      hash: stats id -> that process's ``DayTotals`` of the day (JSON); kept 40 days
    <prefix>stats:live:<id>      hash: "m:<index>" / "h:<index>" / "d:<index>" -> one dashboard bucket (JSON)

A process publishes only what changed since its last publish (the day's totals, usually one to three live
buckets), at most every ``interval_seconds``, in one pipelined round trip; never on the request path. Its totals
are whole, not increments, so a lost or repeated publish changes nothing, and a stopped process's totals stay
(they are requests that happened). A read takes two round trips and merges others' totals with this process's
fresh in-memory ones; Redis down: this process's figures alone, marked partial.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bkvy.clock import Clock
from bkvy.core.shared.state import SharedState, SharedStateDown, raise_if_stopping, stop_task
from bkvy.utils.daily_stats import DailyStats
from bkvy.utils.day_totals import DayTotals
from bkvy.utils.live_stats import DAY_SECONDS, LiveStats

__all__ = ["SHARED_DAYS", "FleetStats", "FleetView"]

log = logging.getLogger(__name__)

SHARED_DAYS = 40  # days of daily totals kept in Redis (the local file keeps every day)
_LIVE_KEEP_SECONDS = 367 * DAY_SECONDS  # the longest live bucket series (days) plus a day
_BAD_SNAPSHOT = (ValueError, TypeError, KeyError, AttributeError)
_BULK_TIMEOUT_SECONDS = 2.0  # a publish or a merge (off the request path)
_DAYS_PER_PUBLISH = 8  # day totals per publish: tens of KB each
_BUCKETS_PER_PUBLISH = 240  # dashboard buckets per publish: 1-3 KB each
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FleetView:
    replicas: int  # processes whose totals were merged, this one included
    is_partial: bool  # Redis could not be read: this process's figures only

    def fields(self) -> dict[str, Any]:
        return {"replicas": self.replicas, "partial": self.is_partial}


class FleetStats:
    def __init__(
        self,
        shared: SharedState,
        *,
        stats_id: str,
        clock: Clock,
        daily: DailyStats | None,
        live: LiveStats | None,
        interval_seconds: float = 1.0,
    ) -> None:
        self._shared = shared
        self._id = stats_id
        self._clock = clock
        self._daily = daily
        self._live = live
        self._interval_seconds = interval_seconds
        self._published_versions: dict[str, int] = {}  # day -> version last published
        self._unpublished_live: dict[str, DayTotals] = {}
        self._evicted_live: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        if live is not None:
            live.track_changes()
        shared.on_change(self._on_shared_change)

    def _on_shared_change(self, is_up: bool) -> None:
        # Redis back (perhaps restarted empty): publish every kept day whole again; idempotent if it was not
        if is_up:
            self._published_versions.clear()

    def _key(self, *parts: str) -> str:
        return self._shared.prefix + "stats:" + ":".join(parts)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bkvy-fleet-stats")

    async def stop(self) -> None:
        """Stop the loop and publish what is left (a clean shutdown's totals reach the fleet)."""
        await stop_task(self._task)
        self._task = None
        await self.sync()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._interval_seconds)
            await self.sync()

    async def sync(self) -> bool:
        """Publish what changed since the last publish, in one round trip. False when Redis is down (it is
        published later). Never raises on Redis trouble."""
        days = self._daily.changed_days(self._published_versions) if self._daily is not None else {}
        oldest_kept = self._clock.wall() - SHARED_DAYS * DAY_SECONDS
        for day in [day for day in days if not _is_recent_day(day, oldest_kept)]:  # the file's alone
            self._published_versions[day] = days.pop(day)[0]
        if self._live is not None:
            changed, evicted = self._live.take_changes()
            self._unpublished_live.update(changed)
            self._evicted_live.update(evicted)
            self._evicted_live.difference_update(changed)
        if not days and not self._unpublished_live and not self._evicted_live:
            return True
        # at most a batch per round trip (a start-up's 40 days, a backlog after an outage): the rest next time
        batch_days = sorted(days, reverse=True)[:_DAYS_PER_PUBLISH]
        day_texts = {day: (days[day][0], _text(days[day][1])) for day in batch_days}
        live_texts = {name: _text(bucket) for name, bucket in _first(self._unpublished_live, _BUCKETS_PER_PUBLISH)}
        evicted = sorted(self._evicted_live)[:_BUCKETS_PER_PUBLISH]
        try:
            await self._bulk(lambda client: self._publish(client, day_texts, live_texts, evicted))
        except SharedStateDown:
            return False
        self._published_versions.update({day: version for day, (version, _) in day_texts.items()})
        for name in live_texts:
            self._unpublished_live.pop(name, None)
        self._evicted_live.difference_update(evicted)
        return True

    async def _bulk(self, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """``operation(client)`` bounded by ``_BULK_TIMEOUT_SECONDS``, not REDIS_TIMEOUT_MS: a publish or a merge
        moves up to megabytes, off the request path; its failure is only this one's (no fleet-wide fallback:
        the heartbeat judges whether Redis is down). Raises SharedStateDown."""
        if not self._shared.is_up:
            raise SharedStateDown(self._shared.down_reason)
        try:
            async with asyncio.timeout(_BULK_TIMEOUT_SECONDS):  # real I/O: asyncio's timer, not the clock
                result = await operation(self._shared.client)
        except (RedisError, OSError, TimeoutError) as error:
            raise_if_stopping()
            log.warning("fleet_stats_redis_failed", extra={"error": type(error).__name__})
            raise SharedStateDown(type(error).__name__) from None
        raise_if_stopping()
        return result

    async def _publish(
        self, client: Redis, day_texts: dict[str, tuple[int, str]], live_texts: dict[str, str], evicted: list[str]
    ) -> None:
        now_wall = self._clock.wall()
        pipe = client.pipeline(transaction=False)
        pipe.zadd(self._key("ids"), {self._id: now_wall})
        pipe.zremrangebyscore(self._key("ids"), "-inf", now_wall - _LIVE_KEEP_SECONDS)
        for day, (_, text) in day_texts.items():
            pipe.hset(self._key("day", day), self._id, text)
            # relative to our clock's wall (not EXPIREAT): a test's fake clock and Redis's agree on the span
            keep_seconds = _day_start(day) + (SHARED_DAYS + 1) * DAY_SECONDS - now_wall
            pipe.expire(self._key("day", day), max(60, int(keep_seconds)))
            pipe.zadd(self._key("days"), {day: _day_start(day)})
        if day_texts:
            pipe.zremrangebyscore(self._key("days"), "-inf", now_wall - (SHARED_DAYS + 1) * DAY_SECONDS)
        live_key = self._key("live", self._id)
        if live_texts:
            pipe.hset(live_key, mapping=dict[Any, Any](live_texts))
        if evicted:
            pipe.hdel(live_key, *evicted)
        pipe.expire(live_key, int(_LIVE_KEEP_SECONDS))
        await pipe.execute()

    # --- reading -------------------------------------------------------------------------------------

    async def daily_view(self) -> tuple[DailyStats, FleetView]:
        """Every process's daily totals merged (the last ``SHARED_DAYS`` days; older days: this process's)."""
        assert self._daily is not None
        daily = self._daily
        try:
            raw = await self._bulk(self._read_days)
        except SharedStateDown:
            return daily, FleetView(1, True)
        others = await asyncio.to_thread(self._parse_days, raw)  # up to megabytes of JSON: off the event loop
        ids = {stats_id for by_id in others.values() for stats_id in by_id} | {self._id}
        merged = {day: list(by_id.values()) for day, by_id in others.items()}
        return daily.with_others(merged), FleetView(len(ids), False)

    async def _read_days(self, client: Redis) -> list[tuple[Any, dict[Any, Any]]]:
        now_wall = self._clock.wall()
        days = await client.zrangebyscore(self._key("days"), now_wall - (SHARED_DAYS + 1) * DAY_SECONDS, "+inf")
        pipe = client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._key("day", _text_of(day)))
        return list(zip(days, await pipe.execute(), strict=True))

    def _parse_days(self, raw: list[tuple[Any, dict[Any, Any]]]) -> dict[str, dict[str, DayTotals]]:
        max_keys = self._daily.max_keys if self._daily is not None else 1
        found: dict[str, dict[str, DayTotals]] = {}
        for day, by_id in raw:
            for stats_id, text in by_id.items():
                if _text_of(stats_id) != self._id:
                    totals = _totals(text, max_keys)
                    if totals is not None:
                        found.setdefault(_text_of(day), {})[_text_of(stats_id)] = totals
        return found

    async def live_others(
        self, range_seconds: float, now_wall: float, point_seconds: float
    ) -> tuple[list[tuple[str, DayTotals]], FleetView]:
        """Other processes' dashboard buckets for this range (``LiveStats.view(others=...)``)."""
        assert self._live is not None
        fields = self._live.fields_for(range_seconds, now_wall, point_seconds)
        try:
            by_id = await self._bulk(lambda client: self._read_live(client, fields, now_wall))
        except SharedStateDown:
            return [], FleetView(1, True)
        others = await asyncio.to_thread(_parse_buckets, by_id, fields, self._live.max_keys)
        with_data = sum(1 for texts in by_id.values() if any(text is not None for text in texts))
        return others, FleetView(1 + with_data, False)

    async def _read_live(self, client: Redis, fields: list[str], now_wall: float) -> dict[str, list[Any]]:
        ids = await client.zrangebyscore(self._key("ids"), now_wall - _LIVE_KEEP_SECONDS, "+inf")
        others = [_text_of(stats_id) for stats_id in ids if _text_of(stats_id) != self._id]
        if not others or not fields:
            return {}
        pipe = client.pipeline(transaction=False)
        for stats_id in others:
            pipe.hmget(self._key("live", stats_id), fields)
        return dict(zip(others, await pipe.execute(), strict=True))


def _parse_buckets(by_id: dict[str, list[Any]], fields: list[str], max_keys: int) -> list[tuple[str, DayTotals]]:
    return [
        (name, totals)
        for texts in by_id.values()
        for name, text in zip(fields, texts, strict=True)
        if text is not None and (totals := _totals(text, max_keys)) is not None
    ]


def _first(mapping: dict[str, DayTotals], count: int) -> list[tuple[str, DayTotals]]:
    return sorted(mapping.items(), key=_newest_first)[:count]


def _newest_first(pair: tuple[str, DayTotals]) -> tuple[int, str]:
    return -int(pair[0][2:]), pair[0]


def _text(totals: DayTotals) -> str:
    return json.dumps(totals.to_json(), separators=(",", ":"))


def _text_of(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _totals(text: bytes | str, max_keys: int) -> DayTotals | None:
    """Another process's totals; None (and a warning) for a snapshot that is not one (another version)."""
    try:
        return DayTotals.from_json(json.loads(text), has_same_bounds=True, max_keys=max_keys)
    except _BAD_SNAPSHOT as exc:
        log.warning("fleet_stats_snapshot_unreadable", extra={"error": type(exc).__name__})
        return None


def _is_recent_day(day: str, oldest_kept_wall: float) -> bool:
    try:
        return _day_start(day) >= oldest_kept_wall
    except ValueError:  # not a day (a hand-edited file): never published
        return False


def _day_start(day: str) -> float:
    return (date.fromisoformat(day) - date(1970, 1, 1)).days * DAY_SECONDS
