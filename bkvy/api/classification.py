"""``auto`` (issue 18 §1): the one step that classifies a request, called by every route that takes ``auto``
(``/llm/intelligence``, ``/v1/chat/completions``, ``/v1/messages``) and by the explain endpoint.

Only a request that asks for ``auto`` pays for it. The heuristic (``core.routing.classifier``) always runs; with
routing.json ``classifier`` set, the configured model is asked for the level (``core.execution.classifier_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bkvy.core.execution.classifier_model import ask_classifier_model
from bkvy.core.routing.classifier import Classification, classify, images_in
from bkvy.core.routing.plan import RouteRequest
from bkvy.models.types import ChatMessage, GenerationOptions

if TYPE_CHECKING:
    from bkvy.api.services import Services

AUTO = "auto"
CLASSIFICATION_HEADER = "x-bkvy-classification"


def classify_heuristic(messages: Sequence[ChatMessage], options: GenerationOptions) -> Classification:
    """The built-in classifier alone: no provider call (what explain shows without sending)."""
    return classify(messages, options, images=images_in(messages))


async def classify_request(
    services: Services, request_id: str, messages: Sequence[ChatMessage], options: GenerationOptions
) -> Classification:
    """The request's level, domain, confidence and features; asks the classifier model when one is configured."""
    heuristic = classify_heuristic(messages, options)
    config = services.config.routing.classifier
    if config is None:
        return heuristic
    return await ask_classifier_model(
        services.executor, services.classifier_cache, config, request_id, messages, heuristic
    )


def classified_route(route: RouteRequest, classification: Classification) -> RouteRequest:
    """The route at the classified level, with its domain."""
    return route._replace(level=classification.level, domain=classification.domain)


def classification_headers(classification: Classification) -> dict[str, str]:
    return {CLASSIFICATION_HEADER: classification.header_value()}
