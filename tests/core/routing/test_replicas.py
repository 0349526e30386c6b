"""ReplicaRouter: a replicated model's candidates in replica order; everything else in its place."""

from __future__ import annotations

from bkvy.core.config.gateway import build_config
from bkvy.core.routing.plan import RouteRequest, plan_route
from bkvy.core.routing.replicas import ReplicaHealth, ReplicaRouter, prefix_key
from bkvy.core.routing.route_table import RouteTable
from bkvy.models.types import ChatMessage, IntelligenceLevel, RoutingMethod

URLS = [f"http://10.0.0.{n}:8000" for n in range(1, 5)]


def _config(balancing: str = "affinity"):
    replicated = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0, "endpoints": URLS, "balancing": balancing}
    return build_config(
        {
            "vllm": {"type": "openai_compatible", "models": {"llama": replicated}},
            "oai": {
                "type": "openai",
                "keys": {"k": {"api_key": "x"}},
                "models": {"gpt": {"intelligence_tier": "low", "cost_per_1k_tokens": 1.0}},
            },
        },
        {},
        {},
    )


LOW = RouteRequest(RoutingMethod.INTELLIGENCE, level=IntelligenceLevel.LOW)
GPT = RouteRequest(RoutingMethod.DIRECT, provider="oai", model="gpt")


def _router(balancing: str = "affinity", health: ReplicaHealth | None = None):
    config = _config(balancing)
    router = ReplicaRouter.from_config(config, health or ReplicaHealth())
    assert router is not None
    return router, RouteTable.compile(config)


def _key_ids(plan) -> list[str]:
    return [c.key_id for c in plan.candidates]


def test_the_same_key_gets_the_same_replica_first_and_the_rest_in_ring_order() -> None:
    router, table = _router()
    plans = [router.order(plan_route(LOW, table, {}), lambda: "session-a") for _ in range(3)]
    assert _key_ids(plans[0]) == _key_ids(plans[1]) == _key_ids(plans[2])
    ring = router._models[("vllm", "llama")].ring
    assert _key_ids(plans[0])[:4] == [f"default@{i}" for i in ring.walk("session-a")]
    assert _key_ids(plans[0])[4:] == ["k"]  # the other model keeps its place (dearer: last)


def test_different_keys_spread_over_the_replicas() -> None:
    router, table = _router()
    firsts = {router.order(plan_route(LOW, table, {}), lambda n=n: f"s{n}").candidates[0].key_id for n in range(64)}
    assert firsts == {f"default@{i}" for i in range(4)}


def test_a_plan_without_a_replicated_model_is_returned_as_it_is() -> None:
    router, table = _router()
    plan = plan_route(GPT, table, {})
    asked: list[bool] = []
    assert router.order(plan, lambda: asked.append(True) or "k") is plan
    assert not asked  # the affinity key is never computed for it


def test_load_moves_a_key_off_its_busy_replica_and_back_once_it_drains() -> None:
    router, table = _router()
    first = router.order(plan_route(LOW, table, {}), lambda: "hot").candidates[0].key_id
    for _ in range(3):
        router.attempt_started("vllm", "llama", first)
    moved = router.order(plan_route(LOW, table, {}), lambda: "hot")
    assert moved.candidates[0].key_id != first and first in _key_ids(moved)[1:4]
    for _ in range(3):
        router.attempt_ended("vllm", "llama", first)
    assert router.loads("vllm", "llama") == (0, 0, 0, 0)
    assert router.order(plan_route(LOW, table, {}), lambda: "hot").candidates[0].key_id == first


def test_a_saturated_replica_goes_after_the_others() -> None:
    health = ReplicaHealth()
    router, table = _router(health=health)
    first = router.order(plan_route(LOW, table, {}), lambda: "s1").candidates[0].key_id
    health.saturated_urls = frozenset({URLS[int(first.split("@")[1])]})
    order = _key_ids(router.order(plan_route(LOW, table, {}), lambda: "s1"))
    assert order[3] == first and order[4] == "k"


def test_round_robin_turns_through_the_replicas() -> None:
    router, table = _router("round_robin")
    firsts = [router.order(plan_route(LOW, table, {}), lambda: "same").candidates[0].key_id for _ in range(5)]
    assert firsts == ["default@0", "default@1", "default@2", "default@3", "default@0"]


def test_no_replicated_model_means_no_router() -> None:
    config = build_config(
        {
            "oai": {
                "type": "openai",
                "keys": {"k": {"api_key": "x"}},
                "models": {"gpt": {"intelligence_tier": "low", "cost_per_1k_tokens": 1}},
            }
        },
        {},
        {},
    )
    assert ReplicaRouter.from_config(config, ReplicaHealth()) is None


def test_prefix_key_is_the_conversations_opening() -> None:
    system = ChatMessage("system", "You are a support agent for ACME.")
    first = [system, ChatMessage("user", "My order is late.")]
    later = [*first, ChatMessage("assistant", "Sorry to hear that."), ChatMessage("user", "It is #123.")]
    other = [system, ChatMessage("user", "How do I reset my password?")]
    assert prefix_key(first) == prefix_key(later)  # every turn of one conversation: the same key
    assert prefix_key(first) != prefix_key(other)
    assert prefix_key([ChatMessage("user", "hi")]) == prefix_key(
        [ChatMessage("user", "hi"), ChatMessage("assistant", "x")]
    )
    assert prefix_key([]) is None
    assert "ACME" not in (prefix_key(first) or "")  # a hash, never the text


def test_the_replica_order_never_moves_a_late_or_flapping_replica_ahead() -> None:
    # The affinity replica is past the max wait (then flapping): it keeps its place behind those that fit, and only
    # replicas of the same standing trade places.
    from bkvy.core.routing.plan import CandidateKey, CandidateState, plan_route

    router, table = _router()
    first = router._models[("vllm", "llama")].ring.walk("sess")[0]
    states = {CandidateKey("vllm", "llama", f"default@{i}"): CandidateState(1.0) for i in range(4)}
    for slow in (CandidateState(100.0), CandidateState(1.0, is_flapping=True)):
        states[CandidateKey("vllm", "llama", f"default@{first}")] = slow
        plan = plan_route(LOW._replace(max_wait_seconds=5.0), table, states)
        ordered = router.order(plan, lambda: "sess")
        assert ordered.candidates[-1].key_id == f"default@{first}" == plan.candidates[-1].key_id
        assert [c.reason for c in ordered.candidates] == [c.reason for c in plan.candidates]
        assert [c.model for c in ordered.candidates] == [c.model for c in plan.candidates]


def test_peeking_leaves_a_round_robins_turn_where_it_is() -> None:
    from bkvy.core.routing.plan import plan_route

    router, table = _router()
    model = router._models[("vllm", "llama")]
    model.is_affinity = False  # round robin
    plan = plan_route(LOW, table, {})
    peeked = [router.order(plan, lambda: None, peek=True).candidates[0].key_id for _ in range(3)]
    served = router.order(plan, lambda: None).candidates[0].key_id
    assert len(set(peeked)) == 1 and peeked[0] == served
