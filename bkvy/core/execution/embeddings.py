"""Embeddings requests through the same race as chat: plan, rate limits, circuits, failover, hedging, records.

``EmbeddingReply`` is the executor's ``ReplyReader`` for ``POST /v1/embeddings``: send, parse the vectors with
the provider's embeddings translator (``core.upstream.embeddings``), and record the attempt's success like a
chat reply whose usage is the input tokens alone (so cost, spend, budgets and records need nothing new).
"""

from __future__ import annotations

from typing import NamedTuple

from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.execution.ledger import AttemptLedger, settle
from bkvy.core.execution.records import ExecutionResult, PreparedAttempt, Run
from bkvy.core.upstream.embeddings import embedding_adapter_for
from bkvy.core.upstream.transport import Transport
from bkvy.models.embeddings import Embeddings
from bkvy.models.errors import UpstreamError
from bkvy.models.types import Completion, ErrorClass, FinishReason, Usage


class EmbeddingResult(NamedTuple):
    result: ExecutionResult  # the request's record: candidate, attempts, input tokens, cost
    embeddings: Embeddings


class EmbeddingReply:
    """Send, read the whole reply, parse the vectors: the attempt succeeded."""

    is_stream = False
    timeout_message = "upstream timed out"

    def __init__(self, transport: Transport, config: GatewayConfig) -> None:
        self._transport = transport
        self._config = config

    async def read(self, prepared: PreparedAttempt, ledger: AttemptLedger) -> EmbeddingResult:
        """Raises UpstreamError for an error status, an unreadable body or a wrong number of vectors."""
        wanted = ledger.request.embedding
        assert wanted is not None  # the executor pairs this reader with embeddings requests only
        reply = await self._transport.send(prepared.upstream_request)
        provider_type = self._config.providers[prepared.candidate.provider].type
        embeddings = embedding_adapter_for(provider_type).parse_reply(reply)
        if len(embeddings.vectors) != wanted.size:
            raise UpstreamError(
                ErrorClass.SERVER,
                f"upstream returned {len(embeddings.vectors)} vectors for {wanted.size} inputs",
                status=reply.status,
            )
        input_tokens = embeddings.input_tokens if embeddings.input_tokens is not None else wanted.estimated_tokens()
        usage = Usage(input_tokens=input_tokens, output_tokens=0)
        completion = Completion("", usage, FinishReason.STOP, embeddings.model_reported, embeddings.rate_limit_hint)
        return EmbeddingResult(ledger.succeeded(completion), embeddings)

    def discard(self, reply: EmbeddingResult) -> None:
        pass  # a whole reply holds nothing open

    def settled(self, reply: EmbeddingResult, run: Run) -> EmbeddingResult:
        if not run.hedges:
            return reply
        result = reply.result
        settled = settle(result.completion, result.candidate, result.plan, run, result.total_ms / 1000.0 + run.start)
        return EmbeddingResult(settled, reply.embeddings)
