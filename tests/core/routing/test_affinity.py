"""Consistent hashing with bounded loads: pure functions, seeded keys, no clock."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from bkvy.core.routing.affinity import HashRing, bounded_order, load_cap, rotation_order

URLS = [f"http://10.0.0.{n}:8000" for n in range(1, 6)]
KEYS = [f"session-{n}" for n in range(2000)]


def test_the_same_key_always_gets_the_same_replica() -> None:
    ring, again = HashRing.build(URLS), HashRing.build(list(URLS))
    assert all(ring.walk(key) == again.walk(key) for key in KEYS)


def test_a_walk_lists_every_replica_once() -> None:
    ring = HashRing.build(URLS)
    for key in KEYS[:200]:
        assert sorted(ring.walk(key)) == list(range(len(URLS)))


def test_keys_spread_over_every_replica() -> None:
    ring = HashRing.build(URLS)
    shares = Counter(ring.walk(key)[0] for key in KEYS)
    assert set(shares) == set(range(len(URLS)))
    assert max(shares.values()) < 2.0 * len(KEYS) / len(URLS)


def test_removing_a_replica_moves_only_its_keys() -> None:
    before = HashRing.build(URLS)
    removed = 2
    after_urls = URLS[:removed] + URLS[removed + 1 :]
    after = HashRing.build(after_urls)
    for key in KEYS:
        owner = URLS[before.walk(key)[0]]
        new_owner = after_urls[after.walk(key)[0]]
        if owner != URLS[removed]:
            assert new_owner == owner
        else:  # its keys go to the next replica on the old ring
            assert new_owner == URLS[before.walk(key)[1]]


def test_adding_a_replica_takes_keys_only_for_itself() -> None:
    before, after = HashRing.build(URLS[:4]), HashRing.build(URLS)
    moved = [key for key in KEYS if URLS[before.walk(key)[0]] != URLS[after.walk(key)[0]]]
    assert moved and all(after.walk(key)[0] == 4 for key in moved)


def test_a_replica_under_the_cap_keeps_its_keys() -> None:
    assert bounded_order((2, 0, 1), [1, 1, 1], 0.25) == (2, 0, 1)


def test_an_overloaded_replica_passes_its_key_to_the_next_on_the_ring() -> None:
    # total 6 in flight, 3 replicas: cap = ceil(1.25 * 7 / 3) = 3; replica 2 carries 3, so the key goes on
    assert load_cap(6, 3, 0.25) == 3
    assert bounded_order((2, 0, 1), [1, 2, 3], 0.25) == (0, 1, 2)


def test_saturated_replicas_go_after_the_others() -> None:
    assert bounded_order((2, 0, 1), [0, 0, 0], 0.25, saturated={2}) == (0, 1, 2)
    assert bounded_order((2, 0, 1), [0, 0, 0], 0.25, saturated={0, 1, 2}) == (2, 0, 1)


@pytest.mark.parametrize("epsilon", [0.1, 0.25, 1.0])
def test_no_replica_is_ever_above_the_bound_under_load(epsilon: float) -> None:
    """Place keys one by one (most of them on one hot key), ending some at random: no placement takes a replica
    above ceil((1 + ε) × mean)."""
    rng = random.Random(7)
    ring = HashRing.build(URLS)
    loads = [0] * len(URLS)
    placed: list[int] = []
    for _ in range(3000):
        key = "hot" if rng.random() < 0.6 else f"k{rng.randrange(50)}"
        replica = bounded_order(ring.walk(key), loads, epsilon)[0]
        loads[replica] += 1
        placed.append(replica)
        assert loads[replica] <= math.ceil((1 + epsilon) * sum(loads) / len(URLS))
        if placed and rng.random() < 0.45:
            loads[placed.pop(rng.randrange(len(placed)))] -= 1


def test_round_robin_rotates_and_puts_saturated_last() -> None:
    assert [rotation_order(3, turn)[0] for turn in range(4)] == [0, 1, 2, 0]
    assert rotation_order(3, 0, saturated={0}) == (1, 2, 0)
