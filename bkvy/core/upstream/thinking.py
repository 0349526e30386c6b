"""Thinking control (SPEC §5): reasoning is wasted on ``low`` requests and when the client says so, and wanted
on ``high`` ones.

Three steps, each one place: ``resolve_spec`` turns a model's ``thinking`` block in providers.json into a
``ThinkingSpec`` (its param's defaults and floors, checked at config load); ``thinking_mode`` reads a request;
``thinking_setting`` says what one call sends. The adapters put the setting on the wire and describe what they
sent with ``thinking_record``.

Each vendor's values, as the installed SDKs type them: openai 3.57 ``ReasoningEffort``; anthropic 2.15
``ThinkingConfigEnabledParam`` (budget_tokens >= 1024 and < max_tokens), ``ThinkingConfigAdaptiveParam`` and
``OutputConfigParam.effort``; google-genai 3.4 ``ThinkingConfig`` (thinking_budget: 0 off, -1 dynamic, ranges
per model, e.g. gemini-2.5-pro 128..32768 and never 0) and ``ThinkingLevel``. Ollama's ``think`` takes a bool or
"low"/"medium"/"high" (gpt-oss); vLLM and SGLang pass ``chat_template_kwargs`` to the model's chat template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting, ThinkingSpec
from bkvy.models.types import IntelligenceLevel, ProviderType

# The switches each provider type takes; the first is its default.
PARAMS_BY_TYPE: dict[ProviderType, tuple[ThinkingParam, ...]] = {
    ProviderType.OPENAI: (ThinkingParam.REASONING_EFFORT,),
    ProviderType.OPENAI_COMPATIBLE: (ThinkingParam.ENABLE_THINKING, ThinkingParam.REASONING_EFFORT),
    ProviderType.ANTHROPIC: (ThinkingParam.BUDGET_TOKENS, ThinkingParam.ADAPTIVE),
    ProviderType.GEMINI: (ThinkingParam.THINKING_BUDGET, ThinkingParam.THINKING_LEVEL),
    ProviderType.OLLAMA: (ThinkingParam.THINK,),
}
_EFFORTS: dict[ThinkingParam, tuple[str, ...]] = {
    ThinkingParam.REASONING_EFFORT: ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    ThinkingParam.THINKING_LEVEL: ("minimal", "low", "medium", "high", "xhigh"),
    ThinkingParam.ADAPTIVE: ("low", "medium", "high", "xhigh", "max"),
    ThinkingParam.THINK: ("low", "medium", "high"),
}
_BUDGETS = frozenset({ThinkingParam.THINKING_BUDGET, ThinkingParam.BUDGET_TOKENS})
# Effort switches whose off is not a value of their own: OpenAI's "none" exists on gpt-5.1 and later only,
# Gemini 3 has no off at all. Everything else can switch off unless the config says it cannot.
_CANNOT_DISABLE_BY_DEFAULT = frozenset({ThinkingParam.REASONING_EFFORT, ThinkingParam.THINKING_LEVEL})
_FLOOR_EFFORT = "low"  # every OpenAI reasoning model but gpt-5-pro takes it; Gemini 3 Pro's lowest level
_ON_EFFORT = {ThinkingParam.REASONING_EFFORT: "medium", ThinkingParam.THINKING_LEVEL: "high"}  # the APIs' defaults
_ANTHROPIC_MIN_BUDGET = 1024  # anthropic ThinkingConfigEnabledParam: budget_tokens >= 1024
_ANTHROPIC_ON_BUDGET = 4096
_GEMINI_DYNAMIC_BUDGET = -1


class ThinkingFields(Protocol):
    """A model's ``thinking`` block as providers.json gives it (``core.config.gateway.ThinkingConfig``)."""

    @property
    def param(self) -> ThinkingParam | None: ...
    @property
    def can_disable(self) -> bool | None: ...
    @property
    def min_budget(self) -> int | None: ...
    @property
    def budget(self) -> int | None: ...
    @property
    def min_effort(self) -> str | None: ...
    @property
    def effort(self) -> str | None: ...


def resolve_spec(provider_type: ProviderType, fields: ThinkingFields) -> ThinkingSpec:
    """The model's switch with its param's defaults filled in. Raises ValueError naming the field and the fix."""
    allowed = PARAMS_BY_TYPE[provider_type]
    param = fields.param or allowed[0]
    if param not in allowed:
        names = ", ".join(repr(p.value) for p in allowed)
        raise ValueError(f"param {param.value!r} does not fit type {provider_type.value!r}; use one of {names}")
    can_disable = fields.can_disable if fields.can_disable is not None else param not in _CANNOT_DISABLE_BY_DEFAULT
    if param is ThinkingParam.THINKING_LEVEL and can_disable:
        raise ValueError("thinking_level cannot switch thinking off (Gemini 3); its floor is min_effort")
    _check_fields_apply(param, fields, can_disable)
    if param in _BUDGETS:
        return _budget_spec(param, fields, can_disable)
    return _effort_spec(param, fields, can_disable)


