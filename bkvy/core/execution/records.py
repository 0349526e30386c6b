"""The records one request leaves while the executor walks its plan (re-exported by ``core.executor``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from bkvy.core.upstream.adapters import ProviderAdapter
from bkvy.core.limits.rate_limits import LaneKey
from bkvy.core.routing.plan import Candidate, RoutePlan, RouteRequest
from bkvy.models.errors import BkvyError
from bkvy.models.types import ChatMessage, Completion, GenerationOptions, UpstreamRequest


class Attempt(NamedTuple):
    provider: str
    model: str
    key_id: str
    outcome: str                  # "success", an ErrorClass value, or "skipped_<why>"
    duration_ms: float
    waited_ms: float = 0.0
    status: int | None = None
    fast_mode: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"provider": self.provider, "model": self.model, "key_id": self.key_id, "outcome": self.outcome,
                "status": self.status, "duration_ms": round(self.duration_ms, 2),
                "waited_ms": round(self.waited_ms, 2), "fast_mode": self.fast_mode}


class ExecutionRequest(NamedTuple):
    request_id: str
    client_id: str
    route: RouteRequest
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions
    client_key_id: str | None = None     # the client key that authenticated the request, if any


class ExecutionResult(NamedTuple):
    completion: Completion
    candidate: Candidate
    plan: RoutePlan
    attempts: tuple[Attempt, ...]
    total_ms: float
    queue_wait_ms: float
    cost_usd: float


class RequestOutcome(NamedTuple):
    """What one request did, for the records (never message content)."""

    request: ExecutionRequest
    result: ExecutionResult | None
    error: BkvyError | None
    attempts: tuple[Attempt, ...]
    total_ms: float
    queue_wait_ms: float           # behind other requests on the same key and model
    started_wall: float
    rate_limit_wait_ms: float = 0.0   # for the key's rpm/rpd window (or a provider's retry-after) to free
    plan: RoutePlan | None = None     # None when the request failed before it was planned (e.g. unknown name)


@dataclass(slots=True)
class Run:
    """The mutable bookkeeping of one request while it walks its plan (shared with ``core.streaming``)."""

    start: float
    started_wall: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    rate_limit_waits: list[float] = field(default_factory=list)
    queue_wait_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    plan: RoutePlan | None = None
    in_flight: tuple[Candidate, float, bool] | None = None   # (candidate, started, fast_mode) while sending

    def attempt_dicts(self) -> list[dict[str, object]]:
        return [a.as_dict() for a in self.attempts]


class PreparedAttempt(NamedTuple):
    """A candidate with its rate-limit slot taken and its upstream request built, ready to send."""

    candidate: Candidate
    lane: LaneKey
    adapter: ProviderAdapter
    upstream_request: UpstreamRequest
    waited_seconds: float
    fast_mode: bool
