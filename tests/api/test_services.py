"""Services start in order and roll back what started when a later part fails; stop stops every part and
reports every failure."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable

import pytest

from bkvy.api import services as services_module
from bkvy.api.services import Services
from bkvy.clock import FakeClock
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.config.settings import Settings, load_settings
from bkvy.core.limits.client_keys import ClientKeyStore
from bkvy.core.routing.latency_store import LatencyStore
from bkvy.core.upstream.transport import AiohttpTransport
from bkvy.demo import demo_config
from bkvy.sim import SimFleet
from bkvy.utils.recorder import Records


class PartFailed(Exception):
    pass


def _settings() -> Settings:
    return load_settings(
        {"TRANSACTION_LOGGING": "true", "HEALTH_PROBE_ENABLED": "true"}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-")
    )


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The parts stopped, in order: each part's stop is recorded, then runs as it would."""
    names: list[str] = []

    def recording(name: str, original: Callable) -> Callable:
        async def stop(self: object) -> None:
            names.append(name)
            await original(self)

        return stop

    for cls, method, name in (
        (Records, "stop", "records"),
        (ClientKeyStore, "stop", "client_keys"),
        (HealthProber, "stop", "prober"),
        (AiohttpTransport, "close", "transport"),
    ):
        monkeypatch.setattr(cls, method, recording(name, getattr(cls, method)))
    return names


async def _fail(*args: object, **kwargs: object) -> None:
    raise PartFailed("part failed to start")


async def test_client_keys_failing_stops_records_prober_and_session(
    fleet: SimFleet, stopped: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ClientKeyStore, "start", _fail)
    with pytest.raises(PartFailed):
        await Services.start(_settings(), demo_config(fleet), clock=FakeClock())
    assert stopped == ["records", "prober", "transport"]


async def test_records_failing_stops_prober_and_session(
    fleet: SimFleet, stopped: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services_module, "start_records", _fail)
    with pytest.raises(PartFailed):
        await Services.start(_settings(), demo_config(fleet), clock=FakeClock())
    assert stopped == ["prober", "transport"]


async def test_rollback_leaves_no_open_session(fleet: SimFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions: list[AiohttpTransport] = []
    original_start = AiohttpTransport.start

    async def start(self: AiohttpTransport) -> None:
        sessions.append(self)
        await original_start(self)

    monkeypatch.setattr(AiohttpTransport, "start", start)
    monkeypatch.setattr(ClientKeyStore, "start", _fail)
    with pytest.raises(PartFailed):
        await Services.start(_settings(), demo_config(fleet), clock=FakeClock())
    assert len(sessions) == 1 and sessions[0]._session is None


async def test_stop_stops_every_part_and_raises_all_failures(fleet: SimFleet, stopped: list[str]) -> None:
    services = await Services.start(_settings(), demo_config(fleet), clock=FakeClock())
    records_failed, keys_failed = PartFailed("records"), PartFailed("client keys")

    async def fail_records() -> None:
        raise records_failed

    async def fail_keys() -> None:
        raise keys_failed

    services.records.stop = fail_records  # type: ignore[union-attr, method-assign]
    services.client_keys.stop = fail_keys  # type: ignore[union-attr, method-assign]
    with pytest.raises(ExceptionGroup) as raised:
        await services.stop()
    assert list(raised.value.exceptions) == [records_failed, keys_failed]
    assert stopped == ["prober", "transport"]


# --- Learned latency is kept across restarts (LOG_DIR/latency.json) ---


def _a_model(config: object) -> tuple[str, str]:
    provider_name, provider = next(iter(config.providers.items()))  # type: ignore[attr-defined]
    return provider_name, next(iter(provider.models))


async def test_a_restart_keeps_the_learned_p95(fleet: SimFleet) -> None:
    settings, config = _settings(), demo_config(fleet)
    model = _a_model(config)
    services = await Services.start(settings, config, clock=FakeClock())
    for index in range(200):
        services.latency.observe(*model, 0.05 if index % 10 else 2.0)
    p95 = services.latency.quantile_seconds(model, 0.95)
    assert p95 is not None and p95 > 1.0
    await services.stop()
    restarted = await Services.start(settings, config, clock=FakeClock())
    try:
        assert restarted.latency.quantile_seconds(model, 0.95) == pytest.approx(p95, rel=1e-4)
        assert restarted.latency.observations(model) == 200
    finally:
        await restarted.stop()


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"version": 1, "models": "x"}', b"[]", b""])
async def test_a_bad_latency_file_starts_empty(fleet: SimFleet, content: bytes) -> None:
    settings, config = _settings(), demo_config(fleet)
    (settings.log_dir / services_module.LATENCY_FILE).write_bytes(content)
    services = await Services.start(settings, config, clock=FakeClock())
    try:
        assert services.latency.observations(_a_model(config)) == 0
    finally:
        await services.stop()


async def test_latency_is_saved_at_most_once_per_delay_never_per_sample(
    fleet: SimFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[dict] = []

    async def record(self: object, state: dict) -> None:
        saved.append(state)

    monkeypatch.setattr(LatencyStore, "save", record)
    clock, config = FakeClock(), demo_config(fleet)
    model = _a_model(config)
    services = await Services.start(_settings(), config, clock=clock)
    try:
        for _ in range(100):
            services.latency.observe(*model, 0.05)
        await _let_tasks_run()
        clock.advance(services_module.LATENCY_SAVE_DELAY_SECONDS - 0.1)
        await _let_tasks_run()
        assert saved == []
        clock.advance(0.1)
        await _let_tasks_run()
        assert len(saved) == 1 and saved[0]["models"][0]["observations"] == 100
    finally:
        await services.stop()
    assert len(saved) == 2  # and once more on stop


async def _let_tasks_run() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
