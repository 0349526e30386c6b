"""Shared by the client checks (``benchmarks/clients_check.py``): models, prompts and small assertion helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T")

# ``auto`` routes to the cheapest medium model, which in the demo has no rate limit; tools need a model that has
# them (the demo's openai keys allow 2 x 20 calls a minute, enough for every client's round trip).
CHAT_MODEL = "auto"
TOOL_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-latest"  # 10 calls a minute in the demo: plain cases only
EMBED_MODEL = "openai/text-embedding-3-small"
MISSING_MODEL = "no-such-model"
CONCURRENT_CALLS = 20
QUESTION = "Say hello."
TOOL_QUESTION = "What time is it?"
MEETING_QUESTION = "Plan a meeting."
OPENAI_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "get_time", "description": "The current time.", "input_schema": {"type": "object", "properties": {}}}
]


class Meeting(BaseModel):
    title: str
    attendees: list[str]


def get_time() -> str:
    """The current time."""
    return "12:00"


def check(is_true: object, what: str) -> None:
    if not is_true:
        raise AssertionError(what)


def expect_error(error_type: type[BaseException], call: Callable[[], object]) -> Any:
    """The ``error_type`` that ``call`` raises; anything else (or nothing) fails the case."""
    try:
        call()
    except error_type as error:
        return error
    raise AssertionError(f"no {error_type.__name__} raised")


def run_concurrently(make_call: Callable[[], Awaitable[T]], calls: int = CONCURRENT_CALLS) -> list[T]:
    """``calls`` concurrent calls on one event loop; every one must succeed."""

    async def _all() -> list[T]:
        return list(await asyncio.gather(*(make_call() for _ in range(calls))))

    results = asyncio.run(_all())
    check(len(results) == calls, f"{len(results)} of {calls} calls answered")
    return results
