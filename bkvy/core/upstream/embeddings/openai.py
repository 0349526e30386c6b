"""OpenAI ``POST /v1/embeddings``, also spoken by vLLM, llama.cpp, Together and other compatible servers."""

from __future__ import annotations

from typing import Any

from bkvy.core.upstream.adapters._errors import json_object_or_raise, rate_limit_hint, unparseable_reply, upstream_error
from bkvy.core.upstream.adapters._wire import JSON_CONTENT_TYPE, join_url
from bkvy.core.upstream.embeddings.base import PROBE_INPUT, tokens_or_none, vector_of
from bkvy.models.embeddings import EmbeddingCall, Embeddings
from bkvy.models.types import UpstreamReply, UpstreamRequest


class OpenAIEmbeddings:
    """Floats are asked for upstream whatever the client asked: compatible servers do not all speak base64,
    and bkvy encodes base64 itself (``api.routes_embeddings``)."""

    def build_request(self, call: EmbeddingCall) -> UpstreamRequest:
        url = join_url(call.base_url, call.endpoint or "/v1/embeddings")
        headers = dict(JSON_CONTENT_TYPE)
        if call.api_key:  # local compatible servers often run without a key
            headers["authorization"] = f"Bearer {call.api_key}"
        return UpstreamRequest("POST", url, headers, _body(call))

    def parse_reply(self, reply: UpstreamReply) -> Embeddings:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        items = payload.get("data")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise unparseable_reply(reply.status)
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
        except (TypeError, ValueError):
            raise unparseable_reply(reply.status) from None
        usage = payload.get("usage")
        model = payload.get("model")
        return Embeddings(
            vectors=tuple(vector_of(item.get("embedding"), reply.status) for item in ordered),
            input_tokens=tokens_or_none(usage.get("prompt_tokens")) if isinstance(usage, dict) else None,
            model_reported=model if isinstance(model, str) else None,
            rate_limit_hint=rate_limit_hint(reply.headers),
        )

    def build_probe(self, call: EmbeddingCall) -> UpstreamRequest:
        return self.build_request(call._replace(embedding=PROBE_INPUT))


def _body(call: EmbeddingCall) -> dict[str, Any]:
    embedding = call.embedding
    body: dict[str, Any] = {
        "model": call.model,
        "input": list(embedding.texts) or [list(ids) for ids in embedding.token_arrays],
        "encoding_format": "float",
    }
    if embedding.dimensions is not None:
        body["dimensions"] = embedding.dimensions
    if embedding.user:
        body["user"] = embedding.user
    return body
