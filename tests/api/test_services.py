"""Services start in order and roll back what started when a later part fails; stop stops every part and
reports every failure."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

import pytest

from bkvy.api import services as services_module
from bkvy.api.services import Services
from bkvy.clock import FakeClock
from bkvy.core.circuits.probes import HealthProber
from bkvy.core.config.settings import Settings, load_settings
from bkvy.core.limits.client_keys import ClientKeyStore
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
