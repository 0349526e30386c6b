"""Gemini ``embedContent`` (one text) and ``batchEmbedContents`` (several), v1beta. The key travels only in
``x-goog-api-key``. A model's ``endpoint`` override names the batch method's path (its body fits any count)."""

from __future__ import annotations

from typing import Any

from bkvy.core.upstream.adapters._errors import json_object_or_raise, unparseable_reply, upstream_error
from bkvy.core.upstream.adapters._wire import JSON_CONTENT_TYPE, join_url
from bkvy.core.upstream.embeddings.base import PROBE_INPUT, texts_of, tokens_or_none, vector_of
from bkvy.models.embeddings import EmbeddingCall, Embeddings
from bkvy.models.types import UpstreamReply, UpstreamRequest


class GeminiEmbeddings:
    def build_request(self, call: EmbeddingCall) -> UpstreamRequest:
        texts = texts_of(call, "gemini")
        model_path = f"models/{call.model.removeprefix('models/')}"
        if len(texts) == 1 and call.endpoint is None:
            path, body = f"/v1beta/{model_path}:embedContent", _one_request(model_path, texts[0], call)
        else:
            body = {"requests": [_one_request(model_path, text, call) for text in texts]}
            path = call.endpoint or f"/v1beta/{model_path}:batchEmbedContents"
        headers = {**JSON_CONTENT_TYPE, "x-goog-api-key": call.api_key}
        return UpstreamRequest("POST", join_url(call.base_url, path), headers, body)

    def parse_reply(self, reply: UpstreamReply) -> Embeddings:
        if not 200 <= reply.status < 300:
            raise upstream_error(reply.status, reply.headers, reply.body)
        payload = json_object_or_raise(reply.status, reply.body)
        single = payload.get("embedding")
        batch = [single] if single is not None else payload.get("embeddings")
        if not isinstance(batch, list) or not all(isinstance(item, dict) for item in batch):
            raise unparseable_reply(reply.status)
        usage = payload.get("usageMetadata")  # sent by newer models only; else the caller estimates
        return Embeddings(
            vectors=tuple(vector_of(item.get("values"), reply.status) for item in batch),
            input_tokens=tokens_or_none(usage.get("promptTokenCount")) if isinstance(usage, dict) else None,
        )

    def build_probe(self, call: EmbeddingCall) -> UpstreamRequest:
        return self.build_request(call._replace(embedding=PROBE_INPUT))


def _one_request(model_path: str, text: str, call: EmbeddingCall) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model_path, "content": {"parts": [{"text": text}]}}
    if call.embedding.dimensions is not None:
        request["outputDimensionality"] = call.embedding.dimensions
    return request
