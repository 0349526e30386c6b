"""The cost of a call: one formula for the routing estimate, the executor's spend and client budgets."""

from __future__ import annotations


def cost_usd(input_tokens: int, output_tokens: int, input_price_per_1k: float, output_price_per_1k: float) -> float:
    """US dollars for a call of ``input_tokens`` in and ``output_tokens`` out at the given prices per 1,000."""
    return (input_tokens * input_price_per_1k + output_tokens * output_price_per_1k) / 1000.0
