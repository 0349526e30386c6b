"""Per-model behaviour knobs of a simulated provider, and the pure decisions drawn from them."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

# Failure kinds a knob can inject; `down` and `rpm` are decided by state, not by a dice roll.
FAILURE_KINDS = ("server", "timeout", "auth", "bad_request", "rate_limited")
WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class ModelKnobs:
    """Mutable at runtime: tests and the demo flip these between calls."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    slow_fraction: float = 0.0  # heavy tail: this share of calls (0..1) takes slow_latency_ms instead
    slow_latency_ms: float = 0.0
    error_rates: dict[str, float] = field(default_factory=dict)
    down: bool = False
    retired: bool = False  # answer 404 for this model, as each vendor reports an unknown or retired model
    rpm_limit: int | None = None
    tpm_limit: int | None = None  # tokens per minute per key, billed as prompt + completion (+ thoughts)
    stream_cut_after_chunks: int | None = None
    stream_fail_before_first_byte: bool = False
    ignores_stream: bool = False  # answer a stream request with one whole JSON reply (LiteLLM's mock models do)
    chunk_delay_ms: float = 0.0
    stream_stall_after_chunks: int | None = None  # after this many content chunks, go silent for stream_stall_ms
    stream_stall_ms: float = 0.0
    tokens_per_reply: int = 16
    thinks: bool = False  # reasons unless asked not to; a model that does not refuses a request to think
    # What the model's API takes for thinking control (sim.thinking.refusal): a model that cannot switch it off
    # refuses an ask for none; budgets under the floor are refused (-1, dynamic, aside); so are levels not listed.
    can_disable_thinking: bool = True
    min_thinking_budget: int = 0
    thinking_levels: tuple[str, ...] = ()  # lower-case; empty: every level the vendor defines
    # The delay of a fully cached prompt (sim.prefix_cache; a partly cached one in proportion); None: no cache.
    warm_latency_ms: float | None = None
    prefix_cache_entries: int = 1024  # the prefix cache's size: prompt prefixes remembered (LRU)
    pending_429s: int = 0
    burst_retry_after_seconds: float = 1.0

    def burst_429(self, count: int, retry_after_seconds: float = 1.0) -> None:
        """The next `count` calls to this model get 429 with this Retry-After."""
        self.pending_429s = count
        self.burst_retry_after_seconds = retry_after_seconds

    def apply(self, changes: dict[str, object]) -> None:
        """Set fields from a JSON object (the `/_sim/knobs` control route); unknown names raise KeyError."""
        for name, value in changes.items():
            if name not in _SETTABLE:
                raise KeyError(name)
            if name == "error_rates":
                if not isinstance(value, dict):
                    raise KeyError("error_rates")
                unknown = set(value) - set(FAILURE_KINDS)
                if unknown:
                    raise KeyError(f"error_rates.{sorted(unknown)[0]}")
                value = {str(k): float(v) for k, v in value.items()}
            if name == "thinking_levels":
                if not isinstance(value, list | tuple):
                    raise KeyError("thinking_levels")
                value = tuple(str(level).lower() for level in value)
            setattr(self, name, value)


_SETTABLE = frozenset(
    name
    for name in ModelKnobs.__slots__
    if name not in ("pending_429s", "burst_retry_after_seconds")  # type: ignore[attr-defined]
)


def roll_failure(knobs: ModelKnobs, rng: random.Random) -> str | None:
    """One draw against the cumulative error rates, in the fixed FAILURE_KINDS order."""
    draw = rng.random()
    cumulative = 0.0
    for kind in FAILURE_KINDS:
        cumulative += knobs.error_rates.get(kind, 0.0)
        if draw < cumulative:
            return kind
    return None


def latency_seconds(knobs: ModelKnobs, rng: random.Random) -> float:
    """The call's delay: latency_ms, or slow_latency_ms for a slow_fraction of calls, plus the same jitter."""
    base_ms = knobs.latency_ms
    # Drawn only when the knob is on, so replies stay what they were for a given seed when it is off.
    if knobs.slow_fraction > 0.0 and rng.random() < knobs.slow_fraction:
        base_ms = knobs.slow_latency_ms
    jitter_ms = rng.uniform(-knobs.latency_jitter_ms, knobs.latency_jitter_ms)
    return max(0.0, base_ms + jitter_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class RateView:
    limit: int
    remaining: int
    reset_seconds: float
    is_exceeded: bool
    budget: str = "requests"  # or "tokens": which header family it fills


@dataclass(slots=True)
class RpmWindow:
    """Sliding 60 s window of accepted calls for one (model, key); honest remaining/reset numbers."""

    accepted_at: deque[float] = field(default_factory=deque)

    def admit(self, limit: int, now_seconds: float) -> RateView:
        while self.accepted_at and now_seconds - self.accepted_at[0] >= WINDOW_SECONDS:
            self.accepted_at.popleft()
        is_exceeded = len(self.accepted_at) >= limit
        if not is_exceeded:
            self.accepted_at.append(now_seconds)
        oldest = self.accepted_at[0] if self.accepted_at else now_seconds
        reset_seconds = max(0.0, WINDOW_SECONDS - (now_seconds - oldest))
        return RateView(limit, max(0, limit - len(self.accepted_at)), reset_seconds, is_exceeded)


@dataclass(slots=True)
class TpmWindow:
    """Sliding 60 s window of the tokens of accepted calls for one (model, key). A call is refused when its
    tokens do not fit (a vendor estimates them up front; the sim knows them exactly)."""

    held: deque[tuple[float, int]] = field(default_factory=deque)

    def admit(self, limit: int, tokens: int, now_seconds: float) -> RateView:
        while self.held and now_seconds - self.held[0][0] >= WINDOW_SECONDS:
            self.held.popleft()
        used = sum(count for _, count in self.held)
        is_exceeded = used + tokens > limit
        if not is_exceeded:
            self.held.append((now_seconds, tokens))
            used += tokens
        oldest = self.held[0][0] if self.held else now_seconds
        reset_seconds = max(0.0, WINDOW_SECONDS - (now_seconds - oldest))
        return RateView(limit, max(0, limit - used), reset_seconds, is_exceeded, budget="tokens")
