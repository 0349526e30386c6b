"""Thinking control (SPEC §5): reasoning is wasted on ``low`` requests and when the client says so."""

from __future__ import annotations

from bkvy.models.types import IntelligenceLevel


def should_disable_thinking(
    *, level: IntelligenceLevel | None, disable_thinking: bool, supports_thinking: bool
) -> bool:
    """True when the adapter must switch the model's reasoning off (only where the model supports it)."""
    return supports_thinking and (disable_thinking or level is IntelligenceLevel.LOW)
