"""Reliability under injected faults (SPEC §6), end to end: the real app over httpx's ASGI transport, real HTTP
to the simulated providers on loopback, a FakeClock for every wait. Each test prints its figures
(``pytest -s``) for the release note.

The one exception to the fake clock is the restart test: ``kill -9`` needs a real process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bkvy.clock import FakeClock
from bkvy.core.config.settings import load_settings
from bkvy.sim import SimFleet
from tests.conftest import gateway
from tests.e2e.fault_driver import (
    FALLBACK,
    FALLBACK_KEY_ID,
    FALLBACK_MODEL,
    PRIMARY,
    PRIMARY_KEY_ID,
    PRIMARY_MODEL,
    FaultDriver,
    FixedJitter,
    attempts_of,
    scenario_body,
    two_provider_config,
)

INTERVAL = 10.0  # HEALTH_PROBE_INTERVAL_SECONDS for every test here
SOFT_TIMEOUT = 30.0
HARD_TIMEOUT = 120.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **overrides: object):
    values: dict[str, object] = {
        "health_probe_interval_seconds": INTERVAL,
        "request_soft_timeout_seconds": SOFT_TIMEOUT,
        "request_hard_timeout_seconds": HARD_TIMEOUT,
    }
    values.update(overrides)
    return load_settings({}, log_dir=tmp_path, **values)


def _primary_outcomes(body: dict) -> list[str]:
    return [a["outcome"] for a in attempts_of(body) if a["provider"] == PRIMARY]


async def _open_primary_with_outage(drive: FaultDriver, fleet: SimFleet) -> int:
    """Take the primary down and send requests until its circuit opens. Returns how many it took."""
    fleet.servers["openai"].knobs(PRIMARY_MODEL).down = True
    for sent in range(1, 11):
        response = await drive.send()
        assert response.status_code == 200, response.text  # the fallback serves meanwhile
        if (await drive.primary_circuit())["state"] == "open":
            return sent
    raise AssertionError("the primary's circuit never opened")


# -- 1. a lossy primary next to a healthy fallback ---------------------------------------------------------------


async def test_lossy_primary_with_healthy_fallback_keeps_success_high_and_calls_low(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fleet.servers["openai"].knobs(PRIMARY_MODEL).error_rates = {"server": 0.30, "timeout": 0.10}
    requests = 2000
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        responses = await drive.run_autojump(
            [scenario_body() for _ in range(requests)], jump_seconds=SOFT_TIMEOUT, batch=50, pace_seconds=10.0
        )  # 5 requests/s of fake time
        probes = drive.probes_sent
    bodies = [r.json() for r in responses]
    successes = sum(1 for r in responses if r.status_code == 200)
    upstream_calls = drive.upstream_calls()
    straight_to_fallback = sum(1 for b in bodies if all(o.startswith("skipped_") for o in _primary_outcomes(b)))
    fast_mode_successes = sum(1 for b in bodies if attempts_of(b) and attempts_of(b)[-1]["fast_mode"])
    success_rate = successes / requests
    calls_per_request = upstream_calls / requests
    print(
        f"\n[faults 1] {requests} requests, primary 30% 5xx + 10% timeouts: success {success_rate:.2%}, "
        f"upstream calls/request {calls_per_request:.3f} ({upstream_calls} calls: primary "
        f"{drive.primary_calls()}, fallback {drive.fallback_calls()}, probes {probes}); "
        f"{straight_to_fallback} went straight to the fallback (primary circuit open); "
        f"{fast_mode_successes} served in fast mode; fake time {fake_clock.now() - 1000.0:.0f}s "
        f"in {drive.clock_jumps} clock jumps"
    )
    assert success_rate >= 0.995
    assert calls_per_request <= 1.5
    assert straight_to_fallback > 0  # the primary's circuit did open and spared it calls
    assert probes > 0


# -- 2./3. a hard outage, then recovery ----------------------------------------------------------------------------


async def test_down_provider_gets_at_most_one_probe_per_interval_and_no_user_requests(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        needed = await _open_primary_with_outage(drive, fleet)
        intervals, steps_per_interval, requests_per_step = 8, 4, 3
        calls_before, probes_before = drive.primary_calls(), drive.probes_sent
        per_interval: list[int] = []
        user_requests = 0
        for _ in range(intervals):
            interval_start = drive.primary_calls()
            for _ in range(steps_per_interval):
                await drive.advance(INTERVAL / steps_per_interval)
                for _ in range(requests_per_step):
                    response = await drive.send()
                    user_requests += 1
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["provider_used"] == FALLBACK
                    assert _primary_outcomes(body) in ([], ["skipped_circuit_open"]), attempts_of(body)
            per_interval.append(drive.primary_calls() - interval_start)
        calls = drive.primary_calls() - calls_before
        probes = drive.probes_sent - probes_before
        circuit = await drive.primary_circuit()
    print(
        f"\n[faults 2] primary down: circuit opened after {needed} requests; over {intervals} intervals "
        f"({intervals * INTERVAL:.0f}s fake) and {user_requests} user requests it got {calls} calls, all probes "
        f"({probes} sent), per interval {per_interval}; open_count now {circuit['open_count']}"
    )
    assert needed == 3  # CIRCUIT_FAILURE_THRESHOLD
    assert calls == probes  # every call that reached it was a probe
    assert probes >= 1  # it is still being checked
    assert max(per_interval) <= 1
    assert circuit["state"] == "open"


async def _time_to_close(drive: FaultDriver, fleet: SimFleet) -> tuple[float, list[str]]:
    """Bring the primary back, then every fake second send a request. Returns (seconds to CLOSED, states seen)."""
    fleet.servers["openai"].knobs(PRIMARY_MODEL).down = False
    recovered_at = drive.clock.now()
    states: list[str] = []
    while drive.clock.now() - recovered_at < 30 * INTERVAL:
        await drive.advance(1.0)
        state = (await drive.primary_circuit())["state"]
        if not states or states[-1] != state:
            states.append(state)
        response = await drive.send()
        assert response.status_code == 200, response.text
        if (await drive.primary_circuit())["state"] == "closed":
            return drive.clock.now() - recovered_at, [*states, "closed"]
    raise AssertionError(f"the primary never closed: {states}")


async def test_recovered_provider_closes_within_two_probe_intervals(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        await _open_primary_with_outage(drive, fleet)
        probes_before = drive.probes_sent
        closed_after, states = await _time_to_close(drive, fleet)
        probes = drive.probes_sent - probes_before
    print(
        f"\n[faults 3] primary back up right after its circuit opened: {' -> '.join(states)} "
        f"{closed_after:.0f}s after recovery ({probes} probe, {INTERVAL:.0f}s probe interval)"
    )
    assert states == ["open", "half_open", "closed"]  # a probe, then one real success
    assert probes == 1
    assert closed_after <= 2 * INTERVAL


async def test_after_a_long_outage_the_circuit_closes_within_two_probe_intervals_of_recovery(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        await _open_primary_with_outage(drive, fleet)
        await drive.advance(6 * INTERVAL, step_seconds=INTERVAL)  # failed probes grow the backoff
        before = await drive.primary_circuit()
        closed_after, states = await _time_to_close(drive, fleet)
    backoff_left = before["open_for_seconds"]
    print(
        f"\n[faults 3b] primary back up after {6 * INTERVAL:.0f}s down (open_count {before['open_count']}, "
        f"{backoff_left:.1f}s of backoff left): {' -> '.join(states)} {closed_after:.0f}s after recovery "
        f"(the probe keeps its own cadence; the backoff holds back user traffic only)"
    )
    assert states == ["open", "half_open", "closed"]
    assert closed_after <= 2 * INTERVAL


# -- 4. a 429 storm ------------------------------------------------------------------------------------------------


async def test_429_storm_sends_nothing_to_the_key_until_retry_after_then_probes_and_uses_it(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    retry_after = 30.0
    knobs = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        await drive.advance(3.0)  # the storm starts between two probe ticks
        knobs.burst_429(count=1000, retry_after_seconds=retry_after)
        storm = await drive.run_autojump([scenario_body() for _ in range(10)], jump_seconds=1.0, batch=10)
        storm_at = fake_clock.now()
        calls_in_storm = drive.primary_calls()  # all in flight together before the first 429 came back
        storm += await drive.run_autojump([scenario_body() for _ in range(10)], jump_seconds=1.0, batch=10)
        assert all(r.status_code == 200 for r in storm)
        assert all(r.json()["provider_used"] == FALLBACK for r in storm)
        circuit = await drive.primary_circuit()
        assert (circuit["state"], circuit["open_reason"]) == ("open", "rate_limited")
        knobs.pending_429s = 0  # the provider's window has passed by the time it says
        quiet_calls = []
        while fake_clock.now() - storm_at < retry_after - 1.0:
            await drive.advance(1.0)
            response = await drive.send()
            assert response.json()["provider_used"] == FALLBACK
            quiet_calls.append(drive.primary_calls() - calls_in_storm)
        first_call_at = None
        probes_before = drive.probes_sent
        served_by_primary = False
        while fake_clock.now() - storm_at < retry_after + 3 * INTERVAL:
            await drive.advance(1.0)
            if first_call_at is None and drive.primary_calls() > calls_in_storm:
                first_call_at = fake_clock.now() - storm_at
            response = await drive.send()
            if response.json()["provider_used"] == PRIMARY:
                served_by_primary = True
                break
        probes_after_window = drive.probes_sent - probes_before
        circuit = await drive.primary_circuit()
    print(
        f"\n[faults 4] 429 storm (retry-after {retry_after:.0f}s): {calls_in_storm} concurrent calls got 429, "
        f"then {quiet_calls[-1]} calls to the key from {len(quiet_calls) + 10} more requests over the next "
        f"{len(quiet_calls)}s; first call after {first_call_at}s "
        f"({probes_after_window} probe), primary serving again at {fake_clock.now() - storm_at:.0f}s, "
        f"circuit {circuit['state']}"
    )
    assert max(quiet_calls) == 0
    assert first_call_at is not None and retry_after <= first_call_at <= retry_after + INTERVAL
    assert probes_after_window >= 1  # probed before real traffic returns
    assert served_by_primary and circuit["state"] == "closed"


# -- 5. a flapping provider ----------------------------------------------------------------------------------------


async def _flap_once(drive: FaultDriver, fleet: SimFleet) -> None:
    """Down until the circuit opens, up again until a probe and one real request close it."""
    knobs = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    await _open_primary_with_outage(drive, fleet)
    knobs.down = False
    for _ in range(40):
        await drive.advance(INTERVAL / 2)
        await drive.send()
        if (await drive.primary_circuit())["state"] == "closed":
            return
    raise AssertionError("the primary never closed again")


async def test_flapping_provider_is_flagged_ranked_last_and_cleared_after_ten_stable_minutes(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        started = fake_clock.now()
        await _flap_once(drive, fleet)
        await _flap_once(drive, fleet)
        assert not (await drive.primary_circuit())["is_flapping"]  # two openings are not flapping
        await _open_primary_with_outage(drive, fleet)
        third_opening_at = fake_clock.now()
        flapping_after = third_opening_at - started
        status = (await client.get("/circuits/status")).json()["circuits"]
        flagged = [c for c in status if c["is_flapping"]]
        assert [(c["provider"], c["model"], c["key_id"]) for c in flagged] == [(PRIMARY, PRIMARY_MODEL, PRIMARY_KEY_ID)]
        fleet.servers["openai"].knobs(PRIMARY_MODEL).down = False
        await drive.advance(60.0, step_seconds=INTERVAL)  # flapping backoff (x5) passes, probe
        ranked = (await drive.send()).json()
        order = [c["provider"] for c in ranked["metadata"]["alternatives_considered"] if "skipped" not in c]
        circuit = await drive.primary_circuit()
        assert circuit["is_flapping"] and circuit["state"] != "open"
        assert order == [FALLBACK, PRIMARY]  # usable, but ranked last
        assert ranked["provider_used"] == FALLBACK
        await drive.advance(third_opening_at + 590.0 - fake_clock.now(), step_seconds=INTERVAL)
        still_flapping = (await drive.primary_circuit())["is_flapping"]
        await drive.advance(third_opening_at + 600.0 - fake_clock.now())
        cleared = await drive.primary_circuit()
        after = (await drive.send()).json()
    print(
        f"\n[faults 5] flapping flagged after 3 openings in {flapping_after:.0f}s; ranked last "
        f"({order}); still flagged at 590s stable: {still_flapping}; at 600s: is_flapping {cleared['is_flapping']}, "
        f"next request served by {after['provider_used']}"
    )
    assert still_flapping
    assert not cleared["is_flapping"]
    assert after["provider_used"] == PRIMARY
    assert [c["provider"] for c in after["metadata"]["alternatives_considered"]][:1] == [PRIMARY]


# -- 6. the whole fleet blips ----------------------------------------------------------------------------------------


async def test_fleet_wide_blip_is_served_in_panic_mode_without_an_error_plateau(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    blip = 2.0
    jitter = FixedJitter(0.5)  # first backoff = 5 s: still running when the blip ends
    async with gateway(
        two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path), rng=jitter
    ) as client:  # type: ignore[arg-type]
        drive = FaultDriver(client, fake_clock, fleet)
        await drive.advance(1.0)
        for server in fleet.servers.values():
            for name in (PRIMARY_MODEL, FALLBACK_MODEL):
                server.knobs(name).down = True
        blip_started = fake_clock.now()
        during = [await drive.send() for _ in range(4)]
        await drive.advance(blip - (fake_clock.now() - blip_started))
        for server in fleet.servers.values():
            for name in (PRIMARY_MODEL, FALLBACK_MODEL):
                server.knobs(name).down = False
        status = (await client.get("/circuits/status")).json()["circuits"]
        backoff_left = min(c["open_for_seconds"] for c in status)
        after: list[dict] = []
        while True:
            response = await drive.send()
            assert response.status_code == 200, response.text
            after.append({**response.json(), "at": fake_clock.now() - blip_started})
            if fake_clock.now() - blip_started >= blip + backoff_left + 1.0:
                break
            await drive.advance(0.5)
    reasons = [b["decision_reason"] for b in after]
    panic_served = reasons.count("panic_mode")
    print(
        f"\n[faults 6] fleet down for {blip:.0f}s: {sum(r.status_code >= 500 for r in during)}/{len(during)} "
        f"failed during the blip; circuits {sorted({c['state'] for c in status})} with >= {backoff_left}s backoff "
        f"left; after recovery {len(after)}/{len(after)} succeeded, {panic_served} via panic_mode "
        f"(first at +{after[0]['at']:.1f}s), reasons {sorted(set(reasons))}"
    )
    assert all(c["state"] == "open" for c in status)
    assert backoff_left > 0
    assert reasons[0] == "panic_mode"
    assert panic_served >= 2


# -- 7. kill -9 with open circuits -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_dead_config(config_dir: Path, dead_port: int) -> None:
    model = {"intelligence_tier": "low", "input_cost_per_1k": 0.001, "output_cost_per_1k": 0.002}
    dead = f"http://127.0.0.1:{dead_port}"
    providers = {
        PRIMARY: {
            "type": "openai",
            "base_url": dead,
            "keys": {PRIMARY_KEY_ID: {"api_key": "sk-dead-1"}},
            "models": {PRIMARY_MODEL: model},
        },
        FALLBACK: {
            "type": "anthropic",
            "base_url": dead,
            "keys": {FALLBACK_KEY_ID: {"api_key": "sk-dead-2"}},
            "models": {FALLBACK_MODEL: model},
        },
    }
    routing = {
        "scenarios": {
            "chat": [
                {"provider": PRIMARY, "model": PRIMARY_MODEL, "priority": 1},
                {"provider": FALLBACK, "model": FALLBACK_MODEL, "priority": 2},
            ]
        }
    }
    config_dir.mkdir()
    (config_dir / "providers.json").write_text(json.dumps(providers))
    (config_dir / "routing.json").write_text(json.dumps(routing))


def _start_gateway(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"gateway did not start: {log_path.read_text()}")


def _open_circuits(status: dict) -> dict[tuple[str, str, str], dict]:
    return {(c["provider"], c["model"], c["key_id"]): c for c in status["circuits"] if c["state"] == "open"}


@pytest.fixture
def real_processes() -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=5)


def test_open_circuits_survive_kill_9_and_restart(tmp_path: Path, real_processes: list[subprocess.Popen]) -> None:
    config_dir, log_dir, log_path = tmp_path / "config", tmp_path / "logs", tmp_path / "gateway.log"
    _write_dead_config(config_dir, _free_port())
    env = {
        **os.environ,
        "BKVY_CONFIG_DIR": str(config_dir),
        "LOG_DIR": str(log_dir),
        "HEALTH_PROBE_ENABLED": "false",
        "TRANSACTION_LOGGING": "false",
        "SUMMARY_STATS": "false",
    }
    port = _free_port()
    real_processes.append(_start_gateway(port, env, log_path))
    base = f"http://127.0.0.1:{port}"
    codes = [httpx.post(f"{base}/llm/scenario", json=scenario_body(), timeout=10).status_code for _ in range(3)]
    opened = _open_circuits(httpx.get(f"{base}/circuits/status", timeout=5).json())
    state_file = log_dir / "circuit_states.json"
    saved: dict = {}
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # debounced 1 s: a real process, so real (short) polling
        if state_file.exists():
            saved = json.loads(state_file.read_text())
            if len(saved.get("circuits", [])) == len(opened):
                break
        time.sleep(0.05)
    saved_until = {(c["provider"], c["model"], c["key_id"]): c["open_until_wall"] for c in saved["circuits"]}
    real_processes[0].send_signal(signal.SIGKILL)
    real_processes[0].wait(timeout=5)
    killed_at = time.time()

    port = _free_port()
    real_processes.append(_start_gateway(port, env, log_path))
    restarted_at = time.time()
    restored = _open_circuits(httpx.get(f"http://127.0.0.1:{port}/circuits/status", timeout=5).json())
    expected_left = {key: max(0.0, until - restarted_at) for key, until in saved_until.items()}
    print(
        f"\n[faults 7] {codes} from 3 requests to dead upstreams; open before kill -9: "
        f"{ {k[0]: round(c['open_for_seconds'], 2) for k, c in opened.items()} }s; restart took "
        f"{restarted_at - killed_at:.2f}s; open after restart: "
        f"{ {k[0]: (c['open_reason'], round(c['open_for_seconds'], 2)) for k, c in restored.items()} }s"
    )
    assert codes == [502, 502, 502]
    assert set(opened) == {(PRIMARY, PRIMARY_MODEL, PRIMARY_KEY_ID), (FALLBACK, FALLBACK_MODEL, FALLBACK_KEY_ID)}
    assert set(saved_until) == set(opened)
    assert set(restored) == set(opened)
    for key, circuit in restored.items():
        assert circuit["open_reason"] == "connection"
        assert circuit["open_count"] == opened[key]["open_count"]
        assert circuit["open_for_seconds"] == pytest.approx(expected_left[key], abs=0.5)  # remaining backoff kept
        assert circuit["open_for_seconds"] <= opened[key]["open_for_seconds"]


# -- 8. soft and hard timeouts ---------------------------------------------------------------------------------------


async def test_soft_timeout_switches_when_hedging_is_off_and_hard_timeout_returns_504_at_the_deadline(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    hard = 35.0
    settings = _settings(tmp_path, request_hard_timeout_seconds=hard, hedging=False)
    primary = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    fallback = fleet.servers["anthropic"].knobs(FALLBACK_MODEL)
    primary.error_rates = {"timeout": 1.0}
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=settings) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        [soft] = await drive.run_autojump([scenario_body()], jump_seconds=SOFT_TIMEOUT)
        soft_body = soft.json()
        soft_attempts = [(a["provider"], a["outcome"], a["fast_mode"]) for a in attempts_of(soft_body)]

        fallback.error_rates = {"timeout": 1.0}
        started = fake_clock.now()
        pending = asyncio.ensure_future(client.post("/llm/scenario", json=scenario_body()))
        await drive.settle()
        await drive.advance(SOFT_TIMEOUT)  # the primary's attempt gives up; fallback in fast mode
        await drive.advance(hard - SOFT_TIMEOUT - 0.05)  # just before the hard deadline
        await asyncio.sleep(0.01)
        was_pending = not pending.done()
        fake_clock.advance(0.1)  # just past it
        wall_started = time.perf_counter()
        reply = await asyncio.wait_for(pending, timeout=1.0)
        reply_ms = (time.perf_counter() - wall_started) * 1000.0
        hard_body = reply.json()
        fallback_calls = drive.fallback_calls()
    hard_attempts = [(a["provider"], a["outcome"], a["fast_mode"]) for a in hard_body.get("attempts", [])]
    print(
        f"\n[faults 8] soft timeout {SOFT_TIMEOUT:.0f}s: attempts {soft_attempts}, served by "
        f"{soft_body['provider_used']} in {soft_body['metadata']['total_completion_time_ms'] / 1000:.1f}s fake; "
        f"hard timeout {hard:.0f}s: pending at deadline-50ms: {was_pending}, then {reply.status_code} "
        f"{hard_body['error']['code']} {reply_ms:.1f}ms (wall) after the deadline passed; attempts {hard_attempts}"
    )
    assert soft.status_code == 200
    # The soft timeout cancels the hung attempt (no failure: its circuit is not charged) and switches.
    assert soft_attempts == [(PRIMARY, "cancelled_soft_timeout", False), (FALLBACK, "success", True)]
    assert was_pending
    assert (reply.status_code, hard_body["error"]["code"]) == (504, "hard_timeout")
    assert reply_ms < 100.0
    assert fake_clock.now() - started < hard + 0.1
    assert hard_attempts[0] == (PRIMARY, "cancelled_soft_timeout", False)
    assert fallback_calls == 2  # the fast-mode attempt was under way when the deadline hit
    assert hard_attempts[-1] == (FALLBACK, "cancelled_hard_timeout", True)  # the cut attempt is recorded too


# -- 9. probes: a 429 burst after an outage, and a long outage (issue 15, items 12 and 15) ----------------------------


async def _serve_primary_again(drive: FaultDriver, since: float, limit_seconds: float) -> float:
    """A user request every fake second until the primary serves one. Returns the seconds since ``since``."""
    while drive.clock.now() - since < limit_seconds:
        await drive.advance(1.0)
        response = await drive.send()
        assert response.status_code == 200, response.text
        if response.json()["provider_used"] == PRIMARY:
            return drive.clock.now() - since
    circuit = await drive.primary_circuit()
    raise AssertionError(f"the primary was still shut out {limit_seconds:.0f}s later: {circuit}")


async def test_429_on_a_probe_honours_retry_after_after_an_outage_and_the_model_is_back_soon_after_the_burst(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    retry_after, burst = 3.0, 12.0
    knobs = fleet.servers["openai"].knobs(PRIMARY_MODEL)
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        await _open_primary_with_outage(drive, fleet)  # a 503 outage first: openings pile up
        await drive.advance(4 * INTERVAL, step_seconds=INTERVAL)
        await drive.advance(INTERVAL - 0.5)  # the burst starts just before a probe: two probes fall inside it
        carried = (await drive.primary_circuit())["open_count"]
        knobs.down = False
        knobs.burst_429(count=1_000_000, retry_after_seconds=retry_after)  # back, but rate limited for 12 s
        burst_started, calls_before = fake_clock.now(), drive.primary_calls()
        call_times: list[float] = []
        while fake_clock.now() - burst_started < burst:
            await drive.advance(0.5)
            call_times += [fake_clock.now() - burst_started] * (drive.primary_calls() - calls_before - len(call_times))
            response = await drive.send()
            assert response.json()["provider_used"] == FALLBACK
        knobs.pending_429s = 0
        rate_limited = await drive.primary_circuit()
        burst_ended = fake_clock.now()
        locked_out = await _serve_primary_again(drive, burst_ended, 60 * INTERVAL)
        circuit = await drive.primary_circuit()
    gaps = [later - earlier for earlier, later in itertools.pairwise(call_times)]
    print(
        f"\n[faults 9] after a 503 outage (open_count {carried}), a {burst:.0f}s 429 burst with Retry-After "
        f"{retry_after:.0f}s: probes at {call_times}s into it, circuit then {rate_limited['open_reason']} for "
        f"{rate_limited['open_for_seconds']}s (open_count {rate_limited['open_count']}); the cheap model served "
        f"again {locked_out:.0f}s after the burst ended (issue 15 measured 120-480s before the fix)"
    )
    assert carried >= 4
    assert len(call_times) == 2 and all(gap >= INTERVAL for gap in gaps)  # at most one probe per interval
    assert rate_limited["open_reason"] == "rate_limited"
    assert rate_limited["open_for_seconds"] <= retry_after  # the probe's 429 set the Retry-After, not 60 s x 2^n
    assert rate_limited["open_count"] == len(call_times)  # the 429s restarted the run the 503s had grown
    assert locked_out <= INTERVAL + 1.0
    assert circuit["state"] == "closed"


async def test_a_circuit_opened_by_a_429_is_probed_when_its_retry_after_ends_not_at_the_next_tick(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    retry_after = 3.0
    async with gateway(two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path)) as client:
        drive = FaultDriver(client, fake_clock, fleet)
        await drive.advance(4.0)  # between two probe ticks
        fleet.servers["openai"].knobs(PRIMARY_MODEL).burst_429(count=1, retry_after_seconds=retry_after)
        assert (await drive.send()).json()["provider_used"] == FALLBACK
        opened_at, calls_before = fake_clock.now(), drive.primary_calls()
        assert (await drive.primary_circuit())["open_reason"] == "rate_limited"
        while drive.primary_calls() == calls_before and fake_clock.now() - opened_at < 2 * INTERVAL:
            await drive.advance(0.5)
        probed_after = fake_clock.now() - opened_at
        served_after = await _serve_primary_again(drive, opened_at, 2 * INTERVAL)
    print(
        f"\n[faults 10] a 429 with Retry-After {retry_after:.0f}s opened the circuit {opened_at - 1000.0:.0f}s into "
        f"a {INTERVAL:.0f}s probe interval: probed {probed_after:.1f}s later, primary serving at +{served_after:.0f}s"
    )
    assert probed_after == retry_after
    assert served_after <= retry_after + 1.0


async def test_after_a_ten_minute_outage_the_provider_is_back_within_two_probe_intervals(
    fleet: SimFleet, fake_clock: FakeClock, tmp_path: Path
) -> None:
    outage = 60 * INTERVAL
    async with gateway(
        two_provider_config(fleet), clock=fake_clock, settings=_settings(tmp_path), rng=FixedJitter(1.0)
    ) as client:  # type: ignore[arg-type]
        drive = FaultDriver(client, fake_clock, fleet)
        await _open_primary_with_outage(drive, fleet)
        probes_before = drive.probes_sent
        await drive.advance(outage, step_seconds=INTERVAL / 2)
        probes = drive.probes_sent - probes_before
        users = [(await drive.send()).json()["provider_used"] for _ in range(3)]
        assert users == [FALLBACK] * 3  # user traffic stays off it
        before = await drive.primary_circuit()
        closed_after, states = await _time_to_close(drive, fleet)
    print(
        f"\n[faults 11] primary down {outage:.0f}s: {probes} probes ({INTERVAL:.0f}s interval), open_count "
        f"{before['open_count']}, {before['open_for_seconds']:.0f}s of backoff left for user traffic; back up: "
        f"{' -> '.join(states)} {closed_after:.0f}s after recovery"
    )
    assert outage / INTERVAL - 1 <= probes <= outage / INTERVAL + 1  # a steady cadence, one per interval
    assert before["open_for_seconds"] >= 10 * INTERVAL  # the backoff has grown long ...
    assert states == ["open", "half_open", "closed"]
    assert closed_after <= 2 * INTERVAL  # ... and does not delay the recovery
