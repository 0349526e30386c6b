"""Walk a route plan: circuit breaker → rate limit → adapter → transport, recording every attempt.

SPEC §5–6: failover by failure class within the request's soft/hard timeouts. ``bad_request`` stops
at once; every other class moves on to the next candidate.

Whole and streamed replies share one loop (``Executor._walk``); what differs is how an attempt reads its
reply, a ``ReplyReader``: ``WholeReply`` sends and parses, ``StreamReply`` (``core.execution.streaming``)
opens the stream and reads until its first content, ``EmbeddingReply`` (``core.execution.embeddings``) reads
vectors. Each attempt (``Executor._attempt``) is one coroutine
that records its own outcome through its ``AttemptLedger``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from bkvy.clock import Clock
from bkvy.core.circuits.guard import CircuitGuard
from bkvy.core.circuits.types import CircuitKey
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.execution.embeddings import EmbeddingReply, EmbeddingResult
from bkvy.core.execution.hedging import HedgePolicy
from bkvy.core.execution.ledger import AttemptLedger, Bookkeeping, settle
from bkvy.core.execution.race import AttemptRace
from bkvy.core.execution.records import (
    AttemptSlot,
    ExecutionRequest,
    ExecutionResult,
    PreparedAttempt,
    RequestOutcome,
    Run,
)
from bkvy.core.execution.streaming import LiveStream, StreamReply
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter, RateLimitExceeded, TokenReservation
from bkvy.core.policy.engine import PolicyEngine, enforce, narrowed_words
from bkvy.core.routing.candidate_states import CandidateStates
from bkvy.core.routing.explain import Explanation, explain_route
from bkvy.core.routing.latency import LatencyTracker
from bkvy.core.routing.plan import Candidate, CandidateKey, CandidateState, RoutePlan, RouteRequest, rank_candidates
from bkvy.core.routing.replicas import ReplicaHealth, ReplicaRouter, prefix_key
from bkvy.core.routing.route_table import RouteTable
from bkvy.core.upstream.adapters import adapter_for
from bkvy.core.upstream.embeddings import embedding_adapter_for
from bkvy.core.upstream.thinking import thinking_mode, thinking_setting
from bkvy.core.upstream.transport import Transport
from bkvy.models.embeddings import EmbeddingCall
from bkvy.models.errors import (
    AllCandidatesFailed,
    AllCandidatesRateLimited,
    BkvyError,
    CircuitsOpen,
    HardTimeout,
    TimeoutTooLong,
    UnsupportedInput,
    UpstreamBadRequest,
    UpstreamError,
)
from bkvy.models.outcomes import Attempt, AttemptOutcome, DecisionReason, SkipReason
from bkvy.models.types import ChatMessage, ErrorClass, ProviderType, UpstreamCall, UpstreamRequest

T = TypeVar("T")

_RATE_LIMITED = frozenset({AttemptOutcome.RATE_LIMITED, AttemptOutcome.SKIPPED_RATE_LIMITED})
_CIRCUIT_SKIPS = frozenset({AttemptOutcome.SKIPPED_CIRCUIT_OPEN, AttemptOutcome.SKIPPED_CIRCUIT_NOT_CLOSED})
_CIRCUIT_SKIP_REASONS = frozenset({SkipReason.CIRCUIT_OPEN, SkipReason.CIRCUIT_NOT_CLOSED})
_MIN_RETRY_AFTER_SECONDS = 1.0

__all__ = [
    "Attempt",
    "EmbeddingResult",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "PreparedAttempt",
    "ReplyReader",
    "RequestOutcome",
    "Run",
]


class ReplyReader(Protocol[T]):
    """How one attempt reads its upstream reply: the part that differs between a whole reply and a stream.

    ``read`` runs within the attempt timeout and raises UpstreamError to fail the attempt over. When it
    returns, the attempt's success is recorded (a whole reply), or its ledger went to what it returned (a
    stream, which records its end when it ends)."""

    @property
    def is_stream(self) -> bool: ...  # ask the upstream for a streamed reply

    @property
    def timeout_message(self) -> str: ...  # the failure recorded when the attempt timeout cuts ``read``

    async def read(self, prepared: PreparedAttempt, ledger: AttemptLedger) -> T: ...

    def settled(self, reply: T, run: Run) -> T: ...  # the race's answer, once every loser is recorded

    def discard(self, reply: T) -> None: ...  # a reply that lost the race after all (release what it holds)


class WholeReply:
    """Send, read the whole reply, parse it: the attempt succeeded."""

    is_stream = False
    timeout_message = "upstream timed out"

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def read(self, prepared: PreparedAttempt, ledger: AttemptLedger) -> ExecutionResult:
        reply = await self._transport.send(prepared.upstream_request)
        return ledger.succeeded(prepared.adapter.parse_reply(reply))

    def discard(self, reply: ExecutionResult) -> None:
        pass  # a whole reply holds nothing open

    def settled(self, reply: ExecutionResult, run: Run) -> ExecutionResult:
        if not run.hedges:
            return reply
        return settle(reply.completion, reply.candidate, reply.plan, run, reply.total_ms / 1000.0 + run.start)


class Executor:
    """Plans each request and runs its attempts (``AttemptRace``) within its deadline."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        clock: Clock,
        transport: Transport,
        limiter: RateLimiter,
        latency: LatencyTracker,
        breaker: CircuitGuard | None = None,
        soft_timeout_seconds: float = 30.0,
        hard_timeout_seconds: float = 120.0,
        stream_idle_timeout_seconds: float = 60.0,
        hedging: HedgePolicy | None = None,
        adaptive: AdaptiveRouting | None = None,
        replica_health: ReplicaHealth | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.limiter = limiter
        self.latency = latency
        self.hedging = hedging
        self.soft_timeout_seconds = soft_timeout_seconds
        self._breaker = breaker
        self._hard_timeout_seconds = hard_timeout_seconds
        self._transport = transport  # kept for ``with_config``, as is the stream idle timeout
        self._stream_idle_timeout_seconds = stream_idle_timeout_seconds
        self.replica_health = replica_health or ReplicaHealth()  # what the /metrics poller writes
        self.replicas = ReplicaRouter.from_config(config, self.replica_health)  # None: no replicated model
        self._books = Bookkeeping(clock, config, latency, limiter, breaker, replicas=self.replicas)
        self._whole = WholeReply(transport)
        self._stream = StreamReply(transport, clock, idle_timeout_seconds=stream_idle_timeout_seconds)
        self._embeddings = EmbeddingReply(transport, config)
        self._route_table = RouteTable.compile(config)
        self.policy = PolicyEngine.compile(config)  # issue 19: rules, each model's privacy and region
        self._states = CandidateStates(
            route_table=self._route_table, clock=clock, limiter=limiter, latency=latency, breaker=breaker
        )
        self._model_timeouts = {
            (provider_name, model_name): model.timeout_seconds
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
            if model.timeout_seconds is not None
        }
        self._unhedged = _unhedged_models(config)
        self.adaptive = adaptive  # kept across reloads; ``_sampler`` only while a route of this config is adaptive
        self._sampler = adaptive.sampled if adaptive is not None and adaptive.arms else None

    @property
    def breaker(self) -> CircuitGuard | None:
        """The circuits and retry budget every attempt asks (shared by the executors of successive configs)."""
        return self._breaker

    def add_observer(self, observer: Callable[[RequestOutcome], None]) -> None:
        self._books.observers.append(observer)

    def with_config(self, config: GatewayConfig) -> Executor:
        """An executor for ``config`` sharing this one's long-lived state (transport, lanes, learned latency,
        circuits, hedge budget, observers); its route table and candidate states are its own. A config reload
        swaps the reference the handlers read: requests already running finish on this executor."""
        executor = Executor(
            config=config,
            clock=self.clock,
            transport=self._transport,
            limiter=self.limiter,
            latency=self.latency,
            breaker=self._breaker,
            soft_timeout_seconds=self.soft_timeout_seconds,
            hard_timeout_seconds=self._hard_timeout_seconds,
            stream_idle_timeout_seconds=self._stream_idle_timeout_seconds,
            hedging=self.hedging,
            adaptive=self.adaptive,
            replica_health=self.replica_health,
        )
        executor._books.observers.extend(self._books.observers)
        return executor

    def candidate_state(self, key: CandidateKey) -> CandidateState:
        """The live state of one candidate: its lane's waits, its learned latency and its circuit's view."""
        return self._states.state(key)

    def plan(self, route: RouteRequest, messages: Sequence[ChatMessage] = ()) -> RoutePlan:
        """``plan_route`` over live state: the states kept since the last change, the others read now. An
        adaptive route is planned over the bandit's draws (``RouteRequest.samples``). A replicated model's
        candidates go in its replica order: by ``route.affinity_key``, else by ``messages``' opening."""
        if self._sampler is not None:
            route = self._sampler(route)
        plan = rank_candidates(route, self._route_table, self._states.kept, self._states.refresh())
        return self._in_replica_order(plan, route, messages)

    def _in_replica_order(
        self, plan: RoutePlan, route: RouteRequest, messages: Sequence[ChatMessage], *, peek: bool = False
    ) -> RoutePlan:
        if self.replicas is None:
            return plan
        return self.replicas.order(plan, lambda: route.affinity_key or prefix_key(messages), peek=peek)

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        """Route and run one request. Raises a BkvyError (429/502/503/504...) when it cannot be served."""
        result, report = await self.execute_then_report(request)
        report()
        return result

    async def execute_then_report(self, request: ExecutionRequest) -> tuple[ExecutionResult, Callable[[], None]]:
        """``execute``, but a success is reported to the observers only when the caller calls the returned
        function: the HTTP layer sends the reply first, so records and metrics are off the latency path.
        Failures are reported before they are raised, as with ``execute``."""
        run = self._new_run()
        result = await self._run_guarded(request, run, self._whole)
        return result, lambda: self._books.report(request, result, None, run)

    def report_cache_hit(
        self, request: ExecutionRequest, result: ExecutionResult, saved_usd: float
    ) -> Callable[[], None]:
        """A reply served from the response cache (issue 20 §1): its report for the observers, as
        ``execute_then_report``'s, with no attempt, cost 0 and what the original call cost."""
        now_wall = self.clock.wall()
        outcome = RequestOutcome(
            request, result, None, (), result.total_ms, 0.0, now_wall, plan=result.plan, cache_saved_usd=saved_usd
        )
        return lambda: self._books.notify(outcome)

    async def embed_then_report(self, request: ExecutionRequest) -> tuple[EmbeddingResult, Callable[[], None]]:
        """``execute_then_report`` for an embeddings request (``request.embedding`` set, its route
        ``wants_embeddings``): the same plan, limits, circuits, failover, hedging, deadline and records."""
        run = self._new_run()
        reply = await self._run_guarded(request, run, self._embeddings)
        return reply, lambda: self._books.report(request, reply.result, None, run)

    async def open_stream(self, request: ExecutionRequest) -> LiveStream:
        """Walk the plan until a candidate's stream yields its first content (the deadline bounds that wait;
        after it, only ``STREAM_IDLE_TIMEOUT_SECONDS`` between chunks ends the stream).

        Raises the same BkvyErrors as ``execute`` when no candidate gets that far (the outcome is then
        already reported); otherwise the outcome is reported when the returned stream ends.
        """
        return await self._run_guarded(request, self._new_run(), self._stream)

    def _new_run(self) -> Run:
        return Run(start=self.clock.now(), started_wall=self.clock.wall())

    async def _run_guarded(self, request: ExecutionRequest, run: Run, reader: ReplyReader[T]) -> T:
        """Plan, then race the attempts within the request's deadline (504 at it, cutting what is in flight);
        failures are reported."""
        try:
            if request.policy is not None:
                self._enforce_policy(request)
            run.plan = self.plan(request.route, request.messages)
            run.deadline_seconds, run.is_client_deadline = self._deadline(request, run.plan)
            async with self.clock.timeout(run.start + run.deadline_seconds - self.clock.now()):
                return await AttemptRace(self, request, run, reader).run()
        except TimeoutError:
            self._cut_at_deadline(run)
            error = HardTimeout(f"no answer within {run.deadline_seconds:g}s", attempts=run.attempt_dicts())
            self._books.report(request, None, error, run)
            raise error from None
        except BkvyError as error:
            error.attempts = error.attempts if error.attempts is not None else run.attempt_dicts()
            if isinstance(error, CircuitsOpen) and request.policy is not None and request.policy.is_narrowed:
                error.message = f"{error.message} (candidates narrowed by policy {narrowed_words(request.policy)})"
                error.args = (error.message,)
            self._books.report(request, None, error, run)
            raise

    def _enforce_policy(self, request: ExecutionRequest) -> None:
        """400 for ``block``, 403 when policy allows none of the route's models (issue 19)."""
        assert request.policy is not None
        listed = request.route._replace(allowed=None)
        pairs = {(e.key.provider, e.key.model) for group in self._route_table.listed_groups_for(listed) for e in group}
        enforce(request.policy, pairs)

    def _deadline(self, request: ExecutionRequest, plan: RoutePlan) -> tuple[float, bool]:
        """Seconds from the start the request may take, and whether the client's own ``timeout_seconds`` set
        them. The gateway's is the hard timeout, or the longest ``timeout_seconds`` of a model in the plan.
        Raises TimeoutTooLong (400) for a client deadline past the gateway's."""
        gateway_seconds = self._hard_timeout_seconds
        if self._model_timeouts:
            for candidate in plan.iter_candidates():
                model_seconds = self._model_timeouts.get((candidate.provider, candidate.model), 0.0)
                gateway_seconds = max(gateway_seconds, model_seconds)
        if request.timeout_seconds is None:
            return gateway_seconds, False
        if request.timeout_seconds > gateway_seconds:
            raise TimeoutTooLong(
                f"timeout_seconds={request.timeout_seconds:g} is above this request's hard timeout "
                f"({gateway_seconds:g}s); send at most {gateway_seconds:g}"
            )
        return request.timeout_seconds, True

    def _cut_at_deadline(self, run: Run) -> None:
        """SPEC §5: the attempts the deadline cut are recorded too. The gateway's own deadline is a timeout for
        their circuits; the client's shorter one says nothing about the upstream."""
        outcome = (
            AttemptOutcome.CANCELLED_CLIENT_TIMEOUT if run.is_client_deadline else AttemptOutcome.CANCELLED_HARD_TIMEOUT
        )
        for ledger in list(run.in_flight):
            ledger.cut(outcome, counts_as_timeout=not run.is_client_deadline)

    # -- what the race uses --------------------------------------------------------------------------------------
    async def attempt(self, request: ExecutionRequest, slot: AttemptSlot, run: Run, reader: ReplyReader[T]) -> T | None:
        """One candidate, start to end: rate-limit slot, build, send and read (within its model's own
        ``timeout_seconds``, if it has one). Records its own outcome in ``run``; None when the candidate was
        skipped or failed (fail over). Raises UpstreamBadRequest when the upstream rejected the request itself.
        A cancellation (the race, the deadline) leaves the attempt open in ``run.in_flight`` for its canceller."""
        candidate = slot.candidate
        prepared = await self._prepare(request, slot, run, is_stream=reader.is_stream)
        if prepared is None:
            return None
        ledger = slot.ledger = AttemptLedger(self._books, request, run, prepared, is_hedge=slot.is_hedge)
        model_timeout = self._model_timeouts.get((candidate.provider, candidate.model))
        try:
            if model_timeout is None or self.clock.now() + model_timeout >= run.start + run.deadline_seconds:
                return await reader.read(prepared, ledger)  # the request's deadline is the only one
            async with self.clock.timeout(model_timeout):
                return await reader.read(prepared, ledger)
        except TimeoutError:
            error = UpstreamError(ErrorClass.TIMEOUT, reader.timeout_message)
        except UpstreamError as failure:
            error = failure
        ledger.failed(error)
        if error.error_class is ErrorClass.BAD_REQUEST:
            raise UpstreamBadRequest(
                f"{candidate.provider} rejected the request: {error.message}", attempts=run.attempt_dicts()
            )
        return None

    def is_past_soft_timeout(self, run: Run) -> bool:
        """Past the soft timeout (SPEC §6): closed circuits only, fastest first."""
        return self.clock.now() - run.start >= self.soft_timeout_seconds

    def is_hedgeable(self, request: ExecutionRequest, candidate: Candidate) -> bool:
        """Config allows hedging this candidate, and sending a hedge to it (``"hedge": false`` on its model, or
        on its entry in the request's scenario, says no)."""
        pair = (candidate.provider, candidate.model)
        return pair not in self._unhedged.get(None, ()) and pair not in self._unhedged.get(request.route.scenario, ())

    def may_try(self, candidate: Candidate, fast_mode: bool, tried_pairs: set[tuple[str, str]], run: Run) -> bool:
        """The breaker's say on this candidate; a refusal is recorded as a skipped attempt."""
        if self._breaker is None:
            return True
        skip = self._breaker.refusal(
            candidate.provider,
            candidate.model,
            candidate.key_id,
            fast_mode=fast_mode,
            is_retry=(candidate.provider, candidate.model) in tried_pairs,
            is_panic=candidate.reason == DecisionReason.PANIC_MODE,
        )
        if skip is None:
            return True
        run.record_skip(candidate, SkipReason(skip), fast_mode=fast_mode)
        return False

    def final_error(self, plan: RoutePlan, run: Run) -> BkvyError:
        error = final_error(plan, run)
        if isinstance(error, CircuitsOpen) and self._breaker is not None:
            error.retry_after_seconds = _seconds_to_recovery(self._breaker, plan, run, self.clock.now())
        return error

    async def _prepare(
        self, request: ExecutionRequest, slot: AttemptSlot, run: Run, *, is_stream: bool
    ) -> PreparedAttempt | None:
        """Take a rate-limit slot (unless the race took it) and build the upstream request; None (recorded)
        when the candidate is skipped."""
        candidate = slot.candidate
        lane = LaneKey(candidate.provider, candidate.key_id, candidate.model)
        if slot.has_slot:
            waited, reservation = 0.0, slot.reservation
        else:
            taken = await self._take_slot(request, candidate, lane, run, slot.fast_mode)
            if taken is None:
                return None
            waited, reservation = taken
        fast_mode = slot.fast_mode or self.is_past_soft_timeout(run)
        provider = self.config.providers[candidate.provider]
        call = self._upstream_call(request, candidate.provider, candidate.model, candidate.key_id, is_stream=is_stream)
        adapter = adapter_for(provider.type)
        try:
            upstream_request = _upstream_request(request, call, provider.type)
        except UpstreamError:
            # This provider cannot take this input (e.g. a remote image URL): another candidate may.
            self.limiter.settle(reservation, 0)  # never sent: its tokens go back
            run.record_skip(candidate, SkipReason.UNSUPPORTED_INPUT, fast_mode=fast_mode, waited_seconds=waited)
            return None
        return PreparedAttempt(candidate, lane, adapter, upstream_request, waited, fast_mode, reservation)

    def _upstream_call(
        self, request: ExecutionRequest, provider_name: str, model: str, key_id: str, *, is_stream: bool
    ) -> UpstreamCall:
        provider = self.config.providers[provider_name]
        key, base_url = provider.target(model, key_id) or (None, "")
        assert key is not None  # candidates come from this config: each names a key (and replica) of it
        mode = thinking_mode(level=request.route.level, disable_thinking=request.options.disable_thinking)
        return UpstreamCall(
            base_url=base_url,
            model=model,
            api_key=key.api_key,
            messages=request.messages,
            options=request.options,
            thinking=thinking_setting(provider.thinking_spec(model), mode),
            endpoint=provider.models[model].endpoint,
            stream=is_stream,
        )

    def explain(self, request: ExecutionRequest) -> Explanation:
        """The plan for ``request`` with every candidate and why (``core.routing.explain``), over live states read
        now. Sends nothing, takes no rate-limit slot, changes no circuit. Raises Unknown*/NoCandidates (404)."""
        table = self._route_table
        route = request.route if self._sampler is None else self._sampler(request.route)  # an adaptive route's draws
        keys = [entry.key for group in table.listed_groups_for(route) for entry in group]
        snapshot = {key: self._states.state(key) for key in keys}

        def accepts_input(key: CandidateKey) -> bool:  # the check ``_prepare`` makes before sending
            call = self._upstream_call(request, key.provider, key.model, key.key_id, is_stream=False)
            try:
                _upstream_request(request, call, self.config.providers[key.provider].type)
            except UpstreamError:
                return False
            return True

        return explain_route(
            route,
            table,
            snapshot,
            now=self.clock.now(),
            accepts_input=accepts_input,
            reorder=lambda plan: self._in_replica_order(plan, route, request.messages, peek=True),
            policy_words="policy" if request.policy is None else f"policy {narrowed_words(request.policy)}",
        )

    def is_slot_shared(self, candidate: Candidate) -> bool:
        """Whether ``candidate``'s rate-limit slot is taken only by asking Redis (REDIS_URL, a limited lane):
        ``try_slot`` cannot take it up front, the attempt takes it itself (one round trip)."""
        return self.limiter.is_shared(LaneKey(candidate.provider, candidate.key_id, candidate.model))

    def try_slot(self, request: ExecutionRequest, candidate: Candidate) -> TokenReservation | None:
        """A rate-limit slot on ``candidate``'s lane if one is free now (a hedge or a switch takes it up front),
        its tokens reserved; None when the lane would make it wait."""
        lane = LaneKey(candidate.provider, candidate.key_id, candidate.model)
        return self.limiter.try_acquire(lane, tokens_to_reserve(request))

    async def _take_slot(
        self, request: ExecutionRequest, candidate: Candidate, lane: LaneKey, run: Run, fast_mode: bool
    ) -> tuple[float, TokenReservation] | None:
        """Seconds waited for a rate-limit slot and the tokens it reserved (tpm lanes), or None when it would
        come after the request's max wait (then the wait it would have taken is kept for Retry-After)."""
        tokens = tokens_to_reserve(request)
        reservation = self.limiter.try_acquire(lane, tokens)
        if reservation is not None:
            return 0.0, reservation
        deadline = run.start + (request.route.max_wait_seconds or 0.0)
        try:
            slot = await self.limiter.acquire(lane, deadline, tokens)
        except RateLimitExceeded as exceeded:
            run.rate_limit_waits.append(exceeded.retry_after_seconds)
            run.record_skip(candidate, SkipReason.RATE_LIMITED, fast_mode=fast_mode)
            return None
        run.queue_wait_seconds += slot.queue_seconds
        run.rate_limit_wait_seconds += slot.rate_limit_seconds
        return slot.total_seconds, slot.reservation


