"""One simulated provider: a real aiohttp server on loopback that speaks one wire format.

Each chat call runs the same gate (auth, outage, 429 burst, rpm window, dice-rolled failure), then a
latency sleep, then a deterministic reply rendered by the wire format, streamed or not.

Time comes from a ``SimClock`` (real time by default); a test passes its fake clock so the sim's latency
follows the test's clock instead of the wall.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import random
import time
from collections import deque
from typing import Protocol

from aiohttp import web

from .embeddings import EmbedCall, embed_wire_for, vector_for
from .knobs import ModelKnobs, RateView, RpmWindow, TpmWindow, latency_seconds, roll_failure
from .prefix_cache import SimGauges, gauge_routes, warm_delay_seconds
from .replies import ChatCall, SimReply, billed_tokens, build_reply
from .stats import SimStats, key_fingerprint
from .thinking import refusal
from .wire import DOWN, NOT_FOUND, STREAM_FAILED, Failure, Rejection, WireFormat
from .wire_anthropic import AnthropicWire
from .wire_gemini import QUERY_KEY_MARK, GeminiWire
from .wire_ollama import OllamaWire
from .wire_openai import OpenAIWire

log = logging.getLogger(__name__)

WIRE_FORMATS = ("openai", "anthropic", "gemini", "ollama", "openai_compatible")
_SHUTDOWN_TIMEOUT_SECONDS = 0.5


class SimClock(Protocol):
    """What the sim needs of time; bkvy.clock's MonotonicClock and FakeClock both fit."""

    def now(self) -> float: ...  # monotonic seconds (rpm windows)
    async def sleep(self, seconds: float) -> None: ...


class RealTime:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class _Verdict:
    failure: Failure | None
    rate_view: RateView | None
    token_view: RateView | None = None

    @property
    def views(self) -> tuple[RateView, ...]:
        return tuple(view for view in (self.rate_view, self.token_view) if view is not None)


def _make_wire(wire_format: str) -> WireFormat:
    if wire_format in ("openai", "openai_compatible"):
        return OpenAIWire(wire_format)
    if wire_format == "anthropic":
        return AnthropicWire()
    if wire_format == "gemini":
        return GeminiWire()
    if wire_format == "ollama":
        return OllamaWire()
    raise ValueError(f"unknown wire format {wire_format!r}; expected one of {WIRE_FORMATS}")


