"""Embeddings translators: one pure translator per wire format that embeds (see ``base.py``)."""

from __future__ import annotations

from types import MappingProxyType

from bkvy.core.upstream.embeddings.base import EmbeddingAdapter
from bkvy.core.upstream.embeddings.gemini import GeminiEmbeddings
from bkvy.core.upstream.embeddings.ollama import OllamaEmbeddings
from bkvy.core.upstream.embeddings.openai import OpenAIEmbeddings
from bkvy.models.types import ProviderType

# Anthropic has no embeddings API: config refuses an Anthropic model that declares "embeddings".
_TRANSLATORS: MappingProxyType[ProviderType, EmbeddingAdapter] = MappingProxyType(
    {
        ProviderType.OPENAI: OpenAIEmbeddings(),
        ProviderType.OPENAI_COMPATIBLE: OpenAIEmbeddings(),
        ProviderType.GEMINI: GeminiEmbeddings(),
        ProviderType.OLLAMA: OllamaEmbeddings(),
    }
)
EMBEDDING_PROVIDER_TYPES = frozenset(_TRANSLATORS)


def embedding_adapter_for(provider_type: ProviderType) -> EmbeddingAdapter:
    """The shared translator for a wire format; KeyError for one without embeddings (config prevents it)."""
    return _TRANSLATORS[provider_type]


__all__ = ["EMBEDDING_PROVIDER_TYPES", "EmbeddingAdapter", "embedding_adapter_for"]
