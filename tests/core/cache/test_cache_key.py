"""The cache key: the same request however it is spaced or its JSON keys ordered; any parameter changes it."""

from __future__ import annotations

from bkvy.core.cache.key import cache_key, normal_text
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import (
    ChatMessage,
    GenerationOptions,
    IntelligenceLevel,
    JsonSchemaFormat,
    RoutingMethod,
    ToolSpec,
)

ROUTE = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)
MESSAGES = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is  2+2?\n"))
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
WEATHER_REORDERED = {"properties": {"unit": {"type": "string"}, "city": {"type": "string"}}, "type": "object"}


NO_OPTIONS = GenerationOptions()


def key(route: RouteRequest = ROUTE, messages=MESSAGES, options: GenerationOptions = NO_OPTIONS) -> str:
    return cache_key(route, messages, options)


def test_whitespace_runs_and_ends_do_not_change_the_key() -> None:
    spaced = (ChatMessage("system", "  Be\tbrief. "), ChatMessage("user", "What is 2+2?"))
    assert normal_text(" a \n\n b\t") == "a b"
    assert key(messages=spaced) == key()
    parts = (ChatMessage("system", "Be brief."), ChatMessage("user", ({"type": "text", "text": "What is\n2+2? "},)))
    plain = (ChatMessage("system", "Be brief."), ChatMessage("user", ({"text": "What is 2+2?", "type": "text"},)))
    assert key(messages=parts) == key(messages=plain)


def test_json_key_order_in_tools_and_schemas_does_not_change_the_key() -> None:
    tools = GenerationOptions(tools=(ToolSpec("weather", "The weather.", WEATHER),))
    reordered = GenerationOptions(tools=(ToolSpec("weather", "The  weather.", WEATHER_REORDERED),))
    assert key(options=tools) == key(options=reordered)
    schema = GenerationOptions(json_schema=JsonSchemaFormat("w", WEATHER))
    assert key(options=schema) == key(options=GenerationOptions(json_schema=JsonSchemaFormat("w", WEATHER_REORDERED)))


def test_different_parameters_give_different_keys() -> None:
    variants = [
        GenerationOptions(),
        GenerationOptions(max_tokens=10),
        GenerationOptions(temperature=0.5),
        GenerationOptions(top_p=0.9),
        GenerationOptions(stop=("x",)),
        GenerationOptions(json_mode=True),
        GenerationOptions(disable_thinking=True),
        GenerationOptions(tools=(ToolSpec("weather", None, WEATHER),)),
        GenerationOptions(json_schema=JsonSchemaFormat("w", WEATHER)),
    ]
    assert len({key(options=options) for options in variants}) == len(variants)


def test_route_and_text_change_the_key() -> None:
    routes = [
        ROUTE,
        ROUTE._replace(level=IntelligenceLevel.HIGH),
        RouteRequest(RoutingMethod.SCENARIO, scenario="chat"),
        RouteRequest(RoutingMethod.DIRECT, provider="openai", model="gpt-4o-mini"),
        ROUTE._replace(allowed=frozenset({("openai", "gpt-4o-mini")})),
    ]
    assert len({key(route=route) for route in routes}) == len(routes)
    assert key(messages=(ChatMessage("user", "What is 2+3?"),)) != key(messages=(ChatMessage("user", "What is 2+2?"),))
    assert key(messages=(ChatMessage("assistant", "hi"),)) != key(messages=(ChatMessage("user", "hi"),))


def test_estimates_and_wait_do_not_change_the_key() -> None:
    assert key(route=ROUTE._replace(max_wait_seconds=5, input_tokens_estimate=99, affinity_key="s")) == key()


def test_what_picks_the_model_changes_the_key() -> None:
    """``optimize`` cost then quality (or another domain, another tenant's preferred models) may route to another
    model: the second must not be a hit served by the first's model."""
    from bkvy.core.routing.scoring import OPTIMIZE_PRESETS

    routes = [
        ROUTE,
        ROUTE._replace(weights=OPTIMIZE_PRESETS["quality"]),
        ROUTE._replace(weights=OPTIMIZE_PRESETS["latency"]),
        ROUTE._replace(domain="code"),
        ROUTE._replace(preferred=(("openai", "gpt-4o"),)),
        ROUTE._replace(preferred=(("openai", "gpt-4o"), ("anthropic", "claude"))),
        ROUTE._replace(preferred=(("anthropic", "claude"), ("openai", "gpt-4o"))),
    ]
    assert len({key(route=route) for route in routes}) == len(routes)
