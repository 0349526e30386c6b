"""Expected response time per (provider, model), learned online from its own successes (SPEC §5).

Two estimates per (provider, model): the EWMA mean (``expected_seconds``), and a bounded, decaying tail
estimate (``quantile_seconds``) for hedge delays. Routing judges a candidate by its tail (``routing_latency``):
a model at a 3 s median with 10 % of answers over 5 s averages "within 5 s" yet serves most late answers.

It also counts each model's attempts in flight (``attempt_started``/``attempt_ended``): a model whose oldest
attempt in flight is already older than its tail is slow *now* (a hang), before any answer can say so.

The tail estimate is a histogram of log-spaced buckets from 1 ms to 10 min: each bucket is 10 % wider than the
one before, so a quantile read from the geometric middle of its bucket is within ~5 % of the truth, and the
bucket count is fixed (140 floats per model, whatever the traffic). Decay is per *observation*, not per second:
the estimate describes the model's last few hundred answers whatever its traffic rate, so a rarely used model
keeps the tail it learned instead of decaying below ``min_observations`` between calls, and no clock is needed
(the tracker stays pure: no wall clock, no I/O). Older answers fade by a factor of two every
``half_life_observations`` answers; a shift (50 ms -> 500 ms) moves p95 after ~7 % of a half-life.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

from bkvy.core.routing.in_flight import InFlightStarts

_ALPHA = 0.2  # weight of the newest sample: recent behaviour matters, one outlier does not dominate

MIN_SECONDS = 0.001  # values below land in the first bucket
MAX_SECONDS = 600.0  # values above land in the last bucket
BUCKET_GROWTH = 1.1  # upper edge / lower edge of every bucket
BUCKET_COUNT = math.ceil(math.log(MAX_SECONDS / MIN_SECONDS) / math.log(BUCKET_GROWTH))  # 140
_BUCKETS_PER_LOG = 1.0 / math.log(BUCKET_GROWTH)
_LOG_MIN = math.log(MIN_SECONDS)
# Decay without touching every bucket per sample: each new sample weighs GROWTH x the previous one, and the
# histogram is scaled back down when the weights get large (a few times per 10^5 samples at the default).
_RESCALE_ABOVE = 1e100
FORMAT_VERSION = 1

ModelKey = tuple[str, str]


class _TailHistogram:
    """Decaying log-bucket histogram; ``tail()`` reads one quantile (``tail_q``) in O(1).

    The bucket holding the ``tail_q`` share is tracked as samples arrive (``tail_index``, with ``below`` the
    weight of the buckets under it): a sample moves it by a bucket or so, where a walk over the buckets costs
    4.3 µs per read, once per plan after every latency sample (``live`` in benchmarks/routing_micro.py).
    Invariant once ``total > 0``: ``below < tail_q * total <= below + counts[tail_index]``.
    """

    __slots__ = ("below", "counts", "observations", "tail_index", "tail_q", "total", "weight")

    def __init__(self, tail_q: float) -> None:
        self.counts = array("d", bytes(8 * BUCKET_COUNT))
        self.total = 0.0
        self.weight = 1.0  # the weight the next sample gets
        self.observations = 0
        self.tail_q = tail_q
        self.tail_index = 0
        self.below = 0.0

    def add(self, seconds: float, growth: float) -> None:
        if seconds >= MAX_SECONDS:
            index = BUCKET_COUNT - 1
        elif seconds > MIN_SECONDS:  # also False for NaN: it lands in the first bucket
            index = int((math.log(seconds) - _LOG_MIN) * _BUCKETS_PER_LOG)
        else:
            index = 0
        weight = self.weight
        self.counts[index] += weight
        self.total += weight
        self.observations += 1
        self.weight = weight * growth
        if index < self.tail_index:
            self.below += weight
        if self.weight > _RESCALE_ABOVE:
            self._rescale(1.0 / self.weight)
        else:
            self._move_tail()

    def _move_tail(self) -> None:
        """Move ``tail_index`` to the bucket that holds the ``tail_q`` share again (see the invariant)."""
        counts, target = self.counts, self.tail_q * self.total
        index, below = self.tail_index, self.below
        while below >= target and index > 0:
            index -= 1
            below -= counts[index]
        while below + counts[index] < target and index < BUCKET_COUNT - 1:
            below += counts[index]
            index += 1
        self.tail_index, self.below = index, below

    def reseat_tail(self) -> None:
        """Recompute ``below`` exactly (after a load or a rescale, so rounding never accumulates)."""
        self.tail_index = 0
        self.below = 0.0
        self._move_tail()

    def tail(self) -> float:
        """The ``tail_q`` quantile in seconds, interpolated as ``quantile`` does; needs ``total > 0``."""
        index = self.tail_index
        count = self.counts[index]
        share = (self.tail_q * self.total - self.below) / count if count > 0.0 else 1.0
        if share > 1.0:  # rounding only
            share = 1.0
        elif share < 0.0:
            share = 0.0
        return MIN_SECONDS * math.pow(BUCKET_GROWTH, index + share)

    def _rescale(self, factor: float) -> None:
        counts = self.counts
        for index in range(BUCKET_COUNT):
            counts[index] *= factor
        self.total *= factor
        self.weight *= factor
        self.reseat_tail()

    def quantile(self, q: float) -> float:
        """Interpolated geometrically inside the bucket that holds the ``q`` share of the weight."""
        target = q * self.total
        cumulative = 0.0
        last = 0
        for index, count in enumerate(self.counts):
            if count <= 0.0:
                continue
            last = index
            if cumulative + count >= target:
                share = (target - cumulative) / count
                return float(MIN_SECONDS * BUCKET_GROWTH ** (index + share))
            cumulative += count
        return MIN_SECONDS * BUCKET_GROWTH ** (last + 1)  # q == 1.0 with rounding: the top of the last bucket

    def normalized_counts(self) -> list[list[float]]:
        """Sparse [[bucket, count], ...] with the newest sample weighing 1, for persistence."""
        scale = 1.0 / self.weight
        return [
            [index, float(f"{count * scale:.6g}")] for index, count in enumerate(self.counts) if count * scale >= 1e-9
        ]


class LatencyTracker:
    """Learned latency and attempts in flight per (provider, model). Pure and in-memory (times are passed in,
    monotonic seconds); ``to_dict``/``load_dict`` persist what was learned, not what is in flight."""

    def __init__(
        self, *, half_life_observations: float = 200.0, min_observations: int = 20, tail_quantile: float = 0.95
    ) -> None:
        if half_life_observations <= 0:
            raise ValueError("half_life_observations must be > 0")
        if not 0.0 < tail_quantile < 1.0:
            raise ValueError("tail_quantile must be within (0, 1)")
        self._ewma_seconds: dict[ModelKey, float] = {}
        self._histograms: dict[ModelKey, _TailHistogram] = {}
        # What routing judges each model by (p95 or mean): absent until its first sample, None when a sample
        # made it stale. Read once per candidate state: 0.10 against 0.35 µs computed (``live_cold`` in
        # benchmarks/routing_micro.py reads every state per plan).
        self._judged_seconds: dict[ModelKey, float | None] = {}
        self._in_flight: dict[ModelKey, InFlightStarts] = {}
        self._listeners: list[Callable[[ModelKey], None]] = []
        self._in_flight_listeners: list[Callable[[ModelKey], None]] = []
        self._growth = 2.0 ** (1.0 / half_life_observations)
        self._min_observations = min_observations
        self._tail_quantile = tail_quantile

    def on_change(self, callback: Callable[[ModelKey], None]) -> None:
        """Call ``callback`` with the (provider, model) key after each new sample (routing caches estimates)."""
        self._listeners.append(callback)

    def on_in_flight_change(self, callback: Callable[[ModelKey], None]) -> None:
        """Call ``callback`` with the (provider, model) key whenever its oldest attempt in flight changes."""
        self._in_flight_listeners.append(callback)

    def observe(self, provider: str, model: str, seconds: float) -> None:
        key = (provider, model)
        previous = self._ewma_seconds.get(key)
        self._ewma_seconds[key] = seconds if previous is None else previous + _ALPHA * (seconds - previous)
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = _TailHistogram(self._tail_quantile)
        histogram.add(seconds, self._growth)
        self._judged_seconds[key] = None
        for callback in self._listeners:
            callback(key)

    def expected_seconds(self, model_key: ModelKey, seed_seconds: float) -> float:
        """For a (provider, model) key; ``seed_seconds`` (from config) until it has answered once."""
        return self._ewma_seconds.get(model_key, seed_seconds)

    def quantile_seconds(self, model_key: ModelKey, q: float) -> float | None:
        """The ``q`` quantile (0..1, e.g. 0.95) of recent latency in seconds, within ~5 % and clamped to
        [1 ms, 10 min]; None until the key has ``min_observations`` samples. Raises ValueError outside 0..1."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within 0..1, got {q}")
        histogram = self._histograms.get(model_key)
        if histogram is None or histogram.observations < self._min_observations or histogram.total <= 0.0:
            return None
        return histogram.tail() if q == self._tail_quantile else histogram.quantile(q)

    def routing_latency(self, model_key: ModelKey, seed_seconds: float, now: float) -> tuple[float, float]:
        """(seconds routing judges the model by at ``now``, until when that holds unless a sample or an
        in-flight change is reported): its ``tail_quantile`` (p95) once it has ``min_observations`` samples,
        before that its mean, before any sample ``seed_seconds``; and at least the age of its oldest attempt in
        flight once that is older than the former (a hang is ranked as slow as it already is; the estimate then
        grows by the moment, so it holds only at ``now``)."""
        seconds = self._judged_seconds.get(model_key, seed_seconds)
        if seconds is None:
            seconds = self._judge(model_key, seed_seconds)
        in_flight = self._in_flight.get(model_key)
        if in_flight is None or not in_flight.starts:
            return seconds, math.inf
        oldest = in_flight.starts[0]
        slow_from = oldest + seconds
        if now < slow_from:
            return seconds, slow_from
        return now - oldest, now

    def _judge(self, model_key: ModelKey, seed_seconds: float) -> float:
        """For a model with samples: its p95 once it has ``min_observations``, else its mean (then kept)."""
        histogram = self._histograms[model_key]
        if histogram.observations >= self._min_observations and histogram.total > 0.0:
            seconds = histogram.tail()
        else:
            mean_seconds = self._ewma_seconds.get(model_key)
            if mean_seconds is None:  # loaded without a mean: the seed until it answers
                return seed_seconds
            seconds = mean_seconds
        self._judged_seconds[model_key] = seconds
        return seconds

    def attempt_started(self, model_key: ModelKey, started_at: float) -> None:
        """An attempt of the model was sent at ``started_at`` (monotonic seconds). O(1) amortised; pair each
        call with exactly one ``attempt_ended`` of the same ``started_at``."""
        in_flight = self._in_flight.get(model_key)
        if in_flight is None:
            in_flight = self._in_flight[model_key] = InFlightStarts()
        if in_flight.start(started_at):
            for callback in self._in_flight_listeners:
                callback(model_key)

    def attempt_ended(self, model_key: ModelKey, started_at: float) -> None:
        """The attempt sent at ``started_at`` ended (answered, failed or cancelled). O(1) amortised."""
        in_flight = self._in_flight.get(model_key)
        if in_flight is not None and in_flight.end(started_at):
            for callback in self._in_flight_listeners:
                callback(model_key)

    def oldest_in_flight_started(self, model_key: ModelKey) -> float | None:
        """When the model's oldest attempt still in flight was sent (monotonic seconds); None when none is."""
        in_flight = self._in_flight.get(model_key)
        return in_flight.starts[0] if in_flight is not None and in_flight.starts else None

    def observations(self, model_key: ModelKey) -> int:
        """Samples seen for the key (loaded ones included), undecayed."""
        histogram = self._histograms.get(model_key)
        return 0 if histogram is None else histogram.observations

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready snapshot for persistence across restarts (versioned; see ``load_dict``)."""
        models = []
        for (provider, model), histogram in self._histograms.items():
            models.append(
                {
                    "provider": provider,
                    "model": model,
                    "ewma_seconds": self._ewma_seconds.get((provider, model)),
                    "observations": histogram.observations,
                    "buckets": histogram.normalized_counts(),
                }
            )
        return {
            "version": FORMAT_VERSION,
            "min_seconds": MIN_SECONDS,
            "bucket_growth": BUCKET_GROWTH,
            "bucket_count": BUCKET_COUNT,
            "models": models,
        }

    def load_dict(self, snapshot: object) -> int:
        """Replace the estimates of every (provider, model) in ``snapshot`` (from ``to_dict``); returns how many
        were loaded. Never raises: another version or bucket layout, or a malformed entry, is skipped."""
        if not isinstance(snapshot, dict) or snapshot.get("version") != FORMAT_VERSION:
            return 0
        if (snapshot.get("min_seconds"), snapshot.get("bucket_growth"), snapshot.get("bucket_count")) != (
            MIN_SECONDS,
            BUCKET_GROWTH,
            BUCKET_COUNT,
        ):
            return 0
        entries = snapshot.get("models")
        loaded = 0
        for entry in entries if isinstance(entries, list) else ():
            parsed = _parse_entry(entry, self._tail_quantile)
            if parsed is None:
                continue
            key, ewma_seconds, histogram = parsed
            self._histograms[key] = histogram
            self._judged_seconds[key] = None
            if ewma_seconds is not None:
                self._ewma_seconds[key] = ewma_seconds
            loaded += 1
            for callback in self._listeners:
                callback(key)
        return loaded


def _parse_entry(entry: object, tail_q: float) -> tuple[ModelKey, float | None, _TailHistogram] | None:
    if not isinstance(entry, dict):
        return None
    provider, model = entry.get("provider"), entry.get("model")
    ewma_seconds, observations, buckets = entry.get("ewma_seconds"), entry.get("observations"), entry.get("buckets")
    if not isinstance(provider, str) or not isinstance(model, str) or not isinstance(buckets, list):
        return None
    if not _is_count(observations) or not (ewma_seconds is None or _is_seconds(ewma_seconds)):
        return None
    histogram = _TailHistogram(tail_q)
    for pair in buckets:
        if not (isinstance(pair, list) and len(pair) == 2 and _is_count(pair[0]) and _is_seconds(pair[1])):
            return None
        if pair[0] >= BUCKET_COUNT:
            return None
        histogram.counts[pair[0]] += pair[1]
        histogram.total += pair[1]
    histogram.observations = int(observations)  # type: ignore[arg-type]  # _is_count checked it
    histogram.reseat_tail()
    return (provider, model), (None if ewma_seconds is None else float(ewma_seconds)), histogram


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
