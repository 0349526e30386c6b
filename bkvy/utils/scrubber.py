"""One choke point for configured secrets (issue 16): no key value leaves the process, in any byte.

A ``Scrubber`` knows every configured secret (provider key values, the admin and monitor keys, credentials in
a ``base_url``; ``api.services.configured_secrets``) and every sink goes through the same one:

- every HTTP response: header values, JSON bodies, stream events; the hot endpoints in ``api.hot_path``
  (``_send_json``, ``_send_events``), every other route through ``api.scrub_send.ScrubbedSend``, wrapped around
  ``send`` in ``api.app.GatewayApp``; ``/metrics``, ``/statistics/*``, ``/dashboard/data`` and ``/providers``
  are responses too;
- every record before any sink sees it: the CSV, the daily statistics, the dashboard (``utils.recorder.Records``);
- every log line (``SecretLogFilter`` on the process's handlers: message, fields, traceback).

A secret found is replaced by a mask of the same length (``[redacted*******]``), so a Content-Length already
sent stays true. Secrets shorter than ``MIN_SECRET_CHARS`` are not looked for: they would mask ordinary words.

Cost (``benchmarks/scrubber_micro.py``, a 3 KB reply, 10 secrets): a loop of ``secret in body`` takes 4-8 µs,
one compiled alternation of the secrets 28 µs (sre stops at every byte that starts some secret). So each
secret gets a gate: its rarest byte (``_RARE_FIRST``), found with memchr; only a reply holding a gate byte is
searched for the secrets behind it: 0.13-0.19 µs, at worst ~4.8 µs (every gate byte in the reply).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

MIN_SECRET_CHARS = 8
REDACTED = "[redacted]"
# Bytes ranked from the rarest in replies (English text, JSON, ids) to the most common. Upper-case letters
# other than sentence starts are rare in prose; a random 40-character key holds one of the first nine with
# probability 1 - (53/62)^40 = 99.8 %.
_RARE_FIRST = "QZJXKVWYUGBPFMLHDCNROSITEA~^|`{}<>;!$%&*+=?#@qzjxkvwyb98765gpfmuwyclhdnrsoitae43210_-./:,\"' \n"
_RANK = {ord(char): rank for rank, char in enumerate(_RARE_FIRST)}
# Query parameters that carry credentials in a base_url (Azure ``api-key``, Gemini ``key``, signed URLs...).
_SECRET_QUERY_NAMES = frozenset(
    {"key", "api-key", "api_key", "apikey", "token", "access_token", "auth", "secret", "password", "sig", "signature"}
)


def _mask(length: int) -> str:
    """``[redacted]`` padded with ``*`` to ``length`` (cut when shorter): the length of what it replaces."""
    return (REDACTED[:-1] + "*" * max(length - len(REDACTED), 0) + "]")[:length] if length >= 2 else "*" * length


def _gates(secrets: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each secret under its rarest character; secrets sharing that character share the gate."""
    by_gate: dict[str, list[str]] = {}
    for secret in secrets:
        gate = min(secret, key=lambda char: _RANK.get(ord(char), -1 if ord(char) > 127 else len(_RANK)))
        by_gate.setdefault(gate, []).append(secret)
    return tuple((gate, tuple(group)) for gate, group in by_gate.items())


@dataclass(frozen=True, slots=True)
class _Tables:
    """One set of secrets, compiled for str and for UTF-8 bytes; swapped whole on reload."""

    text_gates: tuple[tuple[str, tuple[str, ...]], ...]
    byte_gates: tuple[tuple[int, tuple[bytes, ...]], ...]
    text_pattern: re.Pattern[str] | None
    byte_pattern: re.Pattern[bytes] | None

    @classmethod
    def of(cls, secrets: Iterable[str]) -> _Tables:
        kept = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))
        if not kept:
            return cls((), (), None, None)
        text_gates = _gates(kept)
        byte_gates = tuple((gate.encode()[0], tuple(secret.encode() for secret in group)) for gate, group in text_gates)
        # longest first: a secret that holds another is masked whole
        text_pattern = re.compile("|".join(re.escape(secret) for secret in kept))
        byte_pattern = re.compile(b"|".join(re.escape(secret.encode()) for secret in kept))
        return cls(text_gates, byte_gates, text_pattern, byte_pattern)


