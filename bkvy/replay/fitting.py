"""What replay's simulated fleet learns from the log: each model's latency and its error episodes.

Latency: the empirical quantile function of each model's answer time (``total_time_ms`` less the gateway's own
queue and rate-limit waits), from requests it answered at the first attempt, so the time is that one call's. A
hedged request stays in: its time is the race's, a lower bound of the slow call's; leaving it out cut the
fitted tail (hedges fire on the slowest calls) and replayed p99 came out 10-48 % low. A model the log never
saw answers like all the models pooled.

Episodes: the log's failed attempts (``alternatives_tried`` with ``alternatives_outcomes``; an older log
without that column counts them as ``server``) grouped per model and error class into time windows: failures
less than ``gap_seconds`` apart are one episode, which spans them plus ``pad_seconds`` each side. Its
``failure_rate`` is its failures over its failures plus the model's answers in the window, so a model that
failed one call in ten fails one call in ten there, and one that failed everything fails everything.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bkvy.utils.records import TransactionRecord, parse_timestamp

_DEFAULT_OUTCOME = "server"  # an attempt whose outcome an older log did not write
_FALLBACK_LATENCY_MS = 1000.0  # a log with no answered request at all


@dataclass(frozen=True, slots=True)
class LatencyFit:
    """One model's answer times, sorted (ms): its empirical distribution."""

    sorted_ms: tuple[float, ...]

    def quantile(self, fraction: float) -> float:
        """The answer time (ms) at ``fraction`` (0-1) of the distribution, linearly interpolated."""
        return percentile(self.sorted_ms, fraction * 100.0)

    def sample_seconds(self, rng: random.Random) -> float:
        return self.quantile(rng.random()) / 1000.0


@dataclass(frozen=True, slots=True)
class Episode:
    """A window of wall time (unix seconds) in which ``model`` ("provider/model") failed by ``error_class``."""

    model: str
    error_class: str  # an AttemptOutcome value: rate_limited, server, timeout, connection, auth, not_found
    start_wall: float
    end_wall: float
    failures: int
    failure_rate: float  # 0-1


@dataclass(frozen=True, slots=True)
class FleetFit:
    """Every model's latency and episodes, as fitted from one log."""

    latency: dict[str, LatencyFit]
    pooled: LatencyFit
    episodes: dict[str, tuple[Episode, ...]] = field(default_factory=dict)  # per model, by start

    def latency_for(self, model: str) -> LatencyFit:
        return self.latency.get(model, self.pooled)

    def episode_at(self, model: str, wall: float) -> Episode | None:
        """The episode of ``model`` covering ``wall``, if any (the one with the highest rate)."""
        covering = [e for e in self.episodes.get(model, ()) if e.start_wall <= wall <= e.end_wall]
        return max(covering, key=lambda e: e.failure_rate, default=None)


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * min(max(percent, 0.0), 100.0) / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def fit_fleet(records: Iterable[TransactionRecord], *, gap_seconds: float = 30.0, pad_seconds: float = 1.0) -> FleetFit:
    """Latency distributions and error episodes of every model in ``records``."""
    rows = list(records)
    latency = fit_latency(rows)
    pooled = sorted(ms for fit in latency.values() for ms in fit.sorted_ms) or [_FALLBACK_LATENCY_MS]
    episodes = fit_episodes(rows, gap_seconds=gap_seconds, pad_seconds=pad_seconds)
    return FleetFit(latency, LatencyFit(tuple(pooled)), episodes)


def fit_latency(records: Iterable[TransactionRecord]) -> dict[str, LatencyFit]:
    """Per "provider/model": the answer times of its first-attempt answers."""
    samples: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if not record.success or record.fallback_attempts or record.total_time_ms is None:
            continue
        waits = (record.queue_wait_ms or 0.0) + (record.rate_limit_wait_ms or 0.0)
        samples[f"{record.provider_used}/{record.model_used}"].append(max(0.0, record.total_time_ms - waits))
    return {model: LatencyFit(tuple(sorted(times))) for model, times in samples.items()}


def fit_episodes(
    records: Iterable[TransactionRecord], *, gap_seconds: float, pad_seconds: float
) -> dict[str, tuple[Episode, ...]]:
    """Per "provider/model": its failures clustered into episodes per error class."""
    failures: dict[tuple[str, str], list[float]] = defaultdict(list)
    answers: dict[str, list[float]] = defaultdict(list)
    for record in records:
        moment = parse_timestamp(record.timestamp)
        if moment is None:
            continue
        if record.success:
            answers[f"{record.provider_used}/{record.model_used}"].append(moment)
        for model, outcome in _failed_attempts(record):
            failures[(model, outcome)].append(moment)
    for times in answers.values():
        times.sort()
    episodes: dict[str, list[Episode]] = defaultdict(list)
    for (model, outcome), times in failures.items():
        for start, end, count in _clusters(sorted(times), gap_seconds):
            window = (start - pad_seconds, end + pad_seconds)
            answered = _count_between(answers.get(model, []), *window)
            episodes[model].append(Episode(model, outcome, *window, count, count / (count + answered)))
    return {model: tuple(sorted(found, key=lambda e: e.start_wall)) for model, found in episodes.items()}


def _failed_attempts(record: TransactionRecord) -> list[tuple[str, str]]:
    """("provider/model", outcome) of each failed attempt the record names."""
    if not record.alternatives_tried:
        return []
    attempts = record.alternatives_tried.split(";")
    outcomes = record.alternatives_outcomes.split(";") if record.alternatives_outcomes else []
    found = []
    for index, attempt in enumerate(attempts):
        provider, _, rest = attempt.partition("/")
        model = rest.rpartition("/")[0] or rest  # "provider/model/key_id"; a model name may hold a "/"
        outcome = outcomes[index] if index < len(outcomes) and outcomes[index] else _DEFAULT_OUTCOME
        found.append((f"{provider}/{model}", outcome))
    return found


def _clusters(times: Sequence[float], gap_seconds: float) -> list[tuple[float, float, int]]:
    """(first, last, count) of each run of ``times`` whose neighbours are at most ``gap_seconds`` apart."""
    clusters: list[tuple[float, float, int]] = []
    for moment in times:
        if clusters and moment - clusters[-1][1] <= gap_seconds:
            first, _, count = clusters[-1]
            clusters[-1] = (first, moment, count + 1)
        else:
            clusters.append((moment, moment, 1))
    return clusters


def _count_between(sorted_times: Sequence[float], start: float, end: float) -> int:
    return bisect.bisect_right(sorted_times, end) - bisect.bisect_left(sorted_times, start)
