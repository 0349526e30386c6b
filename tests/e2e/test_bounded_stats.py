"""Issue 16 item 3: a flood of distinct client ids and unknown scenario names keeps the statistics bounded.

Through the real app (lifespan included) against the simulated fleet: each name a client makes up costs at
most one of ``STATS_MAX_KEYS_PER_DIMENSION`` entries; the rest is counted in ``other``, an unknown scenario
under ``unknown``, and every total stays exact.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from tests.conftest import gateway

MESSAGES = [{"role": "user", "content": "hello"}]
MAX_KEYS = 50
FLOOD = 10_000
TEAMS = [f"team-{n}" for n in range(5)]
BATCHES = 250  # each: FLOOD / BATCHES one-off names, then one request from each team
# A bounded dimension holds at most MAX_KEYS names of at most 128 characters, plus "other": about 140 bytes
# each in JSON. Only client ids can reach that (scenario names of a flood all go to "unknown"); the other
# dimensions and the numbers take well under 4 KiB.
BOUND_BYTES = (MAX_KEYS + 1) * 140 + 4096
RECENT_ROWS_BYTES = 25 * 1024  # the dashboard's latest transactions: 25 rows, names and messages capped


async def _flood(client: httpx.AsyncClient) -> None:
    async def unknown(client_id: str, n: int) -> None:
        body = {"client_id": client_id, "scenario": f"made-up-{n:05d}", "messages": MESSAGES}
        assert (await client.post("/llm/scenario", json=body)).status_code == 404

    async def served(client_id: str) -> None:
        body = {"client_id": client_id, "intelligence_level": "low", "messages": MESSAGES}
        assert (await client.post("/llm/intelligence", json=body)).status_code == 200

    await asyncio.gather(*(served(team) for team in TEAMS))
    step = FLOOD // BATCHES
    for first in range(0, FLOOD, step):
        await asyncio.gather(*(unknown(f"flood-{n:05d}", n) for n in range(first, first + step)))
        await asyncio.gather(*(unknown(team, first) for team in TEAMS))


async def test_distinct_client_ids_and_unknown_scenarios_keep_the_stats_bounded(
    fleet: SimFleet, tmp_path: Path
) -> None:
    settings = load_settings(
        {"STATS_MAX_KEYS_PER_DIMENSION": str(MAX_KEYS)},
        log_dir=tmp_path,
        summary_stats=True,
        dashboard_enabled=True,
    )
    failures = FLOOD + BATCHES * len(TEAMS)
    total = failures + len(TEAMS)
    async with gateway(demo_config(fleet), clock=FakeClock(), settings=settings) as client:
        await _flood(client)
        response = await client.get("/statistics/aggregate")
        dashboard = await client.get("/dashboard/data", params={"range": "1h"})
    assert len(response.content) < BOUND_BYTES and len(dashboard.content) < BOUND_BYTES + RECENT_ROWS_BYTES
    report = response.json()
    assert report["total"] == total and report["failures"] == failures
    by_client = report["by_client_id"]
    assert len(by_client) == MAX_KEYS + 1 and sum(by_client.values()) == total
    assert set(list(by_client)[:5]) == set(TEAMS)  # the top ones are kept, most counted first
    assert by_client["other"] >= FLOOD - MAX_KEYS
    assert report["by_scenario"] == {"unknown": failures}  # never the names the clients made up
    assert report["errors_by_code"] == {"unknown_scenario": failures}

    stats_file = tmp_path / "daily_stats.json"
    assert stats_file.stat().st_size < BOUND_BYTES
    (day,) = json.loads(stats_file.read_text())["days"].values()
    assert day["total"] == total and sum(day["counts"]["by_client_id"].values()) == total
    assert len(day["counts"]["by_client_id"]) == MAX_KEYS + 1
    assert not any(name.startswith("made-up") for name in day["counts"]["by_scenario"])
