"""tpm lanes through the executor: an attempt reserves its estimate when it takes its slot and its end settles
it (billed usage on success, nothing on a refusal, the whole reservation when cut); and the rule that turns a
provider's token headers into a wait. No sockets, a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from bkvy.clock import FakeClock
from bkvy.core.execution.executor import ExecutionRequest, Executor, tokens_to_reserve
from bkvy.core.execution.ledger import provider_wait_seconds
from bkvy.core.limits.rate_limits import LaneKey
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.errors import AllCandidatesRateLimited, HardTimeout
from bkvy.models.outcomes import AttemptOutcome
from bkvy.models.types import ChatMessage, GenerationOptions, RateLimitHint, RoutingMethod
from tests.core.execution.test_executor import ScriptedTransport, _executor

ESTIMATE = RouteRequest(RoutingMethod.SCENARIO, scenario="s", input_tokens_estimate=10, output_tokens_estimate=100)
BILLED = 50  # ScriptedTransport's usage: 30 prompt + 20 completion tokens


def _tpm_executor(transport: ScriptedTransport, clock: FakeClock, tpm: int = 1000, **timeouts: float) -> Executor:
    executor = _executor(transport, clock, **timeouts)
    for name, provider in executor.config.providers.items():
        for key_id in provider.keys:
            executor.limiter.configure(LaneKey(name, key_id, "m"), rpm=None, rpd=None, tpm=tpm)
    return executor


def _request(route: RouteRequest = ESTIMATE) -> ExecutionRequest:
    return ExecutionRequest("req1", "tester", route, (ChatMessage("user", "hi"),), GenerationOptions())


def _tokens_used(executor: Executor) -> dict[str, object]:
    return {row["provider"]: row["used"]["tpm"] for row in executor.limiter.status()}  # type: ignore[index]


def test_an_attempt_reserves_the_prompt_estimate_and_its_output_allowance() -> None:
    assert tokens_to_reserve(_request()) == 110


async def test_a_success_settles_its_reservation_to_the_billed_usage(fake_clock: FakeClock) -> None:
    executor = _tpm_executor(ScriptedTransport([200]), fake_clock)
    await executor.execute(_request())
    assert _tokens_used(executor) == {"first": BILLED, "second": 0}


async def test_a_refused_attempt_gives_its_tokens_back(fake_clock: FakeClock) -> None:
    executor = _tpm_executor(ScriptedTransport([503, 200]), fake_clock)
    result = await executor.execute(_request())
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.SERVER, AttemptOutcome.SUCCESS]
    assert _tokens_used(executor) == {"first": 0, "second": BILLED}


async def test_a_cut_attempt_keeps_its_whole_reservation(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([])
    executor = _tpm_executor(transport, fake_clock, soft_timeout_seconds=30.0, hard_timeout_seconds=10.0)
    opening = asyncio.ensure_future(executor.open_stream(_request()))
    await transport.is_streaming.wait()
    fake_clock.advance(10.0)
    with pytest.raises(HardTimeout):
        await opening
    assert _tokens_used(executor) == {"first": 110, "second": 0}


async def test_a_reservation_that_fits_no_lane_is_429_with_the_window_wait(fake_clock: FakeClock) -> None:
    transport = ScriptedTransport([200, 200])
    executor = _tpm_executor(transport, fake_clock, tpm=150)
    await executor.execute(_request())  # first: 50 billed of 150
    fake_clock.advance(1.0)
    big = ESTIMATE._replace(output_tokens_estimate=140)  # 150 tokens: fits an empty lane only
    await executor.execute(_request(big))  # second's lane is empty
    fake_clock.advance(1.0)
    with pytest.raises(AllCandidatesRateLimited) as refused:
        await executor.execute(_request(big))
    assert refused.value.retry_after_seconds == pytest.approx(58.0)  # the first lane's 50 leave at 60 s
    assert len(transport.urls) == 2


def _hint(**fields: object) -> RateLimitHint:
    return RateLimitHint(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hint,wait",
    [
        (_hint(remaining_tokens=5000, tokens_reset_seconds=6.0), 0.0),
        (_hint(remaining_tokens=100, tokens_reset_seconds=6.0), 6.0),  # 110 will not fit
        (_hint(remaining_input_tokens=9, remaining_output_tokens=500, tokens_reset_seconds=3.0), 3.0),
        (_hint(remaining_input_tokens=900, remaining_output_tokens=99, tokens_reset_seconds=3.0), 3.0),
        (_hint(remaining_input_tokens=900, remaining_output_tokens=100, tokens_reset_seconds=3.0), 0.0),
        (_hint(remaining_tokens=0), 0.0),  # no reset given: nothing to wait for (a 429 will say)
        (_hint(remaining_requests=0, reset_seconds=2.0, remaining_tokens=0, tokens_reset_seconds=9.0), 9.0),
        (_hint(remaining_requests=0, reset_seconds=2.0), 2.0),
    ],
)
def test_provider_token_headers_make_the_lane_wait_when_a_like_request_would_not_fit(
    hint: RateLimitHint, wait: float
) -> None:
    assert provider_wait_seconds(hint, ESTIMATE) == wait
