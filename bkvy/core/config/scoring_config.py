"""routing.json's ``optimize`` and ``domain_models`` (issue 18 §2), checked against the configured names.

Their shapes are checked by pydantic (``bkvy.models.optimize``); this module checks what they refer to.
Each problem is a ValueError whose message starts with the JSON path and ends with the fix; ``gateway.py``
adds the file name and raises it as a ConfigError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bkvy.models.optimize import DOMAINS
from bkvy.models.types import IntelligenceLevel

if TYPE_CHECKING:
    from bkvy.core.config.gateway import ProviderConfig, RoutingConfig

_SCENARIO_PREFIX = "scenario:"


def check_scoring_config(providers: dict[str, ProviderConfig], routing: RoutingConfig) -> None:
    """Raises ValueError naming the JSON path and the fix."""
    levels = [level.value for level in IntelligenceLevel]
    for name in routing.optimize:
        scenario = name.removeprefix(_SCENARIO_PREFIX) if name.startswith(_SCENARIO_PREFIX) else None
        if scenario is None and name not in levels:
            raise ValueError(f'optimize.{name}: unknown key. Fix: use one of {levels} or "scenario:NAME"')
        if scenario is not None and scenario not in routing.scenarios:
            raise ValueError(
                f"optimize.{name}: unknown scenario {scenario!r}. Fix: use one of {sorted(routing.scenarios)}"
            )
    for domain, names in routing.domain_models.items():
        if domain not in DOMAINS:
            raise ValueError(f"domain_models.{domain}: unknown domain. Fix: use one of {list(DOMAINS)}")
        for index, name in enumerate(names):
            check_chat_model(providers, name, f"domain_models.{domain}.{index}")


def check_chat_model(providers: dict[str, ProviderConfig], name: str, where: str) -> None:
    """``name`` is a configured chat model as ``provider/model`` (``where``: its JSON path). Raises ValueError."""
    provider_name, _, model_name = name.partition("/")
    provider = providers.get(provider_name)
    model = provider.models.get(model_name) if provider is not None else None
    if model is None:
        configured = sorted(f"{p}/{m}" for p, c in providers.items() for m in c.models)
        raise ValueError(f"{where}: {name!r} is not a configured model. Fix: use 'provider/model', one of {configured}")
    if model.is_embedding_model:
        raise ValueError(f"{where}: {name!r} is an embedding model. Fix: list chat models only")
