"""Replicas of one self-hosted model (``"endpoints"`` in providers.json, docs/ROUTING.md "Prefix affinity").

Each replica of a model is compiled into candidates of its own, one per key, whose key id is the key's id, ``@``
and the replica's position in ``endpoints``: ``default@0``, ``default@1``. So circuits, latency, failover, rate
limit lanes, records and ``/circuits`` work per replica with no machinery of their own. Key ids from config never
contain ``@`` (the key id pattern refuses it), so a replica id always maps back to its key and its base URL.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

REPLICA_MARK = "@"
# The provider types that serve self-hosted models (vLLM, SGLang, TGI, llama.cpp: openai_compatible; Ollama).
REPLICATED_PROVIDER_TYPES = frozenset({"openai_compatible", "ollama"})


class ReplicaMetricsConfig(BaseModel):
    """How often the replicas' ``/metrics`` (vLLM's Prometheus text) are read, and when one counts as saturated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    interval_seconds: float = Field(default=5.0, gt=0.0, le=3600.0)
    max_requests_waiting: float = Field(default=8.0, ge=0.0)  # vllm:num_requests_waiting above this: saturated
    max_cache_usage: float = Field(default=0.95, gt=0.0, le=1.0)  # KV-cache usage (0..1) above this: saturated
    missing_retry_seconds: float = Field(default=600.0, gt=0.0)  # a replica without /metrics (404): asked again


def replica_key_id(key_id: str, index: int) -> str:
    """The candidate key id of ``key_id`` on replica ``index``: ``default@1``."""
    return f"{key_id}{REPLICA_MARK}{index}"


def split_replica_key_id(key_id: str) -> tuple[str, int | None]:
    """The configured key id and the replica index of a candidate key id; index None for an ordinary key."""
    base, mark, index = key_id.rpartition(REPLICA_MARK)
    if not mark or not index.isdigit():
        return key_id, None
    return base, int(index)
