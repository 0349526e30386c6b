"""Where attempts and requests record their ends: latency, rate-limit hints, the breaker, the observers.

``Bookkeeping`` is what every attempt of one executor records into. An ``AttemptLedger`` is one sent
attempt's entry in it: made when its request goes upstream, ended once (success, failure or cut). A committed
stream keeps its attempt's ledger and records its end through it, long after the executor's loop returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bkvy.clock import Clock
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.pricing import cost_usd
from bkvy.core.execution.records import ExecutionRequest, ExecutionResult, PreparedAttempt, RequestOutcome, Run
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import Candidate, RoutePlan, RouteRequest
from bkvy.core.routing.replicas import ReplicaRouter
from bkvy.models.errors import BkvyError, UpstreamError
from bkvy.models.outcomes import Attempt, AttemptOutcome
from bkvy.models.types import Completion, ErrorClass, RateLimitHint

log = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER_SECONDS = 1.0  # a 429 without Retry-After
_UNANSWERED = frozenset({ErrorClass.TIMEOUT, ErrorClass.CONNECTION})  # a 504 from a proxy: the upstream may run on


@dataclass(frozen=True, slots=True)
class Bookkeeping:
    """The services one executor's attempts and requests record into."""

    clock: Clock
    config: GatewayConfig
    latency: LatencyTracker
    limiter: RateLimiter
    breaker: CircuitGuard | None
    observers: list[Callable[[RequestOutcome], None]] = field(default_factory=list)
    replicas: ReplicaRouter | None = None  # counts each replica's attempts in flight (bounded loads)

    def report(
        self, request: ExecutionRequest, result: ExecutionResult | None, error: BkvyError | None, run: Run
    ) -> None:
        """Hand the request's outcome to every observer (records, client-key spend...)."""
        outcome = RequestOutcome(
            request,
            result,
            error,
            tuple(run.attempts),
            (self.clock.now() - run.start) * 1000.0,
            run.queue_wait_seconds * 1000.0,
            run.started_wall,
            run.rate_limit_wait_seconds * 1000.0,
            run.plan,
            tuple(run.hedges),
        )
        self.notify(outcome)

    def notify(self, outcome: RequestOutcome) -> None:
        """Hand an outcome to every observer; one that fails is logged, never raised."""
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:  # an observer must never break a request
                log.exception("observer_failed")


