"""One error tree. ``api`` maps any ``BkvyError`` to ``{success:false, error:{code,message}}``.

    BkvyError
    ├── InvalidRequest            400 invalid_request
    │   ├── InvalidJson           400 invalid_json
    │   ├── InvalidEncoding       400 invalid_encoding
    │   └── RouteKindUnclear      400 route_kind_unclear (/llm/explain: not exactly one of level, scenario, model)
    ├── ValidationFailed          422 validation_error
    ├── UnknownScenario           404 unknown_scenario
    ├── UnknownProvider           404 unknown_provider
    ├── UnknownModel              404 unknown_model
    ├── UnknownKey                404 unknown_key
    ├── NoCandidates              404 no_candidates
    ├── MethodNotAllowed          405 method_not_allowed
    ├── BodyTooLarge              413 body_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── AllCandidatesRateLimited  429 rate_limited      (api adds Retry-After)
    ├── UpstreamBadRequest        400 upstream_bad_request
    ├── UnsupportedInput          400 unsupported_input
    ├── UnsupportedResponseFormat 400 unsupported_response_format (a json_schema no candidate can honour)
    ├── NotAnEmbeddingModel       400 not_an_embedding_model (a chat model, level or scenario on /v1/embeddings)
    ├── NotAChatModel             400 not_a_chat_model       (an embedding model asked to chat)
    ├── AllCandidatesFailed       502 all_candidates_failed
    ├── StreamInterrupted         502 stream_interrupted  (upstream broke after content reached the client)
    ├── ClientDisconnected        499 client_disconnected (the client left mid-body or mid-stream; nothing sent)
    │   ├── ClientStalled         499 client_stalled      (stopped reading a stream: STREAM_WRITE_TIMEOUT_SECONDS)
    │   └── StreamShutdown        503 shutdown            (bkvy stopped during the stream; an error event ends it)
    ├── ClientRateLimited         429 client_rate_limited (a client key's rpm; api adds Retry-After)
    ├── BudgetExceeded            402 budget_exceeded     (a client key's monthly budget is spent)
    ├── UnknownClientKey          404 unknown_client_key
    ├── CircuitsOpen              503 circuits_open   (api adds Retry-After: the soonest recovery)
    ├── SharedStateUnavailable    503 shared_state_unavailable (a client-key admin change while Redis is down)
    ├── Unauthorized              401 unauthorized
    ├── AdminDisabled             403 admin_disabled
    ├── Forbidden                 403 forbidden
    ├── OriginNotAllowed          403 origin_not_allowed (a browser on a site not in CORS_ALLOWED_ORIGINS)
    └── HardTimeout               504 hard_timeout

``UpstreamError`` is not a ``BkvyError``: it is what an adapter raises for one attempt,
and the executor decides what it means for the request.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bkvy.models.types import ErrorClass


class BkvyError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, attempts: list[dict[str, Any]] | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.param = param  # the request field at fault, in OpenAI's notation: ``messages[0].role``, ``n``


class InvalidRequest(BkvyError):
    code = "invalid_request"
    status = 400


class InvalidJson(InvalidRequest):
    code = "invalid_json"


class InvalidEncoding(InvalidRequest):
    code = "invalid_encoding"


class RouteKindUnclear(InvalidRequest):
    code = "route_kind_unclear"


class ValidationFailed(BkvyError):
    code = "validation_error"
    status = 422


class UnknownScenario(BkvyError):
    code = "unknown_scenario"
    status = 404


class UnknownProvider(BkvyError):
    code = "unknown_provider"
    status = 404


class UnknownModel(BkvyError):
    code = "unknown_model"
    status = 404


class UnknownKey(BkvyError):
    code = "unknown_key"
    status = 404


class NoCandidates(BkvyError):
    code = "no_candidates"
    status = 404


class BodyTooLarge(BkvyError):
    code = "body_too_large"
    status = 413


class UnsupportedMediaType(BkvyError):
    code = "unsupported_media_type"
    status = 415


class AllCandidatesRateLimited(BkvyError):
    code = "rate_limited"
    status = 429

    def __init__(
        self, message: str, *, retry_after_seconds: float, attempts: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_after_seconds = retry_after_seconds


class UpstreamBadRequest(BkvyError):
    code = "upstream_bad_request"
    status = 400


class UnsupportedInput(BkvyError):
    code = "unsupported_input"
    status = 400


class UnsupportedResponseFormat(BkvyError):
    code = "unsupported_response_format"
    status = 400


class NotAnEmbeddingModel(BkvyError):
    code = "not_an_embedding_model"
    status = 400


class NotAChatModel(BkvyError):
    code = "not_a_chat_model"
    status = 400


class AllCandidatesFailed(BkvyError):
    code = "all_candidates_failed"
    status = 502


class StreamInterrupted(BkvyError):
    code = "stream_interrupted"
    status = 502


class ClientDisconnected(BkvyError):
    code = "client_disconnected"
    status = 499


class ClientStalled(ClientDisconnected):
    """The client stopped reading a stream: one write waited STREAM_WRITE_TIMEOUT_SECONDS."""

    code = "client_stalled"
    status = 499


class StreamShutdown(ClientDisconnected):
    """bkvy was stopping (SIGTERM) and the stream would outlast the grace period: ended with an error event."""

    code = "shutdown"
    status = 503


class ClientRateLimited(BkvyError):
    code = "client_rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class BudgetExceeded(BkvyError):
    code = "budget_exceeded"
    status = 402


class UnknownClientKey(BkvyError):
    code = "unknown_client_key"
    status = 404


class TenantRateLimited(ClientRateLimited):
    """A tenant's rpm or tpm, counted across all its keys (issue 19 §3)."""

    code = "tenant_rate_limited"