def tokens_to_reserve(request: ExecutionRequest) -> int:
    """What one attempt reserves on a tpm lane: the prompt's estimated tokens and the output it may get
    (``max_tokens``, else the route's output estimate), as OpenAI counts a request against its own tpm."""
    route = request.route
    return route.input_tokens_estimate + route.output_tokens_estimate


def _upstream_request(request: ExecutionRequest, call: UpstreamCall, provider_type: ProviderType) -> UpstreamRequest:
    """The chat request, or for an embeddings request the embeddings one. Raises UpstreamError for input this
    provider cannot take."""
    if request.embedding is None:
        return adapter_for(provider_type).build_request(call)
    embedding_call = EmbeddingCall(call.base_url, call.model, call.api_key, request.embedding, call.endpoint)
    return embedding_adapter_for(provider_type).build_request(embedding_call)


def _unhedged_models(config: GatewayConfig) -> dict[str | None, frozenset[tuple[str, str]]]:
    """(provider, model) pairs never hedged: under None those whose model says ``"hedge": false``, under a
    scenario's name those whose entry in it does."""
    unhedged: dict[str | None, frozenset[tuple[str, str]]] = {
        None: frozenset(
            (provider_name, model_name)
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
            if not model.hedge
        )
    }
    for name, entries in config.routing.scenarios.items():
        pairs = frozenset((entry.provider, entry.model) for entry in entries if not entry.hedge)
        if pairs:
            unhedged[name] = pairs
    return unhedged


