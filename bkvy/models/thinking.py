"""Thinking control's value types (SPEC §5): a model's reasoning switch, and what one call sends to it.

The rules (which switch each provider type takes, its defaults and floors) live in ``core.upstream.thinking``;
the wire shape of each switch lives in its adapter.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class ThinkingParam(str, Enum):
    """The vendor parameter that switches a model's reasoning (``"param"`` in providers.json)."""

    REASONING_EFFORT = "reasoning_effort"  # OpenAI; OpenAI-compatible servers that take it (Groq, gpt-oss)
    ENABLE_THINKING = "enable_thinking"  # chat_template_kwargs.enable_thinking: vLLM, SGLang (Qwen3, ...)
    BUDGET_TOKENS = "budget_tokens"  # Anthropic thinking {"type": "enabled", "budget_tokens": n}
    ADAPTIVE = "adaptive"  # Anthropic thinking {"type": "adaptive"}, its depth by output_config.effort
    THINKING_BUDGET = "thinking_budget"  # Gemini 2.5 generationConfig.thinkingConfig.thinkingBudget
    THINKING_LEVEL = "thinking_level"  # Gemini 3 generationConfig.thinkingConfig.thinkingLevel
    THINK = "think"  # Ollama think: false, true, or a level ("low" for gpt-oss)


class ThinkingMode(str, Enum):
    """What a request asks of a thinking model. A request that asks neither sends nothing (the default)."""

    OFF = "off"  # a low request, or disable_thinking: off, or the model's floor where it cannot be switched off
    ON = "on"  # a high request: enabled


class ThinkingSpec(NamedTuple):
    """A thinking model's switch, from providers.json with the defaults of its param filled in.

    Budgets are tokens; efforts are the vendor's level names. ``min_*`` is what OFF sends to a model that cannot
    switch reasoning off (its floor); ``budget`` / ``effort`` is what ON sends (None: just enable it).
    """

    param: ThinkingParam
    can_disable: bool
    min_budget: int | None = None
    budget: int | None = None
    min_effort: str | None = None
    effort: str | None = None


class ThinkingSetting(NamedTuple):
    """What one call sends for reasoning. ``value`` is the budget, level or switch; None leaves the parameter
    out (OFF: the model's default is already off; ON with ``adaptive``: adaptive at its default effort)."""

    mode: ThinkingMode
    param: ThinkingParam
    value: int | str | bool | None
