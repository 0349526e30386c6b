"""The response cache at the edge (issue 20 §1): the request's opt-in, a hit answered with no upstream call, a
miss executed then kept, and the reply headers (``x-bkvy-cache: hit|miss``, ``x-bkvy-cache-age`` on hits).

A request with no opt-in (``options.cache``, ``extra_body.bkvy.cache``, ``x-bkvy-cache``) on a config with no
``cache_routes`` costs one header lookup and one test here: today's path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import NamedTuple

from bkvy.api.hot_path import Exchange
from bkvy.core.cache.service import CacheProbe, hit_result
from bkvy.core.execution.executor import ExecutionRequest, ExecutionResult
from bkvy.core.upstream.adapters.base import StreamDelta, ToolCallDelta
from bkvy.models.errors import InvalidCacheInput
from bkvy.models.outcomes import AttemptOutcome
from bkvy.models.policy import PolicyAction

_FLAGS = {"on": True, "off": False}
MISS_HEADERS = {"x-bkvy-cache": "miss"}


class Served(NamedTuple):
    result: ExecutionResult
    report: Callable[[], None]
    headers: dict[str, str]  # empty when caching did not apply


class CacheHit(NamedTuple):
    result: ExecutionResult
    report: Callable[[], None]
    headers: dict[str, str]


def request_flag(exchange: Exchange, body_flag: bool | None) -> bool | None:
    """The request's opt-in: ``x-bkvy-cache: on|off`` wins over the body's flag; None: it said nothing.
    Raises InvalidCacheInput (400) for another header value."""
    header = exchange.header(b"x-bkvy-cache")
    if header is None:
        return body_flag
    flag = _FLAGS.get(header.strip().lower())
    if flag is None:
        raise InvalidCacheInput(f"x-bkvy-cache: {header[:20]!r} is not a cache switch. Fix: send 'on' or 'off'")
    return flag


def probe_of(exchange: Exchange, execution: ExecutionRequest, body_flag: bool | None) -> CacheProbe | None:
    """How the cache would look this request up; None when the cache does not apply. A request policy blocks
    never reaches the cache: the executor refuses it (400) and records it, even if an older policy let the same
    request be stored."""
    services = exchange.services
    if services.cache is None:
        return None
    if execution.policy is not None and execution.policy.action is PolicyAction.BLOCK:
        return None
    return services.cache.probe(services.config.routing, execution, request_flag(exchange, body_flag))


async def cached_hit(exchange: Exchange, probe: CacheProbe, execution: ExecutionRequest) -> CacheHit | None:
    """The stored reply for ``probe`` as a result with its report (cost 0, what it saved) and headers."""
    services = exchange.services
    assert services.cache is not None
    started = services.clock.now()
    reply = await services.cache.lookup(probe)
    if reply is None:
        return None
    result = hit_result(reply, (services.clock.now() - started) * 1000.0)
    report = services.executor.report_cache_hit(execution, result, reply.cost_usd)
    return CacheHit(result, report, _hit_headers(services.cache.age_seconds(reply)))


async def execute_cached(exchange: Exchange, execution: ExecutionRequest, body_flag: bool | None) -> Served:
    """``execute_then_report`` through the cache when it applies: a hit calls no upstream; a miss is executed,
    and its reply kept once it was sent (in its report; an error raises before anything is kept)."""
    services = exchange.services
    probe = probe_of(exchange, execution, body_flag)
    if probe is None:
        result, report = await services.executor.execute_then_report(execution)
        return Served(result, report, {})
    hit = await cached_hit(exchange, probe, execution)
    if hit is not None:
        return Served(*hit)
    result, report = await services.executor.execute_then_report(execution)
    cache, routing = services.cache, services.config.routing
    assert cache is not None

    def report_then_keep() -> None:  # after_sending: the reply is on its way before anything is stored
        report()
        cache.keep_later(probe, routing, result)

    return Served(result, report_then_keep, MISS_HEADERS)


def _hit_headers(age_seconds: float) -> dict[str, str]:
    return {"x-bkvy-cache": "hit", "x-bkvy-cache-age": str(int(age_seconds))}


def reply_delta(reply: ExecutionResult) -> StreamDelta:
    """A whole stored reply as the one delta a stream writer renders (content, tool calls, finish, usage)."""
    completion = reply.completion
    calls = tuple(
        ToolCallDelta(index, call.call_id, call.name, call.arguments)
        for index, call in enumerate(completion.tool_calls)
    )
    return StreamDelta(completion.content, completion.finish_reason, completion.usage, calls)


class CachedStream:
    """A hit told as a stream: what the relay ends (``RelayedStream``); its report goes once, however it ends."""

    def __init__(self, report: Callable[[], None]) -> None:
        self._report: Callable[[], None] | None = report

    async def told(self, events: bytes) -> AsyncGenerator[bytes, None]:
        """The reply's events in one write, then its report."""
        yield events
        self.done()

    def done(self) -> None:
        if self._report is not None:
            report, self._report = self._report, None
            report()

    def cut_as(self, outcome: AttemptOutcome) -> None:
        self.done()

    async def aclose(self) -> None:
        self.done()