class AttemptLedger:
    """One sent attempt, from the moment its request goes upstream until its end is recorded (once)."""

    __slots__ = ("_books", "_is_answering", "_is_hedge", "_model_key", "_prepared", "_run", "_started", "request")

    def __init__(
        self, books: Bookkeeping, request: ExecutionRequest, run: Run, prepared: PreparedAttempt, *, is_hedge: bool
    ) -> None:
        self._books = books
        self.request = request
        self._run = run
        self._prepared = prepared
        self._is_hedge = is_hedge
        self._model_key = (prepared.candidate.provider, prepared.candidate.model)
        self._started = books.clock.now()
        self._is_answering = False  # the upstream has started to answer (a stream's first content)
        run.in_flight.append(self)
        books.latency.attempt_started(self._model_key, self._started)
        if books.replicas is not None:
            candidate = prepared.candidate
            books.replicas.attempt_started(candidate.provider, candidate.model, candidate.key_id)

    @property
    def is_hedged(self) -> bool:
        """A hedge raced this attempt's request (won or lost)."""
        return self._run.is_hedged

    @property
    def is_open(self) -> bool:
        """Sent, and its end not recorded yet."""
        return self in self._run.in_flight

    @property
    def candidate(self) -> Candidate:
        return self._prepared.candidate

    @property
    def plan(self) -> RoutePlan:
        assert self._run.plan is not None  # attempts are made from a plan
        return self._run.plan

    def attempt_dicts(self) -> list[dict[str, object]]:
        """Every attempt of the request so far, for an error's ``attempts``."""
        return self._run.attempt_dicts()

    def succeeded(self, completion: Completion) -> ExecutionResult:
        """Latency, the reply's rate-limit hint and a breaker success; the request's result, with its cost."""
        candidate, books = self.candidate, self._books
        model = books.config.providers[candidate.provider].models[candidate.model]
        usage = completion.usage
        cost = cost_usd(usage.input_tokens, usage.output_tokens, model.input_price_per_1k, model.output_price_per_1k)
        seconds = self._end(AttemptOutcome.SUCCESS, 200, cost)
        if not self._is_answering:  # a stream's latency is its time to first content, learned then
            books.latency.observe(candidate.provider, candidate.model, seconds)
        reservation = self._prepared.reservation
        if reservation.window is not None and usage.input_tokens + usage.output_tokens:
            books.limiter.settle(reservation, usage.input_tokens + usage.output_tokens)  # unreported: the estimate
        hint = completion.rate_limit_hint
        if hint is not None:
            wait = provider_wait_seconds(hint, self.request.route)
            if wait:
                books.limiter.block_until(self._prepared.lane, wait)
        if books.breaker is not None:
            books.breaker.record_success(candidate.provider, candidate.model, candidate.key_id, seconds * 1000.0)
        return settle(completion, candidate, self.plan, self._run, books.clock.now())

    def failed(self, error: UpstreamError) -> None:
        """A failed attempt: its Retry-After blocks the lane, and the breaker counts it (not a bad request:
        that is the request's fault, not the upstream's). Its tokens: see ``_is_refused``."""
        self._end(AttemptOutcome.failed(error.error_class), error.status)
        if self._prepared.reservation.window is not None and self._is_refused(error):
            self._books.limiter.settle(self._prepared.reservation, 0)
        candidate, books = self.candidate, self._books
        log.warning(
            "upstream_failed",
            extra={
                "provider": candidate.provider,
                "model": candidate.model,
                "key_id": candidate.key_id,
                "error_class": error.error_class.value,
                "status": error.status,
            },
        )
        if error.error_class is ErrorClass.BAD_REQUEST:
            return
        if error.error_class is ErrorClass.RATE_LIMITED:
            retry_after = (
                error.retry_after_seconds if error.retry_after_seconds is not None else _DEFAULT_RETRY_AFTER_SECONDS
            )
            books.limiter.block_until(self._prepared.lane, retry_after)
            self._run.rate_limit_waits.append(retry_after)
        if books.breaker is not None:
            books.breaker.record_failure(
                candidate.provider, candidate.model, candidate.key_id, error.error_class, error.retry_after_seconds
            )

    def cut(self, outcome: AttemptOutcome, *, counts_as_timeout: bool = False, bills_prompt: bool = False) -> None:
        """bkvy ended the attempt (a hedge won, the client left, a deadline): recorded, and no verdict on the
        upstream unless the gateway's own deadline cut it (``counts_as_timeout``: a timeout for its circuit).
        ``bills_prompt``: the upstream has read the prompt, so its input tokens are counted as spent (a lost
        hedge costs money; the records show it). On a tpm lane a cut attempt keeps its whole reservation: the
        upstream read the prompt, may go on generating after the hang-up (OpenAI finishes a non-streamed
        completion whose client left) and tells us no usage."""
        cost = 0.0
        if bills_prompt:
            model = self._books.config.providers[self.candidate.provider].models[self.candidate.model]
            cost = cost_usd(self.request.route.input_tokens_estimate, 0, model.input_price_per_1k, 0.0)
        self._end(outcome, None, cost)
        candidate, breaker = self.candidate, self._books.breaker
        if counts_as_timeout and breaker is not None:
            breaker.record_failure(candidate.provider, candidate.model, candidate.key_id, ErrorClass.TIMEOUT, None)

    def _is_refused(self, error: UpstreamError) -> bool:
        """The upstream answered with an error before any content, so it billed no tokens: a failed attempt's
        reservation goes back. One that ended without an answer (a timeout, a lost connection) or broke after
        content keeps it, like a cut: the upstream may have read the prompt and generated."""
        return (
            not self._is_answering
            and error.status is not None
            and error.status >= 400
            and error.error_class not in _UNANSWERED
        )

    def report(self, result: ExecutionResult | None, error: BkvyError | None) -> None:
        """The request ended with this attempt: hand its outcome to the observers."""
        self._books.report(self.request, result, error, self._run)

    def first_content(self) -> None:
        """A stream's first content arrived: its time to first content is the latency routing and hedging learn,
        and the attempt no longer counts as waiting for an answer (the in-flight signal)."""
        self._is_answering = True
        candidate, books = self.candidate, self._books
        books.latency.observe(candidate.provider, candidate.model, books.clock.now() - self._started)
        books.latency.attempt_ended(self._model_key, self._started)

    def _end(self, outcome: AttemptOutcome, status: int | None, cost: float = 0.0) -> float:
        """Append the attempt to the run; seconds since it was sent."""
        seconds = self._books.clock.now() - self._started
        prepared, candidate = self._prepared, self._prepared.candidate
        self._run.attempts.append(
            Attempt(
                candidate.provider,
                candidate.model,
                candidate.key_id,
                outcome,
                seconds * 1000.0,
                prepared.waited_seconds * 1000.0,
                status,
                prepared.fast_mode,
                self._is_hedge,
                cost,
                prepared.upstream_request.thinking,
            )
        )
        self._run.in_flight.remove(self)
        if self._books.replicas is not None:
            self._books.replicas.attempt_ended(candidate.provider, candidate.model, candidate.key_id)
        if not self._is_answering:
            self._books.latency.attempt_ended(self._model_key, self._started)
        return seconds


def provider_wait_seconds(hint: RateLimitHint, route: RouteRequest) -> float:
    """How long a provider's rate-limit headers say the lane must wait, 0 when it need not: until its requests
    reset when none remain, until its tokens reset when what remains (total, input or output) cannot cover a
    request like ``route``'s (its prompt estimate and output reservation)."""
    wait = 0.0
    if hint.remaining_requests == 0 and hint.reset_seconds:
        wait = hint.reset_seconds
    if hint.tokens_reset_seconds and hint.tokens_reset_seconds > wait:
        input_tokens, output_tokens = route.input_tokens_estimate, route.output_tokens_estimate
        if (
            _is_short(hint.remaining_tokens, input_tokens + output_tokens)
            or _is_short(hint.remaining_input_tokens, input_tokens)
            or _is_short(hint.remaining_output_tokens, output_tokens)
        ):
            wait = hint.tokens_reset_seconds
    return wait


def _is_short(remaining: int | None, needed: int) -> bool:
    return remaining is not None and remaining < max(needed, 1)


def settle(completion: Completion, candidate: Candidate, plan: RoutePlan, run: Run, now: float) -> ExecutionResult:
    """The request's result as it ends: every attempt so far, the time, and the spend of every attempt (the
    winner's, and what lost hedges were billed)."""
    return ExecutionResult(
        completion,
        candidate,
        plan,
        tuple(run.attempts),
        (now - run.start) * 1000.0,
        (run.queue_wait_seconds + run.rate_limit_wait_seconds) * 1000.0,
        run.attempts[0].cost_usd if len(run.attempts) == 1 else sum(attempt.cost_usd for attempt in run.attempts),
        run.is_hedged,
    )
