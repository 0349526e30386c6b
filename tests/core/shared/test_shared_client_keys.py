"""SharedClientKeys against a real redis-server: Redis calls per keyed request, and the bounded negative cache."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bkvy.clock import FakeClock
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, ClientKeyStore
from bkvy.core.shared import client_keys as shared_client_keys
from bkvy.core.shared.client_keys import SharedClientKeys
from bkvy.core.shared.state import SharedState
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture


@pytest.fixture
async def keys(redis_server: RedisServer) -> AsyncIterator[SharedClientKeys]:  # noqa: F811
    clock = FakeClock()
    state = SharedState(redis_server.url, prefix="t:", timeout_seconds=1.0, clock=clock)
    await state.start()
    local = ClientKeyStore(Path(tempfile.mkdtemp(prefix="bkvy-test-")) / CLIENT_KEYS_FILE, clock)
    await local.start()
    shared = SharedClientKeys(state, local, clock)
    await shared.start()
    yield shared
    await shared.stop()
    await local.stop()
    await state.stop()


async def _calls(keys: SharedClientKeys, command: str) -> int:
    stats = await keys._state.client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_keyed_request_costs_one_script_and_a_known_key_no_lookup(keys: SharedClientKeys) -> None:
    key, plaintext = await keys.create("team-a", rpm=100, monthly_budget_usd=1.0)
    await keys.admit(key)  # loads the script (EVAL once), then EVALSHA
    gets, scripts = await _calls(keys, "get"), await _calls(keys, "evalsha")
    for _ in range(10):
        found = await keys.authenticate(plaintext)
        assert found == key
        await keys.admit(found)
    assert await _calls(keys, "get") == gets  # cached: no lookup
    assert await _calls(keys, "evalsha") == scripts + 10  # one round trip per keyed request


async def test_bad_keys_are_looked_up_once_and_the_negative_cache_is_bounded(
    keys: SharedClientKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_client_keys, "_NEGATIVE_CACHE_SIZE", 3)
    gets = await _calls(keys, "get")
    bad = [f"bkvy-sk-{n:043d}" for n in range(5)]
    for value in bad + bad[-3:]:  # the last three are remembered
        assert await keys.authenticate(value) is None
    assert await _calls(keys, "get") == gets + 5
    assert len(keys._unknown) == 3
    assert await keys.authenticate("not-a-bkvy-key") is None and await keys.authenticate("bkvy-sk-" + "x" * 200) is None
    assert await _calls(keys, "get") == gets + 5  # malformed values are never looked up
