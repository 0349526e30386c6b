"""Streamed requests: fail over invisibly until the first content, then relay deltas as they arrive.

Before anything reaches the client, a failed candidate (error status, broken or empty stream, timeout) is
recorded like any failed attempt and the next one is tried. Once content has been handed out, the stream is
committed: a break ends it with ``StreamInterrupted`` (recorded as failed, code ``stream_interrupted``), and
an upstream stream that ends without a finish reason is a break too. A consumer that stops early (the client
went away) closes the upstream response at once and is recorded as ``client_disconnected``, or as what the
relay said when it cut the stream itself (``cut_as``: ``client_stalled``, ``shutdown``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass

from bkvy.clock import Clock
from bkvy.core.execution.ledger import AttemptLedger
from bkvy.core.execution.records import ExecutionResult, PreparedAttempt, Run
from bkvy.core.routing.plan import Candidate, RoutePlan
from bkvy.core.upstream.adapters import StreamDecoder, StreamDelta, ToolCallDelta
from bkvy.core.upstream.adapters._errors import rate_limit_hint
from bkvy.core.upstream.transport import StreamHead, Transport
from bkvy.models.errors import ClientDisconnected, ClientStalled, StreamInterrupted, StreamShutdown, UpstreamError
from bkvy.models.outcomes import AttemptOutcome
from bkvy.models.types import Completion, ErrorClass, FinishReason, RateLimitHint, UpstreamReply, Usage

log = logging.getLogger(__name__)

_MAX_ERROR_BODY_BYTES = 64 * 1024
# What a stream cut by bkvy's side of the client connection records (``LiveStream.cut_as``).
_CUT_ERRORS: dict[AttemptOutcome, tuple[type[ClientDisconnected], str]] = {
    AttemptOutcome.CLIENT_DISCONNECTED: (ClientDisconnected, "the client closed the stream"),
    AttemptOutcome.CLIENT_STALLED: (ClientStalled, "the client stopped reading the stream"),
    AttemptOutcome.SHUTDOWN: (StreamShutdown, "bkvy shut down during the stream"),
}


class StreamReply:
    """The executor's ``ReplyReader`` for a streamed reply: open the stream and read until its first visible
    content, then hand the live stream (and the attempt's ledger) to the caller."""

    is_stream = True
    timeout_message = "upstream timed out before the first content"

    def __init__(self, transport: Transport, clock: Clock, *, idle_timeout_seconds: float) -> None:
        self._transport = transport
        self._clock = clock
        self._idle_timeout_seconds = idle_timeout_seconds
        self._closing: set[asyncio.Future[None]] = set()

    async def read(self, prepared: PreparedAttempt, ledger: AttemptLedger) -> LiveStream:
        """Raises UpstreamError for an error status or a stream that ends before any content."""
        upstream = AsyncExitStack()
        try:
            head: StreamHead = await upstream.enter_async_context(self._transport.stream(prepared.upstream_request))
            if not 200 <= head.status < 300:
                body = await _read_capped(head.chunks)
                prepared.adapter.parse_reply(UpstreamReply(head.status, head.headers, body))  # raises
                raise UpstreamError(ErrorClass.SERVER, f"upstream status {head.status}", status=head.status)
            decoder = prepared.adapter.stream_decoder()
            chunks = aiter(head.chunks)
            hint = rate_limit_hint(head.headers)  # now, not after the first content: that wait is free time
            first = await anext(chunks, b"")
            if _is_whole_reply(head.headers, first):
                pending = _whole_reply_deltas(prepared, head, first + await _read_rest(chunks))
            else:
                pending = await _until_visible(chunks, decoder, decoder.feed(first))
        except BaseException:
            await upstream.aclose()
            raise
        ledger.first_content()
        return LiveStream(
            ledger,
            upstream,
            chunks,
            decoder,
            pending,
            hint,
            clock=self._clock,
            idle_timeout_seconds=self._idle_timeout_seconds,
        )

    def settled(self, reply: LiveStream, run: Run) -> LiveStream:
        return reply  # a stream settles its result when it ends (``AttemptLedger.succeeded``)

    def discard(self, reply: LiveStream) -> None:
        closing = asyncio.ensure_future(reply.discard())
        self._closing.add(closing)  # held until done: a task nobody references may be collected mid-way
        closing.add_done_callback(self._closing.discard)


async def _until_visible(
    chunks: AsyncIterator[bytes], decoder: StreamDecoder, pending: list[StreamDelta]
) -> list[StreamDelta]:
    while not any(_is_visible(delta) for delta in pending):
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            raise UpstreamError(ErrorClass.SERVER, "stream ended before any content", status=200) from None
        pending.extend(decoder.feed(chunk))
    return pending


def _is_whole_reply(headers: dict[str, str], first_chunk: bytes) -> bool:
    """The upstream ignored ``stream: true`` and sent one whole JSON reply (LiteLLM's proxy does, some self-hosted
    servers too): a JSON media type and a body that opens an object. No stream format is labelled so (SSE is
    ``text/event-stream``, Ollama's NDJSON ``application/x-ndjson``); the body check keeps an SSE stream that a
    server mislabels as JSON on the stream path."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    return is_json and first_chunk.lstrip()[:1] == b"{"


def _whole_reply_deltas(prepared: PreparedAttempt, head: StreamHead, body: bytes) -> list[StreamDelta]:
    """A whole reply as the one delta a stream of it would add up to. Raises UpstreamError as the adapter's
    whole-reply parser does (an error object in a 200 body, an unparseable body)."""
    completion = prepared.adapter.parse_reply(UpstreamReply(head.status, head.headers, body))
    tool_calls = tuple(
        ToolCallDelta(index, call.call_id, call.name, call.arguments)
        for index, call in enumerate(completion.tool_calls)
    )
    return [StreamDelta(completion.content, completion.finish_reason, completion.usage, tool_calls)]


async def _read_rest(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


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
    """What the relayed stream carried, for the record. Not its text: relayed, never kept (the record has no use
    for it, and a long answer kept whole cost ~50 bytes a token, ~10 MB for 200k tokens; issue 16)."""

    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    def add(self, delta: StreamDelta) -> None:
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage


class LiveStream:
    """A committed upstream stream: iterate ``batches()`` once; its attempt's end, and so the request's
    outcome, is recorded through the attempt's ledger when it ends."""

    def __init__(
        self,
        ledger: AttemptLedger,
        upstream: AsyncExitStack,
        chunks: AsyncIterator[bytes],
        decoder: StreamDecoder,
        pending: list[StreamDelta],
        hint: RateLimitHint | None,
        *,
        clock: Clock,
        idle_timeout_seconds: float,
    ) -> None:
        self._ledger = ledger
        self._upstream = upstream
        self._chunks = chunks
        self._decoder = decoder
        self._pending = pending
        self._hint = hint
        self._clock = clock
        self._idle_timeout_seconds = idle_timeout_seconds
        self._tally = _Tally()
        self._is_done = False
        self._cut_outcome = AttemptOutcome.CLIENT_DISCONNECTED
        self.result: ExecutionResult | None = None  # once complete: its usage and cost (the response cache's)

    @property
    def candidate(self) -> Candidate:
        return self._ledger.candidate

    @property
    def plan(self) -> RoutePlan:
        return self._ledger.plan

    @property
    def is_hedged(self) -> bool:
        """A hedge raced this stream to its first content."""
        return self._ledger.is_hedged

    async def batches(self) -> AsyncIterator[list[StreamDelta]]:
        """Every delta, as the upstream sends it: one batch per upstream read (the first holds everything
        read until the first content), so the client gets one write per upstream chunk, not one per event.
        Raises StreamInterrupted when the upstream breaks."""
        try:
            async with aclosing(self._relay()) as relayed:
                async for batch in relayed:
                    yield batch
        except (GeneratorExit, asyncio.CancelledError):
            self._finish_cut()
            raise
        finally:
            await self._upstream.aclose()  # closes the aiohttp response: the provider sees the hang-up

    async def aclose(self) -> None:
        """Give up on a stream that will not be iterated (closes the upstream, records a disconnect)."""
        self._finish_cut()
        await self._upstream.aclose()

    def cut_as(self, outcome: AttemptOutcome) -> None:
        """Why the relay is about to stop iterating (``client_stalled``, ``shutdown``): what the cut records. Unset,
        a stream stopped early records ``client_disconnected``. Raises ValueError for any other outcome."""
        if outcome not in _CUT_ERRORS:
            raise ValueError(f"not a cut outcome: {outcome.value}")
        self._cut_outcome = outcome

    async def discard(self) -> None:
        """Close a stream that lost a race after reaching its first content; the race records it (``hedge_lost``)."""
        await self._upstream.aclose()

    async def _relay(self) -> AsyncGenerator[list[StreamDelta], None]:
        batch, self._pending = self._pending, []
        for delta in batch:
            self._tally.add(delta)
        yield batch
        while True:
            try:
                async with self._clock.timeout(self._idle_timeout_seconds):
                    chunk = await anext(self._chunks)
                deltas = self._decoder.feed(chunk)
            except StopAsyncIteration:
                break
            except (UpstreamError, TimeoutError) as error:
                if self._tally.finish_reason is None:
                    raise self._interrupted(error) from None
                break  # the reply was complete; a broken trailer (usage, [DONE]) does not spoil it
            if deltas:
                for delta in deltas:
                    self._tally.add(delta)
                yield deltas
        if self._tally.finish_reason is None:
            raise self._interrupted(UpstreamError(ErrorClass.SERVER, "stream ended without a finish reason"))
        self._finish_completed()

    def _interrupted(self, error: UpstreamError | TimeoutError) -> StreamInterrupted:
        if isinstance(error, TimeoutError):
            error = UpstreamError(ErrorClass.TIMEOUT, "upstream stream idle past STREAM_IDLE_TIMEOUT_SECONDS")
        # An in-stream "invalid request" after content is recorded as such, but for the client it is an
        # interruption like any other.
        self._ledger.failed(error)
        interrupted = StreamInterrupted(
            f"upstream stream broke after content was sent ({error.error_class.value})",
            attempts=self._ledger.attempt_dicts(),
        )
        self._is_done = True
        self._ledger.report(None, interrupted)
        return interrupted

    def _finish_completed(self) -> None:
        completion = Completion(
            content="",  # relayed, not kept (``_Tally``)
            usage=self._tally.usage or Usage(),
            finish_reason=self._tally.finish_reason or FinishReason.STOP,
            rate_limit_hint=self._hint,
        )
        self._is_done = True
        self.result = self._ledger.succeeded(completion)
        self._ledger.report(self.result, None)

    def _finish_cut(self) -> None:
        if self._is_done:
            return
        self._is_done = True
        ledger, candidate, outcome = self._ledger, self._ledger.candidate, self._cut_outcome
        ledger.cut(outcome)
        log.info(
            outcome.value,
            extra={"request_id": ledger.request.request_id, "provider": candidate.provider, "model": candidate.model},
        )
        error_class, message = _CUT_ERRORS[outcome]
        ledger.report(None, error_class(message, attempts=ledger.attempt_dicts()))
