"""Configuration: providers.json, routing.json and the environment, validated once (SPEC §2–3).

Errors are raised as ``ConfigError`` with one message naming the file, the JSON path and the fix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from bkvy.core.config.cache_config import CacheSettings, cache_route_problem
from bkvy.core.config.policy_config import PolicyConfig, PolicyConfigError, load_policy, policy_rule_names
from bkvy.core.config.replicas import (
    REPLICATED_PROVIDER_TYPES,
    ReplicaMetricsConfig,
    base_url_of_replicas,
    distinct_urls,
    replica_key_id,
    split_replica_key_id,
)
from bkvy.core.config.scoring_config import check_scoring_config
from bkvy.core.config.shadow_config import ShadowRoute, check_shadow_config
from bkvy.core.config.strategies import AdaptiveKnobs, strategy_problems
from bkvy.core.config.tenants import TenantConfig, check_tenants, unknown_policy_rule
from bkvy.core.upstream.embeddings import EMBEDDING_PROVIDER_TYPES
from bkvy.core.upstream.thinking import resolve_spec
from bkvy.models.optimize import Optimize, Quality
from bkvy.models.thinking import ThinkingParam, ThinkingSpec
from bkvy.models.types import IntelligenceLevel, ProviderType

DEFAULT_BASE_URLS = {
    ProviderType.OPENAI: "https://api.openai.com",
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.GEMINI: "https://generativelanguage.googleapis.com",
    ProviderType.OLLAMA: "http://localhost:11434",
}
_KEYLESS_TYPES = {ProviderType.OLLAMA, ProviderType.OPENAI_COMPATIBLE}
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"


class ConfigError(Exception):
    """A configuration problem; ``str(error)`` is the whole message for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    rpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class KeyConfig(_Strict):
    api_key: str
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)  # model name or "*"

    def limits_for(self, model: str) -> RateLimit:
        return self.rate_limits.get(model) or self.rate_limits.get("*") or RateLimit()


class ThinkingConfig(_Strict):
    """A model's reasoning switch (SPEC §5); unset fields take their param's defaults (core.upstream.thinking,
    docs/CONFIGURATION.md "Thinking control"), checked against the provider's type."""

    param: ThinkingParam | None = None  # default: the provider type's usual switch
    can_disable: bool | None = None
    min_budget: int | None = None  # tokens: the floor of a model that cannot switch thinking off
    budget: int | None = None  # tokens for a high request (Gemini: -1 is dynamic)
    min_effort: str | None = None  # the lowest level of a model that cannot switch thinking off
    effort: str | None = None  # the level for a high request


_REPLICA_KNOBS = ("balancing", "affinity_epsilon", "replica_metrics")


