"""ClientKeyStore: hashed at rest, revocation at once, rpm and monthly budget, batched persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from bkvy.clock import FakeClock
from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE, KEY_PREFIX, ClientKeyStore, hash_key
from bkvy.models.errors import BudgetExceeded, ClientRateLimited, UnknownClientKey


async def _store(tmp_path: Path, clock: FakeClock) -> ClientKeyStore:
    store = ClientKeyStore(tmp_path / CLIENT_KEYS_FILE, clock)
    await store.start()
    return store


async def test_created_key_authenticates_and_only_its_hash_is_stored(tmp_path: Path, fake_clock: FakeClock) -> None:
    store = await _store(tmp_path, fake_clock)
    key, plaintext = await store.create("team-a")
    assert plaintext.startswith(KEY_PREFIX) and len(plaintext) > 40
    assert store.authenticate(plaintext) == key and store.has_keys
    assert store.authenticate(plaintext + "x") is None and store.authenticate("") is None
    await store.stop()
    stored = (tmp_path / CLIENT_KEYS_FILE).read_bytes()
    assert plaintext.encode() not in stored and hash_key(plaintext).encode() in stored


async def test_revoked_key_is_refused_at_once_and_after_restart(tmp_path: Path, fake_clock: FakeClock) -> None:
    store = await _store(tmp_path, fake_clock)
    key, plaintext = await store.create("team-a")
    await store.revoke(key.key_id)
    assert store.authenticate(plaintext) is None
    with pytest.raises(UnknownClientKey):
        await store.revoke(key.key_id)
    await store.stop()
    restarted = await _store(tmp_path, fake_clock)
    assert restarted.authenticate(plaintext) is None and restarted.has_keys  # still required
    assert [k["revoked"] for k in await restarted.describe()] == [True]
    await restarted.stop()


async def test_rpm_limit_refuses_with_retry_after_until_the_window_moves(tmp_path: Path, fake_clock: FakeClock) -> None:
    store = await _store(tmp_path, fake_clock)
    key, _ = await store.create("small", rpm=2)
    store.admit(key)
    fake_clock.advance(10)
    store.admit(key)
    with pytest.raises(ClientRateLimited) as raised:
        store.admit(key)
    assert raised.value.status == 429 and raised.value.retry_after_seconds == pytest.approx(50.0)
    fake_clock.advance(50)
    store.admit(key)
    await store.stop()


async def test_budget_is_enforced_from_observed_spend_and_survives_restart(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store = await _store(tmp_path, fake_clock)
    key, plaintext = await store.create("capped", monthly_budget_usd=0.01)
    store.admit(key)
    store.record_spend(key.key_id, 0.006)
    store.admit(key)
    store.record_spend(key.key_id, 0.006)
    with pytest.raises(BudgetExceeded) as raised:
        store.admit(key)
    assert raised.value.status == 402 and raised.value.code == "budget_exceeded"
    await store.stop()
    restarted = await _store(tmp_path, fake_clock)
    [listed] = await restarted.describe()
    assert listed["requests"] == 2 and listed["spend_usd_this_month"] == pytest.approx(0.012)
    assert "key" not in listed and "key_hash" not in listed
    with pytest.raises(BudgetExceeded):
        restarted.admit(restarted.authenticate(plaintext))  # type: ignore[arg-type]
    fake_clock.advance(40 * 86400)  # next month: a fresh budget
    restarted.admit(restarted.authenticate(plaintext))  # type: ignore[arg-type]
    await restarted.stop()


async def test_flusher_writes_use_in_batches_off_the_loop(tmp_path: Path, fake_clock: FakeClock) -> None:
    store = await _store(tmp_path, fake_clock)
    key, _ = await store.create("busy")
    for _ in range(5):
        store.admit(key)
    await store.flush()
    reread = await _store(tmp_path, fake_clock)
    assert (await reread.describe())[0]["requests"] == 5
    await reread.stop()
    await store.stop()
