"""Thinking control's rules (SPEC §5): a model's ``thinking`` block → its spec, a request → a mode, and the two →
what one call sends. Config errors name the model's JSON path and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from bkvy.core.config.gateway import ConfigError, build_config
from bkvy.core.upstream.thinking import thinking_mode, thinking_record, thinking_setting
from bkvy.models.thinking import ThinkingMode, ThinkingParam, ThinkingSetting, ThinkingSpec
from bkvy.models.types import IntelligenceLevel

OFF, ON = ThinkingMode.OFF, ThinkingMode.ON
TYPES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "ollama": "ollama",
    "vllm": "openai_compatible",
}


def _spec(provider: str, model: dict[str, Any]) -> ThinkingSpec | None:
    raw = {
        "type": TYPES[provider],
        "base_url": "http://127.0.0.1:9",
        "keys": {"k": {"api_key": "x"}},
        "models": {"m": {"intelligence_tier": "high", "cost_per_1k_tokens": 0.001, **model}},
    }
    return build_config({provider: raw}, {}, {}).providers[provider].thinking_spec("m")


def _sent(provider: str, thinking: dict[str, Any], mode: ThinkingMode) -> ThinkingSetting | None:
    return thinking_setting(_spec(provider, {"thinking": thinking}), mode)


# -- a request's mode ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "disable", "mode"),
    [
        (IntelligenceLevel.LOW, False, OFF),
        (IntelligenceLevel.MEDIUM, False, None),
        (IntelligenceLevel.HIGH, False, ON),
        (None, False, None),  # scenario and direct requests leave the model's default
        (None, True, OFF),
        (IntelligenceLevel.HIGH, True, OFF),  # disable_thinking wins
    ],
)
def test_low_and_disable_switch_off_high_switches_on(level, disable, mode) -> None:
    assert thinking_mode(level=level, disable_thinking=disable) is mode


# -- what each vendor gets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "thinking", "off", "on"),
    [
        # OpenAI: "low" is every reasoning model's floor but gpt-5-pro's; "none" exists from gpt-5.1 on
        ("openai", {}, "low", "medium"),
        ("openai", {"min_effort": "minimal"}, "minimal", "medium"),
        ("openai", {"can_disable": True, "effort": "high"}, "none", "high"),
        ("openai", {"min_effort": "high", "effort": "high"}, "high", "high"),  # gpt-5-pro: high only
        # Gemini 2.5: 0 switches off where allowed; gemini-2.5-pro's floor is 128; -1 is dynamic
        ("gemini", {}, 0, -1),
        ("gemini", {"can_disable": False, "min_budget": 128}, 128, -1),
        ("gemini", {"min_budget": 512, "can_disable": False, "budget": 8192}, 512, 8192),
        # Gemini 3: levels, never off
        ("gemini", {"param": "thinking_level"}, "low", "high"),
        ("gemini", {"param": "thinking_level", "min_effort": "minimal"}, "minimal", "high"),
        # Anthropic: no block is off; a budget of at least 1024 enables; adaptive models take an effort
        ("anthropic", {}, None, 4096),
        ("anthropic", {"budget": 2048}, None, 2048),
        ("anthropic", {"can_disable": False}, 1024, 4096),
        ("anthropic", {"param": "adaptive"}, None, None),
        ("anthropic", {"param": "adaptive", "can_disable": False, "effort": "high"}, "low", "high"),
        # vLLM / SGLang: the chat template's switch; a model that always thinks gets nothing for off
        ("vllm", {}, False, True),
        ("vllm", {"can_disable": False}, None, True),
        ("vllm", {"param": "reasoning_effort"}, "low", "medium"),
        # Ollama: think false, or a level for gpt-oss
        ("ollama", {}, False, True),
        ("ollama", {"can_disable": False, "effort": "high"}, "low", "high"),
    ],
)
def test_each_vendor_gets_its_off_and_on_values(provider, thinking, off, on) -> None:
    off_setting, on_setting = _sent(provider, thinking, OFF), _sent(provider, thinking, ON)
    assert off_setting is not None and on_setting is not None
    assert (off_setting.mode, on_setting.mode) == (OFF, ON)
    assert (off_setting.value, on_setting.value) == (off, on)


def test_supports_thinking_alone_is_the_types_default_switch() -> None:
    assert _spec("gemini", {"supports_thinking": True}) == _spec("gemini", {"thinking": {}})
    assert _spec("vllm", {"supports_thinking": True}) == ThinkingSpec(ThinkingParam.ENABLE_THINKING, True)
    assert _spec("anthropic", {"supports_thinking": True}) == ThinkingSpec(
        ThinkingParam.BUDGET_TOKENS, True, budget=4096
    )


def test_a_model_that_does_not_think_gets_nothing() -> None:
    spec = _spec("gemini", {})
    assert spec is None and thinking_setting(spec, OFF) is None and thinking_setting(spec, ON) is None


def test_nothing_is_asked_of_a_medium_request() -> None:
    assert thinking_setting(_spec("gemini", {"supports_thinking": True}), None) is None


# -- config errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "fragment"),
    [
        ("openai", {"thinking": {"param": "thinking_budget"}}, "does not fit type 'openai'"),
        ("gemini", {"thinking": {"can_disable": False}}, "give min_budget"),
        ("gemini", {"thinking": {"min_budget": 128}}, "set can_disable false"),
        ("gemini", {"thinking": {"param": "thinking_level", "can_disable": True}}, "cannot switch thinking off"),
        ("gemini", {"thinking": {"can_disable": False, "min_budget": 128, "budget": 64}}, "budget must be"),
        ("gemini", {"thinking": {"min_effort": "low"}}, "min_effort does not apply"),
        ("anthropic", {"thinking": {"budget": 512}}, "at least 1024"),
        ("anthropic", {"thinking": {"can_disable": False, "min_budget": 1000}}, "at least 1024"),
        ("openai", {"thinking": {"min_effort": "lowest"}}, "not a reasoning_effort value"),
        ("openai", {"thinking": {"can_disable": True, "min_effort": "low"}}, "set can_disable false"),
        ("vllm", {"thinking": {"effort": "high"}}, "effort does not apply"),
        ("ollama", {"thinking": {"can_disable": False, "min_effort": "minimal"}}, "not a think value"),
        ("openai", {"supports_thinking": False, "thinking": {}}, 'drop "supports_thinking": false'),
        ("openai", {"thinking": {"budget_tokens": 1024}}, "Extra inputs"),
    ],
)
def test_a_bad_thinking_block_names_the_model_and_the_fix(provider, model, fragment) -> None:
    with pytest.raises(ConfigError) as raised:
        _spec(provider, model)
    message = str(raised.value)
    assert fragment in message and f"{provider}" in message
    assert "models.m" in message or "m.thinking" in message


# -- the record ----------------------------------------------------------------------------------------------


def test_record_shows_the_mode_and_every_parameter_sent() -> None:
    setting = ThinkingSetting(ON, ThinkingParam.BUDGET_TOKENS, 2048)
    sent = {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 3072}
    assert thinking_record(setting, sent) == "on: thinking.type=enabled thinking.budget_tokens=2048 max_tokens=3072"
    off = ThinkingSetting(OFF, ThinkingParam.ENABLE_THINKING, False)
    assert thinking_record(off, {"chat_template_kwargs": {"enable_thinking": False}}) == (
        "off: chat_template_kwargs.enable_thinking=false"
    )
    assert thinking_record(off, {}, "why") == "off: nothing sent (why)"
    assert thinking_record(None, {}) is None
