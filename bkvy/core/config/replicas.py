"""Replicas of one self-hosted model (``"endpoints"`` in providers.json, docs/ROUTING.md "Prefix affinity").

Each replica of a model is compiled into candidates of its own, one per key, whose key id is the key's id, ``@``
and the replica's position in ``endpoints``: ``default@0``, ``default@1``. So circuits, latency, failover, rate
limit lanes, records and ``/circuits`` work per replica with no machinery of their own. Key ids from config never
contain ``@`` (the key id pattern refuses it), so a replica id always maps back to its key and its base URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPLICA_MARK = "@"
# The provider types that serve self-hosted models (vLLM, SGLang, TGI, llama.cpp: openai_compatible; Ollama).
REPLICATED_PROVIDER_TYPES = frozenset({"openai_compatible", "ollama"})
_HTTP_URL = re.compile(r"^https?://[^\s/]+")


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


def distinct_urls(endpoints: tuple[str, ...]) -> tuple[str, ...]:
    """``endpoints`` without trailing slashes. Raises ValueError (the config error) for a non-http(s) or repeated
    URL."""
    urls = tuple(url.rstrip("/") for url in endpoints)
    for index, url in enumerate(urls):
        if not _HTTP_URL.match(url):
            raise ValueError(f"endpoints[{index}] must be an http(s) URL such as 'http://10.0.0.5:8000'")
        if url in urls[:index]:
            raise ValueError(f"endpoints[{index}] repeats {url!r}: list each replica once")
    return urls


def base_url_of_replicas(provider: Mapping[str, Any]) -> dict[str, str]:
    """``{"base_url": ...}`` for a raw provider without one whose every model lists ``endpoints`` (the first
    replica's; a stand-in when that is not a URL, so the error names ``endpoints``), else nothing."""
    models = provider.get("models")
    if not isinstance(models, dict) or not models:
        return {}
    if not all(isinstance(m, dict) and isinstance(m.get("endpoints"), list) for m in models.values()):
        return {}
    endpoints = next(iter(models.values()))["endpoints"]
    first = endpoints[0] if endpoints else None
    return {"base_url": first if isinstance(first, str) and _HTTP_URL.match(first) else "http://replicas.invalid"}
