"""Client checks against ``/v1/chat/completions`` and ``/v1/embeddings``: openai, langchain-openai, litellm,
pydantic-ai and llm. Each builder returns ``[(case, check)]``; a check raises when the case fails."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients_common import (
    CHAT_MODEL,
    EMBED_MODEL,
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

Checks = list[tuple[str, Callable[[], object]]]
ASK: list[Any] = [{"role": "user", "content": QUESTION}]


def openai_checks(base_url: str) -> Checks:
    import openai

    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)

    def plain() -> None:
        reply = client.chat.completions.create(model=CHAT_MODEL, messages=ASK, max_tokens=50)
        check(reply.choices[0].message.content and reply._request_id, "empty reply or no x-request-id")

    def stream() -> None:
        chunks = list(
            client.chat.completions.create(
                model=CHAT_MODEL, messages=ASK, stream=True, stream_options={"include_usage": True}
            )
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        check(text and chunks[-1].usage, "no text or no usage chunk")

    def tools() -> None:
        question: Any = {"role": "user", "content": TOOL_QUESTION}
        first = client.chat.completions.create(model=TOOL_MODEL, messages=[question], tools=OPENAI_TOOLS)
        [call] = first.choices[0].message.tool_calls or []
        history = [question, first.choices[0].message.model_dump(exclude_none=True)]
        history.append({"role": "tool", "tool_call_id": call.id, "content": get_time()})
        answer = client.chat.completions.create(model=TOOL_MODEL, messages=history, tools=OPENAI_TOOLS)
        check(answer.choices[0].message.content, "no answer after the tool result")

    def structured() -> None:
        completion = client.chat.completions.parse(
            model=CHAT_MODEL, messages=[{"role": "user", "content": MEETING_QUESTION}], response_format=Meeting
        )
        check(isinstance(completion.choices[0].message.parsed, Meeting), "not parsed")

    def embeddings() -> None:
        vectors = client.embeddings.create(model=EMBED_MODEL, input=["first text", "second text"])
        check(len(vectors.data) == 2 and vectors.data[1].embedding, "not two vectors")

    def models() -> None:
        check(client.models.retrieve(TOOL_MODEL).owned_by == "openai", "models.retrieve")

    def error_400() -> None:
        call = lambda: client.chat.completions.create(model=CHAT_MODEL, messages=ASK, temperature=5)  # noqa: E731
        error = expect_error(openai.BadRequestError, call)
        check(error.param == "temperature", f"param {error.param!r}")

    def error_404() -> None:
        error = expect_error(
            openai.NotFoundError, lambda: client.chat.completions.create(model=MISSING_MODEL, messages=ASK)
        )
        check(error.code == "unknown_model", f"code {error.code!r}")

    def concurrent() -> None:
        async_client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
        replies = run_concurrently(lambda: async_client.chat.completions.create(model=CHAT_MODEL, messages=ASK))
        check(len({reply._request_id for reply in replies}) == len(replies), "request ids repeat")

    return [
        ("plain", plain),
        ("stream", stream),
        ("tools round trip", tools),
        ("structured output", structured),
        ("embeddings", embeddings),
        ("models.retrieve", models),
        ("error 400 + param", error_400),
        ("error 404 model", error_404),
        ("20 concurrent async", concurrent),
    ]


def langchain_openai_checks(base_url: str) -> Checks:
    import openai
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    def chat(model: str = CHAT_MODEL, **settings: Any) -> ChatOpenAI:
        return ChatOpenAI(model=model, base_url=f"{base_url}/v1", api_key="unused", max_retries=0, **settings)

    def tools() -> None:
        model = chat(TOOL_MODEL).bind_tools([get_time])
        history: list[Any] = [HumanMessage(TOOL_QUESTION)]
        first = model.invoke(history)
        [call] = first.tool_calls
        history += [first, ToolMessage(get_time(), tool_call_id=call["id"])]
        check(model.invoke(history).content, "no answer after the tool result")

    def embeddings() -> None:
        # check_embedding_ctx_length=False sends text; the default tokenises with tiktoken first, which downloads
        # its encoding on first use (no network here)
        embedder = OpenAIEmbeddings(
            model=EMBED_MODEL,
            base_url=f"{base_url}/v1",
            api_key="unused",
            max_retries=0,
            check_embedding_ctx_length=False,
        )
        check(len(embedder.embed_documents(["first text", "second text"])) == 2, "not two vectors")

    def error_400() -> None:
        error = expect_error(openai.BadRequestError, lambda: chat(temperature=5).invoke(QUESTION))
        check(error.param == "temperature", f"param {error.param!r}")

    def concurrent() -> None:
        model = chat()
        replies = run_concurrently(lambda: model.ainvoke(QUESTION))
        check(all(reply.content for reply in replies), "an empty reply")

    return [
        ("plain", lambda: check(chat().invoke(QUESTION).content, "empty reply")),
        ("stream", lambda: check("".join(str(c.content) for c in chat().stream(QUESTION)), "no text")),
        ("tools round trip", tools),
        (
            "structured output",
            lambda: check(isinstance(chat().with_structured_output(Meeting).invoke(MEETING_QUESTION), Meeting), "x"),
        ),
        ("embeddings", embeddings),
        ("error 400 + param", error_400),
        ("error 404 model", lambda: expect_error(openai.NotFoundError, lambda: chat(MISSING_MODEL).invoke(QUESTION))),
        ("20 concurrent async", concurrent),
    ]


def litellm_openai_checks(base_url: str) -> Checks:
    import litellm

    litellm.suppress_debug_info = True  # no banner on stdout for each expected error
    route = {"api_base": f"{base_url}/v1", "api_key": "unused", "num_retries": 0, "max_retries": 0}

    def complete(model: str = CHAT_MODEL, **fields: Any) -> Any:
        return litellm.completion(model=f"openai/{model}", **{"messages": ASK, **route, **fields})

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

    def embeddings() -> None:
        vectors = litellm.embedding(model=f"openai/{EMBED_MODEL}", input=["first text", "second text"], **route)
        check(len(vectors.data) == 2 and vectors.data[1]["embedding"], "not two vectors")

    def error_400() -> None:
        error = expect_error(litellm.BadRequestError, lambda: complete(temperature=5))
        check("temperature" in str(error), "the message does not name temperature")

    def concurrent() -> None:
        call = lambda: litellm.acompletion(model=f"openai/{CHAT_MODEL}", messages=ASK, **route)  # noqa: E731
        check(all(reply.choices[0].message.content for reply in run_concurrently(call)), "an empty reply")

    return [
        ("plain", lambda: check(complete().choices[0].message.content, "empty reply")),
        ("stream", stream),
        ("tools round trip", tools),
        ("structured output", structured),
        ("embeddings", embeddings),
        ("error 400 + param", error_400),
        ("error 404 model", lambda: expect_error(litellm.NotFoundError, lambda: complete(MISSING_MODEL))),
        ("20 concurrent async", concurrent),
    ]


def pydantic_ai_openai_checks(base_url: str) -> Checks:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.embeddings import Embedder
    from pydantic_ai.embeddings.openai import OpenAIEmbeddingModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def provider() -> OpenAIProvider:
        return OpenAIProvider(base_url=f"{base_url}/v1", api_key="unused")

    def model(name: str = CHAT_MODEL) -> OpenAIChatModel:
        return OpenAIChatModel(name, provider=provider())

    def embeddings() -> None:
        embedder = Embedder(OpenAIEmbeddingModel(EMBED_MODEL, provider=provider()))
        result = asyncio.run(embedder.embed_documents(["first text", "second text"]))
        check(len(result.embeddings) == 2, "not two vectors")

    return pydantic_ai_cases(Agent, NativeOutput, model) + [("embeddings", embeddings)]


def pydantic_ai_cases(agent_type: Any, native_output: Any, model: Callable[..., Any]) -> Checks:
    """The same cases for pydantic-ai's OpenAI and Anthropic models."""
    from pydantic_ai.exceptions import ModelHTTPError
    from pydantic_ai.messages import ToolReturnPart

    def stream() -> None:
        async def _text() -> str:
            async with agent_type(model()).run_stream(QUESTION) as result:
                return "".join([piece async for piece in result.stream_text(delta=True)])

        check(asyncio.run(_text()), "no text")

    def tools() -> None:
        result = agent_type(model(TOOL_MODEL), tools=[get_time]).run_sync(TOOL_QUESTION)
        returned = [part for message in result.all_messages() for part in message.parts]
        check(any(isinstance(part, ToolReturnPart) for part in returned) and result.output, "no tool round trip")

    def structured() -> None:
        output = agent_type(model(), output_type=native_output(Meeting)).run_sync(MEETING_QUESTION).output
        check(isinstance(output, Meeting), "not a Meeting")

    def error(status: int, agent: Any) -> None:
        caught = expect_error(ModelHTTPError, lambda: agent.run_sync(QUESTION))
        check(caught.status_code == status, f"status {caught.status_code}")

    def concurrent() -> None:
        agent = agent_type(model())
        check(all(result.output for result in run_concurrently(lambda: agent.run(QUESTION))), "an empty reply")

    return [
        ("plain", lambda: check(agent_type(model()).run_sync(QUESTION).output, "empty reply")),
        ("stream", stream),
        ("tools round trip", tools),
        ("structured output (NativeOutput)", structured),
        ("error 400 + param", lambda: error(400, agent_type(model(), model_settings={"temperature": 5}))),
        ("error 404 model", lambda: error(404, agent_type(model(MISSING_MODEL)))),
        ("20 concurrent async", concurrent),
    ]


