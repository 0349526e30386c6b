"""Streamed requests: fail over invisibly until the first content, then relay deltas as they arrive.

Before anything reaches the client, a failed candidate (error status, broken or empty stream, timeout) is
recorded like any failed attempt and the next one is tried. Once content has been handed out, the stream is
committed: a break ends it with ``StreamInterrupted`` (recorded as failed, code ``stream_interrupted``), and
an upstream stream that ends without a finish reason is a break too. A consumer that stops early (the client
went away) closes the upstream response at once and is recorded as ``client_disconnected``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field

from bkvy.core.upstream.adapters import StreamDecoder, StreamDelta
from bkvy.core.upstream.adapters._errors import rate_limit_hint
from bkvy.core.execution.executor import Attempt, ExecutionRequest, ExecutionResult, Executor, PreparedAttempt, Run
from bkvy.core.routing.plan import Candidate, RoutePlan
from bkvy.models.errors import (BkvyError, ClientDisconnected, StreamInterrupted, UpstreamBadRequest,
                                UpstreamError)
from bkvy.models.types import Completion, ErrorClass, FinishReason, RateLimitHint, UpstreamReply, Usage

log = logging.getLogger(__name__)

_MAX_ERROR_BODY_BYTES = 64 * 1024


async def open_stream(executor: Executor, request: ExecutionRequest) -> LiveStream:
    """Walk the plan until a candidate's stream yields its first content.

    Raises the same BkvyErrors as ``Executor.execute`` (429/502/503/504...) when no candidate gets that far;
    the outcome is then already reported to the executor's observers.
    """
    run = executor.new_run()
    return await executor.run_guarded(request, run, lambda: _walk(executor, request, run))


async def _walk(executor: Executor, request: ExecutionRequest, run: Run) -> LiveStream:
    async def attempt(candidate: Candidate, fast_mode: bool) -> LiveStream | None:
        prepared = await executor.prepare_attempt(request, candidate, run, fast_mode, stream=True)
        if prepared is None:
            return None
        return await _first_content(executor, request, prepared, run.plan, run)

    return await executor.walk_plan(request, run, attempt)


async def _first_content(executor: Executor, request: ExecutionRequest, prepared: PreparedAttempt,
                         plan: RoutePlan, run: Run) -> LiveStream | None:
    """Open the upstream stream and read until a visible delta; None (recorded) when the attempt failed."""
    started = executor.clock.now()
    upstream = AsyncExitStack()
    try:
        async with executor.clock.timeout(executor.attempt_timeout(run, prepared.fast_mode)):
            head = await upstream.enter_async_context(executor.transport.stream(prepared.upstream_request))
            if not 200 <= head.status < 300:
                body = await _read_capped(head.chunks)
                prepared.adapter.parse_reply(UpstreamReply(head.status, head.headers, body))  # raises
                raise UpstreamError(ErrorClass.SERVER, f"upstream status {head.status}", status=head.status)
            decoder = prepared.adapter.stream_decoder()
            chunks = aiter(head.chunks)
            hint = rate_limit_hint(head.headers)   # now, not after the first content: that wait is free time
            pending = await _until_visible(chunks, decoder)
    except BaseException as error:
        await upstream.aclose()
        if isinstance(error, TimeoutError):
            error = UpstreamError(ErrorClass.TIMEOUT, "upstream timed out before the first content")
        if not isinstance(error, UpstreamError):
            raise
        return executor.record_failure(prepared, error, started, run)
    return LiveStream(executor, request, prepared, plan, run, started, hint, pending, chunks, decoder, upstream)


async def _until_visible(chunks: AsyncIterator[bytes], decoder: StreamDecoder) -> list[StreamDelta]:
    pending: list[StreamDelta] = []
    while not any(_is_visible(delta) for delta in pending):
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            raise UpstreamError(ErrorClass.SERVER, "stream ended before any content", status=200) from None
        pending.extend(decoder.feed(chunk))
    return pending


def _is_visible(delta: StreamDelta) -> bool:
    return bool(delta.content or delta.tool_calls or delta.finish_reason)


async def _read_capped(chunks: AsyncIterator[bytes]) -> bytes:
    body = b""
    async for chunk in chunks:
        body += chunk
        if len(body) > _MAX_ERROR_BODY_BYTES:
            break
    return body


@dataclass(slots=True)
class _Tally:
    """What the relayed stream carried, for the record (the text stays in memory only)."""

    text_parts: list[str] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    def add(self, delta: StreamDelta) -> None:
        if delta.content:
            self.text_parts.append(delta.content)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage


class LiveStream:
    """A committed upstream stream: iterate ``batches()`` once; the outcome is recorded when it ends."""

    def __init__(self, executor: Executor, request: ExecutionRequest, prepared: PreparedAttempt, plan: RoutePlan,
                 run: Run, started: float, hint: RateLimitHint | None, pending: list[StreamDelta],
                 chunks: AsyncIterator[bytes], decoder: StreamDecoder, upstream: AsyncExitStack) -> None:
        self._executor = executor
        self._request = request
        self._prepared = prepared
        self._plan = plan
        self._run = run
        self._started = started
        self._hint = hint
        self._pending = pending
        self._chunks = chunks
        self._decoder = decoder
        self._upstream = upstream
        self._tally = _Tally()
        self._is_done = False

    @property
    def candidate(self) -> Candidate:
        return self._prepared.candidate

    @property
    def plan(self) -> RoutePlan:
        return self._plan

    async def batches(self) -> AsyncIterator[list[StreamDelta]]:
        """Every delta, as the upstream sends it: one batch per upstream read (the first holds everything
        read until the first content), so the client gets one write per upstream chunk, not one per event.
        Raises StreamInterrupted when the upstream breaks."""
        try:
            async with aclosing(self._relay()) as relayed:
                async for batch in relayed:
                    yield batch
        except (GeneratorExit, asyncio.CancelledError):
            self._finish_disconnected()
            raise
        finally:
            await self._upstream.aclose()   # closes the aiohttp response: the provider sees the hang-up

    async def aclose(self) -> None:
        """Give up on a stream that will not be iterated (closes the upstream, records a disconnect)."""
        self._finish_disconnected()
        await self._upstream.aclose()

    async def _relay(self) -> AsyncIterator[list[StreamDelta]]:
        batch, self._pending = self._pending, []
        for delta in batch:
            self._tally.add(delta)
        yield batch
        while True:
            try:
                async with self._executor.clock.timeout(self._executor.soft_timeout_seconds):
                    chunk = await anext(self._chunks)
                deltas = self._decoder.feed(chunk)
            except StopAsyncIteration:
                break
            except (UpstreamError, TimeoutError) as error:
                if self._tally.finish_reason is None:
                    raise self._interrupted(error) from None
                break   # the reply was complete; a broken trailer (usage, [DONE]) does not spoil it
            if deltas:
                for delta in deltas:
                    self._tally.add(delta)
                yield deltas
        if self._tally.finish_reason is None:
            raise self._interrupted(UpstreamError(ErrorClass.SERVER, "stream ended without a finish reason"))
        self._finish_completed()

    def _interrupted(self, error: UpstreamError | TimeoutError) -> StreamInterrupted:
        if isinstance(error, TimeoutError):
            error = UpstreamError(ErrorClass.TIMEOUT, "upstream stream stalled")
        try:
            self._executor.record_failure(self._prepared, error, self._started, self._run)
        except UpstreamBadRequest:
            pass   # an in-stream "invalid request" after content: still an interruption for the client
        interrupted = StreamInterrupted(f"upstream stream broke after content was sent ({error.error_class.value})",
                                        attempts=self._run.attempt_dicts())
        self._mark_done(None, interrupted)
        return interrupted

    def _finish_completed(self) -> None:
        self._executor.record_success(self._prepared, self._started, self._run, self._hint)
        completion = Completion(content="".join(self._tally.text_parts), usage=self._tally.usage or Usage(),
                                finish_reason=self._tally.finish_reason or FinishReason.STOP)
        self._mark_done(self._executor.result_of(completion, self.candidate, self._plan, self._run), None)

    def _finish_disconnected(self) -> None:
        if self._is_done:
            return
        candidate = self.candidate
        elapsed_ms = (self._executor.clock.now() - self._started) * 1000.0
        self._run.attempts.append(Attempt(candidate.provider, candidate.model, candidate.key_id,
                                          "client_disconnected", elapsed_ms, self._prepared.waited_seconds * 1000.0))
        log.info("client_disconnected", extra={"request_id": self._request.request_id,
                                               "provider": candidate.provider, "model": candidate.model})
        self._mark_done(None, ClientDisconnected("the client closed the stream", attempts=self._run.attempt_dicts()))

    def _mark_done(self, result: ExecutionResult | None, error: BkvyError | None) -> None:
        if self._is_done:
            return
        self._is_done = True
        self._executor.notify(self._request, result, error, self._run)
