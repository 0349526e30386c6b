"""Client checks against ``/v1/messages``: anthropic, langchain-anthropic, litellm's anthropic route and
pydantic-ai's Anthropic model. Each builder returns ``[(case, check)]``; a check raises when the case fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clients_common import (
    ANTHROPIC_MODEL,
    ANTHROPIC_TOOLS,
    CHAT_MODEL,
    MEETING_QUESTION,
    MISSING_MODEL,
    OPENAI_TOOLS,
    QUESTION,
    TOOL_MODEL,
    TOOL_QUESTION,
    Meeting,
    check,
    expect_error,
    get_time,
    run_concurrently,
)
from clients_openai import pydantic_ai_cases

Checks = list[tuple[str, Callable[[], object]]]
ASK: list[Any] = [{"role": "user", "content": QUESTION}]


def anthropic_checks(base_url: str) -> Checks:
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)

    def plain() -> None:
        message = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=ASK)
        check(message.content[0].type == "text" and message._request_id, "no text or no request-id")

    def stream() -> None:
        with client.messages.stream(model=CHAT_MODEL, max_tokens=50, messages=ASK) as events:
            text = "".join(events.text_stream)
            check(text and events.get_final_message().stop_reason == "end_turn", "no text or no end_turn")

    def tools() -> None:
        question: Any = {"role": "user", "content": TOOL_QUESTION}
        first = client.messages.create(model=TOOL_MODEL, max_tokens=100, tools=ANTHROPIC_TOOLS, messages=[question])
        [call] = [block for block in first.content if block.type == "tool_use"]
        result = {"type": "tool_result", "tool_use_id": call.id, "content": get_time()}
        history: Any = [question, first.to_param(), {"role": "user", "content": [result]}]
        answer = client.messages.create(model=TOOL_MODEL, max_tokens=100, tools=ANTHROPIC_TOOLS, messages=history)
        check(answer.content[0].type == "text", "no answer after the tool result")

    def structured() -> None:
        question: Any = [{"role": "user", "content": MEETING_QUESTION}]
        parsed = client.messages.parse(model=CHAT_MODEL, max_tokens=200, messages=question, output_format=Meeting)
        check(isinstance(parsed.parsed_output, Meeting), "not parsed")

    def error_400() -> None:
        # anthropic 2.15's messages.create() has no temperature argument any more: a bad max_tokens instead
        call = lambda: client.messages.create(model=CHAT_MODEL, max_tokens=0, messages=ASK)  # noqa: E731
        error = expect_error(anthropic.BadRequestError, call)
        check("max_tokens" in error.message, f"message {error.message!r}")

    def error_404() -> None:
        call = lambda: client.messages.create(model=MISSING_MODEL, max_tokens=50, messages=ASK)  # noqa: E731
        check(expect_error(anthropic.NotFoundError, call).status_code == 404, "not 404")

    def concurrent() -> None:
        async_client = anthropic.AsyncAnthropic(base_url=base_url, api_key="unused", max_retries=0)
        replies = run_concurrently(lambda: async_client.messages.create(model=CHAT_MODEL, max_tokens=50, messages=ASK))
        check(len({reply.id for reply in replies}) == len(replies), "message ids repeat")

    def count_tokens() -> None:
        check(client.messages.count_tokens(model=CHAT_MODEL, messages=ASK).input_tokens > 0, "no count")

    return [
        ("plain", plain),
        ("stream", stream),
        ("tools round trip", tools),
        ("structured output (messages.parse)", structured),
        ("count_tokens", count_tokens),
        ("error 400 + param", error_400),
        ("error 404 model", error_404),
        ("20 concurrent async", concurrent),
    ]


def langchain_anthropic_checks(base_url: str) -> Checks:
    import anthropic
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import HumanMessage, ToolMessage

    def chat(model: str = CHAT_MODEL, **settings: Any) -> ChatAnthropic:
        return ChatAnthropic(
            model=model, base_url=base_url, api_key="unused", max_retries=0, max_tokens=200, **settings
        )

    def tools() -> None:
        model = chat(TOOL_MODEL).bind_tools([get_time])
        history: list[Any] = [HumanMessage(TOOL_QUESTION)]
        first = model.invoke(history)
        [call] = first.tool_calls
        history += [first, ToolMessage(get_time(), tool_call_id=call["id"])]
        check(model.invoke(history).content, "no answer after the tool result")

    def structured(method: str) -> None:
        output = chat().with_structured_output(Meeting, method=method).invoke(MEETING_QUESTION)  # type: ignore[arg-type]
        check(isinstance(output, Meeting), "not a Meeting")

    def error_400() -> None:
        error = expect_error(anthropic.BadRequestError, lambda: chat(temperature=1.5).invoke(QUESTION))
        check("temperature" in error.message, f"message {error.message!r}")

    def concurrent() -> None:
        model = chat()
        check(all(reply.content for reply in run_concurrently(lambda: model.ainvoke(QUESTION))), "an empty reply")

    return [
        ("plain", lambda: check(chat(ANTHROPIC_MODEL).invoke(QUESTION).content, "empty reply")),
        ("stream", lambda: check("".join(str(c.content) for c in chat().stream(QUESTION)), "no text")),
        ("tools round trip", tools),
        ("structured output (function_calling)", lambda: structured("function_calling")),
        ("structured output (json_schema)", lambda: structured("json_schema")),
        ("error 400 + param", error_400),
        (
            "error 404 model",
            lambda: expect_error(anthropic.NotFoundError, lambda: chat(MISSING_MODEL).invoke(QUESTION)),
        ),
        ("20 concurrent async", concurrent),
    ]


def litellm_anthropic_checks(base_url: str) -> Checks:
    import litellm

    litellm.suppress_debug_info = True  # no banner on stdout for each expected error
    route = {"api_base": base_url, "api_key": "unused", "num_retries": 0, "max_retries": 0, "max_tokens": 200}

    def complete(model: str = CHAT_MODEL, **fields: Any) -> Any:
        return litellm.completion(model=f"anthropic/{model}", **{"messages": ASK, **route, **fields})

    def stream() -> None:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in complete(stream=True) if chunk.choices)
        check(text, "no text")

    def tools() -> None:
        question = {"role": "user", "content": TOOL_QUESTION}
        first = complete(TOOL_MODEL, messages=[question], tools=OPENAI_TOOLS)
        [call] = first.choices[0].message.tool_calls
        history = [question, first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "12:00"}]
        check(complete(TOOL_MODEL, messages=history, tools=OPENAI_TOOLS).choices[0].message.content, "no answer")

    def structured() -> None:
        reply = complete(messages=[{"role": "user", "content": MEETING_QUESTION}], response_format=Meeting)
        Meeting.model_validate_json(reply.choices[0].message.content)

    def error_400() -> None:
        error = expect_error(litellm.BadRequestError, lambda: complete(temperature=1.5))
        check("temperature" in str(error), "the message does not name temperature")

    def concurrent() -> None:
        call = lambda: litellm.acompletion(model=f"anthropic/{CHAT_MODEL}", messages=ASK, **route)  # noqa: E731
        check(all(reply.choices[0].message.content for reply in run_concurrently(call)), "an empty reply")

    return [
        ("plain", lambda: check(complete(ANTHROPIC_MODEL).choices[0].message.content, "empty reply")),
        ("stream", stream),
        ("tools round trip", tools),
        ("structured output", structured),
        ("error 400 + param", error_400),
        ("error 404 model", lambda: expect_error(litellm.NotFoundError, lambda: complete(MISSING_MODEL))),
        ("20 concurrent async", concurrent),
    ]


def pydantic_ai_anthropic_checks(base_url: str) -> Checks:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    def model(name: str = CHAT_MODEL) -> AnthropicModel:
        # pydantic-ai allows NativeOutput only for the Claude names it knows; bkvy's names (auto, provider/model)
        # need the profile to say so.
        provider = AnthropicProvider(base_url=base_url, api_key="unused")
        return AnthropicModel(name, provider=provider, profile={"supports_json_schema_output": True})

    return pydantic_ai_cases(Agent, NativeOutput, model)