class TenantDisabled(BkvyError):
    code = "tenant_disabled"
    status = 403


class UnknownTenant(BkvyError):
    code = "unknown_tenant"
    status = 404


class TenantReadOnly(BkvyError):
    """A tenant from config/tenants.json: changed by editing the file and reloading, not through the API."""

    code = "tenant_read_only"
    status = 409


class TenantExists(BkvyError):
    code = "tenant_exists"
    status = 409


class CircuitsOpen(BkvyError):
    code = "circuits_open"
    status = 503  # api adds Retry-After: the soonest recovery among the candidates' circuits, when one is known

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_after_seconds = retry_after_seconds


class Unauthorized(BkvyError):
    code = "unauthorized"
    status = 401


class SharedStateUnavailable(BkvyError):
    """REDIS_URL is set and Redis is down: a client key created or revoked now would not reach the other
    replicas, so the change is refused; requests keep being served from local state."""

    code = "shared_state_unavailable"
    status = 503


class AdminDisabled(BkvyError):
    code = "admin_disabled"
    status = 403


class InvalidConfig(BkvyError):
    """A reload found the config files invalid: the message is start-up's one line; the running config stays."""

    code = "invalid_config"
    status = 400


class Forbidden(BkvyError):
    code = "forbidden"
    status = 403


class OriginNotAllowed(BkvyError):
    code = "origin_not_allowed"
    status = 403


class MethodNotAllowed(BkvyError):
    code = "method_not_allowed"
    status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow  # the Allow header: the methods the path takes


class SensitiveDataBlocked(InvalidRequest):
    code = "sensitive_data_blocked"  # issue 19: the message names the kinds found and the rule, never a value
    status = 400


class InvalidPolicyInput(InvalidRequest):
    code = "invalid_policy_input"  # a bad data_class, x-bkvy-data-class or x-bkvy-source-region
    status = 400


class InvalidCacheInput(InvalidRequest):
    code = "invalid_cache_input"  # x-bkvy-cache other than on/off, or a bad purge scope (issue 20 §1)
    status = 400


class CacheUnavailable(BkvyError):
    code = "cache_unavailable"  # the response cache's Redis did not answer a purge (issue 20 §1)
    status = 503


class PolicyNoCandidate(BkvyError):
    code = "policy_no_candidate"  # issue 19: policy leaves no candidate at all; the message names the rule
    status = 403


class TimeoutTooLong(BkvyError):
    code = "invalid_timeout"
    status = 400


class HardTimeout(BkvyError):
    code = "hard_timeout"
    status = 504


class UpstreamError(Exception):
    """One failed upstream attempt, classified by the adapter from status and headers."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retry_after_seconds = retry_after_seconds
