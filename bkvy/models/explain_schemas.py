"""Request bodies of ``POST /llm/explain`` (issue 18 §5): the body of /llm/intelligence, /llm/scenario or
/llm/direct, told apart by which of ``intelligence_level``, ``scenario`` or ``provider``+``model`` it has."""

from __future__ import annotations

from typing import Literal

from bkvy.models.schemas import _Name, _RoutedRequest
from bkvy.models.types import IntelligenceLevel

Level = IntelligenceLevel | Literal["auto"]


class LlmExplainIn(_RoutedRequest):
    """``POST /llm/explain``'s body: the fields of all three routing bodies, each kind's own optional. Read first
    to tell which kind a body is; the body is then validated as that kind (``api.explain``)."""

    intelligence_level: Level | None = None
    scenario: _Name | None = None
    provider: _Name | None = None
    model: _Name | None = None
    api_key_id: _Name | None = None
