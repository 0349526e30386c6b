"""Shadow traffic's pure parts: sampling, similarity, the spare-slot rule, the book, routing.json "shadow"."""

from __future__ import annotations

import random

import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.gateway import ConfigError, build_config
from bkvy.core.config.settings import load_settings
from bkvy.core.limits.rate_limits import LaneKey, RateLimiter
from bkvy.core.shadow.book import ShadowBook, ShadowSkip
from bkvy.core.shadow.lanes import take_spare_slot
from bkvy.core.shadow.runner import ShadowCaps, ShadowRunner
from bkvy.core.shadow.similarity import word_jaccard

PROVIDERS = {
    "openai": {
        "type": "openai",
        "keys": {"k1": {"api_key": "sk-test"}},
        "models": {
            "gpt-4o-mini": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001},
            "gpt-4o": {"intelligence_tier": "medium", "cost_per_1k_tokens": 0.01},
            "text-embedding-3-small": {"capabilities": ["embeddings"], "input_cost_per_1k": 0.0001},
        },
    }
}


def _routing(shadow: object) -> dict[str, object]:
    return {"scenarios": {"chat": [{"provider": "openai", "model": "gpt-4o-mini"}]}, "shadow": shadow}


def _runner(seed: int) -> ShadowRunner:
    config = build_config(PROVIDERS, _routing({}), {})
    clock = FakeClock()
    return ShadowRunner(
        config_of=lambda: config,
        transport=None,  # type: ignore[arg-type]  # sampling sends nothing
        limiter=RateLimiter(clock),
        clock=clock,
        caps=ShadowCaps(1, 1.0, 10.0),
        rng=random.Random(seed),
    )


def test_sampling_follows_the_percent_with_a_seeded_generator() -> None:
    runner = _runner(7)
    assert not any(runner.is_sampled(0.0) for _ in range(1000))
    assert all(runner.is_sampled(100.0) for _ in range(1000))
    sampled = sum(runner.is_sampled(25.0) for _ in range(10_000))
    assert 2300 < sampled < 2700
    first, second = _runner(3), _runner(3)
    assert [first.is_sampled(50.0) for _ in range(50)] == [second.is_sampled(50.0) for _ in range(50)]


def test_word_jaccard_counts_shared_words() -> None:
    assert word_jaccard("The cat sat", "the CAT sat") == 1.0
    assert word_jaccard("a b", "c d") == 0.0
    assert word_jaccard("a b c", "b c d") == pytest.approx(0.5)
    assert word_jaccard("", "") == 1.0


def test_spare_slot_leaves_a_quarter_of_the_lane_to_primary_traffic() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    lane = LaneKey("openai", "k1", "gpt-4o-mini")
    limiter.configure(lane, rpm=4, rpd=None)
    assert limiter.try_acquire(lane) is not None  # primary traffic: 1 of 4 used
    assert take_spare_slot(limiter, lane, clock.now(), 0) is not None  # 2 used
    assert take_spare_slot(limiter, lane, clock.now(), 0) is not None  # 3 used: one left, the headroom
    assert take_spare_slot(limiter, lane, clock.now(), 0) is None  # the last slot stays for a primary
    assert limiter.try_acquire(lane) is not None  # ... which a primary request still gets


def test_spare_slot_on_an_unlimited_lane_is_free() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    lane = LaneKey("ollama", "default", "llama3.2")
    assert all(take_spare_slot(limiter, lane, clock.now(), 100) is not None for _ in range(50))


def test_book_round_trips_and_rolls_the_budget_day() -> None:
    book = ShadowBook()
    book.spend("2026-12-01", 0.5)
    tally = book.tally("low", "openai/gpt-4o")
    tally.add(is_success=True, latency_ms=10.0, cost_usd=0.5, finish_reason="stop", similarity=0.25)
    tally.add(is_success=False, latency_ms=30.0, cost_usd=0.0)
    tally.skip(ShadowSkip.BUDGET)
    again = ShadowBook.from_dict(book.to_dict())
    summary = again.summary()["routes"]["low"]["openai/gpt-4o"]
    assert summary["success_rate"] == 0.5 and summary["mean_similarity"] == 0.25
    assert summary["p50_ms"] == 10.0 and summary["p95_ms"] == 30.0 and summary["skipped"] == {"budget": 1}
    assert again.spent_usd == 0.5
    again.roll("2026-12-02")
    assert again.spent_usd == 0.0
    assert ShadowBook.from_dict({"version": 9}).routes == {}


@pytest.mark.parametrize(
    ("shadow", "words"),
    [
        ({"nope": {"models": ["openai/gpt-4o"], "sample_percent": 5}}, "shadow.nope: unknown route"),
        ({"scenario:x": {"models": ["openai/gpt-4o"], "sample_percent": 5}}, "shadow.scenario:x: unknown scenario"),
        ({"low": {"models": ["openai/nope"], "sample_percent": 5}}, "shadow.low.models.0: 'openai/nope' is not"),
        ({"low": {"models": ["openai/text-embedding-3-small"], "sample_percent": 5}}, "is an embedding model"),
        ({"low": {"models": ["openai/gpt-4o"], "sample_percent": 150}}, "shadow.low.sample_percent"),
        ({"low": {"models": [], "sample_percent": 5}}, "shadow.low.models"),
        ({"low": {"models": ["openai/gpt-4o", "openai/gpt-4o"], "sample_percent": 5}}, "listed twice"),
    ],
)
def test_invalid_shadow_config_names_file_and_path(shadow: object, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(PROVIDERS, _routing(shadow), {}, routing_file="routing.json")
    assert str(raised.value).startswith("routing.json: ")
    assert words in str(raised.value)


def test_valid_shadow_config_loads() -> None:
    shadow = {
        "low": {"models": ["openai/gpt-4o"], "sample_percent": 5},
        "scenario:chat": {"models": ["openai/gpt-4o"], "sample_percent": 100},
    }
    config = build_config(PROVIDERS, _routing(shadow), {})
    assert config.routing.shadow["scenario:chat"].sample_percent == 100


def test_shadow_caps_come_from_the_environment() -> None:
    settings = load_settings({"SHADOW_MAX_CONCURRENCY": "2", "SHADOW_DAILY_BUDGET_USD": "0.5"})
    assert (settings.shadow_max_concurrency, settings.shadow_daily_budget_usd) == (2, 0.5)
    defaults = load_settings({})
    assert (defaults.shadow_max_concurrency, defaults.shadow_daily_budget_usd) == (4, 1.0)
    with pytest.raises(ConfigError, match="SHADOW_MAX_CONCURRENCY"):
        load_settings({"SHADOW_MAX_CONCURRENCY": "0"})
