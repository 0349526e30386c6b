"""One line per log event, with its fields (STYLE: ``log.warning("upstream_failed", extra={...})``).

``key=value`` by default (logfmt: values with spaces, quotes, ``=`` or control characters are JSON-quoted, so
a newline in a field never breaks the line), one JSON object per line with ``LOG_FORMAT=json``. Fields named like
a secret or like message content are shown as ``[redacted]`` and long values are cut: the code logs ids only,
and this is the second fence, not the first.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from typing import Any

# color_message: uvicorn's message with ANSI colours, a copy of the message
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
_REDACTED_FIELDS = frozenset(
    {"api_key", "key_value", "authorization", "password", "secret", "prompt", "messages", "content", "completion"}
)
_REDACTED = "[redacted]"
_MAX_VALUE_CHARS = 500
_HEAD_NAMES = ("ts", "level", "logger", "event")  # the JSON object's own names; a field of that name gets a "_"
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.:/@+\-,\[\]]+")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


class FieldsFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> <event> key=value ...``, or with ``is_json`` one JSON object per line."""

    def __init__(self, *, is_json: bool = False) -> None:
        super().__init__()
        self._is_json = is_json

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # set by ``utils.scrubber.SecretLogFilter``: a traceback with secrets masked
            fields["exc"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        timestamp = _utc_timestamp(record)
        event = record.getMessage()
        if self._is_json:
            head: dict[str, Any] = {"ts": timestamp, "level": record.levelname, "logger": record.name, "event": event}
            named = {(f"{name}_" if name in _HEAD_NAMES else name): _json_safe(value) for name, value in fields.items()}
            return json.dumps({**head, **named}, ensure_ascii=True, separators=(",", ":"), default=str)
        pairs = " ".join(f"{_safe_name(name)}={_text_value(value)}" for name, value in fields.items())
        line = f"{timestamp} {record.levelname} {record.name} {_text_value(event)}"
        return f"{line} {pairs}" if pairs else line


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a record, in the order given, secrets and content redacted, long values cut."""
    fields: dict[str, Any] = {}
    for name, value in vars(record).items():
        if name in _RECORD_ATTRIBUTES or name.startswith("_"):
            continue
        fields[name] = _REDACTED if name.lower() in _REDACTED_FIELDS else _cut(value)
    return fields


def configure_logging(level: str, log_format: str = "text") -> None:
    """Every log line of the process, uvicorn's included, to stderr through ``FieldsFormatter``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter(is_json=log_format == "json"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _utc_timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _cut(value: Any) -> Any:
    if isinstance(value, str | bytes) and len(value) > _MAX_VALUE_CHARS:
        return f"{value[:_MAX_VALUE_CHARS]!s}...[{len(value)} chars]"
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _cut(json.dumps(value, ensure_ascii=True, default=str))


def _text_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    if isinstance(value, int | float) or _BARE_VALUE.fullmatch(text):
        return text
    return json.dumps(_cut(text), ensure_ascii=True)  # quotes and escapes: \n, \", control and non-ASCII


def _safe_name(name: str) -> str:
    return _BAD_NAME_CHARS.sub("_", name) or "_"
