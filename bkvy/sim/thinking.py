"""What a request asked of a model's reasoning, and whether that model takes it, as the real APIs decide.

Each wire format reads its vendor's parameter into a ``ThinkingAsk`` (refusing values the whole API refuses,
such as an Anthropic budget under 1024); the engine then checks the ask against the model's knobs, the part
that differs per model: gemini-2.5-pro answers 400 to ``thinkingBudget: 0`` (its floor is 128), o3-mini to
``reasoning_effort: "minimal"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .knobs import ModelKnobs

DYNAMIC_BUDGET = -1  # Gemini's "the model decides"


@dataclass(frozen=True, slots=True)
class ThinkingAsk:
    wire_name: str  # the parameter as the request named it, e.g. "thinkingBudget"
    shown: str  # its value as sent, for the stats and the error message
    budget: int | None = None  # a token budget (thinkingBudget, budget_tokens)
    level: str | None = None  # an effort or level (reasoning_effort, thinkingLevel, output_config.effort)
    is_off: bool = False  # no reasoning at all: budget 0, "none", disabled, enable_thinking false, think false
    is_template_hint: bool = False  # chat_template_kwargs: a model whose template does not read it ignores it

    @property
    def label(self) -> str:
        return f"{self.wire_name}={self.shown}"


def refusal(ask: ThinkingAsk, knobs: ModelKnobs) -> str | None:
    """The 400 message this model gives ``ask``; None when it takes it."""
    if ask.is_off:
        if knobs.thinks and not knobs.can_disable_thinking:
            return f"{ask.label} is invalid: this model only works in thinking mode."
        return None
    if not knobs.thinks:
        is_ignored = ask.is_template_hint
        return None if is_ignored else f"Unsupported parameter: {ask.wire_name!r} is not supported with this model."
    if ask.budget is not None and ask.budget != DYNAMIC_BUDGET and ask.budget < knobs.min_thinking_budget:
        return f"{ask.label} is invalid: this model's thinking budget starts at {knobs.min_thinking_budget}."
    if ask.level is not None and knobs.thinking_levels and ask.level.lower() not in knobs.thinking_levels:
        supported = ", ".join(repr(level) for level in knobs.thinking_levels)
        return f"Unsupported value: {ask.label} is not supported with this model. Supported values are: {supported}."
    return None
