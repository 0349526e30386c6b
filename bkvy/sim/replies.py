"""What a simulated call asked for, and the deterministic reply it gets (lorem text, never an echo)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from .knobs import ModelKnobs
from .structured import ToolPick, schema_reply
from .thinking import ThinkingAsk

_WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
]
_CHARS_PER_TOKEN = 4
_PROMPT_OVERHEAD_TOKENS = 3
_THOUGHT_TOKENS_PER_REPLY_TOKEN = 2


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str
    api_key: str | None
    is_stream: bool
    max_tokens: int | None
    prompt_chars: int
    is_thinking_off: bool  # the request switched reasoning off (budget 0, lowest effort, ...)
    include_usage: bool = False
    tool_to_call: ToolPick | None = None  # tools were offered and the user spoke last: call this one
    json_schema: dict | None = None  # structured output asked for: the reply is an instance of this schema
    thinking: ThinkingAsk | None = None  # what it asked of the model's reasoning (checked by sim.thinking)
    prefix: tuple[tuple[str, int], ...] = ()  # its messages' prefix chain (sim.prefix_cache), OpenAI wire only


@dataclass(frozen=True, slots=True)
class SimReply:
    response_id: str
    model: str
    chunks: tuple[str, ...]  # one streamed content delta per entry; "".join gives the text
    prompt_tokens: int
    completion_tokens: int
    thought_tokens: int
    is_truncated: bool  # max_tokens cut it: finish "length" / "max_tokens"
    created_seconds: int
    tool_call: str | None = None  # the function called instead of a text reply
    tool_arguments: str = "{}"  # its arguments, JSON

    @property
    def tool_call_id(self) -> str:
        return f"call_{self.response_id}"

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def billed_tokens(call: ChatCall, knobs: ModelKnobs) -> int:
    """The tokens ``build_reply``'s usage will report for this call: prompt, completion and thoughts."""
    completion_tokens = _completion_tokens(call, knobs)
    thought_tokens = completion_tokens * _THOUGHT_TOKENS_PER_REPLY_TOKEN if _is_thinking(call, knobs) else 0
    return _prompt_tokens(call) + completion_tokens + thought_tokens


def _completion_tokens(call: ChatCall, knobs: ModelKnobs) -> int:
    limit = call.max_tokens if call.max_tokens is not None else knobs.tokens_per_reply
    return max(1, min(knobs.tokens_per_reply, limit))


def _prompt_tokens(call: ChatCall) -> int:
    return _PROMPT_OVERHEAD_TOKENS + call.prompt_chars // _CHARS_PER_TOKEN


def _is_thinking(call: ChatCall, knobs: ModelKnobs) -> bool:
    return knobs.thinks and not call.is_thinking_off


def build_reply(call: ChatCall, knobs: ModelKnobs, rng: random.Random) -> SimReply:
    limit = call.max_tokens if call.max_tokens is not None else knobs.tokens_per_reply
    completion_tokens = _completion_tokens(call, knobs)
    words = [rng.choice(_WORDS) for _ in range(completion_tokens)]
    words[0] = words[0].capitalize()
    chunks = tuple(word if i == 0 else " " + word for i, word in enumerate(words[:-1])) + (
        (" " if completion_tokens > 1 else "") + words[-1] + ".",
    )
    is_thinking = _is_thinking(call, knobs)
    if call.tool_to_call is not None:
        chunks = ()
    elif call.json_schema is not None:
        chunks = _pieces(schema_reply(call.json_schema))
    return SimReply(
        response_id=f"{rng.getrandbits(64):016x}",
        model=call.model,
        chunks=chunks,
        prompt_tokens=_prompt_tokens(call),
        completion_tokens=completion_tokens,
        thought_tokens=completion_tokens * _THOUGHT_TOKENS_PER_REPLY_TOKEN if is_thinking else 0,
        is_truncated=limit < knobs.tokens_per_reply and call.tool_to_call is None,
        created_seconds=int(time.time()),
        tool_call=call.tool_to_call.name if call.tool_to_call else None,
        tool_arguments=call.tool_to_call.arguments if call.tool_to_call else "{}",
    )


def _pieces(text: str, count: int = 3) -> tuple[str, ...]:
    """``text`` in ``count`` stream deltas (JSON split mid-token, as real streams do)."""
    size = max(1, -(-len(text) // count))
    return tuple(text[start : start + size] for start in range(0, len(text), size))


def last_user_text(messages: list) -> str:
    """The text of the last message when a user wrote it (steers ``structured.pick_tool``), else ""."""
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    content = last.get("content", last.get("parts"))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def text_length(content: object) -> int:
    """Characters of text in a message content: a string, or a list of parts with `text`."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(text_length(part.get("text", "")) for part in content if isinstance(part, dict))
    return 0
