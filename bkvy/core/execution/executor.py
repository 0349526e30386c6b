"""Walk a route plan: circuit breaker → rate limit → adapter → transport, recording every attempt.

SPEC §5–6: failover by failure class within the request's soft/hard timeouts. ``bad_request`` stops
at once; every other class moves on to the next candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from bkvy.core.upstream.adapters import adapter_for
from bkvy.core.routing.candidate_states import CandidateStates
from bkvy.clock import Clock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.records import (Attempt, ExecutionRequest, ExecutionResult, PreparedAttempt, RequestOutcome,
                                 Run)
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter, RateLimitExceeded
from bkvy.core.routing.plan import Candidate, CandidateKey, CandidateState, RoutePlan, RouteRequest, rank_candidates
from bkvy.core.upstream.thinking import should_disable_thinking
from bkvy.core.upstream.transport import Transport
from bkvy.models.errors import (AllCandidatesFailed, AllCandidatesRateLimited, BkvyError, CircuitsOpen,
                                HardTimeout, UnsupportedInput, UpstreamBadRequest, UpstreamError)
from bkvy.models.types import Completion, ErrorClass, RateLimitHint, UpstreamCall

log = logging.getLogger(__name__)

T = TypeVar("T")

_MIN_FAST_ATTEMPT_SECONDS = 5.0

__all__ = ["Attempt", "ExecutionRequest", "ExecutionResult", "Executor", "PreparedAttempt", "RequestOutcome", "Run"]


class Executor:
    def __init__(self, *, config: GatewayConfig, clock: Clock, transport: Transport, limiter: RateLimiter,
                 latency: LatencyTracker, breaker=None, soft_timeout_seconds: float = 30.0,
                 hard_timeout_seconds: float = 120.0) -> None:
        self.config = config
        self._clock = clock
        self._transport = transport
        self._limiter = limiter
        self._latency = latency
        self._breaker = breaker
        self._soft_timeout_seconds = soft_timeout_seconds
        self._hard_timeout_seconds = hard_timeout_seconds
        self._observers: list[Callable[[RequestOutcome], None]] = []
        self._states = CandidateStates(route_table=config.route_table, clock=clock, limiter=limiter,
                                       latency=latency, breaker=breaker)

    def add_observer(self, observer: Callable[[RequestOutcome], None]) -> None:
        self._observers.append(observer)

    def candidate_state(self, key: CandidateKey) -> CandidateState:
        """The live state of one candidate: its lane's waits, its learned latency and its circuit's view."""
        return self._states.state(key)

    def plan(self, route: RouteRequest) -> RoutePlan:
        """``plan_route`` over live state: the states kept since the last change, the others read now."""
        return rank_candidates(route, self.config, self._states.kept, self._states.refresh())

    def new_run(self) -> Run:
        return Run(start=self._clock.now(), started_wall=self._clock.wall())

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def hard_timeout_seconds(self) -> float:
        return self._hard_timeout_seconds

    @property
    def soft_timeout_seconds(self) -> float:
        return self._soft_timeout_seconds

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        """Route and run one request. Raises a BkvyError (429/502/503/504...) when it cannot be served."""
        result, report = await self.execute_then_report(request)
        report()
        return result

    async def execute_then_report(self, request: ExecutionRequest) -> tuple[ExecutionResult, Callable[[], None]]:
        """``execute``, but a success is reported to the observers only when the caller calls the returned
        function: the HTTP layer sends the reply first, so records and metrics are off the latency path.
        Failures are reported before they are raised, as with ``execute``."""
        run = self.new_run()
        result = await self.run_guarded(request, run, lambda: self._walk(request, run))
        return result, lambda: self.notify(request, result, None, run)

    async def run_guarded(self, request: ExecutionRequest, run: Run, walk: Callable[[], Awaitable[T]]) -> T:
        """Run ``walk`` within the hard timeout (504, cancelling what is in flight); failures are reported."""
        try:
            async with self._clock.timeout(self._hard_timeout_seconds):
                return await walk()
        except TimeoutError:
            self._record_cut_attempt(run)
            error = HardTimeout(f"no answer within {self._hard_timeout_seconds:g}s", attempts=run.attempt_dicts())
            self.notify(request, None, error, run)
            raise error from None
        except BkvyError as error:
            error.attempts = error.attempts if error.attempts is not None else run.attempt_dicts()
            self.notify(request, None, error, run)
            raise

    def _record_cut_attempt(self, run: Run) -> None:
        """The attempt the hard timeout cancelled is recorded too (SPEC §5: every attempt)."""
        if run.in_flight is None:
            return
        candidate, started, fast_mode = run.in_flight
        run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id, "cancelled_hard_timeout",
                                    (self._clock.now() - started) * 1000.0, fast_mode=fast_mode))
        run.in_flight = None

    def notify(self, request: ExecutionRequest, result: ExecutionResult | None, error: BkvyError | None,
               run: Run) -> None:
        """Hand the request's outcome to every observer (records, client-key spend...)."""
        outcome = RequestOutcome(request, result, error, tuple(run.attempts),
                                 (self._clock.now() - run.start) * 1000.0, run.queue_wait_seconds * 1000.0,
                                 run.started_wall, run.rate_limit_wait_seconds * 1000.0, run.plan)
        for observer in self._observers:
            try:
                observer(outcome)
            except Exception:  # an observer must never break a request
                log.exception("observer_failed")

    async def _walk(self, request: ExecutionRequest, run: Run) -> ExecutionResult:
        async def attempt(candidate: Candidate, fast_mode: bool) -> ExecutionResult | None:
            completion = await self._attempt(request, candidate, run, fast_mode)
            return None if completion is None else self.result_of(completion, candidate, run.plan, run)

        return await self.walk_plan(request, run, attempt)

    async def walk_plan(self, request: ExecutionRequest, run: Run,
                        attempt: Callable[[Candidate, bool], Awaitable[T | None]]) -> T:
        """Plan, then try candidates in order (breaker and retry budget permitting) until ``attempt`` returns
        something; raises the plan's final error when none does. Shared by whole and streamed replies."""
        plan = run.plan = self.plan(request.route)
        tried_pairs: set[tuple[str, str]] = set()
        for candidate in plan.iter_candidates():
            fast_mode = self.is_fast_mode(run)
            if not self.may_try(candidate, fast_mode, tried_pairs, run):
                continue
            tried_pairs.add((candidate.provider, candidate.model))
            outcome = await attempt(candidate, fast_mode)
            if outcome is not None:
                return outcome
        raise self.final_error(plan, run)

    def is_fast_mode(self, run: Run) -> bool:
        """Past the soft timeout (SPEC §6): fewer retries, shorter upstream timeouts."""
        return self._clock.now() - run.start >= self._soft_timeout_seconds

    def may_try(self, candidate: Candidate, fast_mode: bool, tried_pairs: set[tuple[str, str]], run: Run) -> bool:
        """The breaker's say on this candidate; a refusal is recorded as a skipped attempt."""
        if self._breaker is None:
            return True
        skip = self._breaker.refusal(candidate.provider, candidate.model, candidate.key_id,
                                     fast_mode=fast_mode, is_retry=(candidate.provider, candidate.model) in tried_pairs,
                                     is_panic=candidate.reason == "panic_mode")
        if skip is None:
            return True
        run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id, f"skipped_{skip}", 0.0,
                                    fast_mode=fast_mode))
        return False

    async def _attempt(self, request: ExecutionRequest, candidate: Candidate, run: Run,
                       fast_mode: bool) -> Completion | None:
        prepared = await self.prepare_attempt(request, candidate, run, fast_mode)
        if prepared is None:
            return None
        started = self._clock.now()
        run.in_flight = (candidate, started, prepared.fast_mode)
        try:
            async with self._clock.timeout(self.attempt_timeout(run, prepared.fast_mode)):
                reply = await self._transport.send(prepared.upstream_request)
            completion = prepared.adapter.parse_reply(reply)
        except TimeoutError:
            run.in_flight = None
            return self.record_failure(prepared, UpstreamError(ErrorClass.TIMEOUT, "upstream timed out"), started, run)
        except UpstreamError as error:
            run.in_flight = None
            return self.record_failure(prepared, error, started, run)
        run.in_flight = None   # not cleared on cancellation: the hard timeout records the cut attempt
        self.record_success(prepared, started, run, completion.rate_limit_hint)
        return completion

    async def prepare_attempt(self, request: ExecutionRequest, candidate: Candidate, run: Run, fast_mode: bool, *,
                              stream: bool = False) -> PreparedAttempt | None:
        """Take a rate-limit slot and build the upstream request; None (recorded) when the candidate is skipped."""
        lane = LaneKey(candidate.provider, candidate.key_id, candidate.model)
        waited = await self._take_slot(request, candidate, lane, run, fast_mode)
        if waited is None:
            return None
        fast_mode = fast_mode or self.is_fast_mode(run)
        provider = self.config.providers[candidate.provider]
        model = provider.models[candidate.model]
        call = UpstreamCall(
            base_url=provider.base_url, model=candidate.model, api_key=provider.keys[candidate.key_id].api_key,
            messages=request.messages, options=request.options, supports_thinking=model.supports_thinking,
            thinking_off=should_disable_thinking(level=request.route.level, supports_thinking=model.supports_thinking,
                                                 disable_thinking=request.options.disable_thinking),
            endpoint=model.endpoint, stream=stream)
        adapter = adapter_for(provider.type)
        try:
            upstream_request = adapter.build_request(call)
        except UpstreamError:
            # This provider cannot take this input (e.g. a remote image URL): another candidate may.
            run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id,
                                        "skipped_unsupported_input", 0.0, waited * 1000.0, fast_mode=fast_mode))
            return None
        return PreparedAttempt(candidate, lane, adapter, upstream_request, waited, fast_mode)

    async def _take_slot(self, request: ExecutionRequest, candidate: Candidate, lane: LaneKey, run: Run,
                         fast_mode: bool) -> float | None:
        """Seconds waited for a rate-limit slot, or None when it would come after the request's max wait."""
        if self._limiter.try_acquire(lane):
            return 0.0
        deadline = run.start + (request.route.max_wait_seconds or 0.0)
        try:
            slot = await self._limiter.acquire(lane, deadline)
        except RateLimitExceeded as exceeded:
            run.rate_limit_waits.append(exceeded.retry_after_seconds)
            run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id, "skipped_rate_limited",
                                        0.0, fast_mode=fast_mode))
            return None
        run.queue_wait_seconds += slot.queue_seconds
        run.rate_limit_wait_seconds += slot.rate_limit_seconds
        return slot.total_seconds

    def attempt_timeout(self, run: Run, fast_mode: bool) -> float:
        """Seconds one upstream attempt may take (to the whole reply, or to a stream's first content)."""
        elapsed = self._clock.now() - run.start
        if not fast_mode:
            return max(self._soft_timeout_seconds - elapsed, 0.001)
        fast = max(_MIN_FAST_ATTEMPT_SECONDS, self._soft_timeout_seconds / 3)
        return max(min(fast, self._hard_timeout_seconds - elapsed), 0.001)

    def record_success(self, prepared: PreparedAttempt, started: float, run: Run,
                       hint: RateLimitHint | None) -> None:
        """Latency, rate-limit hint and breaker success for an attempt that answered."""
        candidate, lane = prepared.candidate, prepared.lane
        seconds = self._clock.now() - started
        self._latency.observe(candidate.provider, candidate.model, seconds)
        if hint is not None and hint.remaining_requests == 0 and hint.reset_seconds:
            self._limiter.block_until(lane, hint.reset_seconds)
        if self._breaker is not None:
            self._breaker.record_success(candidate.provider, candidate.model, candidate.key_id, seconds * 1000.0)
        run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id, "success",
                                    seconds * 1000.0, prepared.waited_seconds * 1000.0, 200, prepared.fast_mode))

    def record_failure(self, prepared: PreparedAttempt, error: UpstreamError, started: float, run: Run) -> None:
        """Record a failed attempt for failover and the breaker. Raises UpstreamBadRequest for bad_request."""
        candidate, lane = prepared.candidate, prepared.lane
        seconds = self._clock.now() - started
        run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id, error.error_class.value,
                                    seconds * 1000.0, prepared.waited_seconds * 1000.0, error.status,
                                    prepared.fast_mode))
        log.warning("upstream_failed", extra={"provider": candidate.provider, "model": candidate.model,
                                              "key_id": candidate.key_id, "error_class": error.error_class.value,
                                              "status": error.status})
        if error.error_class is ErrorClass.BAD_REQUEST:
            raise UpstreamBadRequest(f"{candidate.provider} rejected the request: {error.message}",
                                     attempts=run.attempt_dicts())
        if error.error_class is ErrorClass.RATE_LIMITED:
            retry_after = error.retry_after_seconds if error.retry_after_seconds is not None else 1.0
            self._limiter.block_until(lane, retry_after)
            run.rate_limit_waits.append(retry_after)
        if self._breaker is not None:
            self._breaker.record_failure(candidate.provider, candidate.model, candidate.key_id, error.error_class,
                                         error.retry_after_seconds)
        return None

    def result_of(self, completion: Completion, candidate: Candidate, plan: RoutePlan, run: Run) -> ExecutionResult:
        model = self.config.providers[candidate.provider].models[candidate.model]
        cost = (completion.usage.input_tokens * model.input_price_per_1k
                + completion.usage.output_tokens * model.output_price_per_1k) / 1000.0
        return ExecutionResult(completion, candidate, plan, tuple(run.attempts),
                               (self._clock.now() - run.start) * 1000.0,
                               (run.queue_wait_seconds + run.rate_limit_wait_seconds) * 1000.0, cost)

    def final_error(self, plan: RoutePlan, run: Run) -> BkvyError:
        """The error for a plan that ran out: 429 all rate-limited, 503 all open, else 502."""
        tried = [a for a in run.attempts if not a.outcome.startswith("skipped_") or a.outcome == "skipped_rate_limited"]
        limited = [a for a in tried if a.outcome in ("skipped_rate_limited", ErrorClass.RATE_LIMITED.value)]
        plan_wait = plan.rate_limit_retry_after_seconds
        waits = run.rate_limit_waits + ([plan_wait] if plan_wait is not None else [])
        if waits and len(limited) == len(tried):
            return AllCandidatesRateLimited("every candidate is rate-limited", retry_after_seconds=min(waits),
                                            attempts=run.attempt_dicts())
        if not tried:
            skips = {a.outcome for a in run.attempts} | {f"skipped_{s.reason}" for s in plan.skipped}
            if skips == {"skipped_unsupported_input"}:
                return UnsupportedInput("no candidate model accepts this input (e.g. its images or tools)",
                                        attempts=run.attempt_dicts())
            if any(skip.startswith("skipped_circuit") for skip in skips):
                return CircuitsOpen("every candidate's circuit is open", attempts=run.attempt_dicts())
        return AllCandidatesFailed(f"all {len(tried)} attempts failed", attempts=run.attempt_dicts())
