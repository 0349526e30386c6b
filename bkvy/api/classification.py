"""``auto`` (issue 18 §1): the one step that classifies a request, called by every route that takes ``auto``
(``/llm/intelligence``, ``/v1/chat/completions``, ``/v1/messages``) and by the explain endpoint.

Only a request that asks for ``auto`` pays for it. The heuristic (``core.routing.classifier``) always runs; with
routing.json ``classifier`` set, the configured model is asked for the level (``core.execution.classifier_model``)
after policy, with what policy lets leave (``police_classified``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bkvy.api.policy_gate import police
from bkvy.core.execution.classifier_model import ask_classifier_model, with_feature
from bkvy.core.execution.records import ExecutionRequest
from bkvy.core.routing.classifier import Classification, classify, images_in
from bkvy.core.routing.plan import RouteRequest
from bkvy.core.routing.scoring import with_weights
from bkvy.models.optimize import Optimize
from bkvy.models.policy import DataClass, PolicyAction
from bkvy.models.types import ChatMessage, GenerationOptions

if TYPE_CHECKING:
    from bkvy.api.hot_path import Exchange

AUTO = "auto"
CLASSIFICATION_HEADER = "x-bkvy-classification"


def classify_heuristic(messages: Sequence[ChatMessage], options: GenerationOptions) -> Classification:
    """The built-in classifier alone: no provider call (what explain shows without sending)."""
    return classify(messages, options, images=images_in(messages))


async def police_classified(
    exchange: Exchange, execution: ExecutionRequest, optimize: Optimize | None, data_class: DataClass | None = None
) -> ExecutionRequest:
    """``execution`` as policy lets it leave (``api.policy_gate.police``), its ``auto`` level refined by routing.json's
    classifier model when one is configured. The model is a provider like any other: it is asked only with the
    request as policy lets it leave (redacted), and only when policy allows that model for this request (never
    for a blocked one); otherwise the built-in classifier's level stands (feature ``classifier=skipped_policy``).
    A level the model changes is routed, weighted and policed again, from the request as it arrived."""
    services = exchange.services
    policed = police(exchange, execution, data_class)
    heuristic, config = execution.classification, services.config.routing.classifier
    if heuristic is None or config is None:
        return policed
    decision = policed.policy
    provider, _, model = config.model.partition("/")
    if decision is not None and (
        decision.action is PolicyAction.BLOCK
        or (decision.allowed is not None and (provider, model) not in decision.allowed)
    ):
        return policed._replace(classification=with_feature(heuristic, "classifier=skipped_policy"))
    refined = await ask_classifier_model(
        services.executor, services.classifier_cache, config, execution.request_id, policed.messages, heuristic
    )
    if refined.level is heuristic.level:
        return policed._replace(classification=refined)
    route = classified_route(execution.route._replace(weights=None), refined)
    route = with_weights(route, optimize, services.config.routing.optimize)
    return police(exchange, execution._replace(route=route, classification=refined), data_class)


def classified_route(route: RouteRequest, classification: Classification) -> RouteRequest:
    """The route at the classified level, with its domain."""
    return route._replace(level=classification.level, domain=classification.domain)


def classification_headers(classification: Classification) -> dict[str, str]:
    return {CLASSIFICATION_HEADER: classification.header_value()}