class Scrubber:
    """Every configured secret, looked for in outgoing bytes and text. ``replace_secrets`` (a reload) swaps
    the set in one assignment, so every sink holding this object sees the new set at once."""

    __slots__ = ("_tables",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._tables = _Tables.of(secrets)

    def replace_secrets(self, secrets: Iterable[str]) -> None:
        self._tables = _Tables.of(secrets)

    @property
    def is_empty(self) -> bool:
        return self._tables.text_pattern is None

    def has_secret(self, data: bytes) -> bool:
        for gate, group in self._tables.byte_gates:
            if gate in data:  # memchr: ~0.01 µs per KB
                for secret in group:
                    if secret in data:
                        return True
        return False

    def has_secret_text(self, text: str) -> bool:
        for gate, group in self._tables.text_gates:
            if gate in text:
                for secret in group:
                    if secret in text:
                        return True
        return False

    def scrub(self, data: bytes) -> bytes:
        """``data`` with every secret masked (same length); ``data`` itself when it holds none."""
        pattern = self._tables.byte_pattern
        if pattern is None or not self.has_secret(data):
            return data
        return pattern.sub(lambda found: _mask(len(found[0])).encode(), data)

    def scrub_text(self, text: str) -> str:
        pattern = self._tables.text_pattern
        if pattern is None or not self.has_secret_text(text):
            return text
        return pattern.sub(lambda found: _mask(len(found[0])), text)


_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class SecretLogFilter(logging.Filter):
    """A handler filter: masks secrets in a record's message, its ``extra`` fields and its traceback. It never
    drops a record. A traceback holding a secret is kept as scrubbed text (``exc_text``), ``exc_info`` cleared."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        scrubber = self.scrubber
        if scrubber.is_empty:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format: logging reports it later, as it would without us
            message = str(record.msg)
        if scrubber.has_secret_text(message):
            record.msg, record.args = scrubber.scrub_text(message), None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                _scrub_field(record, name, value, scrubber)
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if scrubber.has_secret_text(text):
                record.exc_info, record.exc_text = None, scrubber.scrub_text(text)
        elif record.exc_text and scrubber.has_secret_text(record.exc_text):
            record.exc_text = scrubber.scrub_text(record.exc_text)
        return True


def _scrub_field(record: logging.LogRecord, name: str, value: Any, scrubber: Scrubber) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if scrubber.has_secret_text(value):
            setattr(record, name, scrubber.scrub_text(value))
        return
    text = json.dumps(value, ensure_ascii=False, default=str)  # lists, dicts: shown as JSON by the formatters
    if scrubber.has_secret_text(text):
        setattr(record, name, scrubber.scrub_text(text))


def redact_url(url: str) -> str:
    """``url`` for display: userinfo (``user:pass@``) and credential query values (``?api-key=``, ``?key=``...)
    replaced by ``[redacted]``; every other part kept as written. Anything unparseable is redacted whole."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{f'[{host}]' if ':' in host else host}{'' if port is None else f':{port}'}"
    query = "&".join(_redacted_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redacted_pair(pair: str) -> str:
    name, is_pair, _value = pair.partition("=")
    return f"{name}={REDACTED}" if is_pair and unquote_plus(name).lower() in _SECRET_QUERY_NAMES else pair


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (userinfo, credential query values): secrets for a ``Scrubber``."""
    try:
        parts = urlsplit(url)
        found = [value for value in (parts.username, parts.password) if value]
    except ValueError:
        return [url]
    found += [value for name, value in parse_qsl(parts.query) if name.lower() in _SECRET_QUERY_NAMES and value]
    return found
