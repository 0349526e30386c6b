"""Which logged requests a replay re-issues: those whose outcome the new config could change.

Left out, each counted on stderr: response-cache hits (no upstream call, no latency to fit), embeddings requests
(a replay issues chat requests: an embedding model would only fail), and requests that failed because of the
client (it left, stalled, or sent something invalid: 4xx but 429). A failure the config decides (routing,
policy) stays in: the new config may answer it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from bkvy.core.config.gateway import GatewayConfig
from bkvy.models import errors
from bkvy.utils.records import TransactionRecord

# 4xx codes that the replayed config's routing or policy decides: a new config may answer these requests.
_CONFIG_DECIDED = frozenset(
    {
        errors.NoCandidates.code,
        errors.PolicyNoCandidate.code,
        errors.SensitiveDataBlocked.code,
        errors.UnknownModel.code,
        errors.UnknownProvider.code,
        errors.UnknownScenario.code,
        errors.UnknownKey.code,
    }
)


def _client_fault_codes() -> frozenset[str]:
    """Every BkvyError code of a 4xx but 429 (a limit is not the client's fault) and the config-decided ones."""
    found: set[str] = set()
    pending: list[type[errors.BkvyError]] = [errors.BkvyError]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        status = getattr(kind, "status", 500)
        if 400 <= status < 500 and status != 429:
            found.add(kind.code)
    return frozenset(found - _CONFIG_DECIDED)


CLIENT_FAULT_CODES = _client_fault_codes()  # client_disconnected, client_stalled, invalid_*, validation_error ...


class Selection(NamedTuple):
    replayable: list[TransactionRecord]
    cache_hits: int
    embeddings: int
    client_failures: int


def select_replayable(logged: Sequence[TransactionRecord], config: GatewayConfig) -> Selection:
    """``logged`` without cache hits, embeddings requests (by ``config``'s embedding models) and client-caused
    failures; how many of each were left out."""
    embedding = {
        (provider, model)
        for provider, provider_config in config.providers.items()
        for model, model_config in provider_config.models.items()
        if model_config.is_embedding_model
    }
    embedding_names = {model for _, model in embedding}
    replayable: list[TransactionRecord] = []
    hits = embeddings = client_failures = 0
    for record in logged:
        if record.cache_hit:
            hits += 1
        elif _is_embeddings(record, embedding, embedding_names):
            embeddings += 1
        elif not record.success and record.error_type in CLIENT_FAULT_CODES:
            client_failures += 1
        else:
            replayable.append(record)
    return Selection(replayable, hits, embeddings, client_failures)


def _is_embeddings(record: TransactionRecord, embedding: set[tuple[str, str]], names: set[str]) -> bool:
    for provider, model in (
        (record.provider_used, record.model_used),
        (record.requested_provider, record.requested_model),
    ):
        if model and ((provider, model) in embedding or (not provider and model in names)):
            return True
    return False
