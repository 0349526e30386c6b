"""The records one request leaves while the executor walks its plan (re-exported by ``core.execution.executor``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from bkvy.core.limits.rate_limits import NO_TOKENS, LaneKey, TokenReservation
from bkvy.core.policy.rules import PolicyDecision
from bkvy.core.routing.classifier import Classification
from bkvy.core.routing.plan import Candidate, RoutePlan, RouteRequest
from bkvy.core.upstream.adapters import ProviderAdapter
from bkvy.models.embeddings import EmbeddingInput
from bkvy.models.errors import BkvyError
from bkvy.models.outcomes import Attempt, AttemptOutcome, HedgeOutcome, SkipReason, is_hedged
from bkvy.models.policy import PolicySubject
from bkvy.models.types import ChatMessage, Completion, GenerationOptions, UpstreamRequest

if TYPE_CHECKING:
    from bkvy.core.execution.ledger import AttemptLedger


class ExecutionRequest(NamedTuple):
    request_id: str
    client_id: str
    route: RouteRequest
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions
    client_key_id: str | None = None  # the client key that authenticated the request, if any
    timeout_seconds: float | None = None  # the client's own deadline, shorter than the gateway's
    hedge: bool = True  # false: never race a second attempt for this request
    client_gone: Callable[[], Awaitable[None]] | None = None  # completes when the client closes the connection
    embedding: EmbeddingInput | None = None  # set: an embeddings request (``messages`` is empty)
    classification: Classification | None = None  # ``auto``: what the classifier decided (records, debug)
    subject: PolicySubject | None = None  # who sent it, as policy sees it (client key, tenant): issue 19
    policy: PolicyDecision | None = None  # what policy decided (api.policy_gate); None: no policy applied


class ExecutionResult(NamedTuple):
    completion: Completion
    candidate: Candidate
    plan: RoutePlan
    attempts: tuple[Attempt, ...]
    total_ms: float
    queue_wait_ms: float
    cost_usd: float  # the winner's cost plus what hedges that lost were billed
    hedged: bool = False  # a hedge raced this request's answer (``x-bkvy-hedged``)


class RequestOutcome(NamedTuple):
    """What one request did, for the records (never message content)."""

    request: ExecutionRequest
    result: ExecutionResult | None
    error: BkvyError | None
    attempts: tuple[Attempt, ...]
    total_ms: float
    queue_wait_ms: float  # behind other requests on the same key and model
    started_wall: float
    rate_limit_wait_ms: float = 0.0  # for the key's rpm/rpd window (or a provider's retry-after) to free
    plan: RoutePlan | None = None  # None when the request failed before it was planned (e.g. unknown name)
    hedges: tuple[HedgeOutcome, ...] = ()  # each chance to hedge, and what became of it
    cache_saved_usd: float | None = None  # a response-cache hit (issue 20 §1): what the original call cost


@dataclass(slots=True)
class Run:
    """The mutable bookkeeping of one request while it walks its plan."""

    start: float
    started_wall: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    rate_limit_waits: list[float] = field(default_factory=list)
    queue_wait_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    plan: RoutePlan | None = None
    # Sent attempts whose end is not recorded yet. An attempt cancelled from outside stays here: whoever
    # cancelled it records the cut (the hard timeout does, as ``cancelled_hard_timeout``).
    in_flight: list[AttemptLedger] = field(default_factory=list)
    deadline_seconds: float = 0.0  # after ``start``: the hard timeout, a model's timeout or the client's own
    is_client_deadline: bool = False  # the client's ``timeout_seconds`` set it (its cuts are no failures)
    hedges: list[HedgeOutcome] = field(default_factory=list)

    @property
    def is_hedged(self) -> bool:
        """A hedge raced this request (won or lost)."""
        return is_hedged(self.hedges)

    def record_skip(
        self, candidate: Candidate, reason: SkipReason, *, fast_mode: bool, waited_seconds: float = 0.0
    ) -> None:
        """A candidate passed over without an upstream call."""
        self.attempts.append(
            Attempt(
                candidate.provider,
                candidate.model,
                candidate.key_id,
                AttemptOutcome.skipped(reason),
                0.0,
                waited_seconds * 1000.0,
                fast_mode=fast_mode,
            )
        )

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
    reservation: TokenReservation = NO_TOKENS  # its tokens on a tpm lane, settled when the attempt ends


@dataclass(slots=True)
class AttemptSlot:
    """One attempt as the race holds it: its candidate, and its ledger once it was sent."""

    candidate: Candidate
    fast_mode: bool = False  # made past the soft timeout (or as a hedge): closed circuits, fastest first
    has_slot: bool = False  # its rate-limit slot is already taken (a hedge or a switch takes it up front)
    reservation: TokenReservation = NO_TOKENS  # the tokens that slot reserved (a tpm lane)
    is_hedge: bool = False
    ledger: AttemptLedger | None = None