class ModelConfig(_Strict):
    endpoint: str | None = None
    cost_per_1k_tokens: float | None = Field(default=None, ge=0)
    input_cost_per_1k: float | None = Field(default=None, ge=0)
    output_cost_per_1k: float | None = Field(default=None, ge=0)
    intelligence_tier: IntelligenceLevel | None = None  # required, except on an embedding model
    supports_thinking: bool = False  # true alone: a "thinking" block with every field at its default
    thinking: ThinkingConfig | None = None
    context_window: int | None = Field(default=None, ge=1)
    # "embeddings": an embedding model, served on /v1/embeddings only and never picked for chat.
    capabilities: tuple[Literal["vision", "tools", "json", "embeddings"], ...] = ()
    expected_latency_ms: float = Field(default=1000.0, gt=0)  # seed for the online estimate
    # This model's own deadline (e.g. a slow reasoning model), in place of REQUEST_HARD_TIMEOUT_SECONDS.
    timeout_seconds: float | None = Field(default=None, gt=0)
    hedge: bool = True  # false: requests on this model are never hedged, and it never takes a hedge
    quality: Quality | None = None  # 0–1, or per domain; None: its tier's default (docs/ROUTING.md)
    # Replicas of this model (docs/ROUTING.md "Prefix affinity"): their base URLs, in place of the provider's.
    endpoints: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=256)
    balancing: Literal["affinity", "round_robin"] = "affinity"
    affinity_epsilon: float = Field(default=0.25, gt=0.0, le=10.0)  # no replica above ceil((1+ε) × mean load)
    replica_metrics: ReplicaMetricsConfig = Field(default_factory=ReplicaMetricsConfig)
    private: bool | None = None  # self-hosted (policy's require_private); None: true for ollama, else false
    region: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")  # data residency

    @model_validator(mode="before")
    @classmethod
    def _thinking_block_means_it_thinks(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("thinking") is not None:
            if raw.get("supports_thinking") is False:
                raise ValueError('"thinking" describes a thinking model: drop "supports_thinking": false')
            return {**raw, "supports_thinking": True}
        return raw

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_a_path(cls, endpoint: str | None) -> str | None:
        if endpoint is not None and (not endpoint.startswith("/") or "://" in endpoint):
            raise ValueError("must be a path starting with '/', e.g. '/v1/chat/completions'")
        return endpoint

    @field_validator("endpoints")
    @classmethod
    def _endpoints_are_distinct_urls(cls, endpoints: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if endpoints is None else distinct_urls(endpoints)

    @model_validator(mode="after")
    def _replica_knobs_need_replicas(self) -> ModelConfig:
        if self.endpoints is None:
            knobs = [
                name for name in ("balancing", "affinity_epsilon", "replica_metrics") if name in self.model_fields_set
            ]
            if knobs:
                raise ValueError(f'{knobs[0]} spreads requests over replicas: list them in "endpoints", or drop it')
        return self

    @model_validator(mode="after")
    def _has_a_price(self) -> ModelConfig:
        if self.is_embedding_model:  # an embeddings call has no output tokens
            if self.cost_per_1k_tokens is None and self.input_cost_per_1k is None:
                raise ValueError("give input_cost_per_1k (or cost_per_1k_tokens) for an embedding model")
            return self
        split = (self.input_cost_per_1k, self.output_cost_per_1k)
        if self.cost_per_1k_tokens is None and None in split:
            raise ValueError("give cost_per_1k_tokens, or both input_cost_per_1k and output_cost_per_1k")
        return self

    @model_validator(mode="after")
    def _is_chat_or_embedding_model(self) -> ModelConfig:
        if not self.is_embedding_model:
            if self.intelligence_tier is None:
                raise ValueError(
                    'intelligence_tier is required ("low", "medium" or "high"); '
                    'an embedding model declares "capabilities": ["embeddings"] instead'
                )
            return self
        if self.intelligence_tier is not None:
            raise ValueError("an embedding model takes no intelligence_tier: it is never routed by level")
        if set(self.capabilities) != {"embeddings"} or self.supports_thinking:
            raise ValueError('an embedding model\'s only capability is "embeddings" (no thinking, tools, json, vision)')
        return self

    @property
    def is_embedding_model(self) -> bool:
        return "embeddings" in self.capabilities

    @property
    def input_price_per_1k(self) -> float:
        return self.input_cost_per_1k if self.input_cost_per_1k is not None else self.cost_per_1k_tokens or 0.0

    @property
    def output_price_per_1k(self) -> float:
        return self.output_cost_per_1k if self.output_cost_per_1k is not None else self.cost_per_1k_tokens or 0.0


class ProviderConfig(_Strict):
    type: ProviderType
    base_url: str
    keys: dict[str, KeyConfig]
    models: dict[str, ModelConfig] = Field(min_length=1)
    _thinking_specs: dict[str, ThinkingSpec] = PrivateAttr(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, base_url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", base_url):
            raise ValueError("must be an http(s) URL such as 'https://api.openai.com'")
        return base_url.rstrip("/")

    @model_validator(mode="after")
    def _embeds_only_where_it_can(self) -> ProviderConfig:
        if self.type not in EMBEDDING_PROVIDER_TYPES:
            for name, model in self.models.items():
                if model.is_embedding_model:
                    raise ValueError(f"models.{name}: {self.type.value} has no embeddings API")
        return self

    @model_validator(mode="after")
    def _thinking_fits_the_type(self) -> ProviderConfig:
        specs = {}
        for name, model in self.models.items():
            if model.supports_thinking:
                try:
                    specs[name] = resolve_spec(self.type, model.thinking or ThinkingConfig())
                except ValueError as error:
                    raise ValueError(f"models.{name}.thinking: {error}") from None
        self._thinking_specs = specs
        return self

    @model_validator(mode="after")
    def _replicas_only_self_hosted(self) -> ProviderConfig:
        for name, model in self.models.items():
            if model.endpoints is not None and self.type.value not in REPLICATED_PROVIDER_TYPES:
                raise ValueError(
                    f"models.{name}.endpoints: replicas are for self-hosted servers; "
                    f"use type {sorted(REPLICATED_PROVIDER_TYPES)} (or drop endpoints and use base_url)"
                )
        return self

    def key_ids_for(self, model: str) -> tuple[str, ...]:
        """The candidate key ids of ``model``: its keys, or on a replicated model each key on each replica."""
        endpoints = self.models[model].endpoints
        if endpoints is None:
            return tuple(self.keys)
        return tuple(replica_key_id(key_id, index) for index in range(len(endpoints)) for key_id in self.keys)

    def target(self, model: str, key_id: str) -> tuple[KeyConfig, str] | None:
        """The key and base URL a candidate key id of ``model`` calls; None when it names no key or replica."""
        base_key_id, index = split_replica_key_id(key_id)
        key = self.keys.get(base_key_id)
        model_config = self.models.get(model)
        if key is None or model_config is None:
            return None
        endpoints = model_config.endpoints
        if endpoints is None:
            return (key, self.base_url) if index is None else None
        if index is None or index >= len(endpoints):
            return None
        return key, endpoints[index]

    def thinking_spec(self, model: str) -> ThinkingSpec | None:
        """The model's reasoning switch, its defaults filled in; None for a model that does not think."""
        return self._thinking_specs.get(model)


class ScenarioEntry(_Strict):
    provider: str
    model: str
    priority: int = 1
    hedge: bool = True  # false: in this scenario, this entry is never hedged and never takes a hedge


class ClassifierConfig(_Strict):
    """routing.json ``classifier`` (issue 18 §1, off by default): a cheap model asked for ``auto``'s level."""

    model: str  # "provider/model", a configured chat model (checked with the providers)
    timeout_ms: float = Field(default=1500.0, gt=0, le=60_000)
    cache_entries: int = Field(default=1024, ge=0, le=1_000_000)  # 0: no cache


class RoutingConfig(_Strict):
    scenarios: dict[str, list[ScenarioEntry]] = Field(default_factory=dict)
    strategies: dict[str, str] = Field(default_factory=dict)  # route -> "cost" | "adaptive" (config/strategies.py)
    adaptive: AdaptiveKnobs = Field(default_factory=AdaptiveKnobs)
    optimize: dict[str, Optimize] = Field(default_factory=dict)  # "low"... or "scenario:NAME" -> the default
    domain_models: dict[str, list[str]] = Field(default_factory=dict)  # domain -> ["provider/model", ...]
    classifier: ClassifierConfig | None = None
    shadow: dict[str, ShadowRoute] = Field(default_factory=dict)  # issue 20 §2: "low"... or "scenario:NAME"
    cache: CacheSettings = Field(default_factory=CacheSettings)  # issue 20 §1 (config/cache_config.py)
    cache_routes: dict[str, bool] = Field(default_factory=dict)  # "low" | "scenario:NAME" | "provider/model"


class GatewayConfig(_Strict):
    providers: dict[str, ProviderConfig]
    routing: RoutingConfig
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)  # config/tenants.json (issue 19 §3)
    policy: PolicyConfig | None = None  # config/policy.json (issue 19); None: no policy

    def scenario(self, name: str) -> list[ScenarioEntry] | None:
        entries = self.routing.scenarios.get(name)
        return sorted(entries, key=lambda e: e.priority) if entries is not None else None


def _infer_type(name: str, raw: Mapping[str, Any]) -> Any:
    if "type" in raw:
        return raw["type"]
    for provider_type in ProviderType:
        if name.lower().startswith(provider_type.value):
            return provider_type.value
    return None


def _normalise_provider(name: str, raw: Any, environ: Mapping[str, str], file: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {name}: must be an object with 'keys' and 'models'")
    provider = dict(raw)
    provider_type = _infer_type(name, provider)
    if provider_type is None:
        raise ConfigError(
            f"{file}: {name}.type: missing, and '{name}' does not imply one. "
            f'Fix: add "type": one of {[t.value for t in ProviderType]}'
        )
    provider["type"] = provider_type
    if "base_url" not in provider:
        provider.update(base_url_of_replicas(provider))  # every model names its replicas: base_url is unused
    if "base_url" not in provider:
        is_known_type = provider_type in ProviderType._value2member_map_
        default = DEFAULT_BASE_URLS.get(ProviderType(provider_type)) if is_known_type else None
        if default is None:
            raise ConfigError(
                f"{file}: {name}.base_url: required for type '{provider_type}'. "
                f'Fix: add "base_url": "http://host:port"'
            )
        provider["base_url"] = default
    keys = provider.get("keys")
    if not keys and provider_type in {t.value for t in _KEYLESS_TYPES}:
        provider["keys"] = {"default": {"api_key": ""}}
    elif isinstance(keys, dict):
        provider["keys"] = {kid: _interpolate_key(name, kid, k, environ, file) for kid, k in keys.items()}
    return provider


def _interpolate_key(provider: str, key_id: str, raw: Any, environ: Mapping[str, str], file: str) -> Any:
    if not isinstance(raw, dict) or not isinstance(raw.get("api_key"), str):
        return raw
    match = _ENV_REF.match(raw["api_key"])
    if match is None:
        return raw
    variable = match.group(1)
    if variable not in environ:
        raise ConfigError(
            f"{file}: {provider}.keys.{key_id}.api_key: refers to ${{{variable}}}, which is not set. "
            f"Fix: set {variable} in the environment or in .env"
        )
    return {**raw, "api_key": environ[variable]}


def _format_validation(file: str, error: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in (*prefix, *first["loc"]))
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{file}: {location}: {first['msg']}{more}"


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found. Fix: copy {path.name.replace('.json', '.example.json')} "
            f"to {path.name} or set BKVY_CONFIG_DIR"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def build_config(
    providers_raw: Any,
    routing_raw: Any,
    environ: Mapping[str, str],
    *,
    providers_file: str = "providers.json",
    routing_file: str = "routing.json",
    tenants_raw: Any = None,
    tenants_file: str = "tenants.json",
) -> GatewayConfig:
    """Validate raw JSON values into a GatewayConfig. Raises ConfigError."""
    if not isinstance(providers_raw, dict) or not providers_raw:
        raise ConfigError(f"{providers_file}: must be a non-empty object of providers")
    providers: dict[str, ProviderConfig] = {}
    for name, raw in providers_raw.items():
        if not re.match(_NAME, name):
            raise ConfigError(f"{providers_file}: {name!r}: provider names use letters, digits, '_', '-', '.'")
        try:
            providers[name] = ProviderConfig.model_validate(_normalise_provider(name, raw, environ, providers_file))
        except ValidationError as exc:
            raise ConfigError(_format_validation(providers_file, exc, (name,))) from None
    try:
        routing = RoutingConfig.model_validate(routing_raw if routing_raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(_format_validation(routing_file, exc)) from None
    _check_cross_references(providers, routing, providers_file, routing_file)
    config = GatewayConfig(providers=providers, routing=routing, tenants=_tenants(tenants_raw, providers, tenants_file))
    problem = strategy_problems(config)
    if problem is not None:
        raise ConfigError(f"{routing_file}: {problem}")
    return config


def _tenants(raw: Any, providers: dict[str, ProviderConfig], file: str) -> dict[str, TenantConfig]:
    if raw is None:
        return {}
    models = {f"{name}/{model}" for name, provider in providers.items() for model in provider.models}
    try:
        return check_tenants(raw, models, file)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_cross_references(
    providers: dict[str, ProviderConfig], routing: RoutingConfig, providers_file: str, routing_file: str
) -> None:
    for name, provider in providers.items():
        if not provider.keys:
            raise ConfigError(
                f"{providers_file}: {name}.keys: at least one key is required for type '{provider.type.value}'"
            )
        for key_id, key in provider.keys.items():
            if not re.match(_NAME, key_id):
                raise ConfigError(f"{providers_file}: {name}.keys.{key_id!r}: key ids use letters, digits, '_', '-'")
            unknown = set(key.rate_limits) - set(provider.models) - {"*"}
            if unknown:
                raise ConfigError(
                    f"{providers_file}: {name}.keys.{key_id}.rate_limits: unknown model "
                    f"{sorted(unknown)[0]!r}. Fix: use a model listed under {name}.models, or '*'"
                )
    if routing.classifier is not None:
        _check_classifier_model(providers, routing.classifier, routing_file)
    for scenario, entries in routing.scenarios.items():
        if not entries:
            raise ConfigError(f"{routing_file}: scenarios.{scenario}: must list at least one entry")
        _check_scenario_entries(providers, scenario, entries, routing_file)
    _check_cache_routes(providers, routing, routing_file)
    try:
        check_scoring_config(providers, routing)
        check_shadow_config(providers, routing)
    except ValueError as error:
        raise ConfigError(f"{routing_file}: {error}") from None


def _check_cache_routes(providers: dict[str, ProviderConfig], routing: RoutingConfig, routing_file: str) -> None:
    models = {f"{name}/{model}" for name, provider in providers.items() for model in provider.models}
    for key in routing.cache_routes:
        problem = cache_route_problem(key, set(routing.scenarios), models)
        if problem is not None:
            raise ConfigError(f"{routing_file}: cache_routes.{key}: {problem}")


def _check_scenario_entries(
    providers: dict[str, ProviderConfig], scenario: str, entries: list[ScenarioEntry], routing_file: str
) -> None:
    """Each entry names a configured model, and all are chat models or all embedding models."""
    kinds = set()
    for index, entry in enumerate(entries):
        where = f"{routing_file}: scenarios.{scenario}.{index}"
        if entry.provider not in providers:
            raise ConfigError(
                f"{where}.provider: unknown provider {entry.provider!r}. Fix: use one of {sorted(providers)}"
            )
        model = providers[entry.provider].models.get(entry.model)
        if model is None:
            raise ConfigError(
                f"{where}.model: {entry.provider} has no model {entry.model!r}. "
                f"Fix: use one of {sorted(providers[entry.provider].models)}"
            )
        kinds.add(model.is_embedding_model)
        if len(kinds) > 1:
            raise ConfigError(
                f"{where}.model: {entry.provider}/{entry.model} mixes chat and embedding models in one scenario. "
                "Fix: give embedding models a scenario of their own"
            )


def _check_classifier_model(
    providers: dict[str, ProviderConfig], classifier: ClassifierConfig, routing_file: str
) -> None:
    provider_name, _, model_name = classifier.model.partition("/")
    provider = providers.get(provider_name)
    model = provider.models.get(model_name) if provider is not None else None
    if model is None or model.is_embedding_model:
        chat_models = sorted(
            f"{p}/{m}" for p, c in providers.items() for m, mc in c.models.items() if not mc.is_embedding_model
        )
        raise ConfigError(
            f"{routing_file}: classifier.model: {classifier.model!r} is not a configured chat model. "
            f'Fix: use one of {chat_models[:10]}, or remove "classifier"'
        )


def load_config(config_dir: Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate ``providers.json``, ``routing.json`` and ``policy.json`` (optional) from ``config_dir``.
    Raises ConfigError."""
    environ = os.environ if environ is None else environ
    providers_path = config_dir / "providers.json"
    routing_path = config_dir / "routing.json"
    routing_raw = _read_json(routing_path) if routing_path.exists() else {}
    tenants_path = config_dir / "tenants.json"
    config = build_config(
        _read_json(providers_path),
        routing_raw,
        environ,
        providers_file=str(providers_path),
        routing_file=str(routing_path),
        tenants_raw=_read_json(tenants_path) if tenants_path.exists() else None,
        tenants_file=str(tenants_path),
    )
    try:
        policy = load_policy(config_dir / "policy.json", config)
    except PolicyConfigError as error:
        raise ConfigError(str(error)) from None
    _check_tenant_rules(config, policy, str(tenants_path))
    return config if policy is None else config.model_copy(update={"policy": policy})


def _check_tenant_rules(config: GatewayConfig, policy: PolicyConfig | None, tenants_file: str) -> None:
    """Each rule a tenant names in ``policy`` is a rule of policy.json. Raises ConfigError."""
    names = policy_rule_names(policy)
    for tenant_id, tenant in config.tenants.items():
        unknown = unknown_policy_rule(tenant, names)
        if unknown is not None:
            known = f"one of {sorted(names)}" if names else "a rule of config/policy.json (there is none)"
            raise ConfigError(f"{tenants_file}: {tenant_id}.policy: unknown rule {unknown!r}. Fix: use {known}")
