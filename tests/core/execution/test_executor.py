"""The executor's one attempt loop, for whole and streamed replies: no sockets, a fake clock, every outcome
observed; and ``final_error``, the status a plan that ran out ends with, on hand-built runs."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bkvy.api.errors import failure_of
from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.gateway import build_config
from bkvy.core.config.pricing import cost_usd
from bkvy.core.execution.executor import ExecutionRequest, Executor, RequestOutcome, Run, final_error
from bkvy.core.limits.rate_limits import RateLimiter
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RoutePlan, RouteRequest, Skipped
from bkvy.core.upstream.transport import StreamHead
from bkvy.models.errors import (
    AllCandidatesFailed,
    AllCandidatesRateLimited,
    CircuitsOpen,
    HardTimeout,
    UnsupportedInput,
)
from bkvy.models.outcomes import Attempt, AttemptOutcome, DecisionReason, SkipReason
from bkvy.models.types import (
    ChatMessage,
    ErrorClass,
    GenerationOptions,
    RoutingMethod,
    UpstreamReply,
    UpstreamRequest,
)

OK_BODY = json.dumps(
    {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 20},
    }
).encode()
PRICE_PER_1K = 2.0


class ScriptedTransport:
    """Answers each whole request with the next status; a stream never sends its head (it hangs)."""

    def __init__(self, statuses: list[int]) -> None:
        self._statuses = list(statuses)
        self.urls: list[str] = []
        self.is_streaming = asyncio.Event()

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        self.urls.append(request.url)
        status = self._statuses.pop(0)
        return UpstreamReply(status, {}, OK_BODY if status == 200 else b'{"error":{"type":"server_error"}}')

    @asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamHead]:
        self.urls.append(request.url)
        self.is_streaming.set()
        await asyncio.get_running_loop().create_future()  # never answers
        yield StreamHead(200, {}, _no_chunks())


async def _no_chunks() -> AsyncIterator[bytes]:
    yield b""


def _executor(transport: ScriptedTransport, clock: FakeClock, **timeouts: float) -> Executor:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": PRICE_PER_1K}
    providers = {
        "first": {"type": "openai_compatible", "base_url": "http://first.test", "models": {"m": model}},
        "second": {"type": "openai_compatible", "base_url": "http://second.test", "models": {"m": model}},
    }
    routing = {
        "scenarios": {
            "s": [
                {"provider": "first", "model": "m", "priority": 1},
                {"provider": "second", "model": "m", "priority": 2},
            ]
        }
    }
    config = build_config(providers, routing, {})
    return Executor(
        config=config,
        clock=clock,
        transport=transport,
        limiter=RateLimiter(clock),
        latency=LatencyTracker(),
        **timeouts,
    )


def _request() -> ExecutionRequest:
    return ExecutionRequest(
        "req1",
        "tester",
        RouteRequest(RoutingMethod.SCENARIO, scenario="s"),
        (ChatMessage("user", "hi"),),
        GenerationOptions(),
    )


async def test_whole_reply_fails_over_and_records_typed_outcomes_and_cost(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([503, 200])
    executor = _executor(transport, fake_clock)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    result = await executor.execute(_request())
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.SERVER, AttemptOutcome.SUCCESS]
    assert all(isinstance(a.outcome, AttemptOutcome) for a in result.attempts)
    assert result.candidate.provider == "second"
    assert result.cost_usd == pytest.approx(cost_usd(30, 20, PRICE_PER_1K, PRICE_PER_1K))
    [outcome] = outcomes
    assert outcome.result == result and outcome.attempts == result.attempts


async def test_hard_timeout_records_the_cut_stream_attempt(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([])
    executor = _executor(transport, fake_clock, soft_timeout_seconds=30.0, hard_timeout_seconds=10.0)
    outcomes: list[RequestOutcome] = []
    executor.add_observer(outcomes.append)
    opening = asyncio.ensure_future(executor.open_stream(_request()))
    await transport.is_streaming.wait()
    fake_clock.advance(10.0)
    with pytest.raises(HardTimeout):
        await opening
    [outcome] = outcomes
    assert [(a.provider, a.outcome) for a in outcome.attempts] == [("first", AttemptOutcome.CANCELLED_HARD_TIMEOUT)]
    assert outcome.attempts[0].duration_ms == pytest.approx(10_000.0)


def _run(*outcomes: AttemptOutcome, waits: tuple[float, ...] = ()) -> Run:
    run = Run(start=0.0, rate_limit_waits=list(waits))
    run.attempts.extend(Attempt("p", "m", "k", outcome, 1.0) for outcome in outcomes)
    return run


def _plan(*skips: str | SkipReason) -> RoutePlan:
    return RoutePlan(
        (),
        DecisionReason.NO_CANDIDATE_AVAILABLE,
        tuple(Skipped("p", "m", "k", SkipReason(reason), 4.0) for reason in skips),
    )


def test_every_sent_attempt_rate_limited_is_429_with_the_shortest_wait() -> None:
    error = final_error(_plan(), _run(AttemptOutcome.RATE_LIMITED, AttemptOutcome.RATE_LIMITED, waits=(5.0, 2.0)))
    assert isinstance(error, AllCandidatesRateLimited) and error.retry_after_seconds == 2.0


def test_circuit_skips_do_not_count_against_every_candidate_rate_limited() -> None:
    run = _run(AttemptOutcome.SKIPPED_CIRCUIT_OPEN, AttemptOutcome.SKIPPED_RATE_LIMITED, waits=(3.0,))
    assert isinstance(final_error(_plan(), run), AllCandidatesRateLimited)


def test_plan_skipping_every_candidate_for_rate_limits_is_429() -> None:
    error = final_error(_plan("rate_limited"), _run())
    assert isinstance(error, AllCandidatesRateLimited) and error.retry_after_seconds == 4.0


def test_a_sent_failure_beside_a_rate_limit_skip_is_502_counting_sent_attempts_only() -> None:
    error = final_error(_plan(), _run(AttemptOutcome.SKIPPED_RATE_LIMITED, AttemptOutcome.SERVER, waits=(1.0,)))
    assert isinstance(error, AllCandidatesFailed) and error.status == 502
    assert error.message == "all 1 attempts failed"  # one upstream call was made


@pytest.mark.parametrize("skip", ["circuit_open", SkipReason.CIRCUIT_NOT_CLOSED])
def test_nothing_sent_and_a_circuit_skip_is_503(skip: str | SkipReason) -> None:
    assert isinstance(final_error(_plan(skip), _run()), CircuitsOpen)
    assert isinstance(final_error(_plan(), _run(AttemptOutcome.skipped(SkipReason(skip)))), CircuitsOpen)


def test_every_candidate_refusing_the_input_is_unsupported_input() -> None:
    assert isinstance(final_error(_plan(), _run(AttemptOutcome.SKIPPED_UNSUPPORTED_INPUT)), UnsupportedInput)
    run = _run(AttemptOutcome.SKIPPED_UNSUPPORTED_INPUT, AttemptOutcome.SKIPPED_CIRCUIT_OPEN)
    assert isinstance(final_error(_plan(), run), CircuitsOpen)


def test_attempt_outcomes_go_on_the_wire_as_their_plain_words() -> None:
    wire = Attempt("p", "m", "k", AttemptOutcome.SKIPPED_RATE_LIMITED, 1.0).as_dict()
    assert type(wire["outcome"]) is str and wire["outcome"] == "skipped_rate_limited"
    assert json.dumps(wire["outcome"]) == '"skipped_rate_limited"'


async def test_every_circuit_open_is_503_with_retry_after_the_soonest_recovery(fake_clock: FakeClock) -> None:
    registry = CircuitBreakerRegistry(CircuitSettings(), fake_clock, random.Random(7))
    guard = CircuitGuard(registry, RetryBudget(fake_clock))
    executor = Executor(
        config=_executor(ScriptedTransport([]), fake_clock).config,
        clock=fake_clock,
        transport=ScriptedTransport([]),
        limiter=RateLimiter(fake_clock),
        latency=LatencyTracker(),
        breaker=guard,
    )
    for candidate, retry_after_seconds in zip(executor.plan(_request().route).candidates, (30.0, 12.0), strict=True):
        guard.record_failure(
            candidate.provider, candidate.model, candidate.key_id, ErrorClass.RATE_LIMITED, retry_after_seconds
        )
    with pytest.raises(CircuitsOpen) as raised:
        await executor.execute(_request())
    assert raised.value.retry_after_seconds == pytest.approx(12.0)  # the second recovers first
    fake_clock.advance(11.5)
    with pytest.raises(CircuitsOpen) as raised:
        await executor.execute(_request())
    assert raised.value.retry_after_seconds == 1.0  # never below one second
    failure = failure_of(raised.value, method="POST", route="/llm/scenario", request_id="r")
    assert failure.status == 503 and failure.headers == {"Retry-After": "1"}


async def test_rate_limits_stay_429_when_circuits_are_closed(fake_clock: FakeClock) -> None:
    error = final_error(_plan("rate_limited"), _run())
    assert isinstance(error, AllCandidatesRateLimited) and error.status == 429
