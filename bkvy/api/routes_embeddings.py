"""``POST /v1/embeddings``: OpenAI's request and reply shapes, routed to the providers that embed.

``model`` is an embedding model (``provider/model`` or a bare name) or ``scenario:NAME`` of embedding models.
``auto`` and the levels are refused (400 ``not_an_embedding_model``): vectors from two models do not share a
space, so a gateway must not pick the model for the client. Errors use OpenAI's envelope (``api.errors``).
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from bkvy.api.body import parse_body
from bkvy.api.client_auth import authenticate_client
from bkvy.api.hot_path import Exchange, JsonReply
from bkvy.api.openai_format import decision_headers, route_for_model
from bkvy.api.policy_gate import police, policy_headers
from bkvy.api.tenancy import subject_of
from bkvy.core.execution.embeddings import EmbeddingResult
from bkvy.core.execution.executor import ExecutionRequest
from bkvy.models.embeddings import EmbeddingsIn
from bkvy.models.types import GenerationOptions

_ANONYMOUS_CLIENT = "openai-client"
_IS_BIG_ENDIAN = sys.byteorder == "big"


async def embeddings(exchange: Exchange) -> JsonReply:
    """A hot endpoint (``api.endpoints``): answered by ``api.hot_path`` ahead of FastAPI."""
    services = exchange.services
    client_key = await authenticate_client(services, exchange.header(b"authorization"))
    body = parse_body(await exchange.body(), EmbeddingsIn)
    wanted = body.to_input()
    route = route_for_model(
        body.model,
        services.config,
        max_wait_seconds=body.bkvy.max_wait_seconds,
        input_tokens_estimate=wanted.estimated_tokens(),
        output_tokens_estimate=0,
    )._replace(wants_embeddings=True)
    execution = ExecutionRequest(
        exchange.request_id,
        client_key.name if client_key else (body.bkvy.client_id or _ANONYMOUS_CLIENT),
        route,
        (),
        GenerationOptions(user=body.user),
        client_key.key_id if client_key else None,
        timeout_seconds=body.bkvy.timeout_seconds,
        hedge=body.bkvy.hedge,
        client_gone=exchange.client_gone,
        embedding=wanted,
        subject=subject_of(services, client_key),
    )
    execution = police(exchange, execution)
    reply, report = await services.executor.embed_then_report(execution)
    candidate = reply.result.candidate
    headers = decision_headers(
        exchange.request_id, candidate.provider, candidate.model, candidate.reason, reply.result.hedged
    ) | policy_headers(execution)
    return JsonReply(embeddings_json(reply, body.encoding_format), headers, after_sending=report)


def embeddings_json(reply: EmbeddingResult, encoding_format: str) -> dict[str, Any]:
    """A ``CreateEmbeddingResponse``: each vector as numbers, or with ``base64`` as OpenAI sends it."""
    encode = _base64_float32 if encoding_format == "base64" else list
    input_tokens = reply.result.completion.usage.input_tokens
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(reply.embeddings.vectors)
        ],
        "model": reply.result.candidate.model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }


def _base64_float32(vector: tuple[float, ...]) -> str:
    """OpenAI's base64 form: the vector as little-endian float32, base64-encoded (the SDK decodes it so)."""
    numbers = array("f", vector)
    if _IS_BIG_ENDIAN:
        numbers.byteswap()
    return base64.b64encode(numbers.tobytes()).decode("ascii")
