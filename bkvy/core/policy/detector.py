"""Sensitive data in request text (issue 19 §1): ``find_sensitive`` and ``redact_text`` on one text,
``scan_request`` and ``redact_request`` over every text part of a request (system prompt, messages, tool calls'
arguments and tool results). Pure; never logs or keeps a value.

CONTRACT STUB: only e-mail addresses are found here. The detector engineer replaces the implementation (every
kind, validation, speed); the signatures stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bkvy.models.policy import PiiKind
from bkvy.models.types import ChatMessage, GenerationOptions

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: PiiKind
    start: int  # offsets into the text scanned
    end: int


@dataclass(frozen=True, slots=True)
class RequestScan:
    kinds: frozenset[PiiKind] = frozenset()
    count: int = 0  # findings over every text part

    @property
    def is_clean(self) -> bool:
        return not self.count


def find_sensitive(text: str) -> list[Finding]:
    """Every finding in ``text``, in order, not overlapping."""
    return [Finding(PiiKind.EMAIL, m.start(), m.end()) for m in _EMAIL.finditer(text)]


def redact_text(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding replaced by ``[REDACTED:<kind>]``."""
    parts, last = [], 0
    for finding in findings:
        parts += [text[last : finding.start], f"[REDACTED:{finding.kind.value}]"]
        last = finding.end
    parts.append(text[last:])
    return "".join(parts)


def scan_request(messages: Sequence[ChatMessage], options: GenerationOptions) -> RequestScan:
    """What every text part of a request holds (kinds and count; never the values)."""
    del options  # the stub reads message text only
    findings = [f for message in messages for f in find_sensitive(message.text())]
    return RequestScan(frozenset(f.kind for f in findings), len(findings))


def redact_request(
    messages: Sequence[ChatMessage], options: GenerationOptions
) -> tuple[tuple[ChatMessage, ...], GenerationOptions, RequestScan]:
    """The request with every finding redacted in every text part, and what was found."""
    redacted = []
    for message in messages:
        if isinstance(message.content, str):
            message = message._replace(content=redact_text(message.content, find_sensitive(message.content)))
        redacted.append(message)
    return tuple(redacted), options, scan_request(messages, options)
