"""One request's walk through its plan, within its deadline, with hedging (SPEC §6).

The walk tries candidates in plan order; a failed attempt fails over to the next. The attempt in flight runs
*inline*, in the request's own task, so a request answered in time costs one timer and no extra task. The
timer fires once, at the soonest of:

- the attempt's **hedge delay** (its model's learned p95 × ``HEDGE_DELAY_FACTOR``, at least
  ``HEDGE_MIN_DELAY_MS``; none before the model has enough observations), when hedging is on, and
- the **soft timeout** (``REQUEST_SOFT_TIMEOUT_SECONDS`` after the request started).

Then, within the hedge budget, a **hedge** starts: a second attempt, in its own task, on the fastest other
candidate whose circuit is closed and whose rate-limit slot is free now (the plan re-ranked fastest-first,
``RouteRequest.fast_mode``). Whichever answers first wins; the other is cancelled (its connection closed)
and recorded ``hedge_lost``. With hedging off for this request, or its budget spent, the soft timeout
**switches** instead: the attempt in flight is cancelled (``cancelled_soft_timeout``, not a failure) and the
fastest other candidate gets the rest of the deadline. With no other candidate the attempt simply goes on.

What it must never do: kill the last attempt that can still answer before the deadline; count a cancelled
attempt (hedge lost, switched, client gone, the client's own deadline) against its circuit; hedge past an
open circuit or a full rate limit; hedge a stream after its first content (a committed stream has left the
race). The deadline itself is ``Executor``'s: it cancels this task and records what was in flight.

The race interrupts its own task the way ``clock.Deadline`` does: it sets a reason and cancels the task, and
the inline ``await`` turns that cancellation back into the reason (``_take_interrupt``). It does so only while
the task waits in one of those two awaits (``_phase``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from bkvy.clock import Timer
from bkvy.core.execution.records import AttemptSlot, ExecutionRequest, Run
from bkvy.core.routing.plan import Candidate, CandidateKey
from bkvy.models.errors import ClientDisconnected, UpstreamBadRequest
from bkvy.models.outcomes import AttemptOutcome, DecisionReason, HedgeOutcome

if TYPE_CHECKING:
    from bkvy.core.execution.executor import Executor, ReplyReader

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Interrupt(enum.Enum):
    HEDGE_WON = "hedge_won"  # the hedge answered while the inline attempt still ran
    SWITCH = "switch"  # the soft timeout, with no hedge: move to ``_switch_to``
    CLIENT_GONE = "client_gone"  # the client closed the connection


class _Phase(enum.Enum):
    IDLE = "idle"
    INLINE = "inline"  # awaiting the inline attempt: every interrupt applies
    HEDGE = "hedge"  # awaiting the hedge, the inline attempt having failed: only the client's leaving applies


class AttemptRace(Generic[T]):
    """Runs one request's attempts (``run``) and records every one of them in ``Run``."""

    def __init__(self, executor: Executor, request: ExecutionRequest, run: Run, reader: ReplyReader[T]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._executor = executor
        self._request = request
        self._run = run
        self._reader = reader
        self._task = task
        self._base_cancelling = task.cancelling()
        self._phase = _Phase.IDLE
        self._interrupt: _Interrupt | None = None
        self._timer: Timer | None = None
        self._is_trigger_spent = False
        self._inline: AttemptSlot | None = None
        self._inline_started_at = 0.0
        self._hedge: tuple[AttemptSlot, asyncio.Task[T | None]] | None = None
        self._switch_to: AttemptSlot | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._attempted: set[CandidateKey] = set()
        self._tried_pairs: set[tuple[str, str]] = set()

    async def run(self) -> T:
        """The first answer; raises the plan's final error (or ClientDisconnected, UpstreamBadRequest)."""
        plan = self._run.plan
        assert plan is not None
        if self._executor.hedging is not None:
            self._executor.hedging.budget.record_request()
        candidates = plan.iter_candidates()
        try:
            while True:
                slot, self._switch_to = self._switch_to or self._next_slot(candidates), None
                if slot is None:
                    reply = await self._await_hedge()
                    if reply is not None:
                        return reply
                    raise self._executor.final_error(plan, self._run)
                reply = await self._run_inline(slot)
                if reply is not None:
                    return reply
        finally:
            self._close()

    # -- the inline attempt ------------------------------------------------------------------------------------
    def _next_slot(self, candidates: Iterator[Candidate]) -> AttemptSlot | None:
        """The plan's next candidate the breaker allows (refusals are recorded as skips)."""
        executor, run = self._executor, self._run
        for candidate in candidates:
            if _key(candidate) in self._attempted:
                continue
            fast_mode = executor.is_past_soft_timeout(run)
            if not executor.may_try(candidate, fast_mode, self._tried_pairs, run):
                continue
            return AttemptSlot(candidate, fast_mode=fast_mode)
        return None

    async def _run_inline(self, slot: AttemptSlot) -> T | None:
        """Run ``slot`` in this task until it ends or the race interrupts it; the race's answer, or None to go on."""
        self._start(slot)
        self._inline = slot
        self._inline_started_at = self._executor.clock.now()
        self._arm_trigger(slot)
        self._phase = _Phase.INLINE
        try:
            reply = await self._executor.attempt(self._request, slot, self._run, self._reader)
        except asyncio.CancelledError:
            self._phase = _Phase.IDLE
            interrupt = self._take_interrupt()
            if interrupt is None:
                raise
            return await self._interrupted(slot, interrupt)
        except UpstreamBadRequest:
            self._phase = _Phase.IDLE
            self._cut_hedge(AttemptOutcome.HEDGE_LOST, HedgeOutcome.LOST)
            raise
        finally:
            self._phase = _Phase.IDLE
            self._inline = None
            self._disarm()
        if reply is not None:
            self._cut_hedge(AttemptOutcome.HEDGE_LOST, HedgeOutcome.LOST)
            return self._reader.settled(reply, self._run)
        return await self._await_hedge()  # the inline attempt failed: a running hedge is the next chance

    def _start(self, slot: AttemptSlot) -> None:
        self._attempted.add(_key(slot.candidate))
        self._tried_pairs.add((slot.candidate.provider, slot.candidate.model))

    async def _interrupted(self, slot: AttemptSlot, interrupt: _Interrupt) -> T | None:
        if interrupt is _Interrupt.CLIENT_GONE:
            raise self._client_gone()
        if slot.ledger is not None and slot.ledger.is_open:
            if interrupt is _Interrupt.HEDGE_WON:
                slot.ledger.cut(AttemptOutcome.HEDGE_LOST, bills_prompt=True)
            else:
                slot.ledger.cut(AttemptOutcome.CANCELLED_SOFT_TIMEOUT)
        if interrupt is _Interrupt.SWITCH:
            return None  # ``_switch_to`` is next
        assert self._hedge is not None
        _, task = self._hedge
        self._hedge = None
        self._run.hedges.append(HedgeOutcome.WON)
        reply = task.result()
        assert reply is not None
        return self._reader.settled(reply, self._run)

    async def _await_hedge(self) -> T | None:
        """The hedge's answer once the inline attempt has failed (None when there is no hedge or it failed)."""
        if self._hedge is None:
            return None
        _, task = self._hedge
        self._phase = _Phase.HEDGE
        try:
            reply = await task
        except asyncio.CancelledError:
            interrupt = self._take_interrupt()
            if interrupt is None:
                raise  # the deadline: the executor records the hedge it cut
            raise self._client_gone() from None
        except UpstreamBadRequest:
            reply = None
        finally:
            self._phase = _Phase.IDLE
        self._hedge = None
        self._run.hedges.append(HedgeOutcome.WON if reply is not None else HedgeOutcome.LOST)
        return None if reply is None else self._reader.settled(reply, self._run)

    # -- the trigger: hedge or switch ---------------------------------------------------------------------------
    def _arm_trigger(self, slot: AttemptSlot) -> None:
        if self._is_trigger_spent:
            return
        executor, now = self._executor, self._executor.clock.now()
        soft_at = self._run.start + executor.soft_timeout_seconds
        # An attempt that starts past the soft timeout (a failover) is itself the switch: only its own hedge
        # delay may still start a hedge.
        at = soft_at if now < soft_at else float("inf")
        if self._may_hedge(slot.candidate):
            assert executor.hedging is not None
            delay = executor.hedging.delay_seconds(executor.latency, (slot.candidate.provider, slot.candidate.model))
            if delay is not None:
                at = min(at, now + delay)
        if at != float("inf"):
            self._timer = executor.clock.call_later(at - now, self._on_trigger)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_trigger(self) -> None:
        """The attempt in flight is slow: hedge it, or (past the soft timeout) switch away from it."""
        self._timer = None
        slot = self._inline
        if self._phase is not _Phase.INLINE or slot is None:
            return
        self._watch_client()
        executor = self._executor
        if self._may_hedge(slot.candidate):
            self._is_trigger_spent = True
            self._try_hedge()
            return
        if executor.is_past_soft_timeout(self._run):
            self._switch()
            return
        # Armed for the soft timeout but woken a float's rounding early: wait the rest.
        self._timer = executor.clock.call_later(
            self._run.start + executor.soft_timeout_seconds - executor.clock.now(), self._on_trigger
        )

    def _try_hedge(self) -> None:
        executor = self._executor
        assert executor.hedging is not None
        if not self._hedge_targets():
            self._run.hedges.append(HedgeOutcome.SKIPPED_NO_CANDIDATE)
            return
        if not executor.hedging.budget.try_acquire_hedge():
            self._run.hedges.append(HedgeOutcome.SKIPPED_BUDGET)
            # As with hedging off: the soft timeout switches (now, if this trigger was the soft timeout).
            until_soft = self._run.start + executor.soft_timeout_seconds - executor.clock.now()
            if until_soft > 0:
                self._timer = executor.clock.call_later(until_soft, self._on_soft_switch)
            elif self._inline_started_at < self._run.start + executor.soft_timeout_seconds:
                self._on_soft_switch()
            return
        target = self._fastest_free_candidate(is_hedge=True)
        if target is None:
            self._run.hedges.append(HedgeOutcome.SKIPPED_NO_CANDIDATE)
            return
        target.is_hedge = True
        self._start(target)
        hedge = executor.attempt(self._request, target, self._run, self._reader)
        task: asyncio.Task[T | None] = asyncio.create_task(hedge)
        task.add_done_callback(self._on_hedge_done)
        self._hedge = (target, task)

    def _on_soft_switch(self) -> None:
        """The soft timeout after a hedge the budget refused: switch, as with hedging off."""
        self._timer = None
        if self._phase is _Phase.INLINE and self._inline is not None:
            self._switch()

    def _switch(self) -> None:
        """Cancel the inline attempt (no failure) for the fastest other candidate with a free slot, if any."""
        self._is_trigger_spent = True
        target = self._fastest_free_candidate(is_hedge=False)
        if target is not None:
            self._switch_to = target
            self._interrupt_with(_Interrupt.SWITCH)

    def _on_hedge_done(self, task: asyncio.Task[T | None]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:  # retrieved: an upstream 400 on the hedge is the hedge's failure only
            return
        if task.result() is not None and self._phase is _Phase.INLINE:
            self._interrupt_with(_Interrupt.HEDGE_WON)

    def _may_hedge(self, candidate: Candidate) -> bool:
        return (
            self._executor.hedging is not None
            and self._request.hedge
            and self._executor.is_hedgeable(self._request, candidate)
        )

    def _hedge_targets(self, *, is_hedge: bool = True) -> list[Candidate]:
        """Other candidates a hedge (or, ``is_hedge`` false, a switch) may go to, fastest first: closed circuits, not
        tried yet; a hedge never to a candidate config keeps out of hedging (``"hedge": false``)."""
        executor = self._executor
        plan = executor.plan(self._request.route._replace(fast_mode=True), self._request.messages)
        return [
            candidate
            for candidate in plan.iter_candidates()
            if candidate.reason is not DecisionReason.PANIC_MODE
            and _key(candidate) not in self._attempted
            and (not is_hedge or executor.is_hedgeable(self._request, candidate))
        ]

    def _fastest_free_candidate(self, *, is_hedge: bool) -> AttemptSlot | None:
        """The fastest other candidate whose rate-limit slot is free now, its slot taken; None when none is.

        A hedge may also go to a candidate whose lane is shared through Redis (its slot cannot be taken up front
        without a round trip): the hedge attempt takes it itself, and a full lane only ends the hedge, while the
        inline attempt runs on. A switch never does: it cancels the inline attempt, so its slot must be sure."""
        executor = self._executor
        for candidate in self._hedge_targets(is_hedge=is_hedge):
            reservation = executor.try_slot(self._request, candidate)
            if reservation is not None:
                return AttemptSlot(candidate, fast_mode=True, has_slot=True, reservation=reservation)
            if is_hedge and executor.is_slot_shared(candidate):
                return AttemptSlot(candidate, fast_mode=True)
        return None

    # -- the client, interrupts and the end -------------------------------------------------------------------
    def _watch_client(self) -> None:
        """Watch for the client leaving, from the moment the request is slow (a fast one pays for no task)."""
        client_gone = self._request.client_gone
        if client_gone is None or self._watcher is not None:
            return
        self._watcher = asyncio.ensure_future(client_gone())
        self._watcher.add_done_callback(self._on_client_gone)

    def _on_client_gone(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        if self._phase is not _Phase.IDLE:
            self._interrupt_with(_Interrupt.CLIENT_GONE)

    def _client_gone(self) -> ClientDisconnected:
        """Every attempt in flight is cut (no verdict on any upstream); the request ends."""
        if self._hedge is not None:
            self._hedge[1].cancel()
            self._hedge = None
            self._run.hedges.append(HedgeOutcome.LOST)
        for ledger in list(self._run.in_flight):
            ledger.cut(AttemptOutcome.CLIENT_DISCONNECTED)
        log.info("client_disconnected", extra={"request_id": self._request.request_id})
        return ClientDisconnected("the client closed the connection", attempts=self._run.attempt_dicts())

    def _interrupt_with(self, interrupt: _Interrupt) -> None:
        self._interrupt = interrupt
        self._task.cancel()

    def _take_interrupt(self) -> _Interrupt | None:
        """The race's own interrupt behind a CancelledError; None when the cancellation came from elsewhere
        (the deadline, the server), which then goes on up."""
        interrupt, self._interrupt = self._interrupt, None
        if interrupt is None:
            return None
        if self._task.uncancel() > self._base_cancelling:
            return None  # cancelled from outside as well: that wins
        return interrupt

    def _cut_hedge(self, outcome: AttemptOutcome, hedge_outcome: HedgeOutcome) -> None:
        """The request ended without the hedge: close its connection and record it."""
        if self._hedge is None:
            return
        slot, task = self._hedge
        self._hedge = None
        if task.done() and not task.cancelled() and task.exception() is None:
            reply = task.result()  # it answered too, in the same turn of the loop: release what it holds
            if reply is not None:
                self._reader.discard(reply)
        else:
            task.cancel()
        if slot.ledger is not None and slot.ledger.is_open:
            slot.ledger.cut(outcome, bills_prompt=True)
        self._run.hedges.append(hedge_outcome)

    def _close(self) -> None:
        """Stop the timer and the watcher; a hedge still running is cancelled (the executor records a hedge cut
        by the deadline; every other way out has recorded it already)."""
        self._disarm()
        if self._watcher is not None:
            self._watcher.cancel()
        if self._hedge is not None:  # the deadline: the executor records the attempt it cut
            self._hedge[1].cancel()
            self._hedge = None
            self._run.hedges.append(HedgeOutcome.LOST)


def _key(candidate: Candidate) -> CandidateKey:
    # A candidate's first three fields are its key: a C-level slice, equal (and hashing equal) to a CandidateKey.
    return candidate[:3]  # type: ignore[return-value]
