"""Which replica of a replicated model serves a request (docs/ROUTING.md "Prefix affinity").

``ReplicaRouter`` puts a plan's candidates of each replicated model in the order the model's balancing gives
(``affinity``: consistent hashing with bounded loads on the request's affinity key, ``core.routing.affinity``;
``round_robin``: turn by turn), saturated replicas (``ReplicaHealth``, fed by the ``/metrics`` poller) last. The
candidates of other models keep their places, and a plan without a replicated model is returned as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bkvy.core.config.replicas import split_replica_key_id
from bkvy.core.routing.affinity import HashRing, bounded_order, rotation_order
from bkvy.core.routing.plan import Candidate, RoutePlan
from bkvy.models.types import ChatMessage

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig

_SYSTEM_ROLES = frozenset({"system", "developer"})


def prefix_key(messages: Sequence[ChatMessage]) -> str | None:
    """The affinity key of a request without ``session_id`` or ``user``: a hash of its opening, the system (and
    developer) messages it starts with and the first message after them. Every turn of one conversation repeats
    that opening, so all its turns share the key (and the replica that has it cached); None without messages."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    for message in messages:
        digest.update(message.role.encode() + b"\x00" + message.text().encode() + b"\x1e")
        count += 1
        if message.role not in _SYSTEM_ROLES:
            break
    return f"p:{digest.hexdigest()}" if count else None


@dataclass(slots=True)
class ReplicaHealth:
    """The replicas whose ``/metrics`` say they are saturated, by base URL; written by the poller only."""

    saturated_urls: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Replicated:
    """One replicated model: its replicas' URLs, ring, balancing and live loads."""

    urls: tuple[str, ...]
    ring: HashRing
    is_affinity: bool
    epsilon: float
    loads: list[int] = field(default_factory=list)  # attempts in flight per replica
    turn: int = 0  # round robin: who goes first next


_REASON = Candidate._fields.index("reason")  # a plan row's fields, by name
_FLAPPING = Candidate._fields.index("is_flapping")


class ReplicaRouter:
    """Orders the replicas of a plan's replicated models, and counts each replica's attempts in flight."""

    def __init__(self, models: dict[tuple[str, str], _Replicated], health: ReplicaHealth) -> None:
        self._models = models
        self._health = health

    @classmethod
    def from_config(cls, config: GatewayConfig, health: ReplicaHealth) -> ReplicaRouter | None:
        """A router for ``config``'s replicated models; None when it has none (then nothing here runs)."""
        models = {
            (provider_name, model_name): _Replicated(
                model.endpoints,
                HashRing.build(model.endpoints),
                model.balancing == "affinity",
                model.affinity_epsilon,
                [0] * len(model.endpoints),
            )
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
            if model.endpoints is not None
        }
        return cls(models, health) if models else None

    def attempt_started(self, provider: str, model: str, key_id: str) -> None:
        self._count(provider, model, key_id, 1)

    def attempt_ended(self, provider: str, model: str, key_id: str) -> None:
        self._count(provider, model, key_id, -1)

    def loads(self, provider: str, model: str) -> tuple[int, ...]:
        """Attempts in flight on each replica of a replicated model."""
        return tuple(self._models[(provider, model)].loads)

    def order(self, plan: RoutePlan, key_of: Callable[[], str | None], *, peek: bool = False) -> RoutePlan:
        """``plan`` with each replicated model's candidates in its replica order, within the places they held with
        the same standing: only rows of one model with the same decision reason and flapping state trade places,
        so a replica past the max wait, or flapping, never jumps ahead of one the plan put first. ``key_of`` gives
        the affinity key (called only when the plan has a replicated model). ``peek`` (explain): the order the
        next request would get, leaving a round robin's turn where it is."""
        places: dict[tuple[str, str, object, bool], list[int]] = {}
        for position, row in enumerate(plan.rows):
            if (row[0], row[1]) in self._models:
                places.setdefault((row[0], row[1], row[_REASON], row[_FLAPPING]), []).append(position)
        if not places:
            return plan
        key = key_of()
        orders: dict[tuple[str, str], dict[int, int]] = {}
        rows = list(plan.rows)
        for (provider, model, _, _), positions in places.items():
            rank = orders.get((provider, model))
            if rank is None:
                replica_order = self._replica_order(self._models[(provider, model)], key, peek=peek)
                rank = orders[(provider, model)] = {replica: r for r, replica in enumerate(replica_order)}
            moved = sorted(positions, key=lambda p: (rank[_replica_of(rows[p][2])], p))
            for place, source in zip(positions, moved, strict=True):
                rows[place] = plan.rows[source]
        return plan.with_rows(tuple(rows))

    def _replica_order(self, model: _Replicated, key: str | None, *, peek: bool = False) -> tuple[int, ...]:
        saturated = {i for i, url in enumerate(model.urls) if url in self._health.saturated_urls}
        if model.is_affinity and key is not None:
            return bounded_order(model.ring.walk(key), model.loads, model.epsilon, saturated)
        if peek:
            return rotation_order(len(model.urls), model.turn, saturated)
        model.turn += 1  # no key (an embeddings request), or round robin
        return rotation_order(len(model.urls), model.turn - 1, saturated)

    def _count(self, provider: str, model: str, key_id: str, step: int) -> None:
        replicated = self._models.get((provider, model))
        if replicated is not None:
            index = _replica_of(key_id)
            replicated.loads[index] = max(0, replicated.loads[index] + step)


def _replica_of(key_id: str) -> int:
    return split_replica_key_id(key_id)[1] or 0
