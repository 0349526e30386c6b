"""Counters a test reads after driving a simulated provider. Keys are kept only as hash prefixes."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field


def key_fingerprint(api_key: str | None) -> str:
    if not api_key:
        return "none"
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


@dataclass(slots=True)
class SimStats:
    calls_by_model: Counter[str] = field(default_factory=Counter)
    calls_by_key: Counter[str] = field(default_factory=Counter)  # key_fingerprint -> calls
    calls_by_path: Counter[str] = field(default_factory=Counter)
    failures_by_kind: Counter[str] = field(default_factory=Counter)
    thinking_off_calls: Counter[str] = field(default_factory=Counter)
    # model -> what its calls asked of its reasoning, as sent ("thinkingBudget=128": count)
    thinking_asks: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    last_latency_ms: dict[str, float] = field(default_factory=dict)
    streams_started: int = 0
    streams_cut: int = 0
    client_disconnects: int = 0  # hangs and streams only (kept as it was); disconnects_by_model counts every kind
    disconnects_by_model: Counter[str] = field(default_factory=Counter)  # client left before the reply was complete
    query_key_calls: int = 0  # Gemini `?key=` use: accepted like the real API, but counted

    def calls_for(self, model: str) -> int:
        return self.calls_by_model[model]

    def disconnects_for(self, model: str) -> int:
        return self.disconnects_by_model[model]

    def calls_for_key(self, api_key: str) -> int:
        return self.calls_by_key[key_fingerprint(api_key)]

    def as_json(self) -> dict[str, object]:
        return {
            "calls_by_model": dict(self.calls_by_model),
            "calls_by_key": dict(self.calls_by_key),
            "calls_by_path": dict(self.calls_by_path),
            "failures_by_kind": dict(self.failures_by_kind),
            "thinking_off_calls": dict(self.thinking_off_calls),
            "thinking_asks": {model: dict(asks) for model, asks in self.thinking_asks.items()},
            "last_latency_ms": dict(self.last_latency_ms),
            "streams_started": self.streams_started,
            "streams_cut": self.streams_cut,
            "client_disconnects": self.client_disconnects,
            "disconnects": dict(self.disconnects_by_model),
            "query_key_calls": self.query_key_calls,
        }
