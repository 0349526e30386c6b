"""What a replay leaves out: cache hits, embeddings requests, client-caused failures; config-decided ones stay."""

from __future__ import annotations

from bkvy.core.config.gateway import build_config
from bkvy.demo import demo_providers_offline, demo_routing
from bkvy.replay.selection import CLIENT_FAULT_CODES, select_replayable
from bkvy.utils.records import TransactionRecord


def _record(n: int, **fields: object) -> TransactionRecord:
    return TransactionRecord(f"2026-11-30T10:00:{n:02d}.000Z", f"r{n}", "c", **fields)  # type: ignore[arg-type]


def test_client_fault_codes_are_4xx_but_429_and_not_what_the_config_decides() -> None:
    assert {"client_disconnected", "client_stalled", "invalid_timeout", "invalid_request"} <= CLIENT_FAULT_CODES
    assert not {"rate_limited", "client_rate_limited", "tenant_rate_limited"} & CLIENT_FAULT_CODES
    assert not {"no_candidates", "policy_no_candidate", "sensitive_data_blocked"} & CLIENT_FAULT_CODES
    assert not {"all_candidates_failed", "hard_timeout", "circuits_open"} & CLIENT_FAULT_CODES


def test_selection_counts_each_kind_left_out() -> None:
    config = build_config(demo_providers_offline(), demo_routing(), {})
    chat = _record(1, routing_method="intelligence", intelligence_level="low", success=True)
    logged = [
        chat,
        _record(2, cache_hit=True, success=True),
        _record(3, routing_method="direct", requested_provider="ollama", requested_model="nomic-embed-text"),
        _record(4, routing_method="direct", requested_model="text-embedding-3-small", success=True),
        _record(5, success=False, error_type="client_disconnected"),
        _record(6, success=False, error_type="invalid_timeout"),
        _record(7, success=False, error_type="all_candidates_failed"),
        _record(8, success=False, error_type="no_candidates"),
        _record(9, success=False, error_type="rate_limited"),
    ]
    selection = select_replayable(logged, config)
    assert (selection.cache_hits, selection.embeddings, selection.client_failures) == (1, 2, 2)
    assert [r.request_id for r in selection.replayable] == ["r1", "r7", "r8", "r9"]
