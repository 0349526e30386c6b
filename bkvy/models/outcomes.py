"""What happened to a request and to each of its attempts, as typed words (SPEC §5).

Every enum here is str-valued: the wire (debug output, error ``attempts``), the CSV transaction log and the
Prometheus labels carry exactly these strings, so they never change when the code around them does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

from bkvy.models.types import ErrorClass


class SkipReason(str, Enum):
    """Why a candidate was passed over without an upstream call."""

    CIRCUIT_OPEN = "circuit_open"  # its circuit is OPEN and its backoff has not ended
    CIRCUIT_NOT_CLOSED = "circuit_not_closed"  # fast mode takes closed circuits only
    RATE_LIMITED = "rate_limited"  # no rate-limit slot within the request's max wait
    RETRY_BUDGET = "retry_budget"  # the gateway-wide retry budget is spent
    UNSUPPORTED_INPUT = "unsupported_input"  # its wire format cannot carry this input (e.g. an image URL)


class AttemptOutcome(str, Enum):
    """One attempt's end. An attempt *was sent* when an upstream call was made (``was_sent``)."""

    SUCCESS = "success"
    # An upstream call that failed, one per ``ErrorClass`` (same words).
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    # An upstream call that bkvy ended. Only the gateway's own deadline (``cancelled_hard_timeout``) counts
    # against the circuit, as a timeout; the others say nothing about the upstream (SPEC §6).
    CLIENT_DISCONNECTED = "client_disconnected"
    CLIENT_STALLED = "client_stalled"  # stopped reading a stream for STREAM_WRITE_TIMEOUT_SECONDS
    SHUTDOWN = "shutdown"  # bkvy was stopping: the stream was ended before the grace period ran out
    CANCELLED_HARD_TIMEOUT = "cancelled_hard_timeout"  # the request's deadline (REQUEST_HARD_TIMEOUT_SECONDS)
    CANCELLED_CLIENT_TIMEOUT = "cancelled_client_timeout"  # the client's own shorter ``timeout_seconds``
    CANCELLED_SOFT_TIMEOUT = "cancelled_soft_timeout"  # no hedge possible: switched to the next candidate
    HEDGE_LOST = "hedge_lost"  # raced another attempt of the same request, which answered first
    # No upstream call: ``skipped_<SkipReason>``.
    SKIPPED_CIRCUIT_OPEN = "skipped_circuit_open"
    SKIPPED_CIRCUIT_NOT_CLOSED = "skipped_circuit_not_closed"
    SKIPPED_RATE_LIMITED = "skipped_rate_limited"
    SKIPPED_RETRY_BUDGET = "skipped_retry_budget"
    SKIPPED_UNSUPPORTED_INPUT = "skipped_unsupported_input"

    @classmethod
    def failed(cls, error_class: ErrorClass) -> AttemptOutcome:
        return _FAILED[error_class]

    @classmethod
    def skipped(cls, reason: SkipReason) -> AttemptOutcome:
        return _SKIPPED[reason]

    @property
    def was_sent(self) -> bool:
        """An upstream call was made: the one definition of a "tried" attempt (records, metrics, errors)."""
        return self not in _NOT_SENT


_FAILED = {error_class: AttemptOutcome(error_class.value) for error_class in ErrorClass}
_SKIPPED = {reason: AttemptOutcome(f"skipped_{reason.value}") for reason in SkipReason}
_NOT_SENT = frozenset(_SKIPPED.values())


class DecisionReason(str, Enum):
    """Why a candidate sits where it does in a plan (``decision_reason`` for the plan's first)."""

    CHEAPEST_WITHIN_ESTIMATE = "cheapest_within_estimate"
    CHEAPEST_WITHIN_ESTIMATE_HIGHER_TIER = "cheapest_within_estimate_higher_tier"
    FASTEST_AVAILABLE = "fastest_available"
    FASTEST_AVAILABLE_HIGHER_TIER = "fastest_available_higher_tier"
    OUTSIDE_ESTIMATE = "outside_estimate"  # ranked after every candidate that fits max_wait
    HIGHEST_SCORE_WITHIN_ESTIMATE = "highest_score_within_estimate"  # ``optimize``: ranked by score
    HIGHEST_SCORE_WITHIN_ESTIMATE_HIGHER_TIER = "highest_score_within_estimate_higher_tier"
    DOMAIN_PREFERRED = "domain_preferred"  # routing.json domain_models: listed for the request's domain
    TENANT_PREFERRED = "tenant_preferred"  # the tenant's preferred_models (issue 19): tried first among the fits
    SCENARIO_PRIORITY = "scenario_priority"
    DIRECT = "direct"
    ADAPTIVE = "adaptive"  # ordered by the bandit's draw (routing.json "strategies": adaptive)
    ADAPTIVE_HIGHER_TIER = "adaptive_higher_tier"
    PANIC_MODE = "panic_mode"  # every circuit open: the one that recovers soonest
    NO_CANDIDATE_AVAILABLE = "no_candidate_available"
    CACHE_HIT = "cache_hit"  # answered from the response cache (issue 20 §1): no candidate was called


class HedgeOutcome(str, Enum):
    """What became of one chance to hedge a request (``bkvy_hedges_total{outcome}``)."""

    WON = "won"  # the hedge answered first
    LOST = "lost"  # the attempt it raced answered first
    SKIPPED_BUDGET = "skipped_budget"  # the gateway-wide hedge budget was spent
    SKIPPED_NO_CANDIDATE = "skipped_no_candidate"  # no other closed candidate had a free rate-limit slot


def is_hedged(hedges: Iterable[HedgeOutcome]) -> bool:
    """A hedge raced the request: one of its chances to hedge became a hedge (it won or it lost)."""
    return any(h is HedgeOutcome.WON or h is HedgeOutcome.LOST for h in hedges)


class Attempt(NamedTuple):
    """One candidate's attempt within a request, as the records and the wire show it (SPEC §5)."""

    provider: str
    model: str
    key_id: str
    outcome: AttemptOutcome
    duration_ms: float
    waited_ms: float = 0.0  # for its rate-limit slot
    status: int | None = None  # the upstream HTTP status, when one came back
    fast_mode: bool = False  # made past the soft timeout (SPEC §6)
    is_hedge: bool = False  # started beside another attempt of the same request (SPEC §6)
    cost_usd: float = 0.0  # what the upstream billed for it, when it reported usage
    thinking: str | None = None  # thinking control as sent (SPEC §5), e.g. "off: reasoning_effort=low"

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "model": self.model,
            "key_id": self.key_id,
            "outcome": self.outcome.value,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 2),
            "waited_ms": round(self.waited_ms, 2),
            "fast_mode": self.fast_mode,
            "hedge": self.is_hedge,
            "thinking": self.thinking,
        }
