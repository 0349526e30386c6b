"""Replay recorded requests through the real ``Executor`` (routing, lanes, circuits, hedging, failover) on
virtual time: a ``FakeClock`` that jumps, whenever every task is parked, to the next timer or the next
recorded request. Each request starts at its recorded time; its outcome becomes a record by the gateway's own
``record_of``, so what is compared is what the log would have held.

Policy is applied again with the new config's rules, to the kinds of sensitive data the record names
(``pii_kinds``): a rule on them, residency without a source region, and the models' privacy and regions. What a
record cannot say is not replayed: the request's content (``auto``'s classifier: the recorded level and domain
are used), its data class, source region and tenant (their rules), streaming (whole replies), client keys' rpm
and budgets, and the adaptive bandit (an adaptive route ranks as a plain one).
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bkvy.api.observability import record_of
from bkvy.api.services import _configured_limiter, _hedge_policy
from bkvy.clock import FakeClock
from bkvy.core.circuits.breaker import CircuitBreakerRegistry, CircuitSettings, RetryBudget
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings
from bkvy.core.execution.executor import ExecutionRequest, Executor
from bkvy.core.policy.detector import RequestScan
from bkvy.core.policy.rules import PolicyInputs
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.scoring import with_weights
from bkvy.models.errors import BkvyError
from bkvy.models.policy import PiiKind
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel, RoutingMethod
from bkvy.replay.fitting import FleetFit
from bkvy.replay.transport import CURRENT_DEMAND, Demand, FittedFleetTransport
from bkvy.utils.records import TransactionRecord, parse_timestamp

_IDLE_PROBES = 100_000  # yields to wait for the ready queue to drain: a bound, never reached in practice
_PLACEHOLDER = (ChatMessage("user", "(replayed request: the log holds no content)"),)
_METHODS = {method.value: method for method in RoutingMethod}
_LEVELS = {level.value: level for level in IntelligenceLevel}
_KINDS = {kind.value: kind for kind in PiiKind}


class ReplayStalled(RuntimeError):
    """A replayed request waits on something virtual time cannot move (a bug, not an input error)."""


async def replay_records(
    records: Sequence[TransactionRecord], config: GatewayConfig, settings: Settings, fit: FleetFit, *, seed: int = 0
) -> tuple[list[TransactionRecord], int]:
    """Each record's request replayed against ``config``: the records it leaves, and the upstream calls made."""
    if not records:
        return [], 0
    clock = FakeClock(start=1000.0, wall_start=parse_timestamp(records[0].timestamp) or 0.0)
    rng = random.Random(seed)
    transport = FittedFleetTransport(config, fit, clock, seed=seed)
    executor = _executor(config, settings, clock, transport, rng)
    replayed: list[TransactionRecord] = []
    executor.add_observer(lambda outcome: replayed.append(record_of(outcome)))
    typical = _typical_demand(records)
    schedule = [
        (parse_timestamp(record.timestamp) or 0.0, _issuer(executor, config, record, typical)) for record in records
    ]
    await _drive(clock, schedule)
    return replayed, transport.calls


def _executor(
    config: GatewayConfig, settings: Settings, clock: FakeClock, transport: FittedFleetTransport, rng: random.Random
) -> Executor:
    """A fresh gateway's executor: new lanes, closed circuits, nothing learned (as after a restart)."""
    guard = None
    if settings.circuit_breaker_enabled:
        circuit_settings = CircuitSettings(
            failure_threshold=settings.circuit_failure_threshold,
            sliding_window_seconds=settings.circuit_sliding_window_seconds,
            sliding_window_threshold=settings.circuit_sliding_window_threshold,
            max_backoff_seconds=settings.circuit_max_backoff_seconds,
            flapping_threshold=settings.circuit_flapping_threshold,
        )
        guard = CircuitGuard(CircuitBreakerRegistry(circuit_settings, clock, rng), RetryBudget(clock))
    return Executor(
        config=config,
        clock=clock,
        transport=transport,
        limiter=_configured_limiter(config, clock),
        latency=LatencyTracker(),
        breaker=guard,
        soft_timeout_seconds=settings.request_soft_timeout_seconds,
        hard_timeout_seconds=settings.request_hard_timeout_seconds,
        stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        hedging=_hedge_policy(settings, clock),
    )


