"""A real ``python main.py`` process over config files pointing at the simulated fleet, signalled under load
(issue 15): SIGHUP reloads (a valid config is swapped in with no failed request, an invalid one is refused and the
running one stays), SIGINT and SIGTERM stop gracefully; none of the three loses a transaction row. A key fixed in
``.env`` lifts its auth block on reload and on restart.

Real time only where a real process needs it: every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bkvy.sim import SimFleet
from bkvy.utils.records import COLUMNS
from tests.e2e.live_demo import free_port

ROOT = Path(__file__).resolve().parents[2]
LOAD = 200
GOOD_KEY, BAD_KEY = "sk-reload-good-0001", "sk-reload-bad-0002"
MESSAGES = [{"role": "user", "content": "ping"}]
SCENARIO = {"client_id": "after", "scenario": "after_reload", "messages": MESSAGES}


@pytest.fixture
async def slow_fleet() -> AsyncIterator[SimFleet]:
    """The fleet, each call taking 300 ms: a request sent is in flight long enough to meet a signal."""
    fleet = SimFleet(seed=3, with_default_latency=False)
    for server, model in (("openai", "gpt-4o-mini"), ("ollama", "llama3.2")):
        fleet.servers[server].knobs(model).latency_ms = 300
    fleet.servers["openai"].valid_keys = {GOOD_KEY}
    await fleet.start("127.0.0.1")
    try:
        yield fleet
    finally:
        await fleet.stop()


def _write_config(home: Path, fleet: SimFleet, *, with_scenario: bool = False) -> None:
    providers = {
        "openai": {
            "type": "openai",
            "base_url": fleet.base_url("openai"),
            "keys": {"main": {"api_key": "${RELOAD_OPENAI_KEY}"}},
            "models": {"gpt-4o-mini": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.001}},
        },
        "ollama": {
            "type": "ollama",
            "base_url": fleet.base_url("ollama"),
            "models": {"llama3.2": {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0}},
        },
    }
    routing = {"scenarios": {"after_reload": [{"provider": "ollama", "model": "llama3.2"}]}} if with_scenario else {}
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "providers.json").write_text(json.dumps(providers), encoding="utf-8")
    (home / "config" / "routing.json").write_text(json.dumps(routing), encoding="utf-8")


def _write_key(home: Path, key: str) -> None:
    (home / ".env").write_text(f"RELOAD_OPENAI_KEY={key}\n", encoding="utf-8")


async def _poll(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)  # polling a real process; the deadline bounds the wait
    raise AssertionError(f"not within {seconds:g}s: {what}")


class Gateway:
    """One real gateway process started in ``home`` (its ``.env`` and ``config/``), its log in ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.log_path = home / f"server-{self.port}.log"
        env = {name: value for name, value in os.environ.items() if name != "RELOAD_OPENAI_KEY"}
        env |= {
            "BKVY_CONFIG_DIR": str(home / "config"),
            "LOG_DIR": str(home / "logs"),
            "TRANSACTION_LOGGING": "true",
            "HEALTH_PROBE_ENABLED": "false",
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "main.py"), "--port", str(self.port), "--log-level", "info"],
                cwd=home,  # its .env is home/.env
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        limits = httpx.Limits(max_connections=LOAD + 20, max_keepalive_connections=LOAD + 20)
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", limits=limits, timeout=30.0)

    async def up(self) -> None:
        async def answers() -> bool:
            assert self.process.poll() is None, self.log()
            try:
                return (await self.client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await _poll("the gateway answers /health", answers, seconds=30.0)

    async def health(self) -> dict:
        return (await self.client.get("/health")).json()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self) -> int:
        return self.process.wait(timeout=30)

    async def close(self) -> None:
        await self.client.aclose()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@asynccontextmanager
