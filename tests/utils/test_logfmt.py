"""Log lines carry their fields: ``key=value`` or one JSON object per line, escaped, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import sys

import httpx
import pytest

from bkvy.sim import SimFleet
from bkvy.utils.logfmt import FieldsFormatter, configure_logging


def _record(message: str = "upstream_failed", exc_info: object = None, **fields: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "bkvy.core.x", "levelname": "WARNING", "levelno": 30, "msg": message, "exc_info": exc_info, **fields}
    )


def test_text_line_carries_every_field_in_order() -> None:
    line = FieldsFormatter().format(_record(provider="openai", model="gpt-4o-mini", key_id="k1", status=503))
    assert line.endswith(" WARNING bkvy.core.x upstream_failed provider=openai model=gpt-4o-mini key_id=k1 status=503")


def test_text_values_are_quoted_and_escaped_so_the_line_holds() -> None:
    line = FieldsFormatter().format(
        _record(error="boom\nWARNING fake line", path="/a b/c", empty="", flag=True, nothing=None, ratio=0.5)
    )
    assert "\n" not in line and len(line.splitlines()) == 1
    assert 'error="boom\\nWARNING fake line"' in line
    assert 'path="/a b/c"' in line and 'empty=""' in line
    assert "flag=true nothing=null ratio=0.5" in line


def test_json_line_is_one_object_with_the_fields() -> None:
    line = FieldsFormatter(is_json=True).format(
        _record(provider="openai", status=503, error="a\nb\u2028c", level="x", nested={"a": [1]}, nan=float("nan"))
    )
    assert len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert parsed["event"] == "upstream_failed" and parsed["level"] == "WARNING"
    assert parsed["logger"] == "bkvy.core.x" and parsed["ts"].endswith("Z")
    assert parsed["provider"] == "openai" and parsed["status"] == 503
    assert parsed["error"] == "a\nb\u2028c"
    assert parsed["level_"] == "x"  # a field never overwrites the line's own names
    assert parsed["nested"] == '{"a": [1]}' and parsed["nan"] == "nan"


@pytest.mark.parametrize("is_json", [False, True])
def test_secret_and_content_fields_are_redacted_and_long_values_cut(is_json: bool) -> None:
    line = FieldsFormatter(is_json=is_json).format(
        _record(api_key="sk-live-123", Authorization="Bearer sk-live-123", content="my prompt", reason="x" * 5000)
    )
    assert "sk-live-123" not in line and "my prompt" not in line
    assert "[redacted]" in line and len(line) < 1000


@pytest.mark.parametrize("is_json", [False, True])
def test_an_exception_stays_on_the_line(is_json: bool) -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = _record("unhandled_error", exc_info=sys.exc_info(), request_id="r1")
    line = FieldsFormatter(is_json=is_json).format(record)
    assert len(line.splitlines()) == 1 and "ValueError" in line and "request_id" in line


def test_configure_logging_sends_json_lines_through_the_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        configure_logging("info", "json")
        logging.getLogger("bkvy.sim.server").info("sim_started", extra={"base_url": "http://127.0.0.1:4321"})
        logging.getLogger("bkvy.x").debug("below_the_level")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["base_url"] == "http://127.0.0.1:4321"


async def test_a_real_upstream_failure_logs_its_fields(demo_gateway: httpx.AsyncClient, fleet: SimFleet) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FieldsFormatter())
    logger = logging.getLogger("bkvy")
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        fleet.servers["anthropic"].knobs("claude-3-5-haiku-latest").error_rates = {"server": 1.0}
        body = {"model": "scenario:customer_support", "messages": [{"role": "user", "content": "secret-prompt-42"}]}
        response = await demo_gateway.post("/v1/chat/completions", json=body)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
    assert response.status_code == 200
    [line] = [line for line in stream.getvalue().splitlines() if "upstream_failed" in line]
    assert "WARNING bkvy.core.execution.ledger upstream_failed" in line
    assert "provider=anthropic model=claude-3-5-haiku-latest key_id=anthropic_key_1" in line
    assert line.endswith(" error_class=server status=529")  # Anthropic's overloaded
    assert "secret-prompt-42" not in stream.getvalue() and "demo-anthropic-1" not in stream.getvalue()
