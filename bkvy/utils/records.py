"""One row per request (SPEC §7): the transaction record and its time helpers.

A record holds ids, routing facts, timings, token counts and costs; never message content and never a key
value (``api_key_used`` is the configured key *id*). Field order is the CSV column order.

Columns are only ever added at the end (``hedged`` came with issue 13), so a file written under an older
header reads back by name with the new columns at their defaults; the log starts a new file rather than
append rows under a header that differs (``TransactionLog``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import NamedTuple


class TransactionRecord(NamedTuple):  # a tuple: built once per request, cheap to build and to render
    timestamp: str  # ISO 8601 UTC, see ``utc_timestamp``
    request_id: str
    client_id: str = ""
    routing_method: str = ""  # RoutingMethod value
    intelligence_level: str = ""
    scenario: str = ""
    requested_provider: str = ""
    requested_model: str = ""
    max_wait_seconds: float | None = None
    success: bool = False
    provider_used: str = ""
    model_used: str = ""
    api_key_used: str = ""  # key id only, never the key
    total_time_ms: float | None = None
    queue_wait_ms: float | None = None
    rate_limit_wait_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_estimate: float | None = None  # USD
    finish_reason: str = ""
    decision_reason: str = ""
    error_type: str = ""  # BkvyError code or ErrorClass value
    error_message: str = ""
    fallback_attempts: int = 0  # upstream calls beyond the first, hedges not included (a retry or a switch)
    alternatives_tried: str = ""  # "provider/model/key_id;provider/model/key_id"
    hedged: bool = False  # a hedge raced this request's answer (won or lost)
    # ``auto`` (issue 18 §1): the classifier's domain, confidence and features ("code_blocks=2 lang=python"),
    # never text; the level it chose is ``intelligence_level``.
    domain: str = ""
    classification_confidence: float | None = None
    classification_features: str = ""
    tenant: str = ""  # the client key's tenant (issue 19 §3), an id from the operator's config
    # Policy (issue 19): the action and the rule that decided it, and the kinds of data found ("email;phone");
    # never a value or the text.
    policy_action: str = ""
    policy_rule: str = ""
    pii_kinds: str = ""
    # The response cache (issue 20 §1): answered from it (cost 0, no upstream call), and what the original
    # call cost, the money the hit saved.
    cache_hit: bool = False
    cache_saved_usd: float | None = None
    # Each attempt of ``alternatives_tried``, in its order, ended how ("rate_limited;server"): what replay fits
    # error episodes from (issue 20 §3).
    alternatives_outcomes: str = ""


COLUMNS: tuple[str, ...] = TransactionRecord._fields
# Each column's annotation as text ("str", "float | None"...): how a CSV cell reads back.
COLUMN_TYPES: dict[str, str] = {
    name: getattr(annotation, "__forward_arg__", str(annotation))
    for name, annotation in TransactionRecord.__annotations__.items()
}


_second_texts: dict[int, str] = {}  # the last second formatted: one per request would cost ~2 µs each


def utc_timestamp(wall_seconds: float) -> str:
    """Unix seconds -> ``2023-11-14T22:13:20.000Z`` (millisecond precision, truncated).

    The same text as ``datetime.fromtimestamp(wall, utc).isoformat(timespec="milliseconds")`` (microseconds
    rounded half-even first, as datetime does), with the date and time of day formatted once per second."""
    second = math.floor(wall_seconds)
    micros = round((wall_seconds - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    text = _second_texts.get(second)
    if text is None:
        _second_texts.clear()
        text = _second_texts[second] = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros // 1000:03d}Z"


def parse_timestamp(text: str) -> float | None:
    """ISO 8601 text -> unix seconds; naive times are taken as UTC; None when unparseable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def utc_day(wall_seconds: float) -> str:
    """Unix seconds -> the UTC calendar day ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(wall_seconds, tz=UTC).strftime("%Y-%m-%d")