async def _gateway(home: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(home)
    try:
        await gateway.up()
        yield gateway
    finally:
        await gateway.close()


def _direct(i: int) -> dict:
    provider, model = ("openai", "gpt-4o-mini") if i % 2 else ("ollama", "llama3.2")
    return {"client_id": f"load-{i % 5}", "provider": provider, "model": model, "messages": MESSAGES}


def _start_load(gateway: Gateway, count: int = LOAD) -> asyncio.Future[list[httpx.Response | BaseException]]:
    calls = [gateway.client.post("/llm/direct", json=_direct(i)) for i in range(count)]
    return asyncio.gather(*calls, return_exceptions=True)


def _arrivals(fleet: SimFleet) -> int:
    return sum(sum(server.stats.calls_by_path.values()) for server in fleet.servers.values())


async def _until_in_flight(fleet: SimFleet, count: int) -> None:
    start = _arrivals(fleet)

    async def arrived() -> bool:
        return _arrivals(fleet) - start >= count

    await _poll(f"{count} requests reach the fleet", arrived)


def _logged_ids(home: Path) -> list[str]:
    with open(home / "logs" / "transactions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert all(len(row) == len(COLUMNS) for row in rows[1:]), "a torn row"
    return [row[COLUMNS.index("request_id")] for row in rows[1:]]


def _ok_ids(results: list[httpx.Response | BaseException]) -> list[str]:
    return [r.json()["request_id"] for r in results if isinstance(r, httpx.Response) and r.status_code == 200]


async def test_sighup_reloads_under_load_with_no_failed_request_and_no_lost_row(
    slow_fleet: SimFleet, tmp_path: Path
) -> None:
    _write_config(tmp_path, slow_fleet)
    _write_key(tmp_path, GOOD_KEY)
    async with _gateway(tmp_path) as gateway:
        first_hash = (await gateway.health())["config_hash"]
        load = _start_load(gateway)
        await _until_in_flight(slow_fleet, LOAD // 2)
        _write_config(tmp_path, slow_fleet, with_scenario=True)
        gateway.signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return (await gateway.health())["config_hash"] != first_hash

        await _poll("SIGHUP swaps the new config in", reloaded)
        results = await load
        assert [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in results] == [200] * LOAD
        after = await gateway.client.post("/llm/scenario", json=SCENARIO)
        assert after.status_code == 200, after.text  # the new config serves

        (tmp_path / "config" / "providers.json").write_text("{", encoding="utf-8")
        gateway.signal(signal.SIGHUP)

        async def refused() -> bool:
            return "config_reload_refused" in gateway.log()

        await _poll("an invalid config is refused in the log", refused)
        health = await gateway.health()
        assert health["config_hash"] != first_hash and health["scenarios"] == 1  # the running config stayed
        still = await gateway.client.post("/llm/scenario", json=SCENARIO)
        assert still.status_code == 200
        gateway.signal(signal.SIGTERM)
        assert gateway.wait() == 0, gateway.log()[-3000:]
    assert sorted(_logged_ids(tmp_path)) == sorted(
        [*_ok_ids(results), after.json()["request_id"], still.json()["request_id"]]
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_stop_signal_under_load_answers_what_it_took_and_loses_no_row(
    slow_fleet: SimFleet, tmp_path: Path, signum: int
) -> None:
    _write_config(tmp_path, slow_fleet)
    _write_key(tmp_path, GOOD_KEY)
    async with _gateway(tmp_path) as gateway:
        load = _start_load(gateway)
        await _until_in_flight(slow_fleet, LOAD // 2)
        gateway.signal(signum)
        results = await load
        assert gateway.wait() == 0, gateway.log()[-3000:]
    answered = [r for r in results if isinstance(r, httpx.Response)]
    assert len(answered) >= LOAD // 2 and all(r.status_code == 200 for r in answered)  # in flight: finished
    assert sorted(_logged_ids(tmp_path)) == sorted(_ok_ids(results))


async def _is_blocked(gateway: Gateway) -> bool:
    response = await gateway.client.post("/llm/direct", json=_direct(1))
    return response.status_code == 503 and response.json()["error"]["code"] == "circuits_open"


async def test_a_key_fixed_in_dotenv_lifts_its_auth_block_on_reload_and_on_restart(
    slow_fleet: SimFleet, tmp_path: Path
) -> None:
    openai = slow_fleet.servers["openai"]
    _write_config(tmp_path, slow_fleet)
    _write_key(tmp_path, BAD_KEY)
    async with _gateway(tmp_path) as gateway:
        assert (await gateway.client.post("/llm/direct", json=_direct(1))).status_code == 502  # 401 upstream
        assert await _is_blocked(gateway)
        _write_key(tmp_path, GOOD_KEY)
        first_hash = (await gateway.health())["config_hash"]
        gateway.signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return (await gateway.health())["config_hash"] != first_hash

        await _poll("SIGHUP reads the fixed key", reloaded)
        assert (await gateway.client.post("/llm/direct", json=_direct(1))).status_code == 200
        assert openai.stats.calls_for_key(GOOD_KEY) == 1
        _write_key(tmp_path, BAD_KEY)  # broken again, blocked again, then stopped with the block persisted
        gateway.signal(signal.SIGHUP)
        await _poll("SIGHUP reads the bad key", lambda: _hash_is(gateway, first_hash))
        assert (await gateway.client.post("/llm/direct", json=_direct(1))).status_code == 502
        gateway.signal(signal.SIGTERM)
        assert gateway.wait() == 0
    bad_calls = openai.stats.calls_for_key(BAD_KEY)
    async with _gateway(tmp_path) as gateway:  # the same bad key: the persisted block holds
        assert await _is_blocked(gateway)
        assert openai.stats.calls_for_key(BAD_KEY) == bad_calls
    _write_key(tmp_path, GOOD_KEY)
    async with _gateway(tmp_path) as gateway:  # the key was fixed while down: the block is gone
        assert (await gateway.client.post("/llm/direct", json=_direct(1))).status_code == 200
    assert openai.stats.calls_for_key(GOOD_KEY) == 2


async def _hash_is(gateway: Gateway, config_hash: str) -> bool:
    return (await gateway.health())["config_hash"] == config_hash
