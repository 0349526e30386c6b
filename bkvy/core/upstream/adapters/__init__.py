"""Provider adapters: one pure translator per wire format (see ``base.py``)."""

from __future__ import annotations

from types import MappingProxyType

from bkvy.core.upstream.adapters.anthropic import AnthropicAdapter
from bkvy.core.upstream.adapters.base import ProviderAdapter, StreamDecoder, StreamDelta, ToolCallDelta
from bkvy.core.upstream.adapters.gemini import GeminiAdapter
from bkvy.core.upstream.adapters.ollama import OllamaAdapter
from bkvy.core.upstream.adapters.openai import OpenAIAdapter
from bkvy.models.types import ProviderType

# Adapters hold no state, so one read-only instance per type is shared by every request.
_ADAPTERS: MappingProxyType[ProviderType, ProviderAdapter] = MappingProxyType(
    {
        ProviderType.OPENAI: OpenAIAdapter(is_native=True),
        ProviderType.OPENAI_COMPATIBLE: OpenAIAdapter(is_native=False),
        ProviderType.ANTHROPIC: AnthropicAdapter(),
        ProviderType.GEMINI: GeminiAdapter(),
        ProviderType.OLLAMA: OllamaAdapter(),
    }
)


def adapter_for(provider_type: ProviderType) -> ProviderAdapter:
    """The shared adapter for a wire format."""
    return _ADAPTERS[provider_type]


__all__ = ["ProviderAdapter", "StreamDecoder", "StreamDelta", "ToolCallDelta", "adapter_for"]
