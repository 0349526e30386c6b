"""``ScrubbedSend`` (every FastAPI route's responses) and the scrubber's secret set across a reload."""

from __future__ import annotations

import tempfile

import httpx
from starlette.types import Message

from bkvy.api.app import create_app
from bkvy.api.scrub_send import ScrubbedSend
from bkvy.api.services import configured_secrets
from bkvy.clock import FakeClock
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.utils.scrubber import Scrubber

KEY = "sk-Secret0123456789ABCDEFQZ"


async def test_headers_and_body_are_masked_and_other_messages_pass_unchanged() -> None:
    sent: list[Message] = []

    async def sink(message: Message) -> None:
        sent.append(message)

    send = ScrubbedSend(sink, Scrubber([KEY]))
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", KEY.encode()), (b"x-b", b"ok")]}
    clean = {"type": "http.response.body", "body": b"nothing here", "more_body": True}
    await send(start)
    await send(clean)
    await send({"type": "http.response.body", "body": f'{{"k":"{KEY}"}}'.encode()})
    assert sent[0]["headers"][0] == (b"x-a", b"[redacted" + b"*" * (len(KEY) - 10) + b"]")
    assert sent[0]["headers"][1] == (b"x-b", b"ok")
    assert sent[1] is clean  # nothing found: the message itself, not a copy
    assert KEY.encode() not in sent[2]["body"] and len(sent[2]["body"]) == len(KEY) + 8


def _config(key: str):
    model = {"intelligence_tier": "low", "input_cost_per_1k": 0.001, "output_cost_per_1k": 0.002}
    provider = {
        "type": "openai",
        "base_url": "http://127.0.0.1:9",
        "keys": {"k": {"api_key": key}},
        "models": {"m": model},
    }
    return build_config({"p": provider}, {}, {})


async def test_a_reload_swaps_the_secrets_the_scrubber_knows() -> None:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(prefix="bkvy-test-"), admin_api_key="admin-key-0123456789")
    new_key = "sk-Rotated9876543210ZYXWQK"
    app = create_app(settings, _config(KEY), clock=FakeClock(), config_source=lambda: _config(new_key))
    async with app.router.lifespan_context(app):
        scrubber = app.state.services.scrubber
        assert scrubber.has_secret_text(KEY) and scrubber.has_secret_text("admin-key-0123456789")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bkvy.test") as client:
            reply = await client.post("/admin/reload", headers={"X-Admin-API-Key": "admin-key-0123456789"})
        assert reply.status_code == 200
        assert scrubber.has_secret_text(new_key) and not scrubber.has_secret_text(KEY)
        assert app.state.services.scrubber is scrubber  # the same object every sink holds


def test_configured_secrets_are_keys_url_credentials_and_the_admin_and_monitor_keys() -> None:
    settings = load_settings({}, log_dir=tempfile.mkdtemp(), admin_api_key="a" * 20, monitor_api_key="m" * 20)
    config = _config(KEY)
    assert set(configured_secrets(settings, config)) == {KEY, "a" * 20, "m" * 20}


def test_the_redis_password_is_a_configured_secret() -> None:
    password = "redis-pass-" + "r" * 16
    settings = load_settings({}, log_dir=tempfile.mkdtemp(), redis_url=f"redis://:{password}@127.0.0.1:6379/0")
    assert password in configured_secrets(settings, _config(KEY))
