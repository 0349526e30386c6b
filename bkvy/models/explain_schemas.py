"""Request bodies of ``POST /llm/explain`` (issue 18 §5): the body of /llm/intelligence, /llm/scenario or
/llm/direct, told apart by which of ``intelligence_level``, ``scenario`` or ``provider``+``model`` it has."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel

from bkvy.models.schemas import DirectRequest, IntelligenceRequest, ScenarioRequest
from bkvy.models.types import IntelligenceLevel


class IntelligenceExplainRequest(IntelligenceRequest):
    # MERGE(classifier): "auto" on /llm/intelligence itself comes with the classifier; explain takes it already.
    intelligence_level: IntelligenceLevel | Literal["auto"]  # type: ignore[assignment]


class ExplainKindProbe(BaseModel):
    """Only which routing fields a body has, to pick its schema; everything else is checked by that schema."""

    model_config = ConfigDict(extra="allow", frozen=True)

    intelligence_level: Any = None
    scenario: Any = None
    provider: Any = None
    model: Any = None


class LlmExplainIn(RootModel[IntelligenceExplainRequest | ScenarioRequest | DirectRequest]):
    """``POST /llm/explain``'s body, for /docs: one of the three routing bodies."""
