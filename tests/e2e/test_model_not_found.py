"""An upstream 404 for a retired or unknown model (each vendor's own reply, from the simulated fleet): the request
fails over, the model's circuits open for every key of its provider, and later requests skip it."""

from __future__ import annotations

import httpx
import pytest

from bkvy.core.execution.executor import RequestOutcome
from bkvy.sim import SimFleet

MESSAGES = [{"role": "user", "content": "hi"}]


def _observed(client: httpx.AsyncClient) -> list[RequestOutcome]:
    outcomes: list[RequestOutcome] = []
    client.app.state.services.executor.add_observer(outcomes.append)  # type: ignore[attr-defined]
    return outcomes


async def test_a_retired_model_fails_over_and_is_skipped_afterwards(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet
) -> None:
    anthropic = fleet.servers["anthropic"]
    anthropic.knobs("claude-3-5-haiku-latest").retired = True
    outcomes = _observed(demo_gateway)
    body = {"model": "scenario:customer_support", "messages": MESSAGES}
    first = await demo_gateway.post("/v1/chat/completions", json=body)
    assert first.status_code == 200 and first.headers["x-bkvy-provider"] == "openai"
    assert [a.outcome for a in outcomes[0].attempts] == ["not_found", "success"]
    second = await demo_gateway.post("/v1/chat/completions", json=body)
    assert second.status_code == 200
    assert [a.outcome for a in outcomes[1].attempts] == ["success"]  # the plan left it out
    assert anthropic.stats.calls_by_model["claude-3-5-haiku-latest"] == 1


@pytest.mark.parametrize(
    "wire_format,model",
    [
        ("openai", "openai/gpt-4o-mini"),
        ("anthropic", "anthropic/claude-3-5-haiku-latest"),
        ("gemini", "gemini/gemini-2.5-flash"),
        ("ollama", "ollama/llama3.2"),
        ("openai_compatible", "vllm/qwen2.5-7b-instruct"),
    ],
)
async def test_each_vendors_404_opens_the_model_for_every_key_then_503_with_retry_after(
    demo_gateway: httpx.AsyncClient, fleet: SimFleet, wire_format: str, model: str
) -> None:
    server = fleet.servers[wire_format]
    server.knobs(model.split("/")[1]).retired = True
    outcomes = _observed(demo_gateway)
    first = await demo_gateway.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert first.status_code == 502  # not 400: the client's request was fine
    sent = [a for a in outcomes[0].attempts if a.outcome.was_sent]
    assert [(a.outcome, a.status) for a in sent] == [("not_found", 404)]  # a second key was not tried
    second = await demo_gateway.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert second.status_code == 503 and second.json()["error"]["code"] == "circuits_open"
    assert int(second.headers["retry-after"]) > 60  # a missing model is rechecked after the long hold
    assert sum(server.stats.calls_by_model.values()) == 1