def _check_fields_apply(param: ThinkingParam, fields: ThinkingFields, can_disable: bool) -> None:
    budgets: dict[str, object] = {"min_budget": fields.min_budget, "budget": fields.budget}
    efforts: dict[str, object] = {"min_effort": fields.min_effort, "effort": fields.effort}
    foreign = efforts if param in _BUDGETS else budgets if param in _EFFORTS else budgets | efforts
    for name, value in foreign.items():
        if value is not None:
            raise ValueError(f"{name} does not apply to param {param.value!r}")
    for name in ("min_budget", "min_effort"):
        if can_disable and getattr(fields, name) is not None:
            raise ValueError(f"{name} is the floor of a model that cannot switch thinking off: set can_disable false")
    for name, value in efforts.items():
        if value is not None and value not in _EFFORTS.get(param, ()):
            raise ValueError(f"{name} {value!r} is not a {param.value} value: one of {', '.join(_EFFORTS[param])}")


def _budget_spec(param: ThinkingParam, fields: ThinkingFields, can_disable: bool) -> ThinkingSpec:
    is_anthropic = param is ThinkingParam.BUDGET_TOKENS
    least = _ANTHROPIC_MIN_BUDGET if is_anthropic else 1
    min_budget = fields.min_budget
    if min_budget is None and not can_disable:
        if not is_anthropic:
            raise ValueError("give min_budget: the smallest thinking_budget this model accepts (gemini-2.5-pro: 128)")
        min_budget = _ANTHROPIC_MIN_BUDGET
    if min_budget is not None and min_budget < least:
        raise ValueError(f"min_budget must be at least {least}")
    budget = fields.budget
    if budget is None:
        budget = _ANTHROPIC_ON_BUDGET if is_anthropic else _GEMINI_DYNAMIC_BUDGET
    is_dynamic = not is_anthropic and budget == _GEMINI_DYNAMIC_BUDGET
    if not is_dynamic and budget < max(least, min_budget or 0):
        dynamic = "" if is_anthropic else " (or -1: dynamic)"
        raise ValueError(f"budget must be at least {least} and at least min_budget{dynamic}")
    return ThinkingSpec(param, can_disable, min_budget=min_budget, budget=budget)


def _effort_spec(param: ThinkingParam, fields: ThinkingFields, can_disable: bool) -> ThinkingSpec:
    min_effort = fields.min_effort
    if min_effort is None and not can_disable and param is not ThinkingParam.ENABLE_THINKING:
        min_effort = _FLOOR_EFFORT
    return ThinkingSpec(param, can_disable, min_effort=min_effort, effort=fields.effort or _ON_EFFORT.get(param))


def thinking_mode(*, level: IntelligenceLevel | None, disable_thinking: bool) -> ThinkingMode | None:
    """OFF for ``low`` requests and ``disable_thinking`` (it wins over ``high``), ON for ``high``; else None."""
    if disable_thinking or level is IntelligenceLevel.LOW:
        return ThinkingMode.OFF
    if level is IntelligenceLevel.HIGH:
        return ThinkingMode.ON
    return None


def thinking_setting(spec: ThinkingSpec | None, mode: ThinkingMode | None) -> ThinkingSetting | None:
    """What a call in ``mode`` sends to a model with ``spec``; None when nothing is asked (or it does not think)."""
    if spec is None or mode is None:
        return None
    if mode is ThinkingMode.ON:
        return ThinkingSetting(mode, spec.param, _on_value(spec))
    return ThinkingSetting(mode, spec.param, _off_value(spec))


def _on_value(spec: ThinkingSpec) -> int | str | bool | None:
    if spec.param in _BUDGETS:
        return spec.budget
    if spec.param in (ThinkingParam.ENABLE_THINKING, ThinkingParam.THINK):
        return spec.effort or True
    return spec.effort


def _off_value(spec: ThinkingSpec) -> int | str | bool | None:
    if not spec.can_disable:
        return spec.min_budget if spec.param in _BUDGETS else spec.min_effort
    off: dict[ThinkingParam, int | str | bool | None] = {
        ThinkingParam.REASONING_EFFORT: "none",
        ThinkingParam.ENABLE_THINKING: False,
        ThinkingParam.THINKING_BUDGET: 0,
        ThinkingParam.THINK: False,
    }
    return off.get(spec.param)  # Anthropic: no `thinking` is thinking off (SPEC §5)


def thinking_record(setting: ThinkingSetting | None, sent: Mapping[str, Any], note: str = "") -> str | None:
    """An attempt's record of thinking control: the mode, then each parameter sent as ``path=value``, e.g.
    ``off: generationConfig.thinkingConfig.thinkingBudget=128``. None when the call asked nothing."""
    if setting is None:
        return None
    pairs = " ".join(f"{path}={_shown(value)}" for path, value in _flattened(sent, ""))
    return f"{setting.mode.value}: {pairs or 'nothing sent'}{f' ({note})' if note else ''}"


def _flattened(params: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for name, value in params.items():
        if isinstance(value, Mapping):
            pairs.extend(_flattened(value, f"{prefix}{name}."))
        else:
            pairs.append((f"{prefix}{name}", value))
    return pairs


def _shown(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
