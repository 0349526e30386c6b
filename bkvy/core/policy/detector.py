"""Sensitive data in request text (issue 19 §1): ``find_sensitive`` and ``redact_text`` on one text,
``scan_request`` and ``redact_request`` over every text part of a request. Pure; never logs or keeps a value.

What is scanned: each message's text (string content, the ``text`` parts of a content list; image parts are left
alone), assistant ``tool_calls`` arguments, tool results (role ``tool``), the system prompt (a ``system``
message), and of the options the two free-text fields that leave for the provider: ``stop`` and ``user``.
Tool specs are the operator's schemas, not the user's data, and are not scanned. docs/POLICY.md has the rules.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bkvy.core.policy.findings import Finding, settle_overlaps
from bkvy.core.policy.pii_network import find_emails, find_ipv4_in, find_ipv6
from bkvy.core.policy.pii_numbers import find_ibans_at, find_numbers_in, numeric_runs
from bkvy.core.policy.pii_secrets import find_secrets
from bkvy.models.policy import PiiKind
from bkvy.models.types import ChatMessage, GenerationOptions, ToolCall

__all__ = ["Finding", "RequestScan", "find_sensitive", "redact_request", "redact_text", "scan_request"]


@dataclass(frozen=True, slots=True)
class RequestScan:
    kinds: frozenset[PiiKind] = frozenset()
    count: int = 0  # findings over every text part

    @property
    def is_clean(self) -> bool:
        return not self.count


def find_sensitive(text: str) -> list[Finding]:
    """Every finding in ``text``, in order, not overlapping; never raises on any str."""
    candidates = list(find_secrets(text))
    candidates += find_emails(text)
    candidates += find_ipv6(text)
    for start, end in numeric_runs(text):
        candidates += find_ibans_at(text, start, end)
        candidates += find_numbers_in(text, start, end)
        candidates += find_ipv4_in(text, start, end)
    return settle_overlaps(candidates)


def redact_text(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding (in order, not overlapping) replaced by ``[REDACTED:<kind>]``."""
    parts, last = [], 0
    for finding in findings:
        parts += [text[last : finding.start], f"[REDACTED:{finding.kind.value}]"]
        last = finding.end
    parts.append(text[last:])
    return "".join(parts)


def scan_request(messages: Sequence[ChatMessage], options: GenerationOptions) -> RequestScan:
    """What every text part of a request holds (kinds and count; never the values)."""
    tally = _Tally()
    for text in _request_texts(messages, options):
        tally.redact(text)
    for call in (call for message in messages for call in message.tool_calls):
        _redacted_arguments(call.arguments, tally)
    return tally.scan()


def redact_request(
    messages: Sequence[ChatMessage], options: GenerationOptions
) -> tuple[tuple[ChatMessage, ...], GenerationOptions, RequestScan]:
    """The request with every finding redacted in every text part, and what was found (as ``scan_request``).

    Tool-call arguments that are JSON are redacted inside their string values and stay valid JSON.
    """
    tally = _Tally()
    redacted = tuple(_redacted_message(message, tally) for message in messages)
    stop = tuple(tally.redact(text) for text in options.stop)
    user = tally.redact(options.user) if options.user else options.user
    if stop != options.stop or user != options.user:
        options = options._replace(stop=stop, user=user)
    return redacted, options, tally.scan()


def _request_texts(messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
    for message in messages:
        if isinstance(message.content, str):
            yield message.content
        else:
            yield from (str(part["text"]) for part in message.content if _is_text_part(part))
    yield from options.stop
    if options.user:
        yield options.user


def _is_text_part(part: dict[str, Any]) -> bool:
    return part.get("type") == "text" and isinstance(part.get("text"), str)


class _Tally:
    """Counts what one request's redaction found, across its parts."""

    def __init__(self) -> None:
        self.kinds: set[PiiKind] = set()
        self.count = 0

    def redact(self, text: str, *, field_name: str | None = None) -> str:
        """``text`` redacted; a JSON value is scanned as ``"<field_name>": <text>`` so that a secret-named field
        (``"api_key": "…"``) is seen as the assignment it is."""
        findings = find_sensitive(text) if field_name is None else _value_findings(field_name, text)
        if not findings:
            return text
        self.count += len(findings)
        self.kinds.update(finding.kind for finding in findings)
        return redact_text(text, findings)

    def scan(self) -> RequestScan:
        return RequestScan(frozenset(self.kinds), self.count)


def _value_findings(field_name: str, value: str) -> list[Finding]:
    head = f'"{field_name}": '
    shift = len(head)
    found = find_sensitive(head + value)
    return [Finding(f.kind, max(f.start, shift) - shift, f.end - shift) for f in found if f.end > shift]


def _redacted_message(message: ChatMessage, tally: _Tally) -> ChatMessage:
    if isinstance(message.content, str):
        content: str | tuple[dict[str, Any], ...] = tally.redact(message.content)
    else:
        content = tuple(
            {**part, "text": tally.redact(part["text"])} if _is_text_part(part) else part for part in message.content
        )
    calls = tuple(_redacted_call(call, tally) for call in message.tool_calls)
    if content == message.content and calls == message.tool_calls:
        return message
    return message._replace(content=content, tool_calls=calls)


def _redacted_call(call: ToolCall, tally: _Tally) -> ToolCall:
    arguments = _redacted_arguments(call.arguments, tally)
    return call if arguments is call.arguments else dataclasses.replace(call, arguments=arguments)


def _redacted_arguments(arguments: str, tally: _Tally) -> str:
    """JSON arguments are redacted value by value (decoded, so "\\n4111…" is seen as the card it is) and stay
    valid JSON (re-serialised only when something was found); anything else is redacted as text."""
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the decoder goes
        parsed = None
    if not isinstance(parsed, dict | list):
        return tally.redact(arguments)
    values = _Tally()
    try:
        redacted = _redacted_values(parsed, None, values)
    except RecursionError:
        return tally.redact(arguments)
    if not values.count:
        return arguments
    tally.count += values.count
    tally.kinds |= values.kinds
    return json.dumps(redacted, ensure_ascii=False)


def _redacted_values(value: Any, field_name: str | None, tally: _Tally) -> Any:
    """Strings, numbers (``{"card": 4111111111111111}``; a number found becomes the ``"[REDACTED:card]"``
    string) and keys (``{"ana@example.org": …}``) are scanned; booleans and null are not."""
    if isinstance(value, str):
        return tally.redact(value, field_name=field_name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
        redacted = tally.redact(text, field_name=field_name)
        return value if redacted == text else redacted
    if isinstance(value, list):
        return [_redacted_values(item, field_name, tally) for item in value]
    if isinstance(value, dict):
        return {tally.redact(str(key)): _redacted_values(item, str(key), tally) for key, item in value.items()}
    return value
