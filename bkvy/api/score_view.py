"""A scored candidate's fields in ``debug`` output (issue 18 §2): its score and each component."""

from __future__ import annotations

from typing import Any

from bkvy.core.routing.plan import Candidate, CandidateKey, RoutePlan


def score_fields(plan: RoutePlan, candidate: Candidate) -> dict[str, Any]:
    """``{"score", "score_components"}`` for a candidate ranked by score; {} otherwise (cost ranking)."""
    if plan.scores is None:
        return {}
    breakdown = plan.scores.get(CandidateKey(candidate.provider, candidate.model, candidate.key_id))
    if breakdown is None:
        return {}
    components: dict[str, Any] = breakdown.components()
    if breakdown.is_default_quality:
        components["quality_source"] = "default"  # the model declares no quality: its tier's default
    return {"score": round(breakdown.score, 4), "score_components": components}
