"""Ollama ``POST /api/embed`` (the batch endpoint; ``/api/embeddings`` is its deprecated one-text form)."""

from __future__ import annotations

from typing import Any

from bkvy.core.upstream.adapters._errors import json_object_or_raise, unparseable_reply, upstream_error
from bkvy.core.upstream.adapters._wire import JSON_CONTENT_TYPE, join_url
from bkvy.core.upstream.embeddings.base import texts_of, tokens_or_none, vector_of
from bkvy.models.embeddings import EmbeddingCall, Embeddings
from bkvy.models.types import UpstreamReply, UpstreamRequest


class OllamaEmbeddings:
    def build_request(self, call: EmbeddingCall) -> UpstreamRequest:
        body: dict[str, Any] = {"model": call.model, "input": list(texts_of(call, "ollama"))}
        if call.embedding.dimensions is not None:
            body["dimensions"] = call.embedding.dimensions
        url = join_url(call.base_url, call.endpoint or "/api/embed")
        return UpstreamRequest("POST", url, dict(JSON_CONTENT_TYPE), body)

    def parse_reply(self, reply: UpstreamReply) -> Embeddings:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        vectors = payload.get("embeddings")
        if not isinstance(vectors, list):
            raise unparseable_reply(reply.status)
        model = payload.get("model")
        return Embeddings(
            vectors=tuple(vector_of(vector, reply.status) for vector in vectors),
            input_tokens=tokens_or_none(payload.get("prompt_eval_count")),
            model_reported=model if isinstance(model, str) else None,
        )

    def build_probe(self, call: EmbeddingCall) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(call.base_url, "/api/version"), {}, None)  # as the chat probe
