"""The discounted Thompson sampler, pure: a seeded RNG, rewards fed by hand, no clock."""

from __future__ import annotations

import random

import pytest

from bkvy.core.routing.bandit import BanditBook, Pair, Posterior, discounted

A, B, C = ("p", "a"), ("p", "b"), ("q", "c")
ROUTE = "low"


def _book(discount: float = 0.98, arms: tuple[Pair, ...] = (A, B, C)) -> BanditBook:
    book = BanditBook(discount=discount)
    book.configure({ROUTE: arms}, discount=discount)
    return book


def _play(book: BanditBook, rng: random.Random, success: dict[Pair, float], rounds: int) -> list[Pair]:
    """``rounds`` requests: draw, serve the top arm, reward 1 with its success probability. Returns the choices."""
    chosen = []
    for _ in range(rounds):
        draws = book.draw(ROUTE, rng)
        arm = max(draws, key=draws.__getitem__)
        book.update(ROUTE, arm, 1.0 if rng.random() < success[arm] else 0.0)
        chosen.append(arm)
    return chosen


def _share(chosen: list[Pair], arm: Pair) -> float:
    return chosen.count(arm) / len(chosen)


def test_converges_to_the_best_arm() -> None:
    book, rng = _book(), random.Random(7)
    chosen = _play(book, rng, {A: 0.95, B: 0.6, C: 0.5}, 400)
    assert _share(chosen[-200:], A) > 0.8
    assert book.arm_view(ROUTE, A).mean > book.arm_view(ROUTE, B).mean  # type: ignore[union-attr]


def test_a_degraded_arm_loses_its_share_within_k_updates() -> None:
    book, rng = _book(), random.Random(3)
    _play(book, rng, {A: 0.98, B: 0.7, C: 0.7}, 300)
    chosen = _play(book, rng, {A: 0.0, B: 0.7, C: 0.7}, 120)
    # A fails every time now: within 40 updates it is chosen less than a quarter of the time
    assert _share(chosen[40:], A) < 0.25
    assert _share(chosen[80:], A) < 0.15


def test_a_recovered_arm_regains_its_share() -> None:
    book, rng = _book(), random.Random(5)
    _play(book, rng, {A: 0.98, B: 0.6, C: 0.6}, 200)
    _play(book, rng, {A: 0.0, B: 0.6, C: 0.6}, 400)
    chosen = _play(book, rng, {A: 0.98, B: 0.6, C: 0.6}, 150)
    # without the discount (0.99999) A's 400 failures keep it at ~1 % here: forgotten arms are tried again
    assert _share(chosen[-100:], A) > 0.6


def test_discount_bounds_the_memory() -> None:
    book = _book(discount=0.9)
    for _ in range(1000):
        book.update(ROUTE, A, 1.0)
    posterior = book.arm_view(ROUTE, A)
    assert posterior is not None
    assert posterior.evidence == pytest.approx(1 / (1 - 0.9), rel=1e-6)  # never more than 1/(1-discount)
    # and an arm never served fades back to the prior
    for _ in range(200):
        book.update(ROUTE, B, 1.0)
    assert book.arm_view(ROUTE, A).evidence < 1e-6  # type: ignore[union-attr]


def test_fractional_rewards_split_the_evidence() -> None:
    arms = {A: Posterior(), B: Posterior(2.0, 1.0)}
    updated = discounted(arms, A, 0.75, 0.5)
    assert updated[A] == Posterior(0.75, 0.25)
    assert updated[B] == Posterior(1.0, 0.5)  # every arm of the route is discounted by one update
    assert discounted(arms, A, 7.0, 1.0)[A] == Posterior(1.0, 0.0)  # clipped to [0, 1]
    assert discounted(arms, A, -1.0, 1.0)[A] == Posterior(0.0, 1.0)


def test_draws_are_reproducible_with_a_seeded_rng() -> None:
    book = _book()
    assert book.draw(ROUTE, random.Random(1)) == book.draw(ROUTE, random.Random(1))
    assert set(book.draw(ROUTE, random.Random(1))) == {A, B, C}
    assert book.draw("high", random.Random(1)) == {}


def test_configure_forgets_dropped_arms_and_keeps_the_others() -> None:
    book = _book()
    book.update(ROUTE, A, 1.0)
    book.update(ROUTE, B, 0.0)
    book.configure({ROUTE: (A, C), "scenario:x": (B,)}, discount=0.5)
    assert book.arm_view(ROUTE, A) == Posterior(0.98, 0.0)
    assert book.arm_view(ROUTE, B) is None  # dropped from this route
    assert book.arm_view("scenario:x", B) == Posterior()  # a new route starts at the prior
    assert book.discount == 0.5
    assert not book.update(ROUTE, B, 1.0)  # an arm not configured is never learned


def test_state_round_trips_and_malformed_rows_are_skipped() -> None:
    book = _book()
    book.update(ROUTE, A, 0.5)
    book.update(ROUTE, C, 1.0)
    again = _book()
    assert again.load_dict(book.to_dict()) == 3
    assert again.routes == book.routes
    saved = {"version": 1, "routes": {ROUTE: [["p", "a", -1, 0], ["p", "b", "x", 0], ["z", "z", 1, 1], "junk"]}}
    assert _book().load_dict(saved) == 0
    assert _book().load_dict({"version": 99, "routes": {}}) == 0
    assert _book().load_dict([1, 2]) == 0


def test_replace_route_takes_only_configured_arms() -> None:
    book = _book()
    book.replace_route(ROUTE, {A: Posterior(3.0, 1.0), ("gone", "x"): Posterior(9.0, 9.0)})
    assert book.routes[ROUTE] == {A: Posterior(3.0, 1.0), B: Posterior(), C: Posterior()}
    book.replace_route("unknown", {A: Posterior(1.0, 1.0)})
    assert "unknown" not in book.routes
