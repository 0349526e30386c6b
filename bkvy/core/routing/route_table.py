"""Every candidate list routing can be asked for, compiled once per config (SPEC §5).

A candidate is a (provider, model, key); a ``RouteTable`` holds them per intelligence tier, per scenario (in
priority order) and per (provider, model), each as a ``RouteEntry`` carrying what ranking needs from config.
Embedding models (``"capabilities": ["embeddings"]``) are in no tier; ``groups_for`` never gives one to a chat
request, nor a chat model to an embeddings request (config keeps every scenario to one kind).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bkvy.core.config.replicas import split_replica_key_id
from bkvy.core.routing.plan import CandidateKey, CandidateState, LiveCandidate, RouteRequest, live_candidate
from bkvy.core.routing.score_rank import ScoringTable
from bkvy.models.errors import (
    NoCandidates,
    NotAChatModel,
    NotAnEmbeddingModel,
    PolicyNoCandidate,
    UnknownKey,
    UnknownModel,
    UnknownProvider,
    UnknownScenario,
    UnsupportedResponseFormat,
)
from bkvy.models.types import RoutingMethod

if TYPE_CHECKING:
    from bkvy.core.config.gateway import GatewayConfig


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One (provider, model, key) with what routing needs from config, compiled once. Slots: routing reads
    four fields per candidate per plan, ~7 ns less each than a NamedTuple's (python 3.11)."""

    key: CandidateKey
    input_price_per_1k: float
    output_price_per_1k: float
    seed: LiveCandidate  # used when the snapshot knows nothing about this candidate
    rank: int  # scenario: position of its entry in priority order
    has_json: bool = False  # its model has the "json" capability: it can honour a json_schema


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every candidate list routing can be asked for, precomputed from one GatewayConfig."""

    tiers: dict[int, tuple[RouteEntry, ...]]
    scenarios: dict[str, tuple[RouteEntry, ...]]
    models: dict[tuple[str, str], tuple[RouteEntry, ...]]
    providers: frozenset[str]
    embedding_models: frozenset[tuple[str, str]] = frozenset()  # (provider, model)
    embedding_scenarios: frozenset[str] = frozenset()
    scoring: ScoringTable = field(default_factory=ScoringTable)  # quality, domain models (issue 18 §2)

    @classmethod
    def compile(cls, config: GatewayConfig) -> RouteTable:
        models: dict[tuple[str, str], tuple[RouteEntry, ...]] = {}
        tiers: dict[int, list[RouteEntry]] = {}
        for provider_name, provider in config.providers.items():
            for model_name, model in provider.models.items():
                seed = CandidateState(expected_latency_seconds=model.expected_latency_ms / 1000.0)
                entries = tuple(
                    RouteEntry(
                        key=key,
                        input_price_per_1k=model.input_price_per_1k,
                        output_price_per_1k=model.output_price_per_1k,
                        seed=live_candidate(key, seed),
                        rank=0,
                        has_json="json" in model.capabilities,
                    )
                    for key_id in provider.key_ids_for(model_name)
                    for key in (CandidateKey(provider_name, model_name, key_id),)
                )
                models[(provider_name, model_name)] = entries
                if model.intelligence_tier is not None:  # None: an embedding model
                    tiers.setdefault(model.intelligence_tier.rank, []).extend(entries)
        scenarios = {}
        for name in config.routing.scenarios:
            scenario_entries = config.scenario(name) or []
            scenarios[name] = tuple(
                replace(e, rank=rank)
                for rank, entry in enumerate(scenario_entries)
                for e in models[(entry.provider, entry.model)]
            )
        embedding_models = frozenset(
            (provider_name, model_name)
            for provider_name, provider in config.providers.items()
            for model_name, model in provider.models.items()
            if model.is_embedding_model
        )
        embedding_scenarios = frozenset(
            name
            for name, entries in config.routing.scenarios.items()
            if any((entry.provider, entry.model) in embedding_models for entry in entries)
        )
        return cls(
            {rank: tuple(entries) for rank, entries in tiers.items()},
            scenarios,
            models,
            frozenset(config.providers),
            embedding_models,
            embedding_scenarios,
            ScoringTable.compile(config),
        )

    def groups_for(self, request: RouteRequest) -> list[tuple[RouteEntry, ...]]:
        """Candidates in preference groups: intelligence routing's higher tiers come after its own tier; with
        ``needs_json`` only those whose model has the "json" capability. Raises Unknown*/NoCandidates (404),
        UnsupportedResponseFormat (400) when ``needs_json`` leaves none."""
        groups = self._all_groups_for(request)
        if request.allowed is not None:
            groups = _allowed_groups(groups, request.allowed)
        if not request.needs_json:
            return groups
        json_groups = [group for group in (tuple(e for e in g if e.has_json) for g in groups) if group]
        if not json_groups:
            raise UnsupportedResponseFormat(
                "no candidate model for this request has the 'json' capability a json_schema response_format needs"
            )
        return json_groups

    def listed_groups_for(self, request: RouteRequest) -> list[tuple[RouteEntry, ...]]:
        """``groups_for`` before its capability checks (json, chat or embeddings): what explain lists, marking
        those ranking leaves out (``core.routing.explain``). Raises Unknown*/NoCandidates (404)."""
        return self._all_groups_for(request, check_kind=False)

    def is_embedding(self, key: CandidateKey) -> bool:
        return (key.provider, key.model) in self.embedding_models

    def _all_groups_for(self, request: RouteRequest, *, check_kind: bool = True) -> list[tuple[RouteEntry, ...]]:
        if request.method is RoutingMethod.SCENARIO:
            entries = self.scenarios.get(request.scenario or "")
            if entries is None:
                raise UnknownScenario(f"unknown scenario {request.scenario!r}")
            is_embedding = request.scenario in self.embedding_scenarios
            if check_kind:
                self._check_kind(request, is_embedding, f"scenario {request.scenario!r}")
            return [entries]
        if request.method is RoutingMethod.DIRECT:
            return [self._direct(request, check_kind=check_kind)]
        assert request.level is not None
        if request.wants_embeddings:
            raise NotAnEmbeddingModel(
                f"{request.level.value!r} picks a chat model by level; embeddings need one model's vectors: "
                "name an embedding model (provider/model) or a scenario of embedding models"
            )
        groups = [self.tiers[rank] for rank in sorted(self.tiers) if rank >= request.level.rank]
        if not groups:
            raise NoCandidates(f"no model is configured at tier {request.level.value!r} or above")
        return groups

    def _direct(self, request: RouteRequest, *, check_kind: bool = True) -> tuple[RouteEntry, ...]:
        if request.provider not in self.providers:
            raise UnknownProvider(f"unknown provider {request.provider!r}")
        entries = self.models.get((request.provider or "", request.model or ""))
        if entries is None:
            raise UnknownModel(f"provider {request.provider!r} has no model {request.model!r}")
        pair = (request.provider or "", request.model or "")
        if check_kind:
            self._check_kind(request, pair in self.embedding_models, f"{request.provider}/{request.model}")
        if request.key_id is None:
            return entries
        # A replicated model's candidates are its key's replicas (``<key>@<n>``): the configured key id names them all.
        chosen = tuple(e for e in entries if split_replica_key_id(e.key.key_id)[0] == request.key_id)
        if not chosen:
            raise UnknownKey(f"provider {request.provider!r} has no key id {request.key_id!r}")
        return chosen

    @staticmethod
    def _check_kind(request: RouteRequest, is_embedding: bool, name: str) -> None:
        """Embedding models for embeddings, chat models for chat. Raises NotAnEmbeddingModel or NotAChatModel."""
        if request.wants_embeddings and not is_embedding:
            raise NotAnEmbeddingModel(f"{name} is not an embedding model; see GET /v1/models")
        if is_embedding and not request.wants_embeddings:
            raise NotAChatModel(f"{name} is an embedding model: use it on POST /v1/embeddings")


def _allowed_groups(
    groups: list[tuple[RouteEntry, ...]], allowed: frozenset[tuple[str, str]]
) -> list[tuple[RouteEntry, ...]]:
    """Policy's candidates only (issue 19): failover, hedges and fast mode plan from these groups, so no attempt
    leaves them. Raises PolicyNoCandidate (403) when none is left (the executor names the rule before this)."""
    kept = [g for g in (tuple(e for e in group if (e.key.provider, e.key.model) in allowed) for group in groups) if g]
    if not kept:
        raise PolicyNoCandidate("policy leaves no candidate for this request")
    return kept
