"""Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded
Loads", SODA 2018) over the replicas of one model: pure functions, no clock, no I/O.

A ``HashRing`` places each replica at ``VIRTUAL_NODES`` points of a 64-bit ring (blake2b of its base URL, so a
replica keeps its points when others are added or removed: only the removed replica's keys move). A key goes to
the first replica clockwise from its own point whose load (attempts in flight) is under the cap
``ceil((1 + ε) × mean)``, the mean counting the request being placed; so no replica ever carries more than the cap.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

VIRTUAL_NODES = 64  # points per replica: with 4 replicas the largest share of the ring is within ~20 % of 1/4


def ring_position(text: str) -> int:
    """A point on the ring: the first 8 bytes of blake2b (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class HashRing:
    """The ring of one model's replicas; a replica is its index in the names the ring was built from."""

    positions: tuple[int, ...]  # sorted
    owners: tuple[int, ...]  # the replica at each position
    replica_count: int

    @classmethod
    def build(cls, names: Sequence[str], virtual_nodes: int = VIRTUAL_NODES) -> HashRing:
        """A ring over ``names`` (distinct: a replica's base URL), ``virtual_nodes`` points each."""
        points = sorted(
            (ring_position(f"{name}#{node}"), index)
            for index, name in enumerate(names)
            for node in range(virtual_nodes)
        )
        return cls(tuple(p for p, _ in points), tuple(i for _, i in points), len(names))

    def walk(self, key: str) -> tuple[int, ...]:
        """Every replica once, in ring order clockwise from ``key``'s point: the first is the key's replica."""
        count = len(self.positions)
        start = bisect.bisect_left(self.positions, ring_position(key))
        order: list[int] = []
        for step in range(count):
            owner = self.owners[(start + step) % count]
            if owner not in order:
                order.append(owner)
                if len(order) == self.replica_count:
                    break
        return tuple(order)


def load_cap(total_load: int, replica_count: int, epsilon: float) -> int:
    """The most attempts a replica may carry when one more is placed: ``ceil((1+ε) × (total_load + 1) / n)``."""
    return math.ceil((1.0 + epsilon) * (total_load + 1) / replica_count)


def bounded_order(
    walk: Sequence[int], loads: Sequence[int], epsilon: float, saturated: Collection[int] = ()
) -> tuple[int, ...]:
    """The replicas in the order to try them: the first in ``walk`` whose load is under the cap, then the others
    in ring order after it; replicas in ``saturated`` (their ``/metrics`` say so) after all the others, unless every
    one is. ``loads[i]`` is replica i's attempts in flight."""
    healthy = [replica for replica in walk if replica not in saturated]
    tired = [replica for replica in walk if replica in saturated]
    if not healthy:
        healthy, tired = tired, []
    cap = load_cap(sum(loads), len(loads), epsilon)
    chosen = next((i for i, replica in enumerate(healthy) if loads[replica] < cap), None)
    if chosen is None:  # only when saturation left few: the least loaded, ring order breaking ties
        chosen = min(range(len(healthy)), key=lambda i: loads[healthy[i]])
    return tuple(healthy[chosen:] + healthy[:chosen] + tired)


def rotation_order(replica_count: int, turn: int, saturated: Collection[int] = ()) -> tuple[int, ...]:
    """Round robin (``"balancing": "round_robin"``): replica ``turn mod n`` first, the next after it; saturated
    replicas last."""
    rotated = [(turn + step) % replica_count for step in range(replica_count)]
    healthy = [replica for replica in rotated if replica not in saturated]
    return tuple(healthy + [replica for replica in rotated if replica in saturated])
