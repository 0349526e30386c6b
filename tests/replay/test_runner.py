"""The runner: recorded requests through the real Executor on virtual time, policy decided again on the
recorded kinds, each request started at its recorded time."""

from __future__ import annotations

import logging

import pytest

from bkvy.core.config.gateway import build_config
from bkvy.core.config.policy_config import build_policy
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_policy, demo_providers_offline, demo_routing
from bkvy.replay.fitting import fit_fleet
from bkvy.replay.runner import replay_records
from bkvy.utils.records import TransactionRecord, parse_timestamp


def _research(second: int, pii_kinds: str = "") -> TransactionRecord:
    return TransactionRecord(
        f"2026-11-30T10:00:{second:02d}.000Z", f"r{second}", "ops", "scenario", scenario="research", success=True,
        provider_used="gemini", model_used="gemini-2.5-pro", total_time_ms=80.0, input_tokens=100, output_tokens=20,
        pii_kinds=pii_kinds,
    )  # fmt: skip


async def test_requests_start_at_their_recorded_times_and_policy_applies_to_recorded_kinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="bkvy.core")
    config = build_config(demo_providers_offline(), demo_routing(), {})
    config = config.model_copy(update={"policy": build_policy(demo_policy(), config, policy_file="<demo policy>")})
    records = [_research(0), _research(5, "email"), _research(30)]
    replayed, calls = await replay_records(records, config, load_settings({}), fit_fleet(records))
    by_id = {r.request_id: r for r in replayed}
    assert [parse_timestamp(by_id[r.request_id].timestamp) for r in records] == pytest.approx(
        [parse_timestamp(r.timestamp) for r in records], abs=0.01
    )
    assert (by_id["r0"].success, by_id["r0"].model_used, by_id["r0"].total_time_ms) == (True, "gemini-2.5-pro", 80.0)
    blocked = by_id["r5"]  # the demo's "no-pii-in-research" rule blocks it, as it would live
    assert (blocked.success, blocked.policy_action, blocked.policy_rule) == (False, "block", "no-pii-in-research")
    assert calls == 2