def final_error(plan: RoutePlan, run: Run) -> BkvyError:
    """The error for a plan that ran out: 429 every candidate rate-limited, 503 every circuit open, 400 no
    candidate accepts the input, else 502."""
    plan_wait = plan.rate_limit_retry_after_seconds
    waits = run.rate_limit_waits + ([plan_wait] if plan_wait is not None else [])
    if waits and _is_every_candidate_rate_limited(run.attempts):
        return AllCandidatesRateLimited(
            "every candidate is rate-limited", retry_after_seconds=min(waits), attempts=run.attempt_dicts()
        )
    sent_count = sum(1 for a in run.attempts if a.outcome.was_sent)
    if not sent_count:
        skips = {a.outcome for a in run.attempts} | {AttemptOutcome.skipped(SkipReason(s.reason)) for s in plan.skipped}
        if skips == {AttemptOutcome.SKIPPED_UNSUPPORTED_INPUT}:
            return UnsupportedInput(
                "no candidate model accepts this input (e.g. its images or tools)", attempts=run.attempt_dicts()
            )
        if skips & _CIRCUIT_SKIPS:
            return CircuitsOpen("every candidate's circuit is open", attempts=run.attempt_dicts())
    return AllCandidatesFailed(f"all {sent_count} attempts failed", attempts=run.attempt_dicts())


def _seconds_to_recovery(breaker: CircuitGuard, plan: RoutePlan, run: Run, now: float) -> float | None:
    """Until the soonest of the circuit-skipped candidates may take traffic again (its ``open_until``), at
    least 1 s; None when none of them recovers by time alone (auth-open)."""
    keys = [CircuitKey(s.provider, s.model, s.key_id) for s in plan.skipped if s.reason in _CIRCUIT_SKIP_REASONS]
    keys += [CircuitKey(a.provider, a.model, a.key_id) for a in run.attempts if a.outcome in _CIRCUIT_SKIPS]
    soonest = breaker.soonest_open_until(keys)
    return None if soonest is None else max(soonest - now, _MIN_RETRY_AFTER_SECONDS)


def _is_every_candidate_rate_limited(attempts: Sequence[Attempt]) -> bool:
    """Every candidate that got as far as its rate limit (sent, or refused a slot) was turned away by it.
    Candidates passed over by their circuit or for their input do not count either way."""
    return all(
        a.outcome in _RATE_LIMITED
        for a in attempts
        if a.outcome.was_sent or a.outcome is AttemptOutcome.SKIPPED_RATE_LIMITED
    )