class SimServer:
    def __init__(
        self,
        wire_format: str,
        *,
        seed: int = 0,
        models: dict[str, ModelKnobs] | None = None,
        valid_keys: set[str] | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.wire_format = wire_format
        self.clock: SimClock = clock or RealTime()
        self.seed = seed
        self.valid_keys = valid_keys
        self.stats = SimStats()
        self.base_url = ""
        self._wire = _make_wire(wire_format)
        self._embed_wire = embed_wire_for(wire_format)  # None: this vendor has no embeddings API
        self._models: dict[str, ModelKnobs] = dict(models or {})
        self._rpm_windows: dict[tuple[str, str], RpmWindow] = {}
        self._tpm_windows: dict[tuple[str, str], TpmWindow] = {}
        self.gauges = SimGauges()  # prefix caches and vLLM's /metrics gauges (sim.prefix_cache)
        self._call_counter = 0  # not reset by reset_stats: replies stay a pure function of (seed, call order)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.received: deque[str] | None = None  # test-only (``record_bodies``): the last chat bodies received

    def record_bodies(self, limit: int = 32) -> deque[str]:
        """Test-only: keep the JSON text of the last ``limit`` chat request bodies (what the gateway sent)."""
        self.received = deque(maxlen=limit)
        return self.received

    # -- public API ---------------------------------------------------------------------------------
    def knobs(self, model: str) -> ModelKnobs:
        return self._models.setdefault(model, ModelKnobs())

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def calls_for(self, model: str) -> int:
        return self.stats.calls_for(model)

    def reset_stats(self) -> None:
        self.stats = SimStats()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.add_routes([web.post(path, self._handle_chat) for path in self._wire.chat_routes])
        if self._embed_wire is not None:
            app.add_routes([web.post(path, self._handle_embed) for path in self._embed_wire.routes])
        app.add_routes(self._wire.info_routes(self))
        if self.wire_format == "openai_compatible":  # a self-hosted server (vLLM) serves /metrics; OpenAI does not
            app.add_routes(gauge_routes(self.gauges))
        app.add_routes(
            [
                web.post("/_sim/knobs", self._handle_set_knobs),
                web.get("/_sim/stats", self._handle_stats),
                web.post("/_sim/reset_stats", self._handle_reset_stats),
            ]
        )
        # handler_cancellation: a client that gives up cancels its hanging/streaming handler, as on a real server.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        log.info("sim_started", extra={"wire_format": self.wire_format, "base_url": self.base_url})
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- chat pipeline --------------------------------------------------------------------------------
    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        if self._embed_wire is not None and self._embed_wire.is_embed(request):  # Gemini: one route, by action
            return await self._handle_embed(request)
        self.stats.calls_by_path[request.path] += 1
        try:
            body = await _json_object(request)
            if self.received is not None:
                self.received.append(json.dumps(body))
            call = self._wire.parse_call(request, body)
        except Rejection as rejection:
            self.stats.failures_by_kind[rejection.failure.kind] += 1
            return self._failure_response(rejection.failure, ())
        self._count_call(request, call)
        self._call_counter += 1
        self.gauges.running += 1
        try:
            return await self._answer(request, call)
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away before the reply was complete (whole or streamed); a server stop is not that.
            if not self._stopping.is_set():
                self.stats.disconnects_by_model[call.model] += 1
            raise
        finally:
            self.gauges.running -= 1

    async def _answer(self, request: web.Request, call: ChatCall) -> web.StreamResponse:
        rng = random.Random(f"{self.seed}:{call.model}:{self._call_counter}")
        knobs = self.knobs(call.model)
        verdict = self._gate(call, knobs, rng)
        if verdict.failure is not None:
            return await self._fail(verdict.failure, verdict.views)
        delay_seconds = latency_seconds(knobs, rng)
        if knobs.warm_latency_ms is not None:  # a warm prefix answers its first token sooner
            cached = self.gauges.cached_fraction(call.model, call.prefix, knobs.prefix_cache_entries)
            delay_seconds = warm_delay_seconds(delay_seconds, knobs.warm_latency_ms, cached)
        self.stats.last_latency_ms[call.model] = delay_seconds * 1000.0
        if delay_seconds:
            await self.clock.sleep(delay_seconds)
        reply = build_reply(call, knobs, rng)
        headers = self._success_headers(reply, verdict.views)
        if not call.is_stream or knobs.ignores_stream:
            return web.json_response(self._wire.reply_body(reply), headers=headers)
        if knobs.stream_fail_before_first_byte:
            return await self._fail(
                Failure(STREAM_FAILED, "The server had an error while processing your request."), ()
            )
        return await self._stream(request, call, reply, knobs, headers)

    # -- embeddings: the same gate and latency as a chat call, then deterministic vectors ----------------------
    async def _handle_embed(self, request: web.Request) -> web.StreamResponse:
        assert self._embed_wire is not None
        self.stats.calls_by_path[request.path] += 1
        try:
            call = self._embed_wire.parse_embed(request, await _json_object(request))
        except Rejection as rejection:
            self.stats.failures_by_kind[rejection.failure.kind] += 1
            return self._failure_response(rejection.failure, ())
        self._count_call(request, call)
        self._call_counter += 1
        try:
            return await self._answer_embed(call)
        except (ConnectionResetError, asyncio.CancelledError):
            if not self._stopping.is_set():
                self.stats.disconnects_by_model[call.model] += 1
            raise

    async def _answer_embed(self, call: EmbedCall) -> web.StreamResponse:
        assert self._embed_wire is not None
        rng = random.Random(f"{self.seed}:{call.model}:{self._call_counter}")
        knobs = self.knobs(call.model)
        verdict = self._gate(call, knobs, rng)
        if verdict.failure is not None:
            return await self._fail(verdict.failure, verdict.views)
        delay_seconds = latency_seconds(knobs, rng)
        self.stats.last_latency_ms[call.model] = delay_seconds * 1000.0
        if delay_seconds:
            await self.clock.sleep(delay_seconds)
        vectors = [vector_for(call.model, text, call.dimensions) for text in call.inputs]
        headers = self._wire.request_id_headers(f"emb{self._call_counter:012x}")
        for view in verdict.views:
            headers |= self._wire.rate_limit_headers(view)
        return web.json_response(self._embed_wire.embed_body(call, vectors), headers=headers)

    def _count_call(self, request: web.Request, call: ChatCall | EmbedCall) -> None:
        self.stats.calls_by_model[call.model] += 1
        self.stats.calls_by_key[key_fingerprint(call.api_key)] += 1
        if isinstance(call, ChatCall) and call.is_thinking_off:
            self.stats.thinking_off_calls[call.model] += 1
        if isinstance(call, ChatCall) and call.thinking is not None:
            self.stats.thinking_asks[call.model][call.thinking.label] += 1
        if request.get(QUERY_KEY_MARK):
            self.stats.query_key_calls += 1
            log.warning("sim_key_in_query", extra={"wire_format": self.wire_format, "model": call.model})

    def _gate(self, call: ChatCall | EmbedCall, knobs: ModelKnobs, rng: random.Random) -> _Verdict:
        if self._wire.requires_key and not self._is_key_valid(call.api_key):
            return _Verdict(Failure("auth", "Incorrect API key provided."), None)
        if knobs.down:
            return _Verdict(Failure(DOWN, "The service is temporarily unavailable."), None)
        if knobs.retired:
            return _Verdict(Failure(NOT_FOUND, f"The model {call.model!r} does not exist or was retired."), None)
        thinking_refusal = refusal(call.thinking, knobs) if isinstance(call, ChatCall) and call.thinking else None
        if thinking_refusal is not None:
            return _Verdict(Failure("bad_request", thinking_refusal), None)
        if knobs.pending_429s > 0:
            knobs.pending_429s -= 1
            return _Verdict(_rate_limited(knobs.burst_retry_after_seconds), None)
        rate_view = None
        if knobs.rpm_limit is not None:
            window = self._rpm_windows.setdefault((call.model, key_fingerprint(call.api_key)), RpmWindow())
            rate_view = window.admit(knobs.rpm_limit, self.clock.now())
            if rate_view.is_exceeded:
                return _Verdict(_rate_limited(rate_view.reset_seconds), rate_view)
        token_view = None
        if knobs.tpm_limit is not None and isinstance(call, ChatCall):
            tokens = self._tpm_windows.setdefault((call.model, key_fingerprint(call.api_key)), TpmWindow())
            token_view = tokens.admit(knobs.tpm_limit, billed_tokens(call, knobs), self.clock.now())
            if token_view.is_exceeded:
                return _Verdict(_rate_limited(token_view.reset_seconds), rate_view, token_view)
        kind = roll_failure(knobs, rng)
        if kind == "rate_limited":
            return _Verdict(_rate_limited(1.0), rate_view, token_view)
        if kind is not None:
            return _Verdict(Failure(kind, _FAILURE_MESSAGES[kind]), rate_view, token_view)
        return _Verdict(None, rate_view, token_view)

    def _is_key_valid(self, api_key: str | None) -> bool:
        if self.wire_format == "openai_compatible" and self.valid_keys is None:
            return True  # like vLLM or llama.cpp started without --api-key
        if not api_key:
            return False
        return self.valid_keys is None or api_key in self.valid_keys

    async def _fail(self, failure: Failure, rate_views: tuple[RateView, ...]) -> web.StreamResponse:
        self.stats.failures_by_kind[failure.kind] += 1
        if failure.kind == "timeout":
            await self._hang()
        return self._failure_response(failure, rate_views)

    async def _hang(self) -> None:
        """Never answers: ends when the client disconnects (handler cancelled) or the server stops."""
        try:
            await self._stopping.wait()
        except asyncio.CancelledError:
            self.stats.client_disconnects += 1
            raise

    def _failure_response(self, failure: Failure, rate_views: tuple[RateView, ...]) -> web.Response:
        status, body = self._wire.error_reply(failure)
        headers = self._wire.request_id_headers(f"err{self._call_counter:012x}")
        for view in rate_views:
            headers |= self._wire.rate_limit_headers(view)
        if failure.retry_after_seconds is not None:
            headers["retry-after"] = str(max(1, math.ceil(failure.retry_after_seconds)))
        return web.json_response(body, status=status, headers=headers)

    def _success_headers(self, reply: SimReply, rate_views: tuple[RateView, ...]) -> dict[str, str]:
        headers = self._wire.request_id_headers(reply.response_id)
        for view in rate_views:
            headers |= self._wire.rate_limit_headers(view)
        return headers

    async def _stream(
        self, request: web.Request, call: ChatCall, reply: SimReply, knobs: ModelKnobs, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers | {"Content-Type": self._wire.stream_content_type})
        await response.prepare(request)
        self.stats.streams_started += 1
        try:
            for frame in self._wire.stream_head(reply, call):
                await response.write(frame)
            for index, text in enumerate(reply.chunks):
                if knobs.stream_cut_after_chunks is not None and index >= knobs.stream_cut_after_chunks:
                    return await self._cut(request, response, reply)
                if knobs.chunk_delay_ms:
                    await self.clock.sleep(knobs.chunk_delay_ms / 1000.0)
                if index == knobs.stream_stall_after_chunks and knobs.stream_stall_ms:
                    await self.clock.sleep(knobs.stream_stall_ms / 1000.0)
                await response.write(self._wire.stream_chunk(reply, call, text))
            for frame in self._wire.stream_tail(reply, call):
                await response.write(frame)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.stats.client_disconnects += 1
            raise
        return response

    async def _cut(self, request: web.Request, response: web.StreamResponse, reply: SimReply) -> web.StreamResponse:
        self.stats.streams_cut += 1
        closing_frame = self._wire.stream_cut(reply)
        if closing_frame is not None:  # Anthropic reports the failure in-band, then ends the stream
            await response.write(closing_frame)
            await response.write_eof()
            return response
        if request.transport is not None:  # the others just drop the connection mid-body
            request.transport.abort()
        return response

    # -- control routes (demo and benchmarks) -------------------------------------------------------
    async def _handle_set_knobs(self, request: web.Request) -> web.Response:
        try:
            changes = await _json_object(request)
            model = changes.pop("model")
            burst = changes.pop("burst_429", None)
            knobs = self.knobs(str(model))
            knobs.apply(changes)
            if burst is not None:
                knobs.burst_429(int(burst["count"]), float(burst.get("retry_after_seconds", 1.0)))
        except (Rejection, KeyError, TypeError, ValueError) as error:
            return web.json_response({"error": f"bad knobs: {error}"}, status=400)
        return web.json_response({"model": model, "knobs": dataclasses.asdict(knobs)})

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def _handle_reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response({"reset": True})


_FAILURE_MESSAGES = {
    "server": "The server had an error while processing your request.",
    "timeout": "Request timed out.",
    "auth": "Invalid authentication.",
    "bad_request": "Invalid request: the simulated provider rejected this input.",
}


def _rate_limited(retry_after_seconds: float) -> Failure:
    return Failure("rate_limited", "Rate limit reached for requests.", retry_after_seconds)


async def _json_object(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Rejection("bad_request", "We could not parse the JSON body of your request.") from error
    if not isinstance(body, dict):
        raise Rejection("bad_request", "The request body must be a JSON object.")
    return body
