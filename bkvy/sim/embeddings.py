"""The vendors' embeddings wire formats, with deterministic vectors.

OpenAI (and compatible servers) ``POST /v1/embeddings``, Gemini ``models/{m}:embedContent`` and
``:batchEmbedContents``, Ollama ``POST /api/embed``. Anthropic has no embeddings API. A vector is a pure
function of (model, input, dimensions): unit length, from SHA-256, so a test can compute what it must get.
The engine (server.py) runs an embeddings call through the same gate and latency as a chat call.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from .wire import Rejection, bearer_key, int_or_none
from .wire_gemini import QUERY_KEY_MARK

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 4096
_CHARS_PER_TOKEN = 4
_GEMINI_ACTIONS = {"embedContent": False, "batchEmbedContents": True}


@dataclass(frozen=True, slots=True)
class EmbedCall:
    model: str
    api_key: str | None
    inputs: tuple[str, ...]  # texts; a token array is rendered as "tokens:1,2,3" (its vector's seed)
    dimensions: int
    prompt_tokens: int
    is_batch: bool = True  # Gemini: batchEmbedContents (else embedContent)
    is_base64: bool = False  # OpenAI: encoding_format "base64"


def vector_for(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` numbers, the same for the same (model, text, dimensions)."""
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{model}\0{dimensions}\0{block}\0{text}".encode()).digest()
        raw += [(value / 2**31) - 1.0 for value in struct.unpack("<8I", digest)]
        block += 1
    raw = raw[:dimensions]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    return [value / norm for value in raw]


class EmbedWire(Protocol):
    routes: tuple[str, ...]  # POST paths that embed, beside the chat routes

    def is_embed(self, request: web.Request) -> bool: ...  # a request on a chat route that is an embeddings call
    def parse_embed(self, request: web.Request, body: dict) -> EmbedCall: ...  # raises Rejection
    def embed_body(self, call: EmbedCall, vectors: list[list[float]]) -> dict: ...


def embed_wire_for(wire_format: str) -> EmbedWire | None:
    if wire_format in ("openai", "openai_compatible"):
        return OpenAIEmbedWire()
    if wire_format == "gemini":
        return GeminiEmbedWire()
    if wire_format == "ollama":
        return OllamaEmbedWire()
    return None


class OpenAIEmbedWire:
    routes: tuple[str, ...] = ("/v1/embeddings",)

    def is_embed(self, request: web.Request) -> bool:
        return False

    def parse_embed(self, request: web.Request, body: dict) -> EmbedCall:
        model, raw = body.get("model"), body.get("input")
        inputs = _texts(raw) or _token_arrays(raw)
        if not isinstance(model, str) or not model or not inputs:
            raise Rejection("bad_request", "'model' and a non-empty 'input' are required.")
        tokens = _token_count(raw) if isinstance(raw, list) and not _texts(raw) else _estimate(inputs)
        return EmbedCall(
            model,
            bearer_key(request),
            inputs,
            _dimensions(body.get("dimensions")),
            tokens,
            is_base64=body.get("encoding_format") == "base64",
        )

    def embed_body(self, call: EmbedCall, vectors: list[list[float]]) -> dict:
        data = [
            {"object": "embedding", "index": i, "embedding": _base64(v) if call.is_base64 else v}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
        return {"object": "list", "data": data, "model": call.model, "usage": usage}


class GeminiEmbedWire:
    routes: tuple[str, ...] = ()  # served on the chat route, /v1beta/models/{name}, by its action

    def is_embed(self, request: web.Request) -> bool:
        return request.match_info.get("name", "").partition(":")[2] in _GEMINI_ACTIONS

    def parse_embed(self, request: web.Request, body: dict) -> EmbedCall:
        model, _, action = request.match_info["name"].partition(":")
        is_batch = _GEMINI_ACTIONS[action]
        requests = body.get("requests") if is_batch else [body]
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise Rejection("bad_request", "* BatchEmbedContentsRequest.requests: requests is not specified")
        if is_batch and any(r.get("model") != f"models/{model}" for r in requests):
            raise Rejection("bad_request", f"* BatchEmbedContentsRequest.requests[].model: must be models/{model}")
        texts = tuple(_gemini_text(r) for r in requests)
        if not all(texts):
            raise Rejection("bad_request", "* EmbedContentRequest.content: contains an empty Part.")
        dimensions = _dimensions(requests[0].get("outputDimensionality"))
        return EmbedCall(model, _gemini_key(request), texts, dimensions, _estimate(texts), is_batch=is_batch)

    def embed_body(self, call: EmbedCall, vectors: list[list[float]]) -> dict:
        if not call.is_batch:
            return {"embedding": {"values": vectors[0]}}
        return {"embeddings": [{"values": vector} for vector in vectors]}  # no usage: as the real API


class OllamaEmbedWire:
    routes: tuple[str, ...] = ("/api/embed",)

    def is_embed(self, request: web.Request) -> bool:
        return False

    def parse_embed(self, request: web.Request, body: dict) -> EmbedCall:
        model, texts = body.get("model"), _texts(body.get("input"))
        if not isinstance(model, str) or not model:
            raise Rejection("bad_request", "model is required")
        if not texts:
            raise Rejection("bad_request", "invalid input type")
        return EmbedCall(model, None, texts, _dimensions(body.get("dimensions")), _estimate(texts))

    def embed_body(self, call: EmbedCall, vectors: list[list[float]]) -> dict:
        return {
            "model": call.model,
            "embeddings": vectors,
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": call.prompt_tokens,
        }


def _texts(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,) if raw else ()
    if isinstance(raw, list) and raw and all(isinstance(item, str) and item for item in raw):
        return tuple(raw)
    return ()


def _token_arrays(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        return ()
    arrays = [raw] if all(type(item) is int for item in raw) else raw
    if not all(isinstance(ids, list) and ids and all(type(i) is int for i in ids) for ids in arrays):
        return ()
    return tuple("tokens:" + ",".join(map(str, ids)) for ids in arrays)


def _token_count(raw: list) -> int:
    return len(raw) if all(type(item) is int for item in raw) else sum(len(ids) for ids in raw)


def _estimate(texts: tuple[str, ...]) -> int:
    return sum(len(text) // _CHARS_PER_TOKEN + 1 for text in texts)


def _dimensions(raw: object) -> int:
    dimensions = int_or_none(raw)
    if dimensions is None:
        return DEFAULT_DIMENSIONS
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise Rejection("bad_request", f"dimensions must be between 1 and {MAX_DIMENSIONS}")
    return dimensions


def _gemini_text(request: dict) -> str:
    parts = (request.get("content") or {}).get("parts") or []
    return "".join(str(part.get("text", "")) for part in parts if isinstance(part, dict))


def _gemini_key(request: web.Request) -> str | None:
    header_key = request.headers.get("x-goog-api-key")
    if header_key:
        return header_key
    query_key = request.query.get("key")
    if query_key:
        request[QUERY_KEY_MARK] = True  # counted by the engine, as on the chat route
    return query_key or None


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
