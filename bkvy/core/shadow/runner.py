"""Shadow calls: the executor's observer picks sampled requests; each shadow model gets one call, in a task.

The observer runs when the request's outcome is reported, which is after its reply went to the client
(``api.hot_path`` ``after_sending``; a stream when it ended), so nothing here is on a reply's latency path.
A shadow call uses the normal adapters and transport with the request as it left (policy's redaction applied),
only to a model the request's policy allows (``route.allowed``: rules and residency), on that model's own keys,
with a spare rate-limit slot only (``core.shadow.lanes``). It never reports to the breaker, learned latency,
the bandit, lane blocks or the records: primary routing cannot see it. Content lives only in the task's locals
until the similarity is computed; only numbers reach ``ShadowBook``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import NamedTuple

from bkvy.clock import Clock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.pricing import cost_usd
from bkvy.core.config.strategies import route_key
from bkvy.core.execution.records import ExecutionRequest, RequestOutcome
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter, TokenReservation
from bkvy.core.shadow.book import PRIMARY, ShadowBook, ShadowSkip
from bkvy.core.shadow.lanes import take_spare_slot
from bkvy.core.shadow.similarity import word_jaccard
from bkvy.core.upstream.adapters import adapter_for
from bkvy.core.upstream.thinking import thinking_mode, thinking_setting
from bkvy.core.upstream.transport import Transport
from bkvy.models.errors import UpstreamError
from bkvy.models.types import Completion, UpstreamCall, UpstreamRequest

log = logging.getLogger(__name__)


class ShadowCaps(NamedTuple):
    max_concurrency: int  # SHADOW_MAX_CONCURRENCY: calls in flight; more are dropped (counted)
    daily_budget_usd: float  # SHADOW_DAILY_BUDGET_USD: estimated + spent per UTC day; past it, no call
    timeout_seconds: float  # one shadow call (REQUEST_HARD_TIMEOUT_SECONDS, or the model's own timeout)


class _Job(NamedTuple):
    route_key: str
    provider: str
    model: str
    request: ExecutionRequest
    primary_text: str  # "" when there is nothing to compare (a streamed primary: its text is relayed, not kept)
    estimate_usd: float


class ShadowRunner:
    """Samples requests of shadowed routes and runs their shadow calls within the caps."""

    def __init__(
        self,
        *,
        config_of: Callable[[], GatewayConfig],
        transport: Transport,
        limiter: RateLimiter,
        clock: Clock,
        caps: ShadowCaps,
        rng: random.Random | None = None,
        book: ShadowBook | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._config_of = config_of
        self._transport = transport
        self._limiter = limiter
        self._clock = clock
        self._caps = caps
        self._rng = rng or random.Random()
        self.book = book or ShadowBook()
        self.on_change = on_change or (lambda: None)  # the book changed (e.g. schedule a save)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reserved_usd = 0.0  # estimates of the calls in flight, held against the day's budget

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def observe(self, outcome: RequestOutcome) -> None:
        """The executor's observer: a request's outcome, reported after its reply was sent."""
        config = self._config_of()
        if not config.routing.shadow or outcome.request.embedding is not None:
            return  # no shadow config: one attribute test per request
        if outcome.cache_saved_usd is not None:
            return  # a cache hit (streamed or not): its request was shadowed when it missed; no primary call to tally
        route = outcome.request.route
        key = route_key(route.level, route.scenario)
        shadow = config.routing.shadow.get(key) if key is not None else None
        if shadow is None or not self.is_sampled(shadow.sample_percent):
            return
        assert key is not None
        result = outcome.result
        self.book.tally(key, PRIMARY).add(
            is_success=result is not None,
            latency_ms=outcome.total_ms,
            cost_usd=result.cost_usd if result is not None else 0.0,
            input_tokens=result.completion.usage.input_tokens if result is not None else 0,
            output_tokens=result.completion.usage.output_tokens if result is not None else 0,
            finish_reason=result.completion.finish_reason.value if result is not None else None,
        )
        if result is None:  # a failed primary is tallied, never shadowed: policy may have blocked it (400)
            self.on_change()
            return
        primary_text = result.completion.content
        for name in shadow.models:
            provider, _, model = name.partition("/")
            self._start(config, _Job(key, provider, model, outcome.request, primary_text, 0.0))
        self.on_change()

    def is_sampled(self, sample_percent: float) -> bool:
        """One draw of the injected generator: True for ``sample_percent`` % of calls."""
        return sample_percent > 0.0 and self._rng.random() * 100.0 < sample_percent

    def _start(self, config: GatewayConfig, job: _Job) -> None:
        """Start one shadow call, or count why not (policy, budget, concurrency)."""
        tally = self.book.tally(job.route_key, f"{job.provider}/{job.model}")
        allowed = job.request.route.allowed
        if allowed is not None and (job.provider, job.model) not in allowed:
            tally.skip(ShadowSkip.POLICY)
            return
        model_config = config.providers[job.provider].models[job.model]
        route = job.request.route
        estimate = cost_usd(
            route.input_tokens_estimate,
            route.output_tokens_estimate,
            model_config.input_price_per_1k,
            model_config.output_price_per_1k,
        )
        self.book.roll(self._today())
        budget = self._caps.daily_budget_usd
        if budget <= 0.0 or self.book.spent_usd + self._reserved_usd + estimate > budget:  # 0: none, even free
            tally.skip(ShadowSkip.BUDGET)
            return
        if len(self._tasks) >= self._caps.max_concurrency:
            tally.skip(ShadowSkip.CONCURRENCY)
            self.book.dropped += 1
            return
        self._reserved_usd += estimate
        task = asyncio.get_running_loop().create_task(self._run(config, job._replace(estimate_usd=estimate)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, config: GatewayConfig, job: _Job) -> None:
        try:
            await self._call(config, job)
        except Exception:  # a shadow must never surface anywhere: log its class only
            log.exception("shadow_call_failed", extra={"provider": job.provider, "model": job.model})
        finally:
            self._reserved_usd = max(0.0, self._reserved_usd - job.estimate_usd)
            self.on_change()

    async def _call(self, config: GatewayConfig, job: _Job) -> None:
        """Take a spare slot on one of the model's keys, send, parse, tally; the texts end with this frame."""
        tally = self.book.tally(job.route_key, f"{job.provider}/{job.model}")
        tokens = job.request.route.input_tokens_estimate + job.request.route.output_tokens_estimate
        taken = self._spare_lane(config, job, tokens)
        if taken is None:
            tally.skip(ShadowSkip.LANE_BUSY)
            return
        lane, reservation = taken
        try:
            adapter = adapter_for(config.providers[job.provider].type)
            upstream = adapter.build_request(self._upstream_call(config, job, lane))
        except UpstreamError:
            self._limiter.settle(reservation, 0)
            tally.skip(ShadowSkip.UNSUPPORTED_INPUT)
            return
        started = self._clock.now()
        completion = await self._send(config, job, upstream)
        latency_ms = (self._clock.now() - started) * 1000.0
        used = completion.usage.total_tokens if completion is not None else 0
        self._limiter.settle(reservation, used)
        self._tally_call(config, job, completion, latency_ms)

    async def _send(self, config: GatewayConfig, job: _Job, upstream: UpstreamRequest) -> Completion | None:
        """The parsed reply, or None when the call failed (any upstream error, the timeout)."""
        model_timeout = config.providers[job.provider].models[job.model].timeout_seconds
        adapter = adapter_for(config.providers[job.provider].type)
        try:
            async with self._clock.timeout(model_timeout or self._caps.timeout_seconds):
                reply = await self._transport.send(upstream)
            return adapter.parse_reply(reply)
        except (UpstreamError, TimeoutError) as error:
            error_class = error.error_class.value if isinstance(error, UpstreamError) else "timeout"
            log.info("shadow_call_error", extra={"provider": job.provider, "model": job.model, "error": error_class})
            return None

    def _tally_call(self, config: GatewayConfig, job: _Job, completion: Completion | None, latency_ms: float) -> None:
        tally = self.book.tally(job.route_key, f"{job.provider}/{job.model}")
        if completion is None:
            tally.add(is_success=False, latency_ms=latency_ms, cost_usd=0.0)
            return
        model_config = config.providers[job.provider].models[job.model]
        usage = completion.usage
        cost = cost_usd(
            usage.input_tokens, usage.output_tokens, model_config.input_price_per_1k, model_config.output_price_per_1k
        )
        self.book.spend(self._today(), cost)
        similarity = word_jaccard(job.primary_text, completion.content) if job.primary_text else None
        tally.add(
            is_success=True,
            latency_ms=latency_ms,
            cost_usd=cost,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            finish_reason=completion.finish_reason.value,
            similarity=similarity,
        )

    def _spare_lane(self, config: GatewayConfig, job: _Job, tokens: int) -> tuple[LaneKey, TokenReservation] | None:
        now = self._clock.now()
        for key_id in config.providers[job.provider].key_ids_for(job.model):
            lane = LaneKey(job.provider, key_id, job.model)
            reservation = take_spare_slot(self._limiter, lane, now, tokens)
            if reservation is not None:
                return lane, reservation
        return None

    def _upstream_call(self, config: GatewayConfig, job: _Job, lane: LaneKey) -> UpstreamCall:
        provider = config.providers[job.provider]
        target = provider.target(job.model, lane.key_id)
        assert target is not None  # key ids come from ``key_ids_for``
        request = job.request
        mode = thinking_mode(level=request.route.level, disable_thinking=request.options.disable_thinking)
        return UpstreamCall(
            base_url=target[1],
            model=job.model,
            api_key=target[0].api_key,
            messages=request.messages,
            options=request.options,
            thinking=thinking_setting(provider.thinking_spec(job.model), mode),
            endpoint=provider.models[job.model].endpoint,
        )

    def _today(self) -> str:
        return dt.datetime.fromtimestamp(self._clock.wall(), dt.UTC).date().isoformat()

    async def drain(self, timeout_seconds: float) -> None:
        """Wait, at most ``timeout_seconds``, until no shadow call is in flight (tests, benchmarks)."""
        async with asyncio.timeout(timeout_seconds):
            while self._tasks:
                await asyncio.wait(list(self._tasks))

    async def stop(self) -> None:
        """Cancel the shadow calls in flight (shutdown: they are worth less than a prompt exit)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
