"""Expected response time per (provider, model), learned online from its own successes (SPEC §5)."""

from __future__ import annotations

from collections.abc import Callable

_ALPHA = 0.2   # weight of the newest sample: recent behaviour matters, one outlier does not dominate


class LatencyTracker:
    def __init__(self) -> None:
        self._ewma_seconds: dict[tuple[str, str], float] = {}
        self._listeners: list[Callable[[tuple[str, str]], None]] = []

    def on_change(self, callback: Callable[[tuple[str, str]], None]) -> None:
        """Call ``callback`` with the (provider, model) key after each new sample (routing caches estimates)."""
        self._listeners.append(callback)

    def observe(self, provider: str, model: str, seconds: float) -> None:
        key = (provider, model)
        previous = self._ewma_seconds.get(key)
        self._ewma_seconds[key] = seconds if previous is None else previous + _ALPHA * (seconds - previous)
        for callback in self._listeners:
            callback(key)

    def expected_seconds(self, model_key: tuple[str, str], seed_seconds: float) -> float:
        """For a (provider, model) key; ``seed_seconds`` (from config) until it has answered once."""
        return self._ewma_seconds.get(model_key, seed_seconds)