def llm_checks(base_url: str) -> Checks:
    """simonw's ``llm``: models declared in ``extra-openai-models.yaml`` under a fresh LLM_USER_PATH."""
    user_dir = Path(tempfile.mkdtemp(prefix="bkvy-llm-"))
    declared = [("bkvy-auto", CHAT_MODEL), ("bkvy-tools", TOOL_MODEL), ("bkvy-missing", MISSING_MODEL)]
    lines = []
    for model_id, model_name in declared:
        lines += [f"- model_id: {model_id}", f"  model_name: {model_name}", f"  api_base: {base_url}/v1"]
        lines += ["  supports_schema: true", "  supports_tools: true"]
    (user_dir / "extra-openai-models.yaml").write_text("\n".join(lines) + "\n")
    os.environ["LLM_USER_PATH"] = str(user_dir)
    import llm
    import openai

    def tools() -> None:
        chain = llm.get_model("bkvy-tools").chain(TOOL_QUESTION, tools=[get_time])
        text = chain.text()
        called = [call.name for response in chain.responses() for call in response.tool_calls()]
        check(called == ["get_time"] and text, f"tool calls {called}")

    def schema_cli() -> None:
        command = [sys.executable, "-m", "llm", "-m", "bkvy-auto", "--schema", "title, attendees", MEETING_QUESTION]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=os.environ.copy())
        check(done.returncode == 0, done.stderr.strip()[-200:])
        check(set(json.loads(done.stdout)) == {"title", "attendees"}, f"output {done.stdout[:80]!r}")

    def error_400() -> None:
        call = lambda: llm.get_model("bkvy-auto").prompt(QUESTION, max_tokens=0).text()  # noqa: E731
        error = expect_error(openai.BadRequestError, call)
        check(error.param == "max_tokens", f"param {error.param!r}")

    def concurrent() -> None:
        model = llm.get_async_model("bkvy-auto")
        check(all(run_concurrently(lambda: model.prompt(QUESTION).text())), "an empty reply")

    return [
        ("plain", lambda: check(llm.get_model("bkvy-auto").prompt(QUESTION).text(), "empty reply")),
        ("stream", lambda: check("".join(llm.get_model("bkvy-auto").prompt(QUESTION)), "no text")),
        ("tools round trip (chain)", tools),
        ("structured output (llm --schema)", schema_cli),
        ("error 400 + param", error_400),
        (
            "error 404 model",
            lambda: expect_error(openai.NotFoundError, lambda: llm.get_model("bkvy-missing").prompt(QUESTION).text()),
        ),
        ("20 concurrent async", concurrent),
    ]