def _typical_demand(records: Sequence[TransactionRecord]) -> Demand:
    """The median tokens of the answered requests: what a request that failed (and has none) is given."""
    answered = [r for r in records if r.input_tokens is not None and r.output_tokens is not None]
    if not answered:
        return Demand(100, 100)
    return Demand(
        int(statistics.median(r.input_tokens or 0 for r in answered)),
        int(statistics.median(r.output_tokens or 0 for r in answered)),
    )


def demand_of(record: TransactionRecord, typical: Demand) -> Demand:
    if record.input_tokens is None or record.output_tokens is None:
        return typical._replace(request_id=record.request_id)
    return Demand(record.input_tokens, record.output_tokens, record.finish_reason == "length", record.request_id)


def route_of(record: TransactionRecord, config: GatewayConfig, demand: Demand) -> RouteRequest:
    """The route the record's request took: its method, level or scenario or model, wait and domain."""
    route = RouteRequest(
        _METHODS.get(record.routing_method, RoutingMethod.INTELLIGENCE),
        level=_LEVELS.get(record.intelligence_level),
        scenario=record.scenario or None,
        provider=record.requested_provider or None,
        model=record.requested_model or None,
        max_wait_seconds=record.max_wait_seconds,
        input_tokens_estimate=demand.input_tokens,
        output_tokens_estimate=demand.output_tokens or 500,
        domain=record.domain or None,
    )
    return with_weights(route, None, config.routing.optimize)


def _issuer(
    executor: Executor, config: GatewayConfig, record: TransactionRecord, typical: Demand
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def issue() -> None:
        demand = demand_of(record, typical)
        CURRENT_DEMAND.set(demand)  # this task's context, copied into its hedges' tasks
        request = _policed(
            executor,
            record,
            ExecutionRequest(
                request_id=record.request_id,
                client_id=record.client_id,
                route=route_of(record, config, demand),
                messages=_PLACEHOLDER,
                options=GenerationOptions(),
            ),
        )
        try:
            await executor.execute(request)
        except BkvyError:
            pass  # reported to the observers (a record) before it was raised

    return issue


def _policed(executor: Executor, record: TransactionRecord, request: ExecutionRequest) -> ExecutionRequest:
    """The request as the config's policy lets it leave, decided on the recorded kinds (api/policy_gate.py does
    this live on the text; a kind counts once, as the record holds no counts)."""
    if executor.policy.is_idle_for(None):
        return request
    kinds = frozenset(_KINDS[name] for name in record.pii_kinds.split(";") if name in _KINDS)
    route = request.route
    decision = executor.policy.decide(
        PolicyInputs(RequestScan(kinds, len(kinds)), level=route.level, scenario=route.scenario)
    )
    if decision.allowed is not None:
        route = route._replace(allowed=decision.allowed)
    return request._replace(route=route, policy=decision)


async def _drive(clock: FakeClock, schedule: Sequence[tuple[float, Callable[[], Coroutine[Any, Any, None]]]]) -> None:
    """Start each request at its wall time; when all are parked, move the clock to the next event."""
    wall_offset = clock.wall() - clock.now()
    running: set[asyncio.Task[None]] = set()
    index = 0
    while True:
        while index < len(schedule) and schedule[index][0] <= clock.wall():
            task = asyncio.create_task(schedule[index][1]())
            running.add(task)
            task.add_done_callback(running.discard)
            index += 1
        await _until_idle()
        if index == len(schedule) and not running:
            return
        upcoming = [clock.next_deadline()]
        if index < len(schedule):
            upcoming.append(schedule[index][0] - wall_offset)
        moments = [moment for moment in upcoming if moment is not None]
        if not moments:
            raise ReplayStalled(f"{len(running)} replayed requests wait on nothing the clock moves")
        clock.advance(max(0.0, min(moments) - clock.now()))


async def _until_idle() -> None:
    """Yield until no other callback is ready: every task is parked on the clock (or done)."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # asyncio's ready queue; another loop gets a fixed number of yields
    for _ in range(_IDLE_PROBES if ready is not None else 64):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return
