"""A simulated server's prefix (KV) cache and its vLLM gauges (docs/ROUTING.md "Prefix affinity").

Like vLLM's automatic prefix caching, a server remembers the prompts it served, as a chain of digests over their
leading messages (bounded LRU). A new prompt's cached part is its longest leading run of messages whose chain is
remembered; the call's first token comes sooner in proportion (``ModelKnobs.warm_latency_ms``: the delay of a
fully cached prompt). ``GET /metrics`` serves ``vllm:num_requests_waiting`` and the KV-cache usage gauge under
both names vLLM has used (``vllm:gpu_cache_usage_perc``, V0; ``vllm:kv_cache_usage_perc``, V1).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

METRIC_WAITING = "vllm:num_requests_waiting"
METRICS_CACHE_USAGE = ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")


def message_text(content: object) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prefix_chain(messages: Sequence[tuple[str, str]]) -> tuple[tuple[str, int], ...]:
    """(digest of messages[:i+1], their characters) for each leading run of (role, text) messages."""
    digest = hashlib.blake2b(digest_size=12)
    chain = []
    chars = 0
    for role, text in messages:
        digest.update(role.encode() + b"\x00" + text.encode() + b"\x1e")
        chars += len(text)
        chain.append((digest.copy().hexdigest(), chars))
    return tuple(chain)


@dataclass(slots=True)
class PrefixCache:
    """The chains of prompts served, least recently used dropped past ``capacity``."""

    capacity: int = 1024
    _entries: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def serve(self, chain: Sequence[tuple[str, int]]) -> int:
        """The characters of ``chain``'s prompt already cached; then the whole chain is remembered."""
        cached = 0
        for digest, chars in chain:
            if digest not in self._entries:
                break
            cached = chars
        for digest, _ in chain:
            self._entries[digest] = None
            self._entries.move_to_end(digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return cached

    @property
    def usage(self) -> float:
        return len(self._entries) / self.capacity


@dataclass(slots=True)
class SimGauges:
    """What ``/metrics`` reports; ``forced_*`` (set by ``POST /_sim/gauges``) override the computed values."""

    running: int = 0  # calls in progress
    max_running: int = 64  # beyond this many at once, the others count as waiting
    forced_waiting: float | None = None
    forced_cache_usage: float | None = None
    prompt_chars: Counter[str] = field(default_factory=Counter)  # per model: prompt characters served
    cached_chars: Counter[str] = field(default_factory=Counter)  # per model: of which from the prefix cache
    caches: dict[str, PrefixCache] = field(default_factory=dict)

    def cached_fraction(self, model: str, chain: Sequence[tuple[str, int]], capacity: int) -> float:
        """Serve ``chain`` from ``model``'s cache: the fraction of its characters that were cached (0..1)."""
        if not chain:
            return 0.0
        cache = self.caches.setdefault(model, PrefixCache(capacity))
        cached, total = cache.serve(chain), chain[-1][1]
        self.prompt_chars[model] += total
        self.cached_chars[model] += cached
        return cached / total if total else 0.0

    def render(self) -> str:
        """Prometheus text exposition of the two gauges."""
        waiting = self.forced_waiting
        if waiting is None:
            waiting = float(max(0, self.running - self.max_running))
        usage = self.forced_cache_usage
        if usage is None:
            usage = max((cache.usage for cache in self.caches.values()), default=0.0)
        lines = [f"# TYPE {METRIC_WAITING} gauge", f'{METRIC_WAITING}{{model_name="sim"}} {waiting}']
        for name in METRICS_CACHE_USAGE:
            lines += [f"# TYPE {name} gauge", f'{name}{{model_name="sim"}} {usage}']
        return "\n".join(lines) + "\n"


def warm_delay_seconds(cold_seconds: float, warm_latency_ms: float | None, cached_fraction: float) -> float:
    """The call's delay when ``cached_fraction`` of its prompt was cached: from cold to the warm delay."""
    if warm_latency_ms is None or cached_fraction <= 0.0:
        return cold_seconds
    warm_seconds = min(cold_seconds, warm_latency_ms / 1000.0)
    return cold_seconds - (cold_seconds - warm_seconds) * cached_fraction


def gauge_routes(gauges: SimGauges) -> list[web.RouteDef]:
    """``GET /metrics`` and the control route ``POST /_sim/gauges`` (``{"waiting": n, "cache_usage": x}``; null
    clears), ``GET /_sim/prefix`` (prompt and cached characters per model)."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=gauges.render(), content_type="text/plain")

    async def set_gauges(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict):
            return web.json_response({"error": "an object is required"}, status=400)
        if "waiting" in body:
            gauges.forced_waiting = None if body["waiting"] is None else float(body["waiting"])
        if "cache_usage" in body:
            gauges.forced_cache_usage = None if body["cache_usage"] is None else float(body["cache_usage"])
        return web.json_response({"waiting": gauges.forced_waiting, "cache_usage": gauges.forced_cache_usage})

    async def prefix(request: web.Request) -> web.Response:
        return web.json_response({"prompt_chars": gauges.prompt_chars, "cached_chars": gauges.cached_chars})

    return [web.get("/metrics", metrics), web.post("/_sim/gauges", set_gauges), web.get("/_sim/prefix", prefix)]
